"""Fine-tuning a detector on your own classes (``sedlib finetune``).

Start from a released or shipped checkpoint, keep its backbone and sequence model, put new
heads on for the classes of your data (always new, even when the class count happens to match),
and train with the short-run recipe of the ``quick`` preset:

- **Validation by file**: ``val_fraction`` of the training recordings (seeded), never the same
  recording in both; or a separate ``val_data`` (mixtures from held-out source recordings).
- **Class imbalance**: the positive frames of class k weigh ``(1 - p_k) / p_k`` in the BCE,
  ``p_k`` its share of the training frames (capped to [1, :data:`MAX_POS_WEIGHT`]).
- **Best checkpoint**: validated ``validations`` times; ``model.safetensors`` holds the weights of
  the best validation PSDS1 macro and carries the class names, so ``sedlib detect --checkpoint
  RUN/model.safetensors`` needs nothing else.
- ``freeze_steps``: first train the heads (and sequence model) with the backbone frozen, in
  ``RUN/frozen/``, then everything.

Data is opened (and every label file checked) before anything is created, so a malformed label
file leaves no run behind.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from sedlib.data.labels import Vocabulary, merge_overlapping
from sedlib.errors import SedlibError

log = logging.getLogger(__name__)

#: Largest weight of a rare class's positive frames.
MAX_POS_WEIGHT = 10.0


@dataclass
class FinetuneResult:
    run_dir: Path
    model: nn.Module
    vocab: Vocabulary
    best: dict[str, Any]  # the best validation record (step, psds1, psds1_macro, per class, ...)
    pos_weight: list[float] | None


def transfer_model(init: str | os.PathLike, num_classes: int, *, name: str | None = None) -> nn.Module:
    """Model ``name`` (default: the checkpoint's) with fresh heads for ``num_classes``; every
    other weight from ``init`` (a file or a release name, downloaded on first use). ``init``
    ``"scratch"``: model ``name`` with random weights (the baseline a fine-tuning must beat)."""
    from sedlib.models.checkpoints import load_into, read_checkpoint
    from sedlib.registry import create_model

    if str(init) == "scratch":
        if name is None:
            raise SedlibError("--init scratch needs --model (the model to build)")
        return create_model(name, num_classes=num_classes)
    name, sd, _, path = read_checkpoint(init, name)  # one read of the file
    body = {k: v for k, v in sd.items() if not k.startswith(("strong_head.", "weak_head."))}
    model = create_model(name, num_classes=num_classes)
    report = load_into(model, body, strict=False)
    kept = [k for k in report.skipped + report.initialised if not k.startswith(("strong_head.", "weak_head."))]
    if kept:
        raise SedlibError(f"{path}: does not fit {name} ({len(kept)} tensors, e.g. {kept[0]}); pass the "
                          f"--model it was trained as")
    log.info("%s: %s from %s, new heads for %d classes", name, report, path, num_classes)
    return model


def split_by_file(train, val, fraction: float, seed: int = 0) -> tuple[Any, Any]:
    """``train`` and ``val`` (the same source opened for each split) restricted to disjoint
    recordings: ``fraction`` of them (at least one) for validation, chosen with ``seed``."""
    names = list(train.filenames)
    if not 0 < fraction < 1 or len(names) < 2:
        raise SedlibError(f"--val-split must be in (0, 1) and the data hold >= 2 recordings; got "
                          f"{fraction} and {len(names)}")
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = max(1, round(fraction * len(names)))
    held = set(order[:n_val].tolist())
    val.keep_only([n for i, n in enumerate(names) if i in held])
    train.keep_only([n for i, n in enumerate(names) if i not in held])
    return train, val


def positive_weights(source, cap: float = MAX_POS_WEIGHT) -> list[float]:
    """Per class ``(1 - p) / p`` capped to [1, cap], ``p`` the class's share of the labelled
    time of ``source`` (merged events over durations); 1 (and a warning) for a class without
    training events."""
    truth, durations = source.ground_truth, source.durations
    total = sum(durations.values())
    seconds = dict.fromkeys(source.vocab.names, 0.0)
    for events in truth.values():
        for e in merge_overlapping(events):
            seconds[e.label] += e.offset - e.onset
    empty = [c for c, s in seconds.items() if s <= 0]
    if empty:
        log.warning("no training events of %s (after the validation split): the model cannot learn %s",
                    empty[:5], "them" if len(empty) > 1 else "it")
    return [float(min(cap, max(1.0, (total - s) / s))) if s > 0 else 1.0 for s in seconds.values()]


def finetune(init: str | os.PathLike, data: str, out_dir: str | os.PathLike, *, steps: int = 300,
             val_fraction: float = 0.2, val_data: str | None = None, freeze_steps: int = 0,
             validations: int = 5, batch_size: int = 16, lr: float = 1e-3, seed: int = 0,
             model_name: str | None = None, vocab: Vocabulary | None = None, balance: bool = True,
             clip_seconds: float = 10.0, device: str = "cpu", progress: bool = True) -> FinetuneResult:
    """Fine-tune ``init`` on ``data`` (a ``--data`` spec with strong labels) into ``out_dir``
    (module doc). Returns the best model and its validation record."""
    from sedlib.config import AudioConfig
    from sedlib.data.spec import open_source
    from sedlib.train.config import PRESETS
    from sedlib.train.fitting import fit

    audio = AudioConfig(clip_seconds=clip_seconds)
    train = open_source(data, split="train", vocab=vocab, seed=seed, audio_config=audio)
    if not train.has_strong:
        raise SedlibError(f"{data}: fine-tuning needs strong (time-stamped) labels")
    if val_data is not None:
        val = open_source(val_data, split="validation", vocab=train.vocab, audio_config=audio)
    else:
        train, val = split_by_file(train, open_source(data, split="validation", vocab=train.vocab,
                                                      audio_config=audio), val_fraction, seed)
    pos_weight = positive_weights(train) if balance else None
    import torch

    with torch.random.fork_rng(devices=[]):  # new heads (and a scratch model) drawn from the seed
        torch.manual_seed(seed)
        model = transfer_model(init, len(train.vocab), name=model_name)
    out = Path(out_dir)
    cfg = replace(PRESETS["quick"], batch_size=batch_size, max_lr=lr, seed=seed,
                  warmup_steps=max(1, min(64, steps // 10)), num_workers=0)
    common = dict(val_data=val, device=device, progress=progress, recalibrate_bn=4, pos_weight=pos_weight,
                  audio_config=audio,
                  run_info={"data": data, "val_data": val_data, "init": str(init), "finetune": True,
                            "pos_weight": pos_weight})
    if freeze_steps:
        frozen = fit(model, train, out_dir=out / "frozen", max_steps=freeze_steps, val_every=freeze_steps,
                     train_config=replace(cfg, freeze_backbone=True,
                                          warmup_steps=max(1, min(64, freeze_steps // 10))), **common)
        model = frozen.model
    result = fit(model, train, out_dir=out, max_steps=steps, val_every=max(1, steps // max(1, validations)),
                 train_config=cfg, keep_best=True, **common)
    best = max((v for v in result.validations if v), key=lambda v: v["psds1_macro"])
    return FinetuneResult(out, result.model, train.vocab, best, pos_weight)


def per_class_table(best: dict[str, Any]) -> str:
    """The best validation's PSDS1 per class, one row each, and the macro average."""
    rows = sorted(best.get("psds1_per_class", {}).items(), key=lambda kv: -kv[1])
    width = max([len(c) for c, _ in rows] + [10])
    lines = [f"{'class':<{width}}  PSDS1"] + [f"{c:<{width}}  {v:.3f}" for c, v in rows]
    lines.append(f"{'macro':<{width}}  {best['psds1_macro']:.3f}   (step {best['step']}, PSDS1 {best['psds1']:.3f})")
    return "\n".join(lines)


def evaluate_model(model: nn.Module, data: str, vocab: Vocabulary, *, clip_seconds: float = 10.0,
                   folds: int = 5, batch_size: int = 16) -> dict[str, Any]:
    """PSDS1, PSDS1 macro (with ``folds`` eval folds for the intervals) and PSDS1 per class of
    ``model`` on the strong-labelled ``data`` (:func:`sedlib.train.data.psds_of`)."""
    import torch

    from sedlib.audio.frontend import MelFrontend
    from sedlib.config import AudioConfig
    from sedlib.data.spec import open_source
    from sedlib.train.data import psds_of, validation_scores

    audio = AudioConfig(clip_seconds=clip_seconds)
    dataset = open_source(data, split="eval", vocab=vocab, audio_config=audio)
    model = model.eval()
    with torch.inference_mode():
        scores, _, _ = validation_scores(model, MelFrontend(audio).eval(), dataset, device=torch.device("cpu"),
                                         batch_size=batch_size)
    return psds_of(scores, dataset, vocab, audio, folds=folds)

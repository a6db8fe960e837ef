"""``sedlib train``: train a model on a data source (SPEC 5 recipe), resumable, DDP under torchrun.

Configuration is resolved in three layers: ``--preset`` (a :data:`sedlib.train.config.PRESETS`
entry), then ``--config FILE`` (JSON: flat field names of TrainConfig / DistillConfig /
AudioConfig, or sections ``train`` / ``distill`` / ``audio`` as in a run's ``config.json``), then
the explicit flags. Multi-GPU: ``torchrun --nproc_per_node=N -m sedlib train ...`` (every rank
opens the data; rank 0 writes the run directory; ``--batch-size`` is per device).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from sedlib.commands import positive_int

HELP = "train a model (Adam, layer-wise LR, warmup+cosine, wavmix/frame shift/mixup, KD); resumable"

# flag (argparse dest) -> config field it sets
TRAIN_FLAGS = {"batch_size": "batch_size", "accumulate": "accumulate_grad_batches",
               "lr": "max_lr", "seq_lr": "seq_lr", "warmup": "warmup_steps", "epochs": "n_epochs",
               "epoch_len": "epoch_len", "precision": "precision", "pretrained": "pretrained",
               "seed": "seed", "workers": "num_workers", "lr_decay": "lr_decay"}
DISTILL_FLAGS = {"kd_weight": "kd_weight", "pseudo_labels": "pseudo_labels",
                 "weak_pseudo_labels": "weak_pseudo_labels"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # no sedlib.train.config import here (it imports torch): values are checked by the configs
    a = parser.add_argument
    a("--model", required=True, help="model name, e.g. fmn10+TF:256, fmn04+TF:104")
    a("--data", required=True, metavar="SOURCE", help="training data (sedlib.data.sources grammar: "
      "synth[:N], a DESED-layout folder, audioset-strong:TSV:AUDIO_DIR, ...)")
    a("--out", required=True, metavar="RUN_DIR", help="run directory (config.json, metrics.jsonl, "
      "checkpoint.pt, model.safetensors)")
    a("--val-data", metavar="SOURCE", help="validation data with strong labels (PSDS1 is logged)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int,
                        help="optimiser steps to run (the schedule's length)")
    length.add_argument("--epochs", type=positive_int, help="epochs of --epoch-len clips")
    a("--preset", default="paper", help="base configuration: paper (default), reference, quick, "
      "smoke (sedlib.train.config.PRESETS)")
    a("--config", metavar="FILE", help="JSON config overriding the preset (see module doc)")
    a("--batch-size", type=positive_int, help="clips per device and forward pass")
    a("--accumulate", type=positive_int, help="forward passes per optimiser step")
    a("--epoch-len", type=positive_int, help="clips drawn per epoch (the reference: 100,000)")
    a("--lr", type=float, help="max LR (top backbone block)")
    a("--seq-lr", type=float, help="LR of sequence model + heads (default: --lr)")
    a("--lr-decay", type=float, help="layer-wise LR decay per backbone block (0.9; 0 = off)")
    a("--warmup", type=int, help="warmup steps (paper 5000; the reference code 20000)")
    a("--precision", help="32, 16-mixed (CUDA) or bf16-mixed")
    a("--pretrained", help="backbone initialisation: scratch, weak (fmnXX_weak.pt), strong, "
      "advanced-kd-weak-strong (release downloads)")
    a("--init", metavar="CHECKPOINT", help="start from these weights (file or release; strict)")
    a("--kd-weight", type=float, help="distillation weight w (0.9 in the paper; default 0.9 with "
      "--pseudo-labels, else 0)")
    a("--pseudo-labels", metavar="FILE", help="teacher store of the training set (sedlib distill)")
    a("--weak-data", metavar="SOURCE", help="teacher-only data set for weak-set distillation")
    a("--weak-pseudo-labels", metavar="FILE", help="teacher store of --weak-data")
    a("--freeze-backbone", action="store_true", default=None,
      help="train only sequence model + heads (backbone BatchNorm stays in eval mode)")
    a("--seed", type=int)
    a("--device", default="cpu", help="cpu or cuda (under torchrun: one GPU per rank)")
    a("--workers", type=int, help="DataLoader worker processes")
    a("--threads", type=positive_int, help="torch compute threads (default: torch's, the cores)")
    a("--no-clip-cache", action="store_true",
      help="synthesise the embedded set's clips on the fly instead of reading the clip cache "
      "($SEDLIB_CACHE/clips, built on first use)")
    a("--on-error", choices=("raise", "skip"), default="raise",
      help="unreadable audio: stop (raise) or skip the clip with a warning")
    a("--checkpoint-every", type=positive_int, default=500, help="optimiser steps (500)")
    a("--val-every", type=positive_int, help="validate every N steps (default: every "
      "check_val_every_n_epoch epochs)")
    a("--val-at-start", action="store_true", help="also validate the initial model")
    a("--recalibrate-bn", type=int, default=0, metavar="N",
      help="re-estimate BatchNorm statistics from N training batches before each validation and "
      "the final weights (short runs; not in the reference recipe). Default 0: off")
    a("--log-every", type=positive_int, default=10, help="optimiser steps per metrics line (10)")
    a("--resume", action="store_true", help="continue the run in RUN_DIR from its checkpoint")
    a("--no-progress", action="store_true", help="no progress bar")


def resolve_configs(preset: str, config_file: str | None, train_over: dict[str, Any],
                    distill_over: dict[str, Any]):
    """(TrainConfig, DistillConfig, AudioConfig) from a preset, a JSON file and flag values
    (None values are ignored). Unknown JSON keys and invalid values raise SedlibError."""
    import dataclasses
    import json

    from sedlib.config import AudioConfig
    from sedlib.errors import SedlibError
    from sedlib.train.config import PRESETS, DistillConfig, TrainConfig

    if preset not in PRESETS:
        raise SedlibError(f"--preset {preset!r}: unknown; valid: {', '.join(PRESETS)}")
    classes = {"train": TrainConfig, "distill": DistillConfig, "audio": AudioConfig}
    names = {k: {f.name for f in dataclasses.fields(c)} for k, c in classes.items()}
    layers: dict[str, dict[str, Any]] = {k: {} for k in classes}
    if config_file:
        try:
            data = json.loads(open(config_file, encoding="utf-8").read())
        except (OSError, json.JSONDecodeError) as err:
            raise SedlibError(f"--config {config_file}: {err}") from None
        if not isinstance(data, dict):
            raise SedlibError(f"--config {config_file}: expected a JSON object")
        sections = {k: v for k, v in data.items() if k in classes and isinstance(v, dict)}
        flat = {k: v for k, v in data.items() if k not in sections}
        if sections:  # a run's config.json: other top-level keys are descriptive
            flat = {}
        items = [(k, v) for s in sections.values() for k, v in s.items()] + list(flat.items())
        for key, value in items:
            owner = next((c for c, fields in names.items() if key in fields), None)
            if owner is None:
                raise SedlibError(f"--config {config_file}: unknown field {key!r}; valid: "
                                  f"{', '.join(sorted(set().union(*names.values())))}")
            layers[owner][key] = value
    train_over = {k: v for k, v in train_over.items() if v is not None}
    distill_over = {k: v for k, v in distill_over.items() if v is not None}
    d = {**layers["distill"], **distill_over}
    if "kd_weight" not in d:
        d["kd_weight"] = 0.9 if d.get("pseudo_labels") or d.get("weak_pseudo_labels") else 0.0
    try:
        train = dataclasses.replace(PRESETS[preset], **{**layers["train"], **train_over})
        return train, DistillConfig(**d), AudioConfig(**layers["audio"])
    except (TypeError, ValueError) as err:
        raise SedlibError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from sedlib.data.spec import open_source
    from sedlib.train.fitting import fit

    train_cfg, distill_cfg, audio = resolve_configs(
        args.preset, args.config, {f: getattr(args, dest) for dest, f in TRAIN_FLAGS.items()}
        | {"freeze_backbone": args.freeze_backbone},
        {f: getattr(args, dest) for dest, f in DISTILL_FLAGS.items()})

    def source(spec: str | None, split: str):
        if spec is None:
            return None
        return open_source(spec, split=split, audio_config=audio, on_error=args.on_error,
                           seed=train_cfg.seed)

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = fit(args.model, source(args.data, "train"), out_dir=args.out,
                 train_config=train_cfg,
                 distill_config=distill_cfg,
                 val_data=source(args.val_data, "validation"),
                 weak_data=source(args.weak_data, "train"), audio_config=audio,
                 device=args.device, resume=args.resume, max_steps=args.steps, init=args.init,
                 checkpoint_every=args.checkpoint_every, val_every=args.val_every,
                 log_every=args.log_every, validate_at_start=args.val_at_start,
                 recalibrate_bn=args.recalibrate_bn,
                 progress=not args.no_progress, cache_clips=not args.no_clip_cache,
                 run_info={"sources": {"train": args.data, "val": args.val_data,
                                       "weak": args.weak_data},
                           "arguments": {k: v for k, v in vars(args).items() if not k.startswith("_")}})
    if int(os.environ.get("RANK", "0")) == 0:
        last = result.validations[-1] if result.validations else None
        summary = f"trained {result.step} steps ({result.epoch} epochs) -> {result.weights}"
        if last is not None:
            summary += f"; PSDS1 {last['psds1']:.4f}, PSDS1 macro {last['psds1_macro']:.4f}"
        print(summary)
    return 0

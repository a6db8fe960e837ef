"""Trained models with their class names: a checkpoint (or a release) loaded into the model it
names, and the vocabulary its outputs mean. Above ``data``, ``models`` and ``registry``; below
``detect`` and ``train``, which both load trained models (detection, distillation teachers)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from torch import nn

from sedlib.data.labels import Vocabulary
from sedlib.errors import SedlibError


def resolve_vocabulary(spec: str | None, num_classes: int) -> Vocabulary:
    """Class names for a model's outputs: ``audioset`` (447), ``synth``, ``desed``, a text file
    with one name per line, or None to pick by class count (447 -> AudioSet Strong)."""
    from sedlib.data import labels

    named: dict[str, Callable[[], Vocabulary]] = {
        "audioset": labels.audioset_strong_classes,
        "desed": labels.desed_classes,
    }
    try:
        from sedlib.data.synth.soundscape import synth_vocabulary

        named["synth"] = synth_vocabulary
        named["synth-context"] = lambda: synth_vocabulary("context")
    except ImportError:  # pragma: no cover - synth is part of the package
        pass
    if spec is None:
        matches = [f() for f in named.values() if len(f()) == num_classes]
        if len(matches) != 1:
            raise SedlibError(
                f"cannot tell the class names of a {num_classes}-class model; pass --classes "
                f"({', '.join(named)} or a file with one class name per line)"
            )
        vocab = matches[0]
    elif spec in named:
        vocab = named[spec]()
    else:
        path = Path(spec)
        if not path.is_file():
            raise SedlibError(f"--classes: {spec!r} is neither one of {sorted(named)} nor a file")
        vocab = labels.read_class_list(path)
    if len(vocab) != num_classes:
        raise SedlibError(f"vocabulary {vocab.name!r} has {len(vocab)} classes, the model {num_classes}")
    return vocab


def load_trained_model(name: str | None, checkpoint: str | os.PathLike | None,
                       classes: str | None = None) -> tuple[nn.Module, Vocabulary]:
    """A PyTorch model in eval mode with its class names: ``checkpoint`` (a file, or None for
    ``name``'s released AudioSet Strong weights, downloaded on first use), the class count from
    its head, the names from ``classes`` (:func:`resolve_vocabulary`), else the checkpoint's
    metadata, else the class count (447 -> AudioSet). What ``sedlib detect`` and the teachers of
    distillation load (:func:`sedlib.detect.detector.load_detector_model` adds other engines)."""
    from sedlib.models.checkpoints import load_into, read_checkpoint
    from sedlib.models.releases import model_to_release
    from sedlib.registry import create_model

    if checkpoint is None:
        if name is None:
            raise SedlibError("give a model name or a checkpoint")
        try:
            checkpoint = model_to_release(name)
        except ValueError as err:
            raise SedlibError(f"no released checkpoint for {name!r} ({err}); pass --checkpoint") from None
    name, sd, meta, path = read_checkpoint(checkpoint, name)
    head = sd.get("strong_head.weight")
    num_classes = int(head.shape[0]) if head is not None else 447
    model = create_model(name, num_classes=num_classes)
    load_into(model, sd, strict=True)
    if classes is None and "classes" in meta:
        vocab = Vocabulary(json.loads(meta["classes"]), path.name)
        if len(vocab) != num_classes:
            raise SedlibError(f"{path}: metadata names {len(vocab)} classes, the head has {num_classes}")
    else:
        vocab = resolve_vocabulary(classes, num_classes)
    return model.eval(), vocab

"""Teacher ensembles for the distillation notebooks (04, 05): get the teachers, store their labels.

A teacher spec (``DistillConfig.teachers``) is either

* a model name (``fmn04+TF:104``): trained here with the notebook's recipe through
  :func:`sedlib.study.cache.run_experiment` (cached, so a notebook reuses an earlier one), or
* a checkpoint, as ``sedlib distill make-labels --teacher`` takes it: a sedlib ``.safetensors``
  file that names its model (relative paths also from the project root), a release name, or
  ``NAME:CHECKPOINT``.

:func:`teacher_labels` runs the ensemble over a data source once and keeps the pseudo-label
store (mean strong logits, :func:`sedlib.train.pseudo_labels.make_pseudo_labels`) under
``<cache_dir>/pseudo_labels/``, named by the teachers' identities (experiment keys or checkpoint
digests), the data spec and the clip length, so it is remade only when one of those changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from sedlib.config import AudioConfig
from sedlib.data.labels import Vocabulary
from sedlib.errors import SedlibError

log = logging.getLogger(__name__)


@dataclass
class Teacher:
    """A ready teacher: ``model`` (eval mode), ``ident`` (what its labels depend on: an
    experiment key or ``<file stem>-<sha256[:16]>``), ``result`` when trained here."""

    spec: str
    model: nn.Module
    ident: str
    result: Any = None  # sedlib.study.experiments.ExperimentResult

    @property
    def psds1(self) -> float | None:
        return None if self.result is None else self.result.metrics["psds1"]


def get_teachers(specs: Sequence[str], vocab: Vocabulary, *, study, train, audio: AudioConfig
                 ) -> list[Teacher]:
    """The teachers of ``specs`` (module doc), trained ones with ``make_experiment(name, study,
    train, None, audio, weak_data=None)``; each must predict ``vocab``."""
    from sedlib.detect.detector import load_detector_model
    from sedlib.models.download import sha256sum
    from sedlib.models.releases import RELEASES
    from sedlib.study.cache import run_experiment
    from sedlib.study.experiments import make_experiment
    from sedlib.study.listen import find_checkpoint
    from sedlib.train.pseudo_labels import parse_teacher

    if not specs:
        raise SedlibError("no teachers given (DistillConfig.teachers / the `teachers` parameter)")
    out = []
    for spec in specs:
        name, checkpoint = parse_teacher(spec)
        if checkpoint is None:
            result = run_experiment(make_experiment(name, study, train, None, audio, weak_data=None),
                                    **study.run_kwargs)
            out.append(Teacher(spec, result.load_model(study.device), result.key, result))
            continue
        if checkpoint in RELEASES:
            path, ident = checkpoint, checkpoint
        else:
            path = find_checkpoint(checkpoint)
            ident = f"{path.stem}-{sha256sum(path)[:16]}"
        model, classes = load_detector_model(name, path)
        if list(classes.names) != list(vocab.names):
            raise SedlibError(f"teacher {spec!r} predicts {len(classes)} classes ({classes.name}), "
                              f"the data has {len(vocab)} ({vocab.name})")
        out.append(Teacher(spec, model.eval(), ident))
    return out


def teacher_labels(teachers: Sequence[Teacher], data_spec: str, audio: AudioConfig, *,
                   cache_dir: str | os.PathLike, batch_size: int = 32, device: str = "cpu",
                   progress: bool = True) -> Path:
    """The ensemble's pseudo-label store for every clip of ``data_spec`` (train split, clips of
    ``audio.clip_seconds``), made on first use and kept under ``<cache_dir>/pseudo_labels/``."""
    from sedlib.audio.frontend import MelFrontend
    from sedlib.study.training import open_data
    from sedlib.train.pseudo_labels import make_pseudo_labels

    ident = "+".join(t.ident for t in teachers)
    if len(ident) > 120:
        ident = hashlib.sha256(ident.encode()).hexdigest()[:32]
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in data_spec)
    path = Path(cache_dir) / "pseudo_labels" / f"{ident}-{slug}-{audio.clip_seconds:g}s.h5"
    if path.is_file():
        return path
    log.info("pseudo labels of %s by %s -> %s", data_spec, [t.spec for t in teachers], path)
    return make_pseudo_labels([t.model for t in teachers], open_data(data_spec, "train", audio),
                              path, batch_size=batch_size, device=device,
                              frontend=MelFrontend(audio), progress=progress,
                              teacher_names=[t.spec for t in teachers])


def distillation_labels(distill, data: dict[str, str], vocab: Vocabulary, *, study, train,
                        audio: AudioConfig) -> tuple[dict[str, Path], list[Teacher]]:
    """Pseudo-label stores for the notebooks' roles ``{"strong": train spec, "weak": weak spec}``:
    a role whose store ``distill`` already names (``pseudo_labels`` / ``weak_pseudo_labels``,
    e.g. the paper's published transformer-ensemble labels) uses that file; the others are made
    by ``distill.teachers`` (:func:`get_teachers`, loaded only when needed) with
    ``study.num_threads`` torch threads. Returns the stores and the teachers used (empty when
    every store was given)."""
    given = {"strong": distill.pseudo_labels, "weak": distill.weak_pseudo_labels}
    unknown = sorted(set(data) - set(given))
    if unknown:
        raise SedlibError(f"unknown pseudo-label role(s) {unknown}; expected strong / weak")
    stores = {role: Path(given[role]) for role in data if given[role]}
    for role, path in stores.items():
        if not path.is_file():
            raise SedlibError(f"{role} pseudo labels {path} do not exist")
    todo = [role for role in data if role not in stores]
    teachers = get_teachers(distill.teachers, vocab, study=study, train=train,
                            audio=audio) if todo else []
    import torch

    threads = torch.get_num_threads()
    if getattr(study, "num_threads", None):  # the cores the parallel runs would use, no more
        torch.set_num_threads(study.num_threads * getattr(study, "parallel_runs", 1))
    try:
        for role in todo:
            stores[role] = teacher_labels(teachers, data[role], audio, cache_dir=study.cache_dir,
                                          batch_size=distill.pseudo_label_batch_size,
                                          device=study.device, progress=study.progress)
    finally:
        torch.set_num_threads(threads)
    return {role: stores[role] for role in data}, teachers


def student_backbone(student: str, *, study, train, audio: AudioConfig) -> tuple[str, Any]:
    """The pre-trained backbone the distillation notebooks start their student from: the file
    ``study.backbone_init`` names for it (shipped; returns (path, None)), or else the student's
    backbone trained alone with the study's recipe (cached; returns (weights, its result))."""
    from sedlib.models.names import parse_name
    from sedlib.study.cache import run_experiment
    from sedlib.study.experiments import make_experiment

    shipped = study.backbone_init_for(student)
    if shipped is not None:
        return shipped, None
    backbone = parse_name(student).backbone
    result = run_experiment(make_experiment(backbone, study, train, None, audio, weak_data=None),
                            **study.run_kwargs)
    return str(result.weights), result


def teacher_table(teachers: Sequence[Teacher], eval_spec: str, audio: AudioConfig, *,
                  batch_size: int = 8, median_window: int = 9) -> list[dict[str, Any]]:
    """One row per teacher (:func:`sedlib.study.findings.single_model_row`: PSDS1 macro and
    PSDS1 with the eval-clip interval, plus ``model`` and ``params``) on the eval split of
    ``eval_spec``, and, for two or more, a last row for the ensemble itself
    (:class:`sedlib.models.ensemble.MeanLogits`, ``name`` "ensemble"): the teacher the labels
    come from (mean strong logits) is the ensemble, not its best member. ``median_window``: the
    students' (``TrainConfig.median_window``), so teacher and students are scored alike."""
    from sedlib.models.ensemble import MeanLogits
    from sedlib.study.findings import single_model_row
    from sedlib.study.training import evaluate_on

    def row(name: str, model: nn.Module) -> dict[str, Any]:
        metrics = evaluate_on(model, eval_spec, audio, batch_size=batch_size, median_window=median_window)
        return {**single_model_row(name, metrics), "model": getattr(model, "name", type(model).__name__),
                "params": sum(p.numel() for p in model.parameters())}

    rows = [row(t.spec, t.model) for t in teachers]
    if len(teachers) > 1:
        rows.append(row("ensemble", MeanLogits([t.model for t in teachers]).eval()))
    return rows

"""Cached training runs for the study: one :class:`Experiment` = one trained and evaluated model.

An :class:`Experiment` is a frozen description of a run (model name, data specs, the full
:class:`~sedlib.train.config.TrainConfig` / :class:`~sedlib.train.config.DistillConfig` /
:class:`~sedlib.config.AudioConfig`, steps, init, seed). Its :attr:`~Experiment.key` hashes all
of it -- plus the content of every file it names (pseudo-label stores, an ``init`` weights file)
-- so two notebooks asking for the same run share it, and any change gives a new key.

:func:`run_experiment` trains only when ``<cache_dir>/<key>/result.json`` is missing::

    <cache_dir>/<key>/
        run/                fit()'s run folder (config.json, metrics.jsonl, checkpoint.pt,
                            model.safetensors)
        result.json         experiment + metrics on ``eval_data`` + complexity, written atomically
    <cache_dir>/profiles/   complexity per (model, classes, timing settings), shared by runs

An interrupted run resumes from its checkpoint on the next call (same key, same folder). A
lock file serialises two processes asking for the same key.

The study's flat parameters map onto the config dataclasses by field name
(:func:`configs_from_parameters`); :class:`StudyConfig` holds the study-level ones (both live in
:mod:`sedlib.study.config` and are re-exported here).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from sedlib.config import AudioConfig
from sedlib.errors import SedlibError
from sedlib.models.names import format_name, parse_name
from sedlib.study.config import StudyConfig
from sedlib.train.config import PRESETS, DistillConfig, TrainConfig

log = logging.getLogger(__name__)

#: Bump when a code change makes cached results wrong (part of every key).
CACHE_VERSION = 2  # 2: metrics carry eval folds
RESULT = "result.json"
RUN = "run"
PROFILES = "profiles"
#: Set by ``sedlib study``: every :func:`run_experiment` appends its record (JSON line) here,
#: so the study's summary table lists every model trained, cached or not.
RESULTS_LOG_ENV = "SEDLIB_STUDY_RESULTS"
NOTEBOOK_ENV = "SEDLIB_STUDY_NOTEBOOK"

# --- experiments -------------------------------------------------------------------------------

def _file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's content, memoised per (path, size, mtime): AudioSet pseudo-label
    stores are gigabytes and the key is asked for more than once."""
    st = os.stat(path)
    return _digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Experiment:
    """One training run + evaluation. ``seed`` is the run's seed (it replaces ``train.seed``;
    give it in one place only). ``steps``: optimiser steps (None: the TrainConfig's epochs)."""

    model: str
    train_data: str
    val_data: str | None = None
    eval_data: str | None = None
    train: TrainConfig = field(default_factory=lambda: PRESETS["quick"])
    distill: DistillConfig | None = None
    steps: int | None = None
    init: str | None = None
    weak_data: str | None = None
    seed: int = 0
    audio: AudioConfig = field(default_factory=AudioConfig)
    val_every: int | None = None
    bn_recalibration_clips: int = 0  # > 0: recompute BatchNorm statistics before evaluation
    # eval clips of this length (s) while training on audio.clip_seconds; None: the same length.
    # Left out of the key when None, so runs stored before it existed keep their keys.
    eval_clip_seconds: float | None = None
    # another network of the same name, e.g. "clipwise2222" (sedlib.study.stride.build_model):
    # keyed "<variant>-<the key without it>" (the clip-wise runs' folders); None left out of the key
    variant: str | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "model", format_name(parse_name(self.model)))
        except ValueError as err:
            raise ValueError(f"Experiment.model: {err}") from None
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"Experiment.train must be a TrainConfig, got {type(self.train).__name__}")
        if self.distill is not None and not isinstance(self.distill, DistillConfig):
            raise TypeError(f"Experiment.distill must be a DistillConfig or None, got "
                            f"{type(self.distill).__name__}")
        if self.train.seed not in (0, self.seed):
            raise ValueError(f"Experiment: train.seed={self.train.seed} and seed={self.seed}; "
                             f"give the seed once (Experiment.seed)")
        object.__setattr__(self, "train", replace(self.train, seed=self.seed))
        if self.distill is not None and self.distill.kd_weight == 0 and self.distill.pseudo_labels is None \
                and self.distill.weak_pseudo_labels is None:
            object.__setattr__(self, "distill", None)  # plain BCE: one key for "no KD"
        if not isinstance(self.bn_recalibration_clips, int) or self.bn_recalibration_clips < 0:
            raise ValueError(f"Experiment.bn_recalibration_clips must be an int >= 0, got "
                             f"{self.bn_recalibration_clips!r}")
        for name in ("steps", "val_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"Experiment.{name} must be a positive int or None, got {value!r}")
        if self.audio.mel_frames % self.audio.time_pooling:
            raise ValueError(f"Experiment: clip_seconds={self.audio.clip_seconds} gives "
                             f"{self.audio.mel_frames} mel frames, not a multiple of "
                             f"{self.audio.time_pooling} (labels and outputs would differ by a "
                             f"frame); use a multiple of 0.04 s such as 4.0")
        if self.variant is not None:
            from sedlib.study.stride import variant_strides

            variant_strides(self.variant)  # ValueError naming the expected form
        if self.eval_data is None and self.val_data is None:
            raise ValueError("Experiment: give eval_data (or at least val_data) to report metrics")
        length = self.eval_clip_seconds
        if length is not None and (not isinstance(length, (int, float)) or length <= 0):
            raise ValueError(f"Experiment.eval_clip_seconds must be a positive number or None, got {length!r}")
        object.__setattr__(self, "eval_clip_seconds",  # one key for "the training length"
                           None if length in (None, self.audio.clip_seconds) else float(length))

    @property
    def evaluation(self) -> tuple[str, str, AudioConfig]:
        """``(spec, split, audio)`` of the clips the metrics are reported on: ``eval_data``
        (else ``val_data``), at :attr:`eval_clip_seconds` (else the training length)."""
        length = self.eval_clip_seconds
        audio = self.audio if length is None else replace(self.audio, clip_seconds=length)
        return (self.eval_data, "eval", audio) if self.eval_data is not None else (self.val_data, "validation", audio)

    # serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["train"] = dataclasses.asdict(self.train)
        d["distill"] = None if self.distill is None else dataclasses.asdict(self.distill)
        d["audio"] = dataclasses.asdict(self.audio)
        for name in ("eval_clip_seconds", "variant"):
            if d[name] is None:
                del d[name]  # the key of a run stored before the field existed
        return json.loads(json.dumps(d))  # tuples -> lists, as stored

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Experiment":
        d = dict(d)
        d["train"] = TrainConfig(**d["train"])
        d["distill"] = None if d.get("distill") is None else DistillConfig(**d["distill"])
        d["audio"] = AudioConfig(**d["audio"])
        return cls(**d)

    # identity -------------------------------------------------------------------------------
    def files(self) -> dict[str, str]:
        """Files whose content (not path) is part of the run: pseudo-label stores, an ``init``
        file (an ``init`` that is not a file is a release name and enters the key as such)."""
        out = {}
        if self.distill is not None:
            for name in ("pseudo_labels", "weak_pseudo_labels"):
                if getattr(self.distill, name) is not None:
                    out[name] = getattr(self.distill, name)
        if self.init is not None and Path(self.init).is_file():
            out["init"] = self.init
        return out

    def file_digests(self) -> dict[str, str]:
        """``{name: "sha256:..."}`` of :meth:`files` (SedlibError for a missing file)."""
        out = {}
        for name, path in self.files().items():
            if not Path(path).is_file():
                raise SedlibError(f"Experiment {self.model}: {name} file {path} does not exist")
            out[name] = f"sha256:{_file_digest(path)}"
        return out

    def fingerprint_with(self, digests: Mapping[str, str]) -> dict[str, Any]:
        """The fingerprint with the named files' digests given (e.g. stored ones, for a check
        of stored results where the files are not at hand)."""
        d = self.to_dict()
        d.pop("variant", None)  # in the key's prefix (key_with)
        for name, digest in digests.items():
            if name == "init":
                d["init"] = digest
            else:
                d["distill"][name] = digest
        return {"cache_version": CACHE_VERSION, "experiment": d}

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What the key hashes: the full config with every named file replaced by the sha256 of
        its content (the same pseudo labels written to another folder are the same run), and
        the cache version."""
        return self.fingerprint_with(self.file_digests())

    def key_with(self, digests: Mapping[str, str]) -> str:
        """:attr:`key` from the given file digests (:meth:`fingerprint_with`)."""
        text = json.dumps(self.fingerprint_with(digests), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        prefix = "" if self.variant is None else f"{self.variant}-"
        return f"{prefix}{re.sub(r'[^A-Za-z0-9]+', '_', self.model)}-{digest}"

    @property
    def key(self) -> str:
        """``<model slug>-<16 hex digits of sha256(fingerprint)>``: the cache folder name;
        ``<variant>-`` before it for a :attr:`variant`."""
        return self.key_with(self.file_digests())


@dataclass(frozen=True)
class ExperimentResult:
    """A finished experiment: metrics on ``eval_data`` (``psds1``, ``psds1_macro``, ``pauroc``,
    ``val_loss``, ``val_history``), complexity, where the run lies, and whether it was cached."""

    experiment: Experiment
    key: str
    metrics: dict[str, Any]
    profile: dict[str, Any]
    run_dir: Path
    weights: Path
    cached: bool
    train_seconds: float
    eval_seconds: float

    @property
    def name(self) -> str:
        """The model name; a variant's says which (``fmn02+TF:64 (clip-wise strides)``)."""
        from sedlib.study.stride import variant_label

        return variant_label(self.experiment.model, self.experiment.variant)

    @property
    def params(self) -> int:
        return self.profile["params"]

    @property
    def macs(self) -> int:
        return self.profile["macs"]

    @property
    def throughput(self) -> float | None:
        return self.profile.get("throughput")

    @property
    def record(self) -> dict[str, Any]:
        """One flat row for tables and plots (PSDS values in percent, as the paper prints)."""
        m = self.metrics
        return {"name": self.name, "psds1": 100 * m["psds1"], "psds1_macro": 100 * m["psds1_macro"],
                "params": self.params, "macs": self.macs, "throughput": self.throughput,
                "steps": self.experiment.steps, "kd_weight": 0.0 if self.experiment.distill is None
                else self.experiment.distill.kd_weight, "init": _init_label(self.experiment.init),
                "frozen_backbone": self.experiment.train.freeze_backbone,
                "train_seconds": self.train_seconds, "cached": self.cached, "key": self.key,
                "seed": self.experiment.seed, "eval_clips": m.get("eval_clips"),
                "eval_data": self.experiment.eval_data or self.experiment.val_data,
                "weak_data": self.experiment.weak_data, "experiment": self.experiment.to_dict(),
                "file_digests": self.experiment.file_digests(),
                **{f"{k}_folds": [100 * v for v in m[f"{k}_folds"]] for k in ("psds1", "psds1_macro")
                   if m.get(f"{k}_folds") is not None},
                **({"psds1_per_class": {c: 100 * v for c, v in m["psds1_per_class"].items()}}
                   if "psds1_per_class" in m else {}),
                **({"psds1_per_class_folds": {c: [None if v is None else 100 * v for v in f]
                                              for c, f in m["psds1_per_class_folds"].items()}}
                   if "psds1_per_class_folds" in m else {})}

    def load_model(self, device: str = "cpu"):
        """The trained model (eval mode) from ``weights``."""
        from sedlib.models.checkpoints import load_checkpoint
        from sedlib.study.stride import build_model

        model = build_model(self.experiment.model, self.profile["num_classes"], self.experiment.variant)
        load_checkpoint(model, self.weights)
        return model.to(device).eval()

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "experiment": self.experiment.to_dict(),
                "fingerprint": self.experiment.fingerprint, "metrics": self.metrics,
                "profile": self.profile, "weights": str(Path(self.weights).name),
                "train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds}


def _init_label(init: str | None) -> str | None:
    """An ``init`` for tables: the cache key of the run it came from, else the path/release."""
    if init is None:
        return None
    path = Path(init)
    return path.parent.parent.name if path.parent.name == RUN else str(init)


def make_experiment(model: str, study: StudyConfig, train: TrainConfig,
                    distill: DistillConfig | None = None, audio: AudioConfig | None = None,
                    **changes: Any) -> Experiment:
    """The :class:`Experiment` for ``model`` under a notebook's configs (data specs, steps,
    validation and BN recalibration from ``study``; seed from ``train``; ``init`` from
    ``study.backbone_init``); ``changes`` replace any Experiment field (``distill=...``,
    ``init=...``)."""
    fields_ = dict(model=model, train_data=study.train_data, val_data=study.val_data,
                   eval_data=study.eval_data, weak_data=study.weak_data, train=train,
                   distill=distill, steps=study.steps, seed=train.seed,
                   audio=audio or AudioConfig(), val_every=study.val_every,
                   bn_recalibration_clips=study.bn_recalibration_clips,
                   eval_clip_seconds=study.eval_clip_seconds)
    if "init" not in changes:
        fields_["init"] = study.backbone_init_for(model)
    fields_.update(changes)
    return Experiment(**fields_)


def pretraining_experiment(exp: Experiment, steps: int) -> Experiment:
    """The run that trains ``exp``'s backbone alone for ``steps`` steps (same data and configs,
    backbone trainable, no ``init``): the stand-in for the paper's AudioSet-Weak pre-training
    that :func:`run_models` starts every model from when ``pretrain_steps`` > 0."""
    return replace(exp, model=parse_name(exp.model).backbone, steps=steps, init=None,
                   train=replace(exp.train, freeze_backbone=False))

"""Cached training runs for the study: one :class:`Experiment` = one trained and evaluated model.

An :class:`Experiment` is a frozen description of a run (model name, data specs, the full
:class:`~sedlib.train_config.TrainConfig` / :class:`~sedlib.train_config.DistillConfig` /
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
:mod:`sedlib.study_config` and are re-exported here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

from sedlib.config import AudioConfig
from sedlib.errors import SedlibError
from sedlib.registry import format_name, parse_name
from sedlib.study_config import (NOTEBOOK_PARAMETERS, PARAMETER_CONFIGS, StudyConfig,  # noqa: F401
                                 configs_from_parameters, parameter_names, parameters_from)
from sedlib.train_config import PRESETS, DistillConfig, TrainConfig

log = logging.getLogger(__name__)

#: Bump when a code change makes cached results wrong (part of every key).
CACHE_VERSION = 1
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
        if self.eval_data is None and self.val_data is None:
            raise ValueError("Experiment: give eval_data (or at least val_data) to report metrics")

    # serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["train"] = dataclasses.asdict(self.train)
        d["distill"] = None if self.distill is None else dataclasses.asdict(self.distill)
        d["audio"] = dataclasses.asdict(self.audio)
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

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What the key hashes: the full config with every named file replaced by the sha256 of
        its content (the same pseudo labels written to another folder are the same run), and
        the cache version."""
        d = self.to_dict()
        for name, path in self.files().items():
            if not Path(path).is_file():
                raise SedlibError(f"Experiment {self.model}: {name} file {path} does not exist")
            digest = f"sha256:{_file_digest(path)}"
            if name == "init":
                d["init"] = digest
            else:
                d["distill"][name] = digest
        return {"cache_version": CACHE_VERSION, "experiment": d}

    @property
    def key(self) -> str:
        """``<model slug>-<16 hex digits of sha256(fingerprint)>``: the cache folder name."""
        text = json.dumps(self.fingerprint, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return f"{re.sub(r'[^A-Za-z0-9]+', '_', self.model)}-{digest}"


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
        return self.experiment.model

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
                "train_seconds": self.train_seconds, "cached": self.cached, "key": self.key}

    def load_model(self, device: str = "cpu"):
        """The trained model (eval mode) from ``weights``."""
        from sedlib.registry import create_model
        from sedlib.checkpoints import load_checkpoint

        model = create_model(self.experiment.model, num_classes=self.profile["num_classes"])
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


def open_data(spec: str, split: str, audio: AudioConfig):
    """The data source for ``spec`` (:func:`sedlib.data.datasets.open_source`); ``synth`` specs
    make clips of ``audio.clip_seconds`` (the length the model trains on)."""
    from sedlib.data.datasets import open_source

    return open_source(spec, split=split, audio_config=audio)


def recalibrate_batchnorm(model, dataset, audio: AudioConfig, *, clips: int, batch_size: int,
                          device: str = "cpu") -> None:
    """Recompute every BatchNorm layer's running mean/variance as the plain average over the
    first ``clips`` clips of ``dataset`` (no augmentation, no gradient), in place.

    Why: the backbone's BN momentum is 0.01 (the reference's), so after a few hundred steps of
    a short CPU run the running statistics still lag far behind the weights and evaluation
    suffers (the paper's 47k steps make this moot). Off unless asked for
    (``bn_recalibration_clips``).
    """
    import torch

    from sedlib.frontend import MelFrontend

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    frontend = MelFrontend(audio).to(device).eval()
    was_training = model.training
    model.eval()
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    n = min(clips, len(dataset))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(n)),
                                         batch_size=batch_size, shuffle=False)
    with torch.no_grad():
        for batch in loader:
            model(frontend(batch["waveform"].to(device)))  # (B, 1, F, T) -> updates BN stats
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
    model.train(was_training)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _profile(model: str, num_classes: int, cache_dir: Path, *, device: str, batch_size: int,
             repeats: int, warmup: int, dtype: str) -> dict[str, Any]:
    """Params, MACs (sedlib's counter, one 10 s clip) and throughput, cached per settings."""
    import torch

    from sedlib import runs
    from sedlib.profile import profile_model

    ident = {"model": model, "num_classes": num_classes, "device": device, "batch": batch_size,
             "repeats": repeats, "warmup": warmup, "dtype": dtype,
             "threads": torch.get_num_threads(),
             "version": CACHE_VERSION}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / PROFILES / f"{re.sub(r'[^A-Za-z0-9]+', '_', model)}-{digest}.json"
    if path.is_file():
        return json.loads(path.read_text())
    prof = profile_model(model, num_classes=num_classes, device=device, dtype=dtype,
                         batch_size=batch_size, repeats=repeats, warmup=warmup, deepspeed=False)
    out = {**prof.to_dict(), "num_classes": num_classes}
    runs.write_json(path, out)
    return out


def _log_record(result: ExperimentResult, name: str | None = None) -> None:
    """Append ``result``'s record to the study's results log (when ``sedlib study`` set one);
    ``name`` replaces the model name (e.g. for a variant that is not a registry model)."""
    path = os.environ.get(RESULTS_LOG_ENV)
    if not path:
        return
    row = {**result.record, "notebook": os.environ.get(NOTEBOOK_ENV)}
    if name is not None:
        row["name"] = name
    line = json.dumps(row) + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:  # one short write: atomic under O_APPEND
        fh.write(line)


def load_result(exp: Experiment, cache_dir: str | os.PathLike = "runs/cache"
                ) -> ExperimentResult | None:
    """The cached result of ``exp``, or None when it has not run."""
    folder = Path(cache_dir) / exp.key
    path = folder / RESULT
    if not path.is_file():
        return None
    d = json.loads(path.read_text(encoding="utf-8"))
    if d.get("fingerprint") != exp.fingerprint:
        raise SedlibError(f"{path}: the stored run's configuration differs from the requested one "
                          f"(same key {exp.key}); delete the folder")
    return ExperimentResult(exp, exp.key, d["metrics"], d["profile"], folder / RUN,
                            folder / RUN / d["weights"], True, d["train_seconds"],
                            d["eval_seconds"])


def run_experiment(exp: Experiment, *, cache_dir: str | os.PathLike = "runs/cache",
                   device: str = "cpu", progress: bool = True, throughput_batch_size: int = 8,
                   throughput_repeats: int = 3, throughput_warmup: int = 1,
                   throughput_dtype: str | None = None,
                   num_threads: int | None = None) -> ExperimentResult:
    """Train and evaluate ``exp`` unless ``<cache_dir>/<key>/result.json`` exists (then return
    it, ``cached=True``). Throughput is measured on ``device`` with 10 s clips at
    ``throughput_batch_size`` (median of ``throughput_repeats`` batches) in ``throughput_dtype``
    (None: fp16 on CUDA as the paper, fp32 on CPU). ``num_threads``: torch
    CPU threads while this runs (restored after; None: unchanged)."""
    import torch

    before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        result = _run(exp, Path(cache_dir), device=device, progress=progress,
                      profile=dict(batch_size=throughput_batch_size, repeats=throughput_repeats,
                                   warmup=throughput_warmup, dtype=throughput_dtype or (
                                       "fp16" if str(device).startswith("cuda") else "fp32")))
    finally:
        torch.set_num_threads(before)
    _log_record(result)
    return result


def train_and_evaluate(exp: Experiment, folder: Path, *, build: Any = None, device: str = "cpu",
                       progress: bool = True, run_info: Mapping[str, Any] | None = None
                       ) -> tuple[Any, dict[str, Any], float, float, int]:
    """Train ``exp`` into ``folder/run`` (resuming), recalibrate BatchNorm if asked, evaluate on
    ``eval_data`` (else ``val_data``). ``build``: ``num_classes -> model`` instead of
    ``exp.model`` (e.g. a clip-wise variant; called after seeding with ``exp.seed``, as fit()
    seeds before ``create_model``). Returns (fit's RunResult, metrics, train s, eval s, class
    count)."""
    from sedlib import runs
    from sedlib.train import fit, validate
    from sedlib.train_data import dataset_vocab

    audio = exp.audio
    train = open_data(exp.train_data, "train", audio)
    val = None if exp.val_data is None else open_data(exp.val_data, "validation", audio)
    weak = None if exp.weak_data is None else open_data(exp.weak_data, "train", audio)
    evaluation = val if exp.eval_data is None else open_data(exp.eval_data, "eval", audio)
    k = len(dataset_vocab(train, "training"))
    model = exp.model
    if build is not None:
        import torch

        torch.manual_seed(exp.seed)
        model = build(k)
    t0 = time.perf_counter()
    run = fit(model, train, out_dir=folder / RUN,
              train_config=exp.train, distill_config=exp.distill, val_data=val, weak_data=weak,
              audio_config=audio, device=device, resume=True, max_steps=exp.steps,
              init=exp.init, val_every=exp.val_every, progress=progress,
              run_info={"experiment_key": folder.name, "experiment": exp.to_dict(),
                        **(run_info or {})})
    if exp.bn_recalibration_clips:
        recalibrate_batchnorm(run.model, train, audio, clips=exp.bn_recalibration_clips,
                              batch_size=exp.train.batch_size, device=device)
        runs.save_weights(run.model, run.weights, model_name=getattr(run.model, "name", exp.model),
                          classes=list(train.vocab.names),
                          extra={"step": str(run.step), "bn_recalibrated": "1"})
    t1 = time.perf_counter()
    metrics = validate(run.model, evaluation, audio_config=audio, device=device,
                       batch_size=exp.train.batch_size, median_window=exp.train.median_window)
    metrics["val_history"] = list(run.validations)
    log.info("%s: PSDS1 %.4f, PSDS1 macro %.4f (%.0f s)", exp.model, metrics["psds1"],
             metrics["psds1_macro"], t1 - t0)
    return run, metrics, t1 - t0, time.perf_counter() - t1, k


def _run(exp: Experiment, cache: Path, *, device: str, progress: bool,
         profile: dict[str, int]) -> ExperimentResult:
    from sedlib import runs

    key = exp.key
    folder = cache / key
    result = load_result(exp, cache)
    if result is None:
        with _locked(cache / f".{key}.lock"):
            result = load_result(exp, cache)  # another process may have finished it
            if result is None:
                log.info("training %s (%s)", exp.model, key)
                run, metrics, train_s, eval_s, k = train_and_evaluate(
                    exp, folder, device=device, progress=progress)
                prof = _profile(exp.model, k, cache, device=device, **profile)
                result = ExperimentResult(exp, key, metrics, prof, folder / RUN, Path(run.weights),
                                          False, train_s, eval_s)
                runs.write_json(folder / RESULT, result.to_dict())
    return result


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
                   bn_recalibration_clips=study.bn_recalibration_clips)
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


def run_models(models: list[str], study: StudyConfig, train: TrainConfig,
               distill: DistillConfig | None = None, audio: AudioConfig | None = None,
               **changes: Any) -> list[ExperimentResult]:
    """Train (or fetch from the cache) and evaluate each model under a notebook's configs.

    ``study.pretrain_steps`` > 0: each distinct backbone first trains alone for that many steps
    (one cached run per backbone, shared by every notebook), and every model then starts from its
    weights (backbone transfer, :func:`sedlib.checkpoints.load_into`) for ``study.steps`` more
    steps -- with ``train.freeze_backbone`` only the sequence model and heads train, so the models
    of one backbone differ only in what sits on top of the same features.
    """
    exps = [make_experiment(m, study, train, distill, audio, **changes) for m in models]
    if study.pretrain_steps:
        bases: dict[str, Experiment] = {}
        for exp in exps:
            bases.setdefault(parse_name(exp.model).backbone,
                             pretraining_experiment(exp, study.pretrain_steps))
        weights = {b: str(r.weights) for b, r in zip(bases, run_experiments(
            list(bases.values()), **study.run_kwargs))}
        exps = [replace(e, init=weights[parse_name(e.model).backbone]) for e in exps]
    return run_experiments(exps, **study.run_kwargs)


def run_experiments(experiments: list[Experiment], **kwargs: Any) -> list[ExperimentResult]:
    """:func:`run_experiment` for each (options as there), with a progress bar over runs."""
    from tqdm.auto import tqdm

    out = []
    bar = tqdm(experiments, desc="experiments", unit="run", disable=not kwargs.get("progress", True))
    for exp in bar:
        bar.set_postfix_str(exp.model)
        out.append(run_experiment(exp, **kwargs))
    return out

"""Run-once-and-reuse for study experiments: each result is stored under the cache folder by
its experiment key, with a lock so two processes never train the same run twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from sedlib.config import AudioConfig
from sedlib.errors import SedlibError
from sedlib.locking import file_lock
from sedlib.models.names import parse_name
from sedlib.study.config import StudyConfig
from sedlib.study.experiments import (
    CACHE_VERSION,
    PROFILES,
    RESULT,
    RUN,
    Experiment,
    ExperimentResult,
    make_experiment,
    pretraining_experiment,
)
from sedlib.study.results_log import log_result_row
from sedlib.study.training import open_data, train_and_evaluate
from sedlib.study.workers import in_processes
from sedlib.train.config import DistillConfig, TrainConfig

log = logging.getLogger(__name__)


def _profile(exp: Experiment, num_classes: int, cache_dir: Path, *, device: str, batch_size: int,
             repeats: int, warmup: int, dtype: str) -> dict[str, Any]:
    """Params, MACs (sedlib's counter, one 10 s clip) and throughput of ``exp``'s network (its
    model, or its :attr:`~Experiment.variant`'s), cached per settings and thread count."""
    import torch

    from sedlib.complexity.profile import profile_model
    from sedlib.study.stride import build_model, variant_strides
    from sedlib.train import runs

    ident = {"model": exp.model, "num_classes": num_classes, "device": device, "batch": batch_size,
             "repeats": repeats, "warmup": warmup, "dtype": dtype,
             "threads": torch.get_num_threads(),
             "version": CACHE_VERSION}
    name = re.sub(r'[^A-Za-z0-9]+', '_', exp.model)
    if exp.variant is not None:  # the clip-wise profiles' names and keys as they were stored
        ident["clipwise_strides"], name = list(variant_strides(exp.variant)), "clipwise"
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / PROFILES / f"{name}-{digest}.json"
    if path.is_file():
        return json.loads(path.read_text())
    model = exp.model if exp.variant is None else build_model(exp.model, num_classes, exp.variant)
    prof = profile_model(model, num_classes=num_classes, device=device, dtype=dtype,
                         batch_size=batch_size, repeats=repeats, warmup=warmup, deepspeed=False)
    out = {**prof.to_dict(), "num_classes": num_classes}
    runs.write_json(path, out)
    return out


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
                   num_threads: int | None = None, executor: str = "local",
                   slurm: Mapping[str, Any] | None = None) -> ExperimentResult:
    """Train and evaluate ``exp`` unless ``<cache_dir>/<key>/result.json`` exists (then return
    it, ``cached=True``). Throughput is measured on ``device`` with 10 s clips at
    ``throughput_batch_size`` (median of ``throughput_repeats`` batches) in ``throughput_dtype``
    (None: fp16 on CUDA as the paper, fp32 on CPU). ``num_threads``: torch
    CPU threads while this runs (restored after; None: unchanged). ``executor="slurm"``: as a
    SLURM job (:func:`run_experiments`)."""
    if executor != "local":
        return run_experiments([exp], cache_dir=cache_dir, device=device, progress=progress,
                               throughput_batch_size=throughput_batch_size,
                               throughput_repeats=throughput_repeats,
                               throughput_warmup=throughput_warmup, throughput_dtype=throughput_dtype,
                               num_threads=num_threads, executor=executor, slurm=slurm)[0]
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
    if result is not None:  # None: a DDP rank other than 0 (rank 0 logs the run)
        log_result_row(result.record)
    return result


def _run(exp: Experiment, cache: Path, *, device: str, progress: bool,
         profile: dict[str, int]) -> ExperimentResult | None:
    """``exp``'s cached result, else trained once under the cache's lock (:func:`_train`)."""
    result = load_result(exp, cache)
    if result is not None:
        return result
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a DDP rank: the ranks train together, no lock
        return _train(exp, cache, device=device, progress=progress, profile=profile)
    with file_lock(cache / f".{exp.key}.lock"):
        result = load_result(exp, cache)  # another process may have finished it
        return _train(exp, cache, device=device, progress=progress, profile=profile) if result is None else result


def _train(exp: Experiment, cache: Path, *, device: str, progress: bool,
           profile: dict[str, int]) -> ExperimentResult | None:
    """Train and evaluate ``exp`` into ``cache/<key>``, profile it, write ``result.json``. In a
    DDP run (a SLURM job with several tasks, each a rank, as torchrun starts them) every rank
    trains (``fit`` joins the process group from RANK / WORLD_SIZE); rank 0 alone evaluates,
    profiles and writes, and returns the result (the others: None)."""
    from sedlib.train import runs

    rank = int(os.environ.get("RANK", "0"))
    folder = cache / exp.key
    log.info("training %s (%s)", exp.model if exp.variant is None else f"{exp.model} {exp.variant}", exp.key)
    run, metrics, train_s, eval_s, k = train_and_evaluate(exp, folder, device=device, progress=progress and not rank)
    if rank:
        return None
    prof = _profile(exp, k, cache, device=device, **profile)
    result = ExperimentResult(exp, exp.key, metrics, prof, folder / RUN, Path(run.weights), False, train_s, eval_s)
    runs.write_json(folder / RESULT, result.to_dict())
    return result


def run_models(models: list[str], study: StudyConfig, train: TrainConfig,
               distill: DistillConfig | None = None, audio: AudioConfig | None = None,
               seeds: Sequence[int] | None = None, **changes: Any) -> list[ExperimentResult]:
    """Train (or fetch from the cache) and evaluate each model under a notebook's configs.

    ``seeds``: train every model once per seed (``train.seed`` replaced; results ordered seed
    by seed); None: ``study.seeds``, else ``train.seed`` only. Aggregate with
    :func:`sedlib.study.intervals.summarise_seeds`. ``study.parallel_runs`` runs train side by
    side (:func:`run_experiments`).

    ``study.pretrain_steps`` > 0: each distinct backbone first trains alone for that many steps
    (one cached run per backbone, shared by every notebook), and every model then starts from its
    weights (backbone transfer, :func:`sedlib.models.checkpoints.load_into`) for ``study.steps`` more
    steps -- with ``train.freeze_backbone`` only the sequence model and heads train, so the models
    of one backbone differ only in what sits on top of the same features.
    """
    seeds = study.seeds if seeds is None else seeds
    seeds = [train.seed] if seeds is None else [int(s) for s in seeds]
    exps = [make_experiment(m, study, replace(train, seed=seed), distill, audio, **changes)
            for seed in seeds for m in models]
    if study.pretrain_steps:
        bases: dict[str, Experiment] = {}
        for exp in exps:
            bases.setdefault(parse_name(exp.model).backbone,
                             pretraining_experiment(exp, study.pretrain_steps))
        weights = {b: str(r.weights) for b, r in zip(bases, run_experiments(
            list(bases.values()), **study.run_kwargs))}
        exps = [replace(e, init=weights[parse_name(e.model).backbone]) for e in exps]
    return run_experiments(exps, parallel_runs=study.parallel_runs, **study.run_kwargs)


def run_over_seeds(experiments: Sequence[Experiment], study: StudyConfig) -> list[ExperimentResult]:
    """Each experiment once per ``study.seeds`` (its seed replaced; None: as given), all in one
    batch of :func:`run_experiments` (``study.parallel_runs`` side by side); seed-major order."""
    seeds = study.seeds or [None]
    exps = [e if s is None else replace(e, seed=int(s), train=replace(e.train, seed=int(s)))
            for s in seeds for e in experiments]
    return run_experiments(exps, parallel_runs=study.parallel_runs, **study.run_kwargs)


def run_experiments(experiments: list[Experiment], *, parallel_runs: int = 1, executor: str = "local",
                    slurm: Mapping[str, Any] | None = None, **kwargs: Any) -> list[ExperimentResult]:
    """:func:`run_experiment` for each (options as there), with a progress bar over runs.

    ``executor="slurm"``: each uncached run is one SLURM job (``slurm``: the job settings,
    :attr:`StudyConfig.slurm_settings`; :mod:`sedlib.study.slurm`), this call waits for them;
    results, keys and the cache are the local executor's.

    ``parallel_runs`` > 1 trains that many uncached runs at once, each in its own process with
    ``num_threads`` threads (one each on a 2-core machine: a small model's step does not use two
    cores well, two runs do). Data caches and throughput profiles are made here first, one at a
    time, so the runs never race for them and throughput is timed on an idle machine. Results
    equal the one-at-a-time ones (same seeds, same thread count); the order is ``experiments``'."""
    from sedlib.progress import tqdm

    cache = Path(kwargs.get("cache_dir", "runs/cache"))
    if executor not in ("local", "slurm"):
        raise SedlibError(f"executor {executor!r}: expected local or slurm")
    if executor == "slurm":
        return _run_on_slurm(experiments, slurm or {}, kwargs)
    todo = [i for i, e in enumerate(experiments) if load_result(e, cache) is None]
    if parallel_runs <= 1 or len(todo) < 2:
        out = []
        bar = tqdm(experiments, desc="experiments", unit="run", disable=not kwargs.get("progress", True))
        for exp in bar:
            bar.set_postfix_str(exp.model)
            out.append(run_experiment(exp, **kwargs))
        return out
    cost = {i: prepare_experiment(experiments[i], **kwargs) for i in todo}
    todo.sort(key=lambda i: -cost[i])  # longest first: less time with one worker idle at the end
    return in_processes(run_experiment, experiments, parallel_runs, kwargs, todo=todo)


def _run_on_slurm(experiments: list[Experiment], settings: Mapping[str, Any],
                  kwargs: Mapping[str, Any]) -> list[ExperimentResult]:
    """The uncached ``experiments`` as SLURM jobs; every result then logged in their order."""
    from sedlib.study.slurm import run_as_slurm_jobs

    cache = Path(kwargs.get("cache_dir", "runs/cache"))
    trained = run_as_slurm_jobs(run_experiment, experiments, [e.key for e in experiments], kwargs,
                                settings, finished=lambda i: load_result(experiments[i], cache) is not None,
                                desc="experiments (SLURM)")
    out = []
    for i, exp in enumerate(experiments):
        if i in trained:
            log_result_row(trained[i].record)
            out.append(trained[i])
        else:  # cached, or trained by another study's job: read here (and logged)
            out.append(run_experiment(exp, **kwargs))
    return out


def prepare_experiment(exp: Experiment, *, cache_dir: str | os.PathLike = "runs/cache",
                       device: str = "cpu", throughput_batch_size: int = 8,
                       throughput_repeats: int = 3, throughput_warmup: int = 1,
                       throughput_dtype: str | None = None, num_threads: int | None = None,
                       **_: Any) -> float:
    """Build ``exp``'s data caches (:func:`sedlib.study.training.open_data`) and its cached
    throughput profile, as :func:`run_experiment` would on its way (same thread count), so that
    runs started in parallel afterwards find both made. Returns a relative cost estimate for
    scheduling, in MACs: 3 forwards per training clip (twice the clips with a teacher-only set)
    plus one per clip of the last data set opened (the eval set)."""
    import torch

    from sedlib.train.data import dataset_vocab

    specs = [(exp.train_data, "train", exp.audio), (exp.val_data, "validation", exp.audio),
             (exp.weak_data, "train", exp.audio)]
    if exp.evaluation != (exp.val_data, "validation", exp.audio):  # else: the validation clips
        specs.append(exp.evaluation)
    sources = [open_data(spec, split, audio) for spec, split, audio in specs if spec is not None]
    k = len(dataset_vocab(sources[0], "training"))
    before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        prof = _profile(exp, k, Path(cache_dir), device=device,
                        batch_size=throughput_batch_size, repeats=throughput_repeats,
                        warmup=throughput_warmup,
                        dtype=throughput_dtype or ("fp16" if str(device).startswith("cuda") else "fp32"))
    finally:
        torch.set_num_threads(before)
    steps = exp.steps or exp.train.total_steps()
    # forward + backward ~ 3 forwards per training clip; evaluation ~ one forward per eval clip
    train_clips = exp.train.batch_size * steps * (2 if exp.weak_data else 1)
    return float(prof["macs"]) * (3 * train_clips + len(sources[-1]))

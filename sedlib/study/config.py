"""Study-level configuration and the flat-parameters -> configs mapping of the notebooks.

A notebook's ``parameters`` cell holds literals only; every name is a field of one of
:data:`PARAMETER_CONFIGS` (:class:`StudyConfig`, ``TrainConfig``, ``DistillConfig``,
``AudioConfig``; names unique across all sedlib configs) or a notebook-only name listed in
:data:`NOTEBOOK_PARAMETERS` (grids of model names and the like).
:func:`configs_from_parameters` builds the frozen configs and rejects unknown names;
``tests/test_notebooks.py`` checks every notebook's parameters cell against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from sedlib.config import AudioConfig, project_path
from sedlib.train.config import DISTILL_PRESETS, PRESETS, DistillConfig, TrainConfig

#: Where a study's uncached runs train (StudyConfig.executor).
EXECUTORS = ("local", "slurm")
#: Parameters the runner sets itself (paths of this study run).
RUNNER_PARAMETERS = ("run_dir", "figures_dir", "cache_dir")


@dataclass(frozen=True)
class StudyConfig:
    """Study-level parameters of a notebook (field names unique across every sedlib config).
    Defaults are the ``quick`` profile's; ``run_dir``, ``figures_dir`` and ``cache_dir`` are set
    by ``sedlib study``. Relative paths are relative to the project root
    (:func:`sedlib.config.project_path`), never to the working directory."""

    profile: str = "quick"  # label only: which notebooks/<profile>.yaml the values came from
    train_preset: str = "quick"  # base TrainConfig: sedlib.train.config.PRESETS[train_preset]
    distill_preset: str = "none"  # base DistillConfig: DISTILL_PRESETS[distill_preset]
    train_data: str = "synth:4000"  # data specs (sedlib.data.sources grammar)
    val_data: str | None = None  # validated during training (val_history); None: off
    eval_data: str = "synth:100"  # the reported metrics
    eval_clip_seconds: float | None = None  # eval clips of this length (None: AudioConfig.clip_seconds)
    weak_data: str | None = None  # teacher-only set for weak-set distillation
    steps: int | None = 64  # optimiser steps per run (None: TrainConfig's n_epochs x epoch_len)
    val_every: int | None = None  # validate every N steps (None: per TrainConfig epochs + end)
    cache_dir: str = "runs/cache"
    run_dir: str = "runs/notebooks"  # this notebook's own outputs (tables); set by sedlib study
    # Where figures and tables go. None: <run_dir>/figures, so an interactive run never touches
    # the committed figures/; `sedlib study` sets it to figures/ (or --figures).
    figures_dir: str | None = None
    png: bool = True  # also write PNG figures (needs kaleido + Chromium)
    device: str = "cpu"
    num_threads: int | None = None  # torch CPU threads (None: torch's default)
    progress: bool = True
    throughput_batch_size: int = 8
    throughput_repeats: int = 3
    throughput_warmup: int = 1
    throughput_dtype: str | None = None  # fp32 | fp16 | bf16; None: fp16 on CUDA, fp32 on CPU
    bn_recalibration_clips: int = 64  # Experiment.bn_recalibration_clips for every run
    seeds: tuple[int, ...] | None = None  # train every model once per seed (None: train.seed)
    parallel_runs: int = 1  # uncached runs trained side by side, one process each
    # Where uncached runs train: "local" (this machine, parallel_runs side by side) or "slurm"
    # (one SLURM job per run through submitit, sedlib.study.slurm; cache_dir must be a folder
    # the cluster's nodes share). The slurm_* fields are its per-run job settings.
    executor: str = "local"
    slurm_partition: str | None = None  # None: the cluster's default partition
    slurm_cpus: int = 1  # CPUs per run
    slurm_gpus: int = 0  # GPUs per run (the run trains on `device`, e.g. "cuda")
    # DDP processes per run inside its job, as torchrun starts them (None: one per GPU, else 1);
    # each process takes batch_size clips, so N processes train with N x the global batch
    slurm_processes: int | None = None
    slurm_mem_gb: float | None = None  # memory per run (None: the partition's default)
    slurm_time_min: int = 60  # time limit per run; a run past it is requeued and resumes
    slurm_max_jobs: int | None = None  # runs at once (the job array's parallelism; None: no limit)
    slurm_options: Any = None  # extra sbatch options, {"qos": "high", "account": "lab"} (--qos=high ...)
    pretrain_steps: int = 0  # > 0: each backbone first trains alone this long; models start from it
    # Weights every model starts from unless given another init: a file path in which
    # "{backbone}" becomes the model's backbone name (quick profile: the shipped
    # data/checkpoints/{backbone}_synth.safetensors); None: TrainConfig.pretrained decides.
    backbone_init: str | None = None

    def __post_init__(self) -> None:
        if self.train_preset not in PRESETS:
            raise ValueError(f"train_preset must be one of {list(PRESETS)}, got {self.train_preset!r}")
        if self.distill_preset not in DISTILL_PRESETS:
            raise ValueError(f"distill_preset must be one of {list(DISTILL_PRESETS)}, got "
                             f"{self.distill_preset!r}")
        if not isinstance(self.pretrain_steps, int) or self.pretrain_steps < 0:
            raise ValueError(f"StudyConfig: pretrain_steps must be an int >= 0, got "
                             f"{self.pretrain_steps!r}")
        for name in ("steps", "val_every", "throughput_batch_size", "throughput_repeats"):
            value = getattr(self, name)
            if (value is not None or name.startswith("throughput")) and (
                    not isinstance(value, int) or value <= 0):
                raise ValueError(f"StudyConfig: {name} must be a positive int, got {value!r}")
        if self.seeds is not None:
            seeds = tuple(self.seeds)
            if not seeds or any(not isinstance(v, int) or isinstance(v, bool) for v in seeds) \
                    or len(set(seeds)) != len(seeds):
                raise ValueError(f"StudyConfig: seeds must be distinct ints (or None), got {self.seeds!r}")
            object.__setattr__(self, "seeds", seeds)
        if not isinstance(self.parallel_runs, int) or self.parallel_runs < 1:
            raise ValueError(f"StudyConfig: parallel_runs must be an int >= 1, got {self.parallel_runs!r}")
        if self.backbone_init is not None and (not isinstance(self.backbone_init, str)
                                               or not self.backbone_init.strip()):
            raise ValueError(f"StudyConfig: backbone_init must be a path (with {{backbone}}) or "
                             f"None, got {self.backbone_init!r}")
        self._check_executor()
        if self.throughput_dtype not in (None, "fp32", "fp16", "bf16"):
            raise ValueError(f"StudyConfig: throughput_dtype must be fp32, fp16, bf16 or None, got "
                             f"{self.throughput_dtype!r}")

    def _check_executor(self) -> None:
        """Validate the executor fields; ``slurm_options`` becomes sorted (name, value) pairs."""
        if self.executor not in EXECUTORS:
            raise ValueError(f"StudyConfig: executor must be one of {list(EXECUTORS)}, got {self.executor!r}")
        for name, low in (("slurm_cpus", 1), ("slurm_gpus", 0), ("slurm_time_min", 1), ("slurm_max_jobs", 1),
                          ("slurm_processes", 1)):
            value = getattr(self, name)
            if (value is not None or name not in ("slurm_max_jobs", "slurm_processes")) and (
                    not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise ValueError(f"StudyConfig: {name} must be an int >= {low}, got {value!r}")
        if self.slurm_mem_gb is not None and (isinstance(self.slurm_mem_gb, bool) or not isinstance(
                self.slurm_mem_gb, (int, float)) or self.slurm_mem_gb <= 0):
            raise ValueError(f"StudyConfig: slurm_mem_gb must be a positive number or None, got "
                             f"{self.slurm_mem_gb!r}")
        if self.slurm_partition is not None and (not isinstance(self.slurm_partition, str)
                                                 or not self.slurm_partition.strip()):
            raise ValueError(f"StudyConfig: slurm_partition must be a name or None, got {self.slurm_partition!r}")
        options = self.slurm_options
        if options is None:
            return
        pairs = options.items() if isinstance(options, Mapping) else options
        try:
            pairs = tuple(sorted((str(k), v) for k, v in pairs))
        except (TypeError, ValueError):
            raise ValueError(f"StudyConfig: slurm_options must map sbatch option names to values, "
                             f"got {options!r}") from None
        for k, v in pairs:
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", k) or not isinstance(v, (str, int, float, bool)):
                raise ValueError(f"StudyConfig: slurm_options: {k!r}: {v!r} is not an sbatch option "
                                 f"(a long option name without dashes, e.g. qos, and a plain value)")
        object.__setattr__(self, "slurm_options", pairs)

    @property
    def slurm_settings(self) -> dict[str, Any]:
        """The executor's job settings (:func:`sedlib.study.slurm.make_executor`)."""
        return {"partition": self.slurm_partition, "cpus": self.slurm_cpus, "gpus": self.slurm_gpus,
                "processes": self.slurm_processes or max(1, self.slurm_gpus), "mem_gb": self.slurm_mem_gb,
                "time_min": self.slurm_time_min,
                "max_jobs": self.slurm_max_jobs, "options": dict(self.slurm_options or ())}

    def backbone_init_for(self, model: str) -> str | None:
        """:attr:`backbone_init` for ``model`` ({backbone} filled in); raises SedlibError when
        the file does not exist, naming the ones that do."""
        if self.backbone_init is None:
            return None
        from sedlib.config import project_path
        from sedlib.errors import SedlibError
        from sedlib.models.names import parse_name

        backbone = parse_name(model).backbone
        path = project_path(self.backbone_init.replace("{backbone}", backbone))
        if not path.is_file():
            pattern = project_path(self.backbone_init.replace("{backbone}", "*"))
            have = sorted(p.name for p in pattern.parent.glob(pattern.name))
            raise SedlibError(f"backbone_init {self.backbone_init!r}: no {path} for {model} "
                              f"(backbone {backbone}); found: {have or 'none'}. Make one with "
                              f"scripts/make_synth_backbones.py {backbone}, or set backbone_init "
                              f"to None")
        return str(path)

    def eval_audio(self, audio: AudioConfig) -> AudioConfig:
        """``audio`` at :attr:`eval_clip_seconds` (the eval clips' settings; unchanged if None)."""
        return audio if self.eval_clip_seconds is None else replace(audio, clip_seconds=self.eval_clip_seconds)

    @property
    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`run_experiment` this study sets."""
        return {"cache_dir": self.cache_dir, "device": self.device, "progress": self.progress,
                "throughput_batch_size": self.throughput_batch_size,
                "throughput_repeats": self.throughput_repeats,
                "throughput_warmup": self.throughput_warmup,
                "throughput_dtype": self.throughput_dtype, "num_threads": self.num_threads,
                # only when not local: the local executor's calls stay exactly as they were
                **({} if self.executor == "local" else
                   {"executor": self.executor, "slurm": self.slurm_settings})}


#: The dataclasses a flat parameters dict is split into, in this order.
PARAMETER_CONFIGS = (StudyConfig, TrainConfig, DistillConfig, AudioConfig)
#: Notebook parameters that feed no config (grids of model names and the like). A notebook's
#: parameters cell may only hold these and config field names (tests/test_notebooks.py).
NOTEBOOK_PARAMETERS: tuple[str, ...] = (
    "models",  # explicit model names
    "base_backbone",  # 02: the backbone all sequence models sit on (paper: fmn10)
    "seq_models",  # 02: sequence models compared
    "seq_dims",  # 02: their hidden dims (paper: 128, 256, 512, 1024)
    "wide_backbone",  # 02: the doubled-width backbone alone (paper: fmn20)
    "backbones",  # 03: the widths scaled (paper: fmn04 .. fmn30)
    "scaled_seq_models",  # 03: sequence models scaled with the backbone (paper: TF, HYBRID, BiGRU)
    "reference_checkpoint",  # 00: a longer-trained model whose detections are shown beside
    "student", "teacher", "kd_weights", "listen_clips", "listen_model",
    "detection_threshold", "stride_models",
    "curve_steps",  # 02: step budgets of the learning curve (the profile's `steps` among them)
    "median_sweep_data",  # 02: validation clips for the median-filter window sweep (None: no sweep)
    "freeze_options",  # 04: backbone frozen (True) and/or fine-tuned (False) rows of Table I
    "longer_training",  # 05: also the paper's "2x training" row (continues each + weak run)
    "own_init",  # 07: the checkpoint fine-tuned on the real recordings' classes
    "own_model",  # 07: the model the from-scratch baseline builds
    "own_clips",  # 07: soundscapes mixed for training, validation and evaluation
)


def parameter_names() -> dict[str, type]:
    """Every name a parameters dict may hold -> the config class it feeds (None: notebook-only)."""
    names: dict[str, Any] = {}
    for cls in PARAMETER_CONFIGS:
        for f in fields(cls):
            if f.name in names:
                raise TypeError(f"config field {f.name!r} of {cls.__name__} also in "
                                f"{names[f.name].__name__}: field names must be unique")
            names[f.name] = cls
    for name in NOTEBOOK_PARAMETERS:
        names.setdefault(name, None)
    return names


def parameters_from(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``namespace`` (a notebook's ``globals()``) that are parameter names."""
    known = parameter_names()
    return {k: v for k, v in namespace.items() if k in known}


def check_overrides(common: Mapping[str, Any], overrides: Mapping[str, Any], *, where: str
                    ) -> StudyConfig:
    """The StudyConfig of a profile's ``common`` section with ``overrides`` (StudyConfig fields,
    e.g. the command line's executor settings) in place; a bad name or value is one
    SedlibError line naming ``where``."""
    from sedlib.errors import SedlibError

    names = {f.name for f in fields(StudyConfig)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise SedlibError(f"{where}: unknown study setting(s) {bad}; expected StudyConfig fields")
    merged = {k: v for k, v in {**common, **overrides}.items() if k in names}
    if merged.get("seeds") is not None:
        merged["seeds"] = tuple(merged["seeds"])
    try:
        return StudyConfig(**merged)
    except (TypeError, ValueError) as err:
        raise SedlibError(f"{where} with {dict(overrides)}: {err}") from None


def configs_from_parameters(params: Mapping[str, Any]
                            ) -> tuple[StudyConfig, TrainConfig, DistillConfig, AudioConfig]:
    """Split a flat parameters dict onto (StudyConfig, TrainConfig, DistillConfig, AudioConfig).

    TrainConfig starts from ``PRESETS[train_preset]``, DistillConfig from
    ``DISTILL_PRESETS[distill_preset]``; given fields replace the preset's. Notebook-only names
    (:data:`NOTEBOOK_PARAMETERS`) are accepted and ignored; any other name raises ValueError.
    """
    known = parameter_names()
    unknown = sorted(k for k in params if k not in known)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; valid: fields of "
                         f"{', '.join(c.__name__ for c in PARAMETER_CONFIGS)} or notebook-only "
                         f"names {list(NOTEBOOK_PARAMETERS)}")
    per: dict[type, dict[str, Any]] = {cls: {} for cls in PARAMETER_CONFIGS}
    for name, value in params.items():
        if known[name] is not None:
            per[known[name]][name] = list(value) if isinstance(value, tuple) else value
    if per[StudyConfig].get("seeds") is not None:
        per[StudyConfig]["seeds"] = tuple(per[StudyConfig]["seeds"])
    study = StudyConfig(**per[StudyConfig])
    for name in ("adam_betas", "teachers"):  # YAML / papermill give lists
        for cls in (TrainConfig, DistillConfig):
            if name in per[cls]:
                per[cls][name] = tuple(per[cls][name])
    train = replace(PRESETS[study.train_preset], **per[TrainConfig])
    distill = replace(DISTILL_PRESETS[study.distill_preset], **per[DistillConfig])
    for name in ("pseudo_labels", "weak_pseudo_labels"):  # files: keyed by content, not path
        if getattr(distill, name) is not None:
            distill = replace(distill, **{name: str(project_path(getattr(distill, name)))})
    audio = AudioConfig(**per[AudioConfig])
    return study, train, distill, audio

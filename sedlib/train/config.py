"""Training and distillation configuration (SPEC 5), to be merged into :mod:`sedlib.config`.

Frozen dataclasses with field names unique across every sedlib config (a notebook's flat
``parameters`` cell maps onto them 1:1). Defaults are the paper-scale recipe: the reference's
``ex_audioset_strong.py`` CLI defaults with the README runs' ``max_lr`` 3e-3 and the paper's
5000 warmup steps. :data:`PRESETS` holds named variants: ``paper``, ``reference`` (the 20,000
warmup steps the reference code effectively uses), ``quick`` (CPU, minutes, embedded data) and
``smoke`` (seconds, for tests and notebook smoke runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from sedlib.train.optim import (
    PAPER_WARMUP_STEPS,
    REFERENCE_WARMUP_STEPS,
    SCHEDULES,
    make_optimizer,
    make_scheduler,
    param_groups,
)

PRETRAINED = ("scratch", "weak", "strong", "advanced-kd-weak-strong")
PRECISIONS = ("32", "16-mixed", "bf16-mixed")


def _need(ok: bool, what: str, cls: str) -> None:
    if not ok:
        raise ValueError(f"{cls}: {what}")


@dataclass(frozen=True)
class TrainConfig:
    """One AudioSet-Strong style training run (SPEC 5). Steps are optimiser steps."""

    # data and batches
    batch_size: int = 64  # per device and forward pass
    accumulate_grad_batches: int = 4  # effective 256 (README: 128 x 2 fmn04/06, 32 x 8 fmn20/30)
    n_epochs: int = 120
    epoch_len: int = 100_000  # samples drawn per epoch (without replacement)
    balanced_sampler: bool = False  # reference --use_balanced_sampler (off in the paper runs)
    num_workers: int = 16
    precision: str = "16-mixed"  # reference --precision 16 (mixed)
    pretrained: str = "weak"  # backbone initialisation: fmnXX_weak.pt
    seed: int = 0
    # optimiser and schedule
    max_lr: float = 3e-3  # backbone top block (README runs; CLI default 8e-4)
    seq_lr: float | None = None  # sequence model + heads; None: max_lr
    lr_decay: float = 0.9  # layer-wise, per backbone block; 0 = off (reference convention)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0  # > 0 switches to AdamW (off in the paper)
    schedule: str = "cos"  # cos | linear | exp (sedlib.train.optim.SCHEDULES)
    warmup_steps: int = PAPER_WARMUP_STEPS  # paper 5000; the reference code uses 20,000
    lr_end: float = 2e-7  # only the "linear" schedule uses it
    lr_gamma: float = 0.999996  # only the "exp" schedule uses it
    freeze_backbone: bool = False
    # augmentation
    wavmix_p: float = 0.5
    wavmix_alpha: float = 2.0
    frame_shift_range: float = 0.125  # sigma as a fraction of the mel frames (125 of 1000)
    mixup_p: float = 0.3
    mixup_alpha: float = 0.2
    # validation
    check_val_every_n_epoch: int = 5
    median_window: int = 9

    def __post_init__(self) -> None:
        c = "TrainConfig"
        for name in ("batch_size", "accumulate_grad_batches", "n_epochs", "epoch_len",
                     "check_val_every_n_epoch", "median_window"):
            value = getattr(self, name)
            _need(isinstance(value, int) and value > 0,
                  f"{name} must be a positive int, got {value!r}", c)
        _need(self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}", c)
        _need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got "
                                            f"{self.precision!r}", c)
        _need(self.pretrained in PRETRAINED, f"pretrained must be one of {PRETRAINED}, got "
                                             f"{self.pretrained!r}", c)
        _need(self.max_lr > 0, f"max_lr must be > 0, got {self.max_lr}", c)
        _need(self.seq_lr is None or self.seq_lr > 0,
              f"seq_lr must be > 0 or None, got {self.seq_lr}", c)
        _need(0.0 <= self.lr_decay <= 1.0, f"lr_decay must be in [0, 1], got {self.lr_decay}", c)
        _need(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
              f"adam_betas must be two values in [0, 1), got {self.adam_betas}", c)
        # a JSON round trip gives a list: store a tuple
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        _need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}", c)
        _need(self.schedule in SCHEDULES, f"schedule must be one of {list(SCHEDULES)}, got "
                                          f"{self.schedule!r}", c)
        _need(isinstance(self.warmup_steps, int) and self.warmup_steps >= 0,
              f"warmup_steps must be an int >= 0, got {self.warmup_steps!r}", c)
        _need(self.schedule == "exp" or self.warmup_steps < self.total_steps(),
              f"warmup_steps ({self.warmup_steps}) must be below the total optimiser steps "
              f"({self.total_steps()})", c)
        for name in ("wavmix_p", "mixup_p"):
            value = getattr(self, name)
            _need(0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}", c)
        for name in ("wavmix_alpha", "mixup_alpha"):
            value = getattr(self, name)
            _need(value > 0, f"{name} must be > 0, got {value}", c)
        _need(0.0 <= self.frame_shift_range <= 1.0,
              f"frame_shift_range must be in [0, 1], got {self.frame_shift_range}", c)

    @property
    def effective_batch_size(self) -> int:
        """Samples per optimiser step on one device (multiply by the world size for DDP)."""
        return self.batch_size * self.accumulate_grad_batches

    @property
    def effective_seq_lr(self) -> float:
        return self.max_lr if self.seq_lr is None else self.seq_lr

    def batches_per_epoch(self, world_size: int = 1) -> int:
        """Forward passes per device and epoch: the epoch's samples split over the devices
        (``DistributedSampler``, padded), last batch partial."""
        return math.ceil(math.ceil(self.epoch_len / world_size) / self.batch_size)

    def steps_per_epoch(self, world_size: int = 1) -> int:
        """Optimiser steps per epoch; a partial accumulation at the end of an epoch still makes
        a step (Lightning's behaviour): ceil(batches / accumulate_grad_batches)."""
        return math.ceil(self.batches_per_epoch(world_size) / self.accumulate_grad_batches)

    def total_steps(self, world_size: int = 1) -> int:
        """Optimiser steps of the run (Lightning's ``estimated_stepping_batches``, which the
        reference passes to the schedule): 391 x 120 = 46,920 for the paper setting."""
        return self.steps_per_epoch(world_size) * self.n_epochs


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation (SPEC 5): loss = (1 - kd_weight) * BCE(hard) + kd_weight *
    BCE(teacher probabilities). ``kd_weight > 0`` needs ``pseudo_labels`` (the training loop
    raises otherwise; :func:`sedlib.train.kd.kd_loss` does too)."""

    kd_weight: float = 0.9  # paper runs (reference CLI default 0.0)
    pseudo_labels: str | None = None  # HDF5 store for the strong set (Zenodo 14626113 layout)
    weak_pseudo_labels: str | None = None  # store for an AudioSet-Weak style set (advanced KD)
    kd_weak_fraction: float = 0.5  # share of the KD term from weak-set batches (advanced KD)
    weak_mixup_p: float = 1.0  # advanced KD: mixup on weak-set batches
    weak_mixup_alpha: float = 0.3
    teachers: tuple[str, ...] = ()  # model names / checkpoints to make pseudo labels with
    pseudo_label_batch_size: int = 32

    def __post_init__(self) -> None:
        c = "DistillConfig"
        _need(0.0 <= self.kd_weight <= 1.0, f"kd_weight must be in [0, 1], got {self.kd_weight}", c)
        _need(0.0 <= self.kd_weak_fraction <= 1.0,
              f"kd_weak_fraction must be in [0, 1], got {self.kd_weak_fraction}", c)
        _need(0.0 <= self.weak_mixup_p <= 1.0,
              f"weak_mixup_p must be in [0, 1], got {self.weak_mixup_p}", c)
        _need(self.weak_mixup_alpha > 0,
              f"weak_mixup_alpha must be > 0, got {self.weak_mixup_alpha}", c)
        _need(self.pseudo_label_batch_size > 0,
              f"pseudo_label_batch_size must be > 0, got {self.pseudo_label_batch_size}", c)
        object.__setattr__(self, "teachers", tuple(self.teachers))  # JSON list

    @property
    def uses_weak_set(self) -> bool:
        return self.weak_pseudo_labels is not None and self.kd_weak_fraction > 0


_PAPER = TrainConfig()

#: Named training configurations. ``paper``: the paper's recipe (warmup 5000). ``reference``:
#: what the reference code runs (warmup 20,000, the transformers default it falls back to).
#: ``quick``: CPU-sized run on the embedded synthetic data (10 epochs of 1024 clips).
#: ``smoke``: a few steps, for tests and ``notebooks/smoke.yaml``.
PRESETS: dict[str, TrainConfig] = {
    "paper": _PAPER,
    "reference": replace(_PAPER, warmup_steps=REFERENCE_WARMUP_STEPS),
    "quick": replace(_PAPER, batch_size=16, accumulate_grad_batches=1, n_epochs=10,
                     epoch_len=1024, num_workers=2, precision="32", warmup_steps=64,
                     check_val_every_n_epoch=1),
    "smoke": replace(_PAPER, batch_size=4, accumulate_grad_batches=1, n_epochs=1, epoch_len=16,
                     num_workers=0, precision="32", warmup_steps=1, check_val_every_n_epoch=1,
                     pretrained="scratch"),  # offline: no checkpoint download
}

#: ``none``: plain BCE; ``paper``: KD with weight 0.9 (set ``pseudo_labels``).
DISTILL_PRESETS: dict[str, DistillConfig] = {
    "none": DistillConfig(kd_weight=0.0),
    "paper": DistillConfig(),
}


def optimizer_from_config(model: nn.Module, config: "TrainConfig") -> torch.optim.Optimizer:
    """Parameter groups + Adam exactly as ``config`` says (freezes the backbone if asked)."""
    groups = param_groups(model, max_lr=config.max_lr, seq_lr=config.seq_lr,
                          lr_decay=config.lr_decay, freeze_backbone=config.freeze_backbone)
    return make_optimizer(groups, lr=config.max_lr, betas=config.adam_betas,
                          weight_decay=config.weight_decay)


def scheduler_from_config(optimizer: torch.optim.Optimizer, config: "TrainConfig",
                          world_size: int = 1) -> torch.optim.lr_scheduler.LambdaLR:
    """The config's schedule over ``config.total_steps(world_size)`` optimiser steps."""
    return make_scheduler(optimizer, total_steps=config.total_steps(world_size),
                          warmup_steps=config.warmup_steps, schedule=config.schedule,
                          lr_end=config.lr_end, gamma=config.lr_gamma)

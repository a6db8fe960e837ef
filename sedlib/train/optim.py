"""Optimiser and learning-rate schedule of the reference recipe (SPEC 5).

* :func:`param_groups`: layer-wise LR decay over the fmn backbone as the reference
  ``MobileNetV3.layerwise_lr_decay`` (``models/efficient_cnns/fmn/model.py``): parameters are
  grouped by ``features.<i>`` (17 blocks); the top block ``features.16`` gets ``max_lr`` and each
  block below gets the previous block's LR times ``lr_decay`` (stem ``features.0``:
  ``max_lr * 0.9**16``). The products are formed in the same order as the reference, so the LRs
  are bit-identical to it. Sequence model and heads get ``seq_lr`` (no decay).
* :func:`make_optimizer`: Adam, betas (0.9, 0.999), no weight decay (reference default).
* :func:`make_scheduler`: ``transformers.get_cosine_schedule_with_warmup`` re-implemented as a
  ``LambdaLR`` (stepped once per optimiser step), plus the reference's other two modes
  (``linear``: polynomial decay to ``lr_end``; ``exp``: ``gamma ** step``).

The reference's cosine schedule ignores ``--warmup_steps`` and always uses 20,000 warmup steps
(SPEC 5); the paper says 5000. Both are a ``warmup_steps`` value here
(:data:`PAPER_WARMUP_STEPS`, :data:`REFERENCE_WARMUP_STEPS`). ``lr_end`` only affects
``linear``: the cosine schedule decays to 0, as in the reference.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

PAPER_WARMUP_STEPS = 5_000
REFERENCE_WARMUP_STEPS = 20_000  # transformers default the reference falls back to
BACKBONE_PREFIX = "model."  # SEDModel: model.fmn.features.<i>...
SEQ_GROUP = "seq+heads"
_BLOCK_RE = re.compile(r"^model\.fmn\.(features\.\d+)\.")


# --- parameter groups ----------------------------------------------------------------------------

def backbone_block(name: str) -> str | None:
    """``"model.fmn.features.3.block.0.0.weight"`` -> ``"features.3"``; None outside the backbone.
    Raises for a backbone parameter outside ``features.<i>`` (it would get no LR)."""
    if not name.startswith(BACKBONE_PREFIX):
        return None
    m = _BLOCK_RE.match(name)
    if m is None:
        raise ValueError(f"backbone parameter {name!r} is not under model.fmn.features.<i>; "
                         f"layer-wise LR decay cannot place it")
    return m[1]


def block_lrs(model: nn.Module, max_lr: float, lr_decay: float = 0.9) -> dict[str, float]:
    """LR per backbone block, top (``features.16``) first, as the reference computes it: walking
    the backbone parameters in reverse order, the LR is multiplied by ``lr_decay`` each time the
    block changes. ``lr_decay`` 0 (the reference's "off") or 1 gives every block ``max_lr``."""
    if not 0.0 <= lr_decay <= 1.0:
        raise ValueError(f"lr_decay must be in [0, 1] (0 = off, as the reference), got {lr_decay}")
    blocks = [b for b in (backbone_block(n) for n, _ in model.named_parameters()) if b is not None]
    lrs: dict[str, float] = {}
    lr, prev = max_lr, None
    for block in reversed(blocks):
        if prev is not None and block != prev and lr_decay != 0.0:
            lr *= lr_decay
        if block in lrs and block != prev:
            raise ValueError(f"backbone block {block} has non-contiguous parameters")
        lrs[block] = lr
        prev = block
    return lrs


def freeze_backbone_params(model: nn.Module) -> int:
    """``requires_grad = False`` for every backbone parameter; returns how many were frozen.
    BatchNorm statistics are frozen separately, by :func:`set_train_mode`."""
    frozen = 0
    for name, p in model.named_parameters():
        if name.startswith(BACKBONE_PREFIX):
            p.requires_grad_(False)
            frozen += 1
    return frozen


def set_train_mode(model: nn.Module, *, freeze_backbone: bool = False) -> nn.Module:
    """``model.train()``; with a frozen backbone its BatchNorm layers stay in eval mode (running
    statistics are neither used from the batch nor updated), as the reference's frozen-backbone
    recipe (``ex_dcase2016task2.py`` calls ``.eval()`` on the backbone every training step).
    Call it wherever the loop would call ``model.train()``."""
    model.train()
    if freeze_backbone:
        model.model.eval()
    return model


def param_groups(model: nn.Module, *, max_lr: float, seq_lr: float | None = None,
                 lr_decay: float = 0.9, freeze_backbone: bool = False,
                 per_parameter: bool = False) -> list[dict[str, Any]]:
    """Optimiser parameter groups for a :class:`~sedlib.models.sed.SEDModel`.

    Backbone blocks (``features.16`` first) at :func:`block_lrs`, then one ``"seq+heads"`` group
    (sequence model, strong and weak heads) at ``seq_lr`` (None: ``max_lr``). Each group has a
    ``name`` key. ``per_parameter`` gives every parameter its own group (the reference's layout;
    the same LRs, as Adam is element-wise). ``freeze_backbone`` sets ``requires_grad = False``
    on the backbone (in place) and leaves it out. Parameters with ``requires_grad = False`` are
    never included (e.g. the rotary ``freqs`` of TF/ATT; the reference passes them but Adam
    skips them, having no gradient).
    """
    if max_lr <= 0:
        raise ValueError(f"max_lr must be positive, got {max_lr}")
    seq_lr = max_lr if seq_lr is None else seq_lr
    if freeze_backbone:
        freeze_backbone_params(model)
    lrs = block_lrs(model, max_lr, lr_decay)
    named: dict[str, list[tuple[str, nn.Parameter]]] = {b: [] for b in lrs}
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for name, p in reversed(params):  # backbone top down, as the reference walks it
        block = backbone_block(name)
        if block is not None:
            named[block].append((name, p))
    named[SEQ_GROUP] = [(n, p) for n, p in params if backbone_block(n) is None]
    groups: list[dict[str, Any]] = []
    for group, members in named.items():
        lr = seq_lr if group == SEQ_GROUP else lrs[group]
        if per_parameter:
            groups += [{"params": [p], "lr": lr, "name": n} for n, p in members]
        elif members:
            groups.append({"params": [p for _, p in members], "lr": lr, "name": group})
    if not groups:
        raise ValueError("no trainable parameters: every parameter has requires_grad=False")
    return groups


# --- optimiser -----------------------------------------------------------------------------------

def make_optimizer(groups: list[dict[str, Any]], *, lr: float | None = None,
                   betas: tuple[float, float] = (0.9, 0.999),
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam over ``groups`` (reference ``get_optimizer``: Adam, betas 0.9/0.999, no weight decay),
    torch's fused implementation where it applies (same update up to float rounding).

    ``lr`` is the optimiser's default LR (None: the largest group LR, i.e. ``max_lr``; only the
    ``linear`` schedule reads it). ``weight_decay > 0`` switches to AdamW with decay on >= 2-D
    tensors only (the reference's ``--adamw`` intent; off in the paper).
    """
    lr = max(g["lr"] for g in groups) if lr is None else lr
    fused = _can_fuse(groups)
    if weight_decay == 0:
        return torch.optim.Adam(groups, lr=lr, betas=betas, weight_decay=0.0, fused=fused)
    split: list[dict[str, Any]] = []
    for g in groups:
        for decay, params in ((weight_decay, [p for p in g["params"] if p.ndim >= 2]),
                              (0.0, [p for p in g["params"] if p.ndim < 2])):
            if params:
                split.append({**g, "params": params, "weight_decay": decay})
    return torch.optim.AdamW(split, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused)


def _can_fuse(groups: list[dict[str, Any]]) -> bool | None:
    """True (torch's fused Adam kernel: one pass over each tensor instead of a dozen ops,
    ~4 % of a small model's CPU step) when every parameter is a float32 CPU or CUDA tensor;
    else None (torch's default)."""
    params = [p for g in groups for p in g["params"]]
    ok = params and all(p.dtype == torch.float32 and p.device.type in ("cpu", "cuda")
                        for p in params)
    return True if ok else None


# --- schedules -----------------------------------------------------------------------------------

def _check_steps(warmup_steps: int, total_steps: int) -> None:
    if warmup_steps < 0 or total_steps <= warmup_steps:
        raise ValueError(f"need 0 <= warmup_steps < total_steps, got warmup {warmup_steps}, "
                         f"total {total_steps}")


@dataclass(frozen=True)
class CosineWithWarmup:
    """LR multiplier of ``transformers.get_cosine_schedule_with_warmup`` (num_cycles 0.5):
    step / warmup during warmup, then 0.5 * (1 + cos(pi * progress)), progress = (step - warmup)
    / (total - warmup). Past ``total_steps`` it rises again, exactly like transformers."""

    warmup_steps: int
    total_steps: int
    num_cycles: float = 0.5

    def __post_init__(self) -> None:
        _check_steps(self.warmup_steps, self.total_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return float(step) / float(max(1, self.warmup_steps))
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = float(step - self.warmup_steps) / float(decay_steps)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(self.num_cycles) * 2.0 * progress)))


@dataclass(frozen=True)
class PolynomialWithWarmup:
    """``transformers.get_polynomial_decay_schedule_with_warmup``: linear warmup, then
    (lr_init - lr_end) * remaining**power + lr_end, as a multiplier of ``lr_init`` (the
    optimiser's default LR); ``lr_end / lr_init`` after ``total_steps``."""

    warmup_steps: int
    total_steps: int
    lr_init: float
    lr_end: float = 2e-7
    power: float = 1.0

    def __post_init__(self) -> None:
        _check_steps(self.warmup_steps, self.total_steps)
        if not self.lr_init > self.lr_end:
            raise ValueError(f"lr_end ({self.lr_end}) must be smaller than the initial lr "
                             f"({self.lr_init})")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return float(step) / float(max(1, self.warmup_steps))
        if step > self.total_steps:
            return self.lr_end / self.lr_init
        remaining = 1 - (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return ((self.lr_init - self.lr_end) * remaining ** self.power + self.lr_end) / self.lr_init


@dataclass(frozen=True)
class Exponential:
    """``gamma ** step`` (the reference's ``exp`` mode, ``ExponentialLR``; no warmup)."""

    gamma: float = 0.999996

    def __call__(self, step: int) -> float:
        return self.gamma ** step


def _cos(opt, warmup_steps, total_steps, lr_end, gamma):
    return CosineWithWarmup(warmup_steps, total_steps)


def _linear(opt, warmup_steps, total_steps, lr_end, gamma):
    return PolynomialWithWarmup(warmup_steps, total_steps, opt.defaults["lr"], lr_end)


def _exp(opt, warmup_steps, total_steps, lr_end, gamma):
    return Exponential(gamma)


#: schedule name -> multiplier factory (reference ``get_lr_scheduler`` modes)
SCHEDULES: dict[str, Callable[..., Callable[[int], float]]] = {
    "cos": _cos, "cosine": _cos, "linear": _linear, "exp": _exp,
}


def make_scheduler(optimizer: torch.optim.Optimizer, *, total_steps: int,
                   warmup_steps: int = PAPER_WARMUP_STEPS, schedule: str = "cos",
                   lr_end: float = 2e-7, gamma: float = 0.999996
                   ) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` to be stepped after every optimiser step (not every batch when gradients
    are accumulated). The LR of optimiser step ``i`` (0-based) is ``group_lr * f(i)``; the very
    first step runs at LR 0 during warmup, as with transformers + Lightning. The multiplier
    objects are plain dataclasses, so ``state_dict()``/``load_state_dict()`` resume exactly."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    fn = SCHEDULES[schedule](optimizer, warmup_steps, total_steps, lr_end, gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)

"""Pieces of one training step: the student forward (one module call per step, so DDP sees one
forward) and the autocast / GradScaler choice per precision and device.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


class StudentForward(nn.Module):
    """Strong logits of each log-mel batch (separate forward passes: BatchNorm sees each batch
    alone, as in the reference). One module call per step, so DDP sees one forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *mels: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model(mel)[0] for mel in mels)  # (B, K, T) each


def autocast_setting(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, GradScaler on?) for a precision setting on a device."""
    if precision == "32":
        return None, False
    if precision == "bf16-mixed":
        return torch.bfloat16, False
    if device.type == "cuda":
        return torch.float16, True
    log.warning("precision %s needs CUDA; training in float32 on %s", precision, device)
    return None, False

"""Random-weight models whose outputs depend on their input, for tests and benchmarks that
compare two implementations of one model.

A freshly initialised fmn backbone (EfficientAT's initialisation, BatchNorm running statistics
at 0 / 1) shrinks its activations block by block: measured on fmn10 with random log-mel, the
mean |activation| falls from 0.13 after the stem to 7e-15 after the last block, so the logits
are the same constant for every input (their spread over a batch is 0.0 in float32). Two
engines then agree on a constant whatever they compute. :func:`with_live_activations` gives
every BatchNorm layer the statistics of its actual inputs on random log-mel ("precise BN" on
noise), which keeps the activations at unit scale: fmn10's logits then spread by ~0.25 over a
batch. Only the running statistics change; the weights stay as initialised.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def with_live_activations(model: nn.Module, *, batches: int = 2, batch_size: int = 8, frames: int = 300,
                          seed: int = 0) -> nn.Module:
    """Set the running statistics of every BatchNorm layer of ``model`` to the plain average over
    ``batches`` random log-mel batches ``(batch_size, 1, 128, frames)`` (fixed ``seed``; global
    RNGs untouched); returns ``model`` in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    gen = torch.Generator().manual_seed(seed)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.eval()
    for m in norms:
        m.train()
    try:
        for _ in range(batches):
            model(torch.randn(batch_size, 1, 128, frames, generator=gen))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return model.eval()

"""TCN: projection + residual stack of causal temporal conv nets (SPEC.md section 3, "TCN").

Classic Bai et al. (2018) TCN as the reference uses it. A TemporalBlock with dilation d:
    y = Drop(ReLU(Chomp(WN-Conv1d_k,d(x))));  y = Drop(ReLU(Chomp(WN-Conv1d_k,d(y))))
    out = ReLU(y + x)
Padding (k-1)d on both sides followed by chomping the last (k-1)d frames makes each conv causal:
frame t sees frames t-(k-1)d .. t. A TemporalConvNet stacks `blocks` blocks with d = 2^i, so its
receptive field is 1 + 2(k-1)(2^blocks - 1) frames (125 for k=3, 5 blocks).
The seq model is Linear(E, D) followed by x <- TCN_i(x) + x for i < layers.

Weight norm is the legacy `torch.nn.utils.weight_norm` (keys `weight_g`, `weight_v`), and each
conv is registered twice (`conv1`/`conv2` and `net.0`/`net.4`), exactly as the reference: every
conv appears twice in state_dict but its parameters are counted once.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn.utils import weight_norm

from sedlib.models.seq.common import ResidualStack, SequenceModel, projection

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU}


def _weight_normed_conv(dim: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    conv = nn.Conv1d(dim, dim, kernel_size, padding=(kernel_size - 1) * dilation, dilation=dilation)
    with warnings.catch_warnings():
        # the parametrizations version would rename the keys; the legacy one is deprecated only
        warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
        return weight_norm(conv)


class Chomp1d(nn.Module):
    """Drop the last `size` frames: (B, C, T + size) -> (B, C, T)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : x.shape[-1] - self.size].contiguous()  # (B, C, T)


class TemporalBlock(nn.Module):
    """Two causal dilated weight-normed convs with a residual; (B, D, T) -> (B, D, T)."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, dropout: float, act: type):
        super().__init__()
        padding = (kernel_size - 1) * dilation
        self.conv1 = _weight_normed_conv(dim, kernel_size, dilation)
        self.chomp1 = Chomp1d(padding)
        self.act1 = act()
        self.dropout1 = nn.Dropout(dropout)
        self.conv2 = _weight_normed_conv(dim, kernel_size, dilation)
        self.chomp2 = Chomp1d(padding)
        self.act2 = act()
        self.dropout2 = nn.Dropout(dropout)
        self.net = nn.Sequential(
            self.conv1, self.chomp1, self.act1, self.dropout1,
            self.conv2, self.chomp2, self.act2, self.dropout2,
        )  # fmt: skip
        self.act = act()
        # The reference's conv init N(0, 0.01). Legacy weight norm recomputes `weight` from g and v
        # on every forward, so this changes nothing; it is kept so that a seeded build draws the
        # same random numbers as the reference (identical initial state_dict).
        with torch.no_grad():
            self.conv1.weight.normal_(0, 0.01)
            self.conv2.weight.normal_(0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.net(x) + x)


class TemporalConvNet(nn.Module):
    """`blocks` TemporalBlocks with dilations 1, 2, 4, ...; (B, T, D) -> (B, T, D)."""

    def __init__(self, dim: int, blocks: int, kernel_size: int, dropout: float, act: type):
        super().__init__()
        self.network = nn.Sequential(
            *(TemporalBlock(dim, kernel_size, 2**i, dropout, act) for i in range(blocks))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)  # (B, D, T)
        return self.network(x).transpose(1, 2)  # (B, T, D)


def receptive_field(blocks: int = 5, kernel_size: int = 3) -> int:
    """Frames one TemporalConvNet sees (past and current): 1 + 2(k-1)(2^blocks - 1)."""
    return 1 + 2 * (kernel_size - 1) * (2**blocks - 1)


def build(
    in_dim: int,
    dim: int,
    *,
    layers: int = 2,
    blocks: int = 5,
    kernel_size: int = 3,
    dropout: float = 0.2,
    activation: str = "relu",
) -> SequenceModel:
    """Linear(in_dim, dim) + `layers` residual causal TCNs; (B, T, in_dim) -> (B, T, dim).

    Effective init: PyTorch defaults (projection and convs; weight norm starts with g = ||v||).
    The reference's N(0, 0.01) conv init is a no-op under legacy weight norm (see TemporalBlock).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown TCN activation {activation!r}; valid: {sorted(ACTIVATIONS)}")
    act = ACTIVATIONS[activation]
    # TCNs before the projection: the reference's construction order, so seeded builds match it
    tcns = ResidualStack(
        [TemporalConvNet(dim, blocks, kernel_size, dropout, act) for _ in range(layers)]
    )
    return SequenceModel(projection(in_dim, dim), tcns, out_dim=dim)

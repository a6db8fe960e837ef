"""BiGRU: nn.GRU directly on the backbone embedding, no projection (SPEC.md section 3, "BiGRU").

The reference wraps nn.GRU(E, D, layers, bidirectional, batch_first) in a module holding it as
`gru`, inside an nn.Sequential, so keys are `0.gru.weight_ih_l0`, ..., `0.gru.bias_hh_l1_reverse`.
D is the hidden size per direction; the output has 2D features when bidirectional.

`gru_sequential` is the slow step-by-step reference (one GRU cell update per frame) kept beside
nn.GRU's fused parallel path; tests check that both agree.
"""

from __future__ import annotations

import torch
from torch import nn

from sedlib.models.seq.common import SequenceModel


class GRU(nn.Module):
    """nn.GRU returning only the output sequence: (B, T, in_dim) -> (B, T, D * directions)."""

    def __init__(self, in_dim: int, dim: int, layers: int, dropout: float, bidirectional: bool):
        super().__init__()
        self.gru = nn.GRU(
            in_dim,
            dim,
            num_layers=layers,
            dropout=dropout,
            bidirectional=bidirectional,
            batch_first=True,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)  # (B, T, D * directions)
        return out


def build(
    in_dim: int,
    dim: int,
    *,
    layers: int = 2,
    dropout: float = 0.0,
    bidirectional: bool = True,
) -> SequenceModel:
    """nn.GRU(in_dim, dim) without projection; (B, T, in_dim) -> (B, T, 2*dim) if bidirectional.

    The reference found a projection before the GRU hurt; PyTorch's default init is kept.
    `dropout` acts between GRU layers (training only), as in nn.GRU.
    """
    gru = GRU(in_dim, dim, layers, dropout, bidirectional)
    return SequenceModel(gru, out_dim=2 * dim if bidirectional else dim)


def _gru_direction(gru: nn.GRU, x: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
    """Run one layer/direction frame by frame with h_0 = 0. x: (B, T, I) -> (B, T, D).

    PyTorch's GRU update (gate rows ordered r, z, n in the stacked weights):
        r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    """
    w_ih = getattr(gru, f"weight_ih_l{layer}{suffix}")  # (3D, I)
    w_hh = getattr(gru, f"weight_hh_l{layer}{suffix}")  # (3D, D)
    b_ih = getattr(gru, f"bias_ih_l{layer}{suffix}")  # (3D,)
    b_hh = getattr(gru, f"bias_hh_l{layer}{suffix}")  # (3D,)
    B, T, _ = x.shape
    h = x.new_zeros(B, gru.hidden_size)  # (B, D)
    steps = range(T - 1, -1, -1) if suffix == "_reverse" else range(T)
    outputs: list[torch.Tensor | None] = [None] * T
    for t in steps:
        gi = x[:, t] @ w_ih.T + b_ih  # (B, 3D)
        gh = h @ w_hh.T + b_hh  # (B, 3D)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)  # 3 x (B, D)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)  # 3 x (B, D)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h = (1 - z) * n + z * h
        outputs[t] = h
    return torch.stack(outputs, dim=1)  # (B, T, D)


def gru_sequential(gru: nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """Step-by-step reference for a batch_first nn.GRU in eval mode (no inter-layer dropout).

    x: (B, T, input_size) -> (B, T, hidden_size * directions); equals `gru(x)[0]`.
    """
    if not gru.batch_first:
        raise ValueError("gru_sequential expects a batch_first nn.GRU")
    suffixes = ["", "_reverse"] if gru.bidirectional else [""]
    for layer in range(gru.num_layers):
        outs = [_gru_direction(gru, x, layer, s) for s in suffixes]  # dirs x (B, T, D)
        x = torch.cat(outs, dim=-1)  # (B, T, D * dirs)
    return x

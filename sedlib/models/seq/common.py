"""Pieces shared by the sequence models: RMSNorm, rotary-gated attention, residual stack.

Each sequence model file (`tf.py`, `att.py`, `bigru.py`, `tcn.py`, ...) exposes
`build(in_dim, dim, **options) -> SequenceModel`. Module and attribute names here are chosen so
that `state_dict()` keys equal the reference implementation's (EfficientSED `seq_model.*` with
the prefix removed); see SPEC.md sections 3 and 3.2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from rotary_embedding_torch import RotaryEmbedding
from torch import Tensor, nn

POS_ENCODINGS = ("rotary", "none")


class SequenceModel(nn.Sequential):
    """The complete `seq_model`: element 0 is the down-projection (where one exists).

    Forward: (B, T, in_dim) -> (B, T, out_dim), for any T.
    """

    def __init__(self, *modules: nn.Module, out_dim: int):
        super().__init__(*modules)
        self.out_dim = int(out_dim)


def projection(in_dim: int, dim: int) -> nn.Module:
    """Down-projection W_d: Linear(E, D) with bias, or Identity when E == D (as the reference)."""
    return nn.Linear(in_dim, dim) if in_dim != dim else nn.Identity()


def init_weights(module: nn.Module) -> None:
    """Reference init for TF/ATT seq models: Linear and Conv1d weights N(0, 0.02), biases zero.

    Applied with `seq_model.apply(init_weights)`, so it also covers the projection Linear.
    """
    if isinstance(module, (nn.Linear, nn.Conv1d)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class RMSNorm(nn.Module):
    """RMSNorm as the reference defines it: y = x / max(||x||_2, 1e-12) * sqrt(dim) * gamma.

    Normalises over the last dimension; equals x / rms(x) * gamma up to the eps handling.
    No bias; gamma starts at 1.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class ResidualStack(nn.Module):
    """x <- layer(x) + x for each layer in turn (the reference `MultiLayerModel`)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x) + x
        return x


def resolve_heads(dim: int, heads: int, dim_head: int | None) -> int:
    """Head width D/heads unless given; the reference requires heads * dim_head == dim."""
    if dim % heads != 0:
        raise ValueError(f"dim {dim} must be divisible by heads {heads}")
    dim_head = dim // heads if dim_head is None else dim_head
    if dim_head * heads != dim:
        raise ValueError(f"dim_head {dim_head} x heads {heads} must equal dim {dim}")
    return dim_head


def rope_tables(freqs: Tensor, T: int, dtype: torch.dtype, width: int) -> tuple[Tensor, Tensor]:
    """RoPE tables for positions p = 0..T-1: cos and sign-folded sin, each (T, width).

    Pair i (channels 2i, 2i+1 of a head) turns by theta_{p,i} = p * f_i (`freqs` = f, (d/2,)).
    The (T, d) table is tiled `width // d` times along channels, so that it lines up with
    several heads (and q and k) laid side by side. sin carries the rotation's sign: -sin at
    2i, +sin at 2i+1 (see :func:`apply_rope`). Computed as rotary_embedding_torch 0.9 does
    (positions made in the input's dtype, angles and their cos/sin in freqs' dtype), so the
    result is bitwise equal to its `rotate_queries_or_keys`. `freqs` is read on every call:
    it is the single source of truth (no cache to go stale after `load_state_dict`). The
    frequencies are laid out at full width before the product with the positions (not the
    (T, d) table tiled after it): the same numbers, and a graph whose shapes ONNX export
    traces correctly for any T.
    """
    reps = width // (2 * freqs.shape[0])
    f = freqs.repeat_interleave(2).repeat(reps)  # (width,): the same products as tiling (T, d)
    sign = torch.tensor([-1.0, 1.0], device=freqs.device, dtype=freqs.dtype).repeat(freqs.shape[0] * reps)
    pos = torch.arange(T, device=freqs.device, dtype=dtype).to(freqs.dtype)  # (T,)
    angles = pos[:, None] * f  # (T, width)
    return angles.cos(), angles.sin() * sign  # (T, width) each


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each channel pair of `x` (..., T, C) by its angle (RoFormer, Su et al. 2021, eq. 34):

        y_2i   = x_2i cos(theta) - x_2i+1 sin(theta)
        y_2i+1 = x_2i+1 cos(theta) + x_2i sin(theta)

    as y = x * cos + swap_pairs(x) * sin with the sign-folded sin of :func:`rope_tables`
    ((T, C) tables). Same products and sums as rotary_embedding_torch's
    `x * cos + rotate_half(x) * sin`, hence bitwise equal; works on strided views.
    """
    swapped = torch.stack((x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)  # (..., T, C)
    # in place on fresh temporaries: fewer large allocations; autograd-safe (mul saves its
    # inputs, not its output)
    return (x * cos).add_(swapped.mul_(sin)).to(x.dtype)


class Attention(nn.Module):
    """Pre-normed multi-head self-attention with rotary positions and per-head sigmoid gates.

    Adapted (as in the reference) from the BS-RoFormer attention:
        h = RMSNorm(x);  q, k, v = split(h W_qkv);  q, k <- RoPE(q), RoPE(k)
        o_h = softmax(q_h k_h^T / sqrt(d)) v_h                       (non-causal SDPA)
        o_h <- o_h * sigmoid(h W_g + b_g)_h                          (gating)
        y = concat_h(o_h) W_out, then Dropout
    The residual connection is added by the caller. Forward: (B, T, dim) -> (B, T, dim).

    Same outputs and gradients as the reference's op sequence (rotary_embedding_torch on q and
    k separately; bitwise in our float32 CPU checks, tested to 1e-12 in float64), without its
    copies: q and k are rotated together, once, on a view of the to_qkv output; q, k, v reach
    SDPA as (B, H, T, d) views of (B, T, H, d) memory; the gates multiply SDPA's output in its
    (B, T, H, d) memory layout, so no copy is needed before to_out.
    """

    def __init__(
        self,
        dim: int,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.0,
        gating: bool = True,
        pos_encoding: str = "rotary",
    ):
        super().__init__()
        if pos_encoding not in POS_ENCODINGS:
            raise ValueError(f"unknown pos_encoding {pos_encoding!r}; valid: {POS_ENCODINGS}")
        self.heads = heads
        self.dim_head = dim_head
        self.dropout = dropout
        dim_inner = heads * dim_head
        # RotaryEmbedding defaults: theta 10000, 'lang' freqs, interleaved pairs over dim_head;
        # its `freqs` is a frozen nn.Parameter and so part of state_dict and parameter counts.
        # Only `freqs` is used (rope_tables / apply_rope), not the module's own forward or cache.
        self.pos_encoding = RotaryEmbedding(dim_head) if pos_encoding == "rotary" else None
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * dim_inner, bias=False)
        self.to_gates = nn.Linear(dim, heads) if gating else None
        self.to_out = nn.Sequential(nn.Linear(dim_inner, dim, bias=False), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        H, d = self.heads, self.dim_head
        x = self.norm(x)
        # channel layout of to_qkv's output is (qkv, head, d)
        qkv = self.to_qkv(x)  # (B, T, 3*H*d)
        qk, v = qkv[..., : 2 * H * d], qkv[..., 2 * H * d :]  # (B, T, 2*H*d), (B, T, H*d)
        if self.pos_encoding is not None:  # positions 0..T-1, the same angles for q and k
            cos, sin = rope_tables(self.pos_encoding.freqs, T, qkv.dtype, 2 * H * d)
            qk = apply_rope(qk, cos, sin)  # (B, T, 2*H*d)
        q, k = qk.unflatten(-1, (2, H, d)).permute(2, 0, 3, 1, 4).unbind(0)  # 2 x (B, H, T, d)
        v = v.unflatten(-1, (H, d)).transpose(1, 2)  # (B, H, T, d)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        ).transpose(1, 2)  # (B, T, H, d)
        if self.to_gates is not None:
            out = out * self.to_gates(x).sigmoid().unsqueeze(-1)  # gates (B, T, H, 1)
        return self.to_out(out.reshape(B, T, H * d))  # (B, T, H*d) -> (B, T, dim)

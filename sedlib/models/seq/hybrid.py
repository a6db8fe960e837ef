"""HYBRID sequence model: parallel attention + bidirectional minGRU heads (Hymba-style).

As EfficientSED builds it (`models/sequence_models/hybrid/hybrid.py`, adapted from lucidrains'
minGRU-pytorch; SPEC.md section 3, HYBRID):

    seq_model = [Linear(E, D), HybridWrapper(depth 2)]
    per layer:  x = Mix(RMSNorm(x)) + x;   x = FF(RMSNorm(x)) + x;   final RMSNorm
    FF:         Linear(D, 4D) -> GELU -> Linear(4D, D)            (no dropout)

Mix follows Hymba (Dong et al. 2024, arXiv:2411.13676, eq. 1-2): the same normed input feeds an
attention branch and an RNN branch in parallel; each branch output is split into heads and
normalised per head, the two are averaged with a fixed weight 1/2, heads are merged and projected:

    Y = W_out · merge_h( 1/2 · RMSNorm_rnn(rnn(x)_h) + 1/2 · RMSNorm_attn(attn(x)_h) )

The attention branch has no positional encoding, no gating and no dropout; position information
comes only from the (bidirectional) minGRU branch (`mingru.py`).

D = 104 (the released fmn04+hybrid-104): the reference asserts D >= 128, yet its released
checkpoint was trained with D = 104, i.e. with asserts off (8 heads x 13). We accept any D
divisible by `heads`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from sedlib.models.seq.common import RMSNorm, SequenceModel, projection, resolve_heads
from sedlib.models.seq.mingru import BidirectionalMinGRU, MinGRU

__all__ = ["MinGRUAttnHybrid", "HybridWrapper", "HybridSeqModel", "build"]


def feed_forward(dim: int, mult: int = 4) -> nn.Sequential:
    """Linear(D, mult D) -> GELU -> Linear(mult D, D); keys `0.*` and `2.*`."""
    return nn.Sequential(nn.Linear(dim, dim * mult), nn.GELU(), nn.Linear(dim * mult, dim))


class MinGRUAttnHybrid(nn.Module):
    """Token mixer: attention and minGRU branches on the same input, per-head normed and averaged.

    Forward: (B, T, D) -> (B, T, D). Keys: `to_qkv`, `rnn.*`, `rnn_out_norm`, `attn_out_norm`,
    `to_out` (registration order as the reference).
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, bidirectional: bool = True):
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head
        dim_inner = heads * dim_head
        self.to_qkv = nn.Linear(dim, 3 * dim_inner, bias=False)
        # the reference gives the unidirectional minGRU an output projection, the bidirectional
        # one projects 2 D_inner -> D_inner inside the wrapper
        self.rnn = (
            BidirectionalMinGRU(dim, dim_inner)
            if bidirectional
            else MinGRU(dim, dim_inner, proj_out=True)
        )
        self.rnn_out_norm = RMSNorm(dim_head)
        self.attn_out_norm = RMSNorm(dim_head)
        self.to_out = nn.Linear(dim_inner, dim, bias=False)

    def forward(self, x: Tensor, mode: str = "parallel") -> Tensor:
        B, T, _ = x.shape
        H, d = self.heads, self.dim_head

        # RNN branch; the unidirectional MinGRU with proj_out maps back to D (= H*d, see build)
        rnn_out = self.rnn(x, mode=mode)  # (B, T, H*d)
        rnn_out = rnn_out.view(B, T, H, d).transpose(1, 2)  # (B, H, T, d)

        # attention branch: channel layout of to_qkv's output is (qkv, head, d)
        qkv = self.to_qkv(x).view(B, T, 3, H, d)  # (B, T, 3, H, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, T, d)
        attn_out = F.scaled_dot_product_attention(q, k, v, is_causal=False)  # (B, H, T, d)

        # Hymba eq. 2 with the fixed mix 1/2 (the reference's learned_mix is off)
        out = 0.5 * self.rnn_out_norm(rnn_out) + 0.5 * self.attn_out_norm(attn_out)  # (B, H, T, d)
        out = out.transpose(1, 2).reshape(B, T, H * d)  # (B, T, H*d)
        return self.to_out(out)  # (B, T, D)


class HybridWrapper(nn.Module):
    """`depth` pre-norm residual layers [RMSNorm, MinGRUAttnHybrid, RMSNorm, FF], then RMSNorm.

    Keys per layer i: `layers.i.0.gamma`, `layers.i.1.*`, `layers.i.2.gamma`,
    `layers.i.3.{0,2}.{weight,bias}`; final `norm.gamma`. Forward: (B, T, D) -> (B, T, D).
    """

    def __init__(
        self,
        dim: int,
        depth: int = 2,
        ff_mult: int = 4,
        heads: int = 8,
        dim_head: int = 64,
        bidirectional: bool = True,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    RMSNorm(dim),
                    MinGRUAttnHybrid(
                        dim, heads=heads, dim_head=dim_head, bidirectional=bidirectional
                    ),
                    RMSNorm(dim),
                    feed_forward(dim, ff_mult),
                ]
            )
            for _ in range(depth)
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: Tensor, mode: str = "parallel") -> Tensor:
        for norm, mix, ff_norm, ff in self.layers:
            x = mix(norm(x), mode=mode) + x
            x = ff(ff_norm(x)) + x
        return self.norm(x)


class HybridSeqModel(SequenceModel):
    """`seq_model` for HYBRID: element 0 the projection, element 1 the HybridWrapper.

    `forward(x, mode)`: (B, T, in_dim) -> (B, T, out_dim); mode "sequential" runs the minGRUs step
    by step (a slow reference used by the tests), "parallel" uses the log-space scan.
    """

    def forward(self, x: Tensor, mode: str = "parallel") -> Tensor:
        return self[1](self[0](x), mode=mode)


def build(
    in_dim: int,
    dim: int,
    *,
    layers: int = 2,
    heads: int = 8,
    dim_head: int | None = None,
    ff_mult: int = 4,
    bidirectional: bool = True,
) -> HybridSeqModel:
    """HYBRID seq_model: Linear(in_dim, dim) (Identity if equal) -> HybridWrapper(depth=layers).

    Defaults are the reference's (hybrid_heads 8, dim_head dim/heads, ff_mult 4, bidirectional).
    PyTorch default initialisation (the reference applies no custom init to HYBRID).
    """
    dim_head = resolve_heads(dim, heads, dim_head)
    wrapper = HybridWrapper(
        dim, depth=layers, ff_mult=ff_mult, heads=heads, dim_head=dim_head,
        bidirectional=bidirectional,
    )
    return HybridSeqModel(projection(in_dim, dim), wrapper, out_dim=dim)

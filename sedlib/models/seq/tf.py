"""TF: projection + pre-norm RoFormer blocks (SPEC.md section 3, "TF").

Per layer (pre-norm residual, final RMSNorm):
    x <- Attention(x) + x           (RMSNorm inside; rotary, per-head gates, dropout)
    x <- FeedForward(x) + x         (RMSNorm, Linear(D, mD), GELU, Drop, Linear(mD, D), Drop)
    y  = RMSNorm(x)
Keys: `0.{weight,bias}`, `1.layers.<i>.0.*` (attention), `1.layers.<i>.1.net.*`, `1.norm.gamma`.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from sedlib.models.seq.common import (
    Attention,
    RMSNorm,
    SequenceModel,
    init_weights,
    projection,
    resolve_heads,
)

log = logging.getLogger(__name__)


class FeedForward(nn.Module):
    """RMSNorm -> Linear(D, mult*D) -> GELU -> Dropout -> Linear(mult*D, D) -> Dropout."""

    def __init__(self, dim: int, mult: float = 4, dropout: float = 0.0):
        super().__init__()
        dim_inner = int(dim * mult)
        self.net = nn.Sequential(
            RMSNorm(dim),
            nn.Linear(dim, dim_inner),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(dim_inner, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """`depth` x [attention, feed-forward] with residuals, then a final RMSNorm.

    Forward: (B, T, dim) -> (B, T, dim).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        dropout: float,
        ff_mult: float,
        gating: bool,
        pos_encoding: str,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    Attention(dim, heads, dim_head, dropout, gating, pos_encoding),
                    FeedForward(dim, ff_mult, dropout),
                ]
            )
            for _ in range(depth)
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)


def build(
    in_dim: int,
    dim: int,
    *,
    layers: int = 2,
    heads: int | None = None,
    dim_head: int | None = None,
    dropout: float = 0.2,
    ff_mult: float = 4,
    gating: bool = True,
    pos_encoding: str = "rotary",
) -> SequenceModel:
    """Linear(in_dim, dim) + TransformerBlock; (B, T, in_dim) -> (B, T, dim).

    `heads=None` follows the reference rule: 8 heads, or 4 when dim < 128 (fmn04's D=104 ->
    4 x 26). An explicit `heads` is used as given. Dropout applies to attention probabilities,
    the attention output and both feed-forward stages. Linear layers (projection included) are
    initialised N(0, 0.02) with zero bias, as the reference does for TF.
    """
    if heads is None:
        heads = 4 if dim < 128 else 8
    dim_head = resolve_heads(dim, heads, dim_head)
    model = SequenceModel(
        projection(in_dim, dim),
        TransformerBlock(dim, layers, heads, dim_head, dropout, ff_mult, gating, pos_encoding),
        out_dim=dim,
    )
    model.apply(init_weights)
    log.debug("TF: in %d, dim %d, %d layers, %d heads x %d", in_dim, dim, layers, heads, dim_head)
    return model

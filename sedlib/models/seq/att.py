"""ATT: projection + residual stack of rotary-gated self-attention layers (SPEC.md section 3).

    x <- Linear(E, D)(x);  x <- Attention_i(x) + x  for i < layers
No feed-forward and no final norm (the reference `MultiLayerModel` of `Attention` modules).
Keys: `0.{weight,bias}`, `1.layers.<i>.{pos_encoding.freqs, norm.gamma, to_qkv.weight,
to_gates.weight, to_gates.bias, to_out.0.weight}`.
"""

from __future__ import annotations

from sedlib.models.seq.common import (
    Attention,
    ResidualStack,
    SequenceModel,
    init_weights,
    projection,
    resolve_heads,
)


def build(
    in_dim: int,
    dim: int,
    *,
    layers: int = 2,
    heads: int = 8,
    dim_head: int | None = None,
    dropout: float = 0.0,
    gating: bool = True,
    pos_encoding: str = "rotary",
) -> SequenceModel:
    """Linear(in_dim, dim) + `layers` residual attention layers; (B, T, in_dim) -> (B, T, dim).

    Unlike TF, the reference has no dim < 128 head rule for ATT: heads stay 8 unless given.
    Linear layers (projection included) are initialised N(0, 0.02) with zero bias.
    """
    dim_head = resolve_heads(dim, heads, dim_head)
    model = SequenceModel(
        projection(in_dim, dim),
        ResidualStack(
            [Attention(dim, heads, dim_head, dropout, gating, pos_encoding) for _ in range(layers)]
        ),
        out_dim=dim,
    )
    model.apply(init_weights)
    return model

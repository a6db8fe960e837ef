"""Sequence models, one file each, each with ``build(in_dim, dim, **options) -> nn.Module``
(``out_dim`` attribute; ``(B, T, D_in)`` -> ``(B, T, out_dim)``), listed in
:data:`sedlib.models.names.SEQ_MODELS`. May import: ``sedlib.errors``, ``sedlib.models.seq.common``."""

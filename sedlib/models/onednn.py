"""Whether this torch build can run oneDNN's fused linear (used by the inference rewrites)."""

from __future__ import annotations

import torch


def onednn_linear_available() -> bool:
    """Whether this torch build has oneDNN and its fused linear op (the one inductor uses)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")

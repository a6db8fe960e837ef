"""An ensemble of sound event detectors as one model: the mean of their logits.

The paper's teachers are ensembles (the reference's pseudo-labels are the mean strong logits of
several models; :func:`sedlib.train.pseudo_labels.make_pseudo_labels`). :class:`MeanLogits`
makes such an ensemble evaluable and usable wherever one ``SEDModel`` is (``validate``,
detection): the same mean, of strong and weak logits alike.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class MeanLogits(nn.Module):
    """``models`` (each log-mel ``(B, 1, 128, T)`` -> ``(strong (B, K, T/4), weak (B, K))``
    logits, the same K and T/4) -> the mean strong and mean weak logits, same shapes."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("MeanLogits needs at least one model")
        self.members = nn.ModuleList(models)
        self.num_classes = getattr(models[0], "num_classes", None)
        self.name = "mean(" + ", ".join(str(getattr(m, "name", type(m).__name__))
                                        for m in models) + ")"

    def forward(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 1, 128, T) -> (strong (B, K, T / 4), weak (B, K)) mean logits."""
        outputs = [m(mel) for m in self.members]
        shapes = {tuple(o[0].shape) for o in outputs}
        if len(shapes) != 1:
            raise ValueError(f"ensemble members disagree on the strong output shape: {sorted(shapes)}")
        strong = torch.stack([o[0] for o in outputs]).mean(dim=0)
        weak = torch.stack([o[1] for o in outputs]).mean(dim=0)
        return strong, weak

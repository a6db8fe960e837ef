"""The SED model: fmn backbone -> optional sequence model -> strong (per frame) and weak heads.

Mirrors the reference ``PredictionsWrapper`` with ``head_type="linear"`` (SPEC 2), with the same
state_dict layout: ``model.fmn.features.*``, ``seq_model.*`` (absent when there is none:
``nn.Identity`` has no state), ``strong_head.{weight,bias}``, ``weak_head.{weight,bias}``.

Deviation, by design: the reference resamples the backbone sequence to 250 frames
(adaptive average pooling when longer, linear interpolation when shorter). For fmn and 10 s clips
(T = 1000 mel frames) that is a no-op, so outputs are identical there; sedlib keeps the
backbone's T / 4 frames for any T that is a multiple of 4 (longer or shorter clips keep their
40 ms grid instead of being squeezed onto 250 frames).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from sedlib.models.backbone import FrameMobileNet
from sedlib.models.names import ModelConfig, build_seq_model, parse_name


class BackboneWrapper(nn.Module):
    """Holds the backbone under ``fmn`` so keys read ``model.fmn.*`` as in the reference (whose
    wrapper also carries the mel frontend; ours lives in :mod:`sedlib.audio.frontend`)."""

    def __init__(self, fmn: FrameMobileNet) -> None:
        super().__init__()
        self.fmn = fmn

    def forward(self, mel: Tensor) -> Tensor:
        """(B, 1, F, T) -> (B, T / 4, E)"""
        return self.fmn(mel)


class SEDModel(nn.Module):
    """Sound event detector: log-mel ``(B, 1, 128, T)`` -> logits ``(strong (B, K, T/4), weak (B, K))``.

    Args:
        config: a :class:`~sedlib.models.names.ModelConfig` or a model name (``"fmn10+TF:256"``).
        num_classes: K, size of both heads (447 AudioSet Strong training classes by default).
        **seq_options: passed to the sequence model's ``build`` (e.g. dropout, heads).

    Attributes: ``name`` (canonical model name), ``config``, ``num_classes``, ``num_features``
    (head input size: seq dim, 2 x dim for BiGRU, backbone embed without a sequence model),
    ``load_report`` (what the last checkpoint load did, or None).
    """

    def __init__(self, config: ModelConfig | str, num_classes: int = 447, **seq_options: Any) -> None:
        super().__init__()
        if isinstance(config, str):
            config = parse_name(config)
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.config = config
        self.name = config.name
        self.num_classes = num_classes
        self.seq_options = dict(seq_options)
        self.load_report = None  # set by create_model(checkpoint=...): a checkpoints.LoadReport

        self.model = BackboneWrapper(FrameMobileNet(config.width))
        embed = self.model.fmn.embed_dim
        if config.seq_model is None:
            if seq_options:
                raise ValueError(f"{self.name} has no sequence model; got options {sorted(seq_options)}")
            self.seq_model: nn.Module = nn.Identity()
            self.num_features = embed
        else:
            self.seq_model = build_seq_model(config.seq_model, embed, config.seq_dim, **seq_options)
            self.num_features = int(self.seq_model.out_dim)
        self.strong_head = nn.Linear(self.num_features, num_classes)
        self.weak_head = nn.Linear(self.num_features, num_classes)

    def reset_heads(self) -> None:
        """Re-initialise both heads (PyTorch's default Linear init, as the reference)."""
        self.strong_head.reset_parameters()
        self.weak_head.reset_parameters()

    def embed(self, mel: Tensor) -> Tensor:
        """(B, 1, 128, T) -> (B, T / 4, num_features): backbone + sequence model."""
        x = self.model(mel)  # (B, T', E)
        return self.seq_model(x)  # (B, T', num_features)

    def forward(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 1, 128, T) log-mel -> (strong (B, K, T / 4), weak (B, K)) logits."""
        x = self.embed(mel)  # (B, T', D)
        strong = self.strong_head(x).transpose(1, 2)  # (B, K, T')
        weak = self.weak_head(x.mean(dim=1))  # (B, K)
        return strong, weak

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_classes={self.num_classes}"

"""Stride adaptation (paper Sec. II-A): EfficientAT's clip-wise strides vs fmn's frame-wise ones.

EfficientAT's MobileNetV3 strides both axes by 2 at the stem and at blocks 1, 3, 6, 12, so a
log-mel ``(B, 1, 128, 1000)`` becomes ``(B, C, 4, 32)``: one feature vector per 320 ms, fine for
clip-wise tagging. fmn strides frequency by 128 and time only by 4: ``(B, C, 1, 250)``, one frame
per 40 ms. :class:`ClipwiseSED` is the clip-wise network made to emit the same 40 ms frames as
the reference wrapper does for backbones with fewer frames: mean over the 4 remaining frequency
bins, then **linear interpolation of the frame sequence** to ``T / 4`` frames
(``PredictionsWrapper``: "linear interpolation when shorter"), then the same sequence model and
heads as :class:`~sedlib.models.sed.SEDModel`. It trains with :func:`sedlib.train.fitting.fit` like any
SEDModel (same parameter names, so layer-wise LR decay and ``freeze_backbone`` apply).

:func:`shape_trace` lists tensor shapes through a model; :func:`receptive_fields` the cumulative
stride ("jump") and receptive field of every backbone block, in mel bins and mel frames (10 ms);
:func:`resolution` summarises a backbone's time resolution and receptive field.
:func:`clipwise_experiment` makes a study :class:`~sedlib.study.experiments.Experiment` train a
ClipwiseSED (its ``variant``), cached and run as any other (:func:`sedlib.study.cache.run_experiments`).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import replace
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sedlib.config import AudioConfig
from sedlib.models.backbone import FMN_TIME_STRIDES, FrameMobileNet, clipwise_strides
from sedlib.models.names import ModelConfig
from sedlib.models.sed import BackboneWrapper, SEDModel

log = logging.getLogger(__name__)

#: mel frames per output frame of the frame-wise models (stem 2 x block 1's 2): the 40 ms grid
FRAME_POOLING = 2 * math.prod(FMN_TIME_STRIDES)
CLIPWISE_STRIDES = (2, 2, 2, 2)  # EfficientAT: blocks 1, 3, 6, 12


class FrameUpsample(nn.Module):
    """Linear interpolation of a frame sequence to ``ceil(T_mel / pooling)`` frames (a module,
    so :func:`shape_trace` sees it). No parameters."""

    def __init__(self, pooling: int = FRAME_POOLING) -> None:
        super().__init__()
        self.pooling = pooling

    def forward(self, x: Tensor, mel_frames: int) -> Tensor:
        """(B, T', E) -> (B, ceil(mel_frames / pooling), E)"""
        frames = math.ceil(mel_frames / self.pooling)
        if x.shape[1] == frames:
            return x
        x = F.interpolate(x.transpose(1, 2), size=frames, mode="linear", align_corners=False)
        return x.transpose(1, 2)  # (B, frames, E)


class ClipwiseSED(SEDModel):
    """SEDModel on EfficientAT's clip-wise strides with upsampled frame output (module doc).

    Args:
        config: model name or :class:`~sedlib.models.names.ModelConfig` (``"fmn04+TF:64"``).
        strides: the four symmetric strides at blocks 1, 3, 6, 12 (EfficientAT: 2, 2, 2, 2).
    Attributes as SEDModel; ``name`` reads ``"<name> clip-wise"`` (not a registry name).
    """

    def __init__(self, config: ModelConfig | str, num_classes: int = 447,
                 strides: Sequence[int] = CLIPWISE_STRIDES, **seq_options: Any) -> None:
        super().__init__(config, num_classes=num_classes, **seq_options)
        self.name = f"{self.config.name} clip-wise"
        self.clip_strides = tuple(int(s) for s in strides)
        fmn = FrameMobileNet(self.config.width, clipwise_strides(strides), freq_reduction="mean")
        self.model = BackboneWrapper(fmn)
        self.upsample = FrameUpsample()

    def embed(self, mel: Tensor) -> Tensor:
        """(B, 1, 128, T) -> (B, T / 4, num_features)"""
        x = self.model(mel)  # (B, T / 32, E): frequency averaged
        x = self.upsample(x, mel.shape[-1])  # (B, T / 4, E)
        return self.seq_model(x)  # (B, T / 4, D)


def shape_trace(model: nn.Module, mel: Tensor) -> list[dict[str, Any]]:
    """Output shape of every backbone block, the upsampling (if any), the sequence model and the
    heads for one forward pass of ``mel``, in call order: rows ``layer``, ``module``, ``shape``."""
    named = [(f"features.{i}", m) for i, m in enumerate(model.model.fmn.features)]
    named += [(n, getattr(model, n)) for n in ("upsample", "seq_model", "strong_head", "weak_head")
              if isinstance(getattr(model, n, None), nn.Module)]
    rows: list[dict[str, Any]] = [{"layer": "input", "module": "log-mel", "shape": tuple(mel.shape)}]
    hooks = [m.register_forward_hook(
        lambda mod, args, out, n=n: rows.append({"layer": n, "module": type(mod).__name__,
                                                 "shape": tuple(out.shape)}))
        for n, m in named]
    try:
        with torch.inference_mode():
            model.eval()(mel)
    finally:
        for h in hooks:
            h.remove()
    return rows


def receptive_fields(backbone: FrameMobileNet) -> list[dict[str, Any]]:
    """Per backbone block (``features.<i>``): its (freq, time) stride, the cumulative stride
    (``jump``: input bins / frames per output step) and receptive field in input mel bins and
    frames, from every convolution in order (r += (k - 1) * dilation * jump; jump *= stride).
    Squeeze-excitation gates (a global mean) are left out, as is usual for receptive fields."""
    rows = []
    jump, rf = [1, 1], [1, 1]
    for i, block in enumerate(backbone.features):
        stride = [1, 1]
        for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d)):
            for axis in (0, 1):
                rf[axis] += (conv.kernel_size[axis] - 1) * conv.dilation[axis] * jump[axis]
                jump[axis] *= conv.stride[axis]
                stride[axis] *= conv.stride[axis]
        rows.append({"layer": f"features.{i}", "stride": tuple(stride), "jump_freq": jump[0],
                     "jump_time": jump[1], "rf_freq": rf[0], "rf_time": rf[1]})
    return rows


def resolution(model: nn.Module, audio: AudioConfig | None = None) -> dict[str, Any]:
    """Time resolution and receptive field of ``model``'s backbone for one clip of ``audio``:
    native frames and ms per frame, output frames, receptive field in seconds and mel bins."""
    audio = audio or AudioConfig()
    last = receptive_fields(model.model.fmn)[-1]
    hop_ms = 1000 * audio.hop_length / audio.sample_rate
    mel_frames = audio.mel_frames
    freq_left = math.ceil(audio.n_mels / last["jump_freq"])
    return {"backbone frames": math.ceil(mel_frames / last["jump_time"]),
            "backbone ms / frame": last["jump_time"] * hop_ms,
            "freq bins left": freq_left,
            "output frames": math.ceil(mel_frames / FRAME_POOLING),
            "output ms / frame": FRAME_POOLING * hop_ms,
            "receptive field (s)": last["rf_time"] * hop_ms / 1000,
            "receptive field (mel bins)": last["rf_freq"]}


def clipwise_variant(strides: Sequence[int] = CLIPWISE_STRIDES) -> str:
    """The :attr:`~sedlib.study.experiments.Experiment.variant` of a :class:`ClipwiseSED` with
    these strides: ``"clipwise2222"`` for EfficientAT's."""
    variant = "clipwise" + "".join(str(int(s)) for s in strides)
    variant_strides(variant)
    return variant


def variant_strides(variant: str) -> tuple[int, ...]:
    """The four strides of a ``clipwise<s1><s2><s3><s4>`` variant (ValueError for another name)."""
    match = re.fullmatch(r"clipwise([1-9])([1-9])([1-9])([1-9])", str(variant))
    if match is None:
        raise ValueError(f"Experiment.variant {variant!r}: expected clipwise and four strides of "
                         f"1-9, e.g. 'clipwise2222', or None")
    return tuple(int(s) for s in match.groups())


def clipwise_experiment(exp: Any, strides: Sequence[int] = CLIPWISE_STRIDES) -> Any:
    """``exp`` with a :class:`ClipwiseSED` of ``exp.model`` in place of the model (same data,
    configs and seed): train it with :func:`sedlib.study.cache.run_experiments`; cached under
    ``<cache>/clipwise<strides>-<exp.key>``."""
    return replace(exp, variant=clipwise_variant(strides))


def build_model(model: str, num_classes: int, variant: str | None = None) -> nn.Module:
    """The network an experiment trains: ``create_model(model)``, or for a ``clipwise...``
    variant ``ClipwiseSED(model, strides=...)`` (same parameter names)."""
    if variant is None:
        from sedlib.registry import create_model

        return create_model(model, num_classes=num_classes)
    return ClipwiseSED(model, num_classes=num_classes, strides=variant_strides(variant))


def variant_label(model: str, variant: str | None) -> str:
    """A run's name in tables: the model name, ``"<model> (clip-wise strides)"`` for EfficientAT's
    strides, ``"<model> (clip-wise strides 2, 2, 1, 1)"`` for others."""
    if variant is None:
        return model
    strides = variant_strides(variant)
    extra = "" if strides == CLIPWISE_STRIDES else " " + ", ".join(map(str, strides))
    return f"{model} (clip-wise strides{extra})"

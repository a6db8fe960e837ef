"""Frame-wise MobileNetV3 ("fmn"): the EfficientAT MobileNetV3 with frame-preserving strides.

The block table, channel rounding and state_dict layout are those of EfficientAT's ``mn``
(SPEC 1.1-1.2); only the strides differ. fmn strides frequency by 128 and time by 4, so a
log-mel input ``(B, 1, 128, T)`` becomes ``(B, C, 1, T/4)``; the frequency axis is squeezed and
the result returned as a frame sequence ``(B, T/4, C)``. There is no pooling and no classifier.

Time contract: every conv in the time direction is "same"-padded, so the stem (stride 2, k 3,
pad 1) gives ceil(T / 2) frames and block 1 (stride 2) gives ceil(ceil(T / 2) / 2) = ceil(T / 4).
Any T that is a multiple of 4 therefore gives exactly T / 4 frames (1000 -> 250); other T give
ceil(T / 4), the last frame seeing a zero-padded tail. Frequency: any F in 65..128 collapses to 1;
other F leave more than one bin and :meth:`FrameMobileNet.forward` raises (use
``freq_reduction="mean"`` or :meth:`FrameMobileNet.forward_features` for those).

State_dict keys (identical to EfficientAT ``features.*``, so its AudioSet weights load as is):
``features.0.{0,1}`` stem conv/BN, ``features.<i>.block.<j>.{0,1}`` conv/BN inside block i
(1..15), ``features.<i>.block.2.conc_se_layers.0.fc{1,2}`` squeeze-excitation, ``features.16``
last 1x1 conv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (at least ``min_value``), never more
    than 10 % below ``v`` (MobileNet's channel rounding, SPEC 1.2)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * v:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block at width 1.0 (MobileNetV3-Large, SPEC 1.1)."""

    in_ch: int
    kernel: int
    exp_ch: int
    out_ch: int
    se: bool
    hardswish: bool  # False: ReLU


#                in  k  exp  out  SE    HS
BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(16, 3, 16, 16, False, False),  # 0  features.1
    BlockSpec(16, 3, 64, 24, False, False),  # 1  features.2
    BlockSpec(24, 3, 72, 24, False, False),  # 2
    BlockSpec(24, 5, 72, 40, True, False),  # 3
    BlockSpec(40, 5, 120, 40, True, False),  # 4
    BlockSpec(40, 5, 120, 40, True, False),  # 5
    BlockSpec(40, 3, 240, 80, False, True),  # 6
    BlockSpec(80, 3, 200, 80, False, True),  # 7
    BlockSpec(80, 3, 184, 80, False, True),  # 8
    BlockSpec(80, 3, 184, 80, False, True),  # 9
    BlockSpec(80, 3, 480, 112, True, True),  # 10
    BlockSpec(112, 3, 672, 112, True, True),  # 11
    BlockSpec(112, 5, 672, 160, True, True),  # 12
    BlockSpec(160, 5, 960, 160, True, True),  # 13
    BlockSpec(160, 5, 960, 160, True, True),  # 14 features.15
)
STEM_CHANNELS = 16
LAST_CONV_MULT = 6  # last conv: 6 x adjusted(160), not adjusted(960)

# (freq, time) stride per block: /128 in frequency (with the stem), /4 in time.
FMN_FREQ_STRIDES = (1, 2, 2, 1, 1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 2)
FMN_TIME_STRIDES = (1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
FMN_STRIDES: tuple[tuple[int, int], ...] = tuple(zip(FMN_FREQ_STRIDES, FMN_TIME_STRIDES))
# Blocks where EfficientAT's clip-wise ``mn`` applies its four symmetric strides.
CLIPWISE_STRIDE_BLOCKS = (1, 3, 6, 12)


def clipwise_strides(strides: Sequence[int] = (2, 2, 2, 2)) -> tuple[tuple[int, int], ...]:
    """EfficientAT's clip-wise stride pattern: ``strides[i]`` in both axes at blocks 1, 3, 6, 12
    (default /32 overall with the stem: 128 x 1000 -> 4 x 32)."""
    if len(strides) != len(CLIPWISE_STRIDE_BLOCKS):
        raise ValueError(f"clip-wise strides need 4 values (blocks 1, 3, 6, 12), got {tuple(strides)}")
    per_block = [(1, 1)] * len(BLOCKS)
    for block, s in zip(CLIPWISE_STRIDE_BLOCKS, strides):
        per_block[block] = (int(s), int(s))
    return tuple(per_block)


def channels(width: float) -> dict[str, object]:
    """Channel table at ``width``: stem, per-block (in, exp, out, se_squeeze or None), embed."""
    blocks = []
    for b in BLOCKS:
        exp = make_divisible(b.exp_ch * width)
        blocks.append((make_divisible(b.in_ch * width), exp, make_divisible(b.out_ch * width),
                       make_divisible(exp // 4) if b.se else None))
    return {"stem": make_divisible(STEM_CHANNELS * width), "blocks": tuple(blocks),
            "embed": LAST_CONV_MULT * blocks[-1][2]}


def embed_dim(width: float) -> int:
    """Channels of the backbone output (the last 1x1 conv): 960 at width 1.0, 384 at 0.4."""
    return int(channels(width)["embed"])


class ConvBNAct(nn.Sequential):
    """conv (no bias) -> BatchNorm -> optional activation; keys ``0`` (conv), ``1`` (BN).

    Padding is "same" per axis: (k - 1) // 2 * dilation (torchvision's ConvNormActivation).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: tuple[int, int] = (1, 1),
                 groups: int = 1, dilation: tuple[int, int] = (1, 1),
                 activation: type[nn.Module] | None = None) -> None:
        padding = tuple((kernel - 1) // 2 * d for d in dilation)
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation,
                      groups=groups, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Channel squeeze-excitation (Hu et al. 2018): s = sigmoid(W2 relu(W1 mean_{F,T}(x))), x * s.

    Uses ``nn.Linear`` (keys ``fc1``, ``fc2``) as EfficientAT does, not 1x1 convs.
    """

    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(c, squeeze)
        self.fc2 = nn.Linear(squeeze, c)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, F, T) -> (B, C, F, T)"""
        s = x.mean(dim=(2, 3))  # (B, C)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * s[:, :, None, None]


class ConcurrentSE(nn.Module):
    """EfficientAT's "concurrent" SE container with its default single channel branch.

    With one branch the max-aggregation of the reference is the identity, so this is just
    the branch; the container exists for the key layout ``conc_se_layers.0.*``.
    """

    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([SqueezeExcitation(c, squeeze)])

    def forward(self, x: Tensor) -> Tensor:
        return self.conc_se_layers[0](x)


class InvertedResidual(nn.Module):
    """[1x1 expand] -> depthwise kxk -> [SE] -> 1x1 project (no activation), + x when shapes allow.

    The expansion conv is omitted when expanded == input channels; the residual applies only
    with stride (1, 1) and equal in/out channels.
    """

    def __init__(self, c_in: int, c_exp: int, c_out: int, kernel: int, se_squeeze: int | None,
                 hardswish: bool, stride: tuple[int, int], time_dilation: int = 1) -> None:
        super().__init__()
        act = nn.Hardswish if hardswish else nn.ReLU
        dilation = (1, time_dilation)
        if time_dilation > 1:  # the reference drops the time stride of a dilated block
            stride = (stride[0], 1)
        layers: list[nn.Module] = []
        if c_exp != c_in:
            layers.append(ConvBNAct(c_in, c_exp, 1, activation=act))
        layers.append(ConvBNAct(c_exp, c_exp, kernel, stride=stride, groups=c_exp,
                                dilation=dilation, activation=act))
        if se_squeeze is not None:
            layers.append(ConcurrentSE(c_exp, se_squeeze))
        layers.append(ConvBNAct(c_exp, c_out, 1))
        self.block = nn.Sequential(*layers)
        self.use_residual = tuple(stride) == (1, 1) and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, F, T) -> (B, C_out, F / s_f, T / s_t)"""
        out = self.block(x)
        return out + x if self.use_residual else out


FREQ_REDUCTIONS = ("squeeze", "mean")


class FrameMobileNet(nn.Module):
    """MobileNetV3 backbone: log-mel ``(B, 1, F, T)`` -> frame embeddings ``(B, T', C)``.

    Args:
        width: channel multiplier (0.4, 0.6, 1.0, 2.0, 3.0 for fmn04..fmn30).
        strides: 15 (freq, time) stride pairs, one per block; default :data:`FMN_STRIDES`.
            :func:`clipwise_strides` gives EfficientAT's clip-wise pattern (no classifier here).
        time_dilations: 15 time dilations (default all 1); a dilated block drops its time stride.
        freq_reduction: how :meth:`forward` removes the remaining frequency axis: ``"squeeze"``
            (the reference; the map must have exactly one bin) or ``"mean"`` (average, for
            clip-wise strides or other input sizes).
    """

    def __init__(self, width: float = 1.0, strides: Sequence[Sequence[int]] = FMN_STRIDES,
                 time_dilations: Sequence[int] | None = None, freq_reduction: str = "squeeze",
                 in_channels: int = 1) -> None:
        super().__init__()
        strides = tuple((int(s[0]), int(s[1])) for s in strides)
        if len(strides) != len(BLOCKS):
            raise ValueError(f"need {len(BLOCKS)} (freq, time) stride pairs, got {len(strides)}")
        time_dilations = tuple(time_dilations) if time_dilations is not None else (1,) * len(BLOCKS)
        if len(time_dilations) != len(BLOCKS):
            raise ValueError(f"need {len(BLOCKS)} time dilations, got {len(time_dilations)}")
        if freq_reduction not in FREQ_REDUCTIONS:
            raise ValueError(f"freq_reduction must be one of {FREQ_REDUCTIONS}, got {freq_reduction!r}")
        self.width = width
        self.strides = strides
        self.freq_reduction = freq_reduction

        table = channels(width)
        layers: list[nn.Module] = [
            ConvBNAct(in_channels, int(table["stem"]), 3, stride=(2, 2), activation=nn.Hardswish)
        ]
        for spec, (c_in, c_exp, c_out, squeeze), stride, dil in zip(
                BLOCKS, table["blocks"], strides, time_dilations):
            layers.append(InvertedResidual(c_in, c_exp, c_out, spec.kernel, squeeze,
                                           spec.hardswish, stride, dil))
        last_in = table["blocks"][-1][2]
        self.embed_dim = int(table["embed"])
        layers.append(ConvBNAct(last_in, self.embed_dim, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reference init: conv kaiming-normal (fan_out), BN (1, 0), Linear N(0, 0.01)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, 1, F, T) -> (B, C, F', T'), the last feature map before any reduction."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, F, T) log-mel -> (B, T', C); T' = T / 4 for fmn strides and T % 4 == 0."""
        if x.dim() != 4:
            raise ValueError(f"expected a (B, 1, F, T) log-mel tensor, got shape {tuple(x.shape)}")
        x = self.features(x)  # (B, C, F', T')
        if self.freq_reduction == "mean":
            x = x.mean(dim=2)  # (B, C, T')
        elif x.shape[2] != 1:
            raise ValueError(
                f"backbone left {x.shape[2]} frequency bins (expected 1: fmn strides collapse "
                f"65..128 mel bins); use freq_reduction='mean' for this input or these strides")
        else:
            x = x.squeeze(2)  # (B, C, T')
        return x.transpose(1, 2)  # (B, T', C)

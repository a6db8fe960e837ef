"""Inference-only rewrites of a :class:`~sedlib.models.sed.SEDModel` for faster CPU inference.

Same outputs (float32 rounding, tested to 1e-4), same forward contract. Steps, all on a copy:

1. Fold every eval-mode BatchNorm into the preceding conv: with s = gamma / sqrt(var + eps),
   w' = w * s and b' = (b - mean) * s + beta; the BN becomes Identity (46 BNs in fmn).
2. Backbone execution, by ``backend``:

   - ``"eager"``: channels_last memory format (oneDNN's native layout; no layout reorders
     between convolutions and much faster depthwise convs). ~2x the plain model on 2 cores.
   - ``"jit"`` (default): the folded backbone traced, frozen and optimised by TorchScript
     (``torch.jit.optimize_for_inference``): oneDNN blocked layout end to end, activations
     fused into the convolutions. ~2.5-3x. The backbone is shape-generic (convs only), so one
     trace serves every batch size and T. TorchScript is deprecated upstream; its warnings are
     silenced here because the trace is checked against the eager backbone.
   - ``"compile"``: ``torch.compile`` (inductor, freezing) of the backbone. Similar speed to
     ``"jit"`` but ~40 s of compilation on 2 cores, and a recompilation per new input shape;
     needs a C++ compiler.

3. Sequence model and heads (every backend; they run eagerly, as a trace could bake in the
   sequence length): each float32 ``nn.Linear`` becomes a :class:`OneDNNLinear` when torch has
   oneDNN. At these shapes ((B T, 256..960) x (960..256, 256..1024)) oneDNN's GEMM is 1.2x
   (1 thread) to 1.3-1.8x (2 threads) faster than the default MKL sgemm on the AMD EPYC
   (AVX-512) CPUs we benchmark on. (oneDNN's fused erf-GELU post-op is slower there than a
   separate ``F.gelu``, so GELU stays separate.) Each ``nn.GRU`` becomes a
   :class:`~sedlib.models.gru_infer.FusedGRU`: per layer one (oneDNN) GEMM for the input
   projections of both directions and all frames, then the recurrence in a TorchScript loop,
   the backward direction on a second thread (fmn10+BiGRU:256 with ``"jit"``: ~2.2x the
   plain model on 2 cores, was ~1.6x with nn.GRU).

The result is for inference only: it has no BN keys, so save and load checkpoints with the
plain model.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from sedlib.models.gru_infer import FusedGRU
from sedlib.models.onednn import onednn_linear_available

BACKENDS = ("eager", "jit", "compile")


def fold_batchnorm(module: nn.Module) -> int:
    """Fold each ``Conv2d -> BatchNorm2d`` pair of consecutive Sequential children in place;
    returns how many were folded. The module must be in eval mode."""
    if module.training:
        raise ValueError("fold_batchnorm needs an eval-mode model (BN running statistics)")
    folded = 0
    for seq in list(module.modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
                folded += 1
    return folded


class _ChannelsLast(nn.Module):
    """Runs ``inner`` on a channels_last copy of a 4-D input."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x.contiguous(memory_format=torch.channels_last))


class OneDNNLinear(nn.Module):
    """``x W^T + b`` by oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, the op inductor
    uses); inference only (the op has no autograd). Any input shape (..., in_features)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.register_buffer("weight", linear.weight.detach().contiguous())  # (out, in)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())

    def forward(self, x: Tensor) -> Tensor:
        if x.requires_grad:  # the op would silently return no/wrong gradients
            raise RuntimeError("OneDNNLinear is inference-only (no autograd); differentiate the "
                               "plain model instead")
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        out_features, in_features = self.weight.shape
        return f"in_features={in_features}, out_features={out_features}"


def replace_modules(module: nn.Module, kind: type, make, skip: nn.Module | None = None) -> int:
    """Replace, in place, each module of exactly type ``kind`` anywhere below ``module`` (except
    inside ``skip``) by ``make(child)``; returns how many were replaced. Exact types only:
    subclasses (e.g. ``nn.MultiheadAttention.out_proj``) are read by their owners' code."""
    skipped = {id(m) for m in skip.modules()} if skip is not None else set()
    replaced = 0
    for parent in list(module.modules()):
        if id(parent) in skipped:
            continue
        for name, child in list(parent._modules.items()):
            if type(child) is kind:
                parent._modules[name] = make(child)
                replaced += 1
    return replaced


def use_onednn_linears(module: nn.Module, skip: nn.Module | None = None) -> int:
    """Each float32 ``nn.Linear`` below ``module`` (except inside ``skip``) becomes a
    :class:`OneDNNLinear`; returns how many were replaced."""
    return replace_modules(module, nn.Linear, lambda lin: OneDNNLinear(lin)
                           if lin.weight.dtype == torch.float32 else lin, skip)


def fuse_grus(module: nn.Module, skip: nn.Module | None = None) -> int:
    """Each ``nn.GRU`` below ``module`` (except inside ``skip``) becomes a
    :class:`~sedlib.models.gru_infer.FusedGRU`; returns how many were replaced."""
    return replace_modules(module, nn.GRU, FusedGRU, skip)


class InferenceSED(nn.Module):
    """An optimised :class:`~sedlib.models.sed.SEDModel`: same forward, inference only."""

    def __init__(self, model: nn.Module, backbone: nn.Module, backend: str,
                 onednn_linears: int = 0, fused_grus: int = 0) -> None:
        super().__init__()
        self.backbone = backbone
        self.seq_model = model.seq_model
        self.strong_head = model.strong_head
        self.weak_head = model.weak_head
        self.name = model.name
        self.config = model.config
        self.num_classes = model.num_classes
        self.backend = backend
        self.onednn_linears = onednn_linears
        self.fused_grus = fused_grus

    def forward(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 1, 128, T) log-mel -> (strong (B, K, T / 4), weak (B, K)) logits."""
        if mel.dim() != 4:
            raise ValueError(f"expected a (B, 1, F, T) log-mel tensor, got shape {tuple(mel.shape)}")
        x = self.backbone(mel)  # (B, T', E)
        if x.dim() != 3:  # a traced backbone cannot raise on F' != 1 itself
            raise ValueError(f"input with {mel.shape[2]} mel bins leaves more than one frequency "
                             f"bin after the backbone (fmn collapses 65..128)")
        x = self.seq_model(x)  # (B, T', D)
        strong = self.strong_head(x).transpose(1, 2)  # (B, K, T')
        weak = self.weak_head(x.mean(dim=1))  # (B, K)
        return strong, weak

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, backend={self.backend!r}, onednn_linears={self.onednn_linears}, "
                f"fused_grus={self.fused_grus}")


def _jit_backbone(backbone: nn.Module) -> nn.Module:
    if not torch.backends.mkldnn.is_available():
        raise RuntimeError("backend='jit' needs a torch build with oneDNN (mkldnn); use 'eager'")
    example = torch.zeros(1, 1, 128, 64)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(backbone, example, check_trace=False)
        fast = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        probe = torch.randn(2, 1, 128, 36, generator=torch.Generator().manual_seed(0))
        err = (fast(probe) - backbone(probe)).abs().max().item()
    if not err <= 1e-4:
        raise RuntimeError(f"traced backbone differs from eager by {err:.2e} (> 1e-4)")
    return fast


def _deepcopy(model: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that also copies modules holding derived non-leaf tensors as plain
    attributes (the legacy ``weight_norm`` of TCN keeps ``weight = g * v / ||v||`` that way and
    recomputes it before every forward, so a detached copy stands in for it)."""
    memo = {id(t): t.detach().clone() for m in model.modules() for t in vars(m).values()
            if isinstance(t, Tensor) and not t.is_leaf}
    return copy.deepcopy(model, memo)


def optimize_for_inference(model: nn.Module, *, backend: str = "jit") -> InferenceSED:
    """A faster, inference-only copy of ``model`` (see the module docstring for ``backend``).
    The original model is not modified."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    fast = _deepcopy(model).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    fold_batchnorm(fast.model)
    backbone: nn.Module = fast.model.fmn
    if backend == "eager":
        backbone = _ChannelsLast(backbone)
    elif backend == "jit":
        backbone = _jit_backbone(backbone)
    else:
        backbone = torch.compile(backbone, options={"freezing": True})
    # sequence model and heads: the backbone (run by `backbone` above) is left alone
    onednn = use_onednn_linears(fast, skip=fast.model) if onednn_linear_available() else 0
    grus = fuse_grus(fast, skip=fast.model)
    return InferenceSED(fast, backbone, backend, onednn, grus)

"""Multiply-accumulate (MAC) counts of a forward pass: our own counter and DeepSpeed's.

Two independent counters, because neither tool alone is complete for SED models (measured in
ENVIRONMENT.md section 3):

:func:`count_macs` (the complete count, sedlib's ``macs``)
    torch's op-level :class:`~torch.utils.flop_counter.FlopCounterMode`, which sees every aten op
    that actually runs (``MACs = FLOPs / 2`` for its formulas), plus

    - formulas for ops it does not know: the CPU SDPA kernel
      ``aten._scaled_dot_product_flash_attention_for_cpu`` (``B H Tq Tk (d_qk + d_v)``: QK^T and
      AV, i.e. ``2 T^2 D`` per self-attention layer), ``aten.mv``, ``aten.addmv``, ``aten.dot``;
    - module rules (:data:`MODULE_RULES`) that replace whatever the ops inside a recurrent or
      ``nn.MultiheadAttention`` module counted by an analytic count, so the result does not
      depend on whether the backend decomposes them (CPU GRU: into mm/addmm, counted; CPU LSTM
      and cuDNN RNNs: fused kernels, invisible; MHA's CPU fast path: invisible).
      GRU/LSTM/RNN: ``steps x sum over layers and directions of (|W_ih| + |W_hh| + |W_hr|)``,
      i.e. ``3 (I H + H H)`` per step for a GRU layer-direction (the per-gate matmuls).

    Counted: convolutions (any groups, transposed), linear / matmul / mm / addmm / bmm / baddbmm
    (einsum counts as the contractions it executes, e.g. Mamba-2's SSD), SDPA, recurrent gate
    matmuls. Not counted: biases, BatchNorm/LayerNorm/RMSNorm, activations, softmax, pooling and
    means (SE squeeze), element-wise products (gates, rotary, SE scaling, Mamba's D skip and
    decays), scans (cumsum, logcumsumexp), FFT.

:func:`deepspeed_macs` (the paper's tool)
    DeepSpeed's ``FlopsProfiler``: it monkey-patches ``torch.nn.functional`` and tensor methods.
    Its MACs come from F.linear, F.conv*, matmul/mm/bmm/addmm (functions and methods) and
    F.scaled_dot_product_attention. It reports **0 MACs** for nn.GRU/LSTM/RNN (flops only),
    ``torch.einsum`` and ``einops.einsum`` (flops only), and for element-wise ops, norms,
    activations and pooling (flops only). aten ops reached without a patched Python function
    (e.g. ``nn.MultiheadAttention``'s fused fast path) are missed.

Both exclude the mel front end unless it is part of the module given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

log = logging.getLogger(__name__)

__all__ = ["MacCount", "MODULE_RULES", "count_macs", "deepspeed_macs", "rnn_macs", "mha_macs"]


@dataclass
class MacCount:
    """A MAC count: ``total``, per counted op (``by_op``; module rules appear as
    ``"<Module> (analytic)"``) and per named submodule (``by_module``, e.g. the SEDModel parts
    ``model``, ``seq_model``, ``strong_head``, ``weak_head``)."""

    total: int
    by_op: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)


# --- formulas for aten ops FlopCounterMode does not know (they return FLOPs = 2 x MACs) ------


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # CPU kernel behind F.scaled_dot_product_attention; same cost as the CUDA flash kernel
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _mv_flop(a_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1]  # (n, m) @ (m,)


def _addmv_flop(self_shape, a_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1]


def _dot_flop(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0]


_EXTRA_FORMULAS: dict[Any, Callable[..., int]] = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
    torch.ops.aten.mv: _mv_flop,
    torch.ops.aten.addmv: _addmv_flop,
    torch.ops.aten.dot: _dot_flop,
}


# --- analytic module rules ---------------------------------------------------------------------


def rnn_macs(module: nn.RNNBase, inputs: tuple[Any, ...]) -> int:
    """MACs of an nn.RNN/GRU/LSTM forward: ``steps x sum_{layer, direction} (|W_ih| + |W_hh| +
    |W_hr|)``. ``|W_ih| = G H I_l`` with G = 1/3/4 gates (RNN/GRU/LSTM), so a GRU layer-direction
    costs ``3 (I_l H + H H)`` per step; ``steps`` = batch x time (or the packed length)."""
    x = inputs[0]
    if isinstance(x, PackedSequence):
        steps = x.data.shape[0]  # sum of the sequence lengths
    elif x.dim() == 2:  # unbatched (T, I)
        steps = x.shape[0]
    else:
        steps = x.shape[0] * x.shape[1]  # (B, T, I) or (T, B, I)
    per_step = sum(
        p.numel()
        for name, p in module.named_parameters()
        if name.startswith(("weight_ih_", "weight_hh_", "weight_hr_"))
    )
    return steps * per_step


def mha_macs(module: nn.MultiheadAttention, inputs: tuple[Any, ...]) -> int:
    """MACs of nn.MultiheadAttention: q/k/v input projections, ``Lq Lk E`` for QK^T and for AV,
    and the output projection (biases, softmax and masks not counted)."""
    query, key = inputs[0], inputs[1]
    batch_first = module.batch_first and query.dim() == 3
    lq = query.shape[1] if batch_first else query.shape[0]
    lk = key.shape[1] if batch_first else key.shape[0]
    batch = query.shape[0] if batch_first else (query.shape[1] if query.dim() == 3 else 1)
    e = module.embed_dim
    proj = lq * e * e + lk * e * module.kdim + lk * e * module.vdim + lq * e * e
    return batch * (proj + 2 * lq * lk * e)


# module type -> f(module, positional inputs) -> MACs; replaces the op-level count inside it
MODULE_RULES: dict[type, Callable[[Any, tuple[Any, ...]], int]] = {
    nn.RNN: rnn_macs,
    nn.GRU: rnn_macs,
    nn.LSTM: rnn_macs,
    nn.MultiheadAttention: mha_macs,
}


def _rule_for(module: nn.Module) -> Callable[[Any, tuple[Any, ...]], int] | None:
    for cls in type(module).__mro__:  # subclasses of nn.GRU etc. use their base's rule
        if cls in MODULE_RULES:
            return MODULE_RULES[cls]
    return None


def _default_parts(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_children()]


@contextlib.contextmanager
def _hooks(handles: list) -> Iterator[None]:
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def count_macs(
    model: nn.Module, *inputs: Tensor, parts: Sequence[str] | None = None
) -> MacCount:
    """Count the MACs of ``model(*inputs)`` (one forward, ``torch.no_grad``, the model's current
    mode and device; see the module docstring for what is counted).

    ``parts``: names of submodules (``model.get_submodule(name)``) to report separately in
    ``by_module``; default: the direct children.
    """
    parts = _default_parts(model) if parts is None else list(parts)
    fc = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    adjust: dict[str, int] = {}  # op -> FLOP correction from module rules (negative: removed)
    part_flops: dict[str, int] = {}
    rule_stack: list[dict | None] = []  # Global op counts when an outermost rule module began
    part_stack: list[int] = []

    def global_counts() -> dict[Any, int]:
        return dict(fc.get_flop_counts().get("Global", {}))

    def rule_pre(module: nn.Module, args: tuple) -> None:
        rule_stack.append(None if rule_stack else global_counts())

    def rule_post(module: nn.Module, args: tuple, output: Any) -> None:
        before = rule_stack.pop()
        if before is None:  # nested inside another rule module: the outer one counts
            return
        for op, flops in global_counts().items():
            delta = flops - before.get(op, 0)
            if delta:
                adjust[str(op)] = adjust.get(str(op), 0) - delta
        label = f"{type(module).__name__} (analytic)"
        adjust[label] = adjust.get(label, 0) + 2 * _rule_for(module)(module, args)

    def total_flops() -> int:
        return sum(global_counts().values()) + sum(adjust.values())

    def part_pre(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            part_stack.append(total_flops())

        return hook

    def part_post(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            before = part_stack.pop()
            part_flops[name] = part_flops.get(name, 0) + total_flops() - before

        return hook

    handles = []
    for module in model.modules():
        if _rule_for(module) is not None:
            handles.append(module.register_forward_pre_hook(rule_pre))
            handles.append(module.register_forward_hook(rule_post))
    for name in parts:
        sub = model.get_submodule(name)
        handles.append(sub.register_forward_pre_hook(part_pre(name)))
        handles.append(sub.register_forward_hook(part_post(name)))

    with _hooks(handles), torch.no_grad(), fc:
        model(*inputs)

    by_op_flops = {str(op): flops for op, flops in global_counts().items()}
    for op, flops in adjust.items():
        by_op_flops[op] = by_op_flops.get(op, 0) + flops
    by_op = {op: flops // 2 for op, flops in by_op_flops.items() if flops}
    return MacCount(
        total=sum(by_op.values()),
        by_op=by_op,
        by_module={name: part_flops.get(name, 0) // 2 for name in parts},
    )


# --- DeepSpeed -----------------------------------------------------------------------------------


def _import_deepspeed_profiler():
    """Import DeepSpeed's profiler lazily (a few seconds). Its logger binds to ``sys.stdout`` at
    import time; importing with stdout redirected to stderr keeps its messages off stdout (the
    CLI prints JSON there)."""
    # without it, DeepSpeed warns on a CPU machine that it "was unable to detect" an accelerator
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            from deepspeed.profiling.flops_profiler.profiler import (
                FlopsProfiler,
                get_module_macs,
            )
    except ImportError as err:
        raise ImportError(
            "DeepSpeed's flops profiler is needed for the paper's MAC count: "
            "`DS_BUILD_OPS=0 pip install deepspeed==0.19.8` (or pass deepspeed=False / "
            "--no-deepspeed to skip it)"
        ) from err
    return FlopsProfiler, get_module_macs


@contextlib.contextmanager
def _quiet_logger(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(max(level, old))
    try:
        yield
    finally:
        logger.setLevel(old)


def deepspeed_macs(
    model: nn.Module, *inputs: Tensor, parts: Sequence[str] | None = None
) -> MacCount:
    """MACs of ``model(*inputs)`` by DeepSpeed's ``FlopsProfiler`` (one forward under
    ``torch.no_grad``; ``by_op`` is empty, ``by_module`` as in :func:`count_macs`). See the module
    docstring for what it misses. The patched torch functions are restored even on errors."""
    FlopsProfiler, get_module_macs = _import_deepspeed_profiler()
    parts = _default_parts(model) if parts is None else list(parts)
    prof = FlopsProfiler(model)
    with _quiet_logger("DeepSpeed", logging.ERROR):
        prof.start_profile()
        try:
            with torch.no_grad():
                model(*inputs)
            total = int(prof.get_total_macs())
            by_module = {name: int(get_module_macs(model.get_submodule(name))) for name in parts}
        finally:
            prof.end_profile()
    return MacCount(total=total, by_module=by_module)

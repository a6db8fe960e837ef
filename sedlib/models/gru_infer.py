"""Inference-only replacement of ``nn.GRU`` for faster CPU inference (used by
:func:`~sedlib.models.fuse.optimize_for_inference`).

PyTorch's CPU GRU runs each layer and direction one after the other: an MKL GEMM for the input
projections of all frames, then a time loop of a small GEMM and unfused elementwise kernels per
step (~27 ms per 10 s clip for BiGRU:256 on 2 cores). :class:`FusedGRU` computes the same
thing (PyTorch's gate order r, z, n in the stacked weights)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h  =  n + z * (h - n)

but, per layer, (1) the input projections of BOTH directions and all frames in one GEMM
(oneDNN's linear for float32 where available; b_hr and b_hz are folded into its bias, only b_hn
stays in the recurrence because r multiplies it), and (2) the recurrence in a TorchScript loop
(no Python per step) that reads its frames of that GEMM's output and writes straight into the
layer's (B, T, dirs H) output, with in-place gate arithmetic and tanh(a) = 2 sigmoid(2a) - 1
(the n-gate rows of the weights and biases are doubled once; sigmoid is the cheaper kernel); the
backward direction runs concurrently with the forward one on an inter-op thread
(``torch.jit.fork``), the two being independent within a layer. Outputs equal nn.GRU's to
float rounding (~1e-6 in float32).

Inputs as for ``nn.GRU``: batched (B, T, I) if ``batch_first`` else (T, B, I), or unbatched
(T, I); optional initial state ``hx`` (layers * dirs, B, H) (or (layers * dirs, H)). Any batch
size and sequence length; every layer count, unidirectional or bidirectional, with or without
biases. Inference only: the weights are buffers and inputs that require grad are refused.
"""

from __future__ import annotations

import warnings
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sedlib.models.onednn import onednn_linear_available


def _direction(gi: Tensor, w_hh: Tensor, b_hh: Tensor, h: Tensor, out: Tensor,
               reverse: bool) -> Tensor:
    """One layer/direction's recurrence; returns the last state (B, H).

    gi: (B, T, 3H) input projections incl. b_ih and b_hr, b_hz (may be a strided view);
    w_hh: (H, 3H) = W_hh^T; b_hh: (3H,) = (0, 0, b_hn); h: (B, H) initial state;
    out: (B, T, H) view that receives h_t at time t (frames T-1..0 when ``reverse``).
    The n-gate columns of gi, w_hh and b_hh are doubled: tanh(a) = 2 sigmoid(2a) - 1, and
    sigmoid is cheaper than tanh."""
    T = gi.size(1)
    H = h.size(1)
    gh = torch.empty(h.size(0), 3 * H, dtype=h.dtype, device=h.device)
    for i in range(T):
        t = T - 1 - i if reverse else i
        torch.addmm(b_hh, h, w_hh, out=gh)  # (B, 3H)
        g = gi[:, t]  # (B, 3H)
        rz = gh[:, :2 * H].add_(g[:, :2 * H]).sigmoid_()  # (B, 2H)
        n = gh[:, 2 * H:].mul_(rz[:, :H]).add_(g[:, 2 * H:]).sigmoid_().mul_(2.0).sub_(1.0)
        h = torch.addcmul(n, rz[:, H:], h - n, out=out[:, t])  # n + z (h - n)
    return h


def _bidirectional(gi: Tensor, w_hh: List[Tensor], b_hh: List[Tensor], h0: Tensor,
                   out: Tensor) -> Tensor:
    """Both directions of a layer, the backward one on an inter-op thread; returns (2, B, H).

    gi: (B, T, 6H) (forward then backward gates); h0: (2, B, H); out: (B, T, 2H)."""
    H = h0.size(2)
    back = torch.jit.fork(_direction, gi[:, :, 3 * H:], w_hh[1], b_hh[1], h0[1], out[:, :, H:],
                          True)
    forward = _direction(gi[:, :, :3 * H], w_hh[0], b_hh[0], h0[0], out[:, :, :H], False)
    return torch.stack([forward, torch.jit.wait(back)])


def _script(fn):
    with warnings.catch_warnings():  # TorchScript is deprecated upstream; tests check the loops
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(fn)


_direction = _script(_direction)
_bidirectional = _script(_bidirectional)


class FusedGRU(nn.Module):
    """An inference-only copy of ``gru`` (an ``nn.GRU`` in eval mode or not: inter-layer
    dropout is never applied); forward returns ``(output, h_n)`` like ``nn.GRU``."""

    def __init__(self, gru: nn.GRU, parallel: bool = True) -> None:
        super().__init__()
        if type(gru) is not nn.GRU:
            raise TypeError(f"FusedGRU takes an nn.GRU, got {type(gru).__name__}")
        self.hidden_size = H = gru.hidden_size
        self.num_layers = gru.num_layers
        self.bidirectional = gru.bidirectional
        self.batch_first = gru.batch_first
        self.parallel = parallel  # backward direction on an inter-op thread
        self.dirs = 2 if gru.bidirectional else 1
        suffixes = ["", "_reverse"][: self.dirs]
        ref = gru.weight_ih_l0.detach()
        for layer in range(self.num_layers):
            w_ih, b_ih, w_hh, b_hh = [], [], [], []
            n2 = torch.cat([ref.new_ones(2 * H), ref.new_full((H,), 2.0)])  # n gate doubled
            for s in suffixes:
                w_ih.append(getattr(gru, f"weight_ih_l{layer}{s}").detach() * n2[:, None])
                w_hh.append((getattr(gru, f"weight_hh_l{layer}{s}").detach() * n2[:, None]).t())
                bi = getattr(gru, f"bias_ih_l{layer}{s}").detach() if gru.bias else ref.new_zeros(3 * H)
                bh = getattr(gru, f"bias_hh_l{layer}{s}").detach() if gru.bias else ref.new_zeros(3 * H)
                b_ih.append((bi + torch.cat([bh[: 2 * H], bh.new_zeros(H)])) * n2)  # + b_hr, b_hz
                b_hh.append(torch.cat([bh.new_zeros(2 * H), bh[2 * H:]]) * n2)  # (0, 0, b_hn)
            self.register_buffer(f"w_ih_{layer}", torch.cat(w_ih).contiguous())  # (dirs 3H, I)
            self.register_buffer(f"b_ih_{layer}", torch.cat(b_ih))  # (dirs 3H,)
            self.register_buffer(f"w_hh_{layer}", torch.stack(w_hh).contiguous())  # (dirs, H, 3H)
            self.register_buffer(f"b_hh_{layer}", torch.stack(b_hh))  # (dirs, 3H)

    def _project(self, x: Tensor, layer: int) -> Tensor:
        """(B, T, I) -> (B, T, dirs 3H): input projections of every direction and frame."""
        w, b = getattr(self, f"w_ih_{layer}"), getattr(self, f"b_ih_{layer}")
        if x.dtype == torch.float32 and onednn_linear_available():
            return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
        return F.linear(x, w, b)

    def forward(self, x: Tensor, hx: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """(B, T, I) (batch_first) or (T, B, I) or unbatched (T, I) -> (output, h_n) as nn.GRU."""
        if x.requires_grad or (hx is not None and hx.requires_grad):
            raise RuntimeError("FusedGRU is inference-only (no autograd); differentiate the plain "
                               "model instead")
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)
            hx = None if hx is None else hx.unsqueeze(1)
        elif not self.batch_first:
            x = x.transpose(0, 1)
        if x.dim() != 3:
            raise ValueError(f"FusedGRU expects a 2-D or 3-D input, got shape {tuple(x.shape)}")
        B, T, _ = x.shape
        H, D = self.hidden_size, self.dirs
        if hx is None:
            hx = x.new_zeros(self.num_layers * D, B, H)
        h_n = []
        for layer in range(self.num_layers):
            out = x.new_empty(B, T, D * H)
            h0 = hx[layer * D: (layer + 1) * D]
            w_hh, b_hh = getattr(self, f"w_hh_{layer}"), getattr(self, f"b_hh_{layer}")
            if T == 0:
                h_n.append(h0)
            elif D == 2 and self.parallel:
                h_n.append(_bidirectional(self._project(x, layer), list(w_hh.unbind()),
                                          list(b_hh.unbind()), h0, out))
            else:
                gi = self._project(x, layer)
                h_n.append(torch.stack([
                    _direction(gi[:, :, d * 3 * H: (d + 1) * 3 * H], w_hh[d], b_hh[d], h0[d],
                               out[:, :, d * H: (d + 1) * H], d == 1) for d in range(D)]))
            x = out
        h = torch.cat(h_n)
        if unbatched:
            return x.squeeze(0), h.squeeze(1)
        return (x if self.batch_first else x.transpose(0, 1)), h

    def extra_repr(self) -> str:
        in_features = self.w_ih_0.shape[1]
        return (f"{in_features}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, batch_first={self.batch_first}")

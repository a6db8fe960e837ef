"""minGRU and its bidirectional wrapper (the RNN branch of the HYBRID sequence model).

minGRU (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201) drops the hidden-state
dependence of the GRU gates, so the recurrence becomes a first-order linear one,

    z_t = sigmoid(W_z x_t),  h~_t = g(W_h x_t),  h_t = (1 - z_t) * h_{t-1} + z_t * h~_t,   (eq. 1)

which is solved for all t at once by the log-space scan of Heinsen 2023 ("Efficient Parallelization
of a Ubiquitous Sequential Computation", arXiv:2311.06281). Following the paper's log-space variant
(appendix B.3) the candidate is kept positive with g(h) = h + 0.5 (h >= 0) or sigmoid(h) (h < 0),
so every hidden state is positive and has a logarithm.

Layout matches EfficientSED (`models/sequence_models/hybrid/minGRU.py`): one bias-free
`to_hidden_and_gate` Linear(D, 2 D_inner) per direction; the bidirectional wrapper concatenates the
two directions and projects back with a bias-free `to_out` Linear(2 D_inner, D_inner).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MinGRU", "BidirectionalMinGRU", "g", "log_g", "heinsen_scan_log", "doubling_scan"]

_MODES = ("parallel", "sequential")


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")


# Appendix B.3 of Feng et al.: g keeps candidates positive and continuous at 0 (g(0) = 0.5).
def g(x: Tensor) -> Tensor:
    """Positive candidate activation: x + 0.5 for x >= 0, sigmoid(x) otherwise."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), stably: log(x + 0.5) for x >= 0, log sigmoid(x) = -softplus(-x) otherwise."""
    # relu() keeps the unused branch of torch.where finite (log of a negative number would be NaN
    # and would poison the gradient even though it is not selected).
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


# Heinsen 2023, eq. (2)-(3): for h_t = a_t h_{t-1} + b_t with a_t, b_t > 0,
#     a*_t = sum_{s<=t} log a_s,   log h_t = a*_t + logcumsumexp_{s<=t}(log b_s - a*_s).
def heinsen_scan_log(log_coeffs: Tensor, log_values: Tensor) -> Tensor:
    """Solve h_t = exp(log_coeffs_t) * h_{t-1} + exp(log_values_t) over dim 1, with h_{-1} = 0.

    A non-zero initial state h_0 is handled by the caller by prepending log h_0 to `log_values`
    and a 0 to `log_coeffs`. Inputs (B, T, D); returns h (B, T, D).
    """
    a_star = log_coeffs.cumsum(dim=1)  # (B, T, D) log prod_{s<=t} a_s
    log_h = a_star + torch.logcumsumexp(log_values - a_star, dim=1)  # (B, T, D)
    return log_h.exp()


#: Doubling steps of :func:`doubling_scan` by default: exact for sequences of up to 2**16 frames
#: (43 min at 40 ms). Each step costs as much at any length, so an export uses fewer
#: (:data:`sedlib.deploy.onnx_export.DOUBLING_STEPS`) and records the longest input it is exact for.
DOUBLING_STEPS = 16


def doubling_scan(coeffs: Tensor, values: Tensor, steps: int = DOUBLING_STEPS) -> Tensor:
    """Solve h_t = coeffs_t * h_{t-1} + values_t over dim 1 (h_{-1} = 0) in linear space by
    recursive doubling (Hillis-Steele): after step k each position holds the composition of the
    2**k steps ending there, so ``steps`` rounds cover 2**steps frames.

    The same function as :func:`heinsen_scan_log` (to rounding) without ``logcumsumexp``, which
    ONNX has no operator for; used for export. Stable for the minGRU's coefficients in (0, 1) and
    positive values: every term is a product of numbers in (0, 1) times a convex combination of
    candidates (long products underflow to 0, their true limit). Inputs (B, T, D); returns (B, T, D).
    """
    a, b = coeffs, values
    for k in range(steps):
        shift = 2**k
        # composition with the 2**k steps before: positions before the start compose with identity
        a_prev = F.pad(a, (0, 0, shift, 0), value=1.0)[:, : a.shape[1]]  # (B, T, D)
        b_prev = F.pad(b, (0, 0, shift, 0), value=0.0)[:, : b.shape[1]]  # (B, T, D)
        a, b = a * a_prev, a * b_prev + b
    return b


class MinGRU(nn.Module):
    """Single-direction log-space minGRU.

    Args:
        dim: input feature size D.
        dim_inner: hidden size (default D); the reference's `expansion_factor` times D.
        proj_out: add a bias-free Linear(dim_inner, D) output projection `to_out` (the reference
            uses it only for the unidirectional HYBRID); without it the module has no `to_out` key.
    """

    #: "log": Heinsen's log-space scan (training and PyTorch inference); "doubling":
    #: :func:`doubling_scan`, the same function in ONNX operators (set during export).
    scan: str = "log"
    #: rounds of the doubling scan (2**scan_steps frames at most)
    scan_steps: int = DOUBLING_STEPS

    def __init__(self, dim: int, dim_inner: int | None = None, proj_out: bool = False):
        super().__init__()
        self.dim = dim
        self.dim_inner = dim if dim_inner is None else dim_inner
        self.to_hidden_and_gate = nn.Linear(dim, 2 * self.dim_inner, bias=False)
        self.to_out = nn.Linear(self.dim_inner, dim, bias=False) if proj_out else nn.Identity()

    def forward(
        self,
        x: Tensor,
        prev_hidden: Tensor | None = None,
        return_next_hidden: bool = False,
        mode: str = "parallel",
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Run the recurrence over time.

        Args:
            x: (B, T, D) input.
            prev_hidden: optional (B, D_inner) positive state h_0 (default zeros).
            return_next_hidden: also return the last state h_T, (B, D_inner), before `to_out`.
            mode: "parallel" (Heinsen log-space scan) or "sequential" (eq. 1 step by step).

        Returns:
            (B, T, D_out) output, and h_T if requested.
        """
        _check_mode(mode)
        T = x.shape[1]
        hidden, gate = self.to_hidden_and_gate(x).chunk(2, dim=-1)  # 2 x (B, T, D_inner)
        if mode == "parallel":
            h = self._parallel(hidden, gate, prev_hidden)
        else:
            h = self._sequential(hidden, gate, prev_hidden)
        if T > 0:
            next_hidden = h[:, -1]  # (B, D_inner)
        elif prev_hidden is not None:
            next_hidden = prev_hidden
        else:
            next_hidden = hidden.new_zeros(hidden.shape[0], self.dim_inner)
        out = self.to_out(h)
        return (out, next_hidden) if return_next_hidden else out

    def _parallel(self, hidden: Tensor, gate: Tensor, prev_hidden: Tensor | None) -> Tensor:
        if self.scan == "doubling":
            coeffs, values = torch.sigmoid(-gate), torch.sigmoid(gate) * g(hidden)  # 1 - z, z * h~
            if prev_hidden is not None:  # h_0 as an extra first step with coefficient 1
                values = torch.cat([prev_hidden.unsqueeze(1), values], dim=1)  # (B, T+1, D_inner)
                coeffs = F.pad(coeffs, (0, 0, 1, 0), value=1.0)
                return doubling_scan(coeffs, values, self.scan_steps)[:, 1:]
            return doubling_scan(coeffs, values, self.scan_steps)
        # log(1 - z) = log sigmoid(-gate) = -softplus(gate); log z = -softplus(-gate).
        log_coeffs = -F.softplus(gate)  # (B, T, D_inner)
        log_values = -F.softplus(-gate) + log_g(hidden)  # (B, T, D_inner) log(z * h~)
        if prev_hidden is None:
            return heinsen_scan_log(log_coeffs, log_values)
        # h_0 enters as an extra first step with coefficient 1 (log 0) and value h_0.
        log_h0 = prev_hidden.log().unsqueeze(1)  # (B, 1, D_inner)
        log_values = torch.cat([log_h0, log_values], dim=1)  # (B, T+1, D_inner)
        log_coeffs = F.pad(log_coeffs, (0, 0, 1, 0))  # (B, T+1, D_inner)
        return heinsen_scan_log(log_coeffs, log_values)[:, 1:]  # (B, T, D_inner)

    @staticmethod
    def _sequential(hidden: Tensor, gate: Tensor, prev_hidden: Tensor | None) -> Tensor:
        # Obviously-correct reference of eq. 1 (a Python loop over time; tests and streaming only).
        cand, z = g(hidden), torch.sigmoid(gate)  # (B, T, D_inner) each
        h = cand.new_zeros(cand[:, 0].shape) if prev_hidden is None else prev_hidden  # (B, D_inner)
        outs = []
        for t in range(cand.shape[1]):
            h = (1 - z[:, t]) * h + z[:, t] * cand[:, t]
            outs.append(h)
        if not outs:
            return cand  # (B, 0, D_inner)
        return torch.stack(outs, dim=1)  # (B, T, D_inner)


class BidirectionalMinGRU(nn.Module):
    """Forward minGRU on x, backward minGRU on reversed x; concat -> Linear(2 D_inner, D_inner).

    The backward output is flipped back, so position t of both halves refers to frame t.
    Keys: `forward_minGRU.to_hidden_and_gate.weight`, `backward_minGRU.to_hidden_and_gate.weight`,
    `to_out.weight`.
    """

    def __init__(self, dim: int, dim_inner: int | None = None):
        super().__init__()
        dim_inner = dim if dim_inner is None else dim_inner
        self.forward_minGRU = MinGRU(dim, dim_inner)
        self.backward_minGRU = MinGRU(dim, dim_inner)
        self.to_out = nn.Linear(2 * dim_inner, dim_inner, bias=False)

    def forward(self, x: Tensor, mode: str = "parallel") -> Tensor:
        """(B, T, D) -> (B, T, D_inner)."""
        fwd = self.forward_minGRU(x, mode=mode)  # (B, T, D_inner)
        bwd = self.backward_minGRU(torch.flip(x, dims=[1]), mode=mode)  # (B, T, D_inner), reversed
        bwd = torch.flip(bwd, dims=[1])  # (B, T, D_inner), original time order
        return self.to_out(torch.cat([fwd, bwd], dim=-1))  # (B, T, 2 D_inner) -> (B, T, D_inner)

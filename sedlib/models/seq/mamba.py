"""MAMBA sequence model: a pure-PyTorch Mamba-2 with mamba_ssm's parameter layout.

As EfficientSED builds it (`models/prediction_wrapper.py`, seq_model_type "mamba"; SPEC.md 3):

    seq_model = [Linear(E, D), LayerNorm(D), Fp32ResidualStack([Mamba2 -> LayerNorm(D)] x 2)]
    Mamba2(d_model D, d_state 64, d_conv 3, expand 2, headdim 64 (32 when D == 128),
           rmsnorm False, ngroups 1, chunk_size 256)

Mamba-2 (Dao & Gu 2024, "Transformers are SSMs", arXiv:2405.21060, sections 7-8 / Figure 6):

    [z, xBC, dt] = u W_in;   xBC = silu(causal_depthwise_conv(xBC));   [x, B, C] = xBC
    dt = softplus(dt + dt_bias);   A = -exp(A_log)        (one scalar A and dt per head)
    h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t^T;   y_t = C_t h_t + D x_t      (per head, eq. SSD)
    out = (y * silu(z)) W_out

With `rmsnorm=False` mamba_ssm applies the gate inside the scan kernel as (y + D x) * silu(z)
(`chunk_scan_ref`: `out * F.silu(z)` after adding `x * D`), with no normalisation.

Three paths compute the same function: the chunked SSD algorithm in pure PyTorch (default),
a step-by-step recurrence (`mode="sequential"`, reference for tests and streaming), and, when
`mamba_ssm` imports and the input is on CUDA, its fused Triton chunk scan with these parameters.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sedlib.models.seq.common import SequenceModel, projection

log = logging.getLogger(__name__)

try:  # optional CUDA/Triton kernels (GPU machines only; never required)
    from mamba_ssm.ops.triton.ssd_combined import (
        mamba_chunk_scan_combined as _fused_chunk_scan,
    )
except (ImportError, OSError):  # OSError: a broken CUDA extension library
    _fused_chunk_scan = None

__all__ = [
    "Mamba2", "ssd_chunked", "ssd_quadratic", "ssd_recurrent", "segsum", "Fp32ResidualStack", "MambaSeqModel",
    "build",
]

_MODES = ("parallel", "sequential")


# ---------------------------------------------------------------------------------------------
# SSD (state space duality), Dao & Gu 2024 section 6, with per-head scalar decay a_t = dt_t A:
#     h_t = exp(a_t) h_{t-1} + B_t x_t^T,     y_t = C_t h_t                       (X already * dt)
# Unrolled, y_t = sum_{s<=t} C_t . B_s exp(a_{s+1} + ... + a_t) x_s = (L o C B^T) X with the
# 1-semiseparable mask L[t, s] = exp(segsum(a)[t, s]).
# ---------------------------------------------------------------------------------------------


def segsum(a: Tensor) -> Tensor:
    """Segment sums: out[..., t, s] = a_{s+1} + ... + a_t for t >= s, -inf for t < s.

    (..., Q) -> (..., Q, Q). Summing the masked matrix column-wise (instead of differencing a
    cumulative sum) avoids cancellation between large partial sums. The masks come from the
    positions of ``a`` itself (no Python-int shapes), so a traced graph keeps Q dynamic.
    """
    pos = torch.ones_like(a[(0,) * (a.ndim - 1)], dtype=torch.int64).cumsum(0)  # (Q,): 1..Q
    t, s = pos.unsqueeze(-1), pos.unsqueeze(0)  # (Q, 1), (1, Q)
    terms = torch.where(t > s, a.unsqueeze(-1), a.new_zeros(()))  # (..., Q, Q): a_t where t > s
    out = terms.cumsum(dim=-2)  # (..., Q, Q): sum_{s < k <= t} a_k
    return out.masked_fill(t < s, float("-inf"))


def _heads_from_groups(M: Tensor, nheads: int) -> Tensor:
    """(..., G, N) -> (..., H, N): head h reads group h // (H / G) (mamba_ssm's `(g h)` repeat)."""
    return M.repeat_interleave(nheads // M.shape[-2], dim=-2)


def ssd_chunked(
    X: Tensor,
    a: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Chunked SSD scan (Dao & Gu 2024, section 6 / Listing 1), any sequence length T.

    Args:
        X: (b, T, H, P) inputs, already multiplied by dt.
        a: (b, T, H) log decays dt * A (<= 0).
        B, C: (b, T, G, N) input / output projections, G groups shared by H/G heads each.
        chunk_size: Q; T is zero-padded to a multiple of min(Q, T) (a = 0, X = 0 leave the state
            unchanged, so outputs and the final state are exact), padded outputs dropped.
        initial_state: optional (b, H, P, N) state before the first step.

    Returns:
        Y (b, T, H, P) and the final state (b, H, P, N).
    """
    b, T, H, P = X.shape
    N = B.shape[-1]
    if initial_state is None:
        initial_state = X.new_zeros(b, H, P, N)
    if T == 0:
        return X.new_zeros(b, 0, H, P), initial_state
    B, C = _heads_from_groups(B, H), _heads_from_groups(C, H)  # (b, T, H, N) each
    Q = min(chunk_size, T)
    pad = (-T) % Q
    if pad:
        X = F.pad(X, (0, 0, 0, 0, 0, pad))  # (b, T', H, P), T' = T + pad
        a = F.pad(a, (0, 0, 0, pad))  # (b, T', H)
        B = F.pad(B, (0, 0, 0, 0, 0, pad))  # (b, T', H, N)
        C = F.pad(C, (0, 0, 0, 0, 0, pad))
    nc = (T + pad) // Q
    X = X.reshape(b, nc, Q, H, P)  # (b, c, l, H, P)
    B = B.reshape(b, nc, Q, H, N)  # (b, c, l, H, N)
    C = C.reshape(b, nc, Q, H, N)  # (b, c, l, H, N)
    a = a.reshape(b, nc, Q, H).permute(0, 3, 1, 2)  # (b, H, c, l)
    a_cum = a.cumsum(dim=-1)  # (b, H, c, l): log decay from chunk start to l (inclusive)

    # 1. within each chunk: the quadratic (attention-like) form Y = (L o C B^T) X
    L = torch.exp(segsum(a))  # (b, H, c, l, s)
    scores = torch.einsum("bclhn,bcshn->bhcls", C, B) * L  # (b, H, c, l, s)
    Y_intra = torch.einsum("bhcls,bcshp->bclhp", scores, X)  # (b, c, l, H, P)

    # 2. state contributed by each chunk at its end: sum_s exp(a_{s+1..end}) B_s x_s^T
    decay_to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b, H, c, s)
    chunk_states = torch.einsum("bcshn,bhcs,bcshp->bchpn", B, decay_to_end, X)  # (b, c, H, P, N)

    # 3. pass states between chunks: the same scalar recurrence at chunk granularity, solved with
    #    a (c+1) x (c+1) segsum matrix over the per-chunk total decays
    states = torch.cat([initial_state.unsqueeze(1), chunk_states], dim=1)  # (b, c+1, H, P, N)
    chunk_decay = torch.exp(segsum(F.pad(a_cum[..., -1], (1, 0))))  # (b, H, c+1, c+1)
    states = torch.einsum("bhzc,bchpn->bzhpn", chunk_decay, states)  # (b, c+1, H, P, N)
    entering, final_state = states[:, :-1], states[:, -1]  # (b, c, H, P, N), (b, H, P, N)

    # 4. contribution of the state entering each chunk: C_l exp(a_{start..l}) h_start
    decay_from_start = torch.exp(a_cum)  # (b, H, c, l)
    Y_inter = torch.einsum(
        "bclhn,bchpn,bhcl->bclhp", C, entering, decay_from_start
    )  # (b, c, l, H, P)

    Y = (Y_intra + Y_inter).reshape(b, nc * Q, H, P)[:, :T]  # (b, T, H, P)
    return Y, final_state


def ssd_quadratic(X: Tensor, a: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """The whole sequence as one chunk: Y = (L o C B^T) X with L = exp(segsum(a)), zero initial
    state (same I/O as :func:`ssd_chunked`, Y only).

    The same function as the chunked scan (to rounding) with no shape arithmetic, so an ONNX graph
    traced from it is right at every length; memory grows as T^2 (fine for 10 s windows).
    """
    H = X.shape[2]
    B, C = _heads_from_groups(B, H), _heads_from_groups(C, H)  # (b, T, H, N) each
    L = torch.exp(segsum(a.transpose(1, 2)))  # (b, H, T, T)
    scores = torch.einsum("blhn,bshn->bhls", C, B) * L  # (b, H, T, T)
    return torch.einsum("bhls,bshp->blhp", scores, X)  # (b, T, H, P)


def ssd_recurrent(
    X: Tensor, a: Tensor, B: Tensor, C: Tensor, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Obviously-correct SSD recurrence, one step at a time (same I/O as `ssd_chunked`)."""
    b, T, H, P = X.shape
    B, C = _heads_from_groups(B, H), _heads_from_groups(C, H)  # (b, T, H, N)
    N = B.shape[-1]
    h = X.new_zeros(b, H, P, N) if initial_state is None else initial_state  # (b, H, P, N)
    ys = []
    for t in range(T):
        inject = torch.einsum("bhp,bhn->bhpn", X[:, t], B[:, t])  # (b, H, P, N)
        h = torch.exp(a[:, t])[..., None, None] * h + inject
        ys.append(torch.einsum("bhpn,bhn->bhp", h, C[:, t]))
    Y = torch.stack(ys, dim=1) if ys else X.new_zeros(b, 0, H, P)  # (b, T, H, P)
    return Y, h


class Mamba2(nn.Module):
    """Mamba-2 block with mamba_ssm's `Mamba2` parameters (rmsnorm=False, d_ssm=d_inner, no bias).

    Parameters (state_dict order): `dt_bias` (H), `A_log` (H), `D` (H), `in_proj.weight`
    (2 d_inner + 2 G N + H, d_model) with output channels ordered [z, x, B, C, dt],
    `conv1d.weight` (d_inner + 2 G N, 1, d_conv), `conv1d.bias`,
    `out_proj.weight` (d_model, d_inner).
    Initialisation draws in mamba_ssm's order (in_proj, conv1d, dt, A, out_proj).

    Forward: (B, T, d_model) -> (B, T, d_model); causal (frame t sees frames <= t).
    """

    #: "chunked": :func:`ssd_chunked` (default); "quadratic": :func:`ssd_quadratic`, the same
    #: function traceable at any length (set during ONNX export).
    scan: str = "chunked"

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        d_conv: int = 3,
        expand: int = 2,
        headdim: int = 64,
        ngroups: int = 1,
        chunk_size: int = 256,
        A_init_range: tuple[float, float] = (1.0, 16.0),
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        use_fused: bool = True,
    ):
        super().__init__()
        d_inner = expand * d_model
        if d_inner % headdim != 0:
            raise ValueError(
                f"Mamba2: expand * d_model = {d_inner} is not divisible by headdim {headdim}"
            )
        nheads = d_inner // headdim
        if nheads % ngroups != 0:
            raise ValueError(f"Mamba2: nheads {nheads} is not divisible by ngroups {ngroups}")
        if not 0 < A_init_range[0] <= A_init_range[1]:
            raise ValueError(f"Mamba2: A_init_range must satisfy 0 < lo <= hi, got {A_init_range}")
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner, self.headdim, self.nheads, self.ngroups = d_inner, headdim, nheads, ngroups
        self.chunk_size = chunk_size
        self.use_fused = use_fused
        self.conv_dim = d_inner + 2 * ngroups * d_state

        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * ngroups * d_state + nheads, bias=bias)
        self.conv1d = nn.Conv1d(
            self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim, padding=d_conv - 1,
            bias=conv_bias,
        )
        # dt ~ log-uniform in [dt_min, dt_max]; dt_bias = softplus^{-1}(dt) = dt + log(1 - exp(-dt))
        log_lo, log_hi = math.log(dt_min), math.log(dt_max)
        dt = torch.exp(torch.rand(nheads) * (log_hi - log_lo) + log_lo)
        dt = dt.clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        # A = -exp(A_log), A_log = log U(A_init_range)
        self.A_log = nn.Parameter(torch.empty(nheads).uniform_(*A_init_range).log())
        self.D = nn.Parameter(torch.ones(nheads))  # skip connection y += D x
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True  # mamba_ssm's marker for optimiser parameter groups
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)

    def _A(self) -> Tensor:
        # at least fp32 (in fp16 A could overflow to -inf, as mamba_ssm notes); fp64 stays fp64
        dtype = torch.promote_types(self.A_log.dtype, torch.float32)
        return -torch.exp(self.A_log.to(dtype))  # (H,)

    def _split_in(self, zxbcdt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)  # z, xBC, dt

    def _split_xbc(self, xBC: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        GN = self.ngroups * self.d_state
        return torch.split(xBC, [self.d_inner, GN, GN], dim=-1)  # x, B, C

    def forward(self, u: Tensor, mode: str = "parallel") -> Tensor:
        """(B, T, d_model) -> (B, T, d_model). mode: "parallel" (chunked SSD) or "sequential"."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if mode == "sequential":
            return self._sequential(u)
        Bsz, T, _ = u.shape
        H, P, G, N = self.nheads, self.headdim, self.ngroups, self.d_state
        z, xBC, dt = self._split_in(self.in_proj(u))  # (B, T, d_inner), (B, T, conv_dim), (B, T, H)
        # causal depthwise conv: pad k-1 on both sides, keep the first T outputs
        xBC = self.conv1d(xBC.transpose(1, 2))[..., :T].transpose(1, 2)  # (B, T, conv_dim)
        x, Bm, Cm = self._split_xbc(F.silu(xBC))  # (B, T, d_inner), (B, T, G N) x 2
        x = x.reshape(Bsz, T, H, P)  # (B, T, H, P)
        Bm = Bm.reshape(Bsz, T, G, N)  # (B, T, G, N)
        Cm = Cm.reshape(Bsz, T, G, N)  # (B, T, G, N)
        z = z.reshape(Bsz, T, H, P)  # (B, T, H, P)
        A = self._A()
        if self.use_fused and _fused_chunk_scan is not None and u.is_cuda and T > 0:
            # mamba_ssm's Triton SSD: applies softplus(dt + dt_bias), D skip and silu(z) gate itself
            y = _fused_chunk_scan(
                x, dt, A, Bm, Cm, chunk_size=self.chunk_size, D=self.D, z=z,
                dt_bias=self.dt_bias, dt_softplus=True,
            )  # (B, T, H, P)
        else:
            dt = F.softplus(dt + self.dt_bias)  # (B, T, H)
            X = x * dt.unsqueeze(-1)  # (B, T, H, P)
            if self.scan == "quadratic":
                y = ssd_quadratic(X, dt * A, Bm, Cm)  # (B, T, H, P)
            else:
                y, _ = ssd_chunked(X, dt * A, Bm, Cm, self.chunk_size)  # (B, T, H, P)
            y = (y + x * self.D.unsqueeze(-1)) * F.silu(z)  # (B, T, H, P)
        return self.out_proj(y.reshape(Bsz, T, self.d_inner))  # (B, T, d_inner) -> (B, T, d_model)

    def allocate_states(
        self, batch: int, dtype: torch.dtype, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """Zero conv state (B, conv_dim, d_conv) (newest input last) and SSM state (B, H, P, N)."""
        conv_state = torch.zeros(batch, self.conv_dim, self.d_conv, dtype=dtype, device=device)
        shape = (batch, self.nheads, self.headdim, self.d_state)
        ssm_state = torch.zeros(shape, dtype=dtype, device=device)
        return conv_state, ssm_state

    def step(
        self, u_t: Tensor, conv_state: Tensor, ssm_state: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One frame: u_t (B, d_model) -> (y_t (B, d_model), new conv_state, new ssm_state).

        Pure function of its inputs (states are returned, not updated in place).
        """
        Bsz = u_t.shape[0]
        H, P, G, N = self.nheads, self.headdim, self.ngroups, self.d_state
        z, xBC, dt = self._split_in(self.in_proj(u_t))  # (B, d_inner), (B, conv_dim), (B, H)
        conv_state = torch.cat([conv_state[..., 1:], xBC.unsqueeze(-1)], dim=-1)  # (B, conv_dim, K)
        xBC = (conv_state * self.conv1d.weight.squeeze(1)).sum(-1)  # (B, conv_dim)
        if self.conv1d.bias is not None:
            xBC = xBC + self.conv1d.bias
        x, Bm, Cm = self._split_xbc(F.silu(xBC))
        x = x.reshape(Bsz, H, P)  # (B, H, P)
        Bm = _heads_from_groups(Bm.reshape(Bsz, G, N), H)  # (B, H, N)
        Cm = _heads_from_groups(Cm.reshape(Bsz, G, N), H)  # (B, H, N)
        dt = F.softplus(dt + self.dt_bias)  # (B, H)
        decay = torch.exp(dt * self._A())  # (B, H)
        # h_t = exp(dt A) h_{t-1} + dt x_t B_t^T ;  y_t = h_t C_t + D x_t
        ssm_state = decay[..., None, None] * ssm_state + torch.einsum("bh,bhp,bhn->bhpn", dt, x, Bm)
        y = torch.einsum("bhpn,bhn->bhp", ssm_state, Cm) + self.D.unsqueeze(-1) * x  # (B, H, P)
        y = y.reshape(Bsz, self.d_inner) * F.silu(z)  # (B, d_inner)
        return self.out_proj(y), conv_state, ssm_state

    def _sequential(self, u: Tensor) -> Tensor:
        # reference path: a Python loop over frames through `step`
        conv_state, ssm_state = self.allocate_states(u.shape[0], u.dtype, u.device)
        outs = []
        for t in range(u.shape[1]):
            y, conv_state, ssm_state = self.step(u[:, t], conv_state, ssm_state)
            outs.append(y)
        if not outs:
            return u.new_zeros(u.shape[0], 0, self.d_model)
        return torch.stack(outs, dim=1)  # (B, T, d_model)


class Fp32ResidualStack(nn.Module):
    """x <- LayerNorm(Mamba2(x)) + x per layer, in >= fp32 with autocast off (reference
    `MultiLayerModelFp32`; keys `layers.i.0.*` Mamba2, `layers.i.1.*` LayerNorm)."""

    def __init__(self, layers: list[nn.Sequential]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor, mode: str = "parallel") -> Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            if x.dtype in (torch.float16, torch.bfloat16):
                x = x.float()  # fp64 inputs (tests) are left alone
            for mamba, norm in self.layers:
                x = norm(mamba(x, mode=mode)) + x
        return x


class MambaSeqModel(SequenceModel):
    """`seq_model` for MAMBA: 0 projection, 1 LayerNorm, 2 Fp32ResidualStack.

    `forward(x, mode)`: (B, T, in_dim) -> (B, T, out_dim); mode "sequential" steps the Mamba-2
    recurrences frame by frame (slow reference), "parallel" uses the chunked SSD / fused kernel.
    """

    def forward(self, x: Tensor, mode: str = "parallel") -> Tensor:
        return self[2](self[1](self[0](x)), mode=mode)


def build(
    in_dim: int,
    dim: int,
    *,
    layers: int = 2,
    d_state: int = 64,
    d_conv: int = 3,
    expand: int = 2,
    headdim: int | None = None,
    ngroups: int = 1,
    chunk_size: int = 256,
    use_fused: bool = True,
) -> MambaSeqModel:
    """MAMBA seq_model with the reference's settings; headdim defaults to 32 for D == 128 else 64.

    PyTorch/mamba_ssm default initialisation (the reference applies no custom init to MAMBA).
    D = 104 fails as in the reference (208 not divisible by 64) unless a headdim is given.
    """
    if headdim is None:
        headdim = 32 if dim == 128 else 64
    blocks = [
        nn.Sequential(
            Mamba2(
                dim, d_state=d_state, d_conv=d_conv, expand=expand, headdim=headdim,
                ngroups=ngroups, chunk_size=chunk_size, use_fused=use_fused,
            ),
            nn.LayerNorm(dim),
        )
        for _ in range(layers)
    ]
    return MambaSeqModel(
        projection(in_dim, dim), nn.LayerNorm(dim), Fp32ResidualStack(blocks), out_dim=dim
    )

"""Waveform (16 kHz) -> normalised log-mel spectrogram ``(B, 1, 128, T)`` (SPEC 1.3).

The pipeline is the one the released fmn checkpoints were trained with (EfficientSED's
``FrameMNWrapper`` front end), step by step:

1. pre-emphasis ``y[n] = x[n + 1] - 0.97 x[n]`` as a *valid* convolution: ``N`` samples in,
   ``N - 1`` out;
2. STFT with ``n_fft`` 512, ``win_length`` 400 (25 ms), ``hop_length`` 160 (10 ms), a
   **symmetric** Hann window (``periodic=False``), ``center=True`` (reflect padding), power
   spectrum ``|X|^2`` (257 bins). Frames: ``T = 1 + (N - 1) // hop`` -- 1000 for a 10 s clip;
3. 128 triangular Kaldi/HTK mel filters (mel = 1127 ln(1 + f / 700), no area normalisation)
   from ``torchaudio.compliance.kaldi.get_mel_banks`` over ``[fmin, fmax]``, 256 columns padded
   with one zero column (the Nyquist bin) to 257, applied in float32 with autocast disabled;
4. ``log(clamp(x, min=1e-7))`` and the "fast norm" ``(x + 4.5) / 5``.

Band edges: ``fmin = 0`` and ``fmax = sr // 2 - fmax_aug_range // 2 = 7000 Hz`` in eval mode. In
training mode one pair is drawn per call (shared by the whole batch), as the reference does:
``fmin + randint(fmin_aug_range)`` and ``fmax + fmax_aug_range // 2 - randint(fmax_aug_range)``,
i.e. fmin in [0, 9] Hz and fmax in [6001, 8000] Hz with the defaults.

Two deliberate differences from the reference; outside mixed precision neither changes outputs:

* the reference draws the two random integers even in eval mode (and then ignores them), so
  validation advances the global torch RNG; this module draws only in training mode;
* under mixed precision the reference's pre-emphasis ``conv1d`` is autocast to float16 (only the
  mel matmul is protected), so its features carry float16 rounding (measured on CPU with float16
  autocast: mean |diff| 8e-4, max 0.08 after normalisation); here autocast is disabled for the
  whole front end and every step runs in float32 (float64 for float64 input). Without autocast
  the float32 outputs equal the reference bit for bit, in eval and (same seed) training mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sedlib.config import AudioConfig

PREEMPHASIS = 0.97
LOG_FLOOR = 1e-7
NORM_SHIFT = 4.5
NORM_SCALE = 5.0
# Kaldi's VTLN settings as the reference passes them; with warp factor 1.0 they have no effect.
_VTLN_LOW = 100.0
_VTLN_HIGH = -500.0
_VTLN_WARP = 1.0


def kaldi_mel_banks(config: AudioConfig, fmin: float, fmax: float) -> Tensor:
    """Kaldi/HTK triangular mel filterbank over ``[fmin, fmax]`` Hz, shape ``(n_mels, n_fft//2+1)``.

    ``get_mel_banks`` returns ``n_fft // 2`` columns (it has no Nyquist bin); one zero column is
    appended so the matrix applies directly to a one-sided power spectrum (SPEC 1.3). float32,
    on the CPU, exactly as torchaudio computes it.
    """
    # Deferred import: torchaudio is slow to import and only needed when a front end is built.
    from torchaudio.compliance import kaldi

    banks, _ = kaldi.get_mel_banks(
        config.n_mels,
        config.n_fft,
        float(config.sample_rate),
        float(fmin),
        float(fmax),
        vtln_low=_VTLN_LOW,
        vtln_high=_VTLN_HIGH,
        vtln_warp_factor=_VTLN_WARP,
    )
    return F.pad(banks, (0, 1))  # (F, n_fft // 2) -> (F, n_fft // 2 + 1)


def min_samples(config: AudioConfig) -> int:
    """Shortest input the front end accepts: reflect padding by ``n_fft // 2`` needs the
    pre-emphasised signal (``N - 1`` samples) to be longer than the pad (258 samples, 16 ms)."""
    return config.n_fft // 2 + 2


def num_frames(num_samples: int, config: AudioConfig | None = None) -> int:
    """Frames the front end produces for ``num_samples`` input samples: ``1 + (N - 1) // hop``."""
    cfg = config if config is not None else AudioConfig()
    if num_samples < min_samples(cfg):
        raise ValueError(
            f"the front end needs at least {min_samples(cfg)} samples, got {num_samples}"
        )
    return 1 + (num_samples - 1) // cfg.hop_length


class MelFrontend(nn.Module):
    """The reference log-mel front end (SPEC 1.3), configured from :class:`AudioConfig`.

    Holds no parameters and adds no ``state_dict`` keys: the window, the pre-emphasis kernel and
    the eval-mode mel matrix are non-persistent float32 buffers, so they follow ``.to(device)``
    and are rebuilt, not loaded. Computation runs in float32, or float64 for float64 input
    (half/bfloat16 input is promoted to float32). The float64 path builds its window and kernel
    in float64 (a numerically exact reference for tests); its mel matrix is still torchaudio's
    float32 one, so it differs from an all-float64 computation by ~1e-5 in the mel weights.
    Calling ``.half()`` on the module would round these buffers too: cast the model behind the
    front end, or use autocast (which this module ignores).
    """

    def __init__(self, config: AudioConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else AudioConfig()
        if cfg.fmin_aug_range < 1 or cfg.fmax_aug_range < 1:
            raise ValueError(
                "fmin_aug_range and fmax_aug_range must be >= 1 (1 means no jitter), got "
                f"{cfg.fmin_aug_range} and {cfg.fmax_aug_range}"
            )
        if cfg.win_length > cfg.n_fft:
            raise ValueError(f"win_length {cfg.win_length} exceeds n_fft {cfg.n_fft}")
        self.config = cfg
        self.fmin = float(cfg.fmin)
        self.fmax = float(
            cfg.fmax if cfg.fmax is not None else cfg.sample_rate // 2 - cfg.fmax_aug_range // 2
        )
        highest = self.fmax + cfg.fmax_aug_range // 2
        if not 0.0 <= self.fmin < self.fmax or highest > cfg.sample_rate / 2:
            raise ValueError(
                f"mel band [{self.fmin}, {self.fmax}] Hz with fmax jitter up to {highest} Hz does "
                f"not fit below the Nyquist frequency {cfg.sample_rate / 2} Hz"
            )
        self.register_buffer(
            "window", torch.hann_window(cfg.win_length, periodic=False), persistent=False
        )
        self.register_buffer(
            "preemphasis_kernel", torch.tensor([[[-PREEMPHASIS, 1.0]]]), persistent=False
        )  # (C_out=1, C_in=1, 2)
        self.register_buffer(
            "mel_basis", kaldi_mel_banks(cfg, self.fmin, self.fmax), persistent=False
        )  # (F, n_fft // 2 + 1)

    def sample_band(self) -> tuple[float, float]:
        """The (fmin, fmax) pair for one call: fixed in eval mode, jittered in training mode."""
        if not self.training:
            return self.fmin, self.fmax
        cfg = self.config
        fmin = self.fmin + torch.randint(cfg.fmin_aug_range, (1,)).item()
        fmax = self.fmax + cfg.fmax_aug_range // 2 - torch.randint(cfg.fmax_aug_range, (1,)).item()
        return fmin, fmax

    def _constants(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
        """Pre-emphasis kernel and window for one call.

        float32 uses the buffers, i.e. exactly the reference's float32 values. float64 builds
        both in float64: torch's float32 Hann window is off by up to 2e-7, which shifts the power
        of weak (low-frequency, after pre-emphasis) bins by ~3e-4 relative.
        """
        if dtype == torch.float64:
            kernel = torch.tensor([[[-PREEMPHASIS, 1.0]]], dtype=dtype, device=device)
            window = torch.hann_window(
                self.config.win_length, periodic=False, dtype=dtype, device=device
            )
            return kernel, window
        return (
            self.preemphasis_kernel.to(device=device, dtype=dtype),
            self.window.to(device=device, dtype=dtype),
        )

    def forward(self, waveform: Tensor) -> Tensor:
        """Log-mel features of a batch of 16 kHz waveforms.

        Args:
            waveform: ``(B, N)`` or ``(N,)`` float samples, ``N >= n_fft // 2 + 2`` (258).

        Returns:
            ``(B, 1, F, T)`` with ``F = n_mels`` (128) and ``T = 1 + (N - 1) // hop_length``
            (1000 for 160,000 samples); ``B = 1`` for 1-D input.
        """
        if waveform.dim() == 1:
            waveform = waveform.unsqueeze(0)  # (N,) -> (1, N)
        if waveform.dim() != 2:
            raise ValueError(
                "MelFrontend expects a waveform of shape (B, N) or (N,), "
                f"got {tuple(waveform.shape)}"
            )
        if not waveform.is_floating_point():
            raise TypeError(f"MelFrontend expects float samples, got {waveform.dtype}")
        cfg = self.config
        if waveform.shape[-1] < min_samples(cfg):
            raise ValueError(
                f"MelFrontend needs at least {min_samples(cfg)} samples, got {waveform.shape[-1]}"
            )
        dtype = torch.float64 if waveform.dtype == torch.float64 else torch.float32
        x = waveform.to(dtype)

        kernel, window = self._constants(dtype, x.device)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = F.conv1d(x.unsqueeze(1), kernel).squeeze(1)  # (B, 1, N) -> (B, N - 1)
            spec = torch.stft(
                x,
                cfg.n_fft,
                hop_length=cfg.hop_length,
                win_length=cfg.win_length,
                window=window,
                center=True,
                pad_mode="reflect",
                normalized=False,
                onesided=True,
                return_complex=True,
            )  # (B, n_fft // 2 + 1, T) complex
            power = spec.real.square() + spec.imag.square()  # (B, 257, T)

            fmin, fmax = self.sample_band()
            if (fmin, fmax) == (self.fmin, self.fmax):
                mel_basis = self.mel_basis
            else:
                mel_basis = kaldi_mel_banks(cfg, fmin, fmax)  # training jitter: per call
            mel = torch.matmul(mel_basis.to(device=x.device, dtype=dtype), power)  # (B, F, T)
            mel = torch.log(torch.clamp(mel, min=LOG_FLOOR))
            mel = (mel + NORM_SHIFT) / NORM_SCALE
        return mel.unsqueeze(1)  # (B, 1, F, T)

    def extra_repr(self) -> str:
        cfg = self.config
        return (
            f"sample_rate={cfg.sample_rate}, n_fft={cfg.n_fft}, win_length={cfg.win_length}, "
            f"hop_length={cfg.hop_length}, n_mels={cfg.n_mels}, fmin={self.fmin}, fmax={self.fmax}"
        )

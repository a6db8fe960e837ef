"""The log-mel front end in a form ONNX export traces faithfully: waveform in, model outputs out.

:class:`ExportableMelFrontend` computes what :class:`sedlib.audio.frontend.MelFrontend` computes
in eval mode (pre-emphasis, reflect-padded STFT with the symmetric 400-sample Hann window in a
512-point frame, power, the Kaldi mel matrix, log floor, fast norm), with the STFT written as frames
gathered from the padded signal times the windowed DFT basis (real and imaginary columns), in
float64: the same sums, no complex numbers and no ``aten::stft``, which ONNX export gets wrong or cannot
do (pytorch/audio#3897). :class:`WithFrontend` chains it with a model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sedlib.audio.frontend import LOG_FLOOR, NORM_SCALE, NORM_SHIFT, MelFrontend


class ExportableMelFrontend(nn.Module):
    """``(B, N)`` 16 kHz waveform -> ``(B, 1, 128, 1 + (N - 1) // 160)`` log-mel, equal to the
    eval-mode ``frontend`` (a :class:`MelFrontend`) up to float32 summation order."""

    def __init__(self, frontend: MelFrontend) -> None:
        super().__init__()
        cfg = frontend.config
        n_fft, win = cfg.n_fft, cfg.win_length
        self.hop, self.pad = cfg.hop_length, n_fft // 2
        window = frontend.window.double()  # the float32 window the reference multiplies by
        left = (n_fft - win) // 2  # torch.stft centres a shorter window in the frame
        window = F.pad(window, (left, n_fft - win - left))  # (n_fft,)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        n = torch.arange(n_fft, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * k * n / n_fft  # (K, n_fft)
        basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])  # (2K, n_fft)
        self.register_buffer("basis", basis.T.contiguous(), persistent=False)  # (n_fft, 2K) float64
        self.n_fft = n_fft
        kernel, _ = frontend._constants(torch.float32, torch.device("cpu"))
        self.register_buffer("preemphasis", kernel, persistent=False)  # (1, 1, 2)
        self.register_buffer("mel_basis", frontend.mel_basis.float(), persistent=False)  # (128, K)

    def forward(self, waveform: Tensor) -> Tensor:
        """(B, N) -> (B, 1, 128, T) log-mel."""
        x = F.conv1d(waveform.unsqueeze(1), self.preemphasis)  # (B, 1, N - 1)
        x = F.pad(x, (self.pad, self.pad), mode="reflect").squeeze(1)  # (B, N - 1 + n_fft)
        frames = 1 + (x.shape[-1] - self.n_fft) // self.hop
        index = (torch.arange(frames)[:, None] * self.hop
                 + torch.arange(self.n_fft)[None, :])  # (T, n_fft) sample positions
        # the DFT in float64: its 512-term sums lose too much in weak bins in float32
        spec = torch.matmul(x[:, index].double(), self.basis)  # (B, T, 2K): real, then imaginary
        re, im = spec.chunk(2, dim=-1)  # (B, T, K) each
        power = (re.square() + im.square()).float().transpose(1, 2)  # (B, K, T)
        mel = torch.matmul(self.mel_basis, power)  # (B, 128, T)
        mel = (torch.log(torch.clamp(mel, min=LOG_FLOOR)) + NORM_SHIFT) / NORM_SCALE
        return mel.unsqueeze(1)  # (B, 1, 128, T)


class WithFrontend(nn.Module):
    """``model`` behind :class:`ExportableMelFrontend`: waveform ``(B, N)`` -> (strong, weak)."""

    def __init__(self, model: nn.Module, frontend: MelFrontend) -> None:
        super().__init__()
        self.frontend = ExportableMelFrontend(frontend)
        self.model = model
        self.name = getattr(model, "name", type(model).__name__)
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, waveform: Tensor) -> tuple[Tensor, Tensor]:
        """(B, N) waveform -> (strong (B, K, T/4), weak (B, K)) logits."""
        return self.model(self.frontend(waveform))

"""MelFrontend (SPEC 1.3): shapes, Kaldi banks, train/eval behaviour, and an independent
float64 NumPy re-implementation of the whole formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sedlib.audio.frontend import MelFrontend, kaldi_mel_banks, min_samples, num_frames
from sedlib.config import AudioConfig

SR = 16_000


@pytest.fixture(scope="module")
def frontend() -> MelFrontend:
    return MelFrontend(AudioConfig()).eval()


def _noise(n: int, batch: int | None = None, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if batch is None else (batch, n)
    return 0.1 * torch.randn(shape, generator=g, dtype=dtype)


# ---------------------------------------------------------------- independent NumPy reference


def _htk_mel(f: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _numpy_mel_banks(fmin: float, fmax: float, n_mels=128, n_fft=512, sr=SR) -> np.ndarray:
    """Kaldi triangles on the HTK mel scale, written from the formula (not from torchaudio)."""
    lo, hi = _htk_mel(fmin), _htk_mel(fmax)
    step = (hi - lo) / (n_mels + 1)  # n_mels + 2 equally spaced edges
    m = np.arange(n_mels, dtype=np.float64)[:, None]
    left, center, right = lo + m * step, lo + (m + 1) * step, lo + (m + 2) * step
    fft_mel = _htk_mel(np.arange(n_fft // 2) * sr / n_fft)[None, :]  # no Nyquist bin
    rising = (fft_mel - left) / (center - left)
    falling = (right - fft_mel) / (right - center)
    banks = np.clip(np.minimum(rising, falling), 0.0, None)
    return np.concatenate([banks, np.zeros((n_mels, 1))], axis=1)  # (128, 257)


def _numpy_frontend(x: np.ndarray, banks: np.ndarray, n_fft=512, win=400, hop=160) -> np.ndarray:
    """(N,) float64 -> (F, T): pre-emphasis, centred reflect-padded STFT with a symmetric Hann
    window zero-padded to n_fft, power, mel, log-clamp, fast norm."""
    y = x[1:] - 0.97 * x[:-1]
    padded = np.pad(y, n_fft // 2, mode="reflect")
    frames = 1 + (padded.size - n_fft) // hop
    n = np.arange(win)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / (win - 1))  # symmetric: ends are both 0
    window = np.zeros(n_fft)
    offset = (n_fft - win) // 2
    window[offset : offset + win] = hann
    index = np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]
    spectrum = np.fft.rfft(padded[index] * window, axis=1)  # (T, 257)
    power = (np.abs(spectrum) ** 2).T  # (257, T)
    return (np.log(np.maximum(banks @ power, 1e-7)) + 4.5) / 5.0


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize(("seconds", "batch"), [(10.0, 2), (3.0, 2), (25.0, 1)])
def test_output_shape(frontend: MelFrontend, seconds: float, batch: int) -> None:
    n = int(seconds * SR)
    out = frontend(_noise(n, batch))
    assert out.shape == (batch, 1, 128, 1 + (n - 1) // 160)
    assert out.shape[-1] == num_frames(n)
    assert torch.isfinite(out).all()


def test_ten_seconds_gives_config_frame_count(frontend: MelFrontend) -> None:
    cfg = AudioConfig()
    out = frontend(_noise(cfg.clip_samples))
    assert out.shape == (1, 1, 128, 1000) == (1, 1, 128, cfg.mel_frames)


def test_odd_lengths_and_minimum(frontend: MelFrontend) -> None:
    for n in (min_samples(AudioConfig()), 1601, 16_161):
        assert frontend(_noise(n)).shape[-1] == 1 + (n - 1) // 160
    with pytest.raises(ValueError, match="at least 258"):
        frontend(_noise(257))
    with pytest.raises(ValueError, match="shape"):
        frontend(_noise(1000, 2).unsqueeze(0))


def test_mel_banks_equal_torchaudio_kaldi(frontend: MelFrontend) -> None:
    from torchaudio.compliance import kaldi

    expected, _ = kaldi.get_mel_banks(128, 512, 16000.0, 0.0, 7000.0, 100.0, -500.0, 1.0)
    assert frontend.fmin == 0.0 and frontend.fmax == 7000.0
    assert frontend.mel_basis.shape == (128, 257)
    assert torch.equal(frontend.mel_basis[:, :256], expected)
    assert torch.all(frontend.mel_basis[:, 256] == 0)
    assert torch.equal(kaldi_mel_banks(AudioConfig(), 0.0, 7000.0), frontend.mel_basis)


@pytest.mark.parametrize(("fmin", "fmax"), [(0.0, 7000.0), (9.0, 6001.0), (3.0, 8000.0)])
def test_kaldi_banks_match_htk_formula(fmin: float, fmax: float) -> None:
    # torchaudio builds the banks in float32: mel values near 2800 carry ~2e-4 mel of rounding,
    # i.e. ~1e-5 of a 20-mel triangle, hence the tolerance.
    ours = kaldi_mel_banks(AudioConfig(), fmin, fmax).double().numpy()
    np.testing.assert_allclose(ours, _numpy_mel_banks(fmin, fmax), rtol=0, atol=5e-5)


def test_matches_float64_numpy_reimplementation(frontend: MelFrontend) -> None:
    x = np.random.default_rng(1).standard_normal(int(1.5 * SR)) * 0.1
    out64 = frontend(torch.from_numpy(x))[0, 0]
    assert out64.dtype == torch.float64
    # Same float64 pipeline with the module's own bank matrix: only rounding may differ.
    same_banks = _numpy_frontend(x, frontend.mel_basis.double().numpy())
    np.testing.assert_allclose(out64.numpy(), same_banks, rtol=0, atol=1e-9)
    # Fully independent (NumPy banks): bounded by torchaudio's float32 banks, see above.
    independent = _numpy_frontend(x, _numpy_mel_banks(0.0, 7000.0))
    np.testing.assert_allclose(out64.numpy(), independent, rtol=0, atol=2e-4)
    out32 = frontend(torch.from_numpy(x).float())[0, 0]
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.double().numpy(), independent, rtol=0, atol=5e-4)


def test_eval_is_deterministic_and_leaves_rng_alone(frontend: MelFrontend) -> None:
    x = _noise(8000, 2)
    state = torch.random.get_rng_state()
    a, b = frontend(x), frontend(x)
    assert torch.equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_training_jitter_changes_output_eval_does_not() -> None:
    fe = MelFrontend()
    x = _noise(8000, 2)
    reference = fe.eval()(x)
    fe.train()
    torch.manual_seed(0)
    jittered = [fe(x) for _ in range(3)]
    assert all(not torch.allclose(j, reference) for j in jittered)
    torch.manual_seed(0)
    assert torch.equal(fe(x), jittered[0])  # the jitter follows torch's global RNG
    assert torch.equal(fe.eval()(x), reference)


def test_training_band_ranges() -> None:
    fe = MelFrontend().train()
    torch.manual_seed(0)
    bands = np.array([fe.sample_band() for _ in range(3000)])
    assert bands[:, 0].min() == 0 and bands[:, 0].max() == 9
    assert bands[:, 1].min() == 6001 and bands[:, 1].max() == 8000


def test_no_state_dict_keys_and_no_parameters(frontend: MelFrontend) -> None:
    assert frontend.state_dict() == {}
    assert list(frontend.parameters()) == []
    assert {name for name, _ in frontend.named_buffers()} == {
        "window",
        "preemphasis_kernel",
        "mel_basis",
    }


def test_batch_invariance(frontend: MelFrontend) -> None:
    x = _noise(4000, 3, dtype=torch.float64)
    batch = frontend(x)
    for i in range(3):
        assert torch.allclose(frontend(x[i]), batch[i : i + 1], rtol=0, atol=1e-12)


def test_autocast_is_disabled_inside(frontend: MelFrontend) -> None:
    x = _noise(4000, 2)
    plain = frontend(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = frontend(x)
    assert cast.dtype == torch.float32
    assert torch.equal(cast, plain)


def test_low_precision_input_promoted(frontend: MelFrontend) -> None:
    out = frontend(_noise(4000).to(torch.bfloat16))
    assert out.dtype == torch.float32
    with pytest.raises(TypeError, match="float"):
        frontend(torch.ones(4000, dtype=torch.int16))


def test_band_must_fit_below_nyquist() -> None:
    with pytest.raises(ValueError, match="Nyquist"):
        MelFrontend(AudioConfig(fmax=7500.0))  # jitter would reach 8500 Hz
    assert MelFrontend(AudioConfig(fmax=7000.0)).fmax == 7000.0

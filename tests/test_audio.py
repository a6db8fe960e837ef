"""sedlib.audio: reading, downmix, resampling, errors, windowing and streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sedlib.audio.io import (
    audio_duration,
    fit_to_length,
    iter_windows,
    load_audio,
    num_windows,
    split_windows,
)
from sedlib.errors import AudioError

SR = 16_000


def _sine(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _noise(n: int, channels: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (n,) if channels is None else (n, channels)
    return (0.2 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize(
    ("suffix", "subtype", "atol"),
    [(".wav", "FLOAT", 0.0), (".wav", "PCM_16", 1 / 32768), (".flac", "PCM_16", 1 / 32768)],
)
def test_lossless_round_trip(tmp_path: Path, suffix: str, subtype: str, atol: float) -> None:
    x = _sine(440.0, 0.5, SR)
    path = tmp_path / f"clip{suffix}"
    sf.write(path, x, SR, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, rtol=0, atol=atol)
    assert audio_duration(path) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "suffix",
    [
        ".ogg",
        pytest.param(
            ".mp3",
            marks=pytest.mark.skipif(
                "MP3" not in sf.available_formats(), reason="libsndfile built without MP3"
            ),
        ),
    ],
)
def test_lossy_round_trip(tmp_path: Path, suffix: str) -> None:
    x = _sine(440.0, 0.5, SR)
    path = tmp_path / f"clip{suffix}"
    sf.write(path, x, SR)
    y = load_audio(str(path))  # str paths work too
    assert y.dtype == np.float32 and y.shape == x.shape
    snr = 10 * np.log10(np.sum(x**2) / np.sum((y - x) ** 2))
    assert snr > 20.0  # lossy, but clearly the same signal


def test_stereo_is_averaged(tmp_path: Path) -> None:
    stereo = _noise(4000, channels=2)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, SR, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), stereo.mean(axis=1), rtol=0, atol=1e-7)


def test_resampling_keeps_frequency_and_length(tmp_path: Path) -> None:
    path = tmp_path / "cd.wav"
    sf.write(path, _sine(1000.0, 1.0, 44_100), 44_100, subtype="FLOAT")
    y = load_audio(path, sample_rate=SR)
    assert y.shape == (SR,)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) * SR / y.size == pytest.approx(1000.0)
    middle = y[SR // 4 : 3 * SR // 4]  # away from the zero-padded ends
    assert np.max(np.abs(middle)) == pytest.approx(0.5, abs=0.01)


def test_upsampling_length(tmp_path: Path) -> None:
    path = tmp_path / "phone.wav"
    sf.write(path, _sine(300.0, 0.5, 8000), 8000)
    assert load_audio(path).shape == (8000,)


# ---------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.wav"
    for call in (load_audio, audio_duration, iter_windows):
        with pytest.raises(AudioError, match="nowhere.wav"):
            call(path)


def test_text_file_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 10)
    for call in (load_audio, audio_duration, iter_windows):
        with pytest.raises(AudioError, match="notes.wav"):
            call(path)


def test_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path)


def test_zero_length(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    for call in (load_audio, iter_windows):
        with pytest.raises(AudioError, match=r"empty\.wav.*zero-length"):
            call(path)


def test_nan_sample_names_first_bad_index(tmp_path: Path) -> None:
    x = _noise(2000, channels=2)
    x[1234, 1] = np.nan
    x[1500, 0] = np.inf
    path = tmp_path / "broken.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"broken\.wav.*sample index 1234"):
        load_audio(path)
    with pytest.raises(AudioError, match=r"broken\.wav.*sample index 1234"):
        list(iter_windows(path, window_seconds=0.05))


def test_audio_error_is_a_value_error() -> None:
    assert issubclass(AudioError, ValueError)


# ---------------------------------------------------------------- windowing


def test_fit_to_length() -> None:
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(fit_to_length(x, 3), [0, 1, 2])
    np.testing.assert_array_equal(fit_to_length(x, 7), [0, 1, 2, 3, 4, 0, 0])
    assert fit_to_length(np.ones((2, 5)), 6).shape == (2, 6)
    assert fit_to_length(x, 7).dtype == np.float32


@pytest.mark.parametrize(
    ("length", "window", "hop", "expected"),
    [(10, 4, 4, 3), (8, 4, 4, 2), (3, 4, 4, 1), (10, 4, 2, 4), (11, 4, 2, 5), (0, 4, 4, 0)],
)
def test_split_windows_shapes(length: int, window: int, hop: int, expected: int) -> None:
    x = np.arange(1, length + 1, dtype=np.float32)
    frames = split_windows(x, window, hop)
    assert frames.shape == (expected, window) and num_windows(length, window, hop) == expected
    for k, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, fit_to_length(x[k * hop : k * hop + window], window))
    if length:
        assert frames[-1, -1] == 0 or (length - window) % hop == 0  # only the last one is padded


def test_split_windows_default_hop_and_bad_input() -> None:
    assert split_windows(np.zeros(10), 5).shape == (2, 5)
    with pytest.raises(ValueError, match="1-D"):
        split_windows(np.zeros((2, 10)), 5)
    with pytest.raises(ValueError, match="positive"):
        split_windows(np.zeros(10), 5, 0)


def test_iter_windows_at_native_rate_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "long.flac"
    sf.write(path, _noise(int(2.3 * SR), channels=2), SR)  # PCM_16: exact at native rate
    whole = load_audio(path)
    pairs = list(iter_windows(path, window_seconds=1.0))
    assert [start for start, _ in pairs] == [0.0, 1.0, 2.0]
    windows = np.stack([w for _, w in pairs])
    assert windows.dtype == np.float32 and windows.shape == (3, SR)
    np.testing.assert_array_equal(np.concatenate(windows)[: whole.size], whole)
    np.testing.assert_array_equal(windows, split_windows(whole, SR))
    overlapping = list(iter_windows(path, window_seconds=1.0, hop_seconds=0.5))
    assert [start for start, _ in overlapping] == [0.0, 0.5, 1.0, 1.5]
    np.testing.assert_array_equal(
        np.stack([w for _, w in overlapping]), split_windows(whole, SR, SR // 2)
    )


@pytest.mark.parametrize(("rate", "hop_seconds"), [(44_100, None), (22_050, 0.3), (8_000, None)])
def test_iter_windows_resampled_is_seamless(tmp_path: Path, rate: int, hop_seconds) -> None:
    path = tmp_path / f"sr{rate}.wav"
    sf.write(path, _noise(int(1.7 * rate)), rate, subtype="FLOAT")
    whole = load_audio(path)
    windows = np.stack([w for _, w in iter_windows(path, 0.5, hop_seconds)])
    hop = None if hop_seconds is None else int(round(hop_seconds * SR))
    # Context-padded block reads reproduce the whole-file resampling up to float32 rounding.
    np.testing.assert_allclose(windows, split_windows(whole, SR // 2, hop), rtol=0, atol=1e-6)


def test_iter_windows_validates_arguments(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, _noise(1000), SR)
    with pytest.raises(ValueError, match="window_seconds"):
        iter_windows(path, window_seconds=0.0)

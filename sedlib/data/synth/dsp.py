"""Signal-processing pieces the synthetic sound recipes share: whole-millisecond durations,
envelopes (with fuzzy fades), phase accumulation, harmonics, FFT/STFT filters, coloured noise.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.fft import next_fast_len

_STFT_WIN = 512  # short-time filter frame (32 ms at 16 kHz), hop = half of it


_VOWELS = np.array([(730, 1090), (530, 1840), (270, 2290), (570, 840), (300, 870), (660, 1720)])
Segments = tuple[tuple[int, int], ...]


def samples(ms: int, sr: int) -> int:
    """Integer milliseconds -> samples (exact for sample rates that are multiples of 1 kHz)."""
    return ms * sr // 1000


def _ms(rng: np.random.Generator, lo_s: float, hi_s: float) -> int:
    return int(round(rng.uniform(lo_s, hi_s) * 1000))


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _rise(n: int) -> np.ndarray:
    """Raised-cosine ramp of ``n`` samples, strictly inside (0, 1)."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / max(n, 1))


def _envelope(n: int, sr: int, attack_ms: int, release_ms: int, fuzzy_db: float = 0.0) -> np.ndarray:
    """Flat envelope with raised-cosine edges; ``fuzzy_db > 0`` makes the edges fades that are
    linear in dB from ``-fuzzy_db`` (fuzzy onsets/offsets, after a 5 ms click-free start)."""
    env = np.ones(n)
    for length_ms, sl in ((attack_ms, slice(None)), (release_ms, slice(None, None, -1))):
        m = min(samples(length_ms, sr), n // 2)
        if m <= 0:
            continue
        ramp = _rise(m)
        if fuzzy_db > 0:
            ramp = 10.0 ** (-fuzzy_db * (1.0 - (np.arange(m) + 0.5) / m) / 20.0)
            k = min(samples(5, sr), m)
            ramp[:k] *= _rise(k)
        view = env[sl]
        view[:m] *= ramp
    return env


def _phase(freq: np.ndarray | float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Instantaneous phase (radians) of a (possibly time-varying) frequency, random start."""
    start = rng.uniform(0, 2 * np.pi)
    if np.isscalar(freq):
        return start + 2 * np.pi * float(freq) / sr * np.arange(n)
    return start + 2 * np.pi / sr * np.cumsum(freq)


def _harmonics(phase: np.ndarray, amps, max_freq: float, sr: int) -> np.ndarray:
    """sum_h amps[h-1] * sin(h * phase), dropping harmonics above 0.45 sr (anti-aliasing).

    Uses sin((h+1)p) = 2 cos(p) sin(hp) - sin((h-1)p): two multiplies per harmonic, not a sin.
    """
    s_prev, s_cur = np.zeros_like(phase), np.sin(phase)
    two_cos = 2.0 * np.cos(phase)
    out = amps[0] * s_cur
    for h, a in enumerate(amps[1:], start=2):
        s_prev, s_cur = s_cur, two_cos * s_cur - s_prev
        if h * max_freq < 0.45 * sr and a:
            out += a * s_cur
    return out


def _fft_filter(x: np.ndarray, sr: int, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Zero-phase filter: multiply the spectrum of ``x`` by ``gain(freqs_hz)`` (computed at a
    fast FFT length: arbitrary lengths with large prime factors are 10x slower)."""
    size = next_fast_len(len(x), real=True)
    freqs = np.fft.rfftfreq(size, 1.0 / sr)
    return np.fft.irfft(np.fft.rfft(x, n=size) * gain(freqs), n=size)[:len(x)]


def _colored_noise(rng: np.random.Generator, n: int, sr: int,
                   gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``gain(freqs_hz)``, drawn directly in the
    frequency domain (one inverse FFT instead of a forward and an inverse one)."""
    size = next_fast_len(n, real=True)
    freqs = np.fft.rfftfreq(size, 1.0 / sr)
    spectrum = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
    return np.fft.irfft(spectrum * gain(freqs), n=size)[:n]


def _stft_filter(x: np.ndarray, sr: int,
                 gain: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Time-varying filter: ``gain(times_s (T, 1), freqs_hz (1, F)) -> (T, F)`` applied frame-wise
    (sqrt-Hann frames of 512 samples, 50 % overlap: unit gain reconstructs ``x`` exactly)."""
    n, win, hop = len(x), _STFT_WIN, _STFT_WIN // 2
    n_frames = -(-n // hop) + 1
    padded = np.zeros((n_frames + 1) * hop)
    padded[hop:hop + n] = x
    blocks = padded.reshape(-1, hop)  # (T + 1, hop)
    frames = np.concatenate([blocks[:-1], blocks[1:]], axis=1)  # (T, win)
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win))
    times = (np.arange(n_frames) * hop / sr)[:, None]  # frame centres, (T, 1)
    freqs = np.fft.rfftfreq(win, 1.0 / sr)[None, :]  # (1, F)
    y = np.fft.irfft(np.fft.rfft(frames * window, axis=1) * gain(times, freqs), n=win, axis=1)
    y *= window  # (T, win)
    out = np.zeros_like(padded).reshape(-1, hop)  # (T + 1, hop)
    out[:-1] += y[:, :hop]
    out[1:] += y[:, hop:]
    return out.reshape(-1)[hop:hop + n]


def _lorentz(f: np.ndarray, centre, width) -> np.ndarray:
    return 1.0 / np.sqrt(1.0 + ((f - centre) / (0.5 * width)) ** 2)


def _whole(length_ms: int) -> Segments:
    return ((0, length_ms),)

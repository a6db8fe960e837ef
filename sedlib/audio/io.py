"""Audio input: load any file soundfile reads, downmix, resample to 16 kHz, chunk long audio.

Reading goes through ``soundfile`` (libsndfile: WAV, FLAC, OGG/Vorbis, and MP3 with
libsndfile >= 1.1), never ``torchaudio.load``, which needs torchcodec and FFmpeg.

Resampling: ``torchaudio.transforms.Resample`` with ``sinc_interp_kaiser`` (lowpass filter width
6, rolloff 0.99, Kaiser beta 14.77). This is the resampler of the reference training pipeline
(EfficientSED ``data_util/transforms.py``), so the released checkpoints saw audio resampled
exactly this way; it is pure PyTorch and works with the CPU-only torchaudio install. (The
reference ``inference.py`` loads with librosa/soxr instead; the two differ only near the band
edge.) One cached transform per rate pair is used everywhere, so ``load_audio`` and
``iter_windows`` share the same kernel bit for bit.

Downmix is the mean over channels (as librosa's ``mono=True`` in the reference inference script;
the reference training transform kept channel 0 of its mono AudioSet MP3s).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from sedlib.errors import AudioError

logger = logging.getLogger(__name__)

RESAMPLING_METHOD = "sinc_interp_kaiser"
LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99

PathLike = str | Path


# ------------------------------------------------------------------ file access and checks


def _existing_file(path: PathLike) -> Path:
    """The path as a Path, or AudioError when it does not name an existing regular file."""
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such audio file")
    if not p.is_file():
        raise AudioError(f"{p}: not a regular file")
    return p


def _open(path: Path) -> sf.SoundFile:
    """Open for reading; libsndfile's complaint becomes an AudioError naming the file."""
    try:
        return sf.SoundFile(str(path))
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: cannot read audio (unsupported or corrupt file): {exc}") from exc


def _read_mono(f: sf.SoundFile, path: Path, start: int, frames: int) -> np.ndarray:
    """``frames`` native-rate frames from frame ``start``, downmixed to float32 mono.

    Checks every sample for NaN/inf and names the first bad one by its frame index in the file.
    """
    try:
        f.seek(start)
        data = f.read(frames, dtype="float32", always_2d=True)  # (frames, channels)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise AudioError(f"{path}: cannot read frames {start}..{start + frames}: {exc}") from exc
    finite = np.isfinite(data)
    if not finite.all():
        frame, channel = np.argwhere(~finite)[0]
        index = start + int(frame)
        raise AudioError(
            f"{path}: non-finite sample ({data[frame, channel]}) at sample index {index} "
            f"(channel {channel}, {index / f.samplerate:.3f} s); the file holds NaN/inf values"
        )
    return data.mean(axis=1, dtype=np.float32)  # (frames,)


def _nonempty_frames(f: sf.SoundFile, path: Path) -> int:
    if f.frames <= 0:
        raise AudioError(f"{path}: zero-length audio (no samples)")
    return int(f.frames)


# ------------------------------------------------------------------ resampling


@functools.lru_cache(maxsize=16)
def _resampler(orig_sr: int, new_sr: int):  # -> torchaudio.transforms.Resample
    """One cached Resample module per rate pair (its kernel is built once)."""
    import torchaudio  # deferred: slow import, only needed when rates differ

    return torchaudio.transforms.Resample(
        orig_sr,
        new_sr,
        resampling_method=RESAMPLING_METHOD,
        lowpass_filter_width=LOWPASS_FILTER_WIDTH,
        rolloff=ROLLOFF,
    )


def resample(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Band-limited resampling of a 1-D float signal; ``ceil(len * new / orig)`` samples out."""
    if orig_sr == new_sr:
        return np.asarray(x, dtype=np.float32)
    import torch

    with torch.no_grad():
        y = _resampler(int(orig_sr), int(new_sr))(torch.from_numpy(np.asarray(x, np.float32)))
    return y.numpy()


def _resampled_length(n: int, orig_sr: int, new_sr: int) -> int:
    """Samples at ``new_sr`` that resampling ``n`` samples yields: ceil(n * new / orig)."""
    g = math.gcd(orig_sr, new_sr)
    return -(-n * (new_sr // g) // (orig_sr // g))


def _read_resampled(
    f: sf.SoundFile, path: Path, out_start: int, out_len: int, new_sr: int
) -> np.ndarray:
    """Samples ``[out_start, out_start + out_len)`` of the whole file resampled to ``new_sr``,
    computed from a short native-rate read -- equal to slicing ``load_audio(path)``.

    The sinc resampler is a strided convolution: reduced by the gcd, every ``n`` output samples
    advance ``o`` input samples, and each output looks at most ``width`` input samples beyond its
    block. Reading from a block boundary (a multiple of ``o``) with ``width`` samples of context
    on both sides therefore reproduces the whole-file output exactly (zero padding only at the
    true file ends, as for the whole file), so consecutive windows join seamlessly.
    """
    orig_sr = f.samplerate
    total = int(f.frames)
    if orig_sr == new_sr:
        return _read_mono(f, path, out_start, min(out_len, total - out_start))
    g = math.gcd(orig_sr, new_sr)
    o, n = orig_sr // g, new_sr // g
    width = math.ceil(LOWPASS_FILTER_WIDTH * o / (min(o, n) * ROLLOFF))  # torchaudio's kernel reach
    margin = -(-width // o) + 1  # in blocks of o input samples
    first_block = max(0, out_start // n - margin)
    last_block = -(-(out_start + out_len) // n) + margin
    a, b = first_block * o, min(total, last_block * o)
    y = resample(_read_mono(f, path, a, b - a), orig_sr, new_sr)
    offset = out_start - first_block * n  # output index of out_start within y
    return y[offset : offset + out_len]


# ------------------------------------------------------------------ public API


def audio_duration(path: PathLike) -> float:
    """Duration in seconds from the file header (no samples are decoded)."""
    p = _existing_file(path)
    try:
        info = sf.info(str(p))
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{p}: cannot read audio (unsupported or corrupt file): {exc}") from exc
    return float(info.frames) / float(info.samplerate)


def load_audio(path: PathLike, sample_rate: int = 16_000) -> np.ndarray:
    """The whole file as float32 mono at ``sample_rate`` Hz, shape ``(N,)``.

    Multi-channel audio is averaged; other rates are resampled (see module docstring). Raises
    :class:`AudioError` naming the file for a missing, unreadable or empty file, or one holding
    NaN/inf samples (with the first bad sample's index).
    """
    p = _existing_file(path)
    with _open(p) as f:
        frames = _nonempty_frames(f, p)
        x = _read_mono(f, p, 0, frames)
        orig_sr = f.samplerate
    if x.size == 0:
        raise AudioError(f"{p}: zero-length audio (no samples could be decoded)")
    if orig_sr != sample_rate:
        logger.debug("resampling %s from %d Hz to %d Hz", p, orig_sr, sample_rate)
    return resample(x, orig_sr, sample_rate)


def fit_to_length(x: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad the last axis to exactly ``n`` samples (a cut returns a view)."""
    if n < 0:
        raise ValueError(f"target length must be >= 0, got {n}")
    length = x.shape[-1]
    if length >= n:
        return x[..., :n]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n - length)]
    return np.pad(x, pad)


def num_windows(length: int, window: int, hop: int) -> int:
    """Windows of ``window`` samples every ``hop`` samples needed to cover ``length`` samples.

    The last window may run past the end (it is zero-padded); an empty signal has no windows.
    """
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got window={window}, hop={hop}")
    if length <= 0:
        return 0
    return 1 + -(-max(0, length - window) // hop)


def split_windows(x: np.ndarray, window: int, hop: int | None = None) -> np.ndarray:
    """Cut a 1-D signal into ``(num_windows, window)`` frames starting every ``hop`` samples
    (default: ``window``, no overlap); the last window is zero-padded."""
    if x.ndim != 1:
        raise ValueError(f"split_windows expects a 1-D signal, got shape {x.shape}")
    hop = window if hop is None else hop
    count = num_windows(x.shape[0], window, hop)
    if count == 0:
        return np.zeros((0, window), dtype=x.dtype)
    padded = fit_to_length(x, (count - 1) * hop + window)
    frames = np.lib.stride_tricks.sliding_window_view(padded, window)[::hop]  # (count, window)
    return np.ascontiguousarray(frames[:count])


def _seconds_to_samples(seconds: float, sample_rate: int, what: str) -> int:
    samples = int(round(seconds * sample_rate))
    if samples <= 0:
        raise ValueError(f"{what} must be at least one sample, got {seconds} s at {sample_rate} Hz")
    return samples


def iter_windows(
    path: PathLike,
    window_seconds: float = 10.0,
    hop_seconds: float | None = None,
    sample_rate: int = 16_000,
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream a long file as ``(start_seconds, window)`` pairs, windows float32 ``(W,)`` mono at
    ``sample_rate``, ``W = round(window_seconds * sample_rate)``.

    Only one window (plus a few samples of resampling context) is read at a time, so an hour of
    audio is never held in memory. Windows start every ``hop_seconds`` (default: back to back)
    and the last is zero-padded; their samples equal those of :func:`load_audio` followed by
    :func:`split_windows`. A missing, unreadable or empty file raises :class:`AudioError` at
    call time; NaN/inf samples raise it when the window holding them is read.
    """
    p = _existing_file(path)
    window = _seconds_to_samples(window_seconds, sample_rate, "window_seconds")
    hop = (
        window
        if hop_seconds is None
        else _seconds_to_samples(hop_seconds, sample_rate, "hop_seconds")
    )
    with _open(p) as f:  # validate eagerly; the generator reopens the file
        _nonempty_frames(f, p)
    return _iter_windows(p, window, hop, sample_rate)


def _iter_windows(
    path: Path, window: int, hop: int, sample_rate: int
) -> Iterator[tuple[float, np.ndarray]]:
    with _open(path) as f:
        total_out = _resampled_length(int(f.frames), f.samplerate, sample_rate)
        count = num_windows(total_out, window, hop)
        logger.debug("%s: %d windows of %d samples, hop %d", path, count, window, hop)
        for k in range(count):
            start = k * hop
            chunk = _read_resampled(f, path, start, min(window, total_out - start), sample_rate)
            yield start / sample_rate, fit_to_length(chunk, window)

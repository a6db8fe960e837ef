"""Post-processing of frame scores: the reference median filter (vectorised, equal to scipy's
reflect-mode ``median_filter``), :class:`FrameScores` (one file's sigmoid scores on the 40 ms
grid) and thresholding into events. Shared by evaluation, detection and the study.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from sedlib.data.labels import Event, Vocabulary, decode_frames
from sedlib.evaluate.inputs import path_of as _path_of


@dataclass
class FrameScores:
    """Sigmoid frame scores of one file: ``scores`` ``(K, T)`` on a ``frame_seconds`` grid."""

    filename: str
    scores: np.ndarray
    duration: float
    frame_seconds: float
    classes: tuple[str, ...]


def scores_to_events(scores: FrameScores, threshold: float = 0.5, median_filter: int = 9) -> list[Event]:
    """Median filter over time, ``score > threshold``, runs of active frames -> events."""
    from sedlib.evaluate.postprocess import median_filter as filt

    smoothed = filt(scores.scores, median_filter) if median_filter and median_filter > 1 else scores.scores
    vocab = Vocabulary(scores.classes, "scores")
    return decode_frames(smoothed > threshold, vocab, scores.filename, scores.frame_seconds,
                         duration=scores.duration)


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Compare-exchange pairs of Batcher's odd-even merge sort network for ``n`` inputs."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def _median_rows(x: np.ndarray, size: int) -> np.ndarray:
    """Median over the last axis of 2-D ``x`` (R, T), window ``size`` (odd), mode 'reflect'.

    A sorting network of element-wise min/max over shifted views, in cache-sized row blocks:
    ~6x faster than ``scipy.ndimage.median_filter`` and equal to it (a median is a selection,
    so no rounding can differ).
    """
    half = size // 2
    rows, t = x.shape
    padded = np.pad(x, [(0, 0), (half, half)], mode="symmetric")  # scipy 'reflect' == numpy 'symmetric'
    out = np.empty_like(x)
    pairs = _batcher_pairs(size)
    block = max(1, 131072 // (t + 2 * half))
    for r in range(0, rows, block):
        p = padded[r:r + block]
        v = [p[:, i:i + t] for i in range(size)]
        for a, b in pairs:
            lo = np.minimum(v[a], v[b])
            v[b] = np.maximum(v[a], v[b])
            v[a] = lo
        out[r:r + block] = v[half]
    return out


def _median_rows_generic(x: np.ndarray, size: int) -> np.ndarray:
    """The same filter for any size (even ones too): a selection over sliding windows."""
    from numpy.lib.stride_tricks import sliding_window_view

    left = size // 2  # scipy's window for origin 0: [i - size // 2, i + (size - 1) // 2]
    padded = np.pad(x, [(0, 0), (left, size - 1 - left)], mode="symmetric")
    out = np.empty_like(x)
    block = max(1, 4_000_000 // (x.shape[1] * size))
    for r in range(0, len(x), block):
        windows = sliding_window_view(padded[r:r + block], size, axis=-1)  # (rows, T, size)
        out[r:r + block] = np.partition(windows, left, axis=-1)[..., left]
    return out


def median_filter(scores: np.ndarray, size: int | Sequence[int] = 9) -> np.ndarray:
    """Median filter over time, per class: ``scores`` (K, T) or (B, K, T) -> same shape and dtype.

    Equals ``scipy.ndimage.median_filter(scores, size=(1, size))`` (mode 'reflect'), i.e. the
    reference's ``median_filter(scores_tk, (size, 1))`` on the transposed (T, K) matrix, for every
    size <= T (tested). ``size`` may be one int or one int per class (K ints); 1 changes nothing.
    Windows longer than the clip reflect again at each end (numpy's 'symmetric' padding); scipy
    reads past the row there and its results depend on memory layout. NaN scores give undefined
    results (as in scipy). Odd sizes use a sorting network (~6x faster than scipy).
    """
    arr = np.asarray(scores)
    if arr.ndim not in (2, 3):
        raise ValueError(f"median_filter expects scores of shape (K, T) or (B, K, T), got {arr.shape}")
    k, t = arr.shape[-2:]
    sizes = np.full(k, size, dtype=int) if np.isscalar(size) else np.asarray(size, dtype=int)
    if sizes.shape != (k,) or (sizes < 1).any():
        raise ValueError(f"median_filter size must be a positive int or {k} positive ints (one per "
                         f"class), got {size!r}")
    out = np.empty_like(arr)
    for s in np.unique(sizes):
        cls = np.flatnonzero(sizes == s)
        part = arr[..., cls, :]  # (..., k_s, T)
        if s == 1 or t == 0:
            out[..., cls, :] = part
        elif s % 2 == 1 and s <= 31 and t >= s:
            out[..., cls, :] = _median_rows(part.reshape(-1, t), int(s)).reshape(part.shape)
        else:
            out[..., cls, :] = _median_rows_generic(part.reshape(-1, t), int(s)).reshape(part.shape)
    return out


class MappedScores(Mapping):
    """A lazy view ``{clip: fn(scores[clip])}``: nothing is computed or held until asked for."""

    def __init__(self, scores: Mapping[str, pd.DataFrame], fn: Callable[[pd.DataFrame], pd.DataFrame]):
        self._scores, self._fn = scores, fn

    def __getitem__(self, key: str) -> pd.DataFrame:
        return self._fn(self._scores[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._scores)

    def __len__(self) -> int:
        return len(self._scores)

    def path_of(self, key: str) -> str | None:
        return _path_of(self._scores, key)


def median_filter_scores(scores: Mapping[str, pd.DataFrame], size: int | Sequence[int] = 9) -> MappedScores:
    """Score DataFrames with every class column median-filtered over time (lazily, per clip)."""
    def apply(df: pd.DataFrame) -> pd.DataFrame:
        values = df.to_numpy(dtype=np.float64)  # (T, 2 + K)
        filtered = median_filter(values[:, 2:].T, size).T  # (T, K)
        return pd.DataFrame(np.concatenate((values[:, :2], filtered), axis=1), columns=df.columns)
    return MappedScores(scores, apply)

"""Streaming detection: a live source in, one event record out as soon as it is decided.

The stream is cut into the windows :class:`~sedlib.detect.detector.Detector` would cut from the
whole recording (window W, hop H, the last zero-padded) and scored in the same way; a frame's
score is the mean over the windows that cover it, final once the window starting after it has
been scored. The median filter runs over the final frames with its reflect padding only at the
stream's true start and end, so each smoothed frame equals the whole file's. Thresholding and
run decoding then open an event at its first active frame and close it after its last.

Memory is constant: the ring of samples for the next window, the scores of one window's frames,
and the median filter's context. The closed events of a stream equal
``Detector.detect_file`` on the same audio (tested), at a delay of W to W + H plus the filter's
half width (events are decided on the averaged scores, not on the newest window).

:func:`stream_events` is the generator; each record is a dict ``{"event_label", "onset",
"offset", "state"}`` with times in seconds from the stream's start, ``state`` ``"open"``
(``offset`` None) or ``"closed"``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator

import numpy as np

from sedlib.audio.live import Source, StreamResampler
from sedlib.detect.detector import Detector
from sedlib.errors import SedlibError
from sedlib.evaluate.postprocess import median_filter as median_rows


class _Smoother:
    """Median filter (reflect mode) over frames that arrive in order; emits each frame once its
    right-hand context is final, equal to filtering the whole sequence at once."""

    def __init__(self, classes: int, size: int) -> None:
        self.size = size if size and size > 1 else 1
        self.half = self.size // 2
        self._raw = np.zeros((classes, 0), np.float32)  # (K, n) raw frames from _start
        self._start = 0  # frame index of _raw[:, 0]
        self._next = 0  # next frame to emit

    def push(self, frames: np.ndarray, last: bool = False) -> tuple[int, np.ndarray]:
        """Append final raw frames (K, n); returns (first frame index, smoothed (K, m))."""
        self._raw = np.concatenate([self._raw, frames], axis=1)
        end = self._start + self._raw.shape[1]
        stop = end if last else end - self.half
        first = self._next
        if stop <= first:
            return first, np.zeros((self._raw.shape[0], 0), np.float32)
        lo = max(self._start, first - self.half)  # context on the left (the true start if 0)
        seg = self._raw[:, lo - self._start:]
        smoothed = median_rows(seg, self.size) if self.size > 1 else seg
        out = smoothed[:, first - lo:stop - lo]
        self._next = stop
        keep = max(self._start, stop - self.half)
        self._raw, self._start = self._raw[:, keep - self._start:], keep
        return first, out


class StreamDetector:
    """Feed samples (float32 mono at the detector's rate) with :meth:`push`, end with
    :meth:`finish`; both return the event records decided by then (module doc)."""

    def __init__(self, detector: Detector, *, threshold: float = 0.5, median_filter: int = 9) -> None:
        self.detector = detector
        self.threshold = float(threshold)
        cfg = detector.audio_config
        self.frame = cfg.frame_seconds
        self.frame_samples = round(self.frame * cfg.sample_rate)
        self.window = round(detector.window_seconds * cfg.sample_rate)
        self.hop = round(detector.hop_seconds * cfg.sample_rate)
        self.hop_frames = self.hop // self.frame_samples
        k = len(detector.vocab)
        self._ring = np.zeros(0, np.float32)  # samples from _ring_start on
        self._ring_start = 0
        self._samples = 0  # samples received
        self._windows = 0  # windows scored
        self._acc = np.zeros((k, 0), np.float64)  # (K, n) score sums from frame _acc_start
        self._count = np.zeros(0, np.int32)
        self._acc_start = 0
        self._smoother = _Smoother(k, median_filter)
        self._open: dict[int, int] = {}  # class -> onset frame of its open event
        self._is_open = np.zeros(k, bool)
        self.latencies: list[float] = []  # per window: seconds from the samples' arrival to its records
        self.compute_seconds = 0.0  # spent scoring, filtering and decoding

    def _score(self, starts: list[int], windows: list[np.ndarray]) -> None:
        scores = self.detector._score_batch(windows)  # (B, K, T_win)
        for start, s in zip(starts, scores):
            first = start // self.frame_samples - self._acc_start
            need = first + s.shape[1] - self._acc.shape[1]
            if need > 0:
                self._acc = np.pad(self._acc, ((0, 0), (0, need)))
                self._count = np.pad(self._count, (0, need))
            self._acc[:, first:first + s.shape[1]] += s
            self._count[first:first + s.shape[1]] += 1

    def _final_frames(self, upto: int) -> np.ndarray:
        """Pop the averaged scores of frames [_acc_start, upto) (K, n)."""
        n = upto - self._acc_start
        out = (self._acc[:, :n] / np.maximum(self._count[:n], 1)).astype(np.float32)
        self._acc, self._count, self._acc_start = self._acc[:, n:], self._count[n:], upto
        return out

    def _decode(self, first: int, smoothed: np.ndarray) -> list[dict]:
        """Records for smoothed frames (K, m) starting at frame ``first``, in time then class order."""
        names = self.detector.vocab.names
        records = []
        active = smoothed > self.threshold  # (K, m)
        if not active.shape[1]:
            return records
        for t in np.flatnonzero((active != np.c_[self._is_open, active[:, :-1]]).any(axis=0)):
            for k in np.flatnonzero(active[:, t] != self._is_open):
                self._is_open[k] = active[k, t]
                if active[k, t]:
                    self._open[int(k)] = first + int(t)
                    records.append({"event_label": names[k], "onset": round((first + int(t)) * self.frame, 6),
                                    "offset": None, "state": "open"})
                else:
                    records.append(self._close(int(k), first + int(t)))
        return records

    def _close(self, k: int, stop: int, duration: float | None = None) -> dict:
        onset = self._open.pop(k) * self.frame
        offset = stop * self.frame if duration is None else min(stop * self.frame, duration)
        return {"event_label": self.detector.vocab.names[k], "onset": round(onset, 6),
                "offset": round(offset, 6), "state": "closed"}

    def _run_windows(self, full_only: bool) -> list[tuple[int, np.ndarray]]:
        ready = []
        while True:
            start = self._windows * self.hop
            end = start + self.window
            if full_only and end > self._samples:
                break
            if not full_only and self._windows > 0 and start - self.hop + self.window >= self._samples:
                break  # the previous window already reached the end (sedlib.audio.io.num_windows)
            if not full_only and self._samples == 0:
                break
            w = self._ring[start - self._ring_start:end - self._ring_start]
            ready.append((start, np.pad(w, (0, self.window - len(w)))))
            self._windows += 1
        keep = self._windows * self.hop  # the next window's first sample
        if keep > self._ring_start:
            self._ring = self._ring[keep - self._ring_start:]
            self._ring_start = keep
        return ready

    def _process(self, ready: list[tuple[int, np.ndarray]], t_in: float, limit: int | None = None
                 ) -> list[dict]:
        """Score ``ready`` windows in batches; pass the frames that became final (never beyond
        ``limit``, the stream's frame count once known) through the filter and the decoder."""
        records = []
        for i in range(0, len(ready), self.detector.batch_size):
            batch = ready[i:i + self.detector.batch_size]
            t0 = time.perf_counter()
            self._score([s for s, _ in batch], [w for _, w in batch])
            final = self._windows_final(batch[-1][0])
            final = final if limit is None else min(final, limit)
            first, smoothed = self._smoother.push(self._final_frames(final))
            records += self._decode(first, smoothed)
            done = time.perf_counter()
            self.compute_seconds += done - t0
            self.latencies += [done - t_in] * len(batch)
        return records

    def _windows_final(self, last_start: int) -> int:
        """Frames before the next window's start are final."""
        return last_start // self.frame_samples + self.hop_frames

    def push(self, samples: np.ndarray) -> list[dict]:
        """Add samples ``(n,)``; score every window that is now complete."""
        t_in = time.perf_counter()
        samples = np.asarray(samples, np.float32).reshape(-1)
        if samples.size and not np.isfinite(samples).all():
            index = self._samples + int(np.flatnonzero(~np.isfinite(samples))[0])
            raise SedlibError(f"non-finite sample at index {index} of the stream")
        self._ring = np.concatenate([self._ring, samples])
        self._samples += samples.size
        return self._process(self._run_windows(full_only=True), t_in)

    def finish(self) -> list[dict]:
        """End of stream: score the last (zero-padded) windows, flush the filter, close events."""
        t_in = time.perf_counter()
        duration = self._samples / self.detector.audio_config.sample_rate
        total = max(1, math.ceil(round(duration / self.frame, 6)))
        records = self._process(self._run_windows(full_only=False), t_in, limit=total)
        pending = self._final_frames(max(self._acc_start, total))  # (K, total - frames already final)
        first, smoothed = self._smoother.push(pending, last=True)
        records += self._decode(first, smoothed)
        stop = first + smoothed.shape[1]
        for k in sorted(self._open, key=lambda k: (self._open[k], self.detector.vocab.names[k])):
            records.append(self._close(k, stop, duration))
        self._is_open[:] = False
        return records

    @property
    def seconds(self) -> float:
        """Audio received so far, in seconds."""
        return self._samples / self.detector.audio_config.sample_rate


def stream_events(source: Source | Iterable[np.ndarray], detector: Detector, *, rate: int | None = None,
                  threshold: float = 0.5, median_filter: int = 9,
                  state: StreamDetector | None = None) -> Iterator[dict]:
    """Records for a live source (chunks of float32 mono at ``source.rate`` or ``rate``),
    resampled to the detector's rate on the way (:class:`~sedlib.audio.live.StreamResampler`).
    Pass ``state`` to read its latencies afterwards."""
    rate = getattr(source, "rate", None) or rate or detector.audio_config.sample_rate
    stream = state or StreamDetector(detector, threshold=threshold, median_filter=median_filter)
    resampler = StreamResampler(rate, detector.audio_config.sample_rate)
    for chunk in source:
        yield from stream.push(resampler.push(chunk))
    yield from stream.push(resampler.finish())
    yield from stream.finish()

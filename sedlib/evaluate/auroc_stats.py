"""Segment-based (partial) AUROC of the fast engine (:mod:`sedlib.evaluate.psds_engine`), kept small.

``sed_scores_eval.segment_based.auroc`` takes each class's score maximum in every segment
(AudioSet Strong eval: 407 classes x 169,350 one-second segments, 550 MB as float64), counts
positives and negatives above every unique maximum, and integrates the ROC up to ``max_fpr``.

Exact pruning: with ``N`` negative segments of a class, a threshold ``u`` has FPR > max_fpr once
``m`` negatives lie at or above it (``m`` the smallest count with ``m / N > max_fpr``). The partial
AUC reads the ROC up to max_fpr plus its first point beyond, which is the point at ``u*``, the
m-th largest negative maximum; every point it reads lies at a threshold >= ``u*``, and there
only segments scoring >= ``u*`` count. So per class only the maxima at or above the m-th
largest negative seen so far are kept (an upper bound on ``N`` is known from the start, so the
level only ever rises towards ``u*``); ~10% of the segments at max_fpr 0.1.
"""

from __future__ import annotations

import numpy as np

from sedlib.evaluate.config import AUROCConfig
from sedlib.evaluate.inputs import Inputs
from sedlib.evaluate.psds_stats import reverse_cumsum


class SegmentStats:
    """Per-class segment maxima (and whether the segment is positive) at or above a rising level."""

    flush_every = 1024  # clips

    def __init__(self, cfg: AUROCConfig, num_classes: int, segments: dict[str, tuple[int, int]]):
        self.cfg, self.k, self.segments = cfg, num_classes, segments
        self.total = max((stop for _, stop in segments.values()), default=0)
        self.need = _needed_negatives(self.total, cfg.max_fpr)  # >= m for any N <= total
        self.positives = np.zeros(num_classes, dtype=np.int64)
        self.level = np.full(num_classes, -np.inf)
        self.kept: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(num_classes)]
        self.count = np.zeros(num_classes, dtype=np.int64)  # values kept per class
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []  # ((K, n), (K, n)) per clip

    def add_clip(self, cid: str, ts: np.ndarray, s: np.ndarray,
                 gt: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        """One clip: ``ts`` (T + 1,) frame boundaries, ``s`` (T, K) scores, ``gt`` class -> events."""
        cfg = self.cfg
        start, stop = self.segments[cid]
        n = stop - start
        ts = np.round(ts, cfg.time_decimals)
        bounds = np.round(np.arange(n + 1) * cfg.segment_length, cfg.time_decimals)
        seg_on, seg_off = bounds[:-1], bounds[1:]
        first = np.maximum(np.searchsorted(ts, seg_on, side="right") - 1, 0)
        last = np.minimum(np.searchsorted(ts, seg_off, side="left"), len(ts) - 1)
        if n and np.array_equal(first[1:], last[:-1]) and last[-1] == len(s) and (last > first).all():
            maxima = np.maximum.reduceat(s, first, axis=0).T  # (K, n): segments tile the frames
        else:
            maxima = np.zeros((self.k, n))  # a segment without frames scores 0, as in the library
            for i in np.flatnonzero(last > first):
                maxima[:, i] = s[first[i]:last[i]].max(axis=0)
        positive = np.zeros((self.k, n), dtype=bool)
        for c, (onsets, offsets) in gt.items():
            for onset, offset in zip(onsets, offsets):
                positive[c] |= (seg_on < offset) & (seg_off > onset) & (seg_off > seg_on)
        self.positives += positive.sum(axis=1)
        self.pending.append((maxima, positive))
        if len(self.pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Fold the pending clips into the kept maxima; cut a class at its level when it has
        twice the negatives it needs."""
        if not self.pending:
            return
        maxima = np.concatenate([p[0] for p in self.pending], axis=1)  # (K, n)
        positive = np.concatenate([p[1] for p in self.pending], axis=1)
        self.pending = []
        above = maxima >= self.level[:, None]
        for c in range(self.k):
            keep = above[c]
            self.kept[c].append((maxima[c, keep], positive[c, keep]))
            self.count[c] += int(keep.sum())
            if self.count[c] >= 2 * self.need:
                self._cut(c)

    def _cut(self, c: int) -> None:
        values = np.concatenate([v for v, _ in self.kept[c]])
        positive = np.concatenate([p for _, p in self.kept[c]])
        negatives = values[~positive]
        if len(negatives) >= self.need:
            self.level[c] = np.partition(negatives, len(negatives) - self.need)[len(negatives) - self.need]
            keep = values >= self.level[c]
            values, positive = values[keep], positive[keep]
        self.kept[c] = [(values, positive)]
        self.count[c] = len(values)

    def merge(self, other: SegmentStats) -> None:
        """Take over another process's share of the clips."""
        self.flush()
        other.flush()
        self.positives += other.positives
        for c in range(self.k):
            self.kept[c] += other.kept[c]
            self.count[c] += other.count[c]

    def result(self, classes: list[str]) -> tuple[float, dict[str, float]]:
        """Mean and per-class AUROC, as ``sed_scores_eval.segment_based.auroc`` computes them."""
        from sed_scores_eval.base_modules.curves import linear_auc

        self.flush()
        cfg = self.cfg
        per_class = {}
        for c, name in enumerate(classes):
            values = np.concatenate([v for v, _ in self.kept[c]] or [np.empty(0)])
            positive = np.concatenate([p for _, p in self.kept[c]] or [np.empty(0, bool)])
            n_ref = float(self.positives[c])
            n_neg = float(self.total - self.positives[c])  # = the library's tns + fps, everywhere
            unique, inverse = np.unique(values, return_inverse=True)
            tps = reverse_cumsum(np.bincount(inverse, weights=positive, minlength=len(unique)))
            fps = reverse_cumsum(np.bincount(inverse, weights=~positive, minlength=len(unique)))
            with np.errstate(invalid="ignore", divide="ignore"):
                tpr, fpr = tps / n_ref, fps / n_neg
            order = np.lexsort((tpr, fpr))  # sed_scores_eval's xsort
            auc = linear_auc(tpr[order], fpr[order], max_x=cfg.max_fpr)
            if cfg.max_fpr is not None and cfg.mcclish_correction:
                lo, hi = 0.5 * cfg.max_fpr ** 2, cfg.max_fpr
                auc = 0.5 * (1 + (auc - lo) / (hi - lo))
            else:
                auc = auc / (1 if cfg.max_fpr is None else cfg.max_fpr)
            per_class[name] = float(auc)
        return float(np.mean(list(per_class.values()))), per_class

def _needed_negatives(total: int, max_fpr: float | None) -> int:
    """The smallest negative count ``m`` with ``m / total > max_fpr`` (more than any cut needs);
    ``total + 1`` (never cut) without a max_fpr."""
    if max_fpr is None or max_fpr >= 1:
        return total + 1
    m = int(np.floor(max_fpr * total))
    while m / max(total, 1) <= max_fpr:
        m += 1
    return m


def segment_layout(inputs: Inputs, cfg: AUROCConfig) -> dict[str, tuple[int, int]]:
    """clip -> its (start, stop) segment numbers, clips in evaluation order."""
    out, start = {}, 0
    for cid in inputs.clips:
        n = int(np.ceil(inputs.durations[cid] / cfg.segment_length))
        out[cid] = (start, start + n)
        start += n
    return out

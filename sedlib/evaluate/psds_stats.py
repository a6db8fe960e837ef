"""Accumulators of the fast PSDS engine (:mod:`sedlib.evaluate.psds_engine`, whose docstring gives the
exactness argument): per PSDS configuration, the score thresholds where a class's TP / FP / cross
trigger counts change, pruned as they stream in. ``result`` then combines them as
``sed_scores_eval`` does, with its own functions. (Segment-based AUROC: :mod:`sedlib.evaluate.auroc_stats`.)
"""

from __future__ import annotations

import math

import numpy as np

from sedlib.evaluate.config import SECONDS_PER_UNIT, PSDSConfig
from sedlib.evaluate.inputs import EvaluationError
from sedlib.evaluate.psds_counts import ClipPairs, intersection_deltas, library_deltas

_EMPTY = np.empty(0)
_BATCH = 64  # clips whose full pairs are counted together


class PSDSStats:
    """Intersection-based change points of one PSDS configuration, pruned as
    :mod:`sedlib.evaluate.psds_engine` explains."""

    def __init__(self, cfg: PSDSConfig, num_classes: int, dataset_duration: float, no_gt_pairs: np.ndarray):
        self.cfg, self.k, self.duration = cfg, num_classes, dataset_duration
        self.unit = SECONDS_PER_UNIT[cfg.unit_of_time]
        # L false positives make eFPR > max_efpr with a margin of unit/duration
        self.limit = math.floor(cfg.max_efpr * dataset_duration / self.unit) + 2
        self.prunable = no_gt_pairs >= self.limit
        self.prune = cfg.dtc_threshold > 0 and bool(self.prunable.any())
        self.theta = np.full(num_classes, -np.inf)
        self.fixed = False
        self.top = np.full((num_classes, self.limit), -np.inf) if self.prune else None
        self.pending: list[np.ndarray] = []
        self.parts: list[list[np.ndarray]] = [[], [], [], []]  # class, score, tps delta, fps delta
        self.cts_parts: list[list[np.ndarray]] = [[], [], [], []]  # class, other class, score, delta
        self.batch: list[ClipPairs] = []  # clips whose full pairs are not yet counted
        self.chunks: list[tuple[np.ndarray, ...]] = []
        self.cts_chunks: list[tuple[np.ndarray, ...]] = []
        self.stored = 0
        self.stored_after_prune = 0
        self.finite_at_prune = 0

    def count_maxima(self, maxima: np.ndarray, has_gt: np.ndarray) -> None:
        """Count one clip's (clip, class) pairs without ground truth towards the pruning levels."""
        if self.prune and not self.fixed:
            self.pending.append(np.where(has_gt, -np.inf, maxima))

    def established(self) -> float:
        """Fraction of the prunable classes whose pruning level is known."""
        return float(np.isfinite(self.theta[self.prunable]).mean()) if self.prune else 1.0

    def update_top(self) -> None:
        """Fold the counted maxima into the per-class top L; raise the pruning levels ``theta``."""
        if not self.pending:
            return
        cand = np.concatenate([self.top, np.stack(self.pending, axis=1)], axis=1)  # (K, L + n)
        kth = cand.shape[1] - self.limit
        self.top = np.partition(cand, kth, axis=1)[:, kth:]
        self.theta = self.top.min(axis=1)  # the L-th largest maximum; -inf until L are known
        self.pending = []

    def set_top(self, candidates: np.ndarray) -> None:
        """Levels from counted maxima ``candidates`` (K, >= L) of all clips (a parallel prepass)."""
        kth = candidates.shape[1] - self.limit
        self.top = np.partition(candidates, kth, axis=1)[:, kth:] if kth > 0 else candidates
        self.theta = self.top.min(axis=1)
        self.fixed = True

    def add_clip(self, ts: np.ndarray, s: np.ndarray, gt: dict[int, tuple[np.ndarray, np.ndarray]],
                 maxima: np.ndarray, has_gt: np.ndarray, count: bool = True) -> None:
        cfg, theta = self.cfg, self.theta
        if cfg.dtc_threshold * float(np.min(np.diff(ts))) < 10.0 ** -cfg.time_decimals:
            # below this a detection without ground truth could pass the DTC after rounding
            raise EvaluationError("frames too short for the fast PSDS computation; use engine='reference'")
        if count:
            self.count_maxima(maxima, has_gt)
        alive = maxima > theta
        fast, full = alive & ~has_gt, alive & has_gt
        over = s.T > theta[:, None]  # (K, T); C-contiguous when s is a DataFrame's block
        if cfg.cttc_threshold is not None and gt and fast.any():
            # a cross trigger needs a detection overlapping another class's event; detections above
            # the pruning level lie in frames above it, so only pairs with such a frame inside an
            # event need the full count (sed_scores_eval counts every pair that way)
            on = np.concatenate([v[0] for v in gt.values()])
            off = np.concatenate([v[1] for v in gt.values()])
            in_event = ((ts[:-1, None] < off) & (ts[1:, None] > on)).any(axis=1)  # (T,)
            risky = fast & (over & in_event).any(axis=1)
            fast, full = fast & ~risky, full | risky
        if fast.any():
            # sed_scores_eval's onset_deltas (+1 at local maxima, -1 at local minima), evaluated
            # only at frames above the pruning level: nothing below it can matter
            c_idx, t_idx = np.divmod(np.flatnonzero(over & fast[:, None]), s.shape[0])
            value = s[t_idx, c_idx]
            last = len(s) - 1
            prev = np.where(t_idx > 0, s[np.maximum(t_idx - 1, 0), c_idx], -np.inf)
            nxt = np.where(t_idx < last, s[np.minimum(t_idx + 1, last), c_idx], -np.inf)
            delta = (value > prev).astype(np.int32) - (nxt > value)
            keep = delta != 0
            self._append(c_idx[keep], value[keep], np.zeros(int(keep.sum()), np.int32), delta[keep])
        if full.any():
            idx = np.flatnonzero(full)
            labels = sorted(gt)
            self.batch.append(ClipPairs(
                ts, s[:, idx], idx, theta[idx],
                np.concatenate([gt[c][0] for c in labels]) if gt else _EMPTY,
                np.concatenate([gt[c][1] for c in labels]) if gt else _EMPTY,
                np.concatenate([np.full(len(gt[c][0]), c) for c in labels]) if gt else np.empty(0, int),
            ))
            if len(self.batch) >= _BATCH:
                self._count_batch()

    def _count_batch(self) -> None:
        """Count the pending clips' full pairs together (:mod:`sedlib.evaluate.psds_counts`)."""
        if not self.batch:
            return
        cfg = self.cfg
        args = (cfg.dtc_threshold, cfg.gtc_threshold, cfg.cttc_threshold, cfg.time_decimals)
        bad = [bool(np.isneginf(it.scores).any()) for it in self.batch]  # -inf: the library's case
        finite = [it for it, b in zip(self.batch, bad) if not b]
        rest = [it for it, b in zip(self.batch, bad) if b]
        out = []
        if finite:  # None: a rounding could differ from the library's, so let it count
            out.append(intersection_deltas(finite, *args) or library_deltas(finite, *args))
        if rest:
            out.append(library_deltas(rest, *args))
        self.batch = []
        for d in out:
            self._append(*d.main)
            if d.cts is not None:
                for part, value in zip(self.cts_parts, d.cts):
                    part.append(value)

    def _append(self, cls, score, tps, fps) -> None:
        for part, value in zip(self.parts, (cls, score, tps, fps)):
            part.append(value)

    def flush(self) -> None:
        """Turn the clips added since the last flush into a chunk; raise pruning levels; prune."""
        self._count_batch()
        if self.parts[0]:
            cls, score, tps, fps = (np.concatenate(p) for p in self.parts)
            chunk = (cls.astype(np.int32), score, tps.astype(np.int32), fps.astype(np.int32))
            self.chunks.append(chunk)
            self.stored += len(chunk[0])
            self.parts = [[], [], [], []]
        if self.cts_parts[0]:
            cls, other, score, delta = (np.concatenate(p) for p in self.cts_parts)
            self.cts_chunks.append((cls.astype(np.int32), other.astype(np.int32), score, delta.astype(np.int32)))
            self.cts_parts = [[], [], [], []]
        if self.prune and not self.fixed:
            self.update_top()
            finite = int(np.isfinite(self.theta).sum())
            slack = max(self.stored_after_prune // 4, 250_000)
            if finite > self.finite_at_prune or self.stored > self.stored_after_prune + slack:
                self.prune_stored()

    def prune_stored(self) -> None:
        def cut(chunks: list[tuple[np.ndarray, ...]], score_at: int) -> list[tuple[np.ndarray, ...]]:
            out = []
            for chunk in chunks:
                keep = chunk[score_at] > self.theta[chunk[0]]
                out.append(tuple(a[keep] for a in chunk))
            return out
        self.chunks = cut(self.chunks, 1)
        self.cts_chunks = cut(self.cts_chunks, 2)
        self.stored = self.stored_after_prune = sum(len(c[0]) for c in self.chunks)
        self.finite_at_prune = int(np.isfinite(self.theta).sum())

    def merge(self, other: "PSDSStats") -> None:
        """Take over the change points of a shard (another process's share of the clips)."""
        self.flush()
        other.flush()
        self.chunks += other.chunks
        self.cts_chunks += other.cts_chunks
        # each shard's level bounds the final one from below (it saw a subset of the pairs)
        self.theta = np.maximum(self.theta, other.theta)
        self.prune_stored()

    def result(
        self, n_ref: np.ndarray, t_ref: np.ndarray, classes: list[str]
    ) -> tuple[float, dict[str, float]]:
        """PSDS and per-class PSDS, as ``sed_scores_eval.intersection_based.psds`` computes them."""
        from sed_scores_eval.intersection_based.psds import (
            multi_class_psd_roc_from_single_class_psd_rocs,
            psds_from_psd_roc,
        )

        self.flush()
        self.prune_stored()
        cfg, k = self.cfg, self.k
        dtypes = (np.int32, float, np.int32, np.int32)
        cls, score, tps, fps = (np.concatenate([c[i] for c in self.chunks]) if self.chunks
                                else np.empty(0, dt) for i, dt in enumerate(dtypes))
        self.chunks = []  # (memory) the accumulator is spent after its result
        order = np.argsort(cls, kind="stable")  # by class (a radix sort); by score per class below
        cls, score, tps, fps = cls[order], score[order], tps[order], fps[order]
        del order
        bounds = np.searchsorted(cls, np.arange(k + 1))
        has_cts = bool(self.cts_chunks)
        if has_cts:
            ccls, cother, cscore, cdelta = (np.concatenate([c[i] for c in self.cts_chunks]) for i in range(4))
            self.cts_chunks = []
            corder = np.argsort(ccls, kind="stable")
            ccls, cother, cscore, cdelta = ccls[corder], cother[corder], cscore[corder], cdelta[corder]
            cbounds = np.searchsorted(ccls, np.arange(k + 1))
        rocs = {}
        for c in range(k):
            a, b = bounds[c], bounds[c + 1]
            by_score = np.argsort(score[a:b])  # ties are summed below, so any order of them will do
            s = score[a:b][by_score]
            starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if b > a else np.empty(0, int)
            unique = s[starts]
            tp_count = reverse_cumsum(np.add.reduceat(tps[a:b][by_score], starts) if b > a else np.empty(0))
            fp_count = reverse_cumsum(np.add.reduceat(fps[a:b][by_score], starts) if b > a else np.empty(0))
            tpr = tp_count / max(int(n_ref[c]), 1)
            efpr = fp_count / self.duration
            if cfg.alpha_ct != 0:
                ct_sum = np.zeros(len(unique) + 1)
                if has_cts:  # each cross trigger weighs 1 / (the other class's event time)
                    ca, cb = cbounds[c], cbounds[c + 1]
                    rate = cdelta[ca:cb] / np.maximum(t_ref[cother[ca:cb]], 1e-12)
                    pos = np.searchsorted(unique, cscore[ca:cb])
                    ct_sum = reverse_cumsum(np.bincount(pos, weights=rate, minlength=len(unique)))
                # = np.mean over the K - 1 other classes' rates (summed in another order: equal to
                # sed_scores_eval's to float precision, not bit for bit)
                efpr = efpr + cfg.alpha_ct * (ct_sum / (k - 1) if k > 1 else np.full_like(ct_sum, np.nan))
            efpr = efpr * self.unit
            rocs[classes[c]] = _sort_and_cut(tpr, efpr, cfg.max_efpr)
        etpr, efpr = multi_class_psd_roc_from_single_class_psd_rocs(rocs, cfg.alpha_st, cfg.max_efpr)
        per_class = {c: float(psds_from_psd_roc(t, f, cfg.max_efpr)) for c, (t, f) in rocs.items()}
        return float(psds_from_psd_roc(etpr, efpr, cfg.max_efpr)), per_class


def reverse_cumsum(deltas: np.ndarray) -> np.ndarray:
    """Deltas at ascending unique scores -> counts at each score, plus 0 at +inf (float64)."""
    return np.concatenate((np.cumsum(deltas[::-1])[::-1], [0])).astype(np.float64)


def _sort_and_cut(tpr: np.ndarray, efpr: np.ndarray, max_efpr: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``sed_scores_eval.intersection_based.psds._sort_and_cut`` with a vectorised ``xsort``.

    ``xsort`` orders operating points by (eFPR, TPR) with Python's stable ``sorted``;
    ``np.lexsort`` is stable and gives the same order, in C.
    """
    tpr, efpr = tpr[::-1], efpr[::-1]
    order = np.lexsort((tpr, efpr))
    tpr, efpr = tpr[order], efpr[order]
    run_max = np.maximum.accumulate(tpr)
    rising = np.concatenate(([0], np.arange(1, len(tpr))[run_max[1:] > run_max[:-1]]))
    tpr, efpr = tpr[rising], efpr[rising]
    efpr, first = np.unique(efpr[::-1], return_index=True)
    tpr = tpr[-1 - first]
    if max_efpr is not None:
        cut = int(np.searchsorted(efpr, max_efpr, side="right"))  # first index with efpr > max_efpr
        tpr, efpr = tpr[:cut], efpr[:cut]
    return tpr, efpr

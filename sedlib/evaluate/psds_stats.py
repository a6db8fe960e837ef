"""Accumulators of the fast PSDS engine (:mod:`sedlib.evaluate.psds_engine`, whose docstring gives the
exactness argument): per PSDS configuration, the score thresholds where a class's TP / FP / cross
trigger counts change, pruned as they stream in; per AUROC configuration, segment maxima and
labels. Each ``result`` then combines them as ``sed_scores_eval`` does, with its own functions.
"""

from __future__ import annotations

import math

import numpy as np

from sedlib.evaluate.config import SECONDS_PER_UNIT, AUROCConfig, PSDSConfig
from sedlib.evaluate.inputs import EvaluationError, Inputs

_EMPTY = np.empty(0)


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

    def add_clip(self, ts: np.ndarray, s: np.ndarray, gt: dict[int, tuple[np.ndarray, np.ndarray]],
                 maxima: np.ndarray, has_gt: np.ndarray, count: bool = True) -> None:
        from sed_scores_eval.base_modules.cy_detection import onset_offset_curves
        from sed_scores_eval.intersection_based.intermediate_statistics import (
            statistics_fn,
        )

        cfg, theta = self.cfg, self.theta
        if cfg.dtc_threshold * float(np.min(np.diff(ts))) < 10.0 ** -cfg.time_decimals:
            # below this a detection without ground truth could pass the DTC after rounding
            raise EvaluationError("frames too short for the fast PSDS computation; use engine='reference'")
        if count:
            self.count_maxima(maxima, has_gt)
        alive = maxima > theta
        fast, full = alive & ~has_gt, alive & has_gt
        if cfg.cttc_threshold is not None and gt and fast.any():
            # a cross trigger needs a detection overlapping another class's event; detections above
            # the pruning level lie in frames above it, so only pairs with such a frame inside an
            # event need the full count (sed_scores_eval counts every pair that way)
            on = np.concatenate([v[0] for v in gt.values()])
            off = np.concatenate([v[1] for v in gt.values()])
            in_event = ((ts[:-1, None] < off) & (ts[1:, None] > on)).any(axis=1)  # (T,)
            risky = fast & ((s > theta) & in_event[:, None]).any(axis=0)
            fast, full = fast & ~risky, full | risky
        if fast.any():
            # sed_scores_eval's onset_deltas (+1 at local maxima, -1 at local minima), evaluated
            # only at frames above the pruning level: nothing below it can matter
            above = s.T > np.where(fast, theta, np.inf)[:, None]  # (K, T); C-contiguous when s is
            c_idx, t_idx = np.divmod(np.flatnonzero(above), s.shape[0])  # a DataFrame's block
            value = s[t_idx, c_idx]
            last = len(s) - 1
            prev = np.where(t_idx > 0, s[np.maximum(t_idx - 1, 0), c_idx], -np.inf)
            nxt = np.where(t_idx < last, s[np.minimum(t_idx + 1, last), c_idx], -np.inf)
            delta = (value > prev).astype(np.int32) - (nxt > value)
            keep = delta != 0
            self._append(c_idx[keep], value[keep], np.zeros(int(keep.sum()), np.int32), delta[keep])
        others_on = {o: v[0] for o, v in gt.items()} if cfg.cttc_threshold is not None else {}
        others_off = {o: v[1] for o, v in gt.items()} if cfg.cttc_threshold is not None else {}
        for c in np.flatnonzero(full):
            sc = np.ascontiguousarray(s[:, c])
            cands = np.unique(sc)
            if theta[c] > -np.inf:
                cands = cands[cands > theta[c]]
            if not cands.size:
                continue
            _, det_on, det_off = onset_offset_curves(sc, ts, cands)
            target_on, target_off = gt.get(c, (_EMPTY, _EMPTY))
            stats = statistics_fn(
                detection_onset_times=det_on, detection_offset_times=det_off,
                target_onset_times=target_on, target_offset_times=target_off,
                other_onset_times={o: v for o, v in others_on.items() if o != c},
                other_offset_times={o: v for o, v in others_off.items() if o != c},
                dtc_threshold=cfg.dtc_threshold, gtc_threshold=cfg.gtc_threshold,
                cttc_threshold=cfg.cttc_threshold, time_decimals=cfg.time_decimals,
            )
            tps, fps = _deltas(stats["tps"]), _deltas(stats["fps"])
            nonzero = (tps != 0) | (fps != 0)
            if cfg.cttc_threshold is not None:
                for o, counts in stats["cts"].items():
                    d = _deltas(counts)
                    sel = d != 0
                    if sel.any():
                        nonzero |= sel
                        n = int(sel.sum())
                        new = (np.full(n, c), np.full(n, o), cands[sel], d[sel])
                        for part, value in zip(self.cts_parts, new):
                            part.append(value)
            n = int(nonzero.sum())
            self._append(np.full(n, c), cands[nonzero], tps[nonzero], fps[nonzero])

    def _append(self, cls, score, tps, fps) -> None:
        for part, value in zip(self.parts, (cls, score, tps, fps)):
            part.append(value)

    def flush(self) -> None:
        """Turn the clips added since the last flush into a chunk; raise pruning levels; prune."""
        if self.parts[0]:
            cls, score, tps, fps = (np.concatenate(p) for p in self.parts)
            chunk = (cls.astype(np.int32), score, tps.astype(np.int32), fps.astype(np.int32))
            self.chunks.append(chunk)
            self.stored += len(chunk[0])
            self.parts = [[], [], [], []]
        if self.cts_parts[0]:
            self.cts_chunks.append(tuple(np.concatenate(p) for p in self.cts_parts))
            self.cts_parts = [[], [], [], []]
        if self.prune and not self.fixed:
            self.update_top()
            finite = int(np.isfinite(self.theta).sum())
            if finite > self.finite_at_prune or self.stored > 2 * self.stored_after_prune + 1_000_000:
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
        order = np.lexsort((score, cls))
        cls, score, tps, fps = cls[order], score[order], tps[order], fps[order]
        bounds = np.searchsorted(cls, np.arange(k + 1))
        if self.cts_chunks:
            ccls, cother, cscore, cdelta = (np.concatenate([c[i] for c in self.cts_chunks]) for i in range(4))
            corder = np.lexsort((cscore, cother, ccls))
            ccls, cother, cscore, cdelta = ccls[corder], cother[corder], cscore[corder], cdelta[corder]
            cbounds = np.searchsorted(ccls, np.arange(k + 1))
        rocs = {}
        for c in range(k):
            a, b = bounds[c], bounds[c + 1]
            s = score[a:b]
            starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if b > a else np.empty(0, int)
            unique = s[starts]
            tp_count = _reverse_cumsum(np.add.reduceat(tps[a:b], starts) if b > a else np.empty(0))
            fp_count = _reverse_cumsum(np.add.reduceat(fps[a:b], starts) if b > a else np.empty(0))
            tpr = tp_count / max(int(n_ref[c]), 1)
            efpr = fp_count / self.duration
            if cfg.alpha_ct != 0:
                ct_sum = np.zeros(len(unique) + 1)
                if self.cts_chunks:
                    ca, cb = cbounds[c], cbounds[c + 1]
                    others = cother[ca:cb]
                    for o in np.unique(others):  # ascending = sed_scores_eval's class order
                        sel = slice(ca + np.searchsorted(others, o), ca + np.searchsorted(others, o, "right"))
                        pos = np.searchsorted(unique, cscore[sel])
                        dense = np.bincount(pos, weights=cdelta[sel], minlength=len(unique))
                        ct_sum = ct_sum + _reverse_cumsum(dense) / max(float(t_ref[o]), 1e-12)
                # = np.mean over the K - 1 other classes' rates, summed in the same order
                efpr = efpr + cfg.alpha_ct * (ct_sum / (k - 1) if k > 1 else np.full_like(ct_sum, np.nan))
            efpr = efpr * self.unit
            rocs[classes[c]] = _sort_and_cut(tpr, efpr, cfg.max_efpr)
        etpr, efpr = multi_class_psd_roc_from_single_class_psd_rocs(rocs, cfg.alpha_st, cfg.max_efpr)
        per_class = {c: float(psds_from_psd_roc(t, f, cfg.max_efpr)) for c, (t, f) in rocs.items()}
        return float(psds_from_psd_roc(etpr, efpr, cfg.max_efpr)), per_class


def _deltas(stats: np.ndarray) -> np.ndarray:
    """Counts at ascending thresholds -> their changes (the count above the last one is 0)."""
    return stats - np.concatenate((stats[1:], np.zeros_like(stats[:1])))


def _reverse_cumsum(deltas: np.ndarray) -> np.ndarray:
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


class SegmentStats:
    """Per-segment maxima and labels for segment-based (partial) AUROC, as sed_scores_eval does it."""

    def __init__(self, cfg: AUROCConfig, num_classes: int, segments: dict[str, tuple[int, int]]):
        self.cfg, self.k, self.segments = cfg, num_classes, segments
        total = max((stop for _, stop in segments.values()), default=0)
        self.scores = np.zeros((num_classes, total))  # (K, all segments)
        self.positive = np.zeros((num_classes, total), dtype=bool)

    def add_clip(self, cid: str, ts: np.ndarray, s: np.ndarray,
                 gt: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        cfg = self.cfg
        start, stop = self.segments[cid]
        n = stop - start
        ts = np.round(ts, cfg.time_decimals)
        bounds = np.round(np.arange(n + 1) * cfg.segment_length, cfg.time_decimals)
        seg_on, seg_off = bounds[:-1], bounds[1:]
        first = np.maximum(np.searchsorted(ts, seg_on, side="right") - 1, 0)
        last = np.minimum(np.searchsorted(ts, seg_off, side="left"), len(ts) - 1)
        for i in range(n):
            if last[i] > first[i]:
                self.scores[:, start + i] = s[first[i]:last[i]].max(axis=0)
        for c, (onsets, offsets) in gt.items():
            hit = np.zeros(n, dtype=bool)
            for onset, offset in zip(onsets, offsets):
                hit |= (seg_on < offset) & (seg_off > onset) & (seg_off > seg_on)
            self.positive[c, start:stop] = hit

    def result(self, classes: list[str]) -> tuple[float, dict[str, float]]:
        """Mean and per-class AUROC, as ``sed_scores_eval.segment_based.auroc`` computes them."""
        from sed_scores_eval.base_modules.curves import linear_auc

        cfg = self.cfg
        per_class = {}
        for c, name in enumerate(classes):
            unique, inverse = np.unique(self.scores[c], return_inverse=True)
            pos = self.positive[c]
            tps = _reverse_cumsum(np.bincount(inverse, weights=pos, minlength=len(unique)))
            fps = _reverse_cumsum(np.bincount(inverse, weights=~pos, minlength=len(unique)))
            n_ref = tps[0]
            n_sys = tps + fps
            tns = n_sys[0] - n_sys - (n_ref - tps)
            with np.errstate(invalid="ignore", divide="ignore"):
                tpr, fpr = tps / n_ref, fps / (tns + fps)
            order = np.lexsort((tpr, fpr))  # sed_scores_eval's xsort
            auc = linear_auc(tpr[order], fpr[order], max_x=cfg.max_fpr)
            if cfg.max_fpr is not None and cfg.mcclish_correction:
                lo, hi = 0.5 * cfg.max_fpr ** 2, cfg.max_fpr
                auc = 0.5 * (1 + (auc - lo) / (hi - lo))
            else:
                auc = auc / (1 if cfg.max_fpr is None else cfg.max_fpr)
            per_class[name] = float(auc)
        return float(np.mean(list(per_class.values()))), per_class


def segment_layout(inputs: Inputs, cfg: AUROCConfig) -> dict[str, tuple[int, int]]:
    """clip -> its (start, stop) columns in :class:`SegmentStats`, clips in evaluation order."""
    out, start = {}, 0
    for cid in inputs.clips:
        n = int(np.ceil(inputs.durations[cid] / cfg.segment_length))
        out[cid] = (start, start + n)
        start += n
    return out

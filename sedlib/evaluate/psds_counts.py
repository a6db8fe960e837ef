"""Intersection-based TP / FP / cross-trigger counts for many (clip, class) pairs at once.

``sed_scores_eval`` counts one (clip, class) pair per call: ``onset_offset_curves`` lays out the
detections at every threshold, ``statistics_fn`` (intersection_based) counts them. At AudioSet
Strong scale with PSDS2's cross triggers that is ~10^6 calls whose Python overhead is the whole
cost. :func:`intersection_deltas` computes the same counts for a batch of clips in a few array
operations: a detection at threshold ``u`` is a maximal run of frames with ``score >= u`` (as
``onset_offset_curves`` defines it), from ``timestamps[start]`` to ``timestamps[stop]``; each
distinct run is judged once (DTC, CTTC: ``statistics_fn``'s tests on the same floats, rounded the
same way) and counted at every threshold where it is a detection (:func:`_runs`).

Exactness. Every compared quantity is either computed by the same arithmetic as the library, or
is a sum of intersections formed in another order (per run, or as a running sum over the
thresholds) that the library then rounds to ``time_decimals``. The difference is a few ulps of
the summands (far below 1e-9 s), which changes a rounded value only when the sum lies that close
to a rounding midpoint; :func:`intersection_deltas` returns ``None`` when any sum lies within
1e-9 s (1e-3 of the last kept decimal) of one, and the caller then counts that batch with the
library itself (:func:`library_deltas`). Tests check equality with ``sed_scores_eval``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EMPTY = np.empty(0)


@dataclass
class ClipPairs:
    """The pairs of one clip to count, and the clip's ground truth.

    ``timestamps`` (T + 1,), ``scores`` (T, P) the pairs' score columns, ``classes`` (P,) their
    class indices, ``theta`` (P,) the pruning levels (only thresholds above them are counted);
    ``onsets``, ``offsets``, ``labels`` (E,) all events of the clip, class by class, each class's
    in file order.
    """

    timestamps: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    theta: np.ndarray
    onsets: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray


@dataclass
class Deltas:
    """Count changes at ascending thresholds, as :class:`sedlib.evaluate.psds_stats.PSDSStats` stores
    them: ``(cls, score, tps, fps)`` and cross triggers ``(cls, other, score, delta)``."""

    main: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    cts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None


def _near_midpoint(x: np.ndarray, decimals: int) -> bool:
    """Whether any value could round differently at ``decimals`` after a few ulps of change."""
    if not x.size:
        return False
    v = np.abs(x) * 10.0 ** decimals
    return bool((np.abs(v - np.floor(v) - 0.5) < 1e-3).any())


def _padded(items: list[ClipPairs]):
    """Stack the batch: pair scores (N, T) padded with -inf, timestamps (C, T + 1) padded with the
    clip's end, events (C, E) padded with empty events of no class (-1)."""
    n_pairs = sum(it.scores.shape[1] for it in items)
    t_max = max(len(it.scores) for it in items)
    e_max = max(1, max(len(it.labels) for it in items))
    scores = np.full((n_pairs, t_max), -np.inf)
    stamps = np.empty((len(items), t_max + 1))
    on = np.zeros((len(items), e_max))
    off = np.zeros((len(items), e_max))
    lab = np.full((len(items), e_max), -1)
    clip_of_pair = np.empty(n_pairs, dtype=np.intp)
    p = 0
    for i, it in enumerate(items):
        t, k = it.scores.shape
        scores[p:p + k, :t] = it.scores.T
        clip_of_pair[p:p + k] = i
        p += k
        stamps[i, :t + 1] = it.timestamps
        stamps[i, t + 1:] = it.timestamps[-1]
        e = len(it.labels)
        on[i, :e], off[i, :e], lab[i, :e] = it.onsets, it.offsets, it.labels
    classes = np.concatenate([it.classes for it in items]).astype(np.intp)
    theta = np.concatenate([it.theta for it in items])
    return scores, stamps, on, off, lab, clip_of_pair, classes, theta


def _sum_sequential(values: np.ndarray) -> np.ndarray:
    """Row sums (D, E) -> (D,) added left to right (numpy's own order for rows shorter than 8)."""
    out = np.zeros(len(values))
    for e in range(values.shape[1]):
        out = out + values[:, e]
    return out


def _runs(scores: np.ndarray, theta: np.ndarray):
    """Every distinct detection of every pair, and the thresholds at which it exists.

    ``scores`` (N, T), ``theta`` (N,). A row is a (pair, threshold): the pair's unique scores
    above its level, ascending (``row_pair, row_theta`` (R,)). A run of frames is a detection at
    threshold ``u`` iff its minimum is >= u and both neighbours are < u; so the run around frame
    i between its nearest strictly lower neighbours is the detection at ``u = score[i]`` and at
    every lower threshold down to (excluded) its higher neighbour. Only frames above the level
    matter; each pair's are laid out in a flat array with -inf between separate stretches and
    between pairs, and the nearest lower neighbours are found by binary lifting over range minima.
    Returns the rows and per run ``(pair, start frame, stop frame, first row, last row)`` (U,):
    the run is a detection at rows ``first .. last``.
    """
    n, t = scores.shape
    above = scores > theta[:, None]  # (N, T)
    pair, frame = np.nonzero(above)  # by pair, frames ascending
    value = scores[pair, frame]
    # flat layout: a -inf before each pair, between stretches of frames above the level, at the end
    gap = np.r_[True, (pair[1:] != pair[:-1]) | (frame[1:] != frame[:-1] + 1)]
    pos = np.arange(len(pair)) + np.cumsum(gap)
    size = (pos[-1] if len(pos) else 0) + 2
    flat = np.full(size, -np.inf)
    flat[pos] = value
    # rows: unique (pair, value), ascending
    order = np.lexsort((value, pair))
    new_row = np.r_[True, (pair[order][1:] != pair[order][:-1]) | (value[order][1:] != value[order][:-1])]
    row_id = np.empty(len(pair), dtype=np.intp)
    row_id[order] = np.cumsum(new_row) - 1
    row_pair, row_theta = pair[order][new_row], value[order][new_row]
    first_row = np.searchsorted(row_pair, np.arange(n))
    flat_row = np.full(size, -1)
    flat_row[pos] = row_id
    # nearest strictly lower neighbours: left[i] < i, right[i] > i
    levels = [flat]
    while (1 << len(levels)) < 2 * t + 2:
        prev, step = levels[-1], 1 << (len(levels) - 1)
        levels.append(np.minimum(prev, np.r_[prev[step:], np.full(min(step, size), -np.inf)]))
    left, right = pos.copy(), pos + 1
    for k in range(len(levels) - 1, -1, -1):
        step = 1 << k
        cand = left - step
        ok = cand >= 0
        ok[ok] = levels[k][cand[ok]] >= value[ok]
        left = np.where(ok, cand, left)
        ok = right + step <= size
        ok[ok] = levels[k][right[ok]] >= value[ok]
        right = np.where(ok, right + step, right)
    left -= 1
    # one run per (left, right); frames of equal minimum give the same run
    _, rep = np.unique(left * size + right, return_index=True)
    lo, hi = left[rep], right[rep]
    run_pair = pair[rep]
    start = frame[rep] - (pos[rep] - lo - 1)
    stop = frame[rep] + (hi - pos[rep])
    higher_neighbour = np.maximum(flat_row[lo], flat_row[hi])  # -1: both below the level
    first = np.where(higher_neighbour >= 0, higher_neighbour + 1, first_row[run_pair])
    return row_pair, row_theta, run_pair, start, stop, first, row_id[rep]


def _range_sums(first: np.ndarray, last: np.ndarray, values: np.ndarray, n_rows: int) -> np.ndarray:
    """Add ``values`` (U, W) to rows ``first .. last`` (U,) each: (R, W), summed in row order."""
    width = values.shape[1]
    cols = np.arange(width)
    diff = np.bincount((first[:, None] * width + cols).ravel(), weights=values.ravel(),
                       minlength=(n_rows + 1) * width)
    diff -= np.bincount(((last[:, None] + 1) * width + cols).ravel(), weights=values.ravel(),
                        minlength=(n_rows + 1) * width)
    return np.cumsum(diff.reshape(n_rows + 1, width), axis=0)[:n_rows]


def intersection_deltas(items: list[ClipPairs], dtc: float, gtc: float, cttc: float | None,
                        decimals: int) -> Deltas | None:
    """The count deltas of all pairs in ``items``; ``None`` if a rounding could differ from the
    library's (the caller then uses ``sed_scores_eval`` for this batch)."""
    scores, stamps, ev_on, ev_off, ev_lab, clip_of_pair, pair_cls, theta = _padded(items)
    row_pair, row_theta, u_pair, start, stop, first, last = _runs(scores, theta)
    n_rows = len(row_pair)
    if not n_rows:
        return Deltas(tuple(np.empty(0, dt) for dt in (np.int32, float, np.int32, np.int32)), None)
    u_clip, u_cls = clip_of_pair[u_pair], pair_cls[u_pair]
    u_on, u_off = stamps[u_clip, start], stamps[u_clip, stop]
    length = u_off - u_on
    # intersections with every event of the clip (U, E); padded events have none
    e_on, e_off, e_lab = ev_on[u_clip], ev_off[u_clip], ev_lab[u_clip]
    inter = np.maximum(np.minimum(u_off[:, None], e_off) - np.maximum(u_on[:, None], e_on), 0.0)
    is_target = e_lab == u_cls[:, None]
    target_raw = _sum_sequential(np.where(is_target, inter, 0.0))
    relevant = np.round(target_raw, decimals) >= np.round(dtc * length, decimals)  # DTC
    fps = np.rint(_range_sums(first, last, (~relevant)[:, None].astype(float), n_rows)[:, 0]).astype(np.int64)
    # GTC per (row, event): intersection with the row's relevant detections
    hit = np.flatnonzero(relevant)
    gt_raw = _range_sums(first[hit], last[hit], np.where(is_target, inter, 0.0)[hit], n_rows)
    row_clip = clip_of_pair[row_pair]
    row_target = ev_lab[row_clip] == pair_cls[row_pair][:, None]  # (R, E)
    gt_len = ev_off[row_clip] - ev_on[row_clip]
    tps = (row_target & (np.round(gt_raw, decimals) >= np.round(gtc * gt_len, decimals))).sum(axis=1)
    checks = [target_raw, gt_raw[row_target]]
    cts = None
    if cttc is not None:
        crossing, slot_cls, other_raw = _cross_triggers(items, relevant, inter, e_lab, u_clip, u_cls,
                                                        length, cttc, decimals)
        sub = np.flatnonzero(crossing.any(axis=1))
        counts = np.rint(_range_sums(first[sub], last[sub], crossing[sub].astype(float), n_rows))
        cts = (counts.astype(np.int64), slot_cls[row_clip])
        checks.append(other_raw)
    if any(_near_midpoint(x, decimals) for x in checks):
        return None
    return _to_deltas(row_pair, row_theta, pair_cls, tps, fps, cts)


def _cross_triggers(items, relevant, inter, e_lab, clip, cls, length, cttc, decimals):
    """Which runs (U,) cross-trigger on which of their clip's G ground-truth classes (U, G), the
    classes of those slots (C, G), and the raw sums that were rounded.

    Only runs that fail the DTC and touch another class's event can cross-trigger (the others'
    sums are exactly 0, below ``cttc * length``), so only those are summed.
    """
    slot_classes = [np.unique(it.labels) for it in items]
    g_max = max(1, max(len(s) for s in slot_classes))
    slot_cls = np.full((len(items), g_max), -1)
    ev_slot = np.full((len(items), e_lab.shape[1]), g_max)  # padded events: a spare slot
    for i, (s, it) in enumerate(zip(slot_classes, items)):
        slot_cls[i, :len(s)] = s
        ev_slot[i, :len(it.labels)] = np.searchsorted(s, it.labels)
    crossing = np.zeros((len(cls), g_max), dtype=bool)
    other_event = (e_lab >= 0) & (e_lab != cls[:, None])
    sub = np.flatnonzero(~relevant & ((inter > 0) & other_event).any(axis=1))
    if not sub.size:
        return crossing, slot_cls, np.empty(0)
    clip, cls = clip[sub], cls[sub]
    slots = ev_slot[clip]
    raw = np.zeros((len(sub), g_max + 1))
    rows = np.arange(len(sub))
    for e in range(inter.shape[1]):  # each class's events in file order, left to right
        raw[rows, slots[:, e]] += inter[sub, e]  # (1 - dtc) * intersection, dtc = 0 here
    raw = raw[:, :g_max]
    valid = (slot_cls[clip] >= 0) & (slot_cls[clip] != cls[:, None])
    crossing[sub] = valid & (np.round(raw, decimals) >= np.round(cttc * length[sub], decimals)[:, None])
    return crossing, slot_cls, raw[valid]


def _to_deltas(row_pair, row_theta, pair_cls, tps, fps, cts) -> Deltas:
    """Counts at ascending thresholds per pair -> their changes (count above the top is 0)."""
    last = np.r_[row_pair[1:] != row_pair[:-1], True]  # the pair's highest threshold

    def change(counts):
        nxt = np.zeros_like(counts)
        nxt[:-1] = counts[1:]
        nxt[last] = 0
        return counts - nxt

    d_tps, d_fps = change(tps), change(fps)
    keep = (d_tps != 0) | (d_fps != 0)
    row_cls = pair_cls[row_pair]
    cts_out = None
    if cts is not None:
        counts, slot = cts
        d_cts = change(counts)  # (R, G)
        keep |= (d_cts != 0).any(axis=1)
        r, g = np.nonzero(d_cts)
        cts_out = (row_cls[r].astype(np.int64), slot[r, g].astype(np.int64), row_theta[r],
                   d_cts[r, g].astype(np.int64))
    main = (row_cls[keep].astype(np.int32), row_theta[keep], d_tps[keep].astype(np.int32),
            d_fps[keep].astype(np.int32))
    return Deltas(main, cts_out)


def library_deltas(items: list[ClipPairs], dtc: float, gtc: float, cttc: float | None,
                   decimals: int) -> Deltas:
    """What :func:`intersection_deltas` computes, by ``sed_scores_eval`` itself, one pair per call."""
    from sed_scores_eval.base_modules.cy_detection import onset_offset_curves
    from sed_scores_eval.intersection_based.intermediate_statistics import statistics_fn

    main: list[list[np.ndarray]] = [[], [], [], []]
    cross: list[list[np.ndarray]] = [[], [], [], []]
    for it in items:
        per_class = {int(c): (it.onsets[it.labels == c], it.offsets[it.labels == c])
                     for c in np.unique(it.labels)}
        for j, c in enumerate(it.classes.tolist()):
            sc = np.ascontiguousarray(it.scores[:, j])
            cands = np.unique(sc)
            cands = cands[cands > it.theta[j]]
            if not cands.size:
                continue
            _, det_on, det_off = onset_offset_curves(sc, it.timestamps, cands)
            target_on, target_off = per_class.get(c, (_EMPTY, _EMPTY))
            others = {o: v for o, v in per_class.items() if o != c} if cttc is not None else {}
            stats = statistics_fn(
                detection_onset_times=det_on, detection_offset_times=det_off,
                target_onset_times=target_on, target_offset_times=target_off,
                other_onset_times={o: v[0] for o, v in others.items()},
                other_offset_times={o: v[1] for o, v in others.items()},
                dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc, time_decimals=decimals,
            )
            tps, fps = _changes(stats["tps"]), _changes(stats["fps"])
            nonzero = (tps != 0) | (fps != 0)
            if cttc is not None:
                for o, counts in stats["cts"].items():
                    d = _changes(counts)
                    sel = d != 0
                    nonzero |= sel
                    n = int(sel.sum())
                    for part, value in zip(cross, (np.full(n, c), np.full(n, o), cands[sel], d[sel])):
                        part.append(value)
            n = int(nonzero.sum())
            for part, value in zip(main, (np.full(n, c), cands[nonzero], tps[nonzero], fps[nonzero])):
                part.append(value)
    dtypes = (np.int32, float, np.int32, np.int32)
    out = tuple(np.concatenate(p).astype(dt) if p else np.empty(0, dt) for p, dt in zip(main, dtypes))
    cts = None
    if cttc is not None and cross[0]:
        cts = tuple(np.concatenate(p).astype(dt)
                    for p, dt in zip(cross, (np.int64, np.int64, float, np.int64)))
    return Deltas(out, cts)



def _changes(counts: np.ndarray) -> np.ndarray:
    """Counts at ascending thresholds -> their changes (the count above the last one is 0)."""
    return counts - np.concatenate((counts[1:], np.zeros_like(counts[:1])))

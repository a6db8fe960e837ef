"""The PSDS / pAUROC engines behind :func:`sedlib.evaluate.psds_report` (SPEC 7).

Two engines give the same numbers:

* ``engine="reference"`` (:func:`run_reference`) calls ``sed_scores_eval`` directly on a dict of
  score DataFrames (as the EfficientSED reference does in ``on_validation_epoch_end``). Obviously
  right, but at AudioSet Strong scale (16,935 clips x 407 classes x 250 frames) it needs the whole
  score set in memory (~14 GB as float64 DataFrames) and hours of per-(clip, class) Python work.
* ``engine="fast"`` (:func:`run_fast`, the default) streams the clips once and keeps only what can
  still matter. Pairs without ground truth and without a frame above the pruning level inside
  another class's event get the library's "no ground truth" shortcut (one +1/-1 false-positive
  delta per local score maximum/minimum); all other (clip, class) pairs are counted together by
  :mod:`sedlib.evaluate.psds_counts` (sed_scores_eval's detection and DTC / GTC / CTTC tests,
  many pairs per array operation, the library itself where a rounding could differ). The ROC
  combination is the library's (``multi_class_psd_roc_from_single_class_psd_rocs``,
  ``psds_from_psd_roc``, ``linear_auc``). Its one addition is an exact pruning: a pair without
  ground truth of class c whose maximum score is >= theta makes at least one false positive at
  threshold theta, so once ``L`` such pairs are known, every threshold at or below the L-th largest
  of their maxima has eFPR > max_efpr and is cut by PSDS anyway (eFPR >= FPR as alpha_ct >= 0).
  Their change points are dropped. Tests check both engines agree (tests/test_evaluate.py).

The accumulators that hold and prune the change points are in :mod:`sedlib.evaluate.psds_stats`
(segment-based AUROC: :mod:`sedlib.evaluate.auroc_stats`); both
engines take inputs already matched and checked by :func:`sedlib.evaluate.inputs.prepare_inputs`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sedlib.evaluate.config import AUROCConfig, PSDSConfig
from sedlib.evaluate.inputs import (
    EvaluationError,
    Inputs,
    clip_id,
    clip_matrix,
    path_of,
)
from sedlib.evaluate.auroc_stats import SegmentStats, segment_layout
from sedlib.evaluate.psds_stats import PSDSStats

log = logging.getLogger(__name__)

_CHUNK = 256  # clips between updates of the pruning levels


def _per_class_gt(inputs: Inputs) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """clip -> {class index: (onsets, offsets)} in file order (as sed_scores_eval splits them)."""
    index = {c: i for i, c in enumerate(inputs.classes)}
    out = {}
    for cid in inputs.clips:
        per: dict[int, list[tuple[float, float]]] = {}
        for onset, offset, label in inputs.ground_truth[cid]:
            per.setdefault(index[label], []).append((onset, offset))
        out[cid] = {k: tuple(np.array(v).T) for k, v in per.items()}
    return out


def _clip_stream(scores, inputs: Inputs, gt, clips: list[str], progress: bool = False):
    """(clip, timestamps, scores (T, K), per-pair maxima (K,), has ground truth (K,)) per clip."""
    from sedlib.progress import tqdm

    cache: dict = {}
    k = len(inputs.classes)
    for cid in tqdm(clips, desc="PSDS", unit="clip", disable=None if progress else True):
        key = inputs.score_keys[cid]
        ts, s = clip_matrix(scores[key], inputs.classes, cache, path_of(scores, key) or f"clip {cid!r}")
        has_gt = np.zeros(k, dtype=bool)
        has_gt[list(gt[cid])] = True
        yield cid, ts, s, _maxima(s, inputs.classes, key, scores), has_gt


def _maxima(s: np.ndarray, classes: list[str], key: str, scores: Mapping) -> np.ndarray:
    """Per-class maxima (K,) of a clip's scores; NaN scores raise (they would break thresholds)."""
    maxima = s.max(axis=0)
    nan = np.isnan(maxima)
    if nan.any():
        where = path_of(scores, key) or f"clip {clip_id(key)!r}"
        raise EvaluationError(f"scores of {where}: NaN scores for class {classes[int(np.argmax(nan))]!r}")
    return maxima


def _fast_shard(scores, inputs, gt, clips, psds_stats, seg_stats, counted: int = 0, progress=False):
    """Feed ``clips`` through the accumulators; the first ``counted`` were counted by a prepass."""
    for i, (cid, ts, s, maxima, has_gt) in enumerate(_clip_stream(scores, inputs, gt, clips, progress)):
        for acc in psds_stats:
            acc.add_clip(ts, s, gt[cid], maxima, has_gt, count=i >= counted)
        if seg_stats is not None:
            seg_stats.add_clip(cid, ts, s, gt[cid])
        if (i + 1) % _CHUNK == 0:
            for acc in psds_stats:
                acc.flush()
    for acc in psds_stats:
        acc.flush()
    return psds_stats, seg_stats


def _prepass(scores, inputs: Inputs, gt, psds_stats: list[PSDSStats], prepass: str) -> int:
    """Count pair maxima ahead of the main pass so pruning starts with the first clip.

    ``"full"``: all clips (the final, exact levels; every clip is read twice). ``"partial"``: only
    until 95% of the prunable classes have a level (~30% of the clips at 10 s per clip and
    max_efpr 100/h; only those are read twice), levels then rise as the main pass goes on.
    ``"auto"``: full for a dict (scores in memory), partial for lazy mappings (files).
    Returns how many clips were counted.
    """
    if prepass not in ("auto", "full", "partial"):
        raise ValueError(f"prepass must be 'auto', 'full' or 'partial', got {prepass!r}")
    todo = [acc for acc in psds_stats if acc.prune]
    if not todo:
        return 0
    everything = _full_prepass(scores, prepass)
    n = _count_levels(scores, inputs, gt, todo, inputs.clips, stop_early=not everything)
    for acc in todo:
        acc.fixed = n == len(inputs.clips)
    log.debug("PSDS prepass counted %d of %d clips", n, len(inputs.clips))
    return n


def _full_prepass(scores, prepass: str) -> bool:
    if prepass not in ("auto", "full", "partial"):
        raise ValueError(f"prepass must be 'auto', 'full' or 'partial', got {prepass!r}")
    return prepass == "full" or (prepass == "auto" and type(scores) is dict)


def _count_levels(scores, inputs: Inputs, gt, todo: list[PSDSStats], clips: list[str],
                  stop_early: bool = False) -> int:
    """Count the pair maxima of ``clips`` into ``todo``'s levels; returns how many clips."""
    n = 0
    for n, (_, _, _, maxima, has_gt) in enumerate(_clip_stream(scores, inputs, gt, clips), 1):
        for acc in todo:
            acc.count_maxima(maxima, has_gt)
        if n % _CHUNK == 0:
            for acc in todo:
                acc.update_top()
            if stop_early and min(acc.established() for acc in todo) >= 0.95:
                break
    for acc in todo:
        acc.update_top()
    return n


_SHARED: dict[str, Any] = {}  # handed to forked workers (not pickled)


def _levels_worker(shard: list[str]) -> list[np.ndarray]:
    """One forked worker's share of a parallel prepass: the top pair maxima per prunable class."""
    psds_stats, _ = _SHARED["fresh"]()
    todo = [acc for acc in psds_stats if acc.prune]
    _count_levels(_SHARED["scores"], _SHARED["inputs"], _SHARED["gt"], todo, shard)
    return [acc.top for acc in todo]


def _worker(job: tuple[int, list[str], list[np.ndarray] | None]):
    """One forked worker's share of the clips: its accumulators (with the prepass's levels)."""
    first, shard, tops = job
    scores, inputs, gt, fresh, counted = (_SHARED[k] for k in ("scores", "inputs", "gt", "fresh", "counted"))
    psds_stats, seg_stats = fresh()
    if tops is not None:
        for acc, top in zip([acc for acc in psds_stats if acc.prune], tops):
            acc.set_top(top)
    return _fast_shard(scores, inputs, gt, shard, psds_stats, seg_stats, max(0, counted - first))


def _run_parallel(scores, inputs: Inputs, gt, psds_stats, seg_stats, num_jobs: int, prepass: str):
    """:func:`run_fast` on ``num_jobs`` processes: this one takes the first share of the clips,
    forked workers the others; a full prepass is shared out the same way."""
    import copy
    import multiprocessing

    bounds = np.linspace(0, len(inputs.clips), num_jobs + 1).astype(int)
    shards = [inputs.clips[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    todo = [acc for acc in psds_stats if acc.prune]
    parallel_prepass = bool(todo) and _full_prepass(scores, prepass)
    counted = len(inputs.clips) if parallel_prepass else _prepass(scores, inputs, gt, psds_stats, prepass)
    _SHARED.update(scores=scores, inputs=inputs, gt=gt, counted=counted,
                   fresh=lambda: copy.deepcopy((psds_stats, seg_stats)))
    try:
        with multiprocessing.get_context("fork").Pool(num_jobs - 1) as pool:
            tops = None
            if parallel_prepass:
                pending = pool.map_async(_levels_worker, shards[1:])
                _count_levels(scores, inputs, gt, todo, shards[0])
                for part in pending.get():
                    for acc, top in zip(todo, part):
                        acc.set_top(np.concatenate((acc.top, top), axis=1))
                tops = [acc.top for acc in todo]
            pending = pool.map_async(_worker, [(int(a), shard, tops) for a, shard in zip(bounds, shards)][1:])
            psds_stats, seg_stats = _fast_shard(scores, inputs, gt, shards[0], psds_stats, seg_stats,
                                                counted, progress=True)
            parts = pending.get()
    finally:
        _SHARED.clear()
    for shard_psds, shard_seg in parts:
        for acc, part in zip(psds_stats, shard_psds):
            acc.merge(part)
        if seg_stats is not None:
            seg_stats.merge(shard_seg)
    return psds_stats, seg_stats


def run_fast(scores, inputs: Inputs, configs: list[PSDSConfig], auroc: AUROCConfig | None, num_jobs: int,
             prepass: str = "auto"):
    """The fast engine: ``([(psds, {class: psds}) per config], (pauroc, {class: pauroc}) or None)``.

    ``num_jobs`` forked processes each take a contiguous share of the clips; ``prepass`` (see
    :func:`_prepass`) changes time and memory, never the result.
    """
    k = len(inputs.classes)
    gt = _per_class_gt(inputs)
    duration = sum(inputs.durations.values())  # dict order, as sed_scores_eval sums it
    with_gt = np.zeros(k, dtype=int)
    for per in gt.values():
        with_gt[list(per)] += 1
    psds_stats = [PSDSStats(cfg, k, duration, len(inputs.clips) - with_gt) for cfg in configs]
    num_jobs = max(1, min(int(num_jobs), len(inputs.clips) // 32 or 1))
    seg_stats = SegmentStats(auroc, k, segment_layout(inputs, auroc)) if auroc is not None else None
    if num_jobs == 1:
        counted = _prepass(scores, inputs, gt, psds_stats, prepass)
        psds_stats, seg_stats = _fast_shard(scores, inputs, gt, inputs.clips, psds_stats, seg_stats,
                                            counted, progress=True)
    else:
        psds_stats, seg_stats = _run_parallel(scores, inputs, gt, psds_stats, seg_stats, num_jobs, prepass)
    n_ref = np.zeros(k, dtype=int)
    t_ref = np.zeros(k)
    index = {c: i for i, c in enumerate(inputs.classes)}
    for cid in inputs.clips:
        for onset, offset, label in inputs.ground_truth[cid]:
            n_ref[index[label]] += 1
            t_ref[index[label]] += offset - onset
    seg = seg_stats.result(inputs.classes) if seg_stats is not None else None
    psds = [acc.result(n_ref, t_ref, inputs.classes) for acc in psds_stats]
    return psds, seg


def run_reference(scores, inputs: Inputs, configs: list[PSDSConfig], auroc: AUROCConfig | None):
    """sed_scores_eval called directly, on DataFrames holding only the evaluated classes; returns
    what :func:`run_fast` returns."""
    import sed_scores_eval

    cache: dict = {}
    frames = {}
    for cid in inputs.clips:
        key = inputs.score_keys[cid]
        ts, s = clip_matrix(scores[key], inputs.classes, cache, path_of(scores, key) or f"clip {cid!r}")
        _maxima(s, inputs.classes, key, scores)
        frames[cid] = pd.DataFrame(np.concatenate((ts[:-1, None], ts[1:, None], s), axis=1),
                                   columns=["onset", "offset", *inputs.classes])
    gt = {cid: [list(e) for e in inputs.ground_truth[cid]] for cid in inputs.clips}
    psds = []
    for cfg in configs:
        value, per_class, *_ = sed_scores_eval.intersection_based.psds(
            frames, gt, inputs.durations, **cfg.kwargs())
        psds.append((float(value), {c: float(v) for c, v in per_class.items()}))
    seg = None
    if auroc is not None:
        result, _ = sed_scores_eval.segment_based.auroc(frames, gt, inputs.durations, **auroc.kwargs())
        seg = (float(result["mean"]), {c: float(result[c]) for c in inputs.classes})
    return psds, seg

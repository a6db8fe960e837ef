"""The evaluation report (SPEC 7): PSDS1 (alpha_st = 1 and the per-class macro mean the paper
reports), PSDS2 and segment-based pAUROC for scores against ground truth, with the numbers of
``sed_scores_eval`` computed by the fast exact engine (:mod:`sedlib.evaluate.psds_engine`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from sedlib.evaluate.config import PAUROC, PSDS1, PSDS2, AUROCConfig, PSDSConfig
from sedlib.evaluate.inputs import prepare_inputs
from sedlib.evaluate.psds_engine import run_fast, run_reference


def psds_report(
    scores: Mapping[str, pd.DataFrame],
    ground_truth: Mapping[str, Iterable[Any]],
    durations: Mapping[str, float],
    *,
    classes: Sequence[str] | None = None,
    restrict_to: Iterable[str] | None = None,
    psds1: PSDSConfig = PSDS1,
    psds2: PSDSConfig | None = PSDS2,
    pauroc: AUROCConfig | None = PAUROC,
    num_jobs: int = 1,
    engine: str = "fast",
    prepass: str = "auto",
) -> dict[str, Any]:
    """PSDS1, its macro average, PSDS2 and segment-based pAUROC of frame scores (SPEC 7).

    ``scores``: ``{clip: DataFrame(onset, offset, <class>...)}`` (any mapping: a lazy
    :class:`ScoresDir` keeps memory bounded); ``ground_truth``: ``{clip: [(onset, offset, label)
    or Event, ...]}``; ``durations``: ``{clip: seconds}``. Clip keys match without an audio
    extension (``a.wav`` == ``a``). ``classes``: score columns to evaluate (default all).
    ``restrict_to`` (e.g. :func:`sedlib.data.labels.audioset_eval_protocol_classes`): the AudioSet
    protocol - ground-truth events of other classes are dropped, clips left without events are
    dropped, and only classes in ``restrict_to`` with ground truth are evaluated. ``psds2=None`` /
    ``pauroc=None`` skip those metrics (their values are then None).

    Returns ``psds1`` (alpha_st = 1, the reference's ``val/psds1``), ``psds1_macro`` (mean of the
    per-class PSDS1: the reference's ``val/psds1_macro_averaged``, the number the paper reports),
    ``psds2``, ``pauroc`` (mean over classes, the reference's ``val/pauroc``), ``per_class``
    ``{class: {psds1, psds2, pauroc}}``, ``num_clips`` and ``num_classes``.

    ``num_jobs``: processes for the fast engine (forked; each takes a contiguous share of clips).
    ``prepass``: how the fast engine learns its pruning levels (see
    :func:`sedlib.evaluate.psds_engine._prepass`); it changes time and memory, never the result.
    """
    if engine not in ("fast", "reference"):
        raise ValueError(f"engine must be 'fast' or 'reference', got {engine!r}")
    inputs = prepare_inputs(scores, ground_truth, durations, classes, restrict_to)
    configs = [psds1] + ([psds2] if psds2 is not None else [])
    if engine == "fast":
        psds, seg = run_fast(scores, inputs, configs, pauroc, num_jobs, prepass)
    else:
        psds, seg = run_reference(scores, inputs, configs, pauroc)
    (p1, p1_class), p2 = psds[0], (psds[1] if psds2 is not None else (None, {}))
    per_class = {
        c: {"psds1": p1_class[c], "psds2": p2[1].get(c), "pauroc": seg[1][c] if seg else None}
        for c in inputs.classes
    }
    return {
        "psds1": p1,
        "psds1_macro": float(np.array(list(p1_class.values())).mean()),
        "psds2": p2[0],
        "pauroc": seg[0] if seg else None,
        "per_class": per_class,
        "num_clips": len(inputs.clips),
        "num_classes": len(inputs.classes),
    }

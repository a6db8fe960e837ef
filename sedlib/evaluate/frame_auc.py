"""Frame-level ROC AUC per class: how well a model's frame scores rank the frames a class is
active in above those it is not, before any threshold, median filter or event matching.

PSDS judges detected *events*; when a class scores low there, this tells whether the scores
themselves separate the class (a post-processing or boundary problem) or not (the model has not
learned it). Equal to ``sklearn.metrics.roc_auc_score`` per class (tested), computed with the
Mann-Whitney rank statistic (ties share their mean rank) so it needs only numpy and scipy.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def frame_auc(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """ROC AUC of each class over every frame of every clip.

    Args:
        scores: ``(N, K, T)`` frame scores (logits or probabilities: only their order counts).
        targets: ``(N, K, T)`` frame labels, 1 where the class is active (>= 0.5 counts as 1).

    Returns:
        ``(K,)`` float64; NaN for a class without positive or without negative frames.
    """
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.shape != targets.shape or scores.ndim != 3:
        raise ValueError(f"frame_auc: scores {scores.shape} and targets {targets.shape} must both be (N, K, T)")
    k = scores.shape[1]
    s = np.moveaxis(scores, 1, 0).reshape(k, -1).astype(np.float64)  # (K, N*T)
    y = np.moveaxis(targets, 1, 0).reshape(k, -1) >= 0.5
    out = np.full(k, np.nan)
    for c in range(k):
        pos = int(y[c].sum())
        neg = y.shape[1] - pos
        if pos and neg:
            ranks = rankdata(s[c])  # 1-based, ties averaged
            out[c] = (ranks[y[c]].sum() - pos * (pos + 1) / 2) / (pos * neg)
    return out

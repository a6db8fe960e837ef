"""Frame-level ROC AUC per class (equal to scikit-learn's) and the per-class report of a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sedlib.config import AudioConfig
from sedlib.evaluate.frame_auc import frame_auc


def test_frame_auc_equals_scikit_learn_with_ties():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    targets = (rng.random((6, 4, 50)) < 0.3).astype(np.float32)
    scores = np.round(rng.normal(size=(6, 4, 50)) + 1.5 * targets, 1)  # rounded: many ties
    got = frame_auc(scores, targets)
    for c in range(4):
        want = sklearn.roc_auc_score(targets[:, c].ravel(), scores[:, c].ravel())
        assert got[c] == pytest.approx(want, abs=1e-12)
    assert frame_auc(targets, targets)[0] == 1.0 and frame_auc(-targets, targets)[0] == 0.0


def test_frame_auc_is_nan_without_positives_and_checks_shapes():
    targets = np.zeros((2, 2, 10))
    targets[0, 1, 3:5] = 1
    auc = frame_auc(np.random.default_rng(0).normal(size=(2, 2, 10)), targets)
    assert np.isnan(auc[0]) and 0 <= auc[1] <= 1
    with pytest.raises(ValueError, match=r"scores \(2, 2, 10\) and targets \(2, 2, 9\)"):
        frame_auc(np.zeros((2, 2, 10)), np.zeros((2, 2, 9)))


def test_class_report_scores_every_class_at_each_window():
    """PSDS per median window (window 9 equals sedlib.train.validate's) and a frame AUC per class."""
    from sedlib.data.spec import open_source
    from sedlib.registry import create_model
    from sedlib.models.random_init import with_live_activations
    from sedlib.train.class_report import class_report
    from sedlib.train.data import validate

    audio = AudioConfig(clip_seconds=4.0)
    data = open_source("synth:8:0:world=context", split="validation", audio_config=audio)
    torch.manual_seed(0)
    model = with_live_activations(create_model("fmntiny", num_classes=13))
    report = class_report(model, data, audio_config=audio, median_windows=(1, 9), batch_size=4)
    assert report["classes"] == list(data.vocab.names) and set(report["psds"]) == {1, 9}
    assert all(np.isnan(v) or 0 <= v <= 1 for v in report["frame_auc"].values())
    assert report["psds"][9]["psds1_macro"] == pytest.approx(
        validate(model, data, audio_config=audio, batch_size=4)["psds1_macro"], abs=1e-12)

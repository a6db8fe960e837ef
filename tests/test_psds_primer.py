"""The PSDS primer (sedlib.study.psds_primer): the DTC / GTC arithmetic on one clip, and the
per-class PSD-ROCs, equal to the study's PSDS engine."""

from __future__ import annotations

import numpy as np
import pytest

from sedlib.data.labels import Event
from sedlib.study.psds_primer import _overlap, criteria, criteria_figure, psd_roc_figure, psd_rocs


def test_overlap_merges_spans():
    assert _overlap(0.0, 10.0, [(1, 3), (2, 4), (8, 12)]) == pytest.approx(5.0)
    assert _overlap(0.0, 1.0, [(2, 3)]) == 0.0


def test_dtc_gtc_and_cross_triggers_on_one_clip():
    truth = [Event("c", 1.2, 3.0, "dog"), Event("c", 5.5, 7.0, "dog"), Event("c", 8.0, 9.0, "cat")]
    dets = [Event("c", 1.0, 2.0, "dog"),   # 0.8 of it on a dog: passes DTC
            Event("c", 2.0, 3.0, "dog"),   # all on the dog: passes
            Event("c", 5.0, 6.0, "cat"),   # on a dog: fails DTC, a cross-trigger
            Event("c", 8.0, 8.5, "cat")]   # passes, covers half the cat
    det, gt = criteria(dets, truth)
    assert list(det["DTC ratio"]) == [0.8, 1.0, 0.0, 1.0]
    assert list(det["DTC >= 0.7"]) == [True, True, False, True]
    assert list(det["overlaps (cross-trigger)"]) == ["", "", "dog", ""]
    assert list(gt["GTC ratio"]) == [1.0, 0.0, 0.5]  # 1.2-3.0 covered by the two passing dogs
    assert list(gt["found (GTC >= 0.7)"]) == [True, False, False]
    fig = criteria_figure(dets, truth, ["dog", "cat", "bird"], duration=10.0)
    assert list(fig.layout.yaxis.ticktext) == ["dog", "cat"] and len(fig.layout.shapes) == 7


def test_psd_rocs_agree_with_the_study_engine():
    from sedlib.evaluate.report import psds_report
    from sedlib.evaluate.scores_io import scores_to_dataframe

    rng = np.random.default_rng(0)
    classes = ["dog", "cat"]
    scores, gt, dur = {}, {}, {}
    for i in range(6):
        s = rng.random((2, 100)) * 0.3
        s[0, 10 + i:40 + i] += 0.6  # a dog from 0.4 s
        s[1, 60:80] += 0.5 if i % 2 else 0.0  # a cat every other clip
        scores[f"clip{i}"] = scores_to_dataframe(s, classes, 0.04, 4.0)
        gt[f"clip{i}"] = [(0.4 + 0.04 * i, 1.6 + 0.04 * i, "dog"), (2.4, 3.2, "cat")]
        dur[f"clip{i}"] = 4.0
    result = psd_rocs(scores, gt, dur)
    ref = psds_report(scores, gt, dur, psds2=None, pauroc=None)
    assert result["psds"] == pytest.approx(ref["psds1"], abs=1e-9)
    assert result["macro"] == pytest.approx(ref["psds1_macro"], abs=1e-9)
    assert result["per_class"]["cat"] < result["per_class"]["dog"]  # the cat is found half the time
    fig = psd_roc_figure(result, classes)
    assert len(fig.data) == 3 and fig.data[0].name.startswith("dog: PSDS1 ")


def test_primer_inputs_from_a_model(tmp_path):
    import torch

    from sedlib.config import AudioConfig
    from sedlib.data.spec import open_source
    from sedlib.registry import create_model
    from sedlib.study.psds_primer import primer_inputs

    torch.manual_seed(0)
    audio = AudioConfig(clip_seconds=2.0)
    data = open_source("synth:3:0:world=context2", split="eval", audio_config=audio)
    model = create_model("fmntiny+TF:16", num_classes=len(data.vocab))
    out = primer_inputs(model, data, audio, clips=2, median_window=3, threshold=0.0)
    assert list(out["scores"]) == [data.filenames[0], data.filenames[1]] and out["durations"][data.filenames[0]] == 2.0
    df = out["scores"][data.filenames[0]]
    assert list(df.columns[:2]) == ["onset", "offset"] and len(df) == 50 and df["offset"].iloc[-1] == 2.0
    assert all(e.label in data.vocab.names for evs in out["truth"].values() for e in evs)
    assert len(out["events"][data.filenames[0]]) == len(data.vocab)  # threshold 0: every class on all clip long


def test_classes_without_true_events_are_not_scored():
    from sedlib.evaluate.scores_io import scores_to_dataframe

    s = np.zeros((2, 50))
    s[0, 10:30] = 0.9
    scores = {"a": scores_to_dataframe(s, ["dog", "cat"], 0.04, 2.0)}
    result = psd_rocs(scores, {"a": [(0.4, 1.2, "dog")]}, {"a": 2.0})
    assert list(result["per_class"]) == ["dog"] and result["per_class"]["dog"] > 0.9


def test_the_busiest_clip_has_the_most_events():
    import torch

    from sedlib.study.notebook import busiest_clip

    a = torch.zeros(2, 10)
    b = a.clone()
    b[0, 1:3] = 1
    b[0, 5:7] = 1  # two events
    c = a.clone()
    c[1, :] = 1  # one long event
    assert busiest_clip([{"targets": a}, {"targets": c}, {"targets": b}]) == 2
    assert busiest_clip([{"targets": c}, {"targets": c}]) == 0  # ties: the first

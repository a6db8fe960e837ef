"""What the notebooks print (sedlib.study.findings) and the eval folds behind the intervals."""

from __future__ import annotations

import numpy as np
import pytest

from sedlib.study.findings import (
    budget_sentence,
    claim,
    claims_markdown,
    curve_verdicts,
    seed_table,
    single_model_row,
    tally,
)
from sedlib.study.intervals import (
    AGREES,
    INCONCLUSIVE,
    compare_configurations,
    fold_variance,
    mean_interval,
    summarise_seeds,
)


def rec(name, seed, value, folds=None, steps=64):
    r = {"name": name, "seed": seed, "psds1_macro": value, "psds1": value / 2, "params": 10,
         "macs": 100, "throughput": 1.0, "steps": steps}
    if folds is not None:
        r["psds1_macro_folds"] = list(folds)
        r["psds1_folds"] = [f / 2 for f in folds]
    return r


def test_fold_variance_is_the_batch_means_variance():
    folds = [30.0, 34.0, 32.0, 31.0, 33.0]
    assert fold_variance(folds) == pytest.approx(np.var(folds, ddof=1) / 5)
    with pytest.raises(ValueError):
        fold_variance([1.0])


def test_eval_folds_widen_a_summary_and_pair_a_comparison():
    # two models whose fold values move together (the same eval clips are hard for both)
    hard = np.array([-3.0, 2.0, -1.0, 4.0, -2.0])
    a = [rec("a", s, 40 + s * 0.1, 40 + s * 0.1 + hard) for s in range(3)]
    b = [rec("b", s, 38 + s * 0.1, 38 + s * 0.1 + hard + [0.1, -0.1, 0.0, 0.1, -0.1]) for s in range(3)]
    plain = mean_interval([r["psds1_macro"] for r in a])
    row, = summarise_seeds(a)
    assert row["psds1_macro_high"] - row["psds1_macro_low"] > plain.high - plain.low
    diff = compare_configurations(a + b, "a", "b")
    assert diff.low > 1.5  # paired by fold: the shared hard clips cancel
    unpaired_half = 1.96 * np.sqrt(fold_variance(a[0]["psds1_macro_folds"]))
    assert diff.half_width < unpaired_half


def test_seed_table_and_claims():
    rs = [rec("cnn", s, v) for s, v in zip(range(3), (32.1, 32.0, 33.9))]
    rs += [rec("tf", s, v) for s, v in zip(range(3), (36.1, 35.8, 37.9))]
    table = seed_table(rs)
    assert list(table["name"]) == ["cnn", "tf"] and list(table["n_seeds"]) == [3, 3]
    assert table.loc[0, "psds1_macro (95 % CI)"].startswith("32.67 ± ")
    assert table.loc[0, "psds1"] == pytest.approx(np.mean([32.1, 32.0, 33.9]) / 2)
    s = claim(rs, "tf", "cnn", "TF beats the CNN", +1)
    assert s.startswith(f"TF beats the CNN: {AGREES} (difference +3.93 ± ") or \
        s.startswith(f"TF beats the CNN: {AGREES} (difference +3.9 ± ")
    assert "PSDS points" in s and "PSDS points" in claim(rs, "tf", "cnn", "x", -1)
    md = claims_markdown([s])
    assert md.startswith("- TF beats the CNN: **agrees with the paper**")
    assert tally([s, claim(rs, "cnn", "cnn", "same", +1)]) == {AGREES: 1, "differs from the paper": 0,
                                                             INCONCLUSIVE: 1}


def test_the_budget_sentence_reads_the_learning_curve():
    rs = []
    for steps, gap in ((32, 4.0), (64, 0.1), (128, 0.2)):  # the gain vanishes with training
        rs += [rec("cnn", s, 30 + s + steps / 10, steps=steps) for s in range(3)]
        rs += [rec("tf", s, 30 + s + steps / 10 + gap + 0.3 * (-1) ** s, steps=steps) for s in range(3)]
    v = curve_verdicts(rs, "tf", "cnn", "TF beats the CNN", +1, [32, 64, 128])
    assert [x["verdict"] for x in v] == [AGREES, INCONCLUSIVE, INCONCLUSIVE]
    assert "unchanged: the budget is trained out" in budget_sentence(v, 64)
    assert "stable from 64 steps on" in budget_sentence(v, 64)
    assert "**not** trained out" in budget_sentence(v, 32)
    assert "not known" in budget_sentence(v, 128)
    with pytest.raises(ValueError, match="not on the curve"):
        budget_sentence(v, 100)


def test_a_single_model_gets_the_eval_clip_interval():
    row = single_model_row("teacher", {"psds1_macro": 0.5, "psds1": 0.25,
                                       "psds1_macro_folds": [0.48, 0.52, 0.50, 0.49, 0.51],
                                       "psds1_folds": [0.25] * 5})
    half = 1.959964 * np.sqrt(fold_variance([48, 52, 50, 49, 51]))
    assert row["psds1_macro"] == pytest.approx(50.0)
    assert row["psds1_macro_high"] - 50.0 == pytest.approx(half, rel=1e-5)
    assert row["psds1 (95 % CI)"] == "25.00 ± 0.00"


def test_psds_of_scores_disjoint_folds_of_the_eval_clips():
    """Each fold's PSDS is the PSDS of exactly its clips (clip i of the sorted names in fold
    i % k), and the same clips give the same folds whatever the order of the scores."""
    import torch

    from sedlib.config import AudioConfig
    from sedlib.data.spec import open_source
    from sedlib.evaluate.report import psds_report
    from sedlib.train.data import _ScoreFrames, dataset_vocab, psds_of, validation_reference

    audio = AudioConfig(clip_seconds=2.0)
    ds = open_source("synth:12", split="eval", audio_config=audio)
    rng = np.random.default_rng(0)
    names = [ds[i]["filename"] for i in range(len(ds))]
    scores = {n: (ds[i]["targets"].numpy() + rng.normal(0, 0.6, ds[i]["targets"].shape)).astype(np.float32)
              for i, n in enumerate(names)}
    vocab = dataset_vocab(ds, "validation")
    got = psds_of(scores, ds, vocab, audio, folds=3)
    assert len(got["psds1_macro_folds"]) == 3
    gt, durations = validation_reference(ds, audio)
    part = sorted(scores)[1::3]
    present = sorted({e.label for c in part for e in gt[c]}, key=list(vocab.names).index)
    want = psds_report(_ScoreFrames({c: scores[c] for c in part}, list(vocab.names), audio.frame_seconds,
                                    durations), {c: gt[c] for c in part}, {c: durations[c] for c in part},
                       classes=present, psds2=None, pauroc=None)
    assert got["psds1_macro_folds"][1] == pytest.approx(want["psds1_macro"])
    shuffled = dict(reversed(list(scores.items())))
    assert psds_of(shuffled, ds, vocab, audio, folds=3)["psds1_macro_folds"] == got["psds1_macro_folds"]
    assert "psds1_macro_folds" not in psds_of(scores, ds, vocab, audio)
    assert len(psds_of(dict(list(scores.items())[:5]), ds, vocab, audio, folds=5)["psds1_macro_folds"]) == 2
    del torch


def _per_class_rec(name, seed, alarm, beep):
    """A record with two classes: alarm (long context) and beep, 2 eval folds each."""
    r = rec(name, seed, (alarm + beep) / 2, folds=[(alarm + beep) / 2 - 1, (alarm + beep) / 2 + 1])
    r["psds1_per_class"] = {"alarm": alarm, "beep": beep}
    r["psds1_per_class_folds"] = {"alarm": [alarm - 1, alarm + 1], "beep": [beep, None]}
    return r


def test_claims_on_a_group_of_classes():
    """A sequence model that gains only on the long-context class: the macro claim is diluted,
    the long-context claim agrees, the other-classes claim is inconclusive."""
    from sedlib.study.findings import class_groups, on_classes

    recs = [_per_class_rec("cnn", s, 20.0 + s, 40.0 + s) for s in range(3)]
    recs += [_per_class_rec("seq", s, 30.0 + s + 0.1 * s * s, 40.0 + s + (0.5 if s == 1 else -0.5))
             for s in range(3)]
    groups = class_groups(recs)
    assert groups == {"long context": ["alarm"], "other": ["beep"]}
    alarm = on_classes(recs, groups["long context"])
    assert [r["psds1_macro"] for r in alarm[:3]] == [20.0, 21.0, 22.0]
    assert alarm[0]["psds1_macro_folds"] == [19.0, 21.0]
    assert on_classes(recs, ["beep"])[0]["psds1_macro_folds"] == [40.0, 40.0]  # fold 2 lacks beep
    assert f": {AGREES}" in claim(alarm, "seq", "cnn", "seq beats cnn on alarm", +1)
    assert f": {INCONCLUSIVE}" in claim(on_classes(recs, ["beep"]), "seq", "cnn", "seq beats cnn on beep", +1)
    assert class_groups([rec("cnn", 0, 1.0)]) == {}
    with pytest.raises(ValueError, match="no per-class PSDS stored"):
        on_classes([rec("cnn", 0, 1.0)], ["alarm"])
    with pytest.raises(ValueError, match="none of"):
        on_classes(recs, ["siren"])

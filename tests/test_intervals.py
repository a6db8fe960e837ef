"""The study's statistics (sedlib.study.intervals): seed intervals, paired differences, verdicts."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats

from sedlib.study import intervals
from sedlib.study.intervals import (
    AGREES,
    DIFFERS,
    INCONCLUSIVE,
    Interval,
    mean_interval,
    paired_difference,
    verdict,
)


def test_seed_interval_is_students_t():
    values = [0.3206, 0.3204, 0.3390]
    got = mean_interval(values)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert got.n == 3 and got.mean == pytest.approx(np.mean(values))
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))


def test_clip_variance_is_added_whole_not_divided_by_the_seeds():
    values, clip = [0.40, 0.42, 0.41], [1e-4, 2e-4, 3e-4]
    got = mean_interval(values, clip)
    se = math.sqrt(np.var(values, ddof=1) / 3 + np.mean(clip))
    assert got.half_width == pytest.approx(stats.t.ppf(0.975, 2) * se)
    assert got.half_width > mean_interval(values).half_width
    one = mean_interval([0.4], [1e-4])  # one seed, known clip noise: normal quantile
    assert one.known and one.half_width == pytest.approx(1.959964 * 0.01, rel=1e-5)
    with pytest.raises(ValueError, match="one finite variance"):
        mean_interval(values, [1e-4])
    with pytest.raises(ValueError, match="finite values"):
        mean_interval([])


def test_the_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    draws = rng.normal(0.4, 0.02, (4000, 3))
    hits = sum(mean_interval(d).contains(0.4) for d in draws)
    assert abs(hits / 4000 - 0.95) < 0.01


def test_paired_difference_uses_the_same_seeds():
    a, b = {0: 0.43, 1: 0.40, 2: 0.46}, {0: 0.41, 1: 0.381, 2: 0.439}  # seeds move both alike
    diff = paired_difference(a, b)
    want = mean_interval([0.02, 0.019, 0.021])
    assert (diff.mean, diff.low, diff.high) == pytest.approx((want.mean, want.low, want.high))
    assert diff.low > 0  # the seed effect cancels: the pairing makes the difference clear
    unpaired_overlap = mean_interval(list(a.values())).low < mean_interval(list(b.values())).high
    assert unpaired_overlap
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference(a, {0: 0.4, 1: 0.4})


@pytest.mark.parametrize("ours,sign,word", [
    (({0: 0.45, 1: 0.44, 2: 0.46}, {0: 0.40, 1: 0.41, 2: 0.40}), +1, AGREES),  # disjoint, same side
    (({0: 0.45, 1: 0.44, 2: 0.46}, {0: 0.40, 1: 0.41, 2: 0.40}), -1, DIFFERS),  # disjoint, other side
    (({0: 0.40, 1: 0.44, 2: 0.41}, {0: 0.42, 1: 0.41, 2: 0.43}), +1, INCONCLUSIVE),  # overlaps 0
    (({0: 0.40, 1: 0.44, 2: 0.41}, {0: 0.42, 1: 0.41, 2: 0.43}), -1, INCONCLUSIVE),
    (({0: 0.38, 1: 0.37, 2: 0.39}, {0: 0.42, 1: 0.41, 2: 0.43}), -1, AGREES),
])
def test_verdict_on_disjoint_and_overlapping_intervals(ours, sign, word):
    text = verdict("the claim", paired_difference(*ours), sign)
    assert text.startswith(f"the claim: {word} (difference ") and "95 % interval" in text


def test_one_seed_is_never_a_finding():
    text = verdict("the claim", mean_interval([0.05]), +1)
    assert INCONCLUSIVE in text and "one seed" in text
    with pytest.raises(ValueError, match="paper_sign"):
        verdict("x", Interval(0.1, 0.0, 0.2, 3), 0)


def test_docstring_examples():
    assert doctest.testmod(intervals).failed == 0


RECORDS = [{"name": n, "seed": s, "psds1_macro": v, "params": p}
           for n, p, vals in (("fmn02", 100, (32.1, 32.0, 33.9)), ("fmn02+TF:64", 150, (33.9, 33.3, 36.0)))
           for s, v in zip((0, 1, 2), vals)]


def test_seed_summary_rows_and_paired_comparison():
    from sedlib.study.intervals import compare_configurations, summarise_seeds

    rows = summarise_seeds(RECORDS)
    assert [r["name"] for r in rows] == ["fmn02", "fmn02+TF:64"]
    cnn = rows[0]
    want = mean_interval([32.1, 32.0, 33.9])
    assert cnn["psds1_macro"] == pytest.approx(want.mean) and cnn["params"] == 100
    assert (cnn["psds1_macro_low"], cnn["psds1_macro_high"]) == (pytest.approx(want.low),
                                                                pytest.approx(want.high))
    assert cnn["seeds"] == [0, 1, 2] and cnn["n_seeds"] == 3
    diff = compare_configurations(RECORDS, "fmn02+TF:64", "fmn02")
    assert diff.mean == pytest.approx((1.8 + 1.3 + 2.1) / 3)
    with pytest.raises(ValueError, match="twice"):
        summarise_seeds(RECORDS + [RECORDS[0]])
    with pytest.raises(ValueError, match="no records"):
        compare_configurations(RECORDS, "fmn02", "fmn04")


def test_figures_draw_the_seed_intervals_as_error_bars():
    from sedlib.study.intervals import summarise_seeds
    from sedlib.study.plots import tradeoff_figure

    fig = tradeoff_figure(summarise_seeds(RECORDS), x="params", y="psds1_macro", pareto=False)
    bars = [t.error_y for t in fig.data]
    assert all(b.array is not None and b.arrayminus is not None for b in bars)
    rows = summarise_seeds(RECORDS)
    got = sorted(h for b in bars for h in b.array)
    assert got == pytest.approx(sorted(r["psds1_macro_high"] - r["psds1_macro"] for r in rows))
    plain = tradeoff_figure(RECORDS[:1], x="params", y="psds1_macro", pareto=False)
    assert plain.data[0].error_y.array is None  # one run: no bars


def test_learning_curve_rows_and_figure():
    from sedlib.study.intervals import summarise_seeds
    from sedlib.study.plots import learning_curve_figure

    records = [{"name": n, "steps": st, "seed": s, "psds1_macro": base + st / 32 + s}
               for n, base in (("fmn02", 30.0), ("fmn02+TF:64", 31.0))
               for st in (64, 128, 256) for s in (0, 1, 2)]
    rows = summarise_seeds(records, by=("name", "steps"))
    assert [(r["name"], r["steps"], r["n_seeds"]) for r in rows[:3]] == [
        ("fmn02", 64, 3), ("fmn02", 128, 3), ("fmn02", 256, 3)]
    assert rows[0]["psds1_macro"] == pytest.approx(30.0 + 2 + 1)
    fig = learning_curve_figure(rows)
    assert [t.name for t in fig.data] == ["fmn02", "fmn02+TF:64"]
    assert list(fig.data[0].x) == [64, 128, 256] and fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.tickvals) == [64, 128, 256]  # ticks at the budgets, not 3 4 ... 100 2
    assert fig.data[0].error_y.array is not None


def test_verdict_word_is_what_the_sentences_say():
    from sedlib.study.intervals import AGREES, DIFFERS, INCONCLUSIVE, Interval, verdict, verdict_word

    cases = [(Interval(2.0, 1.0, 3.0, 3), +1, AGREES), (Interval(2.0, 1.0, 3.0, 3), -1, DIFFERS),
             (Interval(0.5, -1.0, 2.0, 3), +1, INCONCLUSIVE), (Interval(2.0, 2.0, 2.0, 1), +1, INCONCLUSIVE)]
    for iv, sign, word in cases:
        assert verdict_word(iv, sign) == word
        assert f": {word}" in verdict("x", iv, sign, scale=1.0)
    assert "(one seed: no interval)" in verdict("x", Interval(2.0, 2.0, 2.0, 1), +1)
    with pytest.raises(ValueError, match="paper_sign must be"):
        verdict_word(Interval(1.0, 0.5, 1.5, 3), 0)

"""The batched intersection counts (sedlib.evaluate.psds_counts) equal sed_scores_eval's, pair by pair."""

import numpy as np
import pytest

from sedlib.evaluate import PSDS1, PSDS2
from sedlib.evaluate import psds_report
from sedlib.evaluate.psds_counts import ClipPairs, intersection_deltas, library_deltas
from sedlib.evaluate import psds_stats


def clip(rng, t: int, k: int, n_events: int, ties: int | None, theta_level: float | None):
    """One clip: T frames of 40 ms (last one shorter), K pairs, events of classes 0..3 (some
    overlapping, some touching frame edges), scores with bumps at the events."""
    stamps = np.r_[np.arange(t) * 0.04, (t - 1) * 0.04 + 0.013]
    labels = np.sort(rng.integers(0, 4, n_events))
    onsets = np.round(rng.uniform(0, stamps[-1] - 0.2, n_events), 3)
    offsets = np.round(np.minimum(onsets + rng.uniform(0.05, 1.5, n_events), stamps[-1]), 3)
    for c in np.unique(labels):  # one class's events never overlap
        sel = np.flatnonzero(labels == c)
        o = np.sort(onsets[sel])
        onsets[sel] = o
        offsets[sel] = np.minimum(np.round(o + rng.uniform(0.05, 0.6, len(sel)), 3),
                                  np.r_[o[1:] - 0.01, stamps[-1]])
    classes = rng.choice(8, size=k, replace=False)
    s = rng.random((t, k)) * 0.5
    for on, off, c in zip(onsets, offsets, labels):
        if c in classes:
            a, b = int(on / 0.04), int(np.ceil(off / 0.04))
            s[a:b, list(classes).index(c)] += rng.uniform(0.2, 0.6)
    if ties:
        s = np.round(s * ties) / ties
    theta = np.full(k, -np.inf) if theta_level is None else np.quantile(s, theta_level, axis=0)
    return ClipPairs(stamps, s, classes, theta, onsets, offsets, labels)


def canonical(d):
    main = np.stack([d.main[0].astype(float), d.main[1], d.main[2], d.main[3]])
    main = main[:, np.lexsort(main[::-1])]
    cts = None
    if d.cts is not None and len(d.cts[0]):
        cts = np.stack([a.astype(float) for a in d.cts])
        cts = cts[:, np.lexsort(cts[::-1])]
    return main, cts


@pytest.mark.parametrize("cfg", [PSDS1, PSDS2], ids=["psds1", "psds2"])
@pytest.mark.parametrize("seed", range(6))
def test_batched_counts_equal_the_library(cfg, seed):
    rng = np.random.default_rng(seed)
    items = [clip(rng, t=int(rng.integers(20, 60)), k=int(rng.integers(1, 6)),
                  n_events=int(rng.integers(0, 12)),  # >= 8 of a class: numpy's pairwise sums
                  ties=[None, 4, 10][seed % 3], theta_level=[None, 0.5, 0.9][seed // 2 % 3])
             for _ in range(12)]
    args = (cfg.dtc_threshold, cfg.gtc_threshold, cfg.cttc_threshold, cfg.time_decimals)
    got = intersection_deltas(items, *args)
    assert got is not None
    want = library_deltas(items, *args)
    g, w = canonical(got), canonical(want)
    assert np.array_equal(g[0], w[0])
    if cfg.cttc_threshold is not None:
        assert w[1] is not None and np.array_equal(g[1], w[1])  # cross triggers do happen here


@pytest.mark.parametrize("cfg", [PSDS1, PSDS2], ids=["psds1", "psds2"])
def test_long_clips_with_few_frames_above_the_level_equal_the_library(cfg):
    """Regression: a batch whose frames above the level are far fewer than its clip length
    (a small eval fold of a good model) made the range-minimum table shorter than its step."""
    rng = np.random.default_rng(7)
    items = [clip(rng, t=250, k=2, n_events=2, ties=None, theta_level=0.995) for _ in range(2)]
    args = (cfg.dtc_threshold, cfg.gtc_threshold, cfg.cttc_threshold, cfg.time_decimals)
    got, want = intersection_deltas(items, *args), library_deltas(items, *args)
    assert got is not None
    assert np.array_equal(canonical(got)[0], canonical(want)[0])


def test_a_sum_at_a_rounding_midpoint_is_left_to_the_library():
    """Two intersections adding up to ...5e-7: the order of addition could round either way."""
    stamps = np.array([0.0, 0.1000005, 0.2, 0.3])
    s = np.array([[0.9], [0.9], [0.1]])
    item = ClipPairs(stamps, s, np.array([0]), np.array([-np.inf]),
                     np.array([0.05, 0.15]), np.array([0.1000005, 0.2000005]), np.array([0, 0]))
    args = (PSDS1.dtc_threshold, PSDS1.gtc_threshold, None, PSDS1.time_decimals)
    assert intersection_deltas([item], *args) is None
    assert library_deltas([item], *args).main[0].size  # the library still counts it


def test_psds_falls_back_to_the_library_and_agrees(monkeypatch):
    """With the batched counts refused, PSDSStats counts with sed_scores_eval: same report."""
    from test_evaluate import synthetic

    scores, gt, durations = synthetic(3)
    want = psds_report(scores, gt, durations)
    monkeypatch.setattr(psds_stats, "intersection_deltas", lambda *a: None)
    got = psds_report(scores, gt, durations)
    for m in ("psds1", "psds1_macro", "psds2", "pauroc"):
        assert got[m] == pytest.approx(want[m], abs=1e-12)


def test_pauroc_with_its_store_cut_many_times_equals_sed_scores_eval(monkeypatch):
    """Levels rise over many flushes (every 4 clips): the kept maxima still give the library's AUC."""
    from test_evaluate import synthetic

    from sedlib.evaluate import auroc_stats

    scores, gt, durations = synthetic(4, clips=200)
    want = psds_report(scores, gt, durations, psds2=None, engine="reference")
    cuts = []
    original = auroc_stats.SegmentStats._cut

    def counting_cut(self, c):
        original(self, c)
        cuts.append(self.level[c])

    monkeypatch.setattr(auroc_stats.SegmentStats, "flush_every", 4)
    monkeypatch.setattr(auroc_stats.SegmentStats, "_cut", counting_cut)
    got = psds_report(scores, gt, durations, psds2=None)
    assert len(cuts) >= 16 and np.isfinite(cuts).sum() >= 16  # the store was cut, at real levels
    assert got["pauroc"] == pytest.approx(want["pauroc"], abs=1e-12)
    for c, row in want["per_class"].items():
        assert got["per_class"][c]["pauroc"] == pytest.approx(row["pauroc"], abs=1e-12)

"""The claims table: which of the paper's claims a study's records test, their verdicts, the
smallest detectable effect, the files and the CLI that write them."""

from __future__ import annotations

import json
import math

import pytest

from sedlib.study.claims import PAPER_PSDS1, paper_dim, assess, assess_all, catalogue, minimum_detectable_effect
from sedlib.study.claims_report import claims_markdown_table, claims_of
from sedlib.study.intervals import AGREES, DIFFERS, INCONCLUSIVE, Interval

CLASSES = ["alarm", "siren", "chirp"]


def _rec(name, seed, macro, *, steps=8, kd=0.0, weak=None, frozen=False, init="bb.safetensors", key=None,
         spread=(0.0, 0.0, 0.0, 0.0, 0.0), per_class=None):
    return dict(name=name, seed=seed, steps=steps, kd_weight=kd, weak_data=weak, frozen_backbone=frozen,
                init=init, key=key or f"{name}-{steps}-{kd}-{weak}-{frozen}-{init}-{seed}",
                psds1_macro=macro, psds1_macro_folds=[macro + d for d in spread],
                psds1_per_class=per_class or {c: macro for c in CLASSES})


def _study(gain_tf=3.0, noise=(0.0, 0.3, -0.3)):
    """A quick-like grid over 3 seeds: fmn02, fmn02+TF:64, fmn04 at 8 steps, KD, weak-set KD, a
    continued weak run and the clip-wise strides."""
    recs = []
    for s, e in enumerate(noise):
        recs.append(_rec("fmn02", s, 60.0 + e))
        recs.append(_rec("fmn02+TF:64", s, 60.0 + gain_tf + e))
        recs.append(_rec("fmn04", s, 70.0 + e))
        recs.append(_rec("fmn02+TF:64", s, 60.0 + gain_tf + e + 0.1, kd=0.9))
        weak = _rec("fmn02+TF:64", s, 60.0 + gain_tf + e + 0.2, kd=0.9, weak="synth:8:2")
        recs.append(weak)
        recs.append(_rec("fmn02+TF:64", s, 60.0 + gain_tf + e + 4.0, kd=0.9, weak="synth:8:2", init=weak["key"]))
        recs.append(_rec("fmn02+TF:64 (clip-wise strides)", s, 20.0 + e))
    return recs


def test_minimum_detectable_effect_is_the_power_multiple_of_the_half_width():
    from scipy.stats import norm, t

    iv = Interval(1.0, -1.0, 3.0, 3)  # half-width 2, t with 2 dof
    q = t(2).ppf(0.975)
    assert minimum_detectable_effect(iv) == pytest.approx((q + t(2).ppf(0.8)) / q * 2.0)
    one = Interval(0.0, -1.96, 1.96, 1)  # one seed with a clip variance: normal quantiles
    assert minimum_detectable_effect(one) == pytest.approx((1.959964 + norm.ppf(0.8)) / 1.959964 * 1.96, rel=1e-5)
    assert math.isnan(minimum_detectable_effect(Interval(1.0, 1.0, 1.0, 1)))  # no interval: no power


def test_paper_dims_follow_the_backbones_scaled_default():
    assert paper_dim(64, "fmn02") == 256 and paper_dim(32, "fmn02") == 128
    assert paper_dim(104, "fmn04") == 256 and paper_dim(256, "fmn10") == 256


def test_the_catalogue_lists_the_claims_a_quick_grid_tests():
    keys = [c.key for c in catalogue(_study())]
    assert keys == ["fig1-fmn02+TF:64-cnn", "fig1-fmn02+TF:64-cnn-context", "fig1-fmn02+TF:64-wide",
                    "table1-kd-fine-tuned", "table2-weak", "table2-longer", "table2-both",
                    "strides-fmn02+TF:64"]
    first = catalogue(_study())[0]
    assert first.paper == pytest.approx(PAPER_PSDS1["fmn10+TF:256"] - PAPER_PSDS1["fmn10"])
    wide = catalogue(_study())[2]  # fmn10+TF:256 ties fmn20 in the paper: "matches or beats"
    assert wide.sign == +1 and wide.paper == 0.0


def test_verdicts_and_reach():
    rows = {r["claim"].key: r for r in assess_all(_study(gain_tf=3.0))}
    assert rows["fig1-fmn02+TF:64-cnn"]["verdict"] == AGREES
    assert rows["fig1-fmn02+TF:64-cnn"]["ours"].mean == pytest.approx(3.0)
    assert rows["fig1-fmn02+TF:64-wide"]["verdict"] == DIFFERS  # 63 vs 70
    assert rows["table2-longer"]["ours"].mean == pytest.approx(3.8)  # the continued run vs its start
    assert rows["table2-both"]["ours"].mean == pytest.approx(3.9)
    assert rows["strides-fmn02+TF:64"]["verdict"] == AGREES
    noisy = {r["claim"].key: r for r in assess_all(_study(gain_tf=0.5, noise=(0.0, 3.0, -3.0)))}
    kd = noisy["table1-kd-fine-tuned"]  # +0.1 under seed noise that cancels in the pairing
    assert kd["verdict"] == AGREES and kd["ours"].mean == pytest.approx(0.1)
    tf = noisy["fig1-fmn02+TF:64-cnn"]  # +0.5 exactly on every seed: a zero-width interval
    assert tf["verdict"] == AGREES
    wide = [_rec("fmn02", s, 60.0 + e, spread=(0, 2, -2, 1, -1)) for s, e in enumerate((0, 1, -1))]
    wide += [_rec("fmn02+TF:64", s, 60.5 + e, spread=(0, -2, 2, -1, 1)) for s, e in enumerate((0, -1, 1))]
    row = assess(wide, catalogue(wide)[0])
    assert row["verdict"] == INCONCLUSIVE and row["mde"] > 1.58
    assert row["reach"] == f"the paper's effect is below the smallest detectable ({row['mde']:.1f})"


def test_a_claim_pairs_the_seeds_both_sides_ran():
    """Figure 1's runs with 5 seeds against another notebook's with 3 (the classroom profile):
    the difference is paired over seeds 0-2, the extra seeds of one side left out."""
    recs = _study(gain_tf=3.0)
    recs += [_rec("fmn02", s, 90.0) for s in (3, 4)]  # seeds the TF side never ran
    row = {r["claim"].key: r for r in assess_all(recs)}["fig1-fmn02+TF:64-cnn"]
    assert row["ours"].mean == pytest.approx(3.0) and row["verdict"] == AGREES


def test_a_side_without_records_is_an_error():
    claim = catalogue(_study())[0]
    with pytest.raises(ValueError, match="no records match"):
        assess([r for r in _study() if r["name"] != "fmn02"], claim)


def test_markdown_and_a_notebooks_rows():
    text = claims_markdown_table(assess_all(_study()), title="T")
    assert text.startswith("# T\n")
    assert "| Table II | weak-set KD and 2x training together beat KD alone | +1.39" in text
    assert "Not tested here:" in text and "median filter" in text
    one = claims_of(_study(), ["Table I"])
    assert one.count("| Table I |") == 1 and "Not tested" not in one
    assert claims_of(_study(), ["Fig. 2"]) == "No claim of Fig. 2 can be tested with these runs.\n"


def test_write_claims_and_the_cli(tmp_path, capsys):
    from sedlib.cli import main
    from sedlib.study.claims_report import write_claims

    out = write_claims(_study(), tmp_path, title="t", png=False)
    assert set(out) == {"html", "md"} and out["md"].read_text().startswith("# t\n")
    assert write_claims([], tmp_path / "none", title="t", png=False) == {}
    assert main(["study", "--claims-only", "--figures", str(tmp_path / "missing")]) == 2
    assert "no stored results" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.jsonl").write_text('{"name": \n')
    assert main(["study", "--claims-only", "--figures", str(tmp_path / "bad")]) == 2
    assert "results.jsonl: not a study results file (JSONDecodeError" in capsys.readouterr().err


def test_the_committed_claims_tables_are_the_committed_results():
    """figures/claims.md and figures/classroom/claims.md are what the committed results.jsonl
    give (rewrite them with `sedlib study --claims-only --figures <folder>`)."""
    from sedlib.config import PROJECT_ROOT
    from sedlib.study.median_window import read_sweep
    from sedlib.study.results import read_results_log

    for folder in (PROJECT_ROOT / "figures", PROJECT_ROOT / "figures" / "classroom"):
        table = claims_markdown_table(assess_all(read_results_log(folder / "results.jsonl"), read_sweep(folder)))
        stored = (folder / "claims.md").read_text(encoding="utf-8")
        assert table in stored, f"{folder / 'claims.md'} is stale"
        assert stored.count("\n| ") >= 8, "at least 7 claims"  # header row + >= 7 claims


def test_the_forest_plot_has_a_row_per_claim():
    from sedlib.study.claims_report import forest_figure

    rows = assess_all(_study())
    fig = forest_figure(rows)
    ours, paper = fig.data
    assert len(ours.x) == len(rows) and list(ours.y) == list(range(len(rows)))
    assert len(paper.x) == sum(r["claim"].paper is not None for r in rows)
    assert json.loads(fig.to_json())["layout"]["yaxis"]["autorange"] == "reversed"


def test_the_pareto_front_is_drawn_only_where_intervals_separate():
    from sedlib.study.plots import paper_figure, separated_front

    rows = [dict(psds1=50.0, psds1_low=48.0, psds1_high=52.0), dict(psds1=51.0, psds1_low=49.0, psds1_high=53.0),
            dict(psds1=56.0, psds1_low=54.0, psds1_high=58.0), dict(psds1=57.0, psds1_low=55.0, psds1_high=59.0)]
    assert separated_front(rows, [0, 1, 2, 3], "psds1") == [0, 2]  # 1 and 3 overlap the point before
    assert separated_front([{"psds1": 1.0}, {"psds1": 2.0}], [0, 1], "psds1") == [0, 1]  # no intervals
    recs = [dict(name=n, params=p, macs=p, throughput=1e6 / p, **r) for n, p, r in
            (("fmn10", 1e6, rows[0]), ("fmn10+TF:128", 2e6, rows[1]), ("fmn10+TF:256", 3e6, rows[2]))]
    fig = paper_figure(recs, 1)
    assert all("text" not in (t.mode or "") for t in fig.data)  # names in legend and hover only
    fronts = [t for t in fig.data if t.name == "Pareto front"]
    assert len(fronts) == 3 and all(list(t.text) == ["fmn10", "fmn10+TF:256"] for t in fronts[:2])
    assert list(fronts[2].text) == ["fmn10+TF:256", "fmn10"]  # throughput: by increasing x
    assert separated_front(rows[::-1], [0, 1, 2, 3], "psds1", cheap_first=False) == [1, 3]


def _sweep(slope=0.5, odd_bonus=0.4, models=("fmn02", "fmn02+TF:64"), seeds=(0, 1, 2)):
    """Sweep rows: PSDS1 macro rising with the window, odd windows ``odd_bonus`` higher."""
    return [dict(name=m, seed=s, key=f"{m}-{s}", window=w,
                 psds1_macro=60.0 + slope * w + (odd_bonus if w % 2 else 0.0) + 0.1 * s,
                 psds1_macro_folds=[60.0 + slope * w + (odd_bonus if w % 2 else 0.0) + 0.1 * s + d
                                    for d in (0.2, -0.2, 0.1, -0.1, 0.0)])
            for m in models for s in seeds for w in range(1, 16)]


def test_the_median_window_sweep_claims():
    from sedlib.study.median_window import best_window, window_records

    assert best_window(_sweep()) == 15
    assert best_window(_sweep(slope=0.0, odd_bonus=0.0)) == 1  # ties: the smaller window
    recs = {(r["name"], r["seed"]): r for r in window_records(_sweep())}
    # odd 3..13 against the mean of their even neighbours: the rise over windows cancels
    assert recs[("fmn02, odd windows", 0)]["psds1_macro"] - recs[("fmn02, even windows", 0)]["psds1_macro"] \
        == pytest.approx(0.4)
    flat = {(r["name"], r["seed"]): r for r in window_records(_sweep(odd_bonus=0.0))}
    assert flat[("fmn02, odd windows", 1)]["psds1_macro"] == pytest.approx(
        flat[("fmn02, even windows", 1)]["psds1_macro"])
    rows = {r["claim"].key: r for r in assess_all([], _sweep())}
    assert set(rows) == {"median-odd-fmn02", "median-9-fmn02", "median-odd-fmn02+TF:64", "median-9-fmn02+TF:64"}
    assert rows["median-odd-fmn02"]["verdict"] == AGREES
    assert rows["median-odd-fmn02"]["ours"].mean == pytest.approx(0.4)
    assert rows["median-9-fmn02"]["ours"].mean == pytest.approx(4.0)
    text = claims_markdown_table(list(rows.values()))
    assert "median filter" not in text.split("Not tested here:")[1]  # tested: not listed as untested


def test_a_stored_sweep_joins_the_claims_file(tmp_path):
    from sedlib.study.claims_report import write_claims
    from sedlib.study.median_window import read_sweep, write_sweep

    assert read_sweep(tmp_path) == []
    write_sweep(_sweep(), tmp_path)
    assert read_sweep(tmp_path) == _sweep()
    text = write_claims(_study(), tmp_path, title="t", png=False)["md"].read_text()
    assert text.count("| Sec. III-B |") == 4


"""Evaluation (SPEC 7): median filter, score frames, PSDS / pAUROC against sed_scores_eval itself,
the AudioSet protocol, the ``sedlib eval`` command, and errors that name what is wrong."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sed_scores_eval
from scipy import ndimage

from sedlib import evaluate as ev
from sedlib.commands import eval as eval_cmd
from sedlib.data import formats
from sedlib.errors import FormatError, SedlibError
from sedlib.evaluate import inputs as eval_inputs
from sedlib.evaluate import psds_stats

FIXTURE = Path(__file__).parent / "fixtures" / "dcase2023t4a_scores"  # CC-BY-4.0, see its README
DCASE_PSDS1 = dict(dtc_threshold=0.7, gtc_threshold=0.7, cttc_threshold=None, alpha_ct=0, alpha_st=1,
                   max_efpr=100)
DCASE_PSDS2 = dict(dtc_threshold=0.1, gtc_threshold=0.1, cttc_threshold=0.3, alpha_ct=0.5, alpha_st=1,
                   max_efpr=100)
METRICS = ("psds1", "psds1_macro", "psds2", "pauroc")


def run_eval(*argv: str) -> int:
    """The ``sedlib eval`` subcommand, as the dispatcher in sedlib.cli runs it."""
    parser = argparse.ArgumentParser()
    eval_cmd.add_arguments(parser)
    return eval_cmd.run(parser.parse_args(list(argv)))


def synthetic(seed: int, clips: int = 120, k: int = 8, t: int = 100, ties: int | None = None):
    """Scores correlated with random events; varied durations; ``ties`` quantises scores."""
    rng = np.random.default_rng(seed)
    classes = [f"c{i}" for i in range(k)]
    scores, gt, durations = {}, {}, {}
    for i in range(clips):
        cid, d = f"clip{i:04d}", float(rng.choice([10.0, 9.5, 7.3]))
        events = [] if i >= k else [(1.0, 3.0, classes[i])]
        for c in rng.choice(k, size=rng.integers(0, 4), replace=False):
            if any(e[2] == classes[c] for e in events):
                continue
            onset = float(np.round(rng.uniform(0, d - 1), 3))
            events.append((onset, float(np.round(min(d, onset + rng.uniform(0.2, 4)), 3)), classes[c]))
        x = rng.standard_normal((k, t)) - 2.0  # (K, T)
        for onset, offset, label in events:
            x[classes.index(label), int(onset / d * t):int(offset / d * t) + 1] += 3.0
        x = ev.median_filter(x, 5)
        if ties:
            x = np.round(x * ties) / ties
        scores[cid] = ev.scores_to_dataframe(x, classes, frame_seconds=0.1, duration=d)
        gt[cid + ".wav"], durations[cid + ".wav"] = events, d
    return scores, gt, durations


def perfect(classes: list[str], clips: int = 6, inside: float = 1.0):
    """Frame-aligned events (40 ms frames, 10 s clips) and scores ``inside`` them, 0 elsewhere."""
    scores, gt, durations = {}, {}, {}
    for i in range(clips):
        events = [(onset, onset + length, classes[(i + j) % len(classes)])
                  for j, (onset, length) in enumerate([(0.4, 1.2), (3.0, 0.8), (6.0, 2.4)][: 1 + i % 3])]
        x = np.zeros((len(classes), 250))  # (K, T)
        for onset, offset, label in events:
            x[classes.index(label), round(onset * 25):round(offset * 25)] = inside
        scores[f"c{i}"] = ev.scores_to_dataframe(x, classes, 0.04)
        gt[f"c{i}"], durations[f"c{i}"] = events, 10.0
    return scores, gt, durations


def assert_same(a: dict, b: dict) -> None:
    for m in METRICS:
        assert a[m] == pytest.approx(b[m], abs=1e-12), m
    assert a["per_class"].keys() == b["per_class"].keys()
    for c in a["per_class"]:
        for m in ("psds1", "psds2", "pauroc"):
            assert a["per_class"][c][m] == pytest.approx(b["per_class"][c][m], abs=1e-12), (c, m)


# --- post-processing ---------------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 9, 31, 33])
@pytest.mark.parametrize("t", [9, 40, 250])
def test_median_filter_equals_scipy(size, t):
    rng = np.random.default_rng(size * 1000 + t)
    x = rng.standard_normal((3, 5, t)).astype(np.float32)  # (B, K, T)
    x[0, 0] = np.round(x[0, 0])  # ties
    if size > t:
        return
    want = ndimage.median_filter(x, size=(1, 1, size), mode="reflect")
    got = ev.median_filter(x, size)
    assert got.dtype == x.dtype and np.array_equal(got, want)
    # the reference's orientation: (T, K) filtered with size (size, 1), per clip
    assert np.array_equal(ev.median_filter(x[1], size), ndimage.median_filter(x[1].T, size=(size, 1)).T)


@pytest.mark.parametrize("size", [3, 4, 9, 31])
def test_median_filter_windows_longer_than_the_clip(size):
    """Reflected again at each end (scipy reads past short rows there, so it is no reference)."""
    x = np.random.default_rng(size).standard_normal((4, 3))  # (K, T=3)
    padded = np.pad(x, [(0, 0), (size // 2, size - 1 - size // 2)], mode="symmetric")
    want = np.array([[np.sort(row[i:i + size])[size // 2] for i in range(3)] for row in padded])
    assert np.array_equal(ev.median_filter(x, size), want)


def test_median_filter_per_class_sizes_and_edges():
    x = np.array([[0.0, 9.0, 1.0, 8.0, 2.0, 7.0, 3.0], [5.0, 0.0, 5.0, 0.0, 5.0, 0.0, 9.0]])
    # reflect mode: the edges see mirrored frames (0 | 0 9 1 ... -> median(0, 0, 9) = 0)
    assert ev.median_filter(x, [3, 1]).tolist() == [[0.0, 1.0, 8.0, 2.0, 7.0, 3.0, 3.0], x[1].tolist()]
    sizes = [9, 3]
    got = ev.median_filter(np.stack([x, x[::-1]]), sizes)  # (B, K, T)
    for b, clip in enumerate([x, x[::-1]]):
        for k, s in enumerate(sizes):
            assert np.array_equal(got[b, k], ndimage.median_filter(clip[k], size=s, mode="reflect"))
    with pytest.raises(ValueError, match="one per class"):
        ev.median_filter(x, [3, 3, 3])


def test_scores_to_dataframe_timestamps_and_duration():
    x = np.random.default_rng(0).random((4, 250))
    df = ev.scores_to_dataframe(x, list("abcd"))
    stamps = np.concatenate((df["onset"].to_numpy(), df["offset"].to_numpy()[-1:]))
    assert np.array_equal(stamps, np.arange(251) * 4 / 100)  # the reference's _frame_to_time
    assert list(df.columns) == ["onset", "offset", *"abcd"]
    assert np.array_equal(df[list("abcd")].to_numpy().T, x)
    short = ev.scores_to_dataframe(x, list("abcd"), duration=9.5)
    assert len(short) == 238 and short["offset"].iloc[-1] == 9.5 and short["onset"].iloc[-1] == 9.48
    assert len(ev.scores_to_dataframe(x, list("abcd"), duration=9.98)) == 250
    sed_scores_eval.base_modules.scores.validate_score_dataframe(short)


# --- PSDS values -------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_perfect_predictions_score_one(engine):
    scores, gt, durations = perfect(["a", "b", "c", "d"])
    r = ev.psds_report(scores, gt, durations, engine=engine)
    assert r["psds1"] == pytest.approx(1.0) and r["psds1_macro"] == pytest.approx(1.0)
    assert r["psds2"] == pytest.approx(1.0) and r["pauroc"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for row in r["per_class"].values() for v in row.values())


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_all_zero_predictions_score_zero(engine):
    scores, gt, durations = perfect(["a", "b", "c"], inside=0.0)
    r = ev.psds_report(scores, gt, durations, engine=engine)
    assert r["psds1"] == 0.0 and r["psds1_macro"] == 0.0
    assert all(row["psds1"] == 0.0 for row in r["per_class"].values())


@pytest.mark.parametrize("seed,ties", [(0, None), (1, 4), (2, 20)])
def test_fast_engine_equals_sed_scores_eval(seed, ties):
    """Pruning, streaming, workers: the same numbers as sed_scores_eval on the same inputs."""
    scores, gt, durations = synthetic(seed, ties=ties)
    want = ev.psds_report(scores, gt, durations, engine="reference")
    lazy = ev.MappedScores(scores, lambda df: df)  # not a dict: partial prepass, levels rise
    for got in (ev.psds_report(scores, gt, durations),
                ev.psds_report(scores, gt, durations, num_jobs=2),  # prepass shared out too
                ev.psds_report(lazy, gt, durations),
                ev.psds_report(lazy, gt, durations, num_jobs=2)):
        assert_same(got, want)
    # pruning really is exercised: most classes have enough clips without their events
    inputs = eval_inputs.prepare_inputs(scores, gt, durations, None, None)
    limit = psds_stats.PSDSStats(ev.PSDS1, 8, sum(inputs.durations.values()), np.zeros(8, int)).limit
    per_class = {c: sum(any(e[2] == c for e in evs) for evs in inputs.ground_truth.values())
                 for c in inputs.classes}
    assert sum(len(inputs.clips) - n >= limit for n in per_class.values()) >= 6


def test_sort_and_cut_equals_sed_scores_eval():
    from sed_scores_eval.intersection_based.psds import _sort_and_cut

    rng = np.random.default_rng(0)
    for _ in range(50):
        tpr = np.round(rng.random(40), 1)
        efpr = np.round(rng.random(40) * 150, -1)
        want = _sort_and_cut(tpr, efpr, rng.random(40), max_efpr=100.0)
        got = psds_stats._sort_and_cut(tpr, efpr, 100.0)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


# --- the DCASE fixture through `sedlib eval` ----------------------------------------------------

@pytest.fixture(scope="module")
def dcase(tmp_path_factory):
    """The fixture's ground truth and durations restricted to its 20 scored clips."""
    out = tmp_path_factory.mktemp("dcase")
    clips = {p.stem + ".wav" for p in (FIXTURE / "scores").glob("*.tsv")}
    gt = formats.read_strong_tsv(FIXTURE / "metadata" / "ground_truth.tsv")
    durations = formats.read_durations_tsv(FIXTURE / "metadata" / "audio_durations.tsv")
    formats.write_strong_tsv(out / "gt.tsv", {f: gt[f] for f in gt if f in clips})
    formats.write_durations_tsv(out / "durations.tsv", {f: d for f, d in durations.items() if f in clips})
    assert len(clips) == 20
    return FIXTURE / "scores", out / "gt.tsv", out / "durations.tsv"


def test_fixture_is_in_repo_and_matches_shared_copy():
    assert (FIXTURE / "README.md").is_file() and (FIXTURE / "LICENSE-CC-BY-4.0.txt").is_file()
    shared = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "dcase2023t4a_scores"
    if shared.is_dir():  # the workspace's copy, when this checkout has one beside it
        for p in (shared / "scores").glob("*.tsv"):
            assert p.read_bytes() == (FIXTURE / "scores" / p.name).read_bytes()


def test_eval_command_equals_sed_scores_eval_on_dcase(dcase, capsys):
    scores_dir, gt_tsv, durations_tsv = dcase
    assert run_eval("--scores", str(scores_dir), "--ground-truth", str(gt_tsv),
                    "--durations", str(durations_tsv), "--json") == 0
    got = json.loads(capsys.readouterr().out)
    assert set(METRICS) | {"per_class"} <= got.keys()

    # sed_scores_eval directly, with its own readers and the DCASE parameter sets
    scores = sed_scores_eval.io.read_sed_scores(scores_dir)
    gt = sed_scores_eval.io.read_ground_truth_events(gt_tsv)
    durations = sed_scores_eval.io.read_audio_durations(durations_tsv)
    psds1, per_class1, *_ = sed_scores_eval.intersection_based.psds(scores, gt, durations, **DCASE_PSDS1)
    psds2, per_class2, *_ = sed_scores_eval.intersection_based.psds(scores, gt, durations, **DCASE_PSDS2)
    pauroc, _ = sed_scores_eval.segment_based.auroc(scores, gt, durations, segment_length=1.0, max_fpr=0.1)
    assert got["psds1"] == pytest.approx(psds1, abs=1e-12)
    assert got["psds1_macro"] == pytest.approx(np.mean(list(per_class1.values())), abs=1e-12)
    assert got["psds2"] == pytest.approx(psds2, abs=1e-12)
    assert got["pauroc"] == pytest.approx(pauroc["mean"], abs=1e-12)
    for c in per_class1:
        assert got["per_class"][c]["psds1"] == pytest.approx(per_class1[c], abs=1e-12)
        assert got["per_class"][c]["psds2"] == pytest.approx(per_class2[c], abs=1e-12)
    assert got["psds1"] == pytest.approx(0.269743, abs=1e-6)  # pinned: a library change shows here


def test_eval_command_table_and_median_filter(dcase, capsys):
    scores_dir, gt_tsv, durations_tsv = dcase
    run_eval("--scores", str(scores_dir), "--ground-truth", str(gt_tsv), "--durations", str(durations_tsv),
             "--metrics", "psds1")
    table = capsys.readouterr().out
    assert "PSDS1 macro" in table and "Dog" in table
    run_eval("--scores", str(scores_dir), "--ground-truth", str(gt_tsv), "--durations", str(durations_tsv),
             "--metrics", "psds1", "--median-filter", "7", "--json")
    filtered = json.loads(capsys.readouterr().out)
    scores = {k: df for k, df in ev.read_scores_dir(scores_dir).items()}
    want = ev.psds_report(ev.median_filter_scores(scores, 7), formats.read_strong_tsv(gt_tsv),
                          formats.read_durations_tsv(durations_tsv), psds2=None, pauroc=None,
                          engine="reference")
    assert filtered["psds1"] == pytest.approx(want["psds1"], abs=1e-12) and filtered["psds2"] is None


def test_audioset_strong_ground_truth_is_detected(tmp_path, capsys):
    """Google's layout (MIDs, segment ids) with the AudioSet protocol and the reference's CSV."""
    classes = ["Dog", "Speech", "Bark", "Music"]  # Music: no events; "Silence": not a protocol class
    scores, gt, durations = perfect(classes[:3], clips=4)
    frames = {}
    for i, (cid, df) in enumerate(scores.items()):
        df = df.copy()
        df["Music"] = 0.0
        frames[f"Yclip_{i}"] = df
    ev.write_scores_dir(frames, tmp_path / "scores")
    mids = {v: k for k, v in formats.audioset_mid_to_name().items()}
    rows = ["segment_id\tstart_time_seconds\tend_time_seconds\tlabel"]
    for i, events in enumerate(gt.values()):
        rows += [f"clip_{i}_30000\t{on:.3f}\t{off:.3f}\t{mids[label]}" for on, off, label in events]
    rows.append(f"clip_0_30000\t5.000\t6.000\t{mids['Silence']}")
    (tmp_path / "gt.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "durations.csv").write_text("".join(f"Yclip_{i},10.0\n" for i in range(4)))
    run_eval("--scores", str(tmp_path / "scores"), "--ground-truth", str(tmp_path / "gt.tsv"),
             "--durations", str(tmp_path / "durations.csv"), "--protocol", "audioset", "--json")
    got = json.loads(capsys.readouterr().out)
    assert sorted(got["per_class"]) == ["Bark", "Dog", "Speech"] and got["psds1"] == pytest.approx(1.0)
    with pytest.raises(SedlibError, match="ground-truth classes without a score column"):
        run_eval("--scores", str(tmp_path / "scores"), "--ground-truth", str(tmp_path / "gt.tsv"),
                 "--durations", str(tmp_path / "durations.csv"), "--protocol", "all")


# --- the AudioSet protocol ---------------------------------------------------------------------

def test_audioset_protocol_drops_classes_and_clips():
    scores, gt, durations = synthetic(3, clips=40, k=6)
    keep = ["c0", "c2", "c3", "c5", "not-scored-nor-annotated"]
    got = ev.psds_report(scores, gt, durations, restrict_to=keep)
    # by hand: events of other classes dropped, clips left empty dropped, columns dropped
    gt_kept = {k[:-4]: [e for e in v if e[2] in keep] for k, v in gt.items()}
    gt_kept = {k: v for k, v in gt_kept.items() if v}
    classes = [c for c in scores["clip0000"].columns[2:] if c in keep]
    frames = {k: scores[k][["onset", "offset", *classes]] for k in gt_kept}
    dur = {k: durations[k + ".wav"] for k in gt_kept}
    assert got["num_clips"] == len(gt_kept) < 40 and list(got["per_class"]) == classes
    psds1, per_class, *_ = sed_scores_eval.intersection_based.psds(frames, gt_kept, dur, **DCASE_PSDS1)
    assert got["psds1"] == pytest.approx(psds1, abs=1e-12)
    assert got["psds1_macro"] == pytest.approx(np.mean(list(per_class.values())), abs=1e-12)


def test_audioset_protocol_vocabulary():
    from sedlib.data.labels import audioset_eval_protocol_classes

    vocab = audioset_eval_protocol_classes()
    assert len(vocab) == 407
    names = list(vocab)[:3] + ["Cat" if "Cat" not in vocab else "Music"]
    scores, gt, durations = perfect(names, clips=5)
    got = ev.psds_report(scores, gt, durations, restrict_to=vocab, psds2=None, pauroc=None)
    assert list(got["per_class"]) == [n for n in names if n in vocab]


# --- errors ------------------------------------------------------------------------------------

def test_mismatched_clips_are_named():
    scores, gt, durations = synthetic(0, clips=20)
    extra = dict(scores, stray=scores["clip0000"])
    with pytest.raises(ev.EvaluationError, match=r"scores but no ground truth 1: \['stray'\]"):
        ev.psds_report(extra, gt, durations)
    fewer = {k: v for i, (k, v) in enumerate(scores.items()) if i >= 8}
    with pytest.raises(ev.EvaluationError, match=r"without scores 8: \['clip0000'.*\(and 3 more\)"):
        ev.psds_report(fewer, gt, durations)
    with pytest.raises(ev.EvaluationError, match=r"without a duration 1: \['clip0003'\]"):
        ev.psds_report(scores, gt, {k: v for k, v in durations.items() if k != "clip0003.wav"})


def test_missing_class_column_names_file_and_class(tmp_path):
    scores, gt, durations = synthetic(0, clips=20)
    scores["clip0007"] = scores["clip0007"].drop(columns=["c4"])
    ev.write_scores_dir(scores, tmp_path)
    with pytest.raises(ev.EvaluationError, match=r"clip0007\.tsv: no column for class 'c4'"):
        ev.psds_report(ev.read_scores_dir(tmp_path, lazy=True), gt, durations)


def test_bad_rows_are_named(tmp_path, dcase):
    scores_dir = tmp_path / "scores"
    shutil.copytree(FIXTURE / "scores", scores_dir)
    path = scores_dir / "3u1ue_s4.tsv"
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split("\t")[3], "oops", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=r"3u1ue_s4\.tsv:6: expected a number, got 'oops'"):
        ev.read_scores_dir(scores_dir)
    lines[5] = "\t".join(lines[4].split("\t")[:5])  # missing fields
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=r"3u1ue_s4\.tsv:6: expected 12 numbers"):
        ev.read_scores_dir(scores_dir)
    _, gt_tsv, durations_tsv = dcase
    bad_gt = tmp_path / "gt.tsv"
    bad_gt.write_text(gt_tsv.read_text() + "x.wav\t1.0\tlate\tDog\n")
    n = len(bad_gt.read_text().splitlines())
    with pytest.raises(FormatError, match=rf"gt\.tsv:{n}: expected a number"):
        run_eval("--scores", str(FIXTURE / "scores"), "--ground-truth", str(bad_gt),
                 "--durations", str(durations_tsv))
    bad_gt.write_text("file\tstart\tend\n")
    with pytest.raises(FormatError, match=r"gt\.tsv:1: expected header"):
        run_eval("--scores", str(FIXTURE / "scores"), "--ground-truth", str(bad_gt),
                 "--durations", str(durations_tsv))


def test_ground_truth_problems_are_named():
    scores, gt, durations = synthetic(0, clips=20)
    gt["clip0001.wav"] = gt["clip0001.wav"] + [(2.0, 2.5, "c1"), (2.5, 3.0, "c1")]
    with pytest.raises(ev.EvaluationError, match=r"clip 'clip0001'.*of class 'c1' overlap or touch"):
        ev.psds_report(scores, gt, durations)
    scores, gt, durations = synthetic(0, clips=20)
    gt = {k: [e for e in v if e[2] != "c6"] for k, v in gt.items()}
    with pytest.raises(ev.EvaluationError, match=r"classes without ground-truth events .*\['c6'\]"):
        ev.psds_report(scores, gt, durations)


def test_write_scores_dir_round_trip_and_nothing_half_written(tmp_path, monkeypatch):
    scores, _, _ = synthetic(0, clips=5)
    ev.write_scores_dir(scores, tmp_path / "ok")
    back = ev.read_scores_dir(tmp_path / "ok")
    theirs = sed_scores_eval.io.read_sed_scores(tmp_path / "ok")
    for k in scores:  # read as sed_scores_eval reads (pandas' default parser: ~1e-15)
        pd.testing.assert_frame_equal(back[k], theirs[k], check_exact=True)
        a, b = back[k].to_numpy(), scores[k].to_numpy()
        assert list(back[k].columns) == list(scores[k].columns)
        assert np.allclose(a, b, rtol=1e-14, atol=0)
    # an invalid frame: nothing is written at all
    broken = dict(scores, bad=scores["clip0000"].iloc[::-1].reset_index(drop=True))
    with pytest.raises(ev.EvaluationError, match="clip 'bad'"):
        ev.write_scores_dir(broken, tmp_path / "none")
    assert not (tmp_path / "none").exists() or not list((tmp_path / "none").iterdir())
    # a failure while writing the third file: two complete files, no partial or temporary file
    calls = {"n": 0}
    to_csv = pd.DataFrame.to_csv

    def flaky(self, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            Path(path).write_text("onset\toffset\tc0\n0.0\t0.1")  # half a file, then the crash
            raise OSError("disk full")
        return to_csv(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", flaky)
    with pytest.raises(OSError, match="disk full"):
        ev.write_scores_dir(scores, tmp_path / "partial")
    assert sorted(p.name for p in (tmp_path / "partial").iterdir()) == ["clip0000.tsv", "clip0001.tsv"]


def test_write_frame_scores_writes_one_clip_as_a_score_file(tmp_path):
    from types import SimpleNamespace

    probs = np.random.default_rng(0).random((2, 7))  # (K, T)
    clip = SimpleNamespace(filename="sub/clip.a.wav", scores=probs, duration=0.21, frame_seconds=0.04,
                           classes=("dog", "cat"))
    path = ev.write_frame_scores(clip, tmp_path / "scores")
    assert path == tmp_path / "scores" / "clip.a.tsv"
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.a.tsv"]  # no temporary file left
    back = ev.read_scores_dir(path.parent)["clip.a"]
    theirs = sed_scores_eval.io.read_sed_scores(path.parent)["clip.a"]
    pd.testing.assert_frame_equal(back, theirs, check_exact=True)
    want = ev.scores_to_dataframe(probs, ["dog", "cat"], 0.04, 0.21)  # the frame at 0.24 s dropped
    assert list(back.columns) == ["onset", "offset", "dog", "cat"] and len(back) == 6
    assert np.allclose(back.to_numpy(), want.to_numpy(), rtol=1e-14, atol=1e-15)  # parser: ~1e-16
    assert back["offset"].iloc[-1] == 0.21
    # the same file again replaces it; a name that would be hidden is refused
    ev.write_frame_scores(SimpleNamespace(**{**vars(clip), "duration": 0.1}), path.parent)
    assert len(ev.read_scores_dir(path.parent)["clip.a"]) == 3
    with pytest.raises(ev.EvaluationError, match="as a file name"):
        ev.write_frame_scores(SimpleNamespace(**{**vars(clip), "filename": ".wav"}), tmp_path)


def test_protocol_class_without_score_column_is_named():
    scores, gt, durations = perfect(["a", "b", "c"], clips=4)
    narrow = {k: df.drop(columns=["c"]) for k, df in scores.items()}
    with pytest.raises(ev.EvaluationError, match=r"no column for class 'c'"):
        ev.psds_report(narrow, gt, durations, restrict_to=["a", "b", "c", "z"])
    # an explicit class list narrows the protocol further
    got = ev.psds_report(narrow, gt, durations, classes=["a", "b"], restrict_to=["a", "b", "c"], psds2=None)
    assert list(got["per_class"]) == ["a", "b"] and got["psds1"] == pytest.approx(1.0)

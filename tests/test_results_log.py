"""The study's results log holds notebook 07's fine-tuning runs and notebook 06's scored
checkpoint beside the Experiments: keyed, checked for staleness, summarised."""

from __future__ import annotations

import json

from sedlib.config import AudioConfig, project_path
from sedlib.study.experiments import NOTEBOOK_ENV, RESULTS_LOG_ENV
from sedlib.study.own_classes import OwnClassesConfig, _run_dir, results_row, run_key, run_settings
from sedlib.study.results import read_results_log, stale_rows, summary_markdown
from sedlib.study.results_log import checkpoint_row, log_result_row

RECORD = {"name": "checkpoint", "seed": 1, "best_step": 50, "psds1": 4.0, "psds1_macro": 30.0,
          "psds1_macro_folds": [25.0, 30.0, 35.0], "psds1_folds": [3.0, 4.0, 5.0],
          "psds1_per_class": {"dog": 40.0, "bell": 20.0}}
METRICS = {"psds1": 0.3, "psds1_macro": 0.5, "eval_clips": 16}
SHIPPED = "data/checkpoints/context2/fmn04+tf-104_teacher.safetensors"


def test_an_own_classes_run_is_a_row_keyed_by_its_cache_folder():
    cfg = OwnClassesConfig(steps=40, seeds=(0, 1))
    row = results_row(RECORD, cfg, "checkpoint", 1, cached=True)
    assert row["key"] == _run_dir("cache", cfg, "checkpoint", 1).name and row["key"].startswith("07-checkpoint-s1-")
    assert row["psds1_macro_folds"] == RECORD["psds1_macro_folds"] and "best_step" not in row
    assert row["name"] == "fmn04+BiGRU:104, fine-tuned from the checkpoint" and row["steps"] == 40
    assert results_row(RECORD, cfg, "scratch", 1, cached=True)["init"] is None
    assert stale_rows([row]) == []
    assert run_key(run_settings(cfg, "scratch", 1)) != row["key"]
    changed = {**row, "settings": {**row["settings"], "steps": 41}}
    assert "the current code gives" in stale_rows([changed])[0]
    gone = {**row, "settings": {**row["settings"], "no_such_field": 1}}  # a field since removed
    assert "no longer load" in stale_rows([gone])[0]


def test_a_scored_checkpoint_is_a_row_keyed_by_its_content_and_settings(tmp_path):
    row = checkpoint_row("fmn04+TF:104", SHIPPED, "synth:16:0:world=context2", AudioConfig(clip_seconds=4.0), 15,
                         METRICS)
    assert row["key"].startswith("06-eval-") and row["settings"]["checkpoint"].startswith("sha256:")
    assert (row["psds1"], row["psds1_macro"], row["eval_clips"]) == (30.0, 50.0, 16)
    again = checkpoint_row("fmn04+TF:104", SHIPPED, "synth:16:0:world=context2", AudioConfig(clip_seconds=4.0), 9,
                           METRICS)
    assert again["key"] != row["key"]  # another median filter, another row
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(project_path(SHIPPED).read_bytes())
    moved = checkpoint_row("fmn04+TF:104", str(copy), "synth:16:0:world=context2", AudioConfig(clip_seconds=4.0),
                           15, METRICS)
    assert moved["key"] == row["key"]  # the same weights elsewhere: the same row
    assert stale_rows([row]) == []
    assert "the current code gives" in stale_rows([{**row, "settings": {**row["settings"], "median_window": 3}}])[0]


def test_the_log_holds_them_beside_experiments_and_the_summary_shows_them(tmp_path, monkeypatch):
    log = tmp_path / "results.jsonl"
    monkeypatch.setenv(RESULTS_LOG_ENV, str(log))
    cfg = OwnClassesConfig(seeds=(0, 1))
    monkeypatch.setenv(NOTEBOOK_ENV, "07_your_own_classes")
    for seed in (0, 1):
        log_result_row(results_row({**RECORD, "seed": seed}, cfg, "checkpoint", seed, cached=False))
    monkeypatch.setenv(NOTEBOOK_ENV, "06_listen")
    log_result_row(checkpoint_row("fmn04+TF:104", SHIPPED, "synth:16:0:world=context2",
                                  AudioConfig(clip_seconds=4.0), 15, METRICS))
    rows = read_results_log(log)
    assert [r["notebooks"] for r in rows] == [["07_your_own_classes"]] * 2 + [["06_listen"]]
    assert all(json.loads(line)["notebook"] for line in log.read_text().splitlines())
    text = summary_markdown(rows, title="t")
    assert "| fmn04+TF:104 (shipped checkpoint, not trained here) | - | 30.00 | 50.00 | 16 | - | - |" in text
    assert "## 07_your_own_classes: mean ± 95 % interval over seeds" in text
    assert "| fmn04+TF:104 (shipped checkpoint, not trained here) | 1 | 50.00 (one run) | 30.00 (one run) |" in text
    assert "| fmn04+BiGRU:104, fine-tuned from the checkpoint, 150 steps | 2 | 30.00 [0.00, 66.68] |" in text
    assert "| 4.00 [0.00, 11.34] |" in text  # PSDS1's interval clipped at 0, as the notebooks print it
    assert stale_rows(rows) == []


def test_the_claims_read_only_the_experiments():
    """06's and 07's rows in a results log test no claim of the paper: the claims, written from
    the whole log, are those of the Experiments alone."""
    from sedlib.config import PROJECT_ROOT
    from sedlib.study.claims import assess_all

    rows = read_results_log(PROJECT_ROOT / "figures" / "classroom" / "results.jsonl")
    rows = [r for r in rows if r.get("kind") is None]
    extra = [{**results_row(RECORD, OwnClassesConfig(), "scratch", 0, cached=True), "notebooks": ["07"]},
             {**checkpoint_row("fmn04+TF:104", SHIPPED, "synth:16", AudioConfig(clip_seconds=4.0), 9, METRICS),
              "notebooks": ["06"]}]
    assert assess_all(rows + extra) == assess_all(rows)

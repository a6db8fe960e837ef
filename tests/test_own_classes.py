"""Notebook 07's run cache (sedlib.study.own_classes)."""

from __future__ import annotations


def test_notebook_07s_runs_are_keyed_by_the_initial_weights_content(tmp_path):
    """07's run cache: the same settings give the same folder; new weights under the same path
    give another one (the cache is keyed by content, not by path)."""
    from sedlib.study.own_classes import OwnClassesConfig, _run_dir

    init = tmp_path / "init.safetensors"
    init.write_bytes(b"weights one")
    cfg = OwnClassesConfig(init=str(init))
    first = _run_dir(tmp_path, cfg, "checkpoint", 0)
    assert _run_dir(tmp_path, cfg, "checkpoint", 0) == first
    assert _run_dir(tmp_path, cfg, "scratch", 0) != first and _run_dir(tmp_path, cfg, "checkpoint", 1) != first
    scratch = _run_dir(tmp_path, cfg, "scratch", 0)
    init.write_bytes(b"weights two")
    assert _run_dir(tmp_path, cfg, "checkpoint", 0) != first
    # a scratch run never loads the initial weights: neither their content nor their name keys it
    assert _run_dir(tmp_path, cfg, "scratch", 0) == scratch
    assert _run_dir(tmp_path, OwnClassesConfig(init="fmn10+tf-256_strong"), "scratch", 0) == scratch
    assert _run_dir(tmp_path, OwnClassesConfig(init="fmn10+tf-256_strong"), "checkpoint", 0).name.startswith(
        "07-checkpoint-s0-")  # a release: keyed by its name


def test_07s_records_are_in_percent_and_per_class_bars_have_bounded_intervals():
    from sedlib.study.own_classes import _percent, comparison_sentence, per_class_figure, per_class_table

    stored = {"name": "checkpoint", "seed": 0, "best_step": 9, "psds1": 0.25, "psds1_macro": 0.5,
              "psds1_macro_folds": [0.4, 0.6], "psds1_per_class": {"bell": 0.5, "word": None}}
    rec = _percent(stored)
    assert rec["psds1"] == 25.0 and rec["psds1_macro_folds"] == [40.0, 60.0] and rec["best_step"] == 9
    assert rec["psds1_per_class"] == {"bell": 50.0, "word": None}
    records = [{"name": n, "seed": s, "psds1_macro": m + s, "psds1_per_class": {"bell": b + 10 * s, "word": 1.0}}
               for n, m, b in (("checkpoint", 40.0, 60.0), ("scratch", 10.0, 2.0)) for s in range(3)]
    table = per_class_table(records)
    assert table.loc["bell", "checkpoint"] == 70.0 and table.loc["bell", "scratch_low"] == 0.0  # clipped at 0
    assert table.loc["word", "checkpoint_low"] == table.loc["word", "checkpoint_high"] == 1.0
    fig = per_class_figure(table)
    assert [t.name for t in fig.data] == ["checkpoint", "scratch"] and fig.data[0].error_y.array is not None
    assert comparison_sentence(records).startswith(
        "Fine-tuned from the checkpoint − from scratch, PSDS1 macro on the held-out recordings: +30.0 points")

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
    init.write_bytes(b"weights two")
    assert _run_dir(tmp_path, cfg, "checkpoint", 0) != first
    assert _run_dir(tmp_path, OwnClassesConfig(init="fmn10+tf-256_strong"), "checkpoint", 0).name.startswith(
        "07-checkpoint-s0-")  # a release: keyed by its name

"""MeanLogits (an ensemble as one model) and scripts/make_synth_teachers.py on tiny shapes."""

from __future__ import annotations

import json
import runpy
import sys

import pytest
import torch

from sedlib.data.synth.soundscape import synth_vocabulary
from sedlib.models.ensemble import MeanLogits
from sedlib.registry import create_model
from sedlib.train.runs import save_weights


def test_mean_logits_is_the_mean_of_the_members():
    torch.manual_seed(0)
    a, b = (create_model("fmntiny+TF:16", num_classes=5).eval() for _ in range(2))
    mel = torch.randn(2, 1, 128, 64)
    with torch.no_grad():
        (sa, wa), (sb, wb) = a(mel), b(mel)
        strong, weak = MeanLogits([a, b])(mel)
        alone = MeanLogits([a])(mel)
    assert strong.shape == (2, 5, 16) and weak.shape == (2, 5)
    torch.testing.assert_close(strong, (sa + sb) / 2)
    torch.testing.assert_close(weak, (wa + wb) / 2)
    torch.testing.assert_close(alone[0], sa)
    with pytest.raises(ValueError, match="disagree"):
        MeanLogits([a, create_model("fmntiny", num_classes=7).eval()])(mel)
    with pytest.raises(ValueError, match="at least one"):
        MeanLogits([])


def test_make_synth_teachers_script(tmp_path, monkeypatch):
    """Two members from a given backbone, then their ensemble, scored and summarised."""
    backbone = create_model("fmntiny", num_classes=13)
    save_weights(backbone, tmp_path / "fmntiny_synth.safetensors", model_name="fmntiny",
                 classes=list(synth_vocabulary("context").names), backbone_only=True)
    argv = ["make_synth_teachers.py", "fmntiny+TF:16", "fmntiny", "--steps", "2", "--clips", "16",
            "--eval-clips", "10", "--warmup", "1", "--out", str(tmp_path), "--runs", str(tmp_path / "runs")]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path("scripts/make_synth_teachers.py", run_name="__main__")
    summary = json.loads((tmp_path / "teachers.json").read_text())
    assert summary["train"] == "synth:16:0:world=context,miss=0.1,confuse=0.2,jitter=50"
    rows = summary["teachers"]
    assert set(rows) == {"fmntiny+TF:16", "fmntiny", "ensemble"}
    assert rows["fmntiny+TF:16"]["file"] == "fmntiny+tf-16_teacher.safetensors"
    for row in rows.values():
        assert 0 <= row["psds1_macro"] <= 100 and row["psds1_macro_ci95"] >= 0


def test_teacher_table_scores_each_member_and_their_ensemble():
    """04's teacher table: one row per member and a last "ensemble" row, the model the pseudo
    labels come from, scored with its eval-clip interval like the members."""
    from sedlib.config import AudioConfig
    from sedlib.study.teachers import Teacher, teacher_table

    torch.manual_seed(0)
    members = [create_model(n, num_classes=11).eval() for n in ("fmntiny+TF:16", "fmntiny")]
    teachers = [Teacher(spec=f"t{i}", model=m, ident=f"t{i}") for i, m in enumerate(members)]
    audio = AudioConfig(clip_seconds=2.0)
    rows = teacher_table(teachers, "synth:10", audio, batch_size=5)
    assert [r["name"] for r in rows] == ["t0", "t1", "ensemble"]
    assert rows[-1]["model"] == "mean(fmntiny+TF:16, fmntiny)"
    assert rows[-1]["params"] == rows[0]["params"] + rows[1]["params"]
    for r in rows:
        assert r["psds1_macro_low"] <= r["psds1_macro"] <= r["psds1_macro_high"]
    assert len(teacher_table(teachers[:1], "synth:10", audio, batch_size=5)) == 1

"""The paper beside a run (sedlib.study.paper_vs_ours): counterparts by role and by name, the
paper's numbers from SPEC 4.1, our paired gains, Table I / II conditions from the records'
fields, and bounded intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sedlib.config import AudioConfig
from sedlib.study.claims import PAPER_PSDS1
from sedlib.study.config import StudyConfig
from sedlib.study.findings import difference, plus_minus
from sedlib.study.paper_vs_ours import (
    condition_table,
    counterpart,
    listening_table,
    model_table,
    setup_table,
    strides_table,
)
from sedlib.train.config import PRESETS

from test_claims import _rec, _study

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.parametrize("name, base, want", [
    ("fmn02", "fmn02", "fmn10"), ("fmn04", "fmn02", "fmn20"), ("fmn02+TF:64", "fmn02", "fmn10+TF:256"),
    ("fmn02+BiGRU:32", "fmn02", "fmn10+BiGRU:128"), ("fmn04+TF:104", "fmn02", "fmn20+TF:512"),
    ("fmn02+ATT:64", "fmn02", None), ("fmn03", "fmn02", None),  # no ATT numbers; no role for 1.5x width
    ("fmn04+HYBRID:104", None, "fmn04+HYBRID:104"), ("fmn02", None, None),  # by name: the paper's widths only
])
def test_counterparts_by_role_and_by_name(name, base, want):
    assert counterpart(name, base) == want


def test_the_model_table_puts_the_papers_numbers_beside_our_paired_gains():
    recs = [r for r in _study(gain_tf=3.0) if r["kd_weight"] == 0 and "clip" not in r["name"]]
    table = model_table(recs).set_index("ours")
    assert len(table.columns) <= 7
    tf = table.loc["fmn02+TF:64"]
    assert tf["paper's counterpart"] == "fmn10+TF:256"
    assert tf["paper PSDS1"] == f"{PAPER_PSDS1['fmn10+TF:256']:.2f}"
    assert tf["paper's gain over its CNN"] == f"{PAPER_PSDS1['fmn10+TF:256'] - PAPER_PSDS1['fmn10']:+.2f}"
    gain = difference(recs, "fmn02+TF:64", "fmn02")
    assert tf["gain over its CNN (paired)"] == f"{gain.mean:+.2f} ± {gain.half_width:.2f}"
    assert gain.mean == pytest.approx(3.0)
    assert table.loc["fmn04", "paper's counterpart"] == "fmn20"
    assert table.loc["fmn02", "gain over its CNN (paired)"] == "-"  # a CNN has no gain over itself
    by_name = model_table(recs, by_role=False).set_index("ours")
    assert by_name.loc["fmn04", "paper PSDS1"] == f"{PAPER_PSDS1['fmn04']:.2f}"
    assert by_name.loc["fmn02+TF:64", "paper's counterpart"] == "-"


def test_conditions_come_from_the_records_fields_not_their_labels():
    recs = [{**r, "config": "a label the table must not need"} for r in _study() if r["kd_weight"] > 0]
    recs += [_rec("fmn02+TF:64", s, 61.0 + s, frozen=True) for s in range(3)]
    table = condition_table(recs).set_index("condition")
    assert set(table.index) == {"KD 0.9, fine-tuned", "KD 0.9, fine-tuned, + teacher-only set",
                                "KD 0.9, fine-tuned, + teacher-only set, 2x training", "no KD, frozen"}
    assert table.loc["KD 0.9, fine-tuned", "paper PSDS1"] == "43.86"
    assert table.loc["KD 0.9, fine-tuned, + teacher-only set, 2x training", "paper PSDS1"] == "45.25"
    assert table.loc["no KD, frozen", "paper PSDS1"] == "-"


def test_the_strides_table_and_the_set_ups():
    recs = [{**r, "config": r["name"].replace(" (clip-wise strides)", ", clip-wise strides")
             if "clip" in r["name"] else f"{r['name']}, frame-wise strides"}
            for r in _study() if r["name"].startswith("fmn02+TF:64") and r["kd_weight"] == 0]
    table = strides_table(recs).set_index("configuration")
    assert table.loc["fmn02+TF:64, frame-wise strides", "paper's counterpart"] == "fmn10+TF:256"
    assert table.loc["fmn02+TF:64, clip-wise strides", "paper PSDS1"] == "-"
    from sedlib.config import PROJECT_ROOT

    study = StudyConfig(train_data="synth:64:0:world=context2", eval_data="synth:8:0:world=context2", steps=256,
                        seeds=(0, 1, 2), backbone_init=str(PROJECT_ROOT / "data" / "x_{backbone}.safetensors"))
    setup = setup_table(study, PRESETS["quick"], AudioConfig(clip_seconds=4.0), 13)
    assert list(setup.columns) == ["paper", "ours"]
    assert setup.loc["classes", "ours"] == "13" and setup.loc["clip length", "paper"] == "10 s"
    assert setup.loc["budget", "ours"] == f"256 steps x {PRESETS['quick'].batch_size} clips"
    assert setup.loc["runs per configuration", "ours"].startswith("3 seeds")
    assert setup.loc["backbone start", "ours"] == "data/x_{backbone}.safetensors"  # as in any clone
    listen = listening_table(PRESETS["quick"], AudioConfig(clip_seconds=4.0), 0.4, "x.safetensors")
    assert listen.loc["median filter", "paper (inference.py)"] == "9 frames of 40 ms"
    assert listen.loc["thresholds", "ours"].startswith("0.4")


def test_bounded_intervals_are_shown_bounded():
    assert plus_minus(0.0, -0.22, 0.22) == "0.00 [0.00, 0.22]"
    assert plus_minus(99.5, 98.0, 101.0) == "99.50 [98.00, 100.00]"
    assert plus_minus(50.0, 49.0, 51.0) == "50.00 ± 1.00"


def test_every_notebook_shows_the_paper_beside_its_run():
    for path in sorted(NOTEBOOKS.glob("0*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        heads = ["".join(c["source"]).splitlines()[0] for c in cells if c["cell_type"] == "markdown"]
        assert any(h.startswith("### The paper beside this") for h in heads), path.name
        assert any("paper_vs_ours import" in s for s in code) and any(
            s.lstrip().startswith("display(") and "_table(" in s and "paper" not in s.split("(")[0]
            for s in code), path.name

"""The notebook study: committed notebooks are clean, their parameters map onto the configs,
every notebook executes under papermill with notebooks/smoke.yaml (into tmp_path, never in
place), and ``sedlib study`` runs, continues past a failure and writes its summary."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from sedlib.study.config import (
    NOTEBOOK_PARAMETERS,
    configs_from_parameters,
    parameter_names,
)
from sedlib.study.runner import (
    NOTEBOOKS_DIR,
    PROFILES,
    RUNNER_PARAMETERS,
    SUMMARY,
    declared_parameters,
    kernel_interpreter,
    load_profile,
    notebook_parameters,
    notebooks,
    run_study,
)

NOTEBOOKS = notebooks()
IDS = [p.stem for p in NOTEBOOKS]
MINE = ("00_quickstart", "02_sequence_models", "03_scaling")


def test_the_study_has_its_notebooks():
    assert set(MINE) <= set(IDS)
    assert len(set(p.stem.split("_")[0] for p in NOTEBOOKS)) == len(NOTEBOOKS), "numbers repeat"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has outputs: strip them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_shape_and_parameters(path):
    nb = nbformat.read(str(path), as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), \
        "a notebook opens with its title and question"
    params = declared_parameters(path)  # literals only, exactly one tagged cell
    known = parameter_names()
    unknown = sorted(set(params) - set(known))
    assert not unknown, (f"{path.name}: parameters {unknown} are neither config fields nor listed "
                         f"in sedlib.study.config.NOTEBOOK_PARAMETERS")
    assert set(RUNNER_PARAMETERS) <= set(params), f"{path.name} must declare {RUNNER_PARAMETERS}"
    configs_from_parameters(params)  # the defaults build valid configs
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "\ndef " not in f"\n{code}" and "\nclass " not in f"\n{code}", \
        f"{path.name}: functions and classes belong in sedlib"
    last = nb.cells[-1].source
    assert "What this run found" in last or "what this run found" in last.lower(), \
        f"{path.name} must end with what this run found"


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_name_only_known_parameters(name):
    profile = load_profile(name)  # raises on unknown names
    stems = set(IDS)
    assert set(profile["notebooks"]) <= stems, "a section names a notebook that does not exist"
    for path in NOTEBOOKS:
        params = notebook_parameters(profile, path)  # raises if a section sets undeclared names
        configs_from_parameters({**declared_parameters(path), **params})
    assert set(NOTEBOOK_PARAMETERS)  # notebook-only names exist and are documented there


def test_papermill_kernel_is_this_interpreter():
    assert Path(kernel_interpreter()).resolve() == Path(sys.executable).resolve()


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory):
    """One training cache for every notebook of the session: shared runs stay shared."""
    return tmp_path_factory.mktemp("study-cache")


#: What each notebook leaves in figures_dir (figures: HTML + PNG; tables: markdown).
OUTPUTS = {
    "00_quickstart": ["00_quickstart_detections.html", "00_quickstart_detections.png"],
    "01_stride_adaptation": ["01_stride_adaptation_receptive_field.png", "01_stride_adaptation.md",
                             "01_stride_adaptation_frame-wise_piano_roll.png"],
    "02_sequence_models": ["fig1_sequence_models.html", "fig1_sequence_models.png",
                           "fig1_sequence_models.md"],
    "03_scaling": ["fig2_scaling.html", "fig2_scaling.png", "fig2_scaling.md"],
    "04_distillation_ablation": ["04_table1.md", "04_distillation_ablation.md"],
    "05_weak_distillation": ["05_weak_distillation.md"],
    "06_listen": ["06_listen_piano_roll.html", "06_listen_piano_roll.png"],
}


def test_every_notebook_has_its_expected_outputs_listed():
    assert sorted(OUTPUTS) == sorted(IDS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_with_smoke_profile(path, tmp_path, smoke_cache):
    import papermill as pm

    before = hashlib.sha256(path.read_bytes()).hexdigest()
    runner = {"run_dir": str(tmp_path / "run"), "figures_dir": str(tmp_path / "figures"),
              "cache_dir": str(smoke_cache)}
    params = notebook_parameters(load_profile("smoke"), path, runner)
    out = tmp_path / path.name
    pm.execute_notebook(str(path), str(out), parameters=params, kernel_name="python3",
                        progress_bar=False, cwd=str(NOTEBOOKS_DIR.parent))
    executed = nbformat.read(str(out), as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before, "executed in place"
    made = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert set(OUTPUTS[path.stem]) <= set(made), made


def test_sedlib_study_smoke_only_00(tmp_path):
    out, figures = tmp_path / "run", tmp_path / "figures"
    proc = subprocess.run(
        [sys.executable, "-m", "sedlib", "study", "--profile", "smoke", "--only", "00",
         "--out", str(out), "--figures", str(figures), "--cache", str(tmp_path / "cache"),
         "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "00_quickstart.ipynb").is_file()
    assert not (out / "02_sequence_models.ipynb").exists()
    assert (figures / "00_quickstart_detections.html").is_file()
    assert (figures / "00_quickstart_detections.png").is_file()
    table = (figures / SUMMARY).read_text()
    assert "| model | PSDS1 | PSDS1 macro | params | MACs (M) | throughput" in table
    assert "fmntiny+TF:16" in table and table == (out / SUMMARY).read_text()


def _tiny_notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("steps = 1\nrun_dir = 'x'\nfigures_dir = 'y'\ncache_dir = 'z'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, str(path))


def test_study_continues_past_a_failing_notebook(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _tiny_notebook(folder / "01_fails.ipynb", "raise RuntimeError('boom')")
    _tiny_notebook(folder / "02_works.ipynb", "assert steps == 5, steps")
    (folder / "p.yaml").write_text("common:\n  steps: 5\nnotebooks:\n  02_works: {}\n")
    lines = []
    report = run_study(folder / "p.yaml", folder=folder, out=tmp_path / "out",
                       figures=tmp_path / "fig", cache_dir=tmp_path / "cache", progress=False,
                       echo=lines.append)
    assert report.done == ["02_works"] and list(report.failed) == ["01_fails"]
    assert "boom" in report.failed["01_fails"] and not report.ok
    assert any("01_fails: FAILED" in line for line in lines)
    summary = (tmp_path / "fig" / SUMMARY).read_text()
    assert "Failed notebooks" in summary and "01_fails" in summary
    assert (tmp_path / "out" / "02_works.ipynb").is_file()

"""The notebook study: committed notebooks are clean, their parameters map onto the configs,
every notebook executes under papermill with notebooks/smoke.yaml (into tmp_path, never in
place), and ``sedlib study`` runs, continues past a failure and writes its summary."""

from __future__ import annotations

import ast
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
from sedlib.study.config import RUNNER_PARAMETERS
from sedlib.study.profiles import (
    NOTEBOOKS_DIR,
    PROFILES,
    declared_parameters,
    load_profile,
    notebook_parameters,
    notebooks,
)
from sedlib.study.runner import SUMMARY, kernel_interpreter, run_study, study_kernel

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
    assert nb.metadata.get("kernelspec") == {"display_name": "Python (sedlib)",
                                             "language": "python", "name": "sedlib"}
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
    found = nb.cells[-2].source  # then the exercises (test_notebook_teaches)
    assert "What this run found" in found or "what this run found" in found.lower(), \
        f"{path.name} must end with what this run found and its exercises"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_teaches(path):
    """Learning objectives and the measured time after the title; "Try this" exercises last, each
    a change of a parameter the notebook declares, with what to expect; discussion questions."""
    import re

    nb = nbformat.read(str(path), as_version=4)
    top, last = nb.cells[1], nb.cells[-1]
    assert top.cell_type == "markdown" and top.source.startswith("## What you will learn"), path.name
    assert re.search(r"\*\*Time\.\*\* .* took \*\*\d+(\.\d)? min\*\*", top.source), f"{path.name}: no measured time"
    assert last.cell_type == "markdown" and last.source.startswith("## Try this"), path.name
    exercises = re.findall(r"^\d+\. `(\w+) = ([^`]+)`: (.+)$", last.source, flags=re.M)
    assert 2 <= len(exercises) <= 4, f"{path.name}: {len(exercises)} exercises"
    declared = declared_parameters(path)
    for name, value, expect in exercises:
        assert name in declared, f"{path.name}: exercise sets {name!r}, which the notebook does not declare"
        ast.literal_eval(value)  # a value the parameters cell could hold
        assert len(expect) > 40, f"{path.name}: exercise {name} says too little about what to expect"
    assert "**Discuss.**" in last.source and last.source.rstrip().endswith("?"), path.name


def test_notebook_prose_matches_the_data_and_the_profile():
    """Text that names counts or files cannot go stale: every `data/...` path a markdown cell
    names exists; a "N real recordings in K classes" matches data/real_sounds; a world named in
    prose is the quick profile's; a "N classes" count is that world's."""
    import re

    from sedlib.data.real_sounds import class_recordings

    root = Path(__file__).resolve().parent.parent
    quick = notebook_parameters(load_profile("quick"), NOTEBOOKS[0])
    world = re.search(r"world=(\w+)", quick["train_data"]).group(1)
    recordings = class_recordings()
    for path in NOTEBOOKS:
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.cell_type != "markdown":
                continue
            for ref in re.findall(r"`(data/[^`{}<>*]+)`", cell.source):
                assert (root / ref).exists(), f"{path.name}: names {ref}, which does not exist"
            for n, k in re.findall(r"(\d+) real recordings in (\d+) classes", cell.source):
                assert (int(n), int(k)) == (sum(map(len, recordings.values())), len(recordings)), path.name
            for w in re.findall(r"the (context\d?) world's", cell.source):
                assert w == world or "classroom" in cell.source, \
                    f"{path.name}: names the {w} world; the quick profile trains on {world}"

@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_defaults_are_the_quick_profile(path):
    """Run by hand (JupyterLab's Run All), a notebook computes what `make study` computes: its
    parameter defaults are the quick profile's values (the run folders aside)."""
    params = notebook_parameters(load_profile("quick"), path)
    declared = declared_parameters(path)
    differ = {k: (declared[k], v) for k, v in params.items()
              if k in declared and k not in ("run_dir", "cache_dir", "figures_dir") and declared[k] != v}
    assert not differ, f"{path.name}: defaults differ from notebooks/quick.yaml: {differ}"


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_name_only_known_parameters(name):
    profile = load_profile(name)  # raises on unknown names
    stems = set(IDS)
    assert set(profile["notebooks"]) <= stems, "a section names a notebook that does not exist"
    for path in NOTEBOOKS:
        params = notebook_parameters(profile, path)  # raises if a section sets undeclared names
        configs_from_parameters({**declared_parameters(path), **params})
    assert set(NOTEBOOK_PARAMETERS)  # notebook-only names exist and are documented there


@pytest.mark.parametrize("name", PROFILES)
def test_the_study_prints_no_unknown_parameter_warning_for_declared_names(name):
    """papermill calls a declared parameter "unknown" when its inspection cannot parse the line
    (a string holding '=', e.g. 02's median_sweep_data): the study's log filter drops exactly
    those warnings and keeps the one for a name that nothing declares."""
    import logging

    import papermill as pm

    from sedlib.study.runner import _QuietPapermill

    profile = load_profile(name)
    for path in NOTEBOOKS:
        passed = notebook_parameters(profile, path, {k: "x" for k in RUNNER_PARAMETERS})
        warned = set(passed) - set(pm.inspect_notebook(str(path)))
        quiet = _QuietPapermill(passed)
        for n in warned:
            record = logging.LogRecord("papermill", logging.WARNING, "", 0, "Passed unknown parameter: %s", (n,), None)
            assert not quiet.filter(record), f"{name}: {path.stem}: '{n}' would be reported as unknown"
        other = logging.LogRecord("papermill", logging.WARNING, "", 0, "Passed unknown parameter: typo_name", (), None)
        assert quiet.filter(other)


def test_the_notebooks_kernel_is_this_interpreter():
    """The setup registers "Python (sedlib)" for this venv: JupyterLab, papermill and the tests
    all run the notebooks with it."""
    assert Path(kernel_interpreter("sedlib")).resolve() == Path(sys.executable).resolve()
    assert study_kernel() == "sedlib"


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
    "07_your_own_classes": ["07_your_own_classes.md", "07_recordings.md", "07_per_class.html", "07_per_class.png",
                            "07_held_out_piano_roll.html", "07_held_out_piano_roll.png",
                            "07_unmixed_detections.md"],
}


def test_every_notebook_has_its_expected_outputs_listed():
    assert sorted(OUTPUTS) == sorted(IDS)


_ROOT_RUNS: dict[str, tuple] = {}


def root_run(path: Path, tmp_root: Path, cache: Path):
    """``sedlib study --profile smoke --only <stem>`` as the runner does it (from the project
    root, papermill, the profile injected), once per notebook and session: (report, executed
    notebook, figures folder)."""
    if path.stem not in _ROOT_RUNS:
        out, figures = tmp_root / path.stem / "out", tmp_root / path.stem / "figures"
        report = run_study("smoke", only=[path.stem], out=out, figures=figures, cache_dir=cache,
                           progress=False, echo=lambda line: None)
        executed = nbformat.read(str(out / path.name), as_version=4) if report.ok else None
        _ROOT_RUNS[path.stem] = (report, executed, figures)
    return _ROOT_RUNS[path.stem]


@pytest.fixture(scope="session")
def root_runs(tmp_path_factory, smoke_cache):
    tmp_root = tmp_path_factory.mktemp("root-runs")
    return lambda path: root_run(path, tmp_root, smoke_cache)


def _errors(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]


_WIDGET_REPR = ("VBox(", "HBox(", "Box(", "FloatProgress(", "IntProgress(", "HTML(value")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_with_smoke_profile(path, root_runs):
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    report, executed, figures = root_runs(path)
    assert report.ok, report.failed
    assert not _errors(executed)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before, "executed in place"
    made = sorted(p.name for p in figures.iterdir())
    assert set(OUTPUTS[path.stem]) <= set(made), made


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_executed_notebook_reads_well_as_a_static_file(path, root_runs):
    """What GitHub, nbviewer or an untrusted JupyterLab show: every plotly figure also as a PNG,
    no widget left as its bare text repr, progress bars as text."""
    _, executed, _ = root_runs(path)
    figures = 0
    for c in executed.cells:
        for o in c.get("outputs", []):
            data = o.get("data", {})
            if "application/vnd.plotly.v1+json" in data:
                figures += 1
                assert "image/png" in data, f"cell {c.source[:60]!r}: a figure without its PNG"
            if "application/vnd.jupyter.widget-view+json" in data:
                assert "text/html" in data and not data["text/plain"].startswith(_WIDGET_REPR), \
                    f"cell {c.source[:60]!r}: a widget without a static view"
            assert not str(data.get("text/plain", "")).startswith(_WIDGET_REPR), \
                f"cell {c.source[:60]!r}: a widget left as its text repr"
    assert figures >= sum(name.endswith(".png") for name in OUTPUTS[path.stem])


def _as_edited_by_hand(path: Path, values: dict) -> nbformat.NotebookNode:
    """The notebook with ``values`` typed into its parameters cell (as a teacher shrinking a
    run would), nothing injected: other parameters keep their defaults, relative paths too."""
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines, done = [], set()
    for line in cell.source.splitlines():
        name = line.split("=", 1)[0].strip()
        if "=" in line and name in values:
            line, _ = f"{name} = {values[name]!r}", done.add(name)
        lines.append(line)
    lines += [f"{k} = {v!r}" for k, v in values.items() if k not in done]
    cell.source = "\n".join(lines)
    return nb


def _git_status() -> str | None:
    proc = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                          cwd=NOTEBOOKS_DIR.parent, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def _cached_metrics(cache: Path) -> dict[str, dict]:
    import json

    return {p.parent.name: {k: v for k, v in json.loads(p.read_text())["metrics"].items()
                            if k in ("psds1", "psds1_macro", "pauroc")}
            for p in cache.glob("*/result.json")}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_as_jupyterlab_runs_it(path, tmp_path, root_runs, smoke_cache):
    """Run All as JupyterLab does it: the kernel the notebook names, started in ``notebooks/``,
    the parameters cell's own defaults (smoke-sized values typed in; run and cache folders in
    tmp; shipped checkpoints, figures_dir and data specs left as the notebook has them; fmntiny
    has no shipped backbone, so backbone_init is the smoke profile's None). Same
    results as the runner's run from the project root, and the checkout stays clean."""
    from nbclient import NotebookClient

    profile = load_profile("smoke")
    values = {**profile["common"], **profile["notebooks"].get(path.stem, {}),
              "run_dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}
    values.pop("figures_dir", None)  # the notebook's default: None -> <run_dir>/figures
    nb = _as_edited_by_hand(path, values)
    status = _git_status()
    NotebookClient(nb, kernel_name=nb.metadata.kernelspec.name, timeout=600,
                   resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}).execute()
    assert not _errors(nb)
    made = sorted(p.name for p in (tmp_path / "run" / "figures").iterdir())
    assert set(OUTPUTS[path.stem]) <= set(made), made
    if status is not None:
        assert _git_status() == status, "an interactive run wrote into the checkout"
    report, _, figures = root_runs(path)
    assert report.ok
    mine, theirs = _cached_metrics(tmp_path / "cache"), _cached_metrics(smoke_cache)
    assert mine or path.stem == "06_listen"  # 06 only scores a shipped checkpoint
    # runs without stored teacher labels have the same key from either folder (keys hold no
    # working-directory paths); KD runs key the label store by its bytes, and HDF5 files carry
    # write times, so those are matched by their metrics alone
    plain = {k for k in mine if k in theirs}
    assert {k: theirs[k] for k in plain} == {k: mine[k] for k in plain}
    assert plain or path.stem in ("04_distillation_ablation", "05_weak_distillation", "06_listen")
    for key, metrics in mine.items():
        assert metrics in theirs.values(), f"{key}: {metrics} differs from the root run's"
    if path.stem == "06_listen":  # no training: its detections table is the result
        table = "06_listen_piano_roll.md"
        assert (tmp_path / "run" / table).read_text() == (figures.parent / "out" / path.stem
                                                          / table).read_text()


def test_paths_resolve_against_the_project_root_from_any_folder(tmp_path, monkeypatch):
    """backbone_init, checkpoints and data specs of a notebook's parameters name files relative
    to the project root, wherever the kernel starts (JupyterLab: the notebook's folder)."""
    from sedlib.config import PROJECT_ROOT, project_path
    from sedlib.data.spec import resolve_spec_paths
    from sedlib.study.config import StudyConfig
    from sedlib.study.listen import find_checkpoint
    from sedlib.study.notebook import prepare

    for cwd in (NOTEBOOKS_DIR, tmp_path):
        monkeypatch.chdir(cwd)
        study = prepare(StudyConfig(backbone_init="data/checkpoints/context/{backbone}_synth.safetensors",
                                    run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "c")))
        assert Path(study.backbone_init_for("fmn02+TF:64")).is_file()
        assert study.figures_dir == str(tmp_path / "run" / "figures")
        shipped = "data/checkpoints/fmn04+tf-104_synth.safetensors"
        assert find_checkpoint(shipped) == PROJECT_ROOT / shipped
        assert project_path("runs/x") == PROJECT_ROOT / "runs" / "x"
    assert resolve_spec_paths("synth:100", project_path) == "synth:100"
    assert resolve_spec_paths("data/synth", project_path) == str(PROJECT_ROOT / "data" / "synth")
    assert resolve_spec_paths("desed:a.tsv:audio", project_path) == \
        f"desed:{PROJECT_ROOT / 'a.tsv'}:{PROJECT_ROOT / 'audio'}"
    assert resolve_spec_paths("desed:/abs/a.tsv:audio", project_path).startswith("desed:/abs/a.tsv:")


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
    assert "| model | seed | PSDS1 | PSDS1 macro | eval clips | params | MACs (M) | throughput" in table
    assert "Eval sets: `synth:" in table
    assert "fmntiny+TF:16" in table and table == (out / SUMMARY).read_text()
    assert table.startswith("# Study results (smoke profile, ")
    assert "00_quickstart (smoke profile)" in proc.stdout
    assert "## 00_quickstart: mean ± 95 % interval over seeds" in table
    from sedlib.study.results import read_results_log, stale_rows

    stored = read_results_log(figures / "results.jsonl")
    assert len(stored) == 2 and stale_rows(stored) == []  # 2 seeds, keys as the code gives them


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


def test_a_notebook_saved_with_outputs_stays_clean_in_git(tmp_path):
    """JupyterLab autosaves outputs into the notebook: the setup's nbstripout filter makes git see
    the committed notebook again (same blob), so an interactive session leaves git status clean."""
    root = NOTEBOOKS_DIR.parent
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root,
                            capture_output=True, text=True)
    if inside.returncode != 0:
        pytest.skip("not a git checkout")
    clean = subprocess.run(["git", "config", "--get", "filter.nbstripout.clean"], cwd=root,
                           capture_output=True, text=True).stdout
    assert "--keep-id" in clean, "the nbstripout git filter is not set up: run scripts/install.sh"
    path = NOTEBOOKS_DIR / "00_quickstart.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
            cell.execution_count = 1
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python",
                                    "codemirror_mode": {"name": "ipython", "version": 3},
                                    "file_extension": ".py", "pygments_lexer": "ipython3",
                                    "nbconvert_exporter": "python"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    saved = tmp_path / "saved.ipynb"
    nbformat.write(nb, str(saved))

    def blob(*args: str) -> str:
        return subprocess.run(["git", "hash-object", *args], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()

    # the blob git would store for the saved file at the notebook's path == the clean file's
    assert blob("--path", "notebooks/00_quickstart.ipynb", str(saved)) == \
        blob("notebooks/00_quickstart.ipynb")

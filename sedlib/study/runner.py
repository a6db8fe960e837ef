"""The study: numbered notebooks executed in order by papermill with a parameter profile
(:mod:`sedlib.study.profiles`: the YAML format, which names go where).

:func:`run_study` executes each notebook into ``<out>/<stem>.ipynb`` (never in place), goes on
past a failing one, and writes ``results.md`` (every model trained: PSDS1, PSDS1 macro, params,
MACs, throughput) beside the figures and into ``<out>``. The runner adds ``run_dir``
(``<out>/<stem>``), ``figures_dir`` and ``cache_dir`` (absolute paths) to each notebook's
parameters. The kernels write text progress bars (:mod:`sedlib.progress`), so the executed copies
read well as static files. Notebook-side helpers are in :mod:`sedlib.study.notebook`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from sedlib.errors import SedlibError
from sedlib.progress import PROGRESS_ENV
from sedlib.study.config import check_overrides
from sedlib.study.experiments import NOTEBOOK_ENV, RESULTS_LOG_ENV
from sedlib.study.profiles import NOTEBOOKS_DIR, load_profile, notebook_parameters, notebooks
from sedlib.study.results import read_results_log, summary_markdown

log = logging.getLogger(__name__)

RESULTS_LOG = "results.jsonl"
SUMMARY = "results.md"
#: Every run's record (experiment, key, metrics, eval folds) beside the figures: what the
#: stale-results test (:func:`sedlib.study.results.stale_rows`) and the README's numbers read.
STORED_RESULTS = "results.jsonl"
KERNEL = "sedlib"  # the kernel the notebooks name ("Python (sedlib)", registered by the setup)
FALLBACK_KERNEL = "python3"  # this interpreter's own kernel, where the sedlib one is elsewhere
#: The kernels' own log: only critical messages, so the terminal of ``sedlib study`` shows the
#: study's progress and not ipykernel's notices (e.g. a "KeyboardInterrupt caught" ERROR line at
#: every notebook's shutdown). Errors inside a notebook still reach the report.
KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=CRITICAL",)


QUIET_LOGGERS = ("papermill", "papermill.translators")


class _QuietPapermill(logging.Filter):
    """Drop papermill's "Passed unknown parameter" warning for ``names`` (the parameters the
    study passes: :func:`~sedlib.study.profiles.notebook_parameters` has already refused a name
    the notebook does not declare, except the profile's ``common`` ones, passed to every notebook
    by design; papermill's own inspection misses a declared string holding '=', e.g. 02's
    ``median_sweep_data``) and its "Unable to parse line" warning for such strings."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        super().__init__()
        self.names = set(names)

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        prefix = "Passed unknown parameter: "
        if msg.startswith(prefix) and msg[len(prefix):] in self.names:
            return False
        # papermill's parameter inspection skips a line with two '=' (e.g. a data spec with
        # options, "synth:1024:0:miss=0.1"); injection and execution are unaffected
        return not (msg.startswith("Unable to parse line ") and "= \"" in msg)


# --- running -------------------------------------------------------------------------------------

def kernel_interpreter(kernel: str = KERNEL) -> str | None:
    """The Python the Jupyter kernel ``kernel`` will run (jupyter_client substitutes this
    interpreter for a bare ``python``); None when no such kernel is registered."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec(kernel).argv
    except NoSuchKernel:
        return None
    exe = argv[0]
    if exe in ("python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]):
        return sys.executable
    return exe


def study_kernel() -> str:
    """The kernel to execute the notebooks with: the one they name (:data:`KERNEL`) when it
    runs this interpreter, else this interpreter's ``python3`` kernel (e.g. a second checkout
    whose venv did not register its own); SedlibError when neither runs this interpreter."""
    here = Path(sys.executable).resolve()
    for kernel in (KERNEL, FALLBACK_KERNEL):
        exe = kernel_interpreter(kernel)
        if exe is not None and Path(exe).resolve() == here:
            if kernel != KERNEL:
                log.info("kernel %r runs %s, not this interpreter: using %r", KERNEL,
                         kernel_interpreter(KERNEL), kernel)
            return kernel
    raise SedlibError(f"no Jupyter kernel runs this interpreter ({sys.executable}): the "
                      f"{KERNEL!r} kernel runs {kernel_interpreter(KERNEL)}, {FALLBACK_KERNEL!r} "
                      f"runs {kernel_interpreter(FALLBACK_KERNEL)}; run sedlib from the venv "
                      f"whose kernel you want, or re-run scripts/install.sh")


@dataclass
class StudyReport:
    out: Path
    figures: Path
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # stem -> error line
    seconds: dict[str, float] = field(default_factory=dict)
    summary: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


def select(paths: Sequence[Path], only: Iterable[str] | None) -> list[Path]:
    """Notebooks whose stem starts with one of ``only`` (``["02", "03"]``; full stems too)."""
    if not only:
        return list(paths)
    only = [o.strip() for o in only if o.strip()]
    chosen = [p for p in paths if any(p.stem == o or p.stem.split("_")[0] == o for o in only)]
    unknown = [o for o in only if not any(p.stem == o or p.stem.split("_")[0] == o for p in paths)]
    if unknown:
        raise SedlibError(f"--only {','.join(unknown)}: no such notebook; have "
                          f"{', '.join(p.stem for p in paths)}")
    return chosen


def run_study(profile: str | os.PathLike = "quick", *, only: Iterable[str] | None = None,
              out: str | os.PathLike | None = None, figures: str | os.PathLike = "figures",
              cache_dir: str | os.PathLike = "runs/cache",
              folder: str | os.PathLike = NOTEBOOKS_DIR, progress: bool = True,
              echo=print, overrides: Mapping[str, Any] | None = None) -> StudyReport:
    """Execute the (selected) notebooks in order with a profile's parameters (see the module
    docstring). A failing notebook is recorded and the next one runs. ``overrides``:
    StudyConfig fields that replace the profile's ``common`` ones (the command line's
    ``--executor`` and ``--slurm-*`` settings)."""
    import papermill as pm

    prof = load_profile(profile, folder)
    if overrides:
        study = check_overrides(prof["common"], overrides, where=str(prof["path"]))
        prof["common"].update(overrides)
        if study.executor == "slurm":
            from sedlib.study.slurm import check_slurm

            check_slurm()  # before the first notebook, in one line
    paths = select(notebooks(folder), only)
    if not paths:
        raise SedlibError(f"no notebooks in {folder}")
    kernel = study_kernel()
    name = Path(prof["path"]).stem
    out = Path(out or f"runs/study-{name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    figures, cache = Path(figures).resolve(), Path(cache_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report = StudyReport(out, figures)
    log_path = out / RESULTS_LOG
    log_path.unlink(missing_ok=True)
    env_before = {k: os.environ.get(k) for k in (RESULTS_LOG_ENV, NOTEBOOK_ENV, PROGRESS_ENV)}
    os.environ[RESULTS_LOG_ENV] = str(log_path)  # the kernels inherit it
    os.environ[PROGRESS_ENV] = "text"  # bars a saved notebook can show (sedlib.progress)
    t_start = time.perf_counter()
    quiet = _QuietPapermill()
    for logger in QUIET_LOGGERS:  # a filter acts only on its own logger's records
        logging.getLogger(logger).addFilter(quiet)
    try:
        for i, nb in enumerate(paths, 1):
            stem = nb.stem
            os.environ[NOTEBOOK_ENV] = stem
            runner = {"run_dir": str(out / stem), "figures_dir": str(figures),
                      "cache_dir": str(cache)}
            echo(f"[{i}/{len(paths)}] {stem} ({name} profile) -> {out / nb.name}")
            t0 = time.perf_counter()
            try:
                params = notebook_parameters(prof, nb, runner)
                quiet.names = set(params)
                pm.execute_notebook(str(nb), str(out / nb.name), parameters=params,
                                    kernel_name=kernel, progress_bar=progress, cwd=os.getcwd(),
                                    extra_arguments=list(KERNEL_ARGUMENTS))
                report.done.append(stem)
                status = "done"
            except Exception as err:  # noqa: BLE001 -- one notebook failing must not stop the study
                report.failed[stem] = _error_line(err)
                status = f"FAILED ({report.failed[stem]})"
            report.seconds[stem] = time.perf_counter() - t0
            echo(f"[{i}/{len(paths)}] {stem}: {status} in {_fmt_time(report.seconds[stem])} "
                 f"(study elapsed {_fmt_time(time.perf_counter() - t_start)})")
    finally:
        for logger in QUIET_LOGGERS:
            logging.getLogger(logger).removeFilter(quiet)
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    rows = read_results_log(log_path)
    text = summary_markdown(rows, title=f"Study results ({name} profile, {time.strftime('%Y-%m-%d %H:%M')})",
                            failed=report.failed)
    from sedlib.train import runs

    runs.atomic_write(out / SUMMARY, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    report.summary = runs.atomic_write(figures / SUMMARY,
                                       lambda tmp: tmp.write_text(text, encoding="utf-8"))
    stored = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)  # for stale_rows()
    runs.atomic_write(figures / STORED_RESULTS, lambda tmp: tmp.write_text(stored, encoding="utf-8"))
    from sedlib.study.claims_report import write_claims

    write_claims(rows, figures, title=f"The paper's claims ({name} profile, {time.strftime('%Y-%m-%d %H:%M')})",
                 png=bool(prof["common"].get("png", True)))
    runs.write_json(out / "study.json", {"profile": str(prof["path"]), "done": report.done,
                                         "failed": report.failed, "seconds": report.seconds})
    return report


def _error_line(err: Exception) -> str:
    """One line naming a notebook's failure: the cell's exception type and first message line."""
    name = getattr(err, "ename", None) or type(err).__name__  # PapermillExecutionError: the cell's
    text = str(getattr(err, "evalue", None) or err).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{name}: {first}"[:300]


def _fmt_time(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"

"""Study runs as SLURM jobs (submitit): :func:`run_as_slurm_jobs`, the ``slurm`` executor of
:func:`sedlib.study.cache.run_experiments` (``executor="slurm"``, settings from the
``slurm_*`` fields of :class:`sedlib.study.config.StudyConfig`).

Each uncached run becomes one task of a job array; the task calls the same function the local
executor calls (e.g. :func:`sedlib.study.cache.run_experiment`) on the same experiment, so it
trains into the shared run cache under the same key, writes the same ``result.json`` atomically
and takes the cache's file lock. The cache folder must be on a filesystem the nodes share.

* Submissions are recorded under ``<cache>/.slurm/jobs/<key>.json`` (under one file lock), so
  two studies sharing a cache submit each run once: the second one waits for the first's job.
* A failing job is reported in one line (its error and its log file) while the others go on;
  :class:`SlurmJobsFailed` lists every failure at the end. Re-running submits only what has no
  result yet.
* A job that is preempted or reaches its time limit is requeued by submitit (SLURM signals it
  first, ``checkpoint``); a cancelled one is submitted again by the next run of the study.
  Either way training resumes from the run folder's ``checkpoint.pt`` (``fit(resume=True)``).

Imports no other study module that imports this one: the caller passes the function to run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from sedlib.errors import SedlibError
from sedlib.locking import file_lock
from sedlib.study.experiments import NOTEBOOK_ENV, RESULTS_LOG_ENV

log = logging.getLogger(__name__)

JOBS_DIR = ".slurm"  # under the cache folder: submitit's pickles and logs, submission records
POLL_SECONDS = 2.0  # how often the waiting caller looks at the jobs (sacct via submitit)
#: SLURM states of a job that may still produce its result (queued or running).
ACTIVE = {"PENDING": "queued", "REQUEUED": "queued", "CONFIGURING": "queued", "RESIZING": "queued",
          "SUSPENDED": "queued", "RUNNING": "running", "COMPLETING": "running"}


class SlurmJobsFailed(SedlibError):
    """Some SLURM jobs of a batch failed; ``lines`` holds one line per failed job."""

    def __init__(self, lines: Sequence[str], total: int) -> None:
        self.lines = list(lines)
        super().__init__(f"{len(lines)} of {total} SLURM job(s) failed (re-run to submit them "
                         f"again):\n  " + "\n  ".join(self.lines))


class RunInJob:
    """What a job executes: ``fn(item, **kwargs)`` without the study's results log (the caller
    logs every run, in the study's order). ``checkpoint`` lets submitit requeue a preempted or
    timed-out job with the same call; the run then resumes from its checkpoint."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, item: Any, kwargs: Mapping[str, Any]) -> Any:
        for name in (RESULTS_LOG_ENV, NOTEBOOK_ENV):
            os.environ.pop(name, None)
        if int(os.environ.get("SLURM_NTASKS", "1")) > 1:  # one DDP process per task, as torchrun
            from submitit.helpers import TorchDistributedEnvironment

            TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # RANK, WORLD_SIZE, ...
        return self.fn(item, **kwargs)

    def checkpoint(self, item: Any, kwargs: Mapping[str, Any]) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, item, kwargs)


def check_slurm() -> None:
    """SedlibError unless submitit imports, SLURM's commands are on PATH and the controller
    answers (``sinfo``)."""
    try:
        import submitit  # noqa: F401
    except ImportError as err:
        raise SedlibError(f"executor 'slurm' needs submitit ({err}); run scripts/install.sh or "
                          f"pip install submitit") from None
    missing = [c for c in ("sbatch", "sacct", "scancel") if shutil.which(c) is None]
    if missing:
        raise SedlibError(f"executor 'slurm': {', '.join(missing)} not on PATH (run on a SLURM "
                          f"login node, or start a one-node cluster: bash scripts/slurm_local.sh start)")
    import subprocess

    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60)
        problem = None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["no output"])[-1]
    except subprocess.TimeoutExpired:
        problem = "no answer in 60 s"
    if problem:
        raise SedlibError(f"executor 'slurm': the SLURM controller does not answer (sinfo: {problem}); "
                          f"start it (one-node cluster: bash scripts/slurm_local.sh start)")


def make_executor(folder: Path, settings: Mapping[str, Any]):
    """A submitit executor for SLURM with a study's ``slurm_*`` settings (names without the
    prefix: partition, cpus, gpus, mem_gb, time_min, max_jobs, options)."""
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = {"name": "sedlib", "timeout_min": int(settings.get("time_min", 60)),
                              "cpus_per_task": int(settings.get("cpus", 1)),
                              "tasks_per_node": int(settings.get("processes") or 1),
                              "nodes": 1}
    if settings.get("gpus"):
        params["gpus_per_node"] = int(settings["gpus"])
    if settings.get("mem_gb") is not None:
        params["mem_gb"] = settings["mem_gb"]
    if settings.get("partition"):
        params["slurm_partition"] = settings["partition"]
    if settings.get("max_jobs"):
        params["slurm_array_parallelism"] = int(settings["max_jobs"])
    if settings.get("options"):
        params["slurm_additional_parameters"] = dict(settings["options"])
    executor.update_parameters(**params)
    return executor


def run_as_slurm_jobs(fn: Callable[..., Any], items: Sequence[Any], keys: Sequence[str],
                  kwargs: Mapping[str, Any], settings: Mapping[str, Any], *,
                  finished: Callable[[int], bool], desc: str = "SLURM jobs"
                  ) -> dict[int, Any]:
    """Run ``fn(items[i], **kwargs)`` as one SLURM job per ``i`` whose ``finished(i)`` is
    False, and wait for all of them with a progress bar of queued / running / done / failed
    jobs. ``keys[i]``: the item's cache folder name (its submission record). Returns ``{i:
    result}`` for the jobs this call submitted (runs another study's job trained are left to
    the caller's cache); raises :class:`SlurmJobsFailed` after all ended if any failed."""
    check_slurm()
    cache = Path(kwargs.get("cache_dir", "runs/cache")).resolve()
    jobs_dir = cache / JOBS_DIR
    job_kwargs = {**kwargs, "cache_dir": str(cache), "progress": False}
    with file_lock(jobs_dir / "submit.lock"):  # one submitter at a time per cache
        todo = [i for i in range(len(items)) if not finished(i)]
        waiting = {i: job for i in todo if (job := _active_job(jobs_dir, keys[i])) is not None}
        new = [i for i in todo if i not in waiting]
        own = _submit(fn, items, new, job_kwargs, settings, jobs_dir, keys) if new else {}
    if waiting:
        log.info("%d run(s) already submitted by another study: waiting for their jobs", len(waiting))
    return _wait({**own, **waiting}, set(own), items, desc=desc,
                 progress=bool(kwargs.get("progress", True)))


def _record_path(jobs_dir: Path, key: str) -> Path:
    return jobs_dir / "jobs" / f"{key}.json"


def _active_job(jobs_dir: Path, key: str):
    """The queued or running job recorded for ``key`` (a submitit SlurmJob), else None. Asks
    ``squeue``: a held or just-submitted job may not be in the accounting database yet."""
    import subprocess

    import submitit

    path = _record_path(jobs_dir, key)
    if not path.is_file():
        return None
    rec = json.loads(path.read_text(encoding="utf-8"))
    proc = subprocess.run(["squeue", "-h", "-j", rec["job_id"], "-o", "%T"], capture_output=True,
                          text=True)
    states = proc.stdout.split() if proc.returncode == 0 else []
    # COMPLETING: ending without a result (with one, ``finished`` said so): submit again
    if not any(state in ACTIVE and state != "COMPLETING" for state in states):
        return None
    return submitit.SlurmJob(folder=rec["folder"], job_id=rec["job_id"])


def _submit(fn, items, todo, job_kwargs, settings, jobs_dir: Path, keys) -> dict[int, Any]:
    """Submit ``items[todo]`` as one job array; record each job under its key."""
    from sedlib.train import runs

    executor = make_executor(jobs_dir / "logs", settings)
    job_fn = RunInJob(fn)
    try:
        with executor.batch():
            jobs = [executor.submit(job_fn, items[i], job_kwargs) for i in todo]
    except Exception as err:  # noqa: BLE001 -- sbatch's refusal, in one line
        first = next((ln for ln in str(err).splitlines() if "error" in ln.lower()), str(err))
        raise SedlibError(f"sbatch refused the job array of {len(todo)} run(s): {first.strip()}") from err
    for i, job in zip(todo, jobs):
        runs.write_json(_record_path(jobs_dir, keys[i]),
                        {"job_id": job.job_id, "folder": str(jobs_dir / "logs"), "key": keys[i],
                         "submitted": time.strftime("%Y-%m-%d %H:%M:%S")})
    log.info("submitted %d SLURM job(s): array %s", len(jobs), jobs[0].job_id.split("_")[0])
    return dict(zip(todo, jobs))


def _wait(jobs: dict[int, Any], own: set[int], items, *, desc: str, progress: bool) -> dict[int, Any]:
    """Poll until every job ended; report each failure in one line as it happens."""
    from sedlib.progress import tqdm

    results: dict[int, Any] = {}
    failures: list[str] = []
    pending = dict(jobs)
    bar = tqdm(total=len(jobs), desc=desc, unit="job", disable=not progress)
    counts = {"queued": 0, "running": 0, "done": 0, "failed": 0}
    while pending:
        next(iter(pending.values())).watcher.update()  # one sacct call for every job
        counts.update(queued=0, running=0)
        ended = 0
        for i, job in list(pending.items()):
            if not job.done():
                counts[ACTIVE.get(job.state.upper().split()[0], "queued")] += 1
                continue
            del pending[i]
            ok, value = _outcome(job)
            if ok:
                counts["done"] += 1
                if i in own:
                    results[i] = value
            else:
                counts["failed"] += 1
                line = f"{_label(items[i])}: job {job.job_id} {value} (log: {job.paths.stderr})"
                failures.append(line)
                log.error("SLURM job failed: %s", line)
                if progress:
                    bar.write(f"FAILED {line}")
            ended += 1
        bar.set_postfix(counts, refresh=False)
        bar.update(ended)
        if pending:
            time.sleep(POLL_SECONDS)
    bar.close()
    if failures:
        raise SlurmJobsFailed(failures, len(jobs))
    return results


def _outcome(job) -> tuple[bool, Any]:
    """(True, result) for a job whose every task returned (the result: task 0's, the DDP rank
    that writes it); (False, one line: the first task's error or the job's state)."""
    from submitit.core import utils

    tasks = [job.task(k) for k in range(job.num_tasks)] if job.num_tasks > 1 else [job]
    values = []
    for task in tasks:
        path = task.paths.result_pickle
        if not path.exists():
            return False, f"ended {job.state} without a result"
        outcome, value = utils.pickle_load(path)
        if outcome != "success":
            return False, f"raised {_exception_line(str(value))}"
        values.append(value)
    return True, values[0]


def _exception_line(trace: str, limit: int = 300) -> str:
    """A traceback's exception in one line: ``Type: message`` (a multi-line message joined)."""
    lines = trace.strip().splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent call last)")]
    tail = lines[starts[-1] + 1:] if starts else lines
    first = next((i for i, ln in enumerate(tail) if ln and not ln[0].isspace()), None)
    text = " ".join(ln.strip() for ln in tail[first:] if ln.strip()) if first is not None else ""
    text = text or (lines[-1].strip() if lines else "an error")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _label(item: Any) -> str:
    """A run's name in messages: model, seed and cache key when the item has them."""
    parts = [str(getattr(item, "model", item))]
    if getattr(item, "seed", None) is not None:
        parts.append(f"seed {item.seed}")
    if getattr(item, "key", None):
        parts.append(f"key {item.key}")
    return " ".join(parts)

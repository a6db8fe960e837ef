"""The ``slurm`` executor (sedlib.study.slurm, submitit) against a real SLURM cluster: the
one-node cluster of ``scripts/slurm_local.sh`` (``.ci/run`` starts it for the suite and stops
it afterwards). Without a reachable cluster the cluster tests skip, saying how to start one;
with ``SEDLIB_REQUIRE_SLURM=1`` (set by ``.ci/run``) they fail instead, so CI really runs them.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sedlib.config import AudioConfig
from sedlib.errors import SedlibError
from sedlib.study.cache import load_result, run_experiments
from sedlib.study.config import StudyConfig
from sedlib.study.experiments import RESULTS_LOG_ENV, Experiment
from sedlib.study.slurm import JOBS_DIR, SlurmJobsFailed
from sedlib.train.config import PRESETS

ROOT = Path(__file__).resolve().parents[1]
SMOKE = dataclasses.replace(PRESETS["smoke"], batch_size=2)
AUDIO = AudioConfig(clip_seconds=2.0)
#: run_experiment's options for smoke-sized runs (1 thread: two jobs share the two cores)
OPTIONS = dict(progress=False, throughput_batch_size=1, throughput_repeats=1,
               throughput_warmup=0, num_threads=1)
SLURM = {"cpus": 1, "time_min": 10}


def _exp(**changes) -> Experiment:
    fields = dict(model="fmntiny+TF:16", train_data="synth:4", eval_data="synth:2", train=SMOKE,
                  steps=2, audio=AUDIO)
    fields.update(changes)
    return Experiment(**fields)


def _cluster_problem() -> str | None:
    """Why no SLURM cluster answers here (None: one does)."""
    conf = Path(os.environ.get("SEDLIB_SLURM_DIR", "/tmp/sedlib-slurm")) / "slurm.conf"
    if "SLURM_CONF" not in os.environ and not Path("/etc/slurm/slurm.conf").exists() and conf.is_file():
        os.environ["SLURM_CONF"] = str(conf)  # the local cluster without its /etc link
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 or not {"idle", "mixed", "allocated"} & set(proc.stdout.split()):
        return f"no usable SLURM node (sinfo: {(proc.stdout + proc.stderr).strip()[:200]!r})"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem is not None:
        why = f"SLURM not available: {problem}; start one with `bash scripts/slurm_local.sh start`"
        if os.environ.get("SEDLIB_REQUIRE_SLURM") == "1":
            pytest.fail(why)
        pytest.skip(why)


def _metrics(cache: Path) -> dict[str, dict]:
    """Every stored run's metrics by key (what both executors must agree on)."""
    return {p.parent.name: json.loads(p.read_text())["metrics"] for p in cache.glob("*/result.json")}


def _untimed(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("train_seconds", "throughput")}


def _record(cache: Path, key: str) -> dict:
    return json.loads((cache / JOBS_DIR / "jobs" / f"{key}.json").read_text())


def _sacct_state(job_id: str, limit_s: float = 60) -> str:
    """The job's final state in SLURM's accounting. A job's result can be read a moment before
    SLURM has closed the job (its batch script still exiting): polled until it has."""
    deadline = time.monotonic() + limit_s
    while True:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id], capture_output=True,
                             text=True, check=True).stdout.split()
        state = out[0] if out else ""
        if state not in ("", "PENDING", "RUNNING", "COMPLETING") or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def _submitted(cache: Path) -> int:
    """How many jobs were ever submitted into this cache (submitit writes one pickle each)."""
    return len(list((cache / JOBS_DIR / "logs").glob("*_submitted.pkl")))


# --- settings (no cluster needed) --------------------------------------------------------------

def test_executor_settings_are_checked():
    study = StudyConfig(executor="slurm", slurm_options={"qos": "high", "account": "lab"})
    assert study.slurm_options == (("account", "lab"), ("qos", "high"))  # frozen: pairs, sorted
    assert study.run_kwargs["executor"] == "slurm"
    assert study.run_kwargs["slurm"]["options"] == {"account": "lab", "qos": "high"}
    assert "executor" not in StudyConfig().run_kwargs  # the local executor's calls are unchanged
    for bad in ({"executor": "sge"}, {"slurm_cpus": 0}, {"slurm_max_jobs": 0}, {"slurm_mem_gb": -1},
                {"slurm_options": {"--qos": "x"}}, {"slurm_options": "qos=high"}):
        with pytest.raises(ValueError, match="StudyConfig: "):
            StudyConfig(**bad)


@pytest.mark.parametrize("args, message", [
    (["--executor", "slurm", "--slurm-cpus", "0"], "slurm_cpus must be an int >= 1, got 0"),
    (["--slurm-option", "qos"], "--slurm-option 'qos': expected NAME=VALUE"),
])
def test_cli_rejects_bad_executor_settings_in_one_line(args, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sedlib", "study", "--profile", "smoke", "--only", "00",
                           "--out", str(tmp_path), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_slurm_local_script_usage():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh"), "restart"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "usage:" in proc.stderr


# --- against the cluster -----------------------------------------------------------------------

def test_jobs_give_the_local_results_and_rerun_submits_nothing(cluster, tmp_path, monkeypatch):
    exps = [_exp(seed=0), _exp(seed=1), _exp(model="fmntiny")]
    logs = {}
    for executor in ("local", "slurm"):
        logs[executor] = tmp_path / f"{executor}.jsonl"
        monkeypatch.setenv(RESULTS_LOG_ENV, str(logs[executor]))
        extra = {"executor": "slurm", "slurm": SLURM} if executor == "slurm" else {}
        results = run_experiments(exps, cache_dir=tmp_path / executor, **OPTIONS, **extra)
        assert [r.key for r in results] == [e.key for e in exps] and not any(r.cached for r in results)
    local, slurm = _metrics(tmp_path / "local"), _metrics(tmp_path / "slurm")
    assert sorted(local) == sorted(e.key for e in exps) and local == slurm
    for e in exps:  # each run was one finished SLURM job
        assert _sacct_state(_record(tmp_path / "slurm", e.key)["job_id"]) == "COMPLETED"
    rows = {k: [json.loads(line) for line in p.read_text().splitlines()] for k, p in logs.items()}
    assert [r["key"] for r in rows["slurm"]] == [e.key for e in exps]  # logged in order, once each
    for a, b in zip(rows["local"], rows["slurm"]):  # all but what a clock measured
        assert _untimed(a) == _untimed(b)
    before = _submitted(tmp_path / "slurm")
    again = run_experiments(exps, cache_dir=tmp_path / "slurm", executor="slurm", slurm=SLURM, **OPTIONS)
    assert all(r.cached for r in again) and _submitted(tmp_path / "slurm") == before == len(exps)


def test_failing_job_is_one_line_and_the_others_complete(cluster, tmp_path, caplog):
    good = [_exp(seed=0), _exp(seed=1)]
    bad = _exp(train_data="synth:4:0:world=nope")  # a key, but no such world when it trains
    with pytest.raises(SlurmJobsFailed) as info:
        run_experiments([good[0], bad, good[1]], cache_dir=tmp_path, executor="slurm", slurm=SLURM,
                        **OPTIONS)
    assert isinstance(info.value, SedlibError)  # the CLI prints it as one error, no traceback
    assert len(info.value.lines) == 1 and "1 of 3 SLURM job(s) failed" in str(info.value)
    line = info.value.lines[0]
    assert "\n" not in line and f"key {bad.key}" in line
    assert "raised sedlib.data.spec.DataSpecError: bad data spec 'synth:4:0:world=nope'" in line
    log_path = Path(line.rsplit("(log: ", 1)[1].rstrip(")"))
    assert log_path.is_file() and "nope" in log_path.read_text()
    assert any(line in r.getMessage() for r in caplog.records)  # reported as it happened
    assert all(load_result(e, tmp_path) is not None for e in good) and load_result(bad, tmp_path) is None
    job_id = _record(tmp_path, bad.key)["job_id"]
    assert _sacct_state(job_id) in ("FAILED", "COMPLETED")  # submitit catches the error: exit 0 or 1


#: A run long enough to be stopped between fit's step-500 checkpoint and its end (1,000 steps)
LONG = _exp(model="fmntiny", steps=1000, train=dataclasses.replace(SMOKE, batch_size=1))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """LONG's result run here without interruption (the local executor)."""
    return run_experiments([LONG], cache_dir=tmp_path_factory.mktemp("local"), **OPTIONS)[0]


def _when_checkpointed(cache: Path, running) -> str:
    """Wait (on a file, not a timer) until LONG's job has written its step-500 checkpoint;
    its job id."""
    checkpoint = cache / LONG.key / "run" / "checkpoint.pt"
    while not checkpoint.is_file() and not running.done():
        time.sleep(0.2)
    assert not running.done(), running.exception()
    return _record(cache, LONG.key)["job_id"]


def _resumed_steps(cache: Path) -> list[int]:
    events = [json.loads(line) for line in (cache / LONG.key / "run" / "metrics.jsonl").read_text().splitlines()]
    return [e["step"] for e in events if e.get("event") == "resumed"]


def test_cancelled_job_resumes_from_its_checkpoint_on_rerun(cluster, tmp_path, uninterrupted):
    """scancel a running job once its step-500 checkpoint exists, then re-run: only that run is
    submitted again, resumes at step 500 and gives the uninterrupted run's metrics."""
    short = _exp()
    with cf.ThreadPoolExecutor(1) as pool:
        first = pool.submit(run_experiments, [short, LONG], cache_dir=tmp_path, executor="slurm",
                            slurm=SLURM, **OPTIONS)
        job_id = _when_checkpointed(tmp_path, first)
        subprocess.run(["scancel", job_id], check=True)
        with pytest.raises(SlurmJobsFailed, match=r"(?s)1 of 2 .*ended CANCELLED"):
            first.result()
    assert _sacct_state(job_id).startswith("CANCELLED") and load_result(LONG, tmp_path) is None
    short_job = _record(tmp_path, short.key)["job_id"]
    again = run_experiments([short, LONG], cache_dir=tmp_path, executor="slurm", slurm=SLURM, **OPTIONS)
    assert [r.cached for r in again] == [True, False]
    assert _record(tmp_path, short.key)["job_id"] == short_job  # not submitted again
    assert _record(tmp_path, LONG.key)["job_id"] != job_id
    assert _resumed_steps(tmp_path) == [500]
    assert again[1].metrics == uninterrupted.metrics


def test_preempted_job_is_requeued_and_resumes(cluster, tmp_path, uninterrupted):
    """SLURM's warning signal (USR2: preemption, or the time limit near) makes submitit call the
    job's checkpoint and requeue it; the same job starts again, resumes at step 500 and the
    waiting caller gets the uninterrupted run's metrics."""
    with cf.ThreadPoolExecutor(1) as pool:
        running = pool.submit(run_experiments, [LONG], cache_dir=tmp_path, executor="slurm",
                              slurm=SLURM, **OPTIONS)
        job_id = _when_checkpointed(tmp_path, running)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        result = running.result()[0]
    assert _resumed_steps(tmp_path) == [500] and _record(tmp_path, LONG.key)["job_id"] == job_id
    assert f"Requeued job {job_id}" in (tmp_path / JOBS_DIR / "logs" / f"{job_id}_0_log.out").read_text()
    assert _sacct_state(job_id) == "COMPLETED" and _submitted(tmp_path) == 1
    assert result.metrics == uninterrupted.metrics


SCRIPT = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True)
from sedlib.study.cache import run_experiments
from sedlib.study.experiments import Experiment
exps = [Experiment.from_dict(d) for d in json.loads(sys.argv[2])]
slurm = json.loads(sys.argv[3])
results = run_experiments(exps, cache_dir=sys.argv[1], executor="slurm", slurm=slurm, **json.loads(sys.argv[4]))
print(json.dumps({r.key: r.metrics for r in results}, sort_keys=True))
"""


def test_two_studies_sharing_a_cache_submit_each_run_once(cluster, tmp_path):
    """Study A submits its runs held (sbatch --hold); study B, started on the same cache, finds
    them queued and waits for A's jobs instead of submitting; then the jobs are released."""
    exps = [_exp(seed=0), _exp(seed=1)]
    cache = tmp_path / "cache"
    script = tmp_path / "study.py"
    script.write_text(SCRIPT)

    def start(name: str, slurm: dict) -> subprocess.Popen:
        err = open(tmp_path / f"{name}.err", "w")
        return subprocess.Popen([sys.executable, str(script), str(cache),
                                 json.dumps([e.to_dict() for e in exps]), json.dumps(slurm),
                                 json.dumps(OPTIONS)], stdout=subprocess.PIPE, stderr=err, text=True)

    a = start("a", {**SLURM, "options": {"hold": True}})
    records = [cache / JOBS_DIR / "jobs" / f"{e.key}.json" for e in exps]
    while not all(p.is_file() for p in records) and a.poll() is None:
        time.sleep(0.2)
    assert a.poll() is None, (tmp_path / "a.err").read_text()
    b = start("b", SLURM)
    while "already submitted by another study" not in (tmp_path / "b.err").read_text() and b.poll() is None:
        time.sleep(0.2)
    assert b.poll() is None, (tmp_path / "b.err").read_text()
    array = _record(cache, exps[0].key)["job_id"].split("_")[0]
    subprocess.run(["scontrol", "release", array], check=True)
    out_a, _ = a.communicate(timeout=300)
    out_b, _ = b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, (tmp_path / "a.err").read_text() + (tmp_path / "b.err").read_text()
    assert json.loads(out_a) == json.loads(out_b) and sorted(json.loads(out_a)) == sorted(e.key for e in exps)
    assert _submitted(cache) == len(exps)
    listed = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID", "-j", array], capture_output=True,
                            text=True, check=True).stdout.split()
    assert len(listed) == len(exps)


def _smoke_one_seed(tmp_path: Path) -> Path:
    """The smoke profile with notebook 02 at one seed: every sequence model still trains in its
    own job (10 runs), at half the SLURM jobs of the smoke profile's two seeds (CI time)."""
    import yaml

    from sedlib.study.profiles import NOTEBOOKS_DIR

    profile = yaml.safe_load((NOTEBOOKS_DIR / "smoke.yaml").read_text(encoding="utf-8"))
    profile["notebooks"]["02_sequence_models"]["seeds"] = [0]
    path = tmp_path / "smoke_02_one_seed.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    return path


def _study(tmp_path: Path, executor: str) -> subprocess.CompletedProcess:
    out, profile = tmp_path / executor, _smoke_one_seed(tmp_path)
    return subprocess.run([sys.executable, "-m", "sedlib", "study", "--profile", str(profile), "--only", "02",
                           "--out", str(out / "out"), "--figures", str(out / "fig"), "--cache",
                           str(out / "cache"), "--no-progress", "--executor", executor],
                          capture_output=True, text=True, timeout=900)


def test_cli_study_02_on_slurm_equals_local(cluster, tmp_path):
    """``sedlib study --profile <smoke, 02 at one seed> --only 02 --executor slurm``: every run a
    finished SLURM job, the same keys and PSDS values as ``--executor local``."""
    runs = {}
    for executor in ("slurm", "local"):
        proc = _study(tmp_path, executor)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        rows = [json.loads(line) for line in (tmp_path / executor / "fig" / "results.jsonl").read_text().splitlines()]
        runs[executor] = [_untimed(r) for r in rows]  # keys, PSDS values and their folds, in order
    assert runs["slurm"] == runs["local"] and len({r["key"] for r in runs["local"]}) >= 10
    cache = tmp_path / "slurm" / "cache"
    records = list((cache / JOBS_DIR / "jobs").glob("*.json"))
    assert {p.stem for p in records} == {p.parent.name for p in cache.glob("*/result.json")}
    for p in records:
        assert _sacct_state(json.loads(p.read_text())["job_id"]) == "COMPLETED", p.stem


def test_a_run_with_two_processes_trains_with_ddp_inside_its_job(cluster, tmp_path):
    """``processes: 2``: one job of two tasks, each a DDP rank (gloo on CPU, as torchrun starts
    them); both train, rank 0 alone evaluates and writes the one result."""
    import torch

    exp = _exp(seed=3)
    result, = run_experiments([exp], cache_dir=tmp_path, executor="slurm", slurm={**SLURM, "processes": 2},
                              **OPTIONS)
    assert not result.cached and 0.0 <= result.metrics["psds1_macro"] <= 100.0
    state = torch.load(tmp_path / exp.key / "run" / "checkpoint.pt", weights_only=True, map_location="cpu")
    assert state["identity"]["world_size"] == 2
    assert load_result(exp, tmp_path) is not None and len(list(tmp_path.glob("*/result.json"))) == 1
    job = _record(tmp_path, exp.key)["job_id"]
    deadline = time.monotonic() + 120  # both results are written before SLURM marks the step ended
    while True:
        steps = subprocess.run(["sacct", "-n", "-P", "-j", job, "-o", "JobID,NTasks,State"], capture_output=True,
                               text=True, timeout=60).stdout
        if "RUNNING" not in steps and "COMPLETING" not in steps or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert any(line.split("|")[1:] == ["2", "COMPLETED"] for line in steps.splitlines()), steps

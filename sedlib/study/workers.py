"""Run study jobs side by side: :func:`in_processes` over one reused pool of spawned worker
processes per interpreter (:func:`sedlib.study.cache.run_experiments` uses it).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from sedlib.study.experiments import NOTEBOOK_ENV, RESULTS_LOG_ENV


def in_processes(fn: Any, items: Sequence[Any], parallel_runs: int, kwargs: Mapping[str, Any], *,
                 todo: Sequence[int] | None = None, desc: str = "experiments") -> list[Any]:
    """``[fn(item, **kwargs) for item in items]`` with the ``todo`` indices (default: all) in
    ``parallel_runs`` spawned processes (without progress bars) and the others here; a progress
    bar over all of them; results in ``items``' order. A failing run raises with its traceback."""
    import concurrent.futures as cf

    from sedlib.progress import tqdm

    todo = list(range(len(items))) if todo is None else list(todo)
    results: list[Any] = [None] * len(items)
    bar = tqdm(total=len(items), desc=f"{desc} ({parallel_runs} at once)", unit="run",
               disable=not kwargs.get("progress", True))
    if parallel_runs <= 1 or len(todo) < 2:
        for i, item in enumerate(items):
            results[i] = fn(item, **kwargs)
            bar.update()
        bar.close()
        return results
    worker = {**kwargs, "progress": False}
    pool = _pool(parallel_runs)
    try:
        futures = {pool.submit(fn, items[i], **worker): i for i in todo}
        for i, item in enumerate(items):
            if i not in futures.values():
                results[i] = fn(item, **kwargs)
                bar.update()
        for fut in cf.as_completed(futures):
            results[futures[fut]] = fut.result()
            bar.update()
    except cf.process.BrokenProcessPool:
        _POOLS.pop(parallel_runs, None)  # a worker died: the next call starts a fresh pool
        raise
    bar.close()
    return results


_POOLS: dict[int, Any] = {}


def _pool(workers: int):
    """One pool of ``workers`` spawned processes per interpreter, reused by every call (a
    notebook makes several batches of runs; each new pool would import torch twice again), shut
    down at exit. Workers inherit the environment at their start (the study's results log and
    notebook name: one kernel per notebook); a pool started under other values is replaced."""
    import atexit
    import concurrent.futures as cf
    import multiprocessing

    env = tuple(os.environ.get(k) for k in (RESULTS_LOG_ENV, NOTEBOOK_ENV))
    if workers in _POOLS and _POOLS[workers][1] != env:  # started under another results log
        _POOLS.pop(workers)[0].shutdown()
    if workers not in _POOLS:
        pool = cf.ProcessPoolExecutor(max_workers=workers, initializer=_quiet_interrupts,
                                      mp_context=multiprocessing.get_context("spawn"))
        atexit.register(pool.shutdown)
        _POOLS[workers] = (pool, env)
    return _POOLS[workers][0]


def _quiet_interrupts() -> None:
    """Pool workers end quietly on SIGINT (exit status 130) instead of printing a
    KeyboardInterrupt traceback each: papermill shutting a kernel down (or Ctrl-C in a terminal)
    interrupts the whole process group, idle workers included. A run stopped this way resumes
    from its checkpoint on the next call."""
    import signal

    signal.signal(signal.SIGINT, lambda *_: os._exit(130))

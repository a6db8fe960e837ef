"""Study runs one at a time vs side by side: the wall time of the same batch of runs both ways.

    .venv/bin/python benchmarks/bench_parallel_runs.py [--models fmn02 fmn02+TF:64]
        [--seeds 2] [--parallel 2] [--eval synth:1000]

The quick profile's runs (its training data, 64 steps of 8 clips of 4 s, one thread per run,
BatchNorm recalibration, evaluation on ``--eval`` with the eval folds), once with
``parallel_runs=1`` and once with ``--parallel`` processes, each into its own empty result
cache, with the data caches and throughput profiles made beforehand (as the study makes them
before starting runs). Side by side in one process; the ratio of the two wall times is the
speed-up; metrics must be equal (checked). The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["fmn02", "fmn02+TF:64"])
    ap.add_argument("--seeds", type=int, default=2, help="seeds per model (runs = models x seeds)")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--eval", default="synth:1000")
    args = ap.parse_args()

    from sedlib.study import configs_from_parameters, make_experiment, prepare, run_models
    from sedlib.study.cache import prepare_experiment
    from sedlib.study.runner import load_profile

    print(f"load average before: {os.getloadavg()}")
    root = tempfile.mkdtemp(prefix="bench_parallel_")
    params = {**load_profile("quick")["common"], "eval_data": args.eval, "progress": False,
              "run_dir": f"{root}/run", "cache_dir": f"{root}/prep"}
    study, train, distill, audio = configs_from_parameters(params)
    study = prepare(study)
    seeds = list(range(args.seeds))
    walls, results = {}, {}
    for n in (1, args.parallel):
        s = replace(study, cache_dir=f"{root}/cache{n}", parallel_runs=n)
        for m in args.models:  # data caches + profiles first, outside the timing
            prepare_experiment(make_experiment(m, s, train, distill, audio), **s.run_kwargs)
        t0 = time.perf_counter()
        results[n] = run_models(args.models, s, train, distill, audio, seeds=seeds)
        walls[n] = time.perf_counter() - t0
        print(f"parallel_runs={n}: {len(results[n])} runs in {walls[n]:.1f} s", flush=True)
    same = all(a.metrics["psds1_macro"] == b.metrics["psds1_macro"]
               for a, b in zip(results[1], results[args.parallel]))
    print(f"speed-up {walls[1] / walls[args.parallel]:.2f}x ({args.parallel} at once vs one at a "
          f"time); metrics equal: {same}")
    print(f"load average after: {os.getloadavg()}")
    if not same:
        raise SystemExit("parallel and serial runs gave different metrics")


if __name__ == "__main__":
    main()

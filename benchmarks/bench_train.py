"""CPU training throughput (clips/s) of :func:`sedlib.train.fitting.fit` on the embedded synthetic data.

    .venv/bin/python benchmarks/bench_train.py [--models fmn04+TF:104 fmn10+TF:256] [--batch 8]
        [--steps 6] [--workers 0] [--threads N]

The whole loop as a run does it: synthesis (+ wavmix) in the DataLoader, mel, frame shift,
mixup, forward, BCE, backward, Adam, schedule; 10 s clips, fp32, no validation. Throughput is
read from the run's ``metrics.jsonl`` (one line per step); the first step (warm-up) is left
out; reported are the median and the best step (on a shared machine the best is the one least
disturbed by other processes).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from sedlib.train import runs
from sedlib.data.sources import SynthSource
from sedlib.train.config import PRESETS
from sedlib.train.fitting import fit

DEFAULT_MODELS = ["fmn04+TF:104", "fmn10+TF:256"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6, help="optimiser steps (the first is warm-up)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} x 10 s, "
          f"{args.workers} workers, {args.steps - 1} timed steps after 1 warm-up")
    print(f"{'model':<16}{'median':>9}{'best':>9}   clips/s per step")
    data = SynthSource("train", args.batch * args.steps)
    cfg = replace(PRESETS["quick"], batch_size=args.batch, accumulate_grad_batches=1,
                  epoch_len=args.batch * args.steps, n_epochs=1, warmup_steps=1,
                  num_workers=args.workers, pretrained="scratch")
    for name in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            fit(name, data, out_dir=Path(tmp) / "run", train_config=cfg, log_every=1,
                checkpoint_every=10**9, progress=False)
            wall = time.perf_counter() - t0
            rates = [r["clips_per_s"] for r in runs.read_metrics(Path(tmp) / "run") if "loss" in r][1:]
        print(f"{name:<16}{statistics.median(rates):>9.2f}{max(rates):>9.2f}   "
              f"{' '.join(f'{r:.2f}' for r in rates)}   (run {wall:.0f} s with setup)")


if __name__ == "__main__":
    main()

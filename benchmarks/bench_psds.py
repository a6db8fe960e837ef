"""PSDS at AudioSet Strong eval scale: time and peak memory of ``sedlib.evaluate.psds_report``.

Synthesises (deterministically) frame scores and ground truth shaped like the AudioSet Strong
evaluation (16,935 clips x 407 classes x 250 frames of 40 ms; ~5 events per clip over ~3
classes; scores correlated with the events) and times psds1 + psds1_macro (the reference's
per-epoch metric), optionally psds2 / pauroc. Scores are generated per clip when first asked
for (a lazy mapping), so generation is timed separately and memory stays that of the evaluation.

    .venv/bin/python benchmarks/bench_psds.py                      # full scale, psds1
    .venv/bin/python benchmarks/bench_psds.py --clips 500 --engine reference   # sed_scores_eval
    .venv/bin/python benchmarks/bench_psds.py --clips 2000 --metrics psds1,psds2,pauroc --jobs 2
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sedlib import evaluate  # noqa: E402
from sedlib.evaluate.config import PAUROC, PSDS1, PSDS2  # noqa: E402


def class_names(k: int) -> list[str]:
    try:
        from sedlib.data.labels import audioset_eval_protocol_classes
        names = list(audioset_eval_protocol_classes())
        if len(names) >= k:
            return names[:k]
    except Exception:  # noqa: BLE001 - any name list will do
        pass
    return [f"class_{i:03d}" for i in range(k)]


def synth_ground_truth(n: int, classes: list[str], events_per_clip: float, seed: int):
    """~``events_per_clip`` non-overlapping-per-class events over ~3 Zipf-distributed classes."""
    rng = np.random.default_rng([seed, 0])
    k = len(classes)
    weights = 1.0 / np.arange(1, k + 1) ** 0.8
    weights /= weights.sum()
    gt, durations = {}, {}
    for i in range(n):
        cid = f"Y{i:07d}"
        d = 10.0 if rng.random() < 0.95 else float(np.round(rng.uniform(5.0, 10.0), 3))
        n_cls = int(min(k, max(1, rng.poisson(2.5))))
        cls = list(rng.choice(k, size=n_cls, replace=False, p=weights))
        forced = list(range(i, k, n))  # every class gets events
        cls = (forced + [c for c in cls if c not in forced])[: max(n_cls, len(forced))]
        events = []
        n_events = max(1, rng.poisson(events_per_clip))
        per_class = np.bincount(rng.integers(0, len(cls), n_events), minlength=len(cls))
        for c, m in zip(cls, per_class):
            t = 0.0
            for _ in range(max(1, int(m))):
                onset = t + rng.uniform(0.0, 2.0)
                offset = onset + rng.uniform(0.2, 3.0)
                if offset > d:
                    break
                events.append((round(onset, 3), round(offset, 3), classes[c]))
                t = offset + 0.1
            if not any(e[2] == classes[c] for e in events):
                events.append((0.0, round(min(d, 1.0), 3), classes[c]))
        gt[cid] = events
        durations[cid] = d
    return gt, durations


class SyntheticScores(Mapping):
    """Per-clip logits made on access: class bias + smooth noise + bumps at the events (+ false alarms).

    Noise comes from a small bank of random matrices, rolled in time and offset per (clip, class)
    so values rarely repeat across clips; this keeps generation at well under 1 ms per clip.
    """

    def __init__(self, gt, durations, classes, frames: int, seed: int, median: int = 0):
        self.gt, self.durations, self.classes = gt, durations, classes
        self.index = {c: i for i, c in enumerate(classes)}
        self.frames, self.seed, self.median = frames, seed, median
        rng = np.random.default_rng([seed, 1])
        k, t = len(classes), frames
        self.bias = rng.uniform(-6.0, -3.0, k)
        slow = rng.standard_normal((8, t // 5 + 1, k)).repeat(5, axis=1)[:, :t]  # (8, T, K)
        self.bank = 1.2 * slow + 0.4 * rng.standard_normal((8, t, k))
        self.columns = pd.Index(["onset", "offset", *classes])
        self.keys = sorted(gt)
        self.calls = 0

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self):
        return iter(self.keys)

    def __getitem__(self, cid: str):
        i = int(cid[1:])
        self.calls += 1
        rng = np.random.default_rng([self.seed, 2, i])
        k, t = len(self.classes), self.frames
        stamps = evaluate.frame_timestamps(t, 0.04, self.durations[cid])
        n = len(stamps) - 1
        out = np.empty((n, k + 2))  # (T', 2 + K): the DataFrame's own buffer
        out[:, 0], out[:, 1] = stamps[:-1], stamps[1:]
        x = out[:, 2:]  # (T', K)
        np.add(np.roll(self.bank[rng.integers(8)], rng.integers(t), axis=0)[:n],
               self.bias + rng.uniform(-1.0, 1.0, k), out=x)
        for onset, offset, label in self.gt[cid]:
            gain = 6.0 if rng.random() > 0.2 else 2.0  # some events are hard
            x[int(onset * 25):int(np.ceil(offset * 25)), self.index[label]] += gain
        for c in rng.integers(0, k, 3):  # false alarms
            start = int(rng.integers(0, max(1, n - 10)))
            x[start:start + int(rng.integers(3, 30)), c] += 4.0
        if self.median:
            x[:] = evaluate.median_filter(x.T, self.median).T
        return pd.DataFrame(out, columns=self.columns, copy=False)


class PssSampler:
    """Peak proportional set size (MB) of this process and its children, sampled every 250 ms.

    Unlike the sum of peak RSS, PSS counts memory shared by forked workers once."""

    def __init__(self):
        import threading

        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _pss_kb(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _tree(self) -> list[int]:
        import os

        pids, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    todo += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
            except OSError:
                pass
        return pids

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, sum(self._pss_kb(p) for p in self._tree()) / 1024)


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=16935)
    ap.add_argument("--classes", type=int, default=407)
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--events-per-clip", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--median-filter", type=int, default=0, help="filter scores (size) while generating")
    ap.add_argument("--metrics", default="psds1", help="comma list of psds1, psds2, pauroc")
    ap.add_argument("--engine", choices=("fast", "reference"), default="fast")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--prepass", choices=("auto", "full", "partial"), default="full",
                    help="full: read every clip twice (cheap here: scores are generated); partial: "
                         "what lazily read score directories get by default")
    ap.add_argument("--in-memory", action="store_true",
                    help="materialise all score DataFrames first (a dict; reference engine always does)")
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python/numpy peak (slower)")
    args = ap.parse_args()
    metrics = set(args.metrics.split(","))

    classes = class_names(args.classes)
    t0 = time.perf_counter()
    gt, durations = synth_ground_truth(args.clips, classes, args.events_per_clip, args.seed)
    scores = SyntheticScores(gt, durations, classes, args.frames, args.seed, args.median_filter)
    n_events = sum(len(v) for v in gt.values())
    print(f"ground truth: {args.clips} clips, {len(classes)} classes, {n_events} events, "
          f"{sum(durations.values()) / 3600:.1f} h ({time.perf_counter() - t0:.1f} s)", flush=True)

    scores[next(iter(scores))]  # the first call pays for lazy imports
    t0 = time.perf_counter()
    for cid in list(scores)[: min(len(scores), 500)]:
        scores[cid]
    gen_per_clip = (time.perf_counter() - t0) / min(len(scores), 500)
    print(f"score generation: {gen_per_clip * 1e3:.2f} ms/clip (subtracted below for each clip "
          "generated during the evaluation)", flush=True)
    if args.in_memory or args.engine == "reference":
        t0 = time.perf_counter()
        scores = {cid: scores[cid] for cid in scores}
        gen_per_clip = 0.0
        print(f"materialised {len(scores)} DataFrames in {time.perf_counter() - t0:.1f} s; "
              f"peak RSS now {peak_rss_mb()[0]:.0f} MB", flush=True)

    calls_before = getattr(scores, "calls", 0)
    if args.tracemalloc:
        tracemalloc.start()
    t0 = time.perf_counter()
    with PssSampler() as pss:
        report = evaluate.psds_report(
            scores, gt, durations, psds1=PSDS1,
            psds2=PSDS2 if "psds2" in metrics else None,
            pauroc=PAUROC if "pauroc" in metrics else None,
            num_jobs=args.jobs, engine=args.engine, prepass=args.prepass,
        )
    elapsed = time.perf_counter() - t0
    generated = getattr(scores, "calls", 0) - calls_before
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if args.tracemalloc else None
    own, children = peak_rss_mb()
    summary = {
        "clips": args.clips, "classes": len(classes), "frames": args.frames, "engine": args.engine,
        "jobs": args.jobs, "prepass": args.prepass, "metrics": sorted(metrics), "seconds": round(elapsed, 2),
        "scores_generated": generated,
        "seconds_without_generation": round(elapsed - gen_per_clip * generated, 2),
        "peak_rss_mb": round(own), "peak_rss_children_mb": round(children),
        "peak_pss_total_mb": round(pss.peak),
        "tracemalloc_peak_mb": None if traced is None else round(traced),
        **{k: report[k] for k in ("psds1", "psds1_macro", "psds2", "pauroc")},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

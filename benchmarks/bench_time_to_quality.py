"""Time to quality: how long a study student trains on 2 cores before doubling its budget gains
less than 1 PSDS1-macro point, per recipe.

Each point of a curve is its own run (its own cosine schedule over its budget, as a study run at
that budget would be), trained on the study's training data (context2 world, annotation noise)
and scored on validation clips of 10 s (``--eval-seconds``; never the eval clips: budgets are chosen here). Runs are
cached in ``--runs`` (one folder each, ``result_<eval length>s.json`` last), so the benchmark resumes. Two runs
go side by side (``--parallel 2``, one thread each), as the study trains them; the time reported
is each run's own wall time (model build, clip reads, steps, BatchNorm recalibration; not the
one-time clip-cache build nor the scoring)::

    .venv/bin/python benchmarks/bench_time_to_quality.py --students fmn02 fmn02+TF:64 \\
        --recipes old new --budgets 128 256 512 1024

Recipes (``RECIPES``): ``old`` is the context-world quick recipe (the context backbones, batch 8,
LR 3e-3, 8 warmup steps); ``new`` starts from the context2 backbones at batch 16; the others
change one lever of ``new`` each.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = "synth:8192:0:world=context2,miss=0.1,confuse=0.2,jitter=50"
#: recipe -> (backbone init with {backbone}, batch size, max LR, sequence-model/head LR, warmup)
_CONTEXT = "data/checkpoints/context/{backbone}_synth.safetensors"
_CONTEXT2 = "data/checkpoints/context2/{backbone}_synth.safetensors"
RECIPES: dict[str, dict] = {
    "old": dict(init=_CONTEXT, batch=8, lr=3e-3, seq_lr=None, warmup=8),
    "new": dict(init=_CONTEXT2, batch=16, lr=3e-3, seq_lr=None, warmup=8),
    "new-batch32": dict(init=_CONTEXT2, batch=32, lr=3e-3, seq_lr=None, warmup=8),
    "new-seqlr1e-2": dict(init=_CONTEXT2, batch=16, lr=3e-3, seq_lr=1e-2, warmup=8),
    # the study's recipe (seq LR 1e-2) with one more lever each: a long warmup (64 steps, a
    # quarter of B) or a backbone LR of 1e-3 (fresh heads move less of the pre-trained backbone)
    "seqlr-warmup64": dict(init=_CONTEXT2, batch=16, lr=3e-3, seq_lr=1e-2, warmup=64),
    "seqlr-bb1e-3": dict(init=_CONTEXT2, batch=16, lr=1e-3, seq_lr=1e-2, warmup=8),
}


def run_one(student: str, recipe: str, steps: int, runs: str, validation: str, train_spec: str = TRAIN,
            eval_seconds: float = 10.0) -> dict:
    """Train ``student`` with ``recipe`` for ``steps`` steps (cached) and score it on validation
    clips of ``eval_seconds`` (each length's score cached beside the run)."""
    import torch

    from sedlib.config import AudioConfig
    from sedlib.study.training import open_data
    from sedlib.train.config import PRESETS
    from sedlib.train.data import validate
    from sedlib.train.fitting import fit

    torch.set_num_threads(1)
    folder = Path(runs) / f"{student.replace(':', '-')}_{recipe}_{steps}"
    done = folder / f"result_{eval_seconds:g}s.json"
    if done.is_file():
        return json.loads(done.read_text())
    r = RECIPES[recipe]
    audio = AudioConfig(clip_seconds=4.0)
    train = open_data(train_spec, "train", audio)
    cfg = replace(PRESETS["quick"], batch_size=r["batch"], num_workers=0, max_lr=r["lr"], seq_lr=r["seq_lr"],
                  lr_decay=0.9, warmup_steps=min(r["warmup"], steps - 1), wavmix_p=0.0, mixup_p=0.0,
                  pretrained="scratch", seed=0)
    init = str(ROOT / r["init"].replace("{backbone}", student.split("+")[0]))
    trained = (folder / "run" / "model.safetensors").is_file()
    t0 = time.perf_counter()
    result = fit(student, train, out_dir=folder / "run", train_config=cfg, audio_config=audio,
                 max_steps=steps, init=init, recalibrate_bn=64, progress=False, resume=True)
    seconds = time.perf_counter() - t0
    if trained:  # scored at another length before: its training time stands
        seconds = next(json.loads(f.read_text())["train_seconds"] for f in folder.glob("result_*s.json"))
    eval_audio = AudioConfig(clip_seconds=eval_seconds)
    m = validate(result.model, open_data(validation, "validation", eval_audio), audio_config=eval_audio)
    out = {"student": student, "recipe": recipe, "steps": steps, "batch": r["batch"], "eval_seconds": eval_seconds,
           "clips": steps * r["batch"], "train_seconds": seconds, "psds1_macro": 100 * m["psds1_macro"],
           "psds1": 100 * m["psds1"], "per_class": {c: 100 * v for c, v in m["psds1_per_class"].items()}}
    tmp = done.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, done)
    return out


def plateau(points: list[dict]) -> dict | None:
    """The first point whose doubled budget gains < 1 PSDS1-macro point (None: not reached)."""
    by_steps = {p["steps"]: p for p in points}
    for p in sorted(points, key=lambda p: p["steps"]):
        double = by_steps.get(2 * p["steps"])
        if double is not None and double["psds1_macro"] - p["psds1_macro"] < 1.0:
            return p
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", nargs="+", default=["fmn02", "fmn02+TF:64"])
    parser.add_argument("--recipes", nargs="+", default=["old", "new"], choices=list(RECIPES))
    parser.add_argument("--budgets", nargs="+", type=int, default=[128, 256, 512, 1024], help="optimiser steps")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "time_to_quality"))
    parser.add_argument("--val-clips", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--train", default=TRAIN, help="training data spec")
    parser.add_argument("--eval-seconds", type=float, default=10.0, help="validation clip length (10 s)")
    args = parser.parse_args()
    import multiprocessing

    validation = f"synth:{args.val_clips}:0:world=context2"
    from sedlib.config import AudioConfig
    from sedlib.study.training import open_data

    open_data(args.train, "train", AudioConfig(clip_seconds=4.0))  # build the clip caches once, untimed
    open_data(validation, "validation", AudioConfig(clip_seconds=args.eval_seconds))
    jobs = [(s, r, b) for s in args.students for r in args.recipes for b in sorted(args.budgets, reverse=True)]
    with ProcessPoolExecutor(args.parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
        points = list(pool.map(run_one, *zip(*jobs), [args.runs] * len(jobs), [validation] * len(jobs),
                               [args.train] * len(jobs), [args.eval_seconds] * len(jobs)))
    print("| student | recipe | steps x batch | clips | train s | PSDS1 macro | gain of 2x |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for s in args.students:
        for r in args.recipes:
            curve = sorted((p for p in points if p["student"] == s and p["recipe"] == r), key=lambda p: p["steps"])
            by_steps = {p["steps"]: p for p in curve}
            for p in curve:
                double = by_steps.get(2 * p["steps"])
                gain = f"{double['psds1_macro'] - p['psds1_macro']:+.1f}" if double else ""
                print(f"| {s} | {r} | {p['steps']} x {p['batch']} | {p['clips']} | {p['train_seconds']:.0f} | "
                      f"{p['psds1_macro']:.1f} | {gain} |")
            hit = plateau(curve)
            print(f"| {s} | {r} | plateau | | {hit['train_seconds']:.0f} s at {hit['steps']} steps | | |" if hit
                  else f"| {s} | {r} | no plateau within {max(args.budgets)} steps | | | | |")


if __name__ == "__main__":
    main()

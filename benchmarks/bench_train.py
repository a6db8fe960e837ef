"""Training throughput on a CPU: a hand-written loop, the reference's step and ``sedlib train``.

    .venv/bin/python benchmarks/bench_train.py [--reference DIR] [--models fmn02+TF:64 ...]
        [--steps 64] [--batch 8] [--clip-seconds 4] [--threads 2] [--workers 1]

Per model, side by side in one run (the quick profile's shape: batch 8, 4 s clips of the
embedded set, frame shift on, no mixup or wavmix, Adam with layer-wise LR decay, fp32):

* **hand-written**: one process that synthesises each clip when it needs it, computes the
  log-mel, runs forward, BCE, backward, Adam (what one would write without sedlib).
* **reference step**: ``benchmarks/reference_step.py`` on a checkout of the reference code
  (``--reference DIR``, kept outside this repository): its training step on a fixed batch, no
  data loading (median step).
* **sedlib cold / warm**: ``sedlib train`` with an empty clip cache (the run builds it) and
  again with the cache it left (what the study does: many runs, one data set); the same
  command with ``--no-clip-cache`` (synthesis in the DataLoader worker).

Whole processes are timed (start-up, model build, data, every step); ``steps * batch`` clips
divided by the wall time is the clips/s. ``loop`` is sedlib's own figure for the steps alone
(``metrics.jsonl``). The load average is printed before and after: these machines are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ["fmn02+TF:64", "fmn04+TF:104", "fmn10+TF:256"]


def handwritten(model_name: str, steps: int, batch: int, seconds: float, threads: int) -> None:
    """The hand-written loop (run in its own process by :func:`main`)."""
    import torch
    import torch.nn.functional as F

    from sedlib.audio.frontend import MelFrontend
    from sedlib.config import AudioConfig
    from sedlib.data.labels import encode_events
    from sedlib.data.synth.soundscape import SynthConfig, synth_vocabulary, synthesize_clip
    from sedlib.registry import create_model

    torch.set_num_threads(threads)
    audio, vocab = AudioConfig(clip_seconds=seconds), synth_vocabulary()
    synth = SynthConfig(synth_clip_seconds=seconds)
    frontend = MelFrontend(audio).train()
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=len(vocab)).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        waves, targets = [], []
        for i in range(step * batch, (step + 1) * batch):
            wave, events = synthesize_clip(synth, "train", i)
            waves.append(torch.from_numpy(wave))
            targets.append(torch.from_numpy(encode_events(events, vocab, audio.label_frames,
                                                          audio.frames_per_second)))
        strong, _ = model(frontend(torch.stack(waves)))  # (B, K, T)
        F.binary_cross_entropy_with_logits(strong, torch.stack(targets)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall


def _sedlib(model: str, args, cache: Path, tmp: Path, tag: str, env: dict[str, str],
            extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """(whole-process wall s, loop clips/s) of one ``sedlib train`` run."""
    cfg = tmp / "audio.json"
    cfg.write_text(json.dumps({"audio": {"clip_seconds": args.clip_seconds},
                               "train": {"wavmix_p": 0.0, "mixup_p": 0.0, "lr_decay": 0.9}}))
    out = tmp / f"run-{tag}"
    cmd = [sys.executable, "-m", "sedlib", "train", "--model", model,
           "--data", f"synth:{args.steps * args.batch}", "--out", str(out), "--preset", "quick",
           "--config", str(cfg), "--steps", str(args.steps), "--batch-size", str(args.batch),
           "--warmup", "8", "--lr", "0.003", "--pretrained", "scratch",
           "--workers", str(args.workers), "--threads", str(args.threads), "--no-progress",
           "--checkpoint-every", str(10**6), "--log-every", str(args.steps), *extra]
    wall = _timed(cmd, {**env, "SEDLIB_CACHE": str(cache)})
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return wall, next(r["clips_per_s"] for r in rows if "clips_per_s" in r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", help="EfficientSED checkout (outside the repo); "
                    "without it the reference column is left out")
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--clip-seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="sedlib's DataLoader workers")
    ap.add_argument("--run-handwritten", metavar="MODEL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run_handwritten:
        return handwritten(args.run_handwritten, args.steps, args.batch, args.clip_seconds,
                           args.threads)
    import torch

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    clips = args.steps * args.batch
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {args.threads} threads, "
          f"sedlib workers {args.workers}; {args.steps} steps x {args.batch} clips of "
          f"{args.clip_seconds:g} s; load average {os.getloadavg()[0]:.2f} at start")
    head = (f"{'model':<14}{'hand':>7}{'ref step':>9}{'no cache':>9}{'cold':>7}{'warm':>7}"
            f"{'loop':>7}{'warm/hand':>10}{'loop/hand':>10}{'loop/ref':>9}")
    print("clips/s (whole process; 'ref step' and 'loop': steps alone)\n" + head)
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            hand = clips / _timed([sys.executable, __file__, "--run-handwritten", model,
                                   "--steps", str(args.steps), "--batch", str(args.batch),
                                   "--clip-seconds", str(args.clip_seconds),
                                   "--threads", str(args.threads)], env)
            ref = float("nan")
            if args.reference:
                proc = subprocess.run(
                    [sys.executable, str(ROOT / "benchmarks" / "reference_step.py"),
                     "--reference", args.reference, "--model", model, "--batch", str(args.batch),
                     "--clip-seconds", str(args.clip_seconds), "--threads", str(args.threads)],
                    env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"reference step failed:\n{proc.stderr[-3000:]}")
                ref = json.loads(proc.stdout.strip().splitlines()[-1])["clips_per_s"]
            cache = tmp / "cache"
            plain, _ = _sedlib(model, args, cache, tmp, "plain", env, ("--no-clip-cache",))
            cold, _ = _sedlib(model, args, cache, tmp, "cold", env)
            warm, loop = _sedlib(model, args, cache, tmp, "warm", env)
        rates = [hand, ref, clips / plain, clips / cold, clips / warm, loop]
        print(f"{model:<14}" + "".join(f"{r:>{w}.1f}" for r, w in zip(rates, (7, 9, 9, 7, 7, 7)))
              + f"{rates[4] / hand:>9.2f}x{loop / hand:>9.2f}x{loop / ref:>8.2f}x", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()

"""int8 (ONNX Runtime static quantization) against the fp32 export of the same checkpoint:
speed side by side, the largest logit deviation, and the PSDS change with its interval.

    .venv/bin/python benchmarks/bench_int8.py [--checkpoint FILE] [--eval synth:1000:0:world=context]
        [--clip-seconds 4] [--batch 16] [--threads 2] [--runs 5]

The checkpoint (default: the shipped context-world fmn04+BiGRU:104 teacher) is exported
(``export_onnx``, checked to 1e-4) and quantized (``quantize_int8``, 64 calibration clips of
``synth:64:7:world=context``, train split: not the eval clips). Speed: model only, random
log-mel of ``--batch`` 10 s clips, the two sessions timed round by round in alternating order
(median clips/s). Accuracy: both files score the eval set through ``sedlib.train.data.validate``
(frontend in PyTorch, the same clips); the PSDS1-macro change is paired by eval fold (5 folds:
the eval-clip part of the interval; one model, no seed part).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="data/checkpoints/context/fmn04+bigru-104_teacher.safetensors")
    ap.add_argument("--eval", default="synth:1000:0:world=context")
    ap.add_argument("--clip-seconds", type=float, default=4.0, help="eval clip length (the checkpoint's)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    from sedlib.config import AudioConfig
    from sedlib.deploy.onnx_export import export_onnx
    from sedlib.deploy.onnx_runtime import OnnxDetectorModel
    from sedlib.deploy.quantize import quantize_int8
    from sedlib.detect.detector import load_detector_model
    from sedlib.study.intervals import fold_variance, mean_interval
    from sedlib.study.training import open_data
    from sedlib.train.data import validate

    print(f"load average {_load()}")
    model, vocab = load_detector_model(None, args.checkpoint)
    tmp = tempfile.mkdtemp(prefix="bench-int8-")
    fp32, int8 = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "int8.onnx")
    export_onnx(model, fp32, classes=list(vocab.names))
    quantize_int8(fp32, int8)
    sessions = {"fp32": OnnxDetectorModel(fp32, threads=args.threads),
                "int8": OnnxDetectorModel(int8, threads=args.threads)}
    x = torch.randn(args.batch, 1, 128, 1000, generator=torch.Generator().manual_seed(0))
    times = {k: [] for k in sessions}
    for s in sessions.values():
        s(x)  # warm-up
    for r in range(args.runs):
        for k in (list(sessions) if r % 2 == 0 else list(reversed(sessions))):
            t0 = time.perf_counter()
            sessions[k](x)
            times[k].append(time.perf_counter() - t0)
    speed = {k: args.batch / statistics.median(v) for k, v in times.items()}
    print(f"{model.name}: 10 s clips/s (batch {args.batch}, {args.threads} threads, median of {args.runs}): "
          f"fp32 {speed['fp32']:.1f}, int8 {speed['int8']:.1f} ({speed['int8'] / speed['fp32']:.2f}x)")

    audio = AudioConfig(clip_seconds=args.clip_seconds)
    data = open_data(args.eval, "eval", audio)
    metrics = {k: validate(s, data, audio_config=audio, batch_size=args.batch, folds=5) for k, s in sessions.items()}
    mel = torch.stack([torch.as_tensor(data[i]["waveform"]) for i in range(args.batch)])
    from sedlib.audio.frontend import MelFrontend

    mel = MelFrontend(audio).eval()(mel)
    dev = max(float((a - b).abs().max()) for a, b in zip(sessions["fp32"](mel), sessions["int8"](mel)))
    folds = [100 * (b - a) for a, b in zip(metrics["fp32"]["psds1_macro_folds"], metrics["int8"]["psds1_macro_folds"])]
    change = mean_interval([100 * (metrics["int8"]["psds1_macro"] - metrics["fp32"]["psds1_macro"])],
                           [fold_variance(folds)])
    print(f"PSDS1 macro on {len(data)} clips of {args.eval}: fp32 {100 * metrics['fp32']['psds1_macro']:.2f}, "
          f"int8 {100 * metrics['int8']['psds1_macro']:.2f}; change {change.mean:+.2f} "
          f"[{change.low:+.2f}, {change.high:+.2f}] (95 %, eval folds); max |logit diff| {dev:.3f} "
          f"on {args.batch} eval clips")
    print(f"load average {_load()}")


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()

"""``sedlib export``: a detector as an ONNX file, checked in ONNX Runtime before it is written.

    sedlib export --checkpoint data/checkpoints/context/fmn04+bigru-104_teacher.safetensors --out det.onnx
    sedlib export --model fmn10 --out fmn10.onnx                  # its released AudioSet weights
    sedlib detect --checkpoint det.onnx recording.wav             # runs in ONNX Runtime

The file takes log-mel ``mel`` (B, 1, 128, T) (with ``--with-frontend``: the 16 kHz waveform
``waveform`` (B, N)) and returns ``strong`` (B, K, T/4) and ``weak`` (B, K) logits; it names its
model and classes in its metadata (:mod:`sedlib.deploy`).
"""

from __future__ import annotations

import argparse

HELP = "export a detector to ONNX (checked against PyTorch in ONNX Runtime)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model name (default: the checkpoint's)")
    parser.add_argument("--checkpoint", default=None,
                        help="weights: a .safetensors/.pt file or a release name (default: the "
                             "model's released weights)")
    parser.add_argument("--classes", default=None,
                        help="class names if the checkpoint does not carry them (audioset, synth, a file)")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    parser.add_argument("--int8", metavar="FILE", default=None,
                        help="also write an int8 copy (static quantization, not exact; see "
                             "benchmarks/bench_int8.py for what it costs)")
    parser.add_argument("--calibration", default="synth:64:7:world=context",
                        help="int8 calibration clips, a --data spec (default synth:64:7:world=context)")
    parser.add_argument("--with-frontend", action="store_true",
                        help="the graph takes the 16 kHz waveform (B, N) and computes the log-mel itself")


def run(args: argparse.Namespace) -> int:
    from sedlib.config import AudioConfig
    from sedlib.deploy.onnx_export import FRONTEND_TOLERANCE, OPSET, TOLERANCE, export_onnx
    from sedlib.detect.detector import load_detector_model

    model, vocab = load_detector_model(args.model, args.checkpoint, args.classes)
    audio = AudioConfig()
    deviation = export_onnx(model, args.out, classes=list(vocab.names), sample_rate=audio.sample_rate,
                            frame_seconds=audio.frame_seconds, opset=args.opset or OPSET,
                            with_frontend=args.with_frontend)
    checks = ", ".join(f"{d:.1e} at {f} frames" for f, d in deviation.items())
    if args.with_frontend:
        checks += " (waveform in, against MelFrontend + the model)"
    print(f"{args.out}: {model.name}, {len(vocab)} classes; ONNX Runtime vs PyTorch max |diff| {checks} "
          f"(allowed: {FRONTEND_TOLERANCE if args.with_frontend else TOLERANCE:g} x the logits' largest "
          f"magnitude, at least 1)")
    if args.int8:
        from sedlib.deploy.quantize import CALIBRATION_CLIPS, quantize_int8

        quantize_int8(args.out, args.int8, calibration=args.calibration, clips=CALIBRATION_CLIPS)
        print(f"{args.int8}: int8 copy, activations calibrated on {CALIBRATION_CLIPS} clips of "
              f"{args.calibration} (not exact)")
    return 0

"""CPU inference throughput (clips/s) of SED models, plain vs :func:`optimize_for_inference`.

    .venv/bin/python benchmarks/bench_inference.py [--models fmn10 fmn10+TF:256] [--batch 16]
        [--frames 1000] [--runs 5] [--backends plain jit onnxruntime openvino int8] [--threads N]

Input: random log-mel (batch, 1, 128, frames), 10 s clips by default (1000 frames), fp32,
``torch.inference_mode``. Random weights with BatchNorm statistics set on noise
(:func:`sedlib.models.random_init.with_live_activations`): a freshly initialised backbone gives
the same logits for every input, which would make the max|diff| column vacuous.

Per model and backend: one warm-up call, then ``--runs`` timed calls; reported are the median
and the best run (on a shared machine the best run is the one least disturbed by other
processes), and the median over rounds of the per-round speedup. Backends run interleaved round
by round (the order reversed every other round) so that load from other processes hits them
alike, with a 0.2 s pause before each call (ONNX Runtime's worker threads spin for a while after
a run and slowed whichever backend came next: bimodal batch-1 runs); the load average is printed
before and after. Also prints the max |difference| of each backend's outputs to the plain
model. Models whose sequence-model module is missing are skipped.

``bf16`` (not a default) runs the plain model under CPU autocast to bfloat16: faster on CPUs
with AVX512-BF16 / AMX, and NOT exact; its max|diff| column is the bf16 deviation (reported
separately from the exact fp32 backends). ``onnxruntime`` exports the model with
:func:`sedlib.deploy.onnx_export.export_onnx` (checked to 1e-4 in ONNX Runtime) and runs it
with as many intra-op threads as torch uses; a model that does not export is reported with the
reason and timed without that backend. ``openvino`` runs the same file in OpenVINO (f32,
latency hint, the same thread count). ``int8`` (not exact; reported apart) is that file
statically quantized by :func:`sedlib.deploy.quantize.quantize_int8` (calibrated on 64 real
embedded clips) in ONNX Runtime; its max|diff| on random weights and noise input says nothing
about accuracy (``benchmarks/bench_int8.py`` measures that on a trained checkpoint).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time

import torch

from sedlib.deploy.onnx_export import ExportError, export_onnx
from sedlib.models.fuse import optimize_for_inference
from sedlib.models.names import SEQ_MODELS, parse_name
from sedlib.models.random_init import with_live_activations
from sedlib.registry import create_model

DEFAULT_MODELS = ["fmn10", "fmn20", "fmn10+TF:256", "fmn10+HYBRID:128", "fmn10+BiGRU:256"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["plain", "eager", "jit"],
                        choices=["plain", "eager", "jit", "compile", "bf16", "onnxruntime", "openvino", "int8"],
                        help="bf16: the plain model under CPU autocast to bfloat16 (not exact: "
                             "its max|diff| is the bf16 deviation)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"input ({args.batch}, 1, 128, {args.frames}) fp32, {args.runs} timed runs after 1 warm-up, "
          f"load average {_load()}")
    print(f"{'model':<20}{'backend':<12}{'median':>8}{'speedup':>9}{'best':>8}{'speedup':>9}"
          f"{'per-round':>10}{'max|diff|':>11}  runs (clips/s)")

    torch.manual_seed(0)
    x = torch.randn(args.batch, 1, 128, args.frames)
    for name in args.models:
        seq = parse_name(name).seq_model
        if seq is not None and importlib.util.find_spec(SEQ_MODELS[seq]) is None:
            print(f"{name:<20}skipped: {SEQ_MODELS[seq]} is missing")
            continue
        model = with_live_activations(create_model(name))  # else the logits are one constant
        variants = {}
        for b in args.backends:
            try:
                variants[b] = (model if b == "plain" else _bf16(model) if b == "bf16" else
                               _engine(model, b) if b in ("onnxruntime", "openvino", "int8") else
                               optimize_for_inference(model, backend=b))
            except ExportError as err:
                print(f"{name:<20}{b:<12}skipped: {err}")
        times: dict[str, list[float]] = {b: [] for b in variants}
        with torch.inference_mode():
            reference = model(x)
            diffs = {b: max((o - r).abs().max().item() for o, r in zip(f(x), reference))
                     for b, f in variants.items()}  # doubles as the warm-up call
            for r in range(args.runs):
                for b in (list(variants) if r % 2 == 0 else list(reversed(variants))):
                    f = variants[b]
                    time.sleep(0.2)  # let the previous engine's spinning worker threads go idle
                    t0 = time.perf_counter()
                    f(x)
                    times[b].append(time.perf_counter() - t0)
        base = times[args.backends[0]]
        for b, ts in times.items():
            med, best = statistics.median(base) / statistics.median(ts), min(base) / min(ts)
            per_round = statistics.median(t_base / t for t_base, t in zip(base, ts))
            runs = " ".join(f"{args.batch / t:.1f}" for t in ts)
            print(f"{name:<20}{b:<12}{args.batch / statistics.median(ts):>8.2f}{med:>8.2f}x"
                  f"{args.batch / min(ts):>8.2f}{best:>8.2f}x{per_round:>9.2f}x{diffs[b]:>11.1e}  {runs}")
    print(f"load average {_load()}")


def _bf16(model):
    """The plain model under CPU autocast to bfloat16 (oneDNN bf16 kernels on AVX512-BF16 /
    AMX CPUs; elsewhere emulated and slow); outputs returned in float32."""
    def run(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return tuple(o.float() for o in model(x))
    return run


_EXPORTED: dict[int, str] = {}


def _engine(model, backend):
    """``model`` exported once to a temporary ONNX file and run by ONNX Runtime, OpenVINO or
    (int8) ONNX Runtime on its quantized copy, with torch's thread count."""
    import tempfile

    from sedlib.deploy.backends import open_exported

    if id(model) not in _EXPORTED:
        path = os.path.join(tempfile.mkdtemp(prefix="bench-onnx-"), "model.onnx")
        export_onnx(model, path, classes=[str(i) for i in range(model.num_classes)])
        _EXPORTED[id(model)] = path
    path = _EXPORTED[id(model)]
    if backend == "int8":
        from sedlib.deploy.quantize import quantize_int8

        path = quantize_int8(path, path.replace(".onnx", "-int8.onnx"))
        backend = "onnxruntime"
    return open_exported(path, backend, threads=torch.get_num_threads())


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()

"""Streaming detection (``sedlib stream``): latency per window, real-time factor and memory over a
long stream, for the torch and ONNX Runtime backends side by side.

    .venv/bin/python benchmarks/bench_stream.py [--models fmn10 fmn10+TF:256] [--minutes 30]
        [--hop 1.0] [--threads 2] [--backends torch onnxruntime]

One process feeds the same audio (the embedded context-world soundscapes, 60 s cycled) in
0.1 s chunks to one :class:`~sedlib.detect.stream.StreamDetector` per model and backend, taking
turns chunk by chunk (the order reversed every other chunk) so that load from other processes
hits them alike. Audio is pushed as fast as it is processed, not at the wall-clock rate;
latency per window is the time from the arrival of the chunk that completes a window to the
event records it decides (the compute latency; the decision itself waits W to W + H for the
windows that average a frame). Real-time factor = compute seconds / audio seconds. The process's
resident memory (VmRSS) is sampled every 5 minutes of audio: flat means constant memory.
Random weights (no download): speed does not depend on them. 447 AudioSet classes.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _audio(seconds: int = 60) -> np.ndarray:
    from sedlib.data.synth.soundscape import SynthConfig, synthesize_clip

    cfg = SynthConfig(synth_seed=11, synth_world="context")
    return np.concatenate([synthesize_clip(cfg, "eval", i)[0] for i in range(seconds // 10)]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fmn10", "fmn10+TF:256"])
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"],
                        choices=["torch", "onnxruntime", "openvino"])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--hop", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from sedlib.data.labels import audioset_strong_classes
    from sedlib.deploy.backends import runtime_model
    from sedlib.detect.detector import Detector
    from sedlib.detect.stream import StreamDetector
    from sedlib.models.random_init import with_live_activations
    from sedlib.registry import create_model

    vocab = audioset_strong_classes()
    audio = _audio()
    streams = {}
    for name in args.models:
        torch.manual_seed(0)
        model = with_live_activations(create_model(name, num_classes=len(vocab)))
        for backend in args.backends:
            engine = runtime_model(model, backend, vocab.names, threads=args.threads,
                                   cache_dir=os.path.join(os.environ.get("TMPDIR", "/tmp"), "bench-stream"))
            streams[(name, backend)] = StreamDetector(Detector(engine, vocab, hop_seconds=args.hop, batch_size=1))
    print(f"torch {torch.__version__}, {args.threads} threads, hop {args.hop:g} s, window 10 s, "
          f"{args.minutes:g} min of audio in 0.1 s chunks, load average {_load()}", flush=True)
    chunk = 1600
    total = int(args.minutes * 60 * 16_000)
    rss = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for k, start in enumerate(range(0, total, chunk)):
            piece = audio[np.arange(start, min(start + chunk, total)) % len(audio)]
            order = list(streams.values()) if k % 2 == 0 else list(reversed(streams.values()))
            for stream in order:
                stream.push(piece)
            if start % (5 * 60 * 16_000) < chunk:
                rss.append((start / 16_000 / 60, _rss_mib()))
        for stream in streams.values():
            stream.finish()
    rss.append((total / 16_000 / 60, _rss_mib()))
    wall = time.perf_counter() - t0
    print(f"{'model':<16}{'backend':<13}{'windows':>8}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}{'RTF':>8}")
    for (name, backend), s in streams.items():
        lat = np.array(s.latencies[1:]) * 1e3  # the first window includes warm-up
        print(f"{name:<16}{backend:<13}{len(s.latencies):>8}{np.median(lat):>8.1f}{np.percentile(lat, 95):>8.1f}"
              f"{lat.max():>8.1f}{s.compute_seconds / s.seconds:>8.4f}")
    print("process RSS (MiB) at minute: " + ", ".join(f"{m:.0f}: {r:.0f}" for m, r in rss))
    base = rss[1] if len(rss) > 2 else rss[0]  # after the first windows have warmed the engines up
    print(f"RSS growth from minute {base[0]:.0f} to the end: {rss[-1][1] - base[1]:+.1f} MiB; wall {wall:.0f} s; "
          f"load average {_load()}")


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()

"""Time to synthesise embedded clips in one process (the training loop does this on the fly).

    .venv/bin/python benchmarks/bench_synth.py [--clips 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

from sedlib.data.synth.soundscape import SynthConfig, synth_events, synthesize_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = SynthConfig(synth_seed=args.seed)
    synthesize_clip(config, "train", 0)  # warm-up (imports, FFT plans)

    t0 = time.perf_counter()
    for index in range(args.clips):
        synthesize_clip(config, "train", index)
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    for index in range(args.clips):
        synth_events(config, "train", index)
    labels = time.perf_counter() - t0
    print(f"synthesize_clip: {args.clips} clips of {config.synth_clip_seconds:g} s in {total:.2f} s "
          f"= {1000 * total / args.clips:.1f} ms per clip "
          f"({args.clips * config.synth_clip_seconds / total:.0f}x real time), single process")
    print(f"synth_events (labels only): {1000 * labels / args.clips:.2f} ms per clip")


if __name__ == "__main__":
    main()

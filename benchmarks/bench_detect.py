"""Real-time factor of ``sedlib detect`` on one CPU thread (issue target: <= 0.02 for
fmn10+TF:256, i.e. 10 minutes of audio in <= 12 s), and peak memory for two file lengths.

    python benchmarks/bench_detect.py [--model fmn10+TF:256] [--minutes 10] [--threads 1]

Weights are random (no download); speed does not depend on them. The audio is the embedded
synthetic set concatenated at 16 kHz. Each length runs in a fresh process so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def _child(model_name: str, minutes: float, threads: int, batch_size: int, optimize: bool) -> None:
    import resource
    import time

    import numpy as np
    import soundfile as sf
    import torch

    torch.set_num_threads(threads)
    from sedlib.data.synth.soundscape import (
        SynthConfig,
        synth_vocabulary,
        synthesize_clip,
    )
    from sedlib.detect.detector import Detector
    from sedlib.evaluate.postprocess import scores_to_events
    from sedlib.registry import create_model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        clips = int(np.ceil(minutes * 6))
        with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as f:
            for i in range(clips):
                f.write(synthesize_clip(SynthConfig(), "eval", i)[0])
        torch.manual_seed(0)
        model = create_model(model_name, num_classes=len(synth_vocabulary())).eval()
        if optimize:
            from sedlib.models.fuse import optimize_for_inference

            model = optimize_for_inference(model)
        det = Detector(model, synth_vocabulary(), batch_size=batch_size)
        det.frame_scores(Path(tmp) / "long.wav")  # warm-up (allocator, oneDNN kernels)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        scores = det.frame_scores(path)
        events = scores_to_events(scores, 0.5, 9)
        seconds = time.perf_counter() - t0
        print(json.dumps({
            "model": model_name, "minutes": minutes, "threads": threads, "batch_size": batch_size,
            "optimized": optimize, "seconds": round(seconds, 2),
            "rtf": round(seconds / (clips * 10), 4), "events": len(events),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "rss_before_mb": round(rss0 / 1024),
        }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="fmn10+TF:256")
    ap.add_argument("--minutes", type=float, nargs="+", default=[10.0, 30.0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--optimize", action="store_true", help="BN folding etc. (sedlib.models.fuse)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.model, args.minutes[0], args.threads, args.batch_size, args.optimize)
        return
    for minutes in args.minutes:
        cmd = [sys.executable, __file__, "--child", "--model", args.model, "--minutes", str(minutes),
               "--threads", str(args.threads), "--batch-size", str(args.batch_size)]
        subprocess.run(cmd + (["--optimize"] if args.optimize else []), check=True)


if __name__ == "__main__":
    main()

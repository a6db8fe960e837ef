"""``sedlib demo``: a short tour of the embedded data (no download, a few seconds on a CPU).

Synthesises a handful of clips, computes the reference log-mel features, and prints what is in
them: a few seconds to check that the installation works, before the study.
"""

from __future__ import annotations

import argparse

HELP = "synthesise a few embedded clips, compute log-mels and print a summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", type=int, default=4, help="number of clips (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from sedlib.audio.frontend import MelFrontend
    from sedlib.config import AudioConfig
    from sedlib.data.synth.soundscape import (
        SynthConfig,
        synth_vocabulary,
        synthesize_clip,
    )
    from sedlib.errors import SedlibError

    if args.clips <= 0:
        raise SedlibError(f"--clips must be positive, got {args.clips}")
    audio_cfg = AudioConfig()
    frontend = MelFrontend(audio_cfg).eval()
    vocab = synth_vocabulary()
    print(f"embedded data set: {len(vocab)} classes: {', '.join(vocab.names)}")
    t0 = time.perf_counter()
    for index in range(args.clips):
        wave, events = synthesize_clip(SynthConfig(synth_seed=args.seed), "train", index)
        with torch.inference_mode():
            mel = frontend(torch.from_numpy(wave)[None])  # (1, 1, 128, 1000)
        labels = ", ".join(f"{e.label} {e.onset:.2f}-{e.offset:.2f}s" for e in events)
        print(f"clip {index}: {wave.shape[0] / audio_cfg.sample_rate:.1f} s -> log-mel "
              f"{tuple(mel.shape)}; {len(events)} events: {labels}")
    print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0

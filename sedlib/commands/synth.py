"""``sedlib synth``: write the embedded synthetic data set to disk in the DESED layout.

``OUT_DIR/audio/*.wav`` (16 kHz mono, 16-bit PCM), ``strong.tsv``, ``weak.tsv`` and
``durations.tsv``. The same ``--seed``, ``--split`` and ``--clips`` give byte-identical files.
"""

from __future__ import annotations

import argparse

from sedlib.commands import positive_int

HELP = "write synthetic soundscapes with strong labels in the DESED layout (no download)"


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output folder (created if missing)")
    parser.add_argument("--clips", type=positive_int, default=100, help="number of clips (100)")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="data seed (0)")
    parser.add_argument("--split", choices=("train", "validation", "eval"), default="train",
                        help="which split's clips to write (train); splits never share clips")
    parser.add_argument("--first-index", type=_non_negative_int, default=0,
                        help="index of the first clip (0); clips are independent of each other")
    parser.add_argument("--world", choices=("basic", "context", "context2"), default="basic",
                        help="basic: 11 classes; context: 13, with ringtone and ticking; context2: "
                             "13, every pattern decidable within its clip (basic)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import time

    from sedlib.data.synth.soundscape import SynthConfig, write_desed

    t0 = time.perf_counter()
    events = write_desed(args.out_dir, args.clips, SynthConfig(synth_seed=args.seed, synth_world=args.world),
                         split=args.split,
                         progress=not args.no_progress, first_index=args.first_index)
    classes = len({e.label for e in events})
    print(f"wrote {args.clips} {args.split} clips (seed {args.seed}, {args.world} world, {len(events)} events of "
          f"{classes} classes) to {args.out_dir} in {time.perf_counter() - t0:.1f} s")
    return 0

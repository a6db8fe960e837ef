"""``sedlib mix``: isolated recordings of your sounds -> labelled training soundscapes.

    sedlib mix --foreground my_sounds/ --background my_rooms/ --out data/mine --clips 500
    sedlib finetune --init fmn10+tf-256_strong --data data/mine --out runs/mine

``--foreground`` holds a folder per class with one sound per file; ``--background`` recordings
without those sounds (optional: white noise otherwise). The output is the DESED layout with
exact strong labels and the class list (``sedlib.data.mixing``).
"""

from __future__ import annotations

import argparse

from sedlib.commands import positive_int

HELP = "mix isolated sounds (a folder per class) over backgrounds into labelled soundscapes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--foreground", required=True, metavar="DIR", help="DIR/<class>/<sound files>")
    parser.add_argument("--background", metavar="DIR", help="background recordings (default: white noise)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (DESED layout)")
    parser.add_argument("--clips", type=positive_int, default=200, help="soundscapes to write (200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--events", type=positive_int, nargs=2, default=(1, 3), metavar=("LOW", "HIGH"),
                        help="sounds per clip, uniform (1 3)")
    parser.add_argument("--snr", type=float, nargs=2, default=(0.0, 15.0), metavar=("LOW", "HIGH"),
                        help="sound-to-background level in dB, uniform (0 15)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from sedlib.data.mixing import MixConfig, mix_soundscapes
    from sedlib.errors import SedlibError

    try:
        config = MixConfig(clip_seconds=args.clip_seconds, events=tuple(args.events), snr_db=tuple(args.snr),
                           seed=args.seed)
    except ValueError as err:
        raise SedlibError(str(err)) from None
    events = mix_soundscapes(args.foreground, args.out, args.clips, background=args.background, config=config,
                             progress=not args.no_progress)
    classes = sorted({e.label for e in events})
    print(f"{args.out}: {args.clips} clips, {len(events)} events of {len(classes)} classes ({', '.join(classes)})")
    return 0

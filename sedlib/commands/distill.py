"""``sedlib distill make-labels``: run one teacher or an ensemble over a data source and store the
mean of their strong logits per clip (the pseudo-label HDF5 store ``sedlib train --pseudo-labels``
reads; the layout of the reference's Zenodo ensemble file).

A teacher is ``NAME:CHECKPOINT`` (a model name and a weights file or release name; ``NAME`` may
be left out when the checkpoint names its model: a release name, or a sedlib run's
``model.safetensors``), or a release name alone (``fmn10+tf-256_strong``). Its classes must be
the data's classes (from the checkpoint's metadata or its class count).

Clips are taken whole and as the data source gives them in the chosen split (for clips longer
than the clip length, a train-split source would crop at random: use ``--split validation``).
"""

from __future__ import annotations

import argparse

HELP = "knowledge distillation helpers: make-labels (teacher pseudo-label store)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="distill_command", metavar="ACTION", required=True)
    p = sub.add_parser("make-labels", help="teacher (ensemble) strong logits -> HDF5 store",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", action="append", required=True, metavar="NAME[:CHECKPOINT]",
                   help="teacher model; repeat for an ensemble (logits are averaged)")
    p.add_argument("--data", required=True, metavar="SOURCE", help="data source (its clips get labels)")
    p.add_argument("--out", required=True, metavar="FILE.h5", help="pseudo-label store to write")
    p.add_argument("--split", choices=("train", "validation", "eval"), default="train")
    p.add_argument("--config", metavar="FILE", help="JSON with an 'audio' section or AudioConfig "
                   "fields (e.g. clip_seconds)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from sedlib.audio.frontend import MelFrontend
    from sedlib.commands.train import resolve_configs
    from sedlib.data.spec import open_source
    from sedlib.errors import SedlibError
    from sedlib.train.pseudo_labels import load_teacher, make_pseudo_labels

    if args.batch_size <= 0 or args.workers < 0:
        raise SedlibError("--batch-size must be > 0 and --workers >= 0")
    _, _, audio = resolve_configs("smoke", args.config, {}, {})
    data = open_source(args.data, split=args.split, audio_config=audio, on_error=args.on_error)
    teachers = [load_teacher(spec, data.vocab) for spec in args.teacher]
    path = make_pseudo_labels(teachers, data, args.out, batch_size=args.batch_size,
                              device=args.device, frontend=MelFrontend(audio),
                              progress=not args.no_progress, num_workers=args.workers,
                              teacher_names=args.teacher)
    print(f"wrote pseudo labels of {len(data)} clips ({len(teachers)} teacher(s)) to {path}")
    return 0

"""``sedlib detect``: events (and optionally frame scores) for audio files of any length."""

from __future__ import annotations

import argparse
import sys

from sedlib.commands import add_backend_arguments

HELP = "detect sound events in audio files (any length, rate, channels)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, ...)")
    parser.add_argument("--model", default=None,
                        help="model name (default: the checkpoint's, else fmn10+TF:256)")
    parser.add_argument("--checkpoint", help="weights: a file (.pt/.safetensors) or a release name; "
                        "an .onnx file from `sedlib export` runs in ONNX Runtime")
    parser.add_argument("--classes", help="class names: audioset, synth, desed or a text file "
                        "(default: from the checkpoint or the class count)")
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold (0.5)")
    parser.add_argument("--median-filter", type=int, default=9, help="median filter frames (9; 1 = off)")
    parser.add_argument("--hop", type=float, default=None,
                        help="window hop in seconds (default 10 = no overlap; overlap is averaged)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (torch backend)")
    add_backend_arguments(parser)
    parser.add_argument("--format", choices=("tsv", "audacity", "json"), default="tsv")
    parser.add_argument("--out", help="output file (audacity: a folder, one label file per input); "
                        "default: print to stdout")
    parser.add_argument("--scores-dir", help="also write frame scores per file in the "
                        "sed_scores_eval layout (onset offset <class...>)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sedlib.detect.detector import (
        Detector,
        detect_files,
        format_events,
        load_detector_model,
        write_events,
    )
    from sedlib.errors import SedlibError

    if not 0.0 <= args.threshold <= 1.0:
        raise SedlibError(f"--threshold must be in [0, 1], got {args.threshold}")
    name = args.model or (None if args.checkpoint else "fmn10+TF:256")
    model, vocab = load_detector_model(name, args.checkpoint, args.classes, args.backend, args.threads)
    detector = Detector(model, vocab, hop_seconds=args.hop, batch_size=args.batch_size,
                        device=args.device)
    on_scores = None
    if args.scores_dir:
        from sedlib.evaluate.scores_io import write_frame_scores

        def on_scores(scores):  # noqa: E306 - a tiny closure over the output folder
            write_frame_scores(scores, args.scores_dir)

    result = detect_files(detector, args.audio, threshold=args.threshold,
                          median_filter=args.median_filter, on_scores=on_scores,
                          progress=not args.no_progress)
    if args.format == "audacity":
        for name, events in result.events.items():
            if args.out:
                write_events(events, Path(args.out) / f"{Path(name).stem}.txt", "audacity")
            else:
                sys.stdout.write(f"# {name}\n" + format_events(events, "audacity"))
    else:
        events = [e for evs in result.events.values() for e in evs]
        if args.out:
            write_events(events, args.out, args.format)
        else:
            sys.stdout.write(format_events(events, args.format))
    total = sum(len(v) for v in result.events.values())
    print(f"{len(result.events)} file(s), {total} event(s)"
          + (f"; {len(result.failures)} failed: {', '.join(result.failures)}" if result.failures else ""),
          file=sys.stderr)
    return 1 if result.failures else 0

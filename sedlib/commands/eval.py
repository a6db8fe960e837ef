"""``sedlib eval``: PSDS1 / PSDS2 / pAUROC of a directory of per-clip score TSVs (SPEC 7).

Scores are the ``sed_scores_eval`` layout (one ``<clip>.tsv`` per clip: ``onset offset
<class>...``), evaluated as given unless ``--median-filter`` asks for a filter. Ground truth is a
DESED strong TSV (``filename onset offset event_label``) or Google's AudioSet Strong TSV
(``segment_id start_time_seconds end_time_seconds label``), told apart by the header; durations a
``filename duration`` TSV or the reference's header-less ``eval_durations.csv``. Clips match by
name without an audio extension (``Y<ytid>`` for AudioSet, ``<file>`` for ``<file>.wav``).
"""

from __future__ import annotations

import argparse
import math

HELP = "PSDS1, PSDS2 and segment-based pAUROC of per-clip score TSVs against ground truth"
METRICS = ("psds1", "psds2", "pauroc")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scores", required=True, metavar="DIR", help="directory of <clip>.tsv score files")
    parser.add_argument("--ground-truth", required=True, metavar="TSV",
                        help="DESED strong TSV or Google's AudioSet Strong TSV (detected by header)")
    parser.add_argument("--durations", required=True, metavar="TSV",
                        help="'filename<TAB>duration' TSV, or the reference's eval_durations.csv")
    parser.add_argument("--median-filter", type=int, default=None, metavar="N",
                        help="median-filter every class over N frames first (default: scores as given)")
    parser.add_argument("--protocol", choices=("all", "audioset"), default="all",
                        help="all: every score column; audioset: the 407 train-and-eval classes, "
                             "clips without their events dropped (the reference's evaluation)")
    parser.add_argument("--metrics", default=",".join(METRICS),
                        help="comma-separated subset of psds1,psds2,pauroc (psds1 is always computed; "
                             "psds2 is slow for hundreds of classes)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def read_ground_truth(path: str) -> dict[str, list]:
    """DESED or AudioSet Strong ground truth, chosen by the header line."""
    from sedlib.data import formats
    from sedlib.errors import FormatError

    header = _first_line(path)
    fields = [f.strip() for f in header.replace(",", "\t").split("\t")]
    if tuple(fields[:4]) == formats.STRONG_HEADER:
        return formats.read_strong_tsv(path)
    if tuple(fields[:4]) == formats.AUDIOSET_STRONG_HEADER:
        return formats.read_audioset_strong_tsv(path, ext="")
    raise FormatError(f"{path}:1: expected header {'<TAB>'.join(formats.STRONG_HEADER)!r} (DESED) or "
                      f"{'<TAB>'.join(formats.AUDIOSET_STRONG_HEADER)!r} (AudioSet Strong), got {header!r}")


def read_durations(path: str) -> dict[str, float]:
    """``filename duration`` TSV, or the header-less ``Y<ytid>,<seconds>`` CSV of the reference."""
    from sedlib.data import formats

    header = _first_line(path)
    if "\t" not in header and "," in header:
        return formats.read_audioset_durations_csv(path, ext="")
    return formats.read_durations_tsv(path)


def _first_line(path: str) -> str:
    from sedlib.errors import FormatError

    try:
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    return line.rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: cannot read ({err})") from None
    raise FormatError(f"{path}:1: empty file")


def format_table(report: dict) -> str:
    def num(x: float | None) -> str:
        return "     -" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:6.4f}"

    lines = [
        f"clips: {report['num_clips']}   classes: {report['num_classes']}",
        f"PSDS1        {num(report['psds1'])}   (alpha_st=1; the reference's val/psds1)",
        f"PSDS1 macro  {num(report['psds1_macro'])}   (mean of per-class PSDS1; the paper's number)",
        f"PSDS2        {num(report['psds2'])}",
        f"pAUROC       {num(report['pauroc'])}   (segment-based, 1 s, max FPR 0.1; mean over classes)",
        "",
    ]
    width = max([len("class")] + [len(c) for c in report["per_class"]])
    lines.append(f"{'class':<{width}}   psds1   psds2  pauroc")
    for name, row in report["per_class"].items():
        lines.append(f"{name:<{width}}  {num(row['psds1'])}  {num(row['psds2'])}  {num(row['pauroc'])}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import json

    from sedlib.data.labels import audioset_eval_protocol_classes
    from sedlib.errors import SedlibError
    from sedlib.evaluate.config import PAUROC, PSDS2
    from sedlib.evaluate.postprocess import median_filter_scores
    from sedlib.evaluate.report import psds_report
    from sedlib.evaluate.scores_io import read_scores_dir

    metrics = {m.strip() for m in args.metrics.split(",") if m.strip()}
    if not metrics <= set(METRICS):
        unknown = sorted(metrics - set(METRICS))
        raise SedlibError(f"--metrics: unknown {unknown}; choose from {list(METRICS)}")
    if args.median_filter is not None and args.median_filter < 1:
        raise SedlibError(f"--median-filter must be >= 1, got {args.median_filter}")
    if args.jobs < 1:
        raise SedlibError(f"--jobs must be >= 1, got {args.jobs}")

    scores = read_scores_dir(args.scores, lazy=True)
    if args.median_filter is not None:
        scores = median_filter_scores(scores, args.median_filter)
    report = psds_report(
        scores,
        read_ground_truth(args.ground_truth),
        read_durations(args.durations),
        restrict_to=audioset_eval_protocol_classes() if args.protocol == "audioset" else None,
        psds2=PSDS2 if "psds2" in metrics else None,
        pauroc=PAUROC if "pauroc" in metrics else None,
        num_jobs=args.jobs,
    )
    if args.json:
        def clean(x):
            return None if isinstance(x, float) and math.isnan(x) else x
        report["per_class"] = {c: {k: clean(v) for k, v in row.items()}
                               for c, row in report["per_class"].items()}
        print(json.dumps({k: clean(v) if not isinstance(v, dict) else v for k, v in report.items()}))
    else:
        print(format_table(report))
    return 0

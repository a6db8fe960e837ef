"""The ``sedlib`` subcommands (one module each: HELP, add_arguments, run) and their shared
argument types."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer > 0, with a message naming what was given."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--threads`` for the commands that run a detector."""
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "openvino"), default=None,
                        help="inference engine (default: torch, the exact path; onnxruntime for an .onnx "
                             "file); a PyTorch checkpoint is exported to ONNX once, cached")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="engine threads (onnxruntime/openvino; default: all cores)")

"""The ``sedlib`` command: one subcommand per module in :mod:`sedlib.commands`.

Each ``sedlib/commands/<name>.py`` defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Heavy imports happen inside ``run`` so ``sedlib --help`` stays fast.
Errors raised on purpose (:class:`sedlib.errors.SedlibError`) are printed as one line, without
a traceback, and give exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from sedlib.errors import SedlibError

# Adding a subcommand = adding its module name here (and the module).
COMMANDS: tuple[str, ...] = ("synth", "mix", "train", "finetune", "distill", "detect", "stream", "export", "eval",
                             "profile", "study", "cache", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sedlib", description="Low-complexity sound event detection (EfficientSED)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"sedlib.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # PNG export (kaleido driving Chromium) logs every step at INFO
        for chatty in ("choreographer", "kaleido"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return int(args._run(args) or 0)
    except SedlibError as err:
        print(f"sedlib {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sedlib {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

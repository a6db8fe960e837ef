"""``sedlib cache``: what the clip cache holds (``$SEDLIB_CACHE/clips``), and clearing it."""

from __future__ import annotations

import argparse

HELP = "list the clip cache's entries (rendered synthetic clips) or clear it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clear", action="store_true",
                        help="remove every entry (rebuilt on next use)")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def run(args: argparse.Namespace) -> int:
    from sedlib.data.clip_cache import cache_entries, cache_root, clear_cache

    root = cache_root()
    if args.clear:
        print(f"freed {_size(clear_cache(root))} in {root}")
        return 0
    entries = cache_entries(root)
    total = sum(e["bytes"] for e in entries)
    print(f"{root}: {len(entries)} entries, {_size(total)}")
    for e in entries:
        if e.get("incomplete"):
            print(f"  {e['key']}  {_size(e['bytes']):>9}  incomplete (a build was killed; "
                  f"removed by the next build or --clear)")
        else:
            print(f"  {e['key']}  {_size(e['bytes']):>9}  {e['clips']:>6} clips  {e['source']}  "
                  f"{e['created']}")
    return 0

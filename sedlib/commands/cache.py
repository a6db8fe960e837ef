"""``sedlib cache``: what the clip cache holds (``$SEDLIB_CACHE/clips``), keeping it under its
cap, and clearing it."""

from __future__ import annotations

import argparse
import time

HELP = "list the clip cache's entries (rendered synthetic clips), prune or clear it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--prune", action="store_true",
                      help="evict the least recently used entries until the cache is under its "
                           "cap ($SEDLIB_CLIP_CACHE_GB, default 20); entries used within the last "
                           "hour or being built are kept (a build does this by itself)")
    what.add_argument("--clear", action="store_true",
                      help="remove every entry (rebuilt on next use)")


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


def _others(root) -> list[tuple[str, int]]:
    """(name, bytes) of what else lies in ``$SEDLIB_CACHE`` beside the clip cache."""
    if not root.parent.is_dir():
        return []
    out = []
    for p in sorted(root.parent.iterdir()):
        if p == root:
            continue
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        out.append((p.name, sum(f.stat().st_size for f in files)))
    return out


def run(args: argparse.Namespace) -> int:
    from sedlib.data.clip_cache import cache_root
    from sedlib.data.clip_cache_space import (LIMIT_ENV, cache_entries, cache_limit_bytes,
                                              clear_cache, format_bytes, make_room)

    root = cache_root()
    if args.clear:  # before reading the cap: a bad $SEDLIB_CLIP_CACHE_GB must not block it
        print(f"freed {format_bytes(clear_cache(root))} in {root}")
        return 0
    limit = cache_limit_bytes()
    if args.prune:
        before = {e["key"]: e["bytes"] for e in cache_entries(root)}
        evicted = make_room(root, 0, limit=limit)
        print(f"evicted {len(evicted)} entries ({format_bytes(sum(before[k] for k in evicted))}) "
              f"from {root}")
    entries = cache_entries(root)
    total, now = sum(e["bytes"] for e in entries), time.time()
    print(f"{root}: {len(entries)} entries, {format_bytes(total)} of a {format_bytes(limit)} cap "
          f"(${LIMIT_ENV})")
    others = _others(root)
    if others:
        print(f"  (beside it in {root.parent}: {', '.join(f'{n} {format_bytes(b)}' for n, b in others)};"
              f" downloaded releases and ONNX exports, not managed here)")
    for e in entries:
        if e.get("incomplete"):
            print(f"  {e['key']}  {format_bytes(e['bytes']):>9}  incomplete (a build was killed "
                  f"or is running; a killed one is removed by the next build or --clear)")
        else:
            print(f"  {e['key']}  {format_bytes(e['bytes']):>9}  {e['clips']:>6} clips  "
                  f"{e['source']}  made {e['created']}, used {_ago(now - e['used'])}")
    return 0

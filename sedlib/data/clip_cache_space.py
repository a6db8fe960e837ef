"""How much room the clip cache takes: its entries, clearing them, a size cap with
least-recently-used eviction, and a free-disk check before a build.

Why a cap: every change of clip count, seed, clip length or audio settings makes a new entry
(an 8,192-clip 4 s training set is 2.1 GB), and nothing else ever removed one: a few weeks of
experiments left 36 GB in ``~/.cache/sedlib/clips`` on a development machine and filled its
disk. Before a build, :func:`make_room` removes the entries used least recently until the new
one fits under ``$SEDLIB_CLIP_CACHE_GB`` (default 20 GB), and :func:`check_free_disk` refuses a
build the disk cannot hold with one line saying what to do, instead of failing half-way with
"No space left on device".

"Used" is the modification time of an entry's manifest, touched at every lookup and whenever
a process (or a data loader's worker) opens the entry's arrays. Two entries are never evicted:
one being built (its lock is held) and one used within the last hour (a study in another
process may be reading it; removing its files would break that study's next data loader). If
only such entries are left, the cache stays over its cap and a warning says so.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from sedlib.errors import DiskSpaceError, SedlibError
from sedlib.locking import file_lock

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LIMIT_ENV = "SEDLIB_CLIP_CACHE_GB"
DEFAULT_LIMIT_GB = 20.0
IN_USE_SECONDS = 3600.0
FREE_MARGIN_BYTES = 512 * 1000**2  # left free on the disk after a build


def format_bytes(n: float) -> str:
    """``n`` bytes in decimal units: ``512 B``, ``2.1 GB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def cache_limit_bytes() -> int:
    """The cap: ``$SEDLIB_CLIP_CACHE_GB`` gigabytes (10^9 bytes), default 20."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return int(DEFAULT_LIMIT_GB * 1e9)
    try:
        gb = float(text)
    except ValueError:
        gb = -1.0
    if not gb >= 0:  # also NaN
        raise SedlibError(f"${LIMIT_ENV}={text!r}: expected a size in GB >= 0 (e.g. 20); "
                          f"to turn the clip cache off set SEDLIB_CLIP_CACHE=off")
    return int(gb * 1e9)


def mark_used(folder: Path) -> None:
    """Record that the entry in ``folder`` was just used (its manifest's mtime). A read-only
    cache (shared on a cluster) is left as it is."""
    try:
        os.utime(folder / MANIFEST)
    except OSError:
        pass


def cache_entries(root: str | os.PathLike) -> list[dict[str, Any]]:
    """The built entries under ``root``: ``key``, ``path``, ``bytes``, ``clips``, ``created``,
    ``used`` (seconds since the epoch) and a short ``source`` description, newest first; plus
    temporary folders of builds (killed or running) as ``{"key": ..., "incomplete": True}``."""
    root = Path(root)
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            used = (folder / MANIFEST).stat().st_mtime
        except (OSError, ValueError):
            out.append({"key": folder.name, "path": folder, "bytes": size, "incomplete": True})
            continue
        ident = manifest.get("identity", {})
        audio, synth = ident.get("audio", {}), ident.get("synth", {})
        world = f", world {synth['synth_world']}" if synth.get("synth_world") else ""
        source = (f"{ident.get('source', '?')} {ident.get('split', '?')}, seed "
                  f"{synth.get('synth_seed', '?')}{world}, {audio.get('clip_seconds', '?')} s"
                  + (", label noise" if ident.get("label_noise") else ""))
        out.append({"key": folder.name, "path": folder, "bytes": size,
                    "clips": manifest.get("clips"), "created": manifest.get("created", ""),
                    "used": used, "source": source})
    return sorted(out, key=lambda e: e.get("created", ""), reverse=True)


def _remove_unless_locked(root: Path, entry: dict[str, Any]) -> bool:
    """Remove ``entry``'s folder if no process holds its lock (is building it)."""
    key = entry["key"].split(".tmp-")[0]
    try:
        with file_lock(root / f"{key}.lock", blocking=False):
            shutil.rmtree(entry["path"], ignore_errors=True)
    except BlockingIOError:
        log.warning("%s is being built by another process; left alone", entry["path"])
        return False
    return True


def clear_cache(root: str | os.PathLike) -> int:
    """Remove every entry (and lock file) under ``root``; returns the bytes freed. An entry
    being built by another process is left alone (its lock is held)."""
    root = Path(root)
    freed = sum(e["bytes"] for e in cache_entries(root) if _remove_unless_locked(root, e))
    for lock in root.glob("*.lock") if root.is_dir() else []:
        if not (root / lock.stem).exists():
            lock.unlink(missing_ok=True)
    return freed


def make_room(root: str | os.PathLike, needed: int, *, limit: int | None = None,
              keep: str | None = None, now: float | None = None) -> list[str]:
    """Evict least-recently-used entries under ``root`` until they and ``needed`` more bytes
    fit under ``limit`` (default :func:`cache_limit_bytes`); returns the evicted keys.

    Kept: ``keep`` (the key being built), entries being built, entries used within
    :data:`IN_USE_SECONDS` of ``now``. Temporary folders count towards the total."""
    root = Path(root)
    limit = cache_limit_bytes() if limit is None else limit
    now = time.time() if now is None else now
    entries = cache_entries(root)
    total = sum(e["bytes"] for e in entries)
    evicted: list[str] = []
    candidates = sorted((e for e in entries if not e.get("incomplete") and e["key"] != keep
                         and now - e["used"] >= IN_USE_SECONDS), key=lambda e: e["used"])
    for entry in candidates:
        if total + needed <= limit:
            break
        if _remove_unless_locked(root, entry):
            total -= entry["bytes"]
            evicted.append(entry["key"])
            log.info("clip cache: evicted %s (%s, %s, unused for %.1f h) to stay under %s",
                     entry["key"], entry["source"], format_bytes(entry["bytes"]),
                     (now - entry["used"]) / 3600, format_bytes(limit))
    if total + needed > limit:
        log.warning("clip cache %s: %s held + %s new is over its cap of %s ($%s); the rest "
                    "was used within the last hour or is being built, so it is kept",
                    root, format_bytes(total), format_bytes(needed), format_bytes(limit), LIMIT_ENV)
    return evicted


def check_free_disk(root: str | os.PathLike, needed: int, what: str) -> None:
    """Raise :class:`DiskSpaceError` unless ``root``'s disk has ``needed`` bytes free plus a
    margin of :data:`FREE_MARGIN_BYTES`."""
    root = Path(root)
    free = shutil.disk_usage(root).free
    if needed + FREE_MARGIN_BYTES > free:
        raise DiskSpaceError(
            f"clip cache {root}: {what} needs {format_bytes(needed)}, the disk has "
            f"{format_bytes(free)} free; make room (sedlib cache --clear), point SEDLIB_CACHE "
            f"at a larger disk, or set SEDLIB_CLIP_CACHE=off to synthesise clips on the fly")

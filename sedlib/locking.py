"""One advisory file lock for every cache that processes share (clip cache, study runs)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, blocking: bool = True) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` (created, with its folder). ``blocking``
    False: raise BlockingIOError at once if another process holds it. Without ``fcntl``
    (Windows) no lock is taken: callers must stay safe through atomic renames alone."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

"""Files that appear whole or not at all: write beside the target, fsync, rename.

One helper for every room that writes results, checkpoints or exported models: a process
killed at any moment leaves the previous complete file, never a half-written one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, fsync it and rename it to
    ``path``. If ``write`` raises (or the process dies), ``path`` keeps its previous content and
    the temporary file is removed (or, after a kill, left as a dot-file ending in ``.tmp``).
    The file gets the umask's permissions, as a plain ``open()`` would give it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _new_file_mode())  # writers such as safetensors create 0600 files
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask

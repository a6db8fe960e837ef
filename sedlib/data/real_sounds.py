"""The real recordings shipped in ``data/real_sounds/`` (Debian's sound-theme-freedesktop and
sound-icons; licenses in ``data/README.md``), as class folders split by recording.

Seven classes of isolated sounds: spoken words (``speech``, 8 recordings), phone rings and
tones (``phone``, 3), harpsichord notes (7), guitar (2), trumpet (2), percussion (3) and beeps
(4). :func:`split_recordings` holds out whole recordings for evaluation (a quarter of each class,
at least one, the last in name order), so evaluation mixtures contain only sounds never heard in
training; :func:`write_class_folders` lays a split out as ``DIR/<class>/<file>`` for
:func:`sedlib.data.mixing.mix_soundscapes`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sedlib.config import PROJECT_ROOT
from sedlib.data.sources import AUDIO_EXTENSIONS
from sedlib.errors import FormatError

REAL_SOUNDS_DIR = PROJECT_ROOT / "data" / "real_sounds"
SPLITS = ("train", "eval")


def class_recordings(root: str | os.PathLike = REAL_SOUNDS_DIR) -> dict[str, list[Path]]:
    """``{class: [recording, ...]}`` (sorted) of a folder of class folders."""
    root = Path(root)
    out = {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
           for d in sorted(root.iterdir()) if d.is_dir()} if root.is_dir() else {}
    out = {c: files for c, files in out.items() if files}
    if not out:
        raise FormatError(f"{root}: no class folders with recordings")
    return out


def split_recordings(root: str | os.PathLike = REAL_SOUNDS_DIR) -> dict[str, dict[str, list[Path]]]:
    """``{"train": {class: files}, "eval": {class: files}}``: per class the last
    ``max(1, n // 4)`` recordings in name order are held out for evaluation; a class with one
    recording cannot be split and is refused."""
    split: dict[str, dict[str, list[Path]]] = {s: {} for s in SPLITS}
    for cls, files in class_recordings(root).items():
        if len(files) < 2:
            raise FormatError(f"{Path(root) / cls}: one recording; two or more are needed to hold one out")
        held = max(1, len(files) // 4)
        split["train"][cls], split["eval"][cls] = files[:-held], files[-held:]
    return split


def write_class_folders(out_dir: str | os.PathLike, split: str, root: str | os.PathLike = REAL_SOUNDS_DIR
                        ) -> Path:
    """Copy the ``split`` recordings into ``out_dir/<class>/`` (replacing what was there)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    for cls, files in split_recordings(root)[split].items():
        (out / cls).mkdir(parents=True)
        for f in files:
            shutil.copy2(f, out / cls / f.name)
    return out

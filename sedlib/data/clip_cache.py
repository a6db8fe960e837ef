"""The clip cache: a fixed-audio source (the embedded synthetic set) rendered once to disk.

Synthesising one 4 s clip costs ~16 ms of one core, more than the forward and backward pass of
a small model per clip; the study trains dozens of models on the same clips. :func:`cached`
renders a source's waveforms ``(N, samples)`` and frame targets ``(N, K, T)`` once into
memory-mapped ``.npy`` files under ``$SEDLIB_CACHE/clips/<key>/`` and returns a data set that
reads them: equal to the source's items bit for bit (same float32 arrays), shared by every run,
notebook and process.

Why waveforms and not log-mels: training draws the reference's mel band jitter (random fmin /
fmax) per batch and wavmix mixes waveforms, so both need the waveform; the frontend costs
~1.4 ms per 4 s clip, a tenth of the synthesis.

The key is a digest of the source's :meth:`cache_identity` (for synth: split, clip count,
:class:`SynthConfig`, :class:`AudioConfig`, class names, and a digest of the synthesis code);
any change makes a new entry; the entries used least recently are evicted to keep the cache
under ``$SEDLIB_CLIP_CACHE_GB`` (:mod:`sedlib.data.clip_cache_space`). Writing is atomic: a
build fills ``<key>.tmp-<pid>/``, writes its manifest last and renames the folder; a killed
build leaves only the temporary folder, which is never read and is removed by the next build.
A lock file serialises builds of one key across processes (the second waits and reads the
first's result). ``SEDLIB_CLIP_CACHE=off`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sedlib.config import user_cache_dir
from sedlib.data.clip_cache_space import MANIFEST, check_free_disk, make_room, mark_used
from sedlib.locking import file_lock
from sedlib.progress import tqdm

log = logging.getLogger(__name__)

FORMAT = 1
CACHE_ENV = "SEDLIB_CLIP_CACHE"
WAVEFORMS, TARGETS = "waveforms.npy", "targets.npy"


def cache_enabled() -> bool:
    """False when ``$SEDLIB_CLIP_CACHE`` is ``off`` / ``0`` / ``false`` / ``no``."""
    return os.environ.get(CACHE_ENV, "").strip().lower() not in ("off", "0", "false", "no")


def cache_root() -> Path:
    """``$SEDLIB_CACHE/clips`` (default ``~/.cache/sedlib/clips``)."""
    return user_cache_dir() / "clips"


def cache_key(identity: dict[str, Any]) -> str:
    """Hex digest (24 chars) of the identity's canonical JSON plus the cache format."""
    text = json.dumps({"format": FORMAT, **identity}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class CachedClips(torch.utils.data.Dataset):
    """Items of ``source`` read from a built cache folder: ``waveform`` (samples,) and
    ``targets`` (K, T) float32 tensors, ``filename``, ``index``. Every other attribute
    (``vocab``, ``filenames``, ``ground_truth``, ``durations``, ``set_epoch`` ...) is the
    source's. The arrays are opened lazily per process (DataLoader workers map them too)."""

    def __init__(self, source: torch.utils.data.Dataset, folder: Path) -> None:
        self.source, self.folder = source, Path(folder)
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.source)

    def __repr__(self) -> str:
        return f"CachedClips({self.source!r}, {self.folder})"

    def __getattr__(self, name: str) -> Any:
        if name in ("source", "folder", "_arrays"):  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.source, name)

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "folder": self.folder, "_arrays": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(waveforms ``(N, samples)``, targets ``(N, K, T)``), read-only memory maps. Opening
        them marks the entry used (a data loader's workers open them anew each epoch), which keeps
        it from eviction while a long run reads it."""
        if self._arrays is None:
            mark_used(self.folder)
            self._arrays = (np.load(self.folder / WAVEFORMS, mmap_mode="r"),
                            np.load(self.folder / TARGETS, mmap_mode="r"))
        return self._arrays

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self):
            raise IndexError(f"{self.folder.name}: index {index!r} out of range [0, {len(self)})")
        index = int(index)
        waves, targets = self.arrays()
        return {"waveform": torch.from_numpy(np.array(waves[index])),
                "targets": torch.from_numpy(np.array(targets[index])),
                "filename": self.source.filenames[index], "index": index}


def lookup(source: torch.utils.data.Dataset, root: str | os.PathLike | None = None
           ) -> CachedClips | None:
    """The built cache of ``source`` (None if there is none, or it is incomplete)."""
    return _lookup(source, source.cache_identity(), Path(root or cache_root()))


def _lookup(source: torch.utils.data.Dataset, identity: dict[str, Any], root: Path
            ) -> CachedClips | None:
    folder = root / cache_key(identity)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("identity") != json.loads(json.dumps(identity, default=str)):
        log.warning("%s: manifest does not match its key; ignored", folder)
        return None
    mark_used(folder)
    return CachedClips(source, folder)


def cached(source: torch.utils.data.Dataset, *, root: str | os.PathLike | None = None,
           workers: int | None = None, progress: bool = True) -> torch.utils.data.Dataset:
    """``source`` served from the clip cache, built first if needed (``workers`` processes,
    default up to 4). A source without ``cache_identity`` (files on disk, crops that change per
    epoch), an already cached one, or ``$SEDLIB_CLIP_CACHE=off`` returns ``source`` itself."""
    if (isinstance(source, CachedClips) or not callable(getattr(source, "cache_identity", None))
            or not cache_enabled()):
        return source
    root = Path(root or cache_root())
    identity = source.cache_identity()
    found = _lookup(source, identity, root)
    if found is not None:
        return found
    key = cache_key(identity)
    with file_lock(root / f"{key}.lock"):
        found = _lookup(source, identity, root)  # another process may have built it meanwhile
        if found is None:
            _build(source, identity, root, key, workers, progress)
            found = _lookup(source, identity, root)
    if found is None:  # pragma: no cover - a build that returned leaves a manifest
        raise RuntimeError(f"clip cache {root / key} was not written")
    return found


def _build(source: torch.utils.data.Dataset, identity: dict[str, Any], root: Path, key: str,
           workers: int | None, progress: bool) -> None:
    for stale in root.glob(f"{key}.tmp-*"):  # we hold the lock: these are from killed builds
        shutil.rmtree(stale, ignore_errors=True)
    first, n = source[0], len(source)
    name = getattr(source, "name", type(source).__name__)
    needed = n * (first["waveform"].numel() + first["targets"].numel()) * 4  # float32
    make_room(root, needed, keep=key)
    check_free_disk(root, needed, f"{name} ({n} clips)")
    tmp = root / f"{key}.tmp-{os.getpid()}"
    tmp.mkdir()
    t0 = time.perf_counter()
    try:
        waves = np.lib.format.open_memmap(tmp / WAVEFORMS, mode="w+", dtype=np.float32,
                                          shape=(n, *first["waveform"].shape))
        targets = np.lib.format.open_memmap(tmp / TARGETS, mode="w+", dtype=np.float32,
                                            shape=(n, *first["targets"].shape))
        if workers is None:
            workers = min(4, os.cpu_count() or 1) if n >= 64 else 0
        loader = torch.utils.data.DataLoader(source, batch_size=None, num_workers=workers,
                                             shuffle=False)
        for i, item in enumerate(tqdm(loader, total=n, desc=f"clip cache {name}", unit="clip",
                                      disable=not progress, dynamic_ncols=True)):
            waves[i] = item["waveform"].numpy()
            targets[i] = item["targets"].numpy()
        waves.flush()
        targets.flush()
        del waves, targets
        manifest = {"format": FORMAT, "key": key, "identity": identity,
                    "clips": n, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str), encoding="utf-8")
        if (root / key).exists():  # an entry that failed its manifest check (we hold the lock)
            shutil.rmtree(root / key)
        os.rename(tmp, root / key)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("clip cache %s: %d clips in %.1f s", root / key, n, time.perf_counter() - t0)

"""Downloading a release into ``$SEDLIB_CACHE`` (default ``~/.cache/sedlib``): atomic, sha256
checked where known.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import torch

from sedlib.errors import CheckpointError
from sedlib.models.releases import get_release

log = logging.getLogger(__name__)


def resolve_cache_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$SEDLIB_CACHE``, else ``~/.cache/sedlib``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get("SEDLIB_CACHE") or Path.home() / ".cache" / "sedlib")


def sha256sum(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(name: str, cache_dir: str | os.PathLike | None = None, url: str | None = None,
             sha256: str | None = None, progress: bool = True) -> Path:
    """Fetch a release (or ``url``, saved as file ``name``) into the cache and return its path.

    The file appears atomically (temporary file + ``os.replace``) and only after its sha256
    matched (the release's, or ``sha256``); a mismatch deletes the download and raises
    :class:`CheckpointError`. An existing cached file is re-verified, not re-downloaded.
    """
    release = None
    if url is None:
        release = get_release(name)
        url = release.url
        sha256 = sha256 or release.sha256
        filename = release.filename
    else:
        filename = Path(name).name if Path(name).suffix else f"{Path(name).name}.pt"
    folder = resolve_cache_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / filename
    if dest.exists():
        if sha256 is not None and (actual := sha256sum(dest)) != sha256.lower():
            raise CheckpointError(f"cached {dest} has sha256 {actual}, expected {sha256}; "
                                  f"delete it to download again")
        return dest
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".part")
    os.close(fd)
    try:
        log.info("downloading %s -> %s", url, dest)
        torch.hub.download_url_to_file(url, tmp, progress=progress)
        actual = sha256sum(tmp)
        if sha256 is None:
            log.info("%s: sha256 %s (no known hash to verify against)", filename, actual)
        elif actual != sha256.lower():
            raise CheckpointError(f"download of {url} has sha256 {actual}, expected {sha256}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest

"""Downloading a release into ``$SEDLIB_CACHE`` (default ``~/.cache/sedlib``): atomic, sha256
checked where known, with a bounded timeout, and failing in one line that says how to go on.

A download that cannot reach the network, times out, gets an HTTP error, a truncated body or a
wrong sha256 raises :class:`DownloadError` naming the release, the URL, why, and what to do
instead (put the file in the cache by hand, or use a local checkpoint); it leaves no file
behind (the body goes to a temporary file that is renamed only once complete and verified).

Environment:

- ``SEDLIB_CACHE``: the cache folder.
- ``SEDLIB_DOWNLOAD_TIMEOUT``: seconds without progress before a download gives up (default 30).
- ``SEDLIB_RELEASE_MIRROR``: a base URL that replaces the releases' own hosts (a local mirror
  or proxy; the file name is appended), e.g. for a cluster without internet access.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from sedlib.config import user_cache_dir
from sedlib.errors import CheckpointError
from sedlib.models.releases import get_release
from sedlib.progress import tqdm

log = logging.getLogger(__name__)

TIMEOUT_ENV = "SEDLIB_DOWNLOAD_TIMEOUT"
MIRROR_ENV = "SEDLIB_RELEASE_MIRROR"
DEFAULT_TIMEOUT = 30.0  # seconds without progress
_CHUNK = 1 << 16


class DownloadError(CheckpointError):
    """A release could not be downloaded (network, timeout, HTTP, truncated body, checksum)."""


class _ShortBody(OSError):
    """The server closed the connection before the announced ``Content-Length``."""

    def __init__(self, got: int, expected: int) -> None:
        super().__init__(f"the connection closed after {got:,} of {expected:,} bytes")


def resolve_cache_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$SEDLIB_CACHE``, else ``~/.cache/sedlib``."""
    return Path(path) if path is not None else user_cache_dir()


def sha256sum(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_timeout(timeout: float | None = None) -> float:
    """``timeout``, else ``$SEDLIB_DOWNLOAD_TIMEOUT``, else 30 s."""
    if timeout is not None:
        return float(timeout)
    text = os.environ.get(TIMEOUT_ENV)
    try:
        value = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise DownloadError(f"{TIMEOUT_ENV}={text!r}: expected a number of seconds") from None
    if value <= 0:
        raise DownloadError(f"{TIMEOUT_ENV}={text!r}: expected a positive number of seconds")
    return value


def _why(err: BaseException, url: str, timeout: float) -> str:
    """One phrase for a failed request: what went wrong, in the words a user can act on."""
    host = urllib.parse.urlsplit(url).hostname or url
    reason = err.reason if isinstance(err, urllib.error.URLError) and not isinstance(
        err, urllib.error.HTTPError) else err
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve host {host} (no network, or a proxy is needed)"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection to {host} refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer from {host} within {timeout:g} s ({TIMEOUT_ENV} sets the limit)"
    if isinstance(reason, http.client.IncompleteRead):
        return f"the connection closed after {len(reason.partial):,} bytes of the file"
    if isinstance(reason, _ShortBody):
        return str(reason)
    return f"{type(reason).__name__}: {reason}"


def _fetch(url: str, dest: Path, *, timeout: float, progress: bool) -> None:
    """Stream ``url`` into ``dest``; raises on HTTP errors, timeouts and short bodies."""
    request = urllib.request.Request(url, headers={"User-Agent": "sedlib"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name.split(".part")[0],
                  disable=not progress, leave=False) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
        if total is not None and done != total:
            raise _ShortBody(done, total)


def download(name: str, cache_dir: str | os.PathLike | None = None, url: str | None = None,
             sha256: str | None = None, progress: bool = True, timeout: float | None = None
             ) -> Path:
    """Fetch a release (or ``url``, saved as file ``name``) into the cache and return its path.

    The file appears atomically (temporary file + ``os.replace``) and only after its sha256
    matched (the release's, or ``sha256``). An existing cached file is re-verified, not
    re-downloaded. Any failure raises :class:`DownloadError` in one line (module docstring).
    """
    if url is None:
        release = get_release(name)
        url, filename = release.url, release.filename
        sha256 = sha256 or release.sha256
        mirror = os.environ.get(MIRROR_ENV)
        if mirror:
            url = mirror.rstrip("/") + "/" + filename
    else:
        filename = Path(name).name if Path(name).suffix else f"{Path(name).name}.pt"
    folder = resolve_cache_dir(cache_dir)
    dest = folder / filename
    if dest.exists():
        if sha256 is not None and (actual := sha256sum(dest)) != sha256.lower():
            raise CheckpointError(f"cached {dest} has sha256 {actual}, expected {sha256}; "
                                  f"delete it to download again")
        return dest
    limit = download_timeout(timeout)
    how = (f"download it by hand to {dest}, or use a local checkpoint instead "
           f"(--checkpoint FILE / --init FILE, or --pretrained scratch)")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".part")
    os.close(fd)
    try:
        log.info("downloading %s -> %s", url, dest)
        try:
            _fetch(url, Path(tmp), timeout=limit, progress=progress)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            raise DownloadError(f"cannot download {name!r} from {url}: "
                                f"{_why(err, url, limit)}; {how}") from None
        actual = sha256sum(tmp)
        if sha256 is None:
            log.info("%s: sha256 %s (no known hash to verify against)", filename, actual)
        elif actual != sha256.lower():
            raise DownloadError(f"cannot download {name!r} from {url}: the file's sha256 is "
                                f"{actual}, expected {sha256} (a corrupted or different file); "
                                f"{how}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest

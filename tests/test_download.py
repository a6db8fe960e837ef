"""Release downloads fail well: a local HTTP server on 127.0.0.1 answers 404, a truncated body,
a wrong file, slowly, or not at all; the host may not resolve. Each failure is one line naming
the release, where from, why and how to go on; nothing is left in the cache; and the CLI prints
it without a traceback and writes nothing to --out."""

from __future__ import annotations

import hashlib
import http.server
import socket
import subprocess
import sys
import threading
import time

import pytest

from sedlib.models import download as dl
from sedlib.models.download import DownloadError, download
from sedlib.models.releases import get_release

BODY = bytes(range(256)) * 64  # 16 KiB "checkpoint"
DIGEST = hashlib.sha256(BODY).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        path = self.path.rsplit("/", 1)[-1]
        if path.startswith("missing"):
            self.send_error(404, "Not Found")
            return
        if path.startswith("slow"):
            time.sleep(1.5)
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if path.startswith("truncated"):
            self.wfile.write(BODY[: len(BODY) // 3])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(BODY)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _refused_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def _one_line(err: pytest.ExceptionInfo, *needles: str) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, (needle, text)
    assert "download it by hand to" in text and "--checkpoint FILE" in text
    return text


def test_a_good_download_lands_atomically(server, tmp_path):
    path = download("ok.pt", cache_dir=tmp_path, url=f"{server}/ok.pt", sha256=DIGEST,
                    progress=False)
    assert path.read_bytes() == BODY and [p.name for p in tmp_path.iterdir()] == ["ok.pt"]


@pytest.mark.parametrize("file,why", [
    ("missing.pt", "HTTP 404"),
    ("truncated.pt", "closed after"),
])
def test_http_failures(server, tmp_path, file, why):
    with pytest.raises(DownloadError) as err:
        download(file, cache_dir=tmp_path, url=f"{server}/{file}", progress=False)
    _one_line(err, repr(file), f"{server}/{file}", why)
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_wrong_checksum(server, tmp_path):
    with pytest.raises(DownloadError) as err:
        download("ok.pt", cache_dir=tmp_path, url=f"{server}/ok.pt", sha256="0" * 64,
                 progress=False)
    _one_line(err, "sha256", DIGEST)
    assert list(tmp_path.iterdir()) == []


def test_timeout_is_bounded_and_configurable(server, tmp_path, monkeypatch):
    monkeypatch.setenv(dl.TIMEOUT_ENV, "0.3")
    t0 = time.perf_counter()
    with pytest.raises(DownloadError) as err:
        download("slow.pt", cache_dir=tmp_path, url=f"{server}/slow.pt", progress=False)
    assert time.perf_counter() - t0 < 1.4
    _one_line(err, "within 0.3 s", dl.TIMEOUT_ENV)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv(dl.TIMEOUT_ENV, "soon")
    with pytest.raises(DownloadError, match="expected a number of seconds"):
        download("slow.pt", cache_dir=tmp_path, url=f"{server}/slow.pt", progress=False)


def test_connection_refused(tmp_path):
    url = f"http://127.0.0.1:{_refused_port()}/x.pt"
    with pytest.raises(DownloadError) as err:
        download("x.pt", cache_dir=tmp_path, url=url, progress=False)
    _one_line(err, "refused")
    assert list(tmp_path.iterdir()) == []


def test_unresolvable_host_names_the_release(tmp_path, monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(DownloadError) as err:
        download("fmn10+tf-256_strong", cache_dir=tmp_path, progress=False)
    release = get_release("fmn10+tf-256_strong")
    _one_line(err, "'fmn10+tf-256_strong'", release.url, "cannot resolve host",
              str(tmp_path / release.filename))
    assert list(tmp_path.iterdir()) == []


def test_mirror_replaces_the_release_host(server, tmp_path, monkeypatch):
    monkeypatch.setenv(dl.MIRROR_ENV, server + "/")
    path = download("fmn10+tf-256_strong", cache_dir=tmp_path, progress=False)
    assert path.name == "fmn10+tf-256_strong.pt" and path.read_bytes() == BODY  # from the mirror
    with pytest.raises(DownloadError) as err:
        download("fmn04+tf-104_strong", cache_dir=tmp_path, sha256="0" * 64, progress=False)
    _one_line(err, f"{server}/fmn04+tf-104_strong.pt", "sha256")


def test_create_model_with_an_unreachable_release(tmp_path, monkeypatch):
    from sedlib.errors import SedlibError
    from sedlib.registry import create_model

    monkeypatch.setenv("SEDLIB_CACHE", str(tmp_path))
    monkeypatch.setenv(dl.MIRROR_ENV, f"http://127.0.0.1:{_refused_port()}")
    with pytest.raises(SedlibError) as err:
        create_model("fmn10+TF:256", checkpoint="fmn10+tf-256_strong")
    _one_line(err, "'fmn10+tf-256_strong'", "refused")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["detect", "{wav}", "--model", "fmn10+TF:256", "--out", "{out}"],
    ["train", "--model", "fmn04+TF:104", "--data", "synth:4", "--out", "{out}", "--steps", "4",
     "--warmup", "1"],
], ids=["detect", "train"])
def test_cli_offline_is_one_line_and_writes_nothing(argv, tmp_path):
    import numpy as np
    import soundfile as sf

    wav = tmp_path / "recording.wav"
    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    cache, out = tmp_path / "cache", tmp_path / "out"
    env = {"SEDLIB_CACHE": str(cache), dl.MIRROR_ENV: f"http://127.0.0.1:{_refused_port()}",
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "sedlib",
                           *(a.format(wav=wav, out=out) for a in argv)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "refused" in errors[0] and "download it by hand" in errors[0]
    assert not out.exists()
    assert not cache.exists() or list(cache.iterdir()) == []

"""Suite-wide settings.

- Under pytest-xdist (``make test``: two workers on two cores) each worker, and every notebook
  kernel or process it starts, computes on one thread: two workers with two threads each would
  share the two cores four ways.
- ``$SEDLIB_CACHE`` (clip cache, ONNX exports, downloads) points at one temporary folder for the
  whole run, shared by the workers and removed at the end: the suite never writes into the
  user's ``~/.cache/sedlib`` (it once left gigabytes of test clips there)."""

import os
import shutil
import tempfile

if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)

_TEST_CACHE: list[str] = []


def pytest_configure(config):
    """The controller (or a run without xdist) makes the cache folder before any worker starts;
    workers inherit ``$SEDLIB_CACHE`` from its environment."""
    if not hasattr(config, "workerinput"):
        _TEST_CACHE.append(tempfile.mkdtemp(prefix="sedlib-test-cache-"))
        os.environ["SEDLIB_CACHE"] = _TEST_CACHE[-1]


def pytest_unconfigure(config):
    for folder in _TEST_CACHE:
        shutil.rmtree(folder, ignore_errors=True)

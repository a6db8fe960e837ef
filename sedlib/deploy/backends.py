"""Choosing the engine a detector runs in: ``torch`` (the exact PyTorch path, the default),
``onnxruntime`` or ``openvino``.

A PyTorch model asked to run in an engine is exported once (:func:`export_onnx`, checked in ONNX
Runtime to 1e-4) into ``$SEDLIB_CACHE/onnx/``, keyed by a digest of its name, class names,
weights, the front-end option and the sedlib version, and the cached file is reused after that.
An exported ``.onnx`` file runs in ONNX Runtime unless ``openvino`` is asked for; it cannot run
in ``torch`` (the PyTorch weights are in the checkpoint it was exported from).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

from torch import nn

from sedlib.errors import SedlibError

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "openvino")


def _digest(model: nn.Module, classes: Sequence[str], with_frontend: bool) -> str:
    from sedlib import __version__
    from sedlib.deploy.onnx_export import OPSET

    h = hashlib.sha256(json.dumps([getattr(model, "name", type(model).__name__), list(classes),
                                   with_frontend, __version__, OPSET]).encode())
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cached_export(model: nn.Module, classes: Sequence[str], *, with_frontend: bool = False,
                  cache_dir: str | os.PathLike | None = None) -> Path:
    """The ONNX file of ``model`` in the cache, exported (and verified) on first use."""
    from sedlib.config import user_cache_dir
    from sedlib.deploy.onnx_export import export_onnx

    folder = Path(cache_dir) if cache_dir is not None else user_cache_dir() / "onnx"
    name = getattr(model, "name", type(model).__name__)
    safe = "".join(c if c.isalnum() or c in "+-_." else "_" for c in name)
    path = folder / f"{safe}{'-wave' if with_frontend else ''}-{_digest(model, classes, with_frontend)}.onnx"
    if not path.is_file():
        log.info("exporting %s to %s (once; checked against PyTorch)", name, path)
        folder.mkdir(parents=True, exist_ok=True)
        export_onnx(model, path, classes=classes, with_frontend=with_frontend)
    return path


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise SedlibError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def open_exported(path: str | os.PathLike, backend: str = "onnxruntime", threads: int | None = None) -> nn.Module:
    """An exported file in ``backend`` (``onnxruntime`` or ``openvino``)."""
    from sedlib.deploy.onnx_runtime import OnnxDetectorModel, OpenVinoDetectorModel

    if check_backend(backend) == "torch":
        raise SedlibError(f"{path}: an ONNX file runs in onnxruntime or openvino, not torch; for the "
                          f"torch backend give the checkpoint it was exported from")
    return (OpenVinoDetectorModel if backend == "openvino" else OnnxDetectorModel)(path, threads)


def runtime_model(model: nn.Module, backend: str, classes: Sequence[str], *, threads: int | None = None,
                  with_frontend: bool = False, cache_dir: str | os.PathLike | None = None) -> nn.Module:
    """``model`` itself for ``torch``; else its cached export opened in ``backend``. An engine
    model of the same engine is returned as it is."""
    if check_backend(backend) == "torch" or getattr(model, "backend", None) == backend:
        return model
    if getattr(model, "backend", None):  # already an engine model: reopen its file in the other one
        return open_exported(model.path, backend, threads)
    path = cached_export(model, classes, with_frontend=with_frontend, cache_dir=cache_dir)
    return open_exported(path, backend, threads)

"""Export a sedlib model to ONNX, checked against PyTorch in ONNX Runtime before it is kept.

The graph takes log-mel ``mel`` ``(B, 1, 128, T)`` and returns ``strong`` ``(B, K, T/4)`` and
``weak`` ``(B, K)`` logits, with dynamic batch and time axes. Its metadata (``metadata_props``)
holds ``sedlib_model`` (the registry name), ``classes`` (a JSON list), ``sample_rate``,
``frame_seconds`` (one output frame) and ``sedlib_version``.

Every export is verified: ONNX Runtime must reproduce the PyTorch outputs at three lengths
(the traced one and two others) within :data:`TOLERANCE` times the logits' largest magnitude (at
least 1: float32 rounding grows with the values summed, and trained or reference-initialised
logits reach tens), else nothing is written and the error says which model, which length and
by how much, absolute and relative. Families whose graph cannot be exported
faithfully yet fail with one line naming the operation.

Two sequence models trace through their export formulations (:func:`export_formulations`): the
minGRU's log-space scan (``logcumsumexp``, no ONNX operator) as a recursive-doubling scan, and
Mamba-2's chunked SSD (chunk arithmetic on Python ints, right only at the traced length) as one
quadratic chunk. Both compute the same function (equal in float64 to 1e-10, tested).
"""

from __future__ import annotations

import contextlib
import json
import sys
import logging
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from sedlib.atomic import atomic_write
from sedlib.errors import SedlibError

log = logging.getLogger(__name__)

#: Default opset (ONNX Runtime 1.32 runs it; STFT-free graphs need nothing newer).
OPSET = 18
#: Largest |logit difference| between ONNX Runtime and PyTorch an export may show, per unit of
#: the logits' largest magnitude (|logits| <= 1: absolute). fmn10+TCN:256 as the reference
#: initialises it (447 classes, seed 2) differs by 1.1e-4 on logits up to ~8 (1.4e-5 relative);
#: a graph off by 0.1 % is refused (tests/test_deploy.py).
TOLERANCE = 1e-4
#: The same for a graph with the front end in it, against MelFrontend + the model.
FRONTEND_TOLERANCE = 1e-3
#: Log-mel frames of the traced example (4 s) and of the other checked lengths (6.66 s, 10 s).
TRACE_FRAMES, CHECK_FRAMES, CLIP_FRAMES = 401, 667, 1001
CHECKED_FRAMES = (TRACE_FRAMES, CHECK_FRAMES, CLIP_FRAMES)
#: Rounds of the minGRU's doubling scan in an exported graph: exact for 2**11 = 2048 sequence
#: frames (82 s windows at 40 ms; detection and streaming use 10 s). Every round costs the same
#: at any length: 16 rounds (43 min) ran fmn10+HYBRID:128 at 47 clips/s, 11 at ~70 (measured).
DOUBLING_STEPS = 11


class ExportError(SedlibError):
    """The model could not be exported faithfully (one line: model, operation or deviation)."""


@contextlib.contextmanager
def _stdout_silenced():
    """File descriptor 1 goes to /dev/null for the block (also C++ writes to std::cout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _session(path: str | os.PathLike, threads: int | None = None, *, quiet: bool = False):
    """An ONNX Runtime CPU session for ``path`` (``threads`` intra-op threads; None: its
    default). Its shape-merge warnings are not for users; ``quiet``: its errors neither (the
    caller reports them in one line)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    opts = ort.SessionOptions()
    opts.log_severity_level = 4 if quiet else 3
    if threads is not None:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def export_formulations(model: nn.Module):
    """Within the block, every minGRU of ``model`` scans by doubling and every Mamba-2 block runs
    its SSD as one quadratic chunk (the ONNX-traceable forms); restored afterwards."""
    from sedlib.models.seq.mamba import Mamba2
    from sedlib.models.seq.mingru import MinGRU

    forms = {MinGRU: "doubling", Mamba2: "quadratic"}
    changed = [m for m in model.modules() if type(m) in forms]
    for m in changed:
        m.scan = forms[type(m)]
        if type(m) is MinGRU:
            m.scan_steps = DOUBLING_STEPS
    try:
        yield model
    finally:
        for m in changed:
            del m.scan  # back to the class default
            m.__dict__.pop("scan_steps", None)


def _max_frames(model: nn.Module, example: torch.Tensor, with_frontend: bool) -> int | None:
    """The longest log-mel input (frames) an exported graph is exact for: set by the doubling
    scan's rounds (sequence frames, times the backbone's time stride); None without a minGRU."""
    from sedlib.models.seq.mingru import MinGRU

    if not any(type(m) is MinGRU for m in model.modules()):
        return None
    frames = example.shape[-1] if not with_frontend else TRACE_FRAMES
    with torch.no_grad():
        out_frames = model(example if not with_frontend else torch.zeros(1, 1, 128, frames))[0].shape[-1]
    return (2 ** DOUBLING_STEPS) * round(frames / out_frames)  # out = ceil(frames / stride)


def max_deviation(reference, session, x: torch.Tensor, input_name: str = "mel") -> tuple[float, float]:
    """Largest |strong or weak logit difference| between ``reference(x)`` (PyTorch) and
    ``session`` on the same input ``x`` (log-mel (B, 1, 128, T) or waveform (B, N)), and the
    reference logits' largest magnitude (the scale the difference is judged against)."""
    with torch.no_grad():
        ref = [t.numpy() for t in reference(x)]
    out = session.run(["strong", "weak"], {input_name: x.numpy()})
    if [o.shape for o in out] != [r.shape for r in ref]:
        raise ExportError(f"ONNX Runtime output shapes {[o.shape for o in out]} differ from "
                          f"PyTorch's {[r.shape for r in ref]} for input {tuple(x.shape)}")
    return (float(max(np.abs(o - r).max() for o, r in zip(out, ref))),
            float(max(np.abs(r).max() for r in ref)))


def _check_inputs(with_frontend: bool, hop: int) -> dict[int, torch.Tensor]:
    """Verification inputs at each of :data:`CHECKED_FRAMES` log-mel frames:
    random log-mel, or random noise at -26 dBFS (waveform graphs), fixed seeds; keyed by frames."""
    gen = torch.Generator().manual_seed(0)
    if with_frontend:
        return {f: 0.05 * torch.randn(2, (f - 1) * hop + 1, generator=gen) for f in CHECKED_FRAMES}
    return {f: torch.randn(2, 1, 128, f, generator=gen) for f in CHECKED_FRAMES}


def export_onnx(model: nn.Module, path: str | os.PathLike, *, classes: Sequence[str],
                sample_rate: int = 16_000, frame_seconds: float = 0.04, opset: int = OPSET,
                tolerance: float | None = None, with_frontend: bool = False) -> dict[int, float]:
    """Write ``model`` (eval mode, float32, CPU) to ``path`` as ONNX with its metadata, after
    checking the exported graph in ONNX Runtime at :data:`CHECKED_FRAMES` (4 s, the traced
    length; 6.66 s; 10 s). Returns the deviation at each length (``{frames: max |diff|}``).
    The file appears atomically (:func:`sedlib.atomic.atomic_write`); on any failure no file is left.
    A length passes when its deviation is at most ``tolerance * max(1, largest |logit|)``.

    ``with_frontend``: the graph takes the 16 kHz waveform ``waveform`` (B, N) and computes the
    log-mel itself (:class:`sedlib.deploy.frontend_graph.ExportableMelFrontend`); it is checked
    against PyTorch's own path (``MelFrontend`` then the model), to :data:`FRONTEND_TOLERANCE`
    by default (the float32 FFT's rounding in near-silent bins passes through the model).
    """
    import onnx

    from sedlib.audio.frontend import MelFrontend
    from sedlib.config import AudioConfig
    from sedlib.deploy.frontend_graph import WithFrontend

    name = getattr(model, "name", type(model).__name__)
    model = model.eval().float().cpu()
    tolerance = tolerance if tolerance is not None else FRONTEND_TOLERANCE if with_frontend else TOLERANCE
    audio = AudioConfig(sample_rate=sample_rate)
    frontend = MelFrontend(audio).eval()
    graph_module = WithFrontend(model, frontend).eval() if with_frontend else model
    reference = (lambda wave: model(frontend(wave))) if with_frontend else model
    input_name = "waveform" if with_frontend else "mel"
    inputs = _check_inputs(with_frontend, audio.hop_length)
    if len(classes) != getattr(model, "num_classes", len(classes)):
        raise ExportError(f"{name}: {len(classes)} class names for a {model.num_classes}-class head")
    example = inputs[TRACE_FRAMES][:1]
    deviation: dict[int, float] = {}
    scale: dict[int, float] = {}  # largest |logit| of PyTorch's outputs at each length

    def write(tmp: Path) -> None:  # export, add the metadata, check in ONNX Runtime; raise to keep nothing
        # tracer warnings about shape-derived Python ints; on failure torch's C++ logger prints
        # the whole IR graph to stdout: the error below says what failed in one line
        with warnings.catch_warnings(), _stdout_silenced(), export_formulations(model):
            warnings.simplefilter("ignore")
            torch.onnx.export(graph_module, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=[input_name], output_names=["strong", "weak"],
                              dynamic_axes={input_name: {0: "batch", 1 if with_frontend else 3: "time"},
                                            "strong": {0: "batch", 2: "out_frames"},
                                            "weak": {0: "batch"}})
        graph = onnx.load(str(tmp))
        from sedlib import __version__

        meta = {"sedlib_model": name, "classes": json.dumps(list(classes)),
                "sample_rate": str(sample_rate), "frame_seconds": f"{frame_seconds:g}",
                "input": input_name, "sedlib_version": __version__}
        max_frames = _max_frames(model, example, with_frontend)
        if max_frames is not None:
            meta["max_mel_frames"] = str(max_frames)
        for key, value in meta.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(tmp))
        try:
            session = _session(tmp, quiet=True)
            for f, x in inputs.items():
                deviation[f], scale[f] = max_deviation(reference, session, x, input_name)
        except ExportError:
            raise
        except Exception as err:  # ONNX Runtime refuses or fails on the graph
            raise ExportError(f"{name}: the exported graph does not run in ONNX Runtime "
                              f"({str(err).splitlines()[0][:200]})") from None
        relative = {f: deviation[f] / max(1.0, scale[f]) for f in deviation}
        worst = max(relative, key=lambda f: (not relative[f] <= tolerance, relative[f]))  # NaN first
        if not relative[worst] <= tolerance:
            raise ExportError(f"{name}: ONNX Runtime differs from PyTorch by {deviation[worst]:.2e} at "
                              f"{worst} frames, {relative[worst]:.2e} of the logits' largest magnitude "
                              f"{scale[worst]:.3g} (> {tolerance:g} x max(1, that magnitude))")

    try:
        atomic_write(path, write)
    except torch.onnx.errors.UnsupportedOperatorError as err:
        raise ExportError(f"{name}: not exportable to ONNX opset {opset} yet "
                          f"({str(err).splitlines()[0]})") from None
    log.debug("%s -> %s (max |diff| %s)", name, path, deviation)
    return deviation

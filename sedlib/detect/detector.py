"""Detection on recordings of any length: audio -> 40 ms frame scores -> events.

Audio is streamed in 10 s windows (:func:`sedlib.audio.iter_windows`; any sample rate, channel
count and soundfile-readable format), each window goes through the mel frontend and the model,
and the sigmoid strong outputs are placed on the file's 40 ms frame grid. With overlapping
windows (``hop_seconds`` < 10) frames seen by several windows are averaged. Post-processing is
the reference's: median filter over time, then ``score > threshold`` (SPEC 8), then runs of
active frames become events (:func:`sedlib.data.labels.decode_frames`), clipped to the file's
duration. Only the frame scores of a file are kept in memory, never its whole feature matrix.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from sedlib.atomic import atomic_write
from sedlib.audio.frontend import MelFrontend
from sedlib.audio.io import audio_duration, iter_windows
from sedlib.config import AudioConfig
from sedlib.data.labels import Event, Vocabulary
from sedlib.errors import SedlibError
from sedlib.evaluate.postprocess import FrameScores, scores_to_events
from sedlib.models.checkpoints import checkpoint_metadata  # noqa: F401 - also importable from here
from sedlib.trained import load_trained_model, resolve_vocabulary  # noqa: F401 - also from here

log = logging.getLogger(__name__)

FORMATS = ("tsv", "audacity", "json")


class Detector:
    """A model plus its frontend and class names, ready to score files.

    ``model(mel)`` must return ``(strong (B, K, T/4), weak (B, K))`` logits for log-mel
    ``(B, 1, 128, T)`` (every :func:`sedlib.create_model` model does).
    """

    def __init__(
        self,
        model: nn.Module,
        vocab: Vocabulary,
        *,
        audio_config: AudioConfig | None = None,
        window_seconds: float = 10.0,
        hop_seconds: float | None = None,
        batch_size: int = 8,
        device: str | torch.device | None = None,
    ) -> None:
        self.audio_config = audio_config or AudioConfig()
        first = next(model.parameters(), None)  # an ONNX Runtime model has none: CPU
        self.device = torch.device(device) if device is not None else (
            first.device if first is not None else torch.device("cpu"))
        self.model = model.eval().to(self.device)
        self.frontend = MelFrontend(self.audio_config).eval().to(self.device)
        self.vocab = vocab
        self.window_seconds = float(window_seconds)
        self.hop_seconds = float(hop_seconds) if hop_seconds is not None else self.window_seconds
        frame = self.audio_config.frame_seconds
        hop_frames = self.hop_seconds / frame
        if not 0 < self.hop_seconds <= self.window_seconds or abs(hop_frames - round(hop_frames)) > 1e-6:
            raise SedlibError(
                f"hop_seconds must be in (0, window_seconds={self.window_seconds}] and a multiple "
                f"of the {frame:.2f} s frame, got {self.hop_seconds}"
            )
        if batch_size < 1:
            raise SedlibError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    @torch.inference_mode()
    def _score_batch(self, windows: list[np.ndarray]) -> np.ndarray:
        wave = torch.from_numpy(np.stack(windows)).to(self.device)  # (B, N)
        if getattr(self.model, "takes_waveform", False):  # an ONNX graph with the front end in it
            strong, _ = self.model(wave)  # (B, K, T/4)
        else:
            strong, _ = self.model(self.frontend(wave))  # (B, 1, 128, T) -> (B, K, T/4)
        if strong.shape[1] != len(self.vocab):
            raise SedlibError(
                f"model outputs {strong.shape[1]} classes but the vocabulary "
                f"{self.vocab.name!r} has {len(self.vocab)}"
            )
        return torch.sigmoid(strong.float()).cpu().numpy()  # (B, K, T/4)

    def frame_scores(self, path: str | os.PathLike) -> FrameScores:
        """Score one file: sigmoid outputs ``(K, ceil(duration / 0.04))``."""
        path = Path(path)
        frame = self.audio_config.frame_seconds
        duration = audio_duration(path)
        total = max(1, math.ceil(round(duration / frame, 6)))
        k = len(self.vocab)
        acc = np.zeros((k, total), dtype=np.float64)  # (K, T_file)
        count = np.zeros(total, dtype=np.int32)

        def flush(starts: list[float], windows: list[np.ndarray]) -> None:
            scores = self._score_batch(windows)  # (B, K, T_win)
            for start, s in zip(starts, scores):
                first = int(round(start / frame))
                n = min(s.shape[1], total - first)
                if n > 0:
                    acc[:, first:first + n] += s[:, :n]
                    count[first:first + n] += 1

        starts: list[float] = []
        windows: list[np.ndarray] = []
        for start, window in iter_windows(path, self.window_seconds, self.hop_seconds,
                                          self.audio_config.sample_rate):
            starts.append(start)
            windows.append(window)
            if len(windows) == self.batch_size:
                flush(starts, windows)
                starts, windows = [], []
        if windows:
            flush(starts, windows)
        scores = (acc / np.maximum(count, 1)).astype(np.float32)
        return FrameScores(path.name, scores, duration, frame, self.vocab.names)

    def detect_file(self, path: str | os.PathLike, threshold: float = 0.5,
                    median_filter: int = 9) -> tuple[list[Event], FrameScores]:
        scores = self.frame_scores(path)
        return scores_to_events(scores, threshold, median_filter), scores


# --- outputs --------------------------------------------------------------------------------------


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def format_events(events: Sequence[Event], fmt: str) -> str:
    """Events as DCASE TSV (``filename onset offset event_label``), an Audacity label track
    (``onset<TAB>offset<TAB>label``, one file's events) or JSON (a list of objects)."""
    if fmt == "tsv":
        rows = ["filename\tonset\toffset\tevent_label"]
        rows += [f"{e.filename}\t{e.onset:.3f}\t{e.offset:.3f}\t{e.label}" for e in events]
        return "\n".join(rows) + "\n"
    if fmt == "audacity":
        return "".join(f"{e.onset:.6f}\t{e.offset:.6f}\t{e.label}\n" for e in events)
    if fmt == "json":
        return json.dumps([{"filename": e.filename, "onset": e.onset, "offset": e.offset,
                            "event_label": e.label} for e in events], indent=1) + "\n"
    raise SedlibError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")


def write_events(events: Sequence[Event], path: str | os.PathLike, fmt: str) -> Path:
    """Write events atomically (temp file + rename) in one of :data:`FORMATS`."""
    path = Path(path)
    _atomic_write_text(path, format_events(events, fmt))
    return path


@dataclass
class DetectionResult:
    events: dict[str, list[Event]]
    failures: dict[str, str]


def detect_files(
    detector: Detector,
    paths: Iterable[str | os.PathLike],
    *,
    threshold: float = 0.5,
    median_filter: int = 9,
    on_scores: Callable[[FrameScores], None] | None = None,
    progress: bool = True,
) -> DetectionResult:
    """Run ``detector`` over files; a file that fails is recorded by name and the rest go on."""
    from sedlib.progress import tqdm

    paths = [Path(p) for p in paths]
    names = [p.name for p in paths]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SedlibError(f"several input files share a name (outputs are keyed by name): {dup[:5]}")
    result = DetectionResult({}, {})
    for path in tqdm(paths, desc="detect", unit="file", disable=not progress):
        try:
            events, scores = detector.detect_file(path, threshold, median_filter)
        except SedlibError as err:
            log.error("%s", err)
            result.failures[path.name] = str(err)
            continue
        result.events[path.name] = events
        if on_scores is not None:
            on_scores(scores)
    return result


def load_detector_model(
    name: str | None, checkpoint: str | os.PathLike | None, classes: str | None = None,
    backend: str | None = None, threads: int | None = None,
) -> tuple[nn.Module, Vocabulary]:
    """Build the model for detection with its class names.

    Without ``checkpoint`` the model's released AudioSet Strong weights are used (downloaded on
    first use). The class count comes from the checkpoint's head; the class names from
    ``classes``, else the checkpoint's metadata, else the class count (447 -> AudioSet).
    ``backend`` (:data:`sedlib.deploy.backends.BACKENDS`; None: ``torch``, or ``onnxruntime``
    for an ``.onnx`` file): the engine it runs in (a PyTorch checkpoint is exported once).
    """
    from sedlib.deploy.backends import check_backend, runtime_model

    if checkpoint is not None and str(checkpoint).endswith(".onnx"):  # runs in an engine
        model, vocab = _onnx_detector_model(name, Path(checkpoint), classes, backend or "onnxruntime", threads)
    else:
        model, vocab = load_trained_model(name, checkpoint, classes)
    if backend is not None and check_backend(backend) != "torch":
        model = runtime_model(model, backend, vocab.names, threads=threads)
    return model, vocab


def _onnx_detector_model(name: str | None, path: Path, classes: str | None, backend: str,
                         threads: int | None) -> tuple[nn.Module, Vocabulary]:
    """An exported file in ``backend`` (:mod:`sedlib.deploy.onnx_runtime`) and its class names;
    ``name``, when given, must be the model the file was exported from."""
    from sedlib.deploy.backends import open_exported

    model = open_exported(path, backend, threads)
    from sedlib.models.checkpoints import canonical_name

    if name is not None and canonical_name(name) != canonical_name(model.name):
        raise SedlibError(f"{path}: exported from {model.name}, not {name}")
    vocab = (Vocabulary(model.classes, path.name) if classes is None
             else resolve_vocabulary(classes, model.num_classes))
    return model, vocab


def detect(
    audio: str | os.PathLike | Sequence[str | os.PathLike],
    model: str | nn.Module = "fmn10+TF:256",
    *,
    checkpoint: str | os.PathLike | None = None,
    classes: str | Vocabulary | None = None,
    threshold: float = 0.5,
    median_filter: int = 9,
    hop_seconds: float | None = None,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = False,
    backend: str | None = None,
) -> dict[str, list[Event]]:
    """Python entry point: events per file name. Raises on the first failing file.
    ``backend``: ``torch`` (default), ``onnxruntime`` or ``openvino`` (:mod:`sedlib.deploy.backends`)."""
    if isinstance(model, str):
        model, vocab = load_detector_model(model, checkpoint, None if isinstance(classes, Vocabulary) else classes,
                                           backend)
    else:
        from sedlib.deploy.backends import runtime_model

        k = getattr(model, "num_classes", None) or model.strong_head.out_features
        vocab = classes if isinstance(classes, Vocabulary) else resolve_vocabulary(classes, k)
        model = runtime_model(model, backend or "torch", vocab.names)
    if isinstance(classes, Vocabulary):
        vocab = classes
    detector = Detector(model, vocab, hop_seconds=hop_seconds, batch_size=batch_size,
                        device=device or "cpu")
    paths = [audio] if isinstance(audio, (str, os.PathLike)) else list(audio)
    result = detect_files(detector, paths, threshold=threshold, median_filter=median_filter,
                          progress=progress)
    if result.failures:
        name, why = next(iter(result.failures.items()))
        raise SedlibError(f"{name}: {why}")
    return result.events


def iter_events(result: DetectionResult) -> Iterator[Event]:
    for events in result.events.values():
        yield from events

"""Class vocabularies and the encoding of events to frame targets (and back).

Frame grid (SPEC 6): 40 ms frames (16 kHz, hop 160, time pooling 4), 250 per 10 s clip. An event
covers frames floor(onset * 25) .. ceil(offset * 25) - 1, clipped to the clip; overlapping
events of one class are merged first. Decoding turns each run of active frames back into one
event with onset = first * 0.04 s and offset = (last + 1) * 0.04 s, so
``encode(decode(frames)) == frames`` for any binary frame matrix.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from sedlib.errors import UnknownClassError

DESED_CLASSES: tuple[str, ...] = (
    "Alarm_bell_ringing", "Blender", "Cat", "Dishes", "Dog",
    "Electric_shaver_toothbrush", "Frying", "Running_water", "Speech", "Vacuum_cleaner",
)


@dataclass(frozen=True, order=True)
class Event:
    """One labelled sound event. Times in seconds from the start of ``filename``."""

    filename: str
    onset: float
    offset: float
    label: str


class Vocabulary:
    """An ordered list of class names; index i is output channel i of a model."""

    def __init__(self, names: Sequence[str], name: str = "custom") -> None:
        names = tuple(names)
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"vocabulary {name!r} has duplicate class names: {dup[:5]}")
        self.names = names
        self.name = name
        self._index = {n: i for i, n in enumerate(names)}

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.names == other.names

    def __hash__(self) -> int:
        return hash(self.names)

    def __repr__(self) -> str:
        return f"Vocabulary({self.name!r}, {len(self)} classes)"

    def index(self, label: str) -> int:
        try:
            return self._index[label]
        except KeyError:
            close = [n for n in self.names if label.lower() in n.lower()][:5]
            hint = f"; similar: {close}" if close else ""
            raise UnknownClassError(
                f"unknown class {label!r} for vocabulary {self.name!r} ({len(self)} classes){hint}"
            ) from None

    def subset(self, names: Iterable[str], name: str | None = None) -> "Vocabulary":
        """Classes of ``names`` present here, in this vocabulary's order."""
        keep = set(names)
        return Vocabulary([n for n in self.names if n in keep], name or f"{self.name}-subset")


@lru_cache(maxsize=None)
def _read_resource(filename: str) -> tuple[str, ...]:
    text = resources.files("sedlib.resources").joinpath(filename).read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line.strip())


def audioset_strong_classes() -> Vocabulary:
    """The 447 AudioSet Strong training classes, in the released checkpoints' output order."""
    return Vocabulary(_read_resource("strong_train_classes_447.txt"), "audioset-strong-447")


def audioset_strong_eval_classes() -> Vocabulary:
    """The 416 classes present in the AudioSet Strong evaluation set."""
    return Vocabulary(_read_resource("strong_eval_classes_416.txt"), "audioset-strong-eval-416")


def audioset_eval_protocol_classes() -> Vocabulary:
    """The 407 train-and-eval classes PSDS is computed on, in the 447-class order."""
    return audioset_strong_classes().subset(audioset_strong_eval_classes(), "audioset-407")


def audioset_weak_classes() -> Vocabulary:
    """The 527 AudioSet (weak) classes, sorted by name."""
    return Vocabulary(_read_resource("weak_classes_527.txt"), "audioset-weak-527")


def read_class_list(path: str | os.PathLike, name: str | None = None) -> Vocabulary:
    """A vocabulary from a text file with one class name per line (blank lines skipped; named
    ``name``, default the file's name): ``--classes FILE``, a data folder's ``classes.txt``."""
    path = Path(path)
    return Vocabulary([ln.strip() for ln in path.read_text().splitlines() if ln.strip()], name or path.name)


def desed_classes() -> Vocabulary:
    """The 10 DESED (DCASE Task 4) classes."""
    return Vocabulary(DESED_CLASSES, "desed-10")


def merge_overlapping(events: Iterable[Event]) -> list[Event]:
    """Merge overlapping or touching events of the same file and class; sorted output."""
    out: list[Event] = []
    for ev in sorted(events, key=lambda e: (e.filename, e.label, e.onset, e.offset)):
        last = out[-1] if out else None
        if last and last.filename == ev.filename and last.label == ev.label and ev.onset <= last.offset:
            out[-1] = Event(last.filename, last.onset, max(last.offset, ev.offset), last.label)
        else:
            out.append(ev)
    return sorted(out, key=lambda e: (e.filename, e.onset, e.offset, e.label))


def encode_events(
    events: Iterable[Event],
    vocab: Vocabulary,
    num_frames: int = 250,
    frames_per_second: float = 25.0,
    *,
    ignore_unknown: bool = False,
) -> np.ndarray:
    """Events of one clip -> binary targets ``(K, T)`` float32 (K = len(vocab), T = num_frames).

    Unknown classes raise :class:`UnknownClassError` unless ``ignore_unknown`` (the AudioSet
    protocol encodes only the training classes and skips eval-only ones).
    """
    target = np.zeros((len(vocab), num_frames), dtype=np.float32)  # (K, T)
    for ev in merge_overlapping(events):
        if ev.label not in vocab:
            if ignore_unknown:
                continue
            vocab.index(ev.label)  # raises with a helpful message
        k = vocab.index(ev.label)
        start = min(max(math.floor(ev.onset * frames_per_second + 1e-9), 0), num_frames)
        stop = min(max(math.ceil(ev.offset * frames_per_second - 1e-9), 0), num_frames)
        target[k, start:stop] = 1.0
    return target


def decode_frames(
    frames: np.ndarray,
    vocab: Vocabulary,
    filename: str = "",
    frame_seconds: float = 0.04,
    duration: float | None = None,
) -> list[Event]:
    """Binary frames ``(K, T)`` -> events (one per run of active frames), sorted by onset.

    ``duration`` clips offsets to the end of the audio (the last frame may extend past it).
    """
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[0] != len(vocab):
        raise ValueError(f"expected frames of shape (K={len(vocab)}, T), got {frames.shape}")
    active = frames.astype(bool)
    padded = np.zeros((active.shape[0], active.shape[1] + 2), dtype=np.int8)  # (K, T + 2)
    padded[:, 1:-1] = active
    change = np.diff(padded, axis=1)  # +1 at run starts, -1 one past run ends
    events = []
    for k, start in zip(*np.nonzero(change == 1)):
        stop = start + np.argmax(change[k, start + 1:] == -1) + 1
        onset, offset = start * frame_seconds, stop * frame_seconds
        if duration is not None:
            offset = min(offset, duration)
            if onset >= offset:
                continue
        events.append(Event(filename, round(float(onset), 6), round(float(offset), 6), vocab.names[k]))
    return sorted(events, key=lambda e: (e.onset, e.offset, e.label))

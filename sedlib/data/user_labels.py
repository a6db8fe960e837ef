"""Labels as people make them: Audacity label tracks beside the audio, or a folder per class.

Audacity (File > Export > Export Labels) writes one label per line, ``start<TAB>end<TAB>text``
in seconds with a ``.`` decimal point; a label with a frequency range is followed by a line
``\\<TAB>low<TAB>high`` (Hz), and a point label has ``start == end``. Here:

- ``audacity:DIR`` -- every audio file in DIR (recursively) with its label track ``<stem>.txt``
  beside it. A recording with none of the classes needs an empty ``.txt`` (so an unlabelled
  file is never read as "nothing happens"). Frequency lines are checked and ignored (the model
  predicts time only). Point labels mark an instant, not a sound's extent, and are refused.
- ``classfolders:DIR`` -- clip-level (weak) labels: ``DIR/<class>/*.wav``; each clip has the
  class of its folder.

The classes are the sorted labels found, or a given vocabulary (then any other label is
refused). Every problem is one line naming the file (and line): a malformed line, a label
ending before it starts or after the audio does, a label file without audio, audio without a
label file. Nothing is opened for training until every file has been read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sedlib.audio.io import audio_duration
from sedlib.data.formats import _check_label, _lines, _number
from sedlib.data.labels import Event, Vocabulary
from sedlib.data.sources import AUDIO_EXTENSIONS
from sedlib.errors import FormatError

logger = logging.getLogger(__name__)

#: A label may end this much after the audio (Audacity snaps to its own time grid).
END_TOLERANCE = 0.01


def read_audacity_labels(path: str | os.PathLike, filename: str, *, duration: float | None = None,
                         vocab: Vocabulary | None = None) -> list[Event]:
    """Events of one Audacity label track for the audio ``filename`` (``duration`` seconds:
    labels ending later are refused, within :data:`END_TOLERANCE`), sorted by onset."""
    path = Path(path)
    events: list[Event] = []
    previous_label = None
    for lineno, line in _lines(path):
        where = f"{path}:{lineno}"
        if line.startswith("\\"):  # the frequency range of the label above
            fields = line.split("\t")
            if previous_label is None or len(fields) != 3:
                raise FormatError(f"{where}: expected a frequency line '\\<TAB>low<TAB>high' after a "
                                  f"label, got {line!r}")
            low, high = (_number(path, lineno, f, what) for f, what in zip(fields[1:], ("low Hz", "high Hz")))
            if high < low:
                raise FormatError(f"{where}: frequency range {low:g}-{high:g} Hz ends before it starts")
            previous_label = None
            continue
        fields = line.split("\t", 2)
        if len(fields) < 2:
            raise FormatError(f"{where}: expected 'start<TAB>end<TAB>label' (an Audacity label track), "
                              f"got {line!r}")
        onset = _number(path, lineno, fields[0].strip(), "start")
        offset = _number(path, lineno, fields[1].strip(), "end")
        label = fields[2].strip() if len(fields) > 2 else ""
        _check_label(path, lineno, label, vocab)
        if offset < onset:
            raise FormatError(f"{where}: label {label!r} ends ({offset:g} s) before it starts ({onset:g} s)")
        if offset == onset:
            raise FormatError(f"{where}: {label!r} is a point label (start = end = {onset:g} s); detection "
                              f"needs the sound's extent: drag it into a region in Audacity")
        if duration is not None and offset > duration + END_TOLERANCE:
            raise FormatError(f"{where}: label {label!r} ends at {offset:g} s, after the end of "
                              f"{filename} ({duration:.3f} s)")
        if duration is not None:
            offset = min(offset, duration)
        events.append(Event(filename, onset, offset, label))
        previous_label = label
    return sorted(events, key=lambda e: (e.onset, e.offset, e.label))


def _audio_files(root: Path) -> dict[str, Path]:
    """Audio files under ``root`` keyed by their path relative to it (POSIX separators)."""
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS}


def _vocabulary(labels: set[str], vocab: Vocabulary | None, root: Path) -> Vocabulary:
    if vocab is not None:
        return vocab
    if not labels:
        raise FormatError(f"{root}: no labels in any label file; nothing to train on")
    return Vocabulary(sorted(labels), root.name)


def user_folder_layout(root: str | os.PathLike) -> tuple[str, str] | None:
    """Which of your own layouts a plain folder is in, for ``--data DIR`` without the DESED
    layout: ``("audacity", why)`` when audio files have a label track ``<stem>.txt`` beside
    them, ``("classfolders", why)`` when audio sits only in sub-folders (one per class) and no
    label tracks; else None. Only the file names are looked at."""
    root = Path(root)
    audio = _audio_files(root)
    if not audio:
        return None
    tracked = [name for name, p in audio.items() if p.with_suffix(".txt").is_file()]
    if tracked:
        return "audacity", f"{len(tracked)} of its {len(audio)} recordings have a label track <stem>.txt beside them"
    if (root / "audio").is_dir() or not all("/" in name for name in audio):
        return None  # a DESED folder missing its label file, or loose recordings without labels
    classes = {name.split("/", 1)[0] for name in audio}
    return "classfolders", f"its {len(audio)} recordings lie in {len(classes)} sub-folders (one per class)"


def audacity_labels(root: str | os.PathLike, *, vocab: Vocabulary | None = None
                    ) -> tuple[dict[str, Path], dict[str, list[Event]], dict[str, float], Vocabulary]:
    """Read ``root`` (module doc): audio paths, events and durations keyed by the audio's
    relative path, and the classes."""
    root = Path(root)
    if not root.is_dir():
        raise FormatError(f"{root}: not a folder (audacity:DIR takes a folder of audio + label tracks)")
    audio = _audio_files(root)
    tracks = {p.with_suffix("").relative_to(root).as_posix(): p for p in sorted(root.rglob("*.txt"))}
    by_stem = {str(Path(name).with_suffix("").as_posix()): name for name in audio}
    orphans = sorted(set(tracks) - set(by_stem))
    if orphans:
        raise FormatError(f"{tracks[orphans[0]]}: a label track without audio (no {orphans[0]}.wav/.flac/... "
                          f"beside it)" + (f"; {len(orphans) - 1} more" if len(orphans) > 1 else ""))
    unlabelled = sorted(set(by_stem) - set(tracks))
    if unlabelled:
        raise FormatError(f"{root / by_stem[unlabelled[0]]}: no label track {unlabelled[0]}.txt beside it (give "
                          f"an empty one for a recording without any of the classes)"
                          + (f"; {len(unlabelled) - 1} more" if len(unlabelled) > 1 else ""))
    if not audio:
        raise FormatError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    events, durations = {}, {}
    for stem, name in by_stem.items():
        durations[name] = audio_duration(audio[name])
        events[name] = read_audacity_labels(tracks[stem], name, duration=durations[name], vocab=vocab)
    vocab = _vocabulary({e.label for evs in events.values() for e in evs}, vocab, root)
    logger.info("%s: %d recordings, %d labels, %d classes", root, len(audio),
                sum(map(len, events.values())), len(vocab))
    return audio, events, durations, vocab


def audacity_source(root: str | os.PathLike, *, vocab: Vocabulary | None = None, **kwargs: Any):
    """A strong :class:`~sedlib.data.files.FileSource` over an Audacity-labelled folder."""
    from sedlib.data.files import FileSource

    paths, events, durations, vocab = audacity_labels(root, vocab=vocab)
    return FileSource(paths, ground_truth=events, durations=durations, vocab=vocab,
                      name=f"audacity:{root}", **kwargs)


def class_folders_source(root: str | os.PathLike, *, vocab: Vocabulary | None = None, **kwargs: Any):
    """A weak :class:`~sedlib.data.files.FileSource`: ``root/<class>/<clip>``, one class per clip."""
    from sedlib.data.files import FileSource

    root = Path(root)
    if not root.is_dir():
        raise FormatError(f"{root}: not a folder (classfolders:DIR takes DIR/<class>/<clips>)")
    paths = {name: p for name, p in _audio_files(root).items() if "/" in name}
    if not paths:
        raise FormatError(f"{root}: no audio in class folders (expected {root}/<class>/<clip>.wav)")
    weak = {name: [name.split("/", 1)[0]] for name in paths}
    vocab = _vocabulary({c for cs in weak.values() for c in cs}, vocab, root)
    for name, (label,) in weak.items():
        if label not in vocab:
            raise FormatError(f"{paths[name]}: folder {label!r} is not one of the classes {list(vocab.names)[:8]}")
    return FileSource(paths, weak_labels=weak, vocab=vocab, name=f"classfolders:{root}", **kwargs)

"""Sources read from files: audio folders matched to label files (DESED layout, DESED strong
TSVs), with an index of audio files by stem and optional durations.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import soundfile as sf

from sedlib.audio.io import audio_duration
from sedlib.data.formats import (
    read_audioset_durations_csv,
    read_durations_tsv,
    read_strong_tsv,
    read_weak_tsv,
)
from sedlib.data.labels import (
    Event,
    Vocabulary,
    desed_classes,
    read_class_list,
)
from sedlib.data.sources import (
    AUDIO_EXTENSIONS,
    ClipSource,
    open_audio,
    strip_audio_ext,
)
from sedlib.data.synth.soundscape import synth_vocabulary
from sedlib.errors import AudioError, FormatError, UnknownClassError

logger = logging.getLogger(__name__)


class AudioIndex:
    """The audio files under a folder (recursive), found by exact name or by name without its
    audio extension (``Y<ytid>.mp3`` finds ``Y<ytid>.flac``)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FormatError(f"{self.root}: expected a folder of audio files")
        self.by_name: dict[str, Path] = {}
        self.by_stem: dict[str, list[Path]] = {}
        for folder, _, files in os.walk(self.root):
            for fn in files:
                if fn.startswith(".") or not fn.lower().endswith(AUDIO_EXTENSIONS):
                    continue
                path = Path(folder, fn)
                self.by_name.setdefault(fn, path)
                self.by_stem.setdefault(strip_audio_ext(fn), []).append(path)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_stem.values())

    def find(self, name: str) -> Path | None:
        base = Path(name).name
        if base in self.by_name:
            return self.by_name[base]
        paths = self.by_stem.get(strip_audio_ext(base), [])
        if len(paths) > 1:
            raise FormatError(f"{self.root}: clip {name!r} matches several audio files: "
                              f"{sorted(str(p) for p in paths)[:4]}")
        return paths[0] if paths else None


def resolve_audio(names: Iterable[str], audio_dir: str | os.PathLike, *, where: str,
                  on_error: str, missing_ok: bool = False) -> tuple[dict[str, Path], list[str]]:
    """``({filename: audio path}, [filenames without audio])`` for the labelled clips ``names``.

    Clips without audio raise :class:`AudioError` unless ``on_error == "skip"`` or
    ``missing_ok`` (both log a warning with the count and examples).
    """
    index = AudioIndex(audio_dir)
    found: dict[str, Path] = {}
    missing: list[str] = []
    names = list(names)
    for name in names:
        path = index.find(name)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        msg = (f"{where}: {len(missing)} of {len(names)} labelled clips have no audio file in "
               f"{audio_dir} (e.g. {missing[:5]})")
        if not (missing_ok or on_error == "skip"):
            raise AudioError(msg)
        logger.warning("%s; they are left out", msg)
    if not found:
        raise AudioError(f"{where}: none of the {len(names)} labelled clips has an audio file in "
                         f"{audio_dir} ({len(index)} audio files there)")
    return found, missing


def read_durations_file(path: str | os.PathLike) -> dict[str, float]:
    """A ``filename→duration`` TSV (with header) or the reference's headerless
    ``eval_durations.csv``, keyed by name without audio extension."""
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8-sig", "replace")
    if first.startswith("filename"):
        table = read_durations_tsv(path)
    else:
        table = read_audioset_durations_csv(path, ext="")
    return {strip_audio_ext(k): v for k, v in table.items()}


class FileSource(ClipSource):
    """Clips stored as audio files, with strong (``ground_truth``) or weak (``weak_labels``,
    ``{filename: [class, ...]}``) labels. ``durations``: a table keyed by name without audio
    extension (clips it lacks are measured from their headers)."""

    def __init__(self, paths: Mapping[str, Path], *,
                 ground_truth: Mapping[str, list[Event]] | None = None,
                 weak_labels: Mapping[str, list[str]] | None = None,
                 durations: Mapping[str, float] | None = None, missing: Iterable[str] = (),
                 **kwargs: Any) -> None:
        if (ground_truth is None) == (weak_labels is None):
            raise ValueError("FileSource needs exactly one of ground_truth and weak_labels")
        super().__init__(filenames=paths, has_strong=ground_truth is not None, **kwargs)
        self.paths = dict(paths)
        self.missing = list(missing)
        self._ground_truth = dict(ground_truth) if ground_truth is not None else None
        self.weak_labels = dict(weak_labels) if weak_labels is not None else None
        if durations is not None:
            self.use_durations(durations)

    def _open(self, index: int) -> tuple[str, sf.SoundFile]:
        path = self.paths[self.filenames[index]]
        return str(path), open_audio(path, str(path))

    def _duration(self, index: int) -> float:
        return audio_duration(self.paths[self.filenames[index]])

    def _weak_target(self, index: int) -> np.ndarray:
        target = np.zeros(len(self.vocab), dtype=np.float32)  # (K,)
        for label in self.weak_labels[self.filenames[index]]:
            target[self.vocab.index(label)] = 1.0
        return target


def _infer_vocab(labels: set[str], label_file: Path, reread) -> Vocabulary:
    """The known vocabulary holding every label of a folder; else the reader's error (file:line)
    against the closest one."""
    candidates = (synth_vocabulary(), synth_vocabulary("context"), desed_classes())
    for vocab in candidates:
        if labels <= set(vocab.names):
            logger.info("%s: classes of %r (%d)", label_file, vocab.name, len(vocab))
            return vocab
    closest = max(candidates, key=lambda v: len(labels & set(v.names)))
    reread(label_file, vocab=closest)  # raises UnknownClassError naming file and line
    raise UnknownClassError(f"{label_file}: labels {sorted(labels)[:5]} fit no known vocabulary")


def _labelled_source(label_file: Path, audio_dir: Path, *, strong: bool,
                     durations_file: Path | None, vocab: Vocabulary | None,
                     default_vocab: Vocabulary | None, on_error: str, **kwargs: Any) -> FileSource:
    reader = read_strong_tsv if strong else read_weak_tsv
    vocab = vocab or default_vocab
    labels = reader(label_file, vocab=vocab)
    if vocab is None:
        names = ({e.label for evs in labels.values() for e in evs} if strong
                 else {n for ns in labels.values() for n in ns})
        vocab = _infer_vocab(names, label_file, reader)
    paths, missing = resolve_audio(sorted(labels), audio_dir, where=str(label_file),
                                   on_error=on_error)
    durations = read_durations_file(durations_file) if durations_file else None
    return FileSource(paths, ground_truth=labels if strong else None,
                      weak_labels=None if strong else labels, durations=durations,
                      missing=missing, vocab=vocab, on_error=on_error, **kwargs)


def is_desed_folder(root: Path) -> bool:
    """Whether ``root`` holds the DESED layout: ``audio/`` and ``strong.tsv`` or ``weak.tsv``."""
    return (root / "audio").is_dir() and ((root / "strong.tsv").is_file() or (root / "weak.tsv").is_file())


def folder_source(root: str | os.PathLike, *, vocab: Vocabulary | None = None,
                  **kwargs: Any) -> FileSource:
    """A folder in the DESED layout written by ``sedlib synth`` or ``sedlib mix``: ``audio/``,
    ``strong.tsv`` (or only ``weak.tsv``), optional ``durations.tsv`` and ``classes.txt`` (one
    class per line: the vocabulary, else a known one that holds every label)."""
    root = Path(root)
    strong, weak = root / "strong.tsv", root / "weak.tsv"
    if not is_desed_folder(root):
        raise FormatError(f"{root}: expected the DESED layout: {root}/audio/ with the clips, "
                          f"{root}/strong.tsv (or weak.tsv) and optionally durations.tsv (your own "
                          f"recordings: audacity:{root} with a label track <stem>.txt beside each, "
                          f"or classfolders:{root} with one sub-folder per class)")
    durations = root / "durations.tsv"
    classes = root / "classes.txt"  # written by sedlib mix: your own classes
    if vocab is None and classes.is_file():
        vocab = read_class_list(classes, root.name)
    return _labelled_source(strong if strong.is_file() else weak, root / "audio",
                            strong=strong.is_file(),
                            durations_file=durations if durations.is_file() else None,
                            vocab=vocab, default_vocab=None, name=str(root), **kwargs)


def desed_source(strong_tsv: str | os.PathLike, audio_dir: str | os.PathLike,
                 durations_tsv: str | os.PathLike | None = None, *,
                 vocab: Vocabulary | None = None, **kwargs: Any) -> FileSource:
    """Real DESED: a strong TSV and its audio folder; the 10 DESED classes by default."""
    return _labelled_source(Path(strong_tsv), Path(audio_dir), strong=True,
                            durations_file=Path(durations_tsv) if durations_tsv else None,
                            vocab=vocab, default_vocab=desed_classes(),
                            name=f"desed:{strong_tsv}:{audio_dir}", **kwargs)

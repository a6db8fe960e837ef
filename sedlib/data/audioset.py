"""AudioSet sources (SPEC 6): Google's strong TSV over an audio folder, PaSST-style HDF5 files,
and weak-only sets for teacher-only distillation (Table II).

AudioSet protocol, as the reference: the 447 strong training classes are encoded; events of
other classes (the 9 eval-only classes, MIDs outside ``class_labels_indices_strong.csv``) are
dropped and counted in a log message; a clip keeps its place even if no event is left; clips of
the label file without audio (unavailable YouTube videos) are left out with a warning. The clip
key (item ``filename``) is the reference's ``"Y<ytid>.mp3"`` whatever the audio file's extension,
so pseudo-label stores made by the reference's pipeline match.

PaSST-style HDF5 (``{balanced_train,unbalanced_train,eval}_segments_mp3.hdf``): ``audio_name``
(bytes ``"Y<ytid>.mp3"``), ``mp3`` (one 32 kHz mp3 file per row, variable-length uint8 or bytes)
and ``target`` (527 weak labels in ``class_labels_indices.csv`` order, bit-packed with
``np.packbits``; unpacked rows of 527 are accepted too). MP3 is decoded by libsndfile (>= 1.1)
through ``soundfile``; the reference used minimp3py (same crop/pad/resample, decoders may differ
in the last bits). The file is opened lazily in each process (h5py handles must not cross a
fork), so a source can go to DataLoader workers. Weak targets follow the vocabulary's order
(:func:`~sedlib.data.labels.audioset_weak_classes`, sorted by name), not the file's.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import soundfile as sf

from sedlib.data.files import (
    FileSource,
    _labelled_source,
    read_durations_file,
    resolve_audio,
    strip_audio_ext,
)
from sedlib.data.formats import read_audioset_strong_tsv
from sedlib.data.labels import (
    Event,
    Vocabulary,
    audioset_strong_classes,
    audioset_weak_classes,
)
from sedlib.data.sources import ClipSource, open_audio
from sedlib.errors import AudioError, FormatError, UnknownClassError

logger = logging.getLogger(__name__)

NUM_WEAK_CLASSES = 527
HDF5_DATASETS = ("audio_name", "mp3", "target")


@lru_cache(maxsize=None)
def weak_index_names() -> tuple[str, ...]:
    """The 527 display names in ``class_labels_indices.csv`` order (the HDF5 ``target`` order)."""
    text = resources.files("sedlib.resources").joinpath("class_labels_indices.csv")
    with text.open("r", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    names = tuple(name for _, _, name in sorted(rows, key=lambda r: int(r[0])))
    assert len(names) == NUM_WEAK_CLASSES, len(names)
    return names


def require_mp3() -> None:
    """Raise a clear error if this libsndfile cannot decode MP3 (needs libsndfile >= 1.1)."""
    if "MP3" not in sf.available_formats():
        raise AudioError(f"libsndfile {sf.__libsndfile_version__} cannot decode MP3 (needs "
                         ">= 1.1.0); install soundfile >= 0.12.1 (its wheels bundle libsndfile "
                         ">= 1.2)")


def restrict_to_vocab(clips: dict[str, list[Event]], vocab: Vocabulary,
                      where: str) -> dict[str, list[Event]]:
    """Drop events of classes outside ``vocab`` (clips stay), logging how many of which."""
    dropped: Counter[str] = Counter()
    kept: dict[str, list[Event]] = {}
    for fn, events in clips.items():
        kept[fn] = [e for e in events if e.label in vocab]
        dropped.update(e.label for e in events if e.label not in vocab)
    if dropped:
        logger.info("%s: dropped %d events of %d classes outside %r (e.g. %s)", where,
                    sum(dropped.values()), len(dropped), vocab.name,
                    ", ".join(f"{k} x{n}" for k, n in dropped.most_common(5)))
    return kept


def _strong_labels(tsv: Path, vocab: Vocabulary) -> dict[str, list[Event]]:
    clips = read_audioset_strong_tsv(tsv, ext=".mp3", skip_unknown=True)  # unknown MIDs: dropped
    return restrict_to_vocab(clips, vocab, str(tsv))


def audioset_strong_source(tsv: str | os.PathLike, audio_dir: str | os.PathLike,
                           durations_file: str | os.PathLike | None = None, *,
                           vocab: Vocabulary | None = None, on_error: str = "raise",
                           **kwargs: Any) -> FileSource:
    """Google's strong TSV + a folder of ``Y<ytid>.<ext>`` files (any audio extension, any
    depth below the folder)."""
    vocab = vocab or audioset_strong_classes()
    labels = _strong_labels(Path(tsv), vocab)
    paths, missing = resolve_audio(sorted(labels), audio_dir, where=str(tsv), on_error=on_error,
                                   missing_ok=True)
    durations = read_durations_file(durations_file) if durations_file else None
    return FileSource(paths, ground_truth=labels, durations=durations, missing=missing,
                      vocab=vocab, on_error=on_error, skip_unknown=True,
                      name=f"audioset-strong:{tsv}:{audio_dir}", **kwargs)


def audioset_weak_source(weak_tsv: str | os.PathLike, audio_dir: str | os.PathLike, *,
                         vocab: Vocabulary | None = None, **kwargs: Any) -> FileSource:
    """A weak TSV (``filename→event_labels``, display names) + its audio folder; 527 classes."""
    return _labelled_source(Path(weak_tsv), Path(audio_dir), strong=False, durations_file=None,
                            vocab=vocab, default_vocab=audioset_weak_classes(),
                            name=f"audioset-weak:{weak_tsv}:{audio_dir}", **kwargs)


def _decode_name(raw: Any) -> str:
    name = raw.decode("utf-8") if isinstance(raw, (bytes, np.bytes_)) else str(raw)
    return strip_audio_ext(name.rsplit("/", 1)[-1]) + ".mp3"


class AudioSetHDF5Source(ClipSource):
    """A PaSST-style HDF5 file: strong labels from ``strong_tsv`` (the clips of the TSV present in
    the file, in file order; 447 classes) or, without it, the weak ``target`` (527 classes)."""

    def __init__(self, path: str | os.PathLike, strong_tsv: str | os.PathLike | None = None, *,
                 durations_file: str | os.PathLike | None = None,
                 vocab: Vocabulary | None = None, **kwargs: Any) -> None:
        require_mp3()
        self.path = Path(path)
        try:
            with h5py.File(self.path, "r") as f:
                absent = [k for k in HDF5_DATASETS if k not in f]
                if absent:
                    raise FormatError(f"{self.path}: no dataset {absent[0]!r} (found {sorted(f)}); "
                                      f"expected {HDF5_DATASETS}")
                names = [_decode_name(n) for n in f["audio_name"][()]]
                target_shape = f["target"].shape
        except OSError as err:
            raise FormatError(f"{self.path}: not a readable HDF5 file ({err})") from None
        packed = -(-NUM_WEAK_CLASSES // 8)
        if len(target_shape) != 2 or target_shape[0] != len(names) or \
                target_shape[1] not in (packed, NUM_WEAK_CLASSES):
            raise FormatError(f"{self.path}: 'target' has shape {target_shape}, expected "
                              f"({len(names)}, {packed}) bit-packed or ({len(names)}, 527)")
        self.rows: dict[str, int] = {}
        for row, name in enumerate(names):
            if name in self.rows:
                raise FormatError(f"{self.path}: clip {name!r} in rows {self.rows[name]} and {row}")
            self.rows[name] = row
        strong = strong_tsv is not None
        vocab = vocab or (audioset_strong_classes() if strong else audioset_weak_classes())
        if strong:
            labels = _strong_labels(Path(strong_tsv), vocab)
            filenames = [n for n in names if n in labels]
            missing = sorted(set(labels) - set(self.rows))
            if missing:  # expected: the train TSV covers the balanced and unbalanced files
                logger.info("%s: %d of %d labelled clips are not in %s (e.g. %s); they are left "
                            "out", strong_tsv, len(missing), len(labels), self.path, missing[:5])
        else:
            filenames, missing = names, []
            order = {name: i for i, name in enumerate(weak_index_names())}
            unknown = [n for n in vocab.names if n not in order]
            if unknown:
                raise UnknownClassError(f"{self.path}: classes {unknown[:5]} of vocabulary "
                                        f"{vocab.name!r} are not AudioSet weak classes")
            self._columns = np.array([order[n] for n in vocab.names])  # vocab -> file column
        spec = f"{self.path}:{strong_tsv}" if strong else str(self.path)
        super().__init__(name=f"audioset-hdf5:{spec}", vocab=vocab, filenames=filenames,
                         has_strong=strong, skip_unknown=strong, **kwargs)
        self.missing = missing
        if strong:
            self._ground_truth = labels
        if durations_file:
            self.use_durations(read_durations_file(durations_file))
        self._packed = target_shape[1] == packed
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")  # never reuse a handle inherited via fork
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None
        return state

    def _open(self, index: int) -> tuple[str, sf.SoundFile]:
        fn = self.filenames[index]
        name = f"{self.path}[{self.rows[fn]}] {fn}"
        try:
            raw = self._handle()["mp3"][self.rows[fn]]
        except (OSError, KeyError, ValueError) as err:
            raise AudioError(f"{name}: cannot read the mp3 bytes ({err})") from None
        data = raw if isinstance(raw, bytes) else np.asarray(raw).tobytes()
        return name, open_audio(data, name)

    def _weak_target(self, index: int) -> np.ndarray:
        row = np.asarray(self._handle()["target"][self.rows[self.filenames[index]]])
        bits = np.unpackbits(row.astype(np.uint8), count=NUM_WEAK_CLASSES) if self._packed else row
        return bits.astype(np.float32)[self._columns]  # (K,) in vocabulary order

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._pid = None, None

"""Data sources for training and evaluation, opened from one ``--data`` grammar.

:func:`open_source` parses it. Fields are separated by ``:`` (so paths may not contain ``:``);
required fields come first, optional ones last; a label file precedes its audio folder::

    synth[:N[:SEED]]                  embedded synthetic set (sedlib.data.synth): N clips of the
                                      split (default 2000 train / 250 validation / 250 eval),
                                      SynthConfig(synth_seed=SEED), 11 classes
    DIR  or  folder:DIR               DESED layout as `sedlib synth` writes it: DIR/audio/*,
                                      DIR/strong.tsv (or only DIR/weak.tsv: weak-only set),
                                      optional DIR/durations.tsv; classes: synthetic or DESED,
                                      whichever holds every label
    desed:STRONG_TSV:AUDIO_DIR[:DURATIONS_TSV]
                                      real DESED strong labels + audio folder (10 classes)
    audioset-strong:TSV:AUDIO_DIR[:DURATIONS]
                                      Google's strong TSV + a folder of Y<ytid>.<audio ext>
                                      (447 classes, AudioSet protocol: sedlib.data.audioset)
    audioset-hdf5:FILE.hdf[:STRONG_TSV[:DURATIONS]]
                                      PaSST-style HDF5; with STRONG_TSV strong (447 classes, the
                                      TSV's clips present in the file), else weak (527)
    audioset-weak:FILE.hdf            PaSST-style HDF5, weak labels (527): teacher-only data
    audioset-weak:WEAK_TSV:AUDIO_DIR  weak TSV (filename, event_labels) + audio folder (527)

``DURATIONS``: a ``filename→duration`` TSV or the reference's ``eval_durations.csv``; clips it
does not list are measured from their audio headers. A folder named like a kind (``synth``) is
opened as ``folder:synth`` or ``./synth``.

Items are dicts (default-collatable): ``waveform`` float32 ``(N,)`` at 16 kHz, exactly
``AudioConfig.clip_samples`` long; ``targets`` float32 ``(K, T)`` (strong sets) or
``weak_targets`` float32 ``(K,)`` (weak-only sets); ``filename`` (the clip key, also the key of a
pseudo-label store) and ``index``. Clips longer than 10 s are cut at the native rate before
resampling, as the reference does: a random crop in the ``train`` split, drawn from
``SeedSequence(seed, (CROP_SALT, epoch, index))`` (call :func:`set_epoch` on the wrapped data set
before each epoch, with ``persistent_workers=False``), the first 10 s otherwise; strong labels move
with the crop. Shorter clips are zero-padded at the end.

Unreadable audio: ``on_error="raise"`` raises :class:`AudioError` naming the file; ``"skip"`` logs
one warning naming the file and returns the next readable clip (index + 1, + 2, ... wrapping), and
counts it in ``source.skipped`` (per process: with DataLoader workers each worker counts its own,
the warnings name every file). Clips listed in a label file without an audio file raise as well,
or are left out with a warning (``"skip"``, and always for AudioSet, where unavailable YouTube
videos are the norm); they are listed in ``source.missing``.

Table II (distillation on a teacher-only set): :func:`paired_loader` runs a strong and a weak
DataLoader of equal batch size in lockstep (Lightning's ``CombinedLoader(mode="min_size")``), so
every step sees 50 % clips of each.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import default_collate
from tqdm.auto import tqdm

from sedlib.audio import _read_mono, audio_duration, fit_to_length, resample
from sedlib.config import AudioConfig
from sedlib.data.formats import (
    read_audioset_durations_csv, read_durations_tsv, read_strong_tsv, read_weak_tsv,
)
from sedlib.data.labels import (
    Event, Vocabulary, desed_classes, encode_events,
)
from sedlib.data.synth import (
    SPLITS, SynthConfig, SynthDataset, synth_filename, synth_vocabulary, synthesize_clip,
)
from sedlib.errors import AudioError, FormatError, SedlibError, UnknownClassError

logger = logging.getLogger(__name__)

CROP_SALT = 0x43524F50  # "CROP": keeps crop streams apart from other SeedSequence users of a seed
ON_ERROR = ("raise", "skip")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif")
DEFAULT_SYNTH_LENGTH = {"train": 2000, "validation": 250, "eval": 250}
SPEC_FORMS = (
    "synth[:N[:SEED]]",
    "DIR | folder:DIR",
    "desed:STRONG_TSV:AUDIO_DIR[:DURATIONS_TSV]",
    "audioset-strong:TSV:AUDIO_DIR[:DURATIONS]",
    "audioset-hdf5:FILE.hdf[:STRONG_TSV[:DURATIONS]]",
    "audioset-weak:FILE.hdf | audioset-weak:WEAK_TSV:AUDIO_DIR",
)
#: kind -> (fewest, most) fields after the kind
_KINDS = {"synth": (0, 2), "folder": (1, 1), "desed": (2, 3), "audioset-strong": (2, 3),
          "audioset-hdf5": (1, 3), "audioset-weak": (1, 2)}


class DataSpecError(SedlibError, ValueError):
    """A ``--data`` string does not follow the grammar; the message lists the accepted forms."""


# --- decoding ------------------------------------------------------------------------------------

def open_audio(data: str | os.PathLike | bytes, name: str) -> sf.SoundFile:
    """Open a file (path) or an in-memory encoded file (bytes) for reading; any failure becomes an
    :class:`AudioError` naming ``name``."""
    if not isinstance(data, (bytes, bytearray)) and not Path(data).is_file():
        raise AudioError(f"{name}: no such audio file")
    try:
        return sf.SoundFile(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else str(data))
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        raise AudioError(f"{name}: cannot read audio (unsupported or corrupt file): {exc}") from exc


def read_clip(f: sf.SoundFile, name: str, audio: AudioConfig,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, float]:
    """One clip of an open file -> (float32 ``(clip_samples,)`` mono at ``audio.sample_rate``,
    crop offset in seconds).

    At most ``clip_seconds`` are read at the native rate, from a random offset drawn with ``rng``
    when the file is longer (the reference's crop), else from the start; then resampled
    (:func:`sedlib.audio.resample`) and zero-padded or cut to exactly ``clip_samples``.
    """
    sr, total = f.samplerate, int(f.frames)
    if total <= 0:
        raise AudioError(f"{name}: zero-length audio (no samples)")
    want = int(round(audio.clip_seconds * sr))
    offset = int(rng.integers(total - want + 1)) if rng is not None and total > want else 0
    x = _read_mono(f, name, offset, min(want, total - offset))  # (n,) native rate
    if x.size == 0:
        raise AudioError(f"{name}: no samples could be decoded")
    y = fit_to_length(resample(x, sr, audio.sample_rate), audio.clip_samples)  # (N,)
    return np.ascontiguousarray(y, dtype=np.float32), offset / sr


# --- base class ----------------------------------------------------------------------------------

class ClipSource(torch.utils.data.Dataset):
    """Base of every source: crop/pad, labels, error policy, the contract attributes.

    Subclasses fill ``filenames`` (order = item order) and either ``_ground_truth`` (strong) or
    implement :meth:`_weak_target` (weak), and implement :meth:`_open` (or override :meth:`load`).
    """

    def __init__(self, *, name: str, vocab: Vocabulary, filenames: Iterable[str], has_strong: bool,
                 split: str = "train", audio_config: AudioConfig | None = None,
                 on_error: str = "raise", seed: int = 0, length: int | None = None,
                 skip_unknown: bool = False) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        filenames = list(filenames)
        if length is not None:
            if not isinstance(length, int) or not 0 < length <= len(filenames):
                raise ValueError(f"{name}: length must be in [1, {len(filenames)}] (the clips "
                                 f"available), got {length!r}")
            filenames = filenames[:length]
        if not filenames:
            raise FormatError(f"{name}: no clips")
        self.name, self.vocab, self.filenames = name, vocab, filenames
        self.has_strong, self.split, self.skip_unknown = has_strong, split, skip_unknown
        self.audio_config = audio_config or AudioConfig()
        self.on_error, self.seed, self.epoch = on_error, int(seed), 0
        self.random_crop = split == "train"
        self.missing: list[str] = []  # labelled clips without audio, left out at open time
        self._bad: set[int] = set()
        self._ground_truth: dict[str, list[Event]] | None = None
        self._durations: dict[str, float] | None = None
        self._kept_gt: dict[str, list[Event]] | None = None

    def __len__(self) -> int:
        return len(self.filenames)

    def __repr__(self) -> str:
        kind = f"strong, K={len(self.vocab)}" if self.has_strong else f"weak, K={len(self.vocab)}"
        return f"{type(self).__name__}({self.name!r}, {self.split}, {len(self)} clips, {kind})"

    @property
    def skipped(self) -> int:
        """Clips found unreadable (and skipped) in this process."""
        return len(self._bad)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def crop_rng(self, index: int) -> np.random.Generator:
        key = (CROP_SALT, self.epoch, int(index))
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    @property
    def ground_truth(self) -> dict[str, list[Event]] | None:
        """``{filename: [Event, ...]}`` of the clips in this source (None for weak-only sets)."""
        if not self.has_strong:
            return None
        if self._kept_gt is None:
            full = self._ground_truth
            if full is None:
                full = self._make_ground_truth()
            self._kept_gt = {fn: full.get(fn, []) for fn in self.filenames}
        return self._kept_gt

    @property
    def durations(self) -> dict[str, float]:
        """``{filename: seconds}`` for evaluation: from a durations file, else audio headers
        (read once; an unreadable clip raises, or with ``on_error="skip"`` is left out)."""
        known = self._durations = self._durations or {}
        todo = [i for i, fn in enumerate(self.filenames) if fn not in known and i not in self._bad]
        for i in tqdm(todo, desc=f"durations {self.name}", unit="clip", disable=len(todo) < 500):
            try:
                known[self.filenames[i]] = self._duration(i)
            except AudioError as err:
                if self.on_error == "raise":
                    raise
                self._bad.add(i)
                logger.warning("no duration for unreadable clip %s (%s)", self.filenames[i], err)
        return {fn: known[fn] for fn in self.filenames if fn in known}

    def use_durations(self, table: Mapping[str, float]) -> None:
        """Take durations from a table (names matched without audio extension); clips it lacks
        are still measured from their audio."""
        table = {strip_audio_ext(k): v for k, v in table.items()}
        self._durations = {fn: table[strip_audio_ext(fn)] for fn in self.filenames
                           if strip_audio_ext(fn) in table}

    # hooks ----------------------------------------------------------------------------------------
    def _make_ground_truth(self) -> dict[str, list[Event]]:
        raise NotImplementedError

    def _open(self, index: int) -> tuple[str, sf.SoundFile]:
        """(name for messages, open SoundFile) of clip ``index``; raises AudioError."""
        raise NotImplementedError

    def _weak_target(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def _duration(self, index: int) -> float:
        _, f = self._open(index)
        with f:
            return int(f.frames) / f.samplerate

    # items ----------------------------------------------------------------------------------------
    def _labels(self, index: int, offset: float) -> dict[str, torch.Tensor]:
        cfg = self.audio_config
        if not self.has_strong:
            return {"weak_targets": torch.from_numpy(self._weak_target(index))}  # (K,)
        events = self.ground_truth[self.filenames[index]]
        if offset > 0:
            events = [Event(e.filename, e.onset - offset, e.offset - offset, e.label)
                      for e in events]
        targets = encode_events(events, self.vocab, cfg.label_frames, cfg.frames_per_second,
                                ignore_unknown=self.skip_unknown)  # (K, T)
        return {"targets": torch.from_numpy(targets)}

    def load(self, index: int) -> dict[str, Any]:
        """Item ``index``; raises AudioError for unreadable audio whatever ``on_error`` says."""
        name, f = self._open(index)
        rng = self.crop_rng(index) if self.random_crop else None
        with f:
            waveform, offset = read_clip(f, name, self.audio_config, rng)
        return {"waveform": torch.from_numpy(waveform), **self._labels(index, offset),
                "filename": self.filenames[index], "index": index}

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index!r} out of range [0, {len(self)})")
        index = int(index)
        if self.on_error == "raise":
            return self.load(index)
        for step in range(len(self)):
            j = (index + step) % len(self)
            if j in self._bad:
                continue
            try:
                return self.load(j)
            except AudioError as err:
                self._bad.add(j)
                logger.warning("skipping unreadable clip %s (%s); using the next readable clip "
                               "(%d skipped so far in this process)",
                               self.filenames[j], err, len(self._bad))
        raise AudioError(f"{self.name}: none of the {len(self)} clips is readable")


# --- file-based sources --------------------------------------------------------------------------

def strip_audio_ext(name: str) -> str:
    """``"a.b.wav"`` -> ``"a.b"``; a name without a known audio extension is kept whole."""
    low = name.lower()
    for ext in AUDIO_EXTENSIONS:
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


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
    candidates = (synth_vocabulary(), desed_classes())
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


def folder_source(root: str | os.PathLike, *, vocab: Vocabulary | None = None,
                  **kwargs: Any) -> FileSource:
    """A folder in the DESED layout written by ``sedlib synth``: ``audio/``, ``strong.tsv`` (or
    only ``weak.tsv``), optional ``durations.tsv``."""
    root = Path(root)
    strong, weak = root / "strong.tsv", root / "weak.tsv"
    if not (root / "audio").is_dir() or not (strong.is_file() or weak.is_file()):
        raise FormatError(f"{root}: expected the DESED layout: {root}/audio/ with the clips, "
                          f"{root}/strong.tsv (or weak.tsv) and optionally durations.tsv")
    durations = root / "durations.tsv"
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


# --- synthetic -----------------------------------------------------------------------------------

class SynthSource(ClipSource):
    """The embedded synthetic set (:class:`~sedlib.data.synth.SynthDataset`) with the source
    attributes; ground truth comes from the clip plans, without rendering audio."""

    def __init__(self, split: str = "train", length: int | None = None, *,
                 synth_config: SynthConfig = SynthConfig(), vocab: Vocabulary | None = None,
                 audio_config: AudioConfig | None = None, **kwargs: Any) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        n = DEFAULT_SYNTH_LENGTH[split] if length is None else length
        audio_config = audio_config or AudioConfig()
        self.synth = SynthDataset(split, n, synth_config, audio_config)  # checks n and the rates
        super().__init__(name=f"synth:{n}:{synth_config.synth_seed}",
                         vocab=vocab or synth_vocabulary(),
                         filenames=[synth_filename(split, i) for i in range(n)], has_strong=True,
                         split=split, audio_config=audio_config, **kwargs)
        self._durations = {fn: synth_config.synth_clip_seconds for fn in self.filenames}

    def _make_ground_truth(self) -> dict[str, list[Event]]:
        return {fn: self.synth.events(i) for i, fn in enumerate(self.filenames)}

    def load(self, index: int) -> dict[str, Any]:
        waveform, events = synthesize_clip(self.synth.config, self.split, index)
        cfg = self.audio_config
        targets = encode_events(events, self.vocab, cfg.label_frames, cfg.frames_per_second)
        return {"waveform": torch.from_numpy(waveform), "targets": torch.from_numpy(targets),
                "filename": self.filenames[index], "index": index}


# --- the spec parser -----------------------------------------------------------------------------

def _spec_error(spec: str, why: str) -> DataSpecError:
    forms = "\n  ".join(SPEC_FORMS)
    return DataSpecError(f"bad data spec {spec!r}: {why}; accepted forms:\n  {forms}")


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """``"kind:field:..."`` -> ``(kind, fields)``, counts checked; a bare existing directory is
    ``("folder", [dir])``."""
    if not isinstance(spec, str) or not spec.strip():
        raise _spec_error(str(spec), "empty")
    kind, sep, rest = spec.partition(":")
    if kind not in _KINDS:
        if not sep and Path(spec).is_dir():
            return "folder", [spec]
        raise _spec_error(spec, f"{kind!r} is neither a known kind ({', '.join(_KINDS)}) nor an "
                                "existing directory")
    fields = rest.split(":") if sep else []
    low, high = _KINDS[kind]
    if not low <= len(fields) <= high or any(not f for f in fields):
        raise _spec_error(spec, f"{kind} takes {low} to {high} non-empty ':'-separated fields, "
                                f"got {len(fields)}")
    return kind, fields


def _int_field(spec: str, text: str, what: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _spec_error(spec, f"{what} must be an integer, got {text!r}") from None
    if value < low:
        raise _spec_error(spec, f"{what} must be >= {low}, got {value}")
    return value


def _existing(spec: str, text: str, what: str, folder: bool) -> Path:
    path = Path(text)
    if folder and not path.is_dir():
        hint = " (a file: are the fields in the order of the grammar?)" if path.is_file() else ""
        raise _spec_error(spec, f"{what} {text!r} is not a directory{hint}")
    if not folder and not path.is_file():
        hint = " (a directory: are the fields in the order of the grammar?)" if path.is_dir() \
            else ""
        raise _spec_error(spec, f"{what} {text!r} is not a file{hint}")
    return path


def open_source(spec: str, *, split: str = "train", audio_config: AudioConfig | None = None,
                vocab: Vocabulary | None = None, on_error: str = "raise",
                length: int | None = None, seed: int = 0) -> ClipSource:
    """Open the data source a ``--data`` string names (grammar: module docstring).

    ``split``: ``train`` (random crops; for ``synth`` also the clip stream) or ``validation`` /
    ``eval`` (first 10 s). ``vocab``: classes to encode (default: the source's own).
    ``length``: use only the first ``length`` clips (for ``synth``: the clip count, which
    ``synth:N`` may give instead). ``seed``: the crop seed. Raises :class:`DataSpecError` for a bad spec.
    """
    kind, fields = parse_spec(spec)
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    common = dict(split=split, audio_config=audio_config, on_error=on_error, seed=seed)
    if kind == "synth":
        n = _int_field(spec, fields[0], "N (clips)", 1) if fields else length
        if fields and length is not None and length != n:
            raise _spec_error(spec, f"it asks for {n} clips but length={length} was given")
        synth_seed = _int_field(spec, fields[1], "SEED", 0) if len(fields) > 1 else 0
        # clips are generated at the length the model trains on (AudioConfig.clip_seconds)
        seconds = audio_config.clip_seconds if audio_config is not None else 10.0
        return SynthSource(length=n, vocab=vocab, **common,
                           synth_config=SynthConfig(synth_seed=synth_seed, synth_clip_seconds=seconds))
    common.update(vocab=vocab, length=length)
    if kind == "folder":
        return folder_source(_existing(spec, fields[0], "DIR", True), **common)
    if kind == "desed":
        durations = _existing(spec, fields[2], "DURATIONS_TSV", False) if len(fields) > 2 else None
        return desed_source(_existing(spec, fields[0], "STRONG_TSV", False),
                            _existing(spec, fields[1], "AUDIO_DIR", True), durations, **common)
    from sedlib.data import audioset  # deferred: it builds on this module

    if kind == "audioset-strong":
        durations = _existing(spec, fields[2], "DURATIONS", False) if len(fields) > 2 else None
        return audioset.audioset_strong_source(_existing(spec, fields[0], "TSV", False),
                                               _existing(spec, fields[1], "AUDIO_DIR", True),
                                               durations, **common)
    if kind == "audioset-hdf5":
        hdf = _existing(spec, fields[0], "FILE.hdf", False)
        tsv = _existing(spec, fields[1], "STRONG_TSV", False) if len(fields) > 1 else None
        durations = _existing(spec, fields[2], "DURATIONS", False) if len(fields) > 2 else None
        return audioset.AudioSetHDF5Source(hdf, tsv, durations_file=durations, **common)
    # audioset-weak
    if len(fields) == 1:
        return audioset.AudioSetHDF5Source(_existing(spec, fields[0], "FILE.hdf", False), **common)
    return audioset.audioset_weak_source(_existing(spec, fields[0], "WEAK_TSV", False),
                                         _existing(spec, fields[1], "AUDIO_DIR", True), **common)


# --- batching ------------------------------------------------------------------------------------

def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``default_collate`` after checking all items have the same keys (a strong and a weak item
    in one batch would otherwise fail with a bare KeyError)."""
    keys = set(items[0])
    for item in items[1:]:
        if set(item) != keys:
            raise ValueError(f"cannot batch item {item.get('filename')!r} (keys {sorted(item)}) "
                             f"with {items[0].get('filename')!r} (keys {sorted(keys)})")
    return default_collate(items)


def set_epoch(dataset: Any, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on a data set and every data set it wraps (``.dataset`` of
    WavMixDataset / WithPseudoLabels / Subset, ``.datasets`` of ConcatDataset)."""
    seen: set[int] = set()
    stack = [dataset]
    while stack:
        ds = stack.pop()
        if ds is None or id(ds) in seen:
            continue
        seen.add(id(ds))
        if callable(getattr(ds, "set_epoch", None)):
            ds.set_epoch(epoch)
        stack.append(getattr(ds, "dataset", None))
        stack.extend(getattr(ds, "datasets", None) or [])


class PairedLoader:
    """Two loaders in lockstep: each step yields ``{"strong": batch, "weak": batch}``; an epoch
    ends with the shorter one (Lightning ``CombinedLoader(..., mode="min_size")``)."""

    def __init__(self, strong_loader: Iterable, weak_loader: Iterable) -> None:
        sizes = [getattr(loader, "batch_size", None) for loader in (strong_loader, weak_loader)]
        if None not in sizes and sizes[0] != sizes[1]:
            raise ValueError(f"paired loaders must have equal batch sizes for a 50/50 mix, got "
                             f"strong {sizes[0]} and weak {sizes[1]}")
        self.strong, self.weak = strong_loader, weak_loader

    def __len__(self) -> int:
        return min(len(self.strong), len(self.weak))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for strong, weak in zip(self.strong, self.weak):
            yield {"strong": strong, "weak": weak}


def paired_loader(strong_loader: Iterable, weak_loader: Iterable) -> PairedLoader:
    """Batches of 50 % strongly labelled and 50 % teacher-only clips (Table II): iterate both
    loaders in lockstep. Build the two DataLoaders with the same ``batch_size``."""
    return PairedLoader(strong_loader, weak_loader)

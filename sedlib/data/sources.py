"""Clip sources: :class:`ClipSource` turns audio plus labels into training items (waveform,
frame targets ``(K, T)``, filename; random crops of longer files), and :class:`SynthSource`
wraps the embedded synthetic set. File-backed sources are in :mod:`sedlib.data.files` and
:mod:`sedlib.data.audioset`; the ``--data`` grammar in :mod:`sedlib.data.spec`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import soundfile as sf
import torch

from sedlib.audio.io import _read_mono, fit_to_length, resample
from sedlib.config import AudioConfig
from sedlib.data.labels import (
    Event,
    Vocabulary,
    encode_events,
)
from sedlib.data.synth.label_noise import CONFUSABLE, WORLD_CONFUSABLE, LabelNoise
from sedlib.data.synth.soundscape import (
    SPLITS,
    SynthConfig,
    SynthDataset,
    synth_filename,
    synth_vocabulary,
    synthesize_clip,
)
from sedlib.errors import AudioError, FormatError
from sedlib.progress import tqdm

logger = logging.getLogger(__name__)
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aiff", ".aif")
ON_ERROR = ("raise", "skip")
DEFAULT_SYNTH_LENGTH = {"train": 2000, "validation": 250, "eval": 250}

CROP_SALT = 0x43524F50  # "CROP": keeps crop streams apart from other SeedSequence users of a seed


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

    def keep_only(self, names: Iterable[str]) -> "ClipSource":
        """Restrict the source to these clips, in this order (to split a source by file);
        returns it."""
        names = list(names)
        unknown = sorted(set(names) - set(self.filenames))
        if unknown or not names:
            raise ValueError(f"{self.name}: cannot keep {unknown[:3] or 'no clips'}: not clips of this source")
        self.filenames, self._kept_gt = names, None
        return self

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


# --- synthetic -----------------------------------------------------------------------------------

class SynthSource(ClipSource):
    """The embedded synthetic set (:class:`~sedlib.data.synth.SynthDataset`) with the source
    attributes; ground truth comes from the clip plans, without rendering audio."""

    def __init__(self, split: str = "train", length: int | None = None, *,
                 synth_config: SynthConfig = SynthConfig(), vocab: Vocabulary | None = None,
                 audio_config: AudioConfig | None = None, label_noise: LabelNoise | None = None,
                 **kwargs: Any) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        self.label_noise = label_noise if label_noise is not None and label_noise.active else None
        if self.label_noise is not None and split != "train":
            raise ValueError(f"label_noise is for training annotations; {split} labels stay exact")
        n = DEFAULT_SYNTH_LENGTH[split] if length is None else length
        audio_config = audio_config or AudioConfig()
        self.synth = SynthDataset(split, n, synth_config, audio_config)  # checks n and the rates
        world = "" if synth_config.synth_world == "basic" else f":world={synth_config.synth_world}"
        super().__init__(name=f"synth:{n}:{synth_config.synth_seed}{world}",
                         vocab=vocab or synth_vocabulary(synth_config.synth_world),
                         filenames=[synth_filename(split, i) for i in range(n)], has_strong=True,
                         split=split, audio_config=audio_config, **kwargs)
        self._durations = {fn: synth_config.synth_clip_seconds for fn in self.filenames}

    def annotation(self, index: int, events: list[Event] | None = None) -> list[Event]:
        """Clip ``index``'s labels: its exact events, with :attr:`label_noise` if set."""
        events = self.synth.events(index) if events is None else events
        if self.label_noise is None:
            return events
        cfg = self.synth.config
        return self.label_noise.apply(events, seed=cfg.synth_seed, index=index,
                                      clip_seconds=cfg.synth_clip_seconds,
                                      confusable=WORLD_CONFUSABLE.get(cfg.synth_world, CONFUSABLE))

    def _make_ground_truth(self) -> dict[str, list[Event]]:
        return {fn: self.annotation(i) for i, fn in enumerate(self.filenames)}

    def cache_identity(self) -> dict[str, Any]:
        """What this source's items depend on (the key of :func:`sedlib.data.clip_cache.cached`):
        split, clip count, synthesis and audio settings, class names, synthesis code."""
        return {"source": "synth", "split": self.split, "clips": len(self),
                "synth": dataclasses.asdict(self.synth.config),
                "audio": dataclasses.asdict(self.audio_config), "classes": list(self.vocab.names),
                "label_noise": None if self.label_noise is None else dataclasses.asdict(self.label_noise),
                "code": _synth_code_digest()}

    def load(self, index: int) -> dict[str, Any]:
        waveform, events = synthesize_clip(self.synth.config, self.split, index)
        events = self.annotation(index, events)
        cfg = self.audio_config
        targets = encode_events(events, self.vocab, cfg.label_frames, cfg.frames_per_second)
        return {"waveform": torch.from_numpy(waveform), "targets": torch.from_numpy(targets),
                "filename": self.filenames[index], "index": index}



@functools.lru_cache(maxsize=1)
def _synth_code_digest() -> str:
    """sha256 of the code that renders and labels synthetic clips (a change invalidates caches)."""
    from sedlib.data import labels, synth

    files = sorted(Path(synth.__file__).parent.glob("*.py")) + [Path(labels.__file__)]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def strip_audio_ext(name: str, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> str:
    """``"a.b.wav"`` -> ``"a.b"``; a name without one of ``extensions`` is kept whole."""
    low = name.lower()
    for ext in extensions:
        if low.endswith(ext):
            return name[: -len(ext)]
    return name

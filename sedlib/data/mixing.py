"""Isolated sounds -> training soundscapes with exact strong labels.

Most people who want their own classes have isolated recordings of each sound (a folder per
class) and some background recordings, not labelled mixtures. :func:`mix_soundscapes` places
randomly chosen sounds at random times and levels over a random stretch of a background, and
writes the clips in the DESED layout (``audio/``, ``strong.tsv``, ``durations.tsv``) that every
``--data DIR`` command reads, with ``classes.txt`` (the class folders' names, sorted: the
vocabulary).

Why not scaper: scaper (the field's soundscape mixer) needs the SoX binary through pysox for
every clip it renders and JAMS for its annotations; neither is installable here without a
system package, and its event model (a uniform/normal/truncnorm distribution per parameter) is
what the few lines below do with numpy. The rules, all drawn from ``seed`` per clip (so clip i
is the same whatever N is):

- **Foreground** ``DIR/<class>/<file>``: each file is one sound. Its label is the span where the
  sound is present: leading and trailing frames more than :data:`SILENCE_DB` below the file's
  loudest 10 ms frame are trimmed, so labels are tight even on padded recordings. A sound
  longer than the room left is cut at a random start.
- **Events per clip**: uniform in ``events`` (default 1-3); onsets uniform over the clip (a
  sound may run past the end and is cut; its label ends at the clip's end); overlaps allowed.
- **Levels**: the background at an RMS of ``background_dbfs`` dBFS; each sound at an SNR uniform
  in ``snr_db`` relative to the background (RMS over its present part); without backgrounds,
  white noise at -60 dBFS. A mix whose peak exceeds 0.99 is scaled down as a whole (labels do
  not change).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sedlib.audio.io import load_audio
from sedlib.data.labels import Event
from sedlib.data.sources import AUDIO_EXTENSIONS
from sedlib.errors import FormatError

logger = logging.getLogger(__name__)

#: Frames this far below the loudest frame of an isolated recording are not the sound.
SILENCE_DB = 40.0
_SALT = 0x6D6978  # "mix": this module's random streams


@dataclass(frozen=True)
class MixConfig:
    """How soundscapes are drawn (module doc)."""

    clip_seconds: float = 10.0
    events: tuple[int, int] = (1, 3)
    snr_db: tuple[float, float] = (0.0, 15.0)
    background_dbfs: float = -30.0
    sample_rate: int = 16_000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.events[0] <= self.events[1]:
            raise ValueError(f"events must be 1 <= low <= high, got {self.events}")
        if self.snr_db[0] > self.snr_db[1] or self.clip_seconds <= 0:
            raise ValueError(f"bad snr_db {self.snr_db} or clip_seconds {self.clip_seconds}")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def trim_silence(x: np.ndarray, sample_rate: int, silence_db: float = SILENCE_DB) -> np.ndarray:
    """``x`` without the leading and trailing 10 ms frames ``silence_db`` below its loudest."""
    hop = max(1, sample_rate // 100)
    n = len(x) // hop
    if n == 0:
        return x
    energy = np.square(x[:n * hop].reshape(n, hop), dtype=np.float64).mean(axis=1)
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (-silence_db / 10))
    if not loud.size or energy.max() == 0:
        return x[:0]
    return x[loud[0] * hop:min(len(x), (loud[-1] + 1) * hop)]


def _class_files(root: Path) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise FormatError(f"{root}: not a folder (expected {root}/<class>/<isolated sound files>)")
    classes = {d.name: sorted(p for p in d.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
               for d in sorted(root.iterdir()) if d.is_dir()}
    classes = {c: files for c, files in classes.items() if files}
    if not classes:
        raise FormatError(f"{root}: no class folders with audio (expected {root}/<class>/<file>.wav)")
    return classes


def _load(paths: list[Path], sample_rate: int, trim: bool) -> list[np.ndarray]:
    out = []
    for p in paths:
        x = load_audio(p, sample_rate)
        x = trim_silence(x, sample_rate) if trim else x
        if not x.size:
            raise FormatError(f"{p}: silent (nothing above -{SILENCE_DB:g} dB of its peak)")
        out.append(x.astype(np.float32))
    return out


def mix_soundscapes(foreground: str | os.PathLike, out_dir: str | os.PathLike, clips: int, *,
                    background: str | os.PathLike | None = None, config: MixConfig = MixConfig(),
                    prefix: str = "mix", progress: bool = True) -> list[Event]:
    """Write ``clips`` soundscapes to ``out_dir`` (DESED layout; module doc) and return their
    events. Files appear atomically; an existing ``out_dir/strong.tsv`` is refused."""
    from sedlib.atomic import atomic_write
    from sedlib.data.formats import write_durations_tsv, write_strong_tsv
    from sedlib.progress import tqdm

    import soundfile as sf

    out = Path(out_dir)
    if (out / "strong.tsv").exists():
        raise FormatError(f"{out}: already holds a data set (strong.tsv); choose a new folder")
    sr = config.sample_rate
    by_class = _class_files(Path(foreground))
    sounds = {c: _load(files, sr, trim=True) for c, files in by_class.items()}
    beds = _load(sorted(p for p in Path(background).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS),
                 sr, trim=False) if background is not None else []
    if background is not None and not beds:
        raise FormatError(f"{background}: no background recordings")
    n = round(config.clip_seconds * sr)
    names = sorted(sounds)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    events: list[Event] = []
    durations = {}
    for i in tqdm(range(clips), desc="mix", unit="clip", disable=not progress):
        rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(_SALT, i)))
        if beds:
            bed = beds[rng.integers(len(beds))]
            reps = -(-n // len(bed))
            start = rng.integers(len(bed) * reps - n + 1)
            mix = np.tile(bed, reps)[start:start + n].astype(np.float64)
        else:
            mix = rng.standard_normal(n)
        mix *= 10 ** (config.background_dbfs / 20) / max(_rms(mix), 1e-12)
        bed_rms = _rms(mix)
        name = f"{prefix}_{i:06d}.wav"
        for _ in range(rng.integers(config.events[0], config.events[1] + 1)):
            label = names[rng.integers(len(names))]
            sound = sounds[label][rng.integers(len(sounds[label]))]
            onset = int(rng.integers(n))
            if len(sound) > n:  # longer than a clip: a random stretch of it
                cut = int(rng.integers(len(sound) - n + 1))
                sound = sound[cut:cut + n]
            part = sound[:n - onset]
            gain = bed_rms * 10 ** (rng.uniform(*config.snr_db) / 20) / max(_rms(sound), 1e-12)
            mix[onset:onset + len(part)] += gain * part
            events.append(Event(name, round(onset / sr, 6), round((onset + len(part)) / sr, 6), label))
        peak = np.abs(mix).max()
        if peak > 0.99:
            mix *= 0.99 / peak
        atomic_write(out / "audio" / name, lambda tmp, x=mix: sf.write(tmp, x.astype(np.float32), sr,
                                                                       subtype="PCM_16", format="WAV"))
        durations[name] = n / sr
    events.sort(key=lambda e: (e.filename, e.onset, e.offset, e.label))
    write_durations_tsv(out / "durations.tsv", durations)
    atomic_write(out / "classes.txt", lambda tmp: tmp.write_text("".join(f"{c}\n" for c in names)))
    write_strong_tsv(out / "strong.tsv", {f: [e for e in events if e.filename == f] for f in durations})
    logger.info("%s: %d clips, %d events of %d classes", out, clips, len(events), len(names))
    return events

"""The embedded default data set: deterministic synthetic soundscapes with exact strong labels.

A clip is a pure function of ``(synth_seed, split, index)``: its random generator is
``SeedSequence(synth_seed, spawn_key=(SALT, split_id, index))``, numpy's documented way of
deriving independent streams, so every clip is independent of all others and of the order (or
process) in which clips are made. The splits ``train`` / ``validation`` / ``eval`` use
``split_id`` 0 / 1 / 2: different streams, hence disjoint audio for the same index.

A clip is planned first (background, events, levels, positions; all times integer
milliseconds) and rendered second, so labels are known without rendering and are exact: each
class recipe (:mod:`sedlib.data.synth.sounds`) renders an event that is exactly zero outside
its audible segments, and an event's label spans the first to the last audible sample inside
the clip. Events of different classes overlap freely (some start together); events of one class
never overlap; an event may run over the clip start or end (its label is cut there: an alarm
whose pattern goes on past the clip end is labelled up to the end, even in a gap).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sedlib.config import AudioConfig
from sedlib.data.labels import Event, Vocabulary, encode_events
from sedlib.data.synth.dsp import samples
from sedlib.data.synth.patterns import shows_identity
from sedlib.data.synth.sounds import RECIPES, draw_background, render_background

logger = logging.getLogger(__name__)

#: the synthetic worlds: their classes, alphabetical. ``basic`` is the original set (11 classes);
#: ``context`` adds the classes named by a pattern longer than a small backbone's receptive field
#: (``ringtone``, ``ticking``; :mod:`sedlib.data.synth.patterns`). A basic-world clip is the same,
#: bit for bit, whatever other worlds exist.
WORLDS: dict[str, tuple[str, ...]] = {
    "basic": tuple(c for c in RECIPES if c not in ("ringtone", "ticking")),
    "context": tuple(RECIPES),
    "context2": tuple(RECIPES),
}
#: worlds in which a pattern cut by the clip edge keeps the parts that identify it
#: (:data:`sedlib.data.synth.patterns.IDENTIFYING_PARTS`): every label decidable from the clip
DECIDABLE_WORLDS: tuple[str, ...] = ("context2",)
SYNTH_CLASSES: tuple[str, ...] = WORLDS["basic"]
#: classes whose identity lies in a pattern longer than the study's small backbones' receptive
#: field (1.63 s for fmn02 / fmn04): repeated beeps, slow sweeps, double rings after pauses,
#: regular ticks (README "The embedded data set"); the study compares models on them apart.
LONG_CONTEXT_CLASSES: tuple[str, ...] = ("alarm", "siren", "ringtone", "ticking")
SPLITS: tuple[str, ...] = ("train", "validation", "eval")
SALT = 0x53594E54  # "SYNT": keeps these streams apart from other SeedSequence users of a seed


@dataclass(frozen=True)
class SynthConfig:
    """How synthetic clips are made. Same config, split and index -> the same clip, bit for bit."""

    synth_seed: int = 0
    synth_sample_rate: int = 16_000  # a multiple of 1 kHz, so millisecond labels are exact
    synth_clip_seconds: float = 10.0
    synth_min_events: int = 1
    synth_max_events: int = 6
    synth_snr_min_db: float = 3.0  # event RMS (over its audible parts) re the background level
    synth_snr_max_db: float = 24.0
    synth_background_min_db: float = -50.0  # background RMS, dB full scale
    synth_background_max_db: float = -30.0
    synth_same_onset_prob: float = 0.15  # an event starts exactly with an earlier one
    synth_boundary_prob: float = 0.15  # an event runs over the clip start or end
    synth_world: str = "basic"  # which classes exist (WORLDS)

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"SynthConfig: {what}")

        need(isinstance(self.synth_seed, (int, np.integer)) and 0 <= self.synth_seed,
             f"synth_seed must be an integer >= 0, got {self.synth_seed!r}")
        need(self.synth_sample_rate > 0 and self.synth_sample_rate % 1000 == 0,
             f"synth_sample_rate must be a positive multiple of 1000 Hz, got {self.synth_sample_rate}")
        ms = self.synth_clip_seconds * 1000
        need(ms >= 2000 and round(ms) == ms,
             f"synth_clip_seconds must be >= 2 s in whole milliseconds, got {self.synth_clip_seconds}")
        need(0 <= self.synth_min_events <= self.synth_max_events,
             f"need 0 <= synth_min_events <= synth_max_events, got {self.synth_min_events}, "
             f"{self.synth_max_events}")
        need(self.synth_snr_min_db <= self.synth_snr_max_db, "synth_snr_min_db > synth_snr_max_db")
        need(self.synth_background_min_db <= self.synth_background_max_db,
             "synth_background_min_db > synth_background_max_db")
        need(self.synth_world in WORLDS,
             f"synth_world must be one of {', '.join(WORLDS)}, got {self.synth_world!r}")
        for name in ("synth_same_onset_prob", "synth_boundary_prob"):
            value = getattr(self, name)
            need(0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}")

    @property
    def clip_ms(self) -> int:
        return int(round(self.synth_clip_seconds * 1000))

    @property
    def num_samples(self) -> int:
        return samples(self.clip_ms, self.synth_sample_rate)


def synth_vocabulary(world: str = "basic") -> Vocabulary:
    """The classes of the synthetic world ``world`` (:data:`WORLDS`), in model output order."""
    if world not in WORLDS:
        raise ValueError(f"unknown synthetic world {world!r}; expected one of {', '.join(WORLDS)}")
    return Vocabulary(WORLDS[world], f"synth-{len(WORLDS[world])}")


def synth_filename(split: str, index: int) -> str:
    _check_key(split, index)
    return f"synth_{split}_{index:06d}.wav"


def _check_key(split: str, index: int) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if not isinstance(index, (int, np.integer)) or not 0 <= index < 2**32:
        raise ValueError(f"clip index must be an integer in [0, 2**32), got {index!r}")


def clip_rng(config: SynthConfig, split: str, index: int) -> np.random.Generator:
    """The generator that plans clip ``index`` of ``split`` (independent of every other clip)."""
    _check_key(split, index)
    key = (SALT, SPLITS.index(split), int(index))
    return np.random.default_rng(np.random.SeedSequence(int(config.synth_seed), spawn_key=key))


@dataclass(frozen=True)
class _Placed:
    label: str
    params: dict
    start_ms: int  # event start in the clip (negative: it began before the clip)
    snr_db: float
    seed: int  # render generator seed (noise and phases only)
    onset_ms: int  # label: audible part inside the clip
    offset_ms: int


@dataclass(frozen=True)
class _Scene:
    filename: str
    background: dict
    background_db: float
    background_seed: int
    events: tuple[_Placed, ...]


def _visible(segments, start: int, clip_ms: int) -> tuple[int, int] | None:
    """Label of an event placed at ``start``: from its first to its last audible sample (gaps
    inside included, e.g. between the beeps of an alarm), cut to the clip."""
    onset = max(start + min(a for a, _ in segments), 0)
    offset = min(start + max(b for _, b in segments), clip_ms)
    return (onset, offset) if onset < offset else None


def _plan(config: SynthConfig, split: str, index: int) -> _Scene:
    rng = clip_rng(config, split, index)
    clip_ms, max_ms = config.clip_ms, int(0.9 * config.clip_ms)
    background = draw_background(rng)
    background_db = rng.uniform(config.synth_background_min_db, config.synth_background_max_db)
    background_seed = int(rng.integers(2**63))
    placed: list[_Placed] = []
    for _ in range(int(rng.integers(config.synth_min_events, config.synth_max_events + 1))):
        classes = WORLDS[config.synth_world]
        label = classes[rng.integers(len(classes))]
        params = RECIPES[label].draw(rng, max_ms)
        length = params["length_ms"]
        snr_db = rng.uniform(config.synth_snr_min_db, config.synth_snr_max_db)
        seed = int(rng.integers(2**63))
        for _attempt in range(10):
            u = rng.random()
            if u < config.synth_same_onset_prob and placed:
                start = placed[rng.integers(len(placed))].start_ms
            elif u < config.synth_same_onset_prob + config.synth_boundary_prob:
                if rng.integers(2):
                    start = -int(length * rng.uniform(0.1, 0.7))  # began before the clip
                else:
                    start = clip_ms - int(length * rng.uniform(0.3, 0.9))  # ends after it
            else:
                start = int(rng.integers(0, clip_ms - length + 1))
            clash = any(p.label == label and start < p.start_ms + p.params["length_ms"]
                        and p.start_ms < start + length for p in placed)
            hull = _visible(params["segments"], start, clip_ms)
            decidable = (config.synth_world not in DECIDABLE_WORLDS
                         or shows_identity(label, params["segments"], start, clip_ms))
            if not clash and hull is not None and decidable:
                placed.append(_Placed(label, params, start, snr_db, seed, *hull))
                break
    return _Scene(synth_filename(split, index), background, background_db, background_seed,
                  tuple(placed))


def _events(scene: _Scene) -> list[Event]:
    events = [Event(scene.filename, p.onset_ms / 1000, p.offset_ms / 1000, p.label)
              for p in scene.events]
    return sorted(events, key=lambda e: (e.onset, e.offset, e.label))


def _render(scene: _Scene, config: SynthConfig, keep_stems: bool):
    """-> (mixture float64 (N,), background (N,), stems [(N,)] or []) with mixture ==
    background + sum(stems) after the common peak limiting (mixture peak <= 0.99)."""
    sr, n = config.synth_sample_rate, config.num_samples
    level = 10 ** (scene.background_db / 20)
    rng = np.random.default_rng(scene.background_seed)
    background = level * render_background(scene.background, rng, n, sr)
    mix, stems = background.copy(), []
    for p in scene.events:
        x = RECIPES[p.label].render(p.params, np.random.default_rng(p.seed), sr)  # (L,)
        audible = np.zeros(len(x), dtype=bool)
        for a, b in p.params["segments"]:
            audible[samples(a, sr):samples(b, sr)] = True
        x *= level * 10 ** (p.snr_db / 20) / (np.sqrt(np.mean(x[audible] ** 2)) + 1e-12)
        s = samples(p.start_ms, sr)
        lo, hi = max(s, 0), min(s + len(x), n)
        mix[lo:hi] += x[lo - s:hi - s]
        if keep_stems:
            stem = np.zeros(n)
            stem[lo:hi] = x[lo - s:hi - s]
            stems.append(stem)
    scale = min(1.0, 0.99 / (np.abs(mix).max() + 1e-12))
    return mix * scale, background * scale, [stem * scale for stem in stems]


def synth_events(config: SynthConfig, split: str, index: int) -> list[Event]:
    """The strong labels of a clip, sorted by onset, without rendering its audio (fast)."""
    return _events(_plan(config, split, index))


def synth_event_parts(config: SynthConfig, split: str, index: int
                      ) -> list[tuple[Event, tuple[tuple[float, float], ...]]]:
    """Each labelled event of a clip with its audible parts inside the clip, in seconds (an
    alarm's beeps, a ringtone's rings, a knock's hits; one part for a continuous sound), without
    rendering audio. Frames of a label outside every part are labelled pauses; a pattern cut by
    the clip edge shows only the parts listed."""
    scene = _plan(config, split, index)
    out = []
    for p in scene.events:
        parts = tuple((max(p.start_ms + a, 0) / 1000, min(p.start_ms + b, config.clip_ms) / 1000)
                      for a, b in p.params["segments"]
                      if max(p.start_ms + a, 0) < min(p.start_ms + b, config.clip_ms))
        out.append((Event(scene.filename, p.onset_ms / 1000, p.offset_ms / 1000, p.label), parts))
    return sorted(out, key=lambda ep: (ep[0].onset, ep[0].offset, ep[0].label))


def synthesize_clip(config: SynthConfig, split: str, index: int) -> tuple[np.ndarray, list[Event]]:
    """Clip ``index`` of ``split``: waveform ``(N,)`` float32 at ``synth_sample_rate`` and its
    events (filename ``synth_{split}_{index:06d}.wav``), sorted by onset."""
    scene = _plan(config, split, index)
    mix, _, _ = _render(scene, config, keep_stems=False)
    return mix.astype(np.float32), _events(scene)


def synthesize_stems(
    config: SynthConfig, split: str, index: int
) -> tuple[np.ndarray, list[np.ndarray], list[Event]]:
    """The parts of a clip, float64 ``(N,)`` each: background, one stem per event (in label
    order, ``stems[i]`` belongs to ``events[i]``) and the events; they sum to the mixture."""
    scene = _plan(config, split, index)
    _, background, stems = _render(scene, config, keep_stems=True)
    order = sorted(range(len(stems)), key=lambda i: (
        scene.events[i].onset_ms, scene.events[i].offset_ms, scene.events[i].label))
    return background, [stems[i] for i in order], _events(scene)


class SynthDataset(torch.utils.data.Dataset):
    """Clips ``first_index .. first_index + length - 1`` of a split, synthesised on access.

    Items are ``{"waveform": (N,) float32, "targets": (K, T) float32, "filename": str}`` (collate
    friendly); :meth:`events` gives the strong labels. Raises IndexError outside ``[0, len)``.
    """

    def __init__(self, split: str = "train", length: int = 1000, config: SynthConfig = SynthConfig(),
                 audio: AudioConfig = AudioConfig(), first_index: int = 0) -> None:
        _check_key(split, first_index)
        if length <= 0 or first_index + length > 2**32:
            raise ValueError(f"SynthDataset length must be in [1, 2**32 - first_index], got {length}")
        if (audio.sample_rate, audio.clip_samples) != (config.synth_sample_rate,
                                                        config.num_samples):
            raise ValueError(
                f"SynthConfig makes {config.synth_clip_seconds} s at {config.synth_sample_rate} Hz, but "
                f"AudioConfig expects {audio.clip_seconds} s at {audio.sample_rate} Hz")
        self.split, self.length, self.config, self.audio = split, length, config, audio
        self.first_index = first_index
        self.vocab = synth_vocabulary(config.synth_world)

    def __len__(self) -> int:
        return self.length

    def _index(self, i: int) -> int:
        if not 0 <= i < self.length:
            raise IndexError(f"SynthDataset({self.split!r}) index {i} out of range [0, {self.length})")
        return self.first_index + int(i)

    def __getitem__(self, i: int) -> dict:
        waveform, events = synthesize_clip(self.config, self.split, self._index(i))
        targets = encode_events(events, self.vocab, self.audio.label_frames,
                                self.audio.frames_per_second)  # (K, T)
        return {"waveform": torch.from_numpy(waveform), "targets": torch.from_numpy(targets),
                "filename": synth_filename(self.split, self._index(i))}

    def events(self, i: int) -> list[Event]:
        return synth_events(self.config, self.split, self._index(i))

    def filename(self, i: int) -> str:
        return synth_filename(self.split, self._index(i))


def write_desed(out_dir: str | os.PathLike, num_clips: int, config: SynthConfig = SynthConfig(),
                split: str = "train", progress: bool = True, first_index: int = 0) -> list[Event]:
    """Write clips ``first_index ..`` in the DESED layout; returns all events.

    ``OUT_DIR/audio/<filename>.wav`` (16-bit PCM), ``strong.tsv`` (``filename onset offset
    event_label``; a clip without events gets an empty row), ``weak.tsv`` (``filename
    event_labels``, comma-separated) and ``durations.tsv`` (``filename duration``). Files are
    written atomically and are byte-identical for the same arguments.
    """
    import soundfile as sf
    from tqdm import tqdm

    from sedlib.data.formats import (
        write_durations_tsv,
        write_strong_tsv,
        write_weak_tsv,
    )

    if not isinstance(num_clips, (int, np.integer)) or num_clips <= 0:
        raise ValueError(f"num_clips must be a positive integer, got {num_clips!r}")
    _check_key(split, first_index + num_clips - 1)
    out, audio_dir = Path(out_dir), Path(out_dir) / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    strong: dict[str, list[Event]] = {}
    indices = range(first_index, first_index + num_clips)
    for index in tqdm(indices, desc=f"synth {split}", unit="clip", disable=not progress):
        waveform, events = synthesize_clip(config, split, index)
        name = synth_filename(split, index)
        pcm = np.round(np.clip(waveform, -1.0, 1.0) * 32767).astype("<i2")  # own rounding: portable
        tmp = audio_dir / f".{name}.{os.getpid()}.tmp"
        sf.write(tmp, pcm, config.synth_sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp, audio_dir / name)
        strong[name] = events
    stale = sorted(set(p.name for p in audio_dir.glob("*.wav")) - set(strong))
    if stale:
        logger.warning("%s holds %d .wav files not listed in the new labels (e.g. %s)",
                       audio_dir, len(stale), stale[0])
    write_strong_tsv(out / "strong.tsv", strong)
    write_weak_tsv(out / "weak.tsv", {f: sorted({e.label for e in evs}) for f, evs in strong.items()})
    write_durations_tsv(out / "durations.tsv", {f: config.clip_ms / 1000 for f in strong})
    return [e for evs in strong.values() for e in evs]

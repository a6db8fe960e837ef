"""Data sources for training and evaluation, opened from one ``--data`` grammar.

:func:`open_source` parses it. Fields are separated by ``:`` (so paths may not contain ``:``);
required fields come first, optional ones last; a label file precedes its audio folder::

    synth[:N[:SEED[:OPTIONS]]]        embedded synthetic set (sedlib.data.synth): N clips of the
                                      split (default 2000 train / 250 validation / 250 eval),
                                      SynthConfig(synth_seed=SEED); OPTIONS, comma-separated:
                                      world=basic|context|context2 (11 classes, or 13 with the
                                      long patterns ringtone and ticking; context2: every pattern
                                      decidable within its clip; default basic) and, train
                                      split only, annotation noise miss=R,confuse=R,jitter=MS
                                      (LabelNoise: rates and jitter std in ms)
    DIR  or  folder:DIR               DESED layout as `sedlib synth` writes it: DIR/audio/*,
                                      DIR/strong.tsv (or only DIR/weak.tsv: weak-only set),
                                      optional DIR/durations.tsv; classes: synthetic or DESED,
                                      whichever holds every label
    desed:STRONG_TSV:AUDIO_DIR[:DURATIONS_TSV]
                                      real DESED strong labels + audio folder (10 classes)
    audacity:DIR                      your recordings, each with its Audacity label track
                                      <stem>.txt beside it; classes = the labels found
                                      (sedlib.data.user_labels)
    classfolders:DIR                  clip-level labels: DIR/<class>/<clip> (weak)
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

import logging
from pathlib import Path
from typing import Any, Callable

from sedlib.config import AudioConfig
from sedlib.data.files import desed_source, folder_source, is_desed_folder
from sedlib.data.labels import (
    Vocabulary,
)
from sedlib.data.sources import ON_ERROR, ClipSource, SynthSource
from sedlib.data.synth.soundscape import SynthConfig
from sedlib.errors import SedlibError

logger = logging.getLogger(__name__)
#: folders already announced as read in another layout (one line per folder and process)
_ANNOUNCED: set[str] = set()

SPEC_FORMS = (
    "synth[:N[:SEED[:world=W,miss=R,confuse=R,jitter=MS]]]",
    "DIR | folder:DIR",
    "desed:STRONG_TSV:AUDIO_DIR[:DURATIONS_TSV]",
    "audacity:DIR",
    "classfolders:DIR",
    "audioset-strong:TSV:AUDIO_DIR[:DURATIONS]",
    "audioset-hdf5:FILE.hdf[:STRONG_TSV[:DURATIONS]]",
    "audioset-weak:FILE.hdf | audioset-weak:WEAK_TSV:AUDIO_DIR",
)


#: kind -> (fewest, most) fields after the kind
_KINDS = {"synth": (0, 3), "folder": (1, 1), "audacity": (1, 1), "classfolders": (1, 1),
          "desed": (2, 3), "audioset-strong": (2, 3),
          "audioset-hdf5": (1, 3), "audioset-weak": (1, 2)}


class DataSpecError(SedlibError, ValueError):
    """A ``--data`` string does not follow the grammar; the message lists the accepted forms."""


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


def resolve_spec_paths(spec: str, resolve: Callable[[str], Any]) -> str:
    """``spec`` with every path field replaced by ``str(resolve(field))`` (e.g. made absolute
    against the project root by :func:`sedlib.config.project_path`); ``synth`` specs have none.
    A spec without a known kind and without ``:`` is a folder."""
    kind, sep, rest = spec.partition(":")
    if kind == "synth":
        return spec
    if kind not in _KINDS:
        return str(resolve(spec)) if not sep else spec  # parse_spec will say what is wrong
    return ":".join([kind, *(str(resolve(f)) if f else f for f in rest.split(":"))])


def _int_field(spec: str, text: str, what: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _spec_error(spec, f"{what} must be an integer, got {text!r}") from None
    if value < low:
        raise _spec_error(spec, f"{what} must be >= {low}, got {value}")
    return value


_NOISE_FIELDS = {"miss": "miss_rate", "confuse": "confusion_rate", "jitter": "boundary_jitter_ms"}


def _synth_options(spec: str, text: str, split: str):
    """``world=context,miss=0.1,confuse=0.2,jitter=50`` -> ``(world, LabelNoise or None)`` (any
    subset, each once)."""
    from sedlib.data.synth.label_noise import LabelNoise
    from sedlib.data.synth.soundscape import WORLDS

    values: dict[str, float] = {}
    world = None
    for part in text.split(","):
        name, eq, value = part.partition("=")
        if name == "world" and eq and world is None:
            if value not in WORLDS:
                raise _spec_error(spec, f"world={value!r}: expected one of {', '.join(WORLDS)}")
            world = value
            continue
        if not eq or name not in _NOISE_FIELDS or _NOISE_FIELDS[name] in values:
            raise _spec_error(spec, f"OPTIONS {text!r}: expected comma-separated "
                                    f"world/{'/'.join(_NOISE_FIELDS)}=VALUE, each once")
        try:
            values[_NOISE_FIELDS[name]] = float(value)
        except ValueError:
            raise _spec_error(spec, f"NOISE {name}={value!r} is not a number") from None
    if not values:
        return world or "basic", None
    if split != "train":
        raise _spec_error(spec, f"annotation noise is for training data; {split} labels stay exact")
    try:
        return world or "basic", LabelNoise(**values)
    except ValueError as err:
        raise _spec_error(spec, str(err)) from None


def without_label_noise(spec: str) -> str:
    """The same ``synth`` clips with exact labels: ``spec`` without its annotation-noise options
    (``synth:8:0:world=context2,miss=0.1`` -> ``synth:8:0:world=context2``; the audio is the
    same, only the labels differ). Other specs are returned as they are."""
    kind, fields = parse_spec(spec)
    if kind != "synth" or len(fields) < 3:
        return spec
    kept = [p for p in fields[2].split(",") if p.partition("=")[0] not in _NOISE_FIELDS]
    return ":".join(["synth", *fields[:2], *([",".join(kept)] if kept else [])])


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


def _folder_kind(root: Path) -> str:
    """``folder`` for the DESED layout (or a folder in no layout at all: folder_source says what
    it expected); ``audacity`` / ``classfolders`` for a folder of your own recordings in that
    layout, announced in one line (what ``--data audacity:DIR`` would read)."""
    from sedlib.data.user_labels import user_folder_layout

    if is_desed_folder(root):
        return "folder"
    layout = user_folder_layout(root)
    if layout is None:
        return "folder"
    kind, why = layout
    if str(root) not in _ANNOUNCED:
        _ANNOUNCED.add(str(root))
        logger.warning("%s: not the DESED layout, but %s: reading it as %s:%s", root, why, kind, root)
    return kind


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
        world, noise = _synth_options(spec, fields[2], split) if len(fields) > 2 else ("basic", None)
        # clips are generated at the length the model trains on (AudioConfig.clip_seconds)
        seconds = audio_config.clip_seconds if audio_config is not None else 10.0
        return SynthSource(length=n, vocab=vocab, label_noise=noise, **common,
                           synth_config=SynthConfig(synth_seed=synth_seed, synth_clip_seconds=seconds,
                                                    synth_world=world))
    common.update(vocab=vocab, length=length)
    if kind in ("folder", "audacity", "classfolders"):
        root = _existing(spec, fields[0], "DIR", True)
        if kind == "folder":
            kind = _folder_kind(root)
        if kind == "folder":
            return folder_source(root, **common)
        from sedlib.data.user_labels import audacity_source, class_folders_source

        opener = audacity_source if kind == "audacity" else class_folders_source
        return opener(root, **common)
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

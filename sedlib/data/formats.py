"""Readers and writers for the label files of AudioSet Strong and DESED (SPEC 6).

Every reader checks each row and raises :class:`FormatError` as ``<path>:<line>: <what was
expected>`` (1-based physical line numbers), or :class:`UnknownClassError` in the same form when
a ``vocab`` is given and a label is not in it. Blank lines are skipped. Writers are atomic: they
write a temporary file in the target's directory and ``os.replace`` it, so a failed write leaves
the old file (or none) and no temporary file behind.

Layouts (``→`` is a tab):

* Google's AudioSet Strong TSV (``audioset_{train,eval}_strong.tsv``; the reference's
  comma-separated copy has the same columns)::

      segment_id→start_time_seconds→end_time_seconds→label
      --4gqARaEJE_0→0.000→10.000→/m/068hy

* DESED strong TSV (a row with empty onset, offset and label marks a clip without events)::

      filename→onset→offset→event_label
      Y00pbt6aJV8Y_350.000_360.000.wav→0.0→9.971→Vacuum_cleaner
      Y01gtdbk3Zp0_30.000_40.000.wav→→→

* weak TSV (labels comma-separated, so a label may not contain a comma; spaces around a label
  are dropped)::

      filename→event_labels
      Y00pbt6aJV8Y_350.000_360.000.wav→Dog,Speech

* durations TSV::

      filename→duration
      clip_1.wav→9.87

* the reference's ``resources/eval_durations.csv`` (no header, comma-separated)::

      YYd10enP9ykM,10.0

AudioSet clip keys: a ``segment_id`` is ``<ytid>_<start_ms>`` (a YouTube id may itself contain
``_``). :func:`audioset_filename` maps it to ``"Y" + ytid + ext``; the default ``ext=".mp3"``
gives the reference's key (PaSST HDF5 ``audio_name``, HF dataset ``filename``), ``ext=""`` the
bare id the reference evaluates with and ``eval_durations.csv`` lists. The strong times are
relative to the segment start and are kept as they are.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import math
import os
import secrets
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Union

from sedlib.data.labels import Event, Vocabulary
from sedlib.errors import FormatError, UnknownClassError

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

AUDIOSET_STRONG_HEADER = ("segment_id", "start_time_seconds", "end_time_seconds", "label")
STRONG_HEADER = ("filename", "onset", "offset", "event_label")
WEAK_HEADER = ("filename", "event_labels")
DURATIONS_HEADER = ("filename", "duration")


# --- AudioSet ids and class names ---------------------------------------------------------------

def audioset_filename(segment_id: str, ext: str = ".mp3") -> str:
    """``"<ytid>_<start_ms>"`` -> ``"Y<ytid><ext>"``: ``"--4gqARaEJE_0"`` -> ``"Y--4gqARaEJE.mp3"``.

    The start offset is dropped, as in the reference: one clip per YouTube id.
    """
    ytid, sep, start_ms = segment_id.rpartition("_")
    if not sep or not ytid or not start_ms.isdigit():
        raise ValueError(
            f"AudioSet segment id must look like '<ytid>_<start_ms>', got {segment_id!r}"
        )
    return f"Y{ytid}{ext}"


@lru_cache(maxsize=None)
def _mid_pairs() -> tuple[tuple[str, str], ...]:
    text = resources.files("sedlib.resources").joinpath("class_labels_indices_strong.csv")
    with text.open("r", encoding="utf-8", newline="") as f:
        return tuple((mid, name) for mid, name in csv.reader(f))


def audioset_mid_to_name() -> dict[str, str]:
    """The 456 AudioSet Strong MIDs -> display names (``class_labels_indices_strong.csv``)."""
    return dict(_mid_pairs())


# --- reading ------------------------------------------------------------------------------------

def _lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers, newline removed."""
    data = Path(path).read_bytes()
    data = data[3:] if data.startswith(codecs.BOM_UTF8) else data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        lineno = data[: err.start].count(b"\n") + 1
        raise FormatError(f"{path}:{lineno}: expected UTF-8 text ({err.reason})") from None
    for lineno, line in enumerate(io.StringIO(text, newline=None), 1):
        line = line.rstrip("\n")
        if line.strip(" "):
            yield lineno, line


def _rows(
    path: PathLike, header: tuple[str, ...], sep: str = "\t"
) -> Iterator[tuple[int, list[str]]]:
    """Rows after ``header``, each checked to have ``len(header)`` fields (stripped)."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None or [c.strip() for c in first[1].split(sep)] != list(header):
        lineno, got = first if first else (1, "<empty file>")
        raise FormatError(f"{path}:{lineno}: expected header {sep.join(header)!r}, got {got!r}")
    for lineno, line in lines:
        yield lineno, _split(path, lineno, line, header, sep)


def _split(path: PathLike, lineno: int, line: str, columns: tuple[str, ...], sep: str) -> list[str]:
    fields = [c.strip() for c in line.split(sep)]
    if len(fields) != len(columns):
        what = "tab" if sep == "\t" else repr(sep)
        raise FormatError(
            f"{path}:{lineno}: expected {len(columns)} {what}-separated columns "
            f"({', '.join(columns)}), got {len(fields)}: {line!r}"
        )
    if not fields[0]:
        raise FormatError(
            f"{path}:{lineno}: expected a {columns[0]} in the first column, got {line!r}"
        )
    return fields


def _number(path: PathLike, lineno: int, text: str, what: str, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise FormatError(f"{path}:{lineno}: expected a number of seconds for {what}, got {text!r}")
    if value < 0 or (positive and value == 0):
        bound = "positive" if positive else "non-negative"
        raise FormatError(f"{path}:{lineno}: expected a {bound} {what}, got {text!r}")
    return value + 0.0  # no -0.0


def _interval(path: PathLike, lineno: int, onset: str, offset: str) -> tuple[float, float]:
    on = _number(path, lineno, onset, "onset")
    off = _number(path, lineno, offset, "offset")
    if off < on:
        raise FormatError(
            f"{path}:{lineno}: expected offset >= onset, got onset {onset}, offset {offset}"
        )
    return on, off


def _check_label(path: PathLike, lineno: int, label: str, vocab: Vocabulary | None) -> None:
    if not label:
        raise FormatError(f"{path}:{lineno}: expected a class label, got an empty field")
    if vocab is not None and label not in vocab:
        try:
            vocab.index(label)
        except UnknownClassError as err:
            raise UnknownClassError(f"{path}:{lineno}: {err}") from None


def read_audioset_strong_tsv(
    path: PathLike,
    *,
    ext: str = ".mp3",
    vocab: Vocabulary | None = None,
    skip_unknown: bool = False,
) -> dict[str, list[Event]]:
    """Google's strong labels -> ``{"Y<ytid><ext>": [Event, ...]}`` with display-name labels.

    Tab- or comma-separated (taken from the header). An optional fifth column ``present`` (the
    framed pos/neg eval file) keeps only ``PRESENT`` rows. MIDs not in
    :func:`audioset_mid_to_name` (and, with ``vocab``, names not in it) raise
    :class:`UnknownClassError` unless ``skip_unknown``, which drops those rows; their clip stays.
    Two segment ids of one YouTube id would share a key and raise :class:`FormatError`.
    """
    mid_to_name = audioset_mid_to_name()
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8-sig", "replace").rstrip("\r\n")
    sep = "," if "," in first and "\t" not in first else "\t"
    header = AUDIOSET_STRONG_HEADER + (("present",) if len(first.split(sep)) == 5 else ())
    clips: dict[str, list[Event]] = {}
    first_seen: dict[str, tuple[str, int]] = {}
    skipped = 0
    for lineno, fields in _rows(path, header, sep):
        segment_id, start, end, mid = fields[:4]
        try:
            key = audioset_filename(segment_id, ext)
        except ValueError as err:
            raise FormatError(f"{path}:{lineno}: {err}") from None
        seen = first_seen.setdefault(key, (segment_id, lineno))
        if seen[0] != segment_id:
            raise FormatError(
                f"{path}:{lineno}: segment {segment_id!r} and segment {seen[0]!r} (line {seen[1]}) "
                f"map to the same clip {key!r}"
            )
        events = clips.setdefault(key, [])
        onset, offset = _interval(path, lineno, start, end)
        if len(fields) == 5 and fields[4] not in ("PRESENT", "NOT_PRESENT"):
            raise FormatError(
                f"{path}:{lineno}: expected PRESENT or NOT_PRESENT, got {fields[4]!r}"
            )
        if len(fields) == 5 and fields[4] == "NOT_PRESENT":
            continue
        name = mid_to_name.get(mid)
        if name is None or (vocab is not None and name not in vocab):
            if skip_unknown:
                skipped += 1
                continue
            if name is None:
                raise UnknownClassError(
                    f"{path}:{lineno}: unknown AudioSet MID {mid!r} (not among the "
                    f"{len(mid_to_name)} in class_labels_indices_strong.csv)"
                )
            _check_label(path, lineno, name, vocab)
        events.append(Event(key, onset, offset, name))
    if skipped:
        log.info("%s: skipped %d rows with unknown classes", path, skipped)
    return clips


def read_strong_tsv(path: PathLike, *, vocab: Vocabulary | None = None) -> dict[str, list[Event]]:
    """DESED strong labels -> ``{filename: [Event, ...]}`` in file order.

    A clip whose only row has empty onset, offset and label is kept with no events.
    """
    clips: dict[str, list[Event]] = {}
    for lineno, (filename, onset, offset, label) in _rows(path, STRONG_HEADER):
        events = clips.setdefault(filename, [])
        if not (onset or offset or label):
            continue
        on, off = _interval(path, lineno, onset, offset)
        _check_label(path, lineno, label, vocab)
        events.append(Event(filename, on, off, label))
    return clips


def read_weak_tsv(path: PathLike, *, vocab: Vocabulary | None = None) -> dict[str, list[str]]:
    """Weak labels -> ``{filename: [label, ...]}``; an empty label field means no labels."""
    clips: dict[str, list[str]] = {}
    lines: dict[str, int] = {}
    for lineno, (filename, labels) in _rows(path, WEAK_HEADER):
        if filename in clips:
            raise FormatError(
                f"{path}:{lineno}: {filename!r} is listed twice (first on line {lines[filename]})"
            )
        names = [name.strip() for name in labels.split(",")] if labels else []
        for name in names:
            _check_label(path, lineno, name, vocab)
        clips[filename], lines[filename] = names, lineno
    return clips


def _durations(
    rows: Iterable[tuple[int, list[str]]], path: PathLike, ext: str = ""
) -> dict[str, float]:
    out: dict[str, float] = {}
    lines: dict[str, int] = {}
    for lineno, (filename, seconds) in rows:
        key = filename + ext
        if key in out:
            raise FormatError(
                f"{path}:{lineno}: {filename!r} is listed twice (first on line {lines[key]})"
            )
        out[key], lines[key] = _number(path, lineno, seconds, "duration", positive=True), lineno
    return out


def read_durations_tsv(path: PathLike) -> dict[str, float]:
    """``filename→duration`` (with that header) -> ``{filename: seconds}``; each must be > 0."""
    return _durations(_rows(path, DURATIONS_HEADER), path)


def read_audioset_durations_csv(path: PathLike, *, ext: str = ".mp3") -> dict[str, float]:
    """The reference's ``eval_durations.csv`` (``Y<ytid>,<seconds>``, no header) -> durations.

    Keys get ``ext`` appended so they match :func:`read_audioset_strong_tsv` with the same ``ext``.
    """
    rows = ((n, _split(path, n, line, DURATIONS_HEADER, ",")) for n, line in _lines(path))
    return _durations(rows, path, ext)


def events_by_file(events: Iterable[Event]) -> dict[str, list[Event]]:
    """Group events by filename; files in order of first appearance, events in input order."""
    out: dict[str, list[Event]] = {}
    for ev in events:
        out.setdefault(ev.filename, []).append(ev)
    return out


# --- writing ------------------------------------------------------------------------------------

def _atomic_write(path: PathLike, lines: Iterable[str]) -> None:
    """Write ``lines`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, like open()
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for line in lines:
                f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _field(text: str, what: str) -> str:
    if not text or text != text.strip() or any(c in text for c in "\t\r\n"):
        raise ValueError(f"cannot write {what} {text!r}: it must be non-empty, without tabs, "
                         "newlines or surrounding spaces")
    return text


def _seconds(value: float, what: str, positive: bool = False) -> str:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "positive" if positive else "non-negative"
        raise ValueError(f"cannot write {what} {value!r}: expected a finite {bound} number")
    return repr(round(value, 6) + 0.0)  # microsecond precision, shortest exact text


def write_strong_tsv(
    path: PathLike, events: Iterable[Event] | Mapping[str, Iterable[Event]]
) -> None:
    """Write events in the DESED strong layout (see :func:`read_strong_tsv`), atomically.

    Times are written rounded to 1 µs. Given a ``{filename: events}`` mapping, a file with no
    events gets an ``filename→→→`` row so the clip survives the round trip.
    """
    def lines() -> Iterator[str]:
        yield "\t".join(STRONG_HEADER)
        by_file = events if isinstance(events, Mapping) else {None: events}
        for filename, evs in by_file.items():
            n = 0
            for ev in evs:
                if filename is not None and ev.filename != filename:
                    raise ValueError(f"event {ev} is listed under filename {filename!r}")
                if ev.offset < ev.onset:
                    raise ValueError(f"cannot write event {ev}: offset < onset")
                yield "\t".join((_field(ev.filename, "filename"), _seconds(ev.onset, "onset"),
                                 _seconds(ev.offset, "offset"), _field(ev.label, "label")))
                n += 1
            if filename is not None and n == 0:
                yield _field(filename, "filename") + "\t\t\t"

    _atomic_write(path, lines())


def write_weak_tsv(path: PathLike, labels: Mapping[str, Iterable[str]]) -> None:
    """Write ``{filename: [label, ...]}`` in the weak layout (:func:`read_weak_tsv`), atomically."""
    def lines() -> Iterator[str]:
        yield "\t".join(WEAK_HEADER)
        for filename, names in labels.items():
            names = [_field(n, "label") for n in names]
            bad = [n for n in names if "," in n]
            if bad:
                raise ValueError(f"cannot write labels {bad} of {filename!r}: "
                                 "the weak layout separates labels by commas")
            yield f"{_field(filename, 'filename')}\t{','.join(names)}"

    _atomic_write(path, lines())


def write_durations_tsv(path: PathLike, durations: Mapping[str, float]) -> None:
    """Write ``{filename: seconds}`` as :func:`read_durations_tsv` reads it, atomically."""
    def lines() -> Iterator[str]:
        yield "\t".join(DURATIONS_HEADER)
        for filename, seconds in durations.items():
            yield f"{_field(filename, 'filename')}\t{_seconds(seconds, 'duration', positive=True)}"

    _atomic_write(path, lines())

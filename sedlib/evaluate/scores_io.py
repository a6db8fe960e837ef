"""Score files (SPEC 7): frame scores -> ``sed_scores_eval`` score DataFrames -> one TSV per clip.

A score DataFrame has columns ``onset offset <class>...`` and one row per frame; a scores
directory holds ``<clip>.tsv`` files of them, as ``sed_scores_eval.io.write_sed_scores`` writes
them. Files are read with clear errors (file and line) and written atomically (a temporary name,
then a rename), so a reader never sees a half-written file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import pandas as pd

from sedlib.atomic import atomic_write
from sedlib.errors import FormatError
from sedlib.evaluate.inputs import EvaluationError

if TYPE_CHECKING:
    from sedlib.evaluate.postprocess import FrameScores


def frame_timestamps(
    num_frames: int, frame_seconds: float = 0.04, duration: float | None = None
) -> np.ndarray:
    """Frame boundaries ``(T' + 1,)``: 0, 0.04, ..., without frames starting at or after ``duration``.

    ``i / frames_per_second`` is the correctly rounded value of i x 0.04 (as the reference's
    ``i * 4 / 100``). With ``duration`` the last boundary is clipped to it.
    """
    rate = 1.0 / frame_seconds
    rate = float(round(rate)) if abs(rate - round(rate)) < 1e-9 else rate
    stamps = np.arange(num_frames + 1) / rate
    if duration is not None:
        n = int(np.searchsorted(stamps[:-1], duration, side="left"))  # frames with onset < duration
        if n == 0:
            raise ValueError(f"duration {duration} s leaves no frame of {frame_seconds} s")
        stamps = stamps[: n + 1]
        stamps[n] = min(stamps[n], duration)
    return stamps


def scores_to_dataframe(
    scores: np.ndarray,
    class_names: Sequence[str],
    frame_seconds: float = 0.04,
    duration: float | None = None,
) -> pd.DataFrame:
    """Frame scores ``(K, T)`` -> a ``sed_scores_eval`` score DataFrame (``onset offset <classes>``).

    Frames starting at or after ``duration`` are dropped and the last offset is clipped to it.
    """
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[0] != len(class_names):
        raise ValueError(f"expected scores of shape (K={len(class_names)}, T), got {scores.shape}")
    stamps = frame_timestamps(scores.shape[1], frame_seconds, duration)
    return create_score_dataframe(scores.T[: len(stamps) - 1], stamps, list(class_names))  # (T, K)


def _read_score_tsv(path: Path) -> pd.DataFrame:
    """One ``onset offset <class...>`` TSV -> DataFrame; FormatError names the file and line.

    Parsed as ``sed_scores_eval.io.read_sed_scores`` parses (pandas' default float parser, within
    ~1e-15 of the written value, 3x faster than its exact 'round_trip' mode), so both read the
    same numbers from a file.
    """
    from sed_scores_eval.base_modules.scores import validate_score_dataframe

    try:
        df = pd.read_csv(path, sep="\t", dtype=np.float64)
    except pd.errors.EmptyDataError:
        raise FormatError(f"{path}:1: expected a header 'onset<TAB>offset<TAB><class>...', "
                          "got an empty file") from None
    except pd.errors.ParserError as err:
        raise FormatError(f"{path}: {err}") from None
    except ValueError:  # a cell is not a number: find it for the message
        _raise_bad_cell(path)
        raise
    if df.columns.has_duplicates:
        dup = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
        raise FormatError(f"{path}:1: duplicate class columns {dup[:5]}")
    bad = np.isnan(df.to_numpy()).any(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        raise FormatError(f"{path}:{row + 2}: expected {len(df.columns)} numbers, got missing or NaN fields")
    try:
        validate_score_dataframe(df)
    except (ValueError, AssertionError) as err:
        raise FormatError(f"{path}: {err}") from None
    return df


def _raise_bad_cell(path: Path) -> None:
    with open(path, encoding="utf-8") as f:
        next(f, None)
        for lineno, line in enumerate(f, 2):
            for field in line.rstrip("\r\n").split("\t"):
                try:
                    float(field)
                except ValueError:
                    raise FormatError(f"{path}:{lineno}: expected a number, got {field!r}") from None


class ScoresDir(Mapping):
    """Score TSVs of a directory as a lazy mapping ``{clip: DataFrame}``; each read on access."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise FormatError(f"{self.path}: not a directory of score TSVs")
        self._files = {
            p.name[: -len(".tsv")]: p for p in sorted(self.path.iterdir())
            if p.name.endswith(".tsv") and not p.name.startswith(".") and p.is_file()
        }
        if not self._files:
            raise FormatError(f"{self.path}: no score files (*.tsv)")

    def __getitem__(self, key: str) -> pd.DataFrame:
        return _read_score_tsv(self._files[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def path_of(self, key: str) -> str:
        return str(self._files[key])


def read_scores_dir(path: str | os.PathLike, *, lazy: bool = False) -> Mapping[str, pd.DataFrame]:
    """A directory of per-clip score TSVs (as ``sed_scores_eval.io.write_sed_scores`` writes them)
    -> ``{clip_id: DataFrame}``. ``lazy=True`` reads each file only when it is used (bounded memory
    for AudioSet-sized sets); otherwise all files are read now."""
    scores = ScoresDir(path)
    return scores if lazy else {key: scores[key] for key in scores}


def write_scores_dir(scores: Mapping[str, pd.DataFrame], path: str | os.PathLike) -> None:
    """Write ``{clip_id: DataFrame}`` as ``<path>/<clip_id>.tsv``. All frames are checked first;
    each file is written to a temporary name and renamed, so no file is ever half-written."""
    from sed_scores_eval.base_modules.scores import validate_score_dataframe

    path = Path(path)
    for key, df in scores.items():
        _check_file_key(key, path)
        try:
            validate_score_dataframe(df)
        except (ValueError, AssertionError) as err:
            raise EvaluationError(f"scores of clip {key!r}: {err}") from None
    path.mkdir(parents=True, exist_ok=True)
    for key, df in scores.items():
        _write_tsv_atomic(df, path, key)


def write_frame_scores(scores: FrameScores, out_dir: str | os.PathLike) -> Path:
    """Write one file's frame scores (a :class:`sedlib.evaluate.postprocess.FrameScores`: ``filename``,
    ``scores`` (K, T), ``duration``, ``frame_seconds``, ``classes``) as ``<out_dir>/<audio
    stem>.tsv``, a score file :func:`read_scores_dir` and ``sed_scores_eval`` read; frames are
    cut at ``duration`` (:func:`scores_to_dataframe`). Written atomically; returns the path."""
    out_dir = Path(out_dir)
    key = Path(scores.filename).stem
    _check_file_key(key, out_dir)
    df = scores_to_dataframe(scores.scores, scores.classes, scores.frame_seconds, scores.duration)
    out_dir.mkdir(parents=True, exist_ok=True)
    return _write_tsv_atomic(df, out_dir, key)


def _check_file_key(key: str, path: Path) -> None:
    if not key or key != key.strip() or any(c in key for c in "/\\\0\n\t") or key.startswith("."):
        raise EvaluationError(f"cannot use clip id {key!r} as a file name in {path}")


def _write_tsv_atomic(df: pd.DataFrame, path: Path, key: str) -> Path:
    """``df`` -> ``<path>/<key>.tsv`` via a temporary name and a rename (never half-written)."""
    return atomic_write(path / f"{key}.tsv", lambda tmp: df.to_csv(tmp, sep="\t", index=False))

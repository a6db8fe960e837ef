"""Post-processing and threshold-independent evaluation (SPEC 7): median filter, score frames,
PSDS1 / PSDS2 and segment-based pAUROC via ``sed_scores_eval``.

Two engines give the same numbers:

* ``engine="reference"`` calls ``sed_scores_eval`` directly on a dict of score DataFrames (as the
  EfficientSED reference does in ``on_validation_epoch_end``). Obviously right, but at AudioSet
  Strong scale (16,935 clips x 407 classes x 250 frames) it needs the whole score set in memory
  (~14 GB as float64 DataFrames) and hours of per-(clip, class) Python work.
* ``engine="fast"`` (default) streams the clips once and keeps only what can still matter. It uses
  the library's own detection and counting code (``onset_offset_curves``, ``statistics_fn``) for
  every (clip, class) pair with ground truth, the library's "no ground truth" shortcut (one +1/-1
  false-positive delta per local score maximum/minimum) for the rest, and the library's ROC
  combination (``multi_class_psd_roc_from_single_class_psd_rocs``, ``psds_from_psd_roc``,
  ``linear_auc``). Its one addition is an exact pruning: a pair without ground truth of class c
  whose maximum score is >= theta makes at least one false positive at threshold theta, so once
  ``L`` such pairs are known, every threshold at or below the L-th largest of their maxima has
  eFPR > max_efpr and is cut by PSDS anyway (eFPR >= FPR as alpha_ct >= 0). Their change points
  are dropped. Tests check both engines agree (tests/test_evaluate.py).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from sedlib.errors import FormatError, SedlibError

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".m4a")
SECONDS_PER_UNIT = {"second": 1.0, "minute": 60.0, "hour": 3600.0}


class EvaluationError(SedlibError, ValueError):
    """Scores, ground truth and durations do not fit together (clips, classes, events)."""


# --- configuration -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PSDSConfig:
    """Intersection-based PSDS parameters (Bilen et al. 2020), as ``sed_scores_eval`` takes them."""

    dtc_threshold: float
    gtc_threshold: float
    cttc_threshold: float | None = None
    alpha_ct: float = 0.0
    alpha_st: float = 0.0
    max_efpr: float = 100.0
    unit_of_time: str = "hour"
    time_decimals: int = 6

    def __post_init__(self) -> None:
        if not (0 < self.dtc_threshold <= 1 and 0 < self.gtc_threshold <= 1):
            raise ValueError(f"PSDSConfig: dtc_threshold and gtc_threshold must be in (0, 1], got {self}")
        if (self.alpha_ct == 0) != (self.cttc_threshold is None):
            raise ValueError(
                "PSDSConfig: cttc_threshold must be given exactly when alpha_ct != 0 "
                f"(got cttc_threshold={self.cttc_threshold}, alpha_ct={self.alpha_ct})"
            )
        if self.alpha_ct < 0 or self.alpha_st < 0:
            raise ValueError(f"PSDSConfig: alpha_ct and alpha_st must be >= 0, got {self}")
        if self.unit_of_time not in SECONDS_PER_UNIT:
            raise ValueError(f"PSDSConfig: unit_of_time must be one of {list(SECONDS_PER_UNIT)}")

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``sed_scores_eval.intersection_based.psds``."""
        return dict(
            dtc_threshold=self.dtc_threshold, gtc_threshold=self.gtc_threshold,
            cttc_threshold=self.cttc_threshold, alpha_ct=self.alpha_ct, alpha_st=self.alpha_st,
            max_efpr=self.max_efpr, unit_of_time=self.unit_of_time,
            time_decimals=self.time_decimals,
        )


@dataclass(frozen=True)
class AUROCConfig:
    """Segment-based (partial) AUROC parameters (``sed_scores_eval.segment_based.auroc``)."""

    segment_length: float = 1.0
    max_fpr: float | None = 0.1
    mcclish_correction: bool = False
    time_decimals: int = 6

    def kwargs(self) -> dict[str, Any]:
        return dict(
            segment_length=self.segment_length, max_fpr=self.max_fpr,
            mcclish_correction=self.mcclish_correction, time_decimals=self.time_decimals,
        )


#: DCASE PSDS scenario 1 (the reference's ``val/psds1``) and scenario 2.
PSDS1 = PSDSConfig(dtc_threshold=0.7, gtc_threshold=0.7, cttc_threshold=None,
                   alpha_ct=0.0, alpha_st=1.0, max_efpr=100.0)
PSDS2 = PSDSConfig(dtc_threshold=0.1, gtc_threshold=0.1, cttc_threshold=0.3,
                   alpha_ct=0.5, alpha_st=1.0, max_efpr=100.0)
#: The reference's ``val/pauroc``: 1 s segments, partial AUROC up to FPR 0.1, mean over classes.
PAUROC = AUROCConfig(segment_length=1.0, max_fpr=0.1)


# --- post-processing -----------------------------------------------------------------------------

def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Compare-exchange pairs of Batcher's odd-even merge sort network for ``n`` inputs."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def _median_rows(x: np.ndarray, size: int) -> np.ndarray:
    """Median over the last axis of 2-D ``x`` (R, T), window ``size`` (odd), mode 'reflect'.

    A sorting network of element-wise min/max over shifted views, in cache-sized row blocks:
    ~6x faster than ``scipy.ndimage.median_filter`` and equal to it (a median is a selection,
    so no rounding can differ).
    """
    half = size // 2
    rows, t = x.shape
    padded = np.pad(x, [(0, 0), (half, half)], mode="symmetric")  # scipy 'reflect' == numpy 'symmetric'
    out = np.empty_like(x)
    pairs = _batcher_pairs(size)
    block = max(1, 131072 // (t + 2 * half))
    for r in range(0, rows, block):
        p = padded[r:r + block]
        v = [p[:, i:i + t] for i in range(size)]
        for a, b in pairs:
            lo = np.minimum(v[a], v[b])
            v[b] = np.maximum(v[a], v[b])
            v[a] = lo
        out[r:r + block] = v[half]
    return out


def _median_rows_generic(x: np.ndarray, size: int) -> np.ndarray:
    """The same filter for any size (even ones too): a selection over sliding windows."""
    from numpy.lib.stride_tricks import sliding_window_view

    left = size // 2  # scipy's window for origin 0: [i - size // 2, i + (size - 1) // 2]
    padded = np.pad(x, [(0, 0), (left, size - 1 - left)], mode="symmetric")
    out = np.empty_like(x)
    block = max(1, 4_000_000 // (x.shape[1] * size))
    for r in range(0, len(x), block):
        windows = sliding_window_view(padded[r:r + block], size, axis=-1)  # (rows, T, size)
        out[r:r + block] = np.partition(windows, left, axis=-1)[..., left]
    return out


def median_filter(scores: np.ndarray, size: int | Sequence[int] = 9) -> np.ndarray:
    """Median filter over time, per class: ``scores`` (K, T) or (B, K, T) -> same shape and dtype.

    Equals ``scipy.ndimage.median_filter(scores, size=(1, size))`` (mode 'reflect'), i.e. the
    reference's ``median_filter(scores_tk, (size, 1))`` on the transposed (T, K) matrix, for every
    size <= T (tested). ``size`` may be one int or one int per class (K ints); 1 changes nothing.
    Windows longer than the clip reflect again at each end (numpy's 'symmetric' padding); scipy
    reads past the row there and its results depend on memory layout. NaN scores give undefined
    results (as in scipy). Odd sizes use a sorting network (~6x faster than scipy).
    """
    arr = np.asarray(scores)
    if arr.ndim not in (2, 3):
        raise ValueError(f"median_filter expects scores of shape (K, T) or (B, K, T), got {arr.shape}")
    k, t = arr.shape[-2:]
    sizes = np.full(k, size, dtype=int) if np.isscalar(size) else np.asarray(size, dtype=int)
    if sizes.shape != (k,) or (sizes < 1).any():
        raise ValueError(f"median_filter size must be a positive int or {k} positive ints (one per "
                         f"class), got {size!r}")
    out = np.empty_like(arr)
    for s in np.unique(sizes):
        cls = np.flatnonzero(sizes == s)
        part = arr[..., cls, :]  # (..., k_s, T)
        if s == 1 or t == 0:
            out[..., cls, :] = part
        elif s % 2 == 1 and s <= 31 and t >= s:
            out[..., cls, :] = _median_rows(part.reshape(-1, t), int(s)).reshape(part.shape)
        else:
            out[..., cls, :] = _median_rows_generic(part.reshape(-1, t), int(s)).reshape(part.shape)
    return out


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


class MappedScores(Mapping):
    """A lazy view ``{clip: fn(scores[clip])}``: nothing is computed or held until asked for."""

    def __init__(self, scores: Mapping[str, pd.DataFrame], fn: Callable[[pd.DataFrame], pd.DataFrame]):
        self._scores, self._fn = scores, fn

    def __getitem__(self, key: str) -> pd.DataFrame:
        return self._fn(self._scores[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._scores)

    def __len__(self) -> int:
        return len(self._scores)

    def path_of(self, key: str) -> str | None:
        return _path_of(self._scores, key)


def median_filter_scores(scores: Mapping[str, pd.DataFrame], size: int | Sequence[int] = 9) -> MappedScores:
    """Score DataFrames with every class column median-filtered over time (lazily, per clip)."""
    def apply(df: pd.DataFrame) -> pd.DataFrame:
        values = df.to_numpy(dtype=np.float64)  # (T, 2 + K)
        filtered = median_filter(values[:, 2:].T, size).T  # (T, K)
        return pd.DataFrame(np.concatenate((values[:, :2], filtered), axis=1), columns=df.columns)
    return MappedScores(scores, apply)


# --- score files ---------------------------------------------------------------------------------

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
        if not key or key != key.strip() or any(c in key for c in "/\\\0\n\t") or key.startswith("."):
            raise EvaluationError(f"cannot use clip id {key!r} as a file name in {path}")
        try:
            validate_score_dataframe(df)
        except (ValueError, AssertionError) as err:
            raise EvaluationError(f"scores of clip {key!r}: {err}") from None
    path.mkdir(parents=True, exist_ok=True)
    for key, df in scores.items():
        target = path / f"{key}.tsv"
        tmp = path / f".{key}.tsv.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            df.to_csv(tmp, sep="\t", index=False)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)


def _path_of(scores: Mapping, key: str) -> str | None:
    fn = getattr(scores, "path_of", None)
    return fn(key) if fn else None


# --- inputs --------------------------------------------------------------------------------------

def clip_id(name: str) -> str:
    """Key used to match scores, ground truth and durations: the name without an audio extension."""
    low = name.lower()
    for ext in AUDIO_EXTENSIONS:
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def _listing(names: Iterable[str], limit: int = 5) -> str:
    names = sorted(names)
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return f"{len(names)}: {names[:limit]}{more}"


def _keyed(mapping: Mapping[str, Any], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in mapping:
        cid = clip_id(key)
        if cid in out:
            raise EvaluationError(f"{what}: {out[cid]!r} and {key!r} are the same clip {cid!r}")
        out[cid] = key
    return out


@dataclass
class _Inputs:
    clips: list[str]                     # sorted clip ids
    score_keys: dict[str, str]           # clip id -> key in the scores mapping
    classes: list[str]                   # evaluated classes, in score-column order
    ground_truth: dict[str, list[tuple[float, float, str]]]
    durations: dict[str, float]


def _events(clip: str, events: Iterable[Any]) -> list[tuple[float, float, str]]:
    out = []
    for ev in events:
        if hasattr(ev, "onset"):
            onset, offset, label = ev.onset, ev.offset, ev.label
        else:
            try:
                onset, offset, label = ev
            except (TypeError, ValueError):
                raise EvaluationError(f"ground truth of clip {clip!r}: expected (onset, offset, label), "
                                      f"got {ev!r}") from None
        onset, offset = float(onset), float(offset)
        if not (math.isfinite(onset) and math.isfinite(offset) and 0 <= onset <= offset):
            raise EvaluationError(f"ground truth of clip {clip!r}: bad event times "
                                  f"{onset}..{offset} ({label})")
        out.append((onset, offset, str(label)))
    return out


def _prepare(
    scores: Mapping[str, pd.DataFrame],
    ground_truth: Mapping[str, Iterable[Any]],
    durations: Mapping[str, float],
    classes: Sequence[str] | None,
    restrict_to: Iterable[str] | None,
) -> _Inputs:
    if len(scores) == 0:
        raise EvaluationError("no scores given")
    score_keys = _keyed(scores, "scores")
    gt_keys = _keyed(ground_truth, "ground truth")
    dur_keys = _keyed(durations, "durations")
    only_scores = score_keys.keys() - gt_keys.keys()
    only_gt = gt_keys.keys() - score_keys.keys()
    if only_scores or only_gt:
        parts = []
        if only_scores:
            parts.append(f"clips with scores but no ground truth {_listing(only_scores)}")
        if only_gt:
            parts.append(f"clips in the ground truth without scores {_listing(only_gt)}")
        raise EvaluationError("scores and ground truth list different clips: " + "; ".join(parts))
    missing = score_keys.keys() - dur_keys.keys()
    if missing:
        raise EvaluationError(f"clips without a duration {_listing(missing)}")

    gt = {cid: _events(cid, ground_truth[gt_keys[cid]]) for cid in sorted(gt_keys)}
    first = next(iter(sorted(score_keys)))
    columns = [str(c) for c in scores[score_keys[first]].columns[2:]]
    where = _path_of(scores, score_keys[first]) or f"clip {first!r}"
    requested = classes is not None
    if not requested:
        classes = columns
    else:
        absent = [c for c in classes if c not in columns]
        if absent:
            raise EvaluationError(f"scores of {where}: no column for class {absent[0]!r} "
                                  f"({len(absent)} of the requested classes are missing)")
        classes = [c for c in columns if c in set(classes)]

    if restrict_to is not None:
        keep = set(restrict_to) & set(classes) if requested else set(restrict_to)
        gt = {cid: [e for e in evs if e[2] in keep] for cid, evs in gt.items()}
        gt = {cid: evs for cid, evs in gt.items() if evs}  # the reference drops clips left empty
        labels = {e[2] for evs in gt.values() for e in evs}
        absent = sorted(labels - set(columns))
        if absent:
            raise EvaluationError(f"scores of {where}: no column for class {absent[0]!r} "
                                  f"({len(absent)} protocol classes with ground truth are missing)")
        classes = [c for c in classes if c in labels]
        log.info("protocol: %d classes, %d of %d clips keep events", len(classes), len(gt), len(gt_keys))
        if not gt:
            raise EvaluationError("no ground-truth event is left in the evaluated classes")
    else:
        known = set(classes)
        unknown = sorted({e[2] for evs in gt.values() for e in evs} - known)
        if unknown:
            raise EvaluationError(f"ground-truth classes without a score column {_listing(unknown)}; "
                                  "evaluate a subset with restrict_to (the AudioSet protocol)")
    counts = {c: 0 for c in classes}
    for evs in gt.values():
        for e in evs:
            counts[e[2]] += 1
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise EvaluationError(f"classes without ground-truth events (PSDS is undefined for them) "
                              f"{_listing(empty)}; restrict the classes evaluated")
    _check_not_connected(gt)
    clips = sorted(gt)
    return _Inputs(clips, score_keys, list(classes), gt,
                   {cid: float(durations[dur_keys[cid]]) for cid in clips})


def _check_not_connected(gt: Mapping[str, list[tuple[float, float, str]]]) -> None:
    """sed_scores_eval refuses overlapping or touching events of one class in one clip."""
    for cid, evs in gt.items():
        by_class: dict[str, list[tuple[float, float, str]]] = {}
        for e in evs:
            by_class.setdefault(e[2], []).append(e)
        for label, group in by_class.items():
            group = sorted(group)
            for a, b in zip(group, group[1:]):
                if b[0] <= a[1]:
                    raise EvaluationError(
                        f"ground truth of clip {cid!r}: events {a[:2]} and {b[:2]} of class {label!r} "
                        "overlap or touch; merge them first (sedlib.data.labels.merge_overlapping)"
                    )


def _clip_matrix(
    df: pd.DataFrame, classes: list[str], cache: dict, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Score DataFrame -> (timestamps (T+1,), scores (T, K) float64 in ``classes`` order)."""
    cols = df.columns
    known = cache.get("cols")
    idx = cache["idx"] if known is not None and (known is cols or cols.equals(known)) else None
    if idx is None:
        if len(cols) < 3 or cols[0] != "onset" or cols[1] != "offset":
            raise EvaluationError(f"scores of {where}: expected columns 'onset', 'offset', <classes...>, "
                                  f"got {list(cols[:4])}...")
        if cols.has_duplicates:
            raise EvaluationError(f"scores of {where}: duplicate columns")
        idx = cols.get_indexer(classes)
        if (idx < 0).any():
            missing = classes[int(np.argmax(idx < 0))]
            raise EvaluationError(f"scores of {where}: no column for class {missing!r}")
        cache.update(cols=cols, idx=idx)
    try:
        arr = df.to_numpy(dtype=np.float64, copy=False)  # (T, 2 + C)
    except (TypeError, ValueError) as err:
        raise EvaluationError(f"scores of {where}: not numeric ({err})") from None
    onset, offset = arr[:, 0], arr[:, 1]
    if len(arr) == 0 or not (offset > onset).all() or not (offset[:-1] == onset[1:]).all():
        raise EvaluationError(f"scores of {where}: frames must be non-empty, of positive length and "
                              "contiguous (each onset equal to the previous offset)")
    if idx[0] == 2 and (np.diff(idx) == 1).all():
        s = arr[:, 2:2 + len(idx)]  # (T, K) view, no copy
    else:
        s = arr[:, idx]  # (T, K)
    return np.concatenate((onset, offset[-1:])), s


# --- the fast engine -----------------------------------------------------------------------------

_EMPTY = np.empty(0)
_CHUNK = 256  # clips between updates of the pruning levels


def _per_class_gt(inputs: _Inputs) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """clip -> {class index: (onsets, offsets)} in file order (as sed_scores_eval splits them)."""
    index = {c: i for i, c in enumerate(inputs.classes)}
    out = {}
    for cid in inputs.clips:
        per: dict[int, list[tuple[float, float]]] = {}
        for onset, offset, label in inputs.ground_truth[cid]:
            per.setdefault(index[label], []).append((onset, offset))
        out[cid] = {k: tuple(np.array(v).T) for k, v in per.items()}
    return out


class _PSDSStats:
    """Intersection-based change points of one PSDS configuration, pruned as the module explains."""

    def __init__(self, cfg: PSDSConfig, num_classes: int, dataset_duration: float, no_gt_pairs: np.ndarray):
        self.cfg, self.k, self.duration = cfg, num_classes, dataset_duration
        self.unit = SECONDS_PER_UNIT[cfg.unit_of_time]
        # L false positives make eFPR > max_efpr with a margin of unit/duration
        self.limit = math.floor(cfg.max_efpr * dataset_duration / self.unit) + 2
        self.prunable = no_gt_pairs >= self.limit
        self.prune = cfg.dtc_threshold > 0 and bool(self.prunable.any())
        self.theta = np.full(num_classes, -np.inf)
        self.fixed = False
        self.top = np.full((num_classes, self.limit), -np.inf) if self.prune else None
        self.pending: list[np.ndarray] = []
        self.parts: list[list[np.ndarray]] = [[], [], [], []]  # class, score, tps delta, fps delta
        self.cts_parts: list[list[np.ndarray]] = [[], [], [], []]  # class, other class, score, delta
        self.chunks: list[tuple[np.ndarray, ...]] = []
        self.cts_chunks: list[tuple[np.ndarray, ...]] = []
        self.stored = 0
        self.stored_after_prune = 0
        self.finite_at_prune = 0

    def count_maxima(self, maxima: np.ndarray, has_gt: np.ndarray) -> None:
        """Count one clip's (clip, class) pairs without ground truth towards the pruning levels."""
        if self.prune and not self.fixed:
            self.pending.append(np.where(has_gt, -np.inf, maxima))

    def established(self) -> float:
        """Fraction of the prunable classes whose pruning level is known."""
        return float(np.isfinite(self.theta[self.prunable]).mean()) if self.prune else 1.0

    def _update_top(self) -> None:
        if not self.pending:
            return
        cand = np.concatenate([self.top, np.stack(self.pending, axis=1)], axis=1)  # (K, L + n)
        kth = cand.shape[1] - self.limit
        self.top = np.partition(cand, kth, axis=1)[:, kth:]
        self.theta = self.top.min(axis=1)  # the L-th largest maximum; -inf until L are known
        self.pending = []

    def add_clip(self, ts: np.ndarray, s: np.ndarray, gt: dict[int, tuple[np.ndarray, np.ndarray]],
                 maxima: np.ndarray, has_gt: np.ndarray, count: bool = True) -> None:
        from sed_scores_eval.base_modules.cy_detection import onset_offset_curves
        from sed_scores_eval.intersection_based.intermediate_statistics import statistics_fn

        cfg, theta = self.cfg, self.theta
        if cfg.dtc_threshold * float(np.min(np.diff(ts))) < 10.0 ** -cfg.time_decimals:
            # below this a detection without ground truth could pass the DTC after rounding
            raise EvaluationError("frames too short for the fast PSDS computation; use engine='reference'")
        if count:
            self.count_maxima(maxima, has_gt)
        alive = maxima > theta
        fast, full = alive & ~has_gt, alive & has_gt
        if cfg.cttc_threshold is not None and gt and fast.any():
            # a cross trigger needs a detection overlapping another class's event; detections above
            # the pruning level lie in frames above it, so only pairs with such a frame inside an
            # event need the full count (sed_scores_eval counts every pair that way)
            on = np.concatenate([v[0] for v in gt.values()])
            off = np.concatenate([v[1] for v in gt.values()])
            in_event = ((ts[:-1, None] < off) & (ts[1:, None] > on)).any(axis=1)  # (T,)
            risky = fast & ((s > theta) & in_event[:, None]).any(axis=0)
            fast, full = fast & ~risky, full | risky
        if fast.any():
            # sed_scores_eval's onset_deltas (+1 at local maxima, -1 at local minima), evaluated
            # only at frames above the pruning level: nothing below it can matter
            above = s.T > np.where(fast, theta, np.inf)[:, None]  # (K, T); C-contiguous when s is
            c_idx, t_idx = np.divmod(np.flatnonzero(above), s.shape[0])  # a DataFrame's block
            value = s[t_idx, c_idx]
            last = len(s) - 1
            prev = np.where(t_idx > 0, s[np.maximum(t_idx - 1, 0), c_idx], -np.inf)
            nxt = np.where(t_idx < last, s[np.minimum(t_idx + 1, last), c_idx], -np.inf)
            delta = (value > prev).astype(np.int32) - (nxt > value)
            keep = delta != 0
            self._append(c_idx[keep], value[keep], np.zeros(int(keep.sum()), np.int32), delta[keep])
        others_on = {o: v[0] for o, v in gt.items()} if cfg.cttc_threshold is not None else {}
        others_off = {o: v[1] for o, v in gt.items()} if cfg.cttc_threshold is not None else {}
        for c in np.flatnonzero(full):
            sc = np.ascontiguousarray(s[:, c])
            cands = np.unique(sc)
            if theta[c] > -np.inf:
                cands = cands[cands > theta[c]]
            if not cands.size:
                continue
            _, det_on, det_off = onset_offset_curves(sc, ts, cands)
            target_on, target_off = gt.get(c, (_EMPTY, _EMPTY))
            stats = statistics_fn(
                detection_onset_times=det_on, detection_offset_times=det_off,
                target_onset_times=target_on, target_offset_times=target_off,
                other_onset_times={o: v for o, v in others_on.items() if o != c},
                other_offset_times={o: v for o, v in others_off.items() if o != c},
                dtc_threshold=cfg.dtc_threshold, gtc_threshold=cfg.gtc_threshold,
                cttc_threshold=cfg.cttc_threshold, time_decimals=cfg.time_decimals,
            )
            tps, fps = _deltas(stats["tps"]), _deltas(stats["fps"])
            nonzero = (tps != 0) | (fps != 0)
            if cfg.cttc_threshold is not None:
                for o, counts in stats["cts"].items():
                    d = _deltas(counts)
                    sel = d != 0
                    if sel.any():
                        nonzero |= sel
                        n = int(sel.sum())
                        new = (np.full(n, c), np.full(n, o), cands[sel], d[sel])
                        for part, value in zip(self.cts_parts, new):
                            part.append(value)
            n = int(nonzero.sum())
            self._append(np.full(n, c), cands[nonzero], tps[nonzero], fps[nonzero])

    def _append(self, cls, score, tps, fps) -> None:
        for part, value in zip(self.parts, (cls, score, tps, fps)):
            part.append(value)

    def flush(self) -> None:
        """Turn the clips added since the last flush into a chunk; raise pruning levels; prune."""
        if self.parts[0]:
            cls, score, tps, fps = (np.concatenate(p) for p in self.parts)
            chunk = (cls.astype(np.int32), score, tps.astype(np.int32), fps.astype(np.int32))
            self.chunks.append(chunk)
            self.stored += len(chunk[0])
            self.parts = [[], [], [], []]
        if self.cts_parts[0]:
            self.cts_chunks.append(tuple(np.concatenate(p) for p in self.cts_parts))
            self.cts_parts = [[], [], [], []]
        if self.prune and not self.fixed:
            self._update_top()
            finite = int(np.isfinite(self.theta).sum())
            if finite > self.finite_at_prune or self.stored > 2 * self.stored_after_prune + 1_000_000:
                self.prune_stored()

    def prune_stored(self) -> None:
        def cut(chunks: list[tuple[np.ndarray, ...]], score_at: int) -> list[tuple[np.ndarray, ...]]:
            out = []
            for chunk in chunks:
                keep = chunk[score_at] > self.theta[chunk[0]]
                out.append(tuple(a[keep] for a in chunk))
            return out
        self.chunks = cut(self.chunks, 1)
        self.cts_chunks = cut(self.cts_chunks, 2)
        self.stored = self.stored_after_prune = sum(len(c[0]) for c in self.chunks)
        self.finite_at_prune = int(np.isfinite(self.theta).sum())

    def merge(self, other: "_PSDSStats") -> None:
        """Take over the change points of a shard (another process's share of the clips)."""
        self.flush()
        other.flush()
        self.chunks += other.chunks
        self.cts_chunks += other.cts_chunks
        # each shard's level bounds the final one from below (it saw a subset of the pairs)
        self.theta = np.maximum(self.theta, other.theta)
        self.prune_stored()

    def result(
        self, n_ref: np.ndarray, t_ref: np.ndarray, classes: list[str]
    ) -> tuple[float, dict[str, float]]:
        """PSDS and per-class PSDS, as ``sed_scores_eval.intersection_based.psds`` computes them."""
        from sed_scores_eval.intersection_based.psds import (
            multi_class_psd_roc_from_single_class_psd_rocs, psds_from_psd_roc)

        self.flush()
        self.prune_stored()
        cfg, k = self.cfg, self.k
        dtypes = (np.int32, float, np.int32, np.int32)
        cls, score, tps, fps = (np.concatenate([c[i] for c in self.chunks]) if self.chunks
                                else np.empty(0, dt) for i, dt in enumerate(dtypes))
        order = np.lexsort((score, cls))
        cls, score, tps, fps = cls[order], score[order], tps[order], fps[order]
        bounds = np.searchsorted(cls, np.arange(k + 1))
        if self.cts_chunks:
            ccls, cother, cscore, cdelta = (np.concatenate([c[i] for c in self.cts_chunks]) for i in range(4))
            corder = np.lexsort((cscore, cother, ccls))
            ccls, cother, cscore, cdelta = ccls[corder], cother[corder], cscore[corder], cdelta[corder]
            cbounds = np.searchsorted(ccls, np.arange(k + 1))
        rocs = {}
        for c in range(k):
            a, b = bounds[c], bounds[c + 1]
            s = score[a:b]
            starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if b > a else np.empty(0, int)
            unique = s[starts]
            tp_count = _reverse_cumsum(np.add.reduceat(tps[a:b], starts) if b > a else np.empty(0))
            fp_count = _reverse_cumsum(np.add.reduceat(fps[a:b], starts) if b > a else np.empty(0))
            tpr = tp_count / max(int(n_ref[c]), 1)
            efpr = fp_count / self.duration
            if cfg.alpha_ct != 0:
                ct_sum = np.zeros(len(unique) + 1)
                if self.cts_chunks:
                    ca, cb = cbounds[c], cbounds[c + 1]
                    others = cother[ca:cb]
                    for o in np.unique(others):  # ascending = sed_scores_eval's class order
                        sel = slice(ca + np.searchsorted(others, o), ca + np.searchsorted(others, o, "right"))
                        pos = np.searchsorted(unique, cscore[sel])
                        dense = np.bincount(pos, weights=cdelta[sel], minlength=len(unique))
                        ct_sum = ct_sum + _reverse_cumsum(dense) / max(float(t_ref[o]), 1e-12)
                # = np.mean over the K - 1 other classes' rates, summed in the same order
                efpr = efpr + cfg.alpha_ct * (ct_sum / (k - 1) if k > 1 else np.full_like(ct_sum, np.nan))
            efpr = efpr * self.unit
            rocs[classes[c]] = _sort_and_cut(tpr, efpr, cfg.max_efpr)
        etpr, efpr = multi_class_psd_roc_from_single_class_psd_rocs(rocs, cfg.alpha_st, cfg.max_efpr)
        per_class = {c: float(psds_from_psd_roc(t, f, cfg.max_efpr)) for c, (t, f) in rocs.items()}
        return float(psds_from_psd_roc(etpr, efpr, cfg.max_efpr)), per_class


def _deltas(stats: np.ndarray) -> np.ndarray:
    """Counts at ascending thresholds -> their changes (the count above the last one is 0)."""
    return stats - np.concatenate((stats[1:], np.zeros_like(stats[:1])))


def _reverse_cumsum(deltas: np.ndarray) -> np.ndarray:
    """Deltas at ascending unique scores -> counts at each score, plus 0 at +inf (float64)."""
    return np.concatenate((np.cumsum(deltas[::-1])[::-1], [0])).astype(np.float64)


def _sort_and_cut(tpr: np.ndarray, efpr: np.ndarray, max_efpr: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``sed_scores_eval.intersection_based.psds._sort_and_cut`` with a vectorised ``xsort``.

    ``xsort`` orders operating points by (eFPR, TPR) with Python's stable ``sorted``;
    ``np.lexsort`` is stable and gives the same order, in C.
    """
    tpr, efpr = tpr[::-1], efpr[::-1]
    order = np.lexsort((tpr, efpr))
    tpr, efpr = tpr[order], efpr[order]
    run_max = np.maximum.accumulate(tpr)
    rising = np.concatenate(([0], np.arange(1, len(tpr))[run_max[1:] > run_max[:-1]]))
    tpr, efpr = tpr[rising], efpr[rising]
    efpr, first = np.unique(efpr[::-1], return_index=True)
    tpr = tpr[-1 - first]
    if max_efpr is not None:
        cut = int(np.searchsorted(efpr, max_efpr, side="right"))  # first index with efpr > max_efpr
        tpr, efpr = tpr[:cut], efpr[:cut]
    return tpr, efpr


class _SegmentStats:
    """Per-segment maxima and labels for segment-based (partial) AUROC, as sed_scores_eval does it."""

    def __init__(self, cfg: AUROCConfig, num_classes: int, segments: dict[str, tuple[int, int]]):
        self.cfg, self.k, self.segments = cfg, num_classes, segments
        total = max((stop for _, stop in segments.values()), default=0)
        self.scores = np.zeros((num_classes, total))  # (K, all segments)
        self.positive = np.zeros((num_classes, total), dtype=bool)

    def add_clip(self, cid: str, ts: np.ndarray, s: np.ndarray,
                 gt: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        cfg = self.cfg
        start, stop = self.segments[cid]
        n = stop - start
        ts = np.round(ts, cfg.time_decimals)
        bounds = np.round(np.arange(n + 1) * cfg.segment_length, cfg.time_decimals)
        seg_on, seg_off = bounds[:-1], bounds[1:]
        first = np.maximum(np.searchsorted(ts, seg_on, side="right") - 1, 0)
        last = np.minimum(np.searchsorted(ts, seg_off, side="left"), len(ts) - 1)
        for i in range(n):
            if last[i] > first[i]:
                self.scores[:, start + i] = s[first[i]:last[i]].max(axis=0)
        for c, (onsets, offsets) in gt.items():
            hit = np.zeros(n, dtype=bool)
            for onset, offset in zip(onsets, offsets):
                hit |= (seg_on < offset) & (seg_off > onset) & (seg_off > seg_on)
            self.positive[c, start:stop] = hit

    def result(self, classes: list[str]) -> tuple[float, dict[str, float]]:
        """Mean and per-class AUROC, as ``sed_scores_eval.segment_based.auroc`` computes them."""
        from sed_scores_eval.base_modules.curves import linear_auc

        cfg = self.cfg
        per_class = {}
        for c, name in enumerate(classes):
            unique, inverse = np.unique(self.scores[c], return_inverse=True)
            pos = self.positive[c]
            tps = _reverse_cumsum(np.bincount(inverse, weights=pos, minlength=len(unique)))
            fps = _reverse_cumsum(np.bincount(inverse, weights=~pos, minlength=len(unique)))
            n_ref = tps[0]
            n_sys = tps + fps
            tns = n_sys[0] - n_sys - (n_ref - tps)
            with np.errstate(invalid="ignore", divide="ignore"):
                tpr, fpr = tps / n_ref, fps / (tns + fps)
            order = np.lexsort((tpr, fpr))  # sed_scores_eval's xsort
            auc = linear_auc(tpr[order], fpr[order], max_x=cfg.max_fpr)
            if cfg.max_fpr is not None and cfg.mcclish_correction:
                lo, hi = 0.5 * cfg.max_fpr ** 2, cfg.max_fpr
                auc = 0.5 * (1 + (auc - lo) / (hi - lo))
            else:
                auc = auc / (1 if cfg.max_fpr is None else cfg.max_fpr)
            per_class[name] = float(auc)
        return float(np.mean(list(per_class.values()))), per_class


def _segment_layout(inputs: _Inputs, cfg: AUROCConfig) -> dict[str, tuple[int, int]]:
    out, start = {}, 0
    for cid in inputs.clips:
        n = int(np.ceil(inputs.durations[cid] / cfg.segment_length))
        out[cid] = (start, start + n)
        start += n
    return out


def _clip_stream(scores, inputs: _Inputs, gt, clips: list[str], progress: bool = False):
    """(clip, timestamps, scores (T, K), per-pair maxima (K,), has ground truth (K,)) per clip."""
    from tqdm.auto import tqdm

    cache: dict = {}
    k = len(inputs.classes)
    for cid in tqdm(clips, desc="PSDS", unit="clip", disable=None if progress else True):
        key = inputs.score_keys[cid]
        ts, s = _clip_matrix(scores[key], inputs.classes, cache, _path_of(scores, key) or f"clip {cid!r}")
        has_gt = np.zeros(k, dtype=bool)
        has_gt[list(gt[cid])] = True
        yield cid, ts, s, _maxima(s, inputs.classes, key, scores), has_gt


def _maxima(s: np.ndarray, classes: list[str], key: str, scores: Mapping) -> np.ndarray:
    """Per-class maxima (K,) of a clip's scores; NaN scores raise (they would break thresholds)."""
    maxima = s.max(axis=0)
    nan = np.isnan(maxima)
    if nan.any():
        where = _path_of(scores, key) or f"clip {clip_id(key)!r}"
        raise EvaluationError(f"scores of {where}: NaN scores for class {classes[int(np.argmax(nan))]!r}")
    return maxima


def _fast_shard(scores, inputs, gt, clips, psds_stats, seg_stats, counted: int = 0, progress=False):
    """Feed ``clips`` through the accumulators; the first ``counted`` were counted by a prepass."""
    for i, (cid, ts, s, maxima, has_gt) in enumerate(_clip_stream(scores, inputs, gt, clips, progress)):
        for acc in psds_stats:
            acc.add_clip(ts, s, gt[cid], maxima, has_gt, count=i >= counted)
        if seg_stats is not None:
            seg_stats.add_clip(cid, ts, s, gt[cid])
        if (i + 1) % _CHUNK == 0:
            for acc in psds_stats:
                acc.flush()
    for acc in psds_stats:
        acc.flush()
    return psds_stats, seg_stats


def _prepass(scores, inputs: _Inputs, gt, psds_stats: list[_PSDSStats], prepass: str) -> int:
    """Count pair maxima ahead of the main pass so pruning starts with the first clip.

    ``"full"``: all clips (the final, exact levels; every clip is read twice). ``"partial"``: only
    until 95% of the prunable classes have a level (~30% of the clips at 10 s per clip and
    max_efpr 100/h; only those are read twice), levels then rise as the main pass goes on.
    ``"auto"``: full for a dict (scores in memory), partial for lazy mappings (files).
    Returns how many clips were counted.
    """
    if prepass not in ("auto", "full", "partial"):
        raise ValueError(f"prepass must be 'auto', 'full' or 'partial', got {prepass!r}")
    todo = [acc for acc in psds_stats if acc.prune]
    if not todo:
        return 0
    everything = prepass == "full" or (prepass == "auto" and type(scores) is dict)
    n = 0
    for n, (_, _, _, maxima, has_gt) in enumerate(_clip_stream(scores, inputs, gt, inputs.clips), 1):
        for acc in todo:
            acc.count_maxima(maxima, has_gt)
        if n % _CHUNK == 0:
            for acc in todo:
                acc._update_top()
            if not everything and min(acc.established() for acc in todo) >= 0.95:
                break
    for acc in todo:
        acc._update_top()
        acc.fixed = n == len(inputs.clips)
    log.debug("PSDS prepass counted %d of %d clips", n, len(inputs.clips))
    return n


_SHARED: dict[str, Any] = {}  # handed to forked workers (not pickled)


def _worker(job: tuple[int, list[str]]):
    first, shard = job
    scores, inputs, gt, make_psds, seg_stats, counted = (
        _SHARED[k] for k in ("scores", "inputs", "gt", "make_psds", "seg", "counted"))
    psds_stats, seg = _fast_shard(scores, inputs, gt, shard, make_psds(), seg_stats, max(0, counted - first))
    if seg is None:
        return psds_stats, None
    start, stop = seg.segments[shard[0]][0], seg.segments[shard[-1]][1]  # shards are contiguous
    return psds_stats, (start, stop, seg.scores[:, start:stop], seg.positive[:, start:stop])


def _fast(scores, inputs: _Inputs, configs: list[PSDSConfig], auroc: AUROCConfig | None, num_jobs: int,
          prepass: str = "auto"):
    import copy

    k = len(inputs.classes)
    gt = _per_class_gt(inputs)
    duration = sum(inputs.durations.values())  # dict order, as sed_scores_eval sums it
    with_gt = np.zeros(k, dtype=int)
    for per in gt.values():
        with_gt[list(per)] += 1
    psds_stats = [_PSDSStats(cfg, k, duration, len(inputs.clips) - with_gt) for cfg in configs]
    counted = _prepass(scores, inputs, gt, psds_stats, prepass)
    seg_stats = _SegmentStats(auroc, k, _segment_layout(inputs, auroc)) if auroc is not None else None
    num_jobs = max(1, min(int(num_jobs), len(inputs.clips) // 32 or 1))
    if num_jobs == 1:
        psds_stats, seg_stats = _fast_shard(scores, inputs, gt, inputs.clips, psds_stats, seg_stats,
                                            counted, progress=True)
    else:
        import multiprocessing

        bounds = np.linspace(0, len(inputs.clips), num_jobs + 1).astype(int)
        jobs = [(int(a), inputs.clips[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        _SHARED.update(scores=scores, inputs=inputs, gt=gt, seg=seg_stats, counted=counted,
                       make_psds=lambda: copy.deepcopy(psds_stats))
        try:
            with multiprocessing.get_context("fork").Pool(num_jobs) as pool:
                parts = pool.map(_worker, jobs)
        finally:
            _SHARED.clear()
        for shard_stats, seg in parts:
            for acc, part in zip(psds_stats, shard_stats):
                acc.merge(part)
            if seg_stats is not None:
                start, stop, seg_scores, seg_positive = seg
                seg_stats.scores[:, start:stop] = seg_scores
                seg_stats.positive[:, start:stop] = seg_positive
    n_ref = np.zeros(k, dtype=int)
    t_ref = np.zeros(k)
    index = {c: i for i, c in enumerate(inputs.classes)}
    for cid in inputs.clips:
        for onset, offset, label in inputs.ground_truth[cid]:
            n_ref[index[label]] += 1
            t_ref[index[label]] += offset - onset
    psds = [acc.result(n_ref, t_ref, inputs.classes) for acc in psds_stats]
    return psds, (seg_stats.result(inputs.classes) if seg_stats is not None else None)


# --- the reference engine and the report ---------------------------------------------------------

def _reference(scores, inputs: _Inputs, configs: list[PSDSConfig], auroc: AUROCConfig | None):
    """sed_scores_eval called directly, on DataFrames holding only the evaluated classes."""
    import sed_scores_eval

    cache: dict = {}
    frames = {}
    for cid in inputs.clips:
        key = inputs.score_keys[cid]
        ts, s = _clip_matrix(scores[key], inputs.classes, cache, _path_of(scores, key) or f"clip {cid!r}")
        _maxima(s, inputs.classes, key, scores)
        frames[cid] = pd.DataFrame(np.concatenate((ts[:-1, None], ts[1:, None], s), axis=1),
                                   columns=["onset", "offset", *inputs.classes])
    gt = {cid: [list(e) for e in inputs.ground_truth[cid]] for cid in inputs.clips}
    psds = []
    for cfg in configs:
        value, per_class, *_ = sed_scores_eval.intersection_based.psds(
            frames, gt, inputs.durations, **cfg.kwargs())
        psds.append((float(value), {c: float(v) for c, v in per_class.items()}))
    seg = None
    if auroc is not None:
        result, _ = sed_scores_eval.segment_based.auroc(frames, gt, inputs.durations, **auroc.kwargs())
        seg = (float(result["mean"]), {c: float(result[c]) for c in inputs.classes})
    return psds, seg


def psds_report(
    scores: Mapping[str, pd.DataFrame],
    ground_truth: Mapping[str, Iterable[Any]],
    durations: Mapping[str, float],
    *,
    classes: Sequence[str] | None = None,
    restrict_to: Iterable[str] | None = None,
    psds1: PSDSConfig = PSDS1,
    psds2: PSDSConfig | None = PSDS2,
    pauroc: AUROCConfig | None = PAUROC,
    num_jobs: int = 1,
    engine: str = "fast",
    prepass: str = "auto",
) -> dict[str, Any]:
    """PSDS1, its macro average, PSDS2 and segment-based pAUROC of frame scores (SPEC 7).

    ``scores``: ``{clip: DataFrame(onset, offset, <class>...)}`` (any mapping: a lazy
    :class:`ScoresDir` keeps memory bounded); ``ground_truth``: ``{clip: [(onset, offset, label)
    or Event, ...]}``; ``durations``: ``{clip: seconds}``. Clip keys match without an audio
    extension (``a.wav`` == ``a``). ``classes``: score columns to evaluate (default all).
    ``restrict_to`` (e.g. :func:`sedlib.data.labels.audioset_eval_protocol_classes`): the AudioSet
    protocol - ground-truth events of other classes are dropped, clips left without events are
    dropped, and only classes in ``restrict_to`` with ground truth are evaluated. ``psds2=None`` /
    ``pauroc=None`` skip those metrics (their values are then None).

    Returns ``psds1`` (alpha_st = 1, the reference's ``val/psds1``), ``psds1_macro`` (mean of the
    per-class PSDS1: the reference's ``val/psds1_macro_averaged``, the number the paper reports),
    ``psds2``, ``pauroc`` (mean over classes, the reference's ``val/pauroc``), ``per_class``
    ``{class: {psds1, psds2, pauroc}}``, ``num_clips`` and ``num_classes``.

    ``num_jobs``: processes for the fast engine (forked; each takes a contiguous share of clips).
    ``prepass``: how the fast engine learns its pruning levels (see :func:`_prepass`); it changes
    time and memory, never the result.
    """
    if engine not in ("fast", "reference"):
        raise ValueError(f"engine must be 'fast' or 'reference', got {engine!r}")
    inputs = _prepare(scores, ground_truth, durations, classes, restrict_to)
    configs = [psds1] + ([psds2] if psds2 is not None else [])
    if engine == "fast":
        psds, seg = _fast(scores, inputs, configs, pauroc, num_jobs, prepass)
    else:
        psds, seg = _reference(scores, inputs, configs, pauroc)
    (p1, p1_class), p2 = psds[0], (psds[1] if psds2 is not None else (None, {}))
    per_class = {
        c: {"psds1": p1_class[c], "psds2": p2[1].get(c), "pauroc": seg[1][c] if seg else None}
        for c in inputs.classes
    }
    return {
        "psds1": p1,
        "psds1_macro": float(np.array(list(p1_class.values())).mean()),
        "psds2": p2[0],
        "pauroc": seg[0] if seg else None,
        "per_class": per_class,
        "num_clips": len(inputs.clips),
        "num_classes": len(inputs.classes),
    }

"""Evaluation inputs (SPEC 7): match scores, ground truth and durations by clip, check them, and
read one clip's score frames as arrays. Shared by :mod:`sedlib.evaluate` and the PSDS engines.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from sedlib.data.sources import strip_audio_ext
from sedlib.errors import SedlibError

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".m4a")


class EvaluationError(SedlibError, ValueError):
    """Scores, ground truth and durations do not fit together (clips, classes, events)."""


def path_of(scores: Mapping, key: str) -> str | None:
    """The file behind ``scores[key]`` for error messages, if the mapping knows it (``ScoresDir``)."""
    fn = getattr(scores, "path_of", None)
    return fn(key) if fn else None


def clip_id(name: str) -> str:
    """Key used to match scores, ground truth and durations: the name without an audio extension."""
    return strip_audio_ext(name, AUDIO_EXTENSIONS)


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
class Inputs:
    """What is evaluated, after matching and checking: the engines read only this and the scores."""

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


def prepare_inputs(
    scores: Mapping[str, pd.DataFrame],
    ground_truth: Mapping[str, Iterable[Any]],
    durations: Mapping[str, float],
    classes: Sequence[str] | None,
    restrict_to: Iterable[str] | None,
) -> Inputs:
    """Match clips across the three mappings, pick the evaluated classes (``restrict_to``: the
    AudioSet protocol, see :func:`sedlib.evaluate.psds_report`) and check everything PSDS needs;
    EvaluationError names the clip, class or event at fault."""
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
    where = path_of(scores, score_keys[first]) or f"clip {first!r}"
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
    return Inputs(clips, score_keys, list(classes), gt,
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


def clip_matrix(
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

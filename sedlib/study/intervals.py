"""Intervals over seeds and the sentence a comparison earns: the study's statistics.

A study number is a mean over training seeds. Its 95 % interval is Student's t over the seeds,
widened by the eval-clip sampling when that is known: ``clip_variances`` are per-seed
variances of the metric under resampling of the eval clips (e.g. a bootstrap over clips).
All seeds are scored on the same eval clips, so that part of the error is shared by every
seed and does not shrink with more seeds; it is added whole (the mean of the per-seed
variances), not divided by the seed count:

    se^2 = s_seeds^2 / n + mean(clip_variances),    interval = mean +- t(0.975, n - 1) * se

A comparison of two configurations is paired: the same seeds, the same eval clips; the interval
is the one of the per-seed differences (their clip variances are those of the differences).
:func:`verdict` turns the paper's direction for a comparison and our interval into the sentence
a notebook prints: agrees (the interval lies on the paper's side of zero), differs (on the
other side) or inconclusive (it contains zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

CONFIDENCE = 0.95
AGREES, DIFFERS, INCONCLUSIVE = "agrees with the paper", "differs from the paper", \
    "inconclusive at this budget"


@dataclass(frozen=True)
class Interval:
    """A mean with its two-sided interval over ``n`` seeds (``low == high == mean`` for n 1
    without clip variances: no error can be estimated, and :attr:`known` is False)."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    @property
    def known(self) -> bool:
        """Whether the interval has a width estimated from data."""
        return self.high > self.low or self.n > 1

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        """``"42.3 ± 1.2 (n=3)"`` (values times ``scale``: PSDS in points)."""
        return (f"{self.mean * scale:.{digits}f} ± {self.half_width * scale:.{digits}f} "
                f"(n={self.n})")


def _t_quantile(confidence: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, dof))


def mean_interval(values: Sequence[float], clip_variances: Sequence[float] | None = None, *,
                  confidence: float = CONFIDENCE) -> Interval:
    """The mean of ``values`` (one per seed) with its interval (module doc). ``clip_variances``:
    one per seed, or None (the interval then covers the seed spread only)."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0 or any(not math.isfinite(v) for v in xs):
        raise ValueError(f"need finite values, one per seed; got {values!r}")
    mean = sum(xs) / n
    var = sum((v - mean) ** 2 for v in xs) / (n - 1) / n if n > 1 else 0.0
    if clip_variances is not None:
        cv = [float(v) for v in clip_variances]
        if len(cv) != n or any(v < 0 or not math.isfinite(v) for v in cv):
            raise ValueError(f"need one finite variance >= 0 per seed ({n}); got {clip_variances!r}")
        var += sum(cv) / n
    if var == 0.0:
        return Interval(mean, mean, mean, n, confidence)
    # one seed with a known clip variance: the normal quantile (nothing to estimate over seeds)
    q = _t_quantile(confidence, n - 1) if n > 1 else _normal_quantile(confidence)
    half = q * math.sqrt(var)
    return Interval(mean, mean - half, mean + half, n, confidence)


def _normal_quantile(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def paired_difference(a: Mapping[int, float], b: Mapping[int, float],
                      clip_variances: Mapping[int, float] | None = None, *,
                      confidence: float = CONFIDENCE) -> Interval:
    """``a - b`` over the seeds both have (``{seed: metric}``), with its interval.
    ``clip_variances``: per seed, the eval-clip variance of the difference. ValueError when
    the seeds differ (an unpaired comparison would hide the seed effect)."""
    if set(a) != set(b):
        raise ValueError(f"a paired comparison needs the same seeds, got {sorted(a)} and {sorted(b)}")
    seeds = sorted(a)
    cv = None if clip_variances is None else [clip_variances[s] for s in seeds]
    return mean_interval([a[s] - b[s] for s in seeds], cv, confidence=confidence)


def verdict_word(difference: Interval, paper_sign: int) -> str:
    """:data:`AGREES` (the interval lies on the paper's side of zero, ``paper_sign`` +1 or -1),
    :data:`DIFFERS` (on the other side) or :data:`INCONCLUSIVE` (it contains zero, or no
    interval could be estimated)."""
    if paper_sign not in (1, -1):
        raise ValueError(f"paper_sign must be +1 or -1, got {paper_sign!r}")
    if not difference.known or difference.contains(0.0):
        return INCONCLUSIVE
    return AGREES if (difference.low > 0) == (paper_sign > 0) else DIFFERS


def verdict(claim: str, difference: Interval, paper_sign: int, *, scale: float = 100.0) -> str:
    """The sentence for a comparison: ``claim`` (what the paper found, e.g. "a sequence model
    adds more than it costs"), ``difference`` (ours, e.g. TF minus CNN) and ``paper_sign``
    (+1: the paper found it positive, -1: negative). ``scale``: the factor to PSDS points
    (100 for fractions; 1 for study records, already in percent).

    >>> verdict("TF beats the CNN", Interval(0.02, 0.01, 0.03, 3), +1)
    'TF beats the CNN: agrees with the paper (difference +2.0 ± 1.0 (n=3) PSDS points, 95 % interval).'
    """
    word = verdict_word(difference, paper_sign)
    if not difference.known:
        word += " (one seed: no interval)"
    pct = round(difference.confidence * 100)
    sign = "+" if difference.mean >= 0 else ""
    return (f"{claim}: {word} (difference {sign}{difference.format(scale)} PSDS points, "
            f"{pct} % interval).")


def fold_variance(folds: Sequence[float]) -> float:
    """The eval-clip sampling variance of a full-set metric from its values on ``k`` disjoint
    folds of the eval clips (batch means): ``var(folds) / k``."""
    xs = [float(v) for v in folds]
    if len(xs) < 2:
        raise ValueError(f"need >= 2 fold values, got {folds!r}")
    mean = sum(xs) / len(xs)
    return sum((v - mean) ** 2 for v in xs) / (len(xs) - 1) / len(xs)


def _clip_variances(rows: Sequence[Mapping[str, Any]], metric: str) -> list[float] | None:
    """Per record, :func:`fold_variance` of ``<metric>_folds``; None unless every record has it."""
    folds = [r.get(f"{metric}_folds") for r in rows]
    if any(f is None for f in folds):
        return None
    return [fold_variance(f) for f in folds]


def summarise_seeds(records: Iterable[Mapping[str, Any]], metric: str = "psds1_macro", *,
                    by: str | tuple[str, ...] = "name", confidence: float = CONFIDENCE
                    ) -> list[dict[str, Any]]:
    """One row per ``by`` value (a configuration; a tuple of fields, e.g. ``("name", "steps")``
    for a learning curve) from per-seed result records (each with ``seed`` and ``metric``): the
    first record's other fields, ``metric`` replaced by the mean over seeds, plus
    ``<metric>_low`` / ``<metric>_high`` (the interval; widened by the eval-clip variance when
    every record carries ``<metric>_folds``), ``seeds`` (sorted) and ``n_seeds``.
    Order: first appearance. ValueError for a seed given twice."""
    fields = (by,) if isinstance(by, str) else tuple(by)
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault(tuple(r[f] for f in fields), []).append(r)
    out = []
    for key, rows in groups.items():
        seeds = [r.get("seed") for r in rows]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{'/'.join(fields)}={key!r}: seed(s) given twice: {seeds}")
        iv = mean_interval([r[metric] for r in rows], _clip_variances(rows, metric),
                           confidence=confidence)
        out.append({**rows[0], metric: iv.mean, f"{metric}_low": iv.low,
                    f"{metric}_high": iv.high, "seeds": sorted(seeds, key=str),
                    "n_seeds": len(rows)})
    return out


def compare_configurations(records: Iterable[Mapping[str, Any]], a: str, b: str,
                           metric: str = "psds1_macro", *, by: str = "name",
                           confidence: float = CONFIDENCE) -> Interval:
    """The paired difference ``a - b`` of ``metric`` between two configurations (``by``
    values) over the seeds both were trained with (:func:`paired_difference`); with
    ``<metric>_folds`` on every record, the eval-clip variance of the difference is estimated
    fold by fold (the same eval clips: paired)."""
    rows = list(records)
    side = {name: {r["seed"]: r for r in rows if r[by] == name} for name in (a, b)}
    for name, values in side.items():
        if not values:
            raise ValueError(f"no records with {by}={name!r}")
    folds = f"{metric}_folds"
    cv = None
    if set(side[a]) == set(side[b]) and all(r.get(folds) is not None for s in side.values()
                                            for r in s.values()):
        cv = {}
        for seed, ra in side[a].items():
            fa, fb = ra[folds], side[b][seed][folds]
            if len(fa) != len(fb):
                raise ValueError(f"{a} and {b} (seed {seed}) were scored on different eval folds")
            cv[seed] = fold_variance([x - y for x, y in zip(fa, fb)])
    return paired_difference({s: r[metric] for s, r in side[a].items()},
                             {s: r[metric] for s, r in side[b].items()}, cv, confidence=confidence)

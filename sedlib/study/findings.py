"""What the notebooks print: per-seed results turned into mean ± 95 % interval tables and into
the computed sentence each of the paper's claims earns (:mod:`sedlib.study.intervals`).

The notebooks hold no statistics: they call :func:`seed_table` for a table of configurations
(one row each, over seeds) and :func:`claim` for a comparison (paired over seeds and eval
folds) with the paper's direction. Values are PSDS in percent, as the study's records hold them.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from sedlib.study.intervals import Interval, compare_configurations, summarise_seeds, verdict

#: The columns a seed table keeps from the records (when present), after the configuration.
KEEP = ("params", "macs", "throughput", "steps", "kd_weight")


def records_of(results: Iterable[Any]) -> list[dict[str, Any]]:
    """Flat per-seed records from ExperimentResults (``.record``) or records (dicts)."""
    return [dict(r.record) if hasattr(r, "record") else dict(r) for r in results]


def seed_table(results: Iterable[Any], *, by: str | Sequence[str] = "name",
               metrics: Sequence[str] = ("psds1_macro", "psds1")):
    """A DataFrame, one row per configuration (``by``): for each of ``metrics`` the mean over
    seeds and its 95 % interval (``<m>_low``/``<m>_high``, eval-clip folds included) and a
    ``"<m> (95 % CI)"`` text column; ``n_seeds``, ``seeds``, and the complexity columns."""
    import pandas as pd

    recs = records_of(results)
    by_ = (by,) if isinstance(by, str) else tuple(by)
    rows: list[dict[str, Any]] = []
    for i, metric in enumerate(metrics):
        for j, row in enumerate(summarise_seeds(recs, metric, by=by_)):
            text = plus_minus(row[metric], row[f"{metric}_low"], row[f"{metric}_high"])
            part = {f"{metric}": row[metric], f"{metric}_low": row[f"{metric}_low"],
                    f"{metric}_high": row[f"{metric}_high"], f"{metric} (95 % CI)": text}
            if i == 0:
                rows.append({**{f: row[f] for f in by_}, **part, "n_seeds": row["n_seeds"],
                             "seeds": row["seeds"],
                             **{k: row[k] for k in KEEP if k in row and k not in by_}})
            else:
                rows[j].update(part)
    return pd.DataFrame(rows)


def plus_minus(mean: float, low: float, high: float) -> str:
    """``"mean ± half-width"``; an interval reaching past 0 or 100 (PSDS is bounded by both)
    as ``"mean [low, high]"`` clipped to the bounds, never as "0.00 ± 0.22"."""
    if low < 0 or high > 100:
        return f"{mean:.2f} [{max(low, 0.0):.2f}, {min(high, 100.0):.2f}]"
    return f"{mean:.2f} ± {(high - low) / 2:.2f}"


def difference(results: Iterable[Any], a: str, b: str, *, by: str = "name",
               metric: str = "psds1_macro") -> Interval:
    """``a - b`` (configurations named by ``by``), paired over seeds and eval folds."""
    return compare_configurations(records_of(results), a, b, metric, by=by)


def claim(results: Iterable[Any], a: str, b: str, text: str, paper_sign: int, *,
          by: str = "name", metric: str = "psds1_macro") -> str:
    """The sentence for the paper's claim ``text`` that ``a`` beats ``b`` (``paper_sign`` +1)
    or loses to it (-1): :func:`sedlib.study.intervals.verdict` of the paired difference."""
    return verdict(text, difference(results, a, b, by=by, metric=metric), paper_sign, scale=1.0)


def on_classes(results: Iterable[Any], classes: Sequence[str]) -> list[dict[str, Any]]:
    """Records whose ``psds1_macro`` (and ``psds1_macro_folds``) is the mean PSDS1 over
    ``classes`` only (those a run evaluated), from its per-class values: a claim or a seed table
    on a group of classes, e.g. :data:`sedlib.data.synth.soundscape.LONG_CONTEXT_CLASSES`.
    A fold lacking one of the classes averages the ones it has. Raises ValueError when a record
    has no per-class values (a run cached before they were stored) or none of ``classes``."""
    out = []
    for r in records_of(results):
        per = r.get("psds1_per_class")
        if per is None:
            raise ValueError(f"{r.get('name')} (seed {r.get('seed')}): no per-class PSDS stored")
        group = [c for c in classes if c in per]
        if not group:
            raise ValueError(f"{r.get('name')}: none of {list(classes)} was evaluated")
        row = {**r, "psds1_macro": sum(per[c] for c in group) / len(group), "classes": group}
        folds = r.get("psds1_per_class_folds")
        if folds is not None:
            n = len(next(iter(folds.values())))
            means = []
            for f in range(n):
                vals = [folds[c][f] for c in group if folds[c][f] is not None]
                means.append(sum(vals) / len(vals) if vals else row["psds1_macro"])
            row["psds1_macro_folds"] = means
        else:
            row.pop("psds1_macro_folds", None)
        out.append(row)
    return out


def class_groups(results: Iterable[Any]) -> dict[str, list[str]]:
    """The evaluated classes (of the first record with per-class values) split into those that
    need context beyond the small backbones' receptive field
    (:data:`~sedlib.data.synth.soundscape.LONG_CONTEXT_CLASSES`) and the others, as
    ``{"long context": [...], "other": [...]}`` without empty groups; {} without per-class
    values."""
    from sedlib.data.synth.soundscape import LONG_CONTEXT_CLASSES

    per = next((r["psds1_per_class"] for r in records_of(results) if r.get("psds1_per_class")), None)
    if per is None:
        return {}
    groups = {"long context": [c for c in per if c in LONG_CONTEXT_CLASSES],
              "other": [c for c in per if c not in LONG_CONTEXT_CLASSES]}
    return {k: v for k, v in groups.items() if v}


def claims_markdown(sentences: Sequence[str]) -> str:
    """Bullet list of verdict sentences, the verdict word in bold."""
    from sedlib.study.intervals import AGREES, DIFFERS, INCONCLUSIVE

    out = []
    for s in sentences:
        for word in (AGREES, DIFFERS, INCONCLUSIVE):
            s = s.replace(f": {word}", f": **{word}**", 1)
        out.append(f"- {s}")
    return "\n".join(out)


def tally(sentences: Sequence[str]) -> Mapping[str, int]:
    """How many sentences agree / differ / are inconclusive."""
    from sedlib.study.intervals import AGREES, DIFFERS, INCONCLUSIVE

    return {w: sum(f": {w}" in s for s in sentences) for w in (AGREES, DIFFERS, INCONCLUSIVE)}


def curve_verdicts(results: Iterable[Any], a: str, b: str, text: str, paper_sign: int,
                   steps: Sequence[int], *, metric: str = "psds1_macro") -> list[dict[str, Any]]:
    """The verdict of one claim (``a`` vs ``b``) at each step budget of a learning curve: one
    dict per budget with ``steps``, ``difference`` (Interval) and ``verdict`` (the word)."""
    from sedlib.study.intervals import verdict_word

    recs = records_of(results)
    out = []
    for s in steps:
        at = [r for r in recs if r.get("steps") == s]
        diff = compare_configurations(at, a, b, metric)
        sentence = verdict(text, diff, paper_sign, scale=1.0)
        word = verdict_word(diff, paper_sign)
        out.append({"steps": s, "difference": diff, "verdict": word, "sentence": sentence})
    return out


def budget_sentence(verdicts: Sequence[Mapping[str, Any]], budget: int) -> str:
    """Whether ``budget`` steps is trained out for this claim: the verdict at ``budget`` and at
    the next budget of the curve (doubling it), and the smallest budget from which the verdict
    no longer changes."""
    by = {v["steps"]: v for v in verdicts}
    if budget not in by:
        raise ValueError(f"budget {budget} is not on the curve {sorted(by)}")
    later = sorted(s for s in by if s > budget)
    steps = sorted(by)
    stable = next((s for i, s in enumerate(steps) if all(by[t]["verdict"] == by[s]["verdict"]
                                                          for t in steps[i:])), steps[-1])
    here = f"at {budget} steps the verdict is *{by[budget]['verdict']}*"
    if not later:
        return here + " (no longer budget on the curve: whether it holds is not known)."
    nxt = by[later[0]]
    same = nxt["verdict"] == by[budget]["verdict"]
    return (here + f"; at {later[0]} steps it is *{nxt['verdict']}* ("
            + ("unchanged: the budget is trained out for this verdict" if same else
               "it changes: this budget is **not** trained out for this claim") + "). "
            + f"The verdict is stable from {stable} steps on, along this curve.")


def single_model_row(name: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A seed-table-like row for one trained model (e.g. a teacher) from its eval metrics
    (fractions, as :func:`sedlib.study.training.evaluate_on` returns them): the interval is the
    eval-clip part only (one model, no seeds)."""
    from sedlib.study.intervals import fold_variance, mean_interval

    row: dict[str, Any] = {"name": name, "n_seeds": 1}
    for m in ("psds1_macro", "psds1"):
        folds = metrics.get(f"{m}_folds")
        iv = mean_interval([100 * metrics[m]], None if folds is None else
                           [fold_variance([100 * v for v in folds])])
        row.update({m: iv.mean, f"{m}_low": iv.low, f"{m}_high": iv.high,
                    f"{m} (95 % CI)": plus_minus(iv.mean, iv.low, iv.high)})
    return row

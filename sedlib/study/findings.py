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
            text = _pm(row[metric], row[f"{metric}_low"], row[f"{metric}_high"])
            part = {f"{metric}": row[metric], f"{metric}_low": row[f"{metric}_low"],
                    f"{metric}_high": row[f"{metric}_high"], f"{metric} (95 % CI)": text}
            if i == 0:
                rows.append({**{f: row[f] for f in by_}, **part, "n_seeds": row["n_seeds"],
                             "seeds": row["seeds"],
                             **{k: row[k] for k in KEEP if k in row and k not in by_}})
            else:
                rows[j].update(part)
    return pd.DataFrame(rows)


def _pm(mean: float, low: float, high: float) -> str:
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

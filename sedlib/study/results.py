"""The study's results log (one JSON line per trained model, fine-tuning run or scored
checkpoint) and its markdown summary table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from sedlib.config import PROJECT_ROOT
from sedlib.study.findings import plus_minus
from sedlib.study.results_log import CHECKPOINT_EVAL, OWN_CLASSES, settings_key


def read_results_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows appended by :func:`log_result_row` (or a stored
    ``results.jsonl``), one per key (first kept, with every notebook that used it)."""
    path = Path(path)
    rows: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row["key"] in rows:
            seen = rows[row["key"]]["notebooks"]
            if row.get("notebook") and row["notebook"] not in seen:
                seen.append(row["notebook"])
        else:  # a stored results.jsonl row already lists its notebooks
            seen = list(row.get("notebooks") or [])
            if row.get("notebook") and row["notebook"] not in seen:
                seen.append(row["notebook"])
            rows[row["key"]] = {**row, "notebooks": seen}
    return list(rows.values())


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _started(row: Mapping[str, Any]) -> str:
    what = f"`{project_relative(row['init'])}`" if row.get("init") else "scratch / preset"
    return what + (" (backbone frozen)" if row.get("frozen_backbone") else "")


def project_relative(path: str) -> str:
    """``path`` relative to the project root when inside it (a table made in a clone at
    /tmp/fresh reads the same as one made here), else as given."""
    try:
        return Path(path).relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return path


def summary_markdown(rows: Sequence[Mapping[str, Any]], *, title: str = "Results",
                     failed: Mapping[str, str] | None = None) -> str:
    """A markdown table of every model trained: seed, PSDS1, PSDS1 macro (in %), eval clips,
    params, MACs (per 10 s clip), throughput (10 s clips/s), KD weight, steps, what it started
    from, notebooks; then the eval sizes the runs used."""
    lines = [f"# {title}", "",
             "| model | seed | PSDS1 | PSDS1 macro | eval clips | params | MACs (M) "
             "| throughput (clips/s) | KD weight | steps | started from | train s | notebooks | key |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|"]
    for r in sorted(rows, key=lambda r: (r.get("notebooks") or [""], r["name"], r.get("seed") or 0)):
        macs = None if r.get("macs") is None else r["macs"] / 1e6  # None: not profiled (06, 07)
        lines.append(f"| {r['name']} | {_num(r.get('seed'), 'd')} | {_num(r['psds1'], '.2f')} "
                     f"| {_num(r['psds1_macro'], '.2f')} | {_num(r.get('eval_clips'), ',')} "
                     f"| {_num(r.get('params'), ',')} | {_num(macs, '.1f')} "
                     f"| {_num(r.get('throughput'), '.1f')} | {_num(r.get('kd_weight'), 'g')} "
                     f"| {r.get('steps') or '-'} | {_started(r)} | {_num(r.get('train_seconds'), '.0f')} "
                     f"| {', '.join(r.get('notebooks') or [])} | `{r['key']}` |")
    if not rows:
        lines.append("| (no model was trained) | | | | | | | | | | | | | |")
    sizes = sorted({(r.get("eval_data") or "?", r.get("eval_clips")) for r in rows}, key=str)
    lines += ["", "PSDS values in percent on each run's `eval_data`; MACs and throughput for one "
                  "10 s clip (model only, CPU float32 unless stated in the run); cached runs keep "
                  "their first measurement."]
    if sizes:
        lines += ["", "Eval sets: " + "; ".join(
            f"`{spec}` ({_num(n, ',')} clips)" for spec, n in sizes) + "."]
    lines += summaries_markdown(rows)
    if failed:
        lines += ["", "## Failed notebooks", ""] + [f"- `{k}`: {v}" for k, v in failed.items()]
    return "\n".join(lines) + "\n"


def configuration(row: Mapping[str, Any]) -> str:
    """A run's configuration without its seed, for the per-notebook summaries: model name,
    steps, KD weight, frozen backbone, a teacher-only set, a start from another run."""
    parts = [row["name"]] if row.get("kind") == CHECKPOINT_EVAL else [row["name"], f"{row.get('steps') or '-'} steps"]
    if row.get("kd_weight"):
        parts.append(f"KD {row['kd_weight']:g}")
    if row.get("frozen_backbone"):
        parts.append("frozen backbone")
    if row.get("weak_data"):
        parts.append(f"+ weak `{row['weak_data']}`")
    init = row.get("init") or ""
    if init and not init.endswith(".safetensors"):  # a cache key: "<model slug>-<digest>"
        parts.append(f"continued from a `{init.rsplit('-', 1)[0]}` run")
    return ", ".join(parts)


def _unique_configurations(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows with a ``configuration`` label; two runs of one label and one seed (configurations
    this label does not tell apart) get numbered labels instead of breaking the summary."""
    out, seen = [], {}
    for r in rows:
        label = configuration(r)
        n = 0
        while (label if n == 0 else f"{label} ({n + 1})", r.get("seed")) in seen:
            n += 1
        label = label if n == 0 else f"{label} ({n + 1})"
        seen[(label, r.get("seed"))] = True
        out.append({**r, "configuration": label})
    return out


def summaries_markdown(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One table per notebook: each configuration's PSDS1 macro and PSDS1 as mean ± 95 %
    interval over its seeds (eval-clip folds included; :mod:`sedlib.study.intervals`)."""
    from sedlib.study.intervals import summarise_seeds

    out: list[str] = []
    notebooks = sorted({nb for r in rows for nb in (r.get("notebooks") or [])})
    for nb in notebooks:
        mine = _unique_configurations([r for r in rows if nb in (r.get("notebooks") or [])])
        macro = summarise_seeds(mine, "psds1_macro", by="configuration")
        micro = {r["configuration"]: r for r in summarise_seeds(mine, "psds1", by="configuration")}
        out += ["", f"## {nb}: mean ± 95 % interval over seeds", "",
                "| configuration | seeds | PSDS1 macro | PSDS1 |", "|---|---:|---:|---:|"]
        for r in macro:
            m = micro[r["configuration"]]
            out.append(f"| {r['configuration']} | {r['n_seeds']} | {_pm(r, 'psds1_macro')} | {_pm(m, 'psds1')} |")
    return out


def stale_rows(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Stored result rows whose key is not the one the current code gives their experiment
    (config fields, defaults, cache version or key derivation changed): one line each. Rows
    without a stored experiment are stale too (written before experiments were stored)."""
    from sedlib.study.experiments import Experiment
    from sedlib.study.own_classes import run_key

    out = []
    for row in rows:
        if row.get("kind") in (OWN_CLASSES, CHECKPOINT_EVAL):
            try:
                key = (run_key(row["settings"]) if row["kind"] == OWN_CLASSES
                       else settings_key(row["key"].rsplit("-", 1)[0], row["settings"]))
            except (KeyError, TypeError, ValueError) as err:
                out.append(f"{row.get('key')}: the stored settings no longer load ({err})")
                continue
            if row["key"] != key:
                out.append(f"{row['key']}: the current code gives {key}")
            continue
        exp = row.get("experiment")
        if exp is None:
            out.append(f"{row.get('key')}: no stored experiment")
            continue
        try:
            key = Experiment.from_dict(exp).key_with(row.get("file_digests") or {})
        except (TypeError, ValueError) as err:
            out.append(f"{row.get('key')}: the stored experiment no longer loads ({err})")
            continue
        if not str(row["key"]).endswith(key):
            out.append(f"{row['key']}: the current code gives {key}")
    return out


def stored_results_markdown(notebook: str, profile: str = "classroom",
                            figures: str | os.PathLike | None = None) -> str:
    """The stored results of another profile's run for ``notebook`` (e.g. 02_sequence_models),
    to show beside a live run: the heading of ``figures/<profile>/results.md`` (profile, date)
    and this notebook's summary table (mean ± 95 % interval per configuration) from
    ``figures/<profile>/results.jsonl``; or one line saying none are stored and the command
    that makes them. ``figures``: the folder instead of ``<project>/figures/<profile>``."""
    folder = Path(figures) if figures is not None else PROJECT_ROOT / "figures" / profile
    rows = [r for r in read_results_log(folder / "results.jsonl") if notebook in (r.get("notebooks") or [])]
    command = f"`sedlib study --profile {profile} --figures {project_relative(str(folder))}`"
    if not rows:
        return f"No stored `{profile}` results for `{notebook}` yet ({command} makes them)."
    md = folder / "results.md"
    heading = md.read_text(encoding="utf-8").splitlines()[0].lstrip("# ") if md.is_file() else profile
    table = summaries_markdown([{**r, "notebooks": [notebook]} for r in rows])
    table = [line for line in table if not line.startswith("## ")]
    return "\n".join([f"**Stored {heading}** (`{project_relative(str(folder))}`; made by {command}), "
                      f"{len(rows)} runs of this notebook:"] + table) + "\n"


def _pm(row: Mapping[str, Any], metric: str) -> str:
    """``mean ± half-width``, clipped to ``mean [low, high]`` where it would reach past 0 or 100
    (as the notebooks print it, :func:`sedlib.study.findings.plus_minus`); ``mean (one run)`` where one
    run without eval folds has no interval."""
    low, high = row[f"{metric}_low"], row[f"{metric}_high"]
    if row["n_seeds"] == 1 and not high > low:
        return f"{row[metric]:.2f} (one run)"
    return plus_minus(row[metric], low, high)

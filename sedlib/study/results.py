"""The study's results log (one JSON line per trained model) and its markdown summary table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence


def read_results_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows appended by :func:`sedlib.study.cache.run_experiment`, one per key (first kept,
    with every notebook that used it)."""
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
        else:
            rows[row["key"]] = {**row, "notebooks": [row["notebook"]] if row.get("notebook") else []}
    return list(rows.values())


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _started(row: Mapping[str, Any]) -> str:
    what = f"`{row['init']}`" if row.get("init") else "scratch / preset"
    return what + (" (backbone frozen)" if row.get("frozen_backbone") else "")


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
        lines.append(f"| {r['name']} | {_num(r.get('seed'), 'd')} | {_num(r['psds1'], '.2f')} "
                     f"| {_num(r['psds1_macro'], '.2f')} | {_num(r.get('eval_clips'), ',')} "
                     f"| {r['params']:,} | {_num(r['macs'] / 1e6, '.1f')} "
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
    if failed:
        lines += ["", "## Failed notebooks", ""] + [f"- `{k}`: {v}" for k, v in failed.items()]
    return "\n".join(lines) + "\n"

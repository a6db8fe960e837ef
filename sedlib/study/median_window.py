"""The median filter's window, swept on validation clips (the paper's post-processing: a median
filter over the frame scores before thresholding, its window chosen on validation data; 9 frames
of 40 ms for fmn10, odd windows doing better than even ones).

:func:`median_window_sweep` scores trained study runs on **validation** clips (never the eval
clips: a window is a design choice) at every window, each model's frame scores computed once
(:func:`sedlib.train.class_report.class_report`). :func:`best_window` applies the rule the study
declared before its comparisons: the window with the highest PSDS1 macro, averaged over the
models and seeds swept. :func:`window_records` turns the sweep into per-seed records that
:mod:`sedlib.study.claims` compares paired (odd vs even windows, the filter vs none);
:func:`sweep_figure` draws it. The sweep is stored as ``median_window.jsonl`` beside the study's
results so that ``claims.md`` can hold its rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

WINDOWS = tuple(range(1, 16))
SWEEP_FILE = "median_window.jsonl"


def median_window_sweep(results: Iterable[Any], dataset: Any, audio: Any, *,
                        windows: Sequence[int] = WINDOWS, folds: int = 5) -> list[dict[str, Any]]:
    """One row per (run, window): ``name``, ``seed``, ``key``, ``window``, ``psds1_macro``,
    ``psds1`` and their ``*_folds`` (percent) on ``dataset`` (validation clips), for each
    :class:`~sedlib.study.experiments.ExperimentResult` in ``results``."""
    from sedlib.train.class_report import class_report

    rows = []
    for r in results:
        report = class_report(r.load_model(), dataset, audio_config=audio, median_windows=windows, folds=folds)
        for window, m in report["psds"].items():
            row = {"name": r.name, "seed": r.experiment.seed, "key": r.key, "window": int(window)}
            for k in ("psds1_macro", "psds1"):
                row[k] = 100 * m[k]
                if m.get(f"{k}_folds") is not None:
                    row[f"{k}_folds"] = [100 * v for v in m[f"{k}_folds"]]
            rows.append(row)
    return rows


def best_window(rows: Sequence[Mapping[str, Any]]) -> int:
    """The window with the highest mean PSDS1 macro over every model and seed swept (ties: the
    smaller window)."""
    by: dict[int, list[float]] = {}
    for r in rows:
        by.setdefault(int(r["window"]), []).append(float(r["psds1_macro"]))
    if not by:
        raise ValueError("an empty sweep has no best window")
    return max(sorted(by), key=lambda w: sum(by[w]) / len(by[w]))


def window_records(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per model and seed, records named ``"<model>, odd windows"`` / ``", even windows"`` (the
    mean over the odd windows 3..13 swept with both neighbours vs the mean of each one's two even
    neighbours, fold by fold: a linear trend over windows cancels) and
    ``"<model>, window 9"`` / ``", window 1"`` (the paper's filter vs none): what the claims
    table compares, paired over seeds and validation folds."""
    out = []
    groups: dict[tuple[str, Any], dict[int, Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["name"], r["seed"]), {})[int(r["window"])] = r
    for (name, seed), at in groups.items():
        odd = [w for w in range(3, 16, 2) if {w - 1, w, w + 1} <= set(at)]
        # each odd window against the mean of its two even neighbours: a linear trend over windows cancels
        sets = {"odd windows": {w: 1.0 for w in odd}, "even windows": {},
                "window 9": {9: 1.0} if {1, 9} <= set(at) else {}, "window 1": {1: 1.0} if {1, 9} <= set(at) else {}}
        for w in odd:
            for e in (w - 1, w + 1):
                sets["even windows"][e] = sets["even windows"].get(e, 0.0) + 0.5
        for label, ws in sets.items():
            if not ws:
                continue
            total = sum(ws.values())
            rec = {"name": f"{name}, {label}", "model": name, "seed": seed, "sweep": True,
                   "psds1_macro": sum(c * at[w]["psds1_macro"] for w, c in ws.items()) / total}
            if all(at[w].get("psds1_macro_folds") for w in ws):
                k = len(at[next(iter(ws))]["psds1_macro_folds"])
                rec["psds1_macro_folds"] = [sum(c * at[w]["psds1_macro_folds"][f] for w, c in ws.items()) / total
                                            for f in range(k)]
            out.append(rec)
    return out


def write_sweep(rows: Sequence[Mapping[str, Any]], folder: str | os.PathLike) -> Path:
    """``<folder>/median_window.jsonl`` (atomic): the sweep's rows, for ``claims.md``."""
    from sedlib.atomic import atomic_write

    text = "".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in rows)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return atomic_write(Path(folder) / SWEEP_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_sweep(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The stored sweep of a figures folder ([] when there is none)."""
    path = Path(folder) / SWEEP_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sweep_figure(rows: Sequence[Mapping[str, Any]], *, chosen: int | None = None, title: str = ""):
    """PSDS1 macro against the window (frames of 40 ms), one line per model (mean over seeds,
    95 % interval), odd windows filled, even ones hollow; ``chosen`` marked."""
    import plotly.graph_objects as go

    from sedlib.study.intervals import summarise_seeds
    from sedlib.study.plots import _color, family

    table = summarise_seeds(rows, "psds1_macro", by=("name", "window"))
    fig = go.Figure()
    for name in dict.fromkeys(r["name"] for r in table):
        pts = sorted((r for r in table if r["name"] == name), key=lambda r: r["window"])
        fig.add_trace(go.Scatter(
            x=[r["window"] for r in pts], y=[r["psds1_macro"] for r in pts], name=name, mode="lines+markers",
            line={"color": _color(family(name))},
            marker={"size": 9, "symbol": ["circle" if r["window"] % 2 else "circle-open" for r in pts]},
            error_y={"type": "data", "symmetric": False, "thickness": 1,
                     "array": [r["psds1_macro_high"] - r["psds1_macro"] for r in pts],
                     "arrayminus": [r["psds1_macro"] - r["psds1_macro_low"] for r in pts]},
            hovertemplate=f"{name}<br>window %{{x}}<br>PSDS1 macro %{{y:.2f}}<extra></extra>"))
    if chosen is not None:
        fig.add_vline(x=chosen, line={"dash": "dot", "color": "black"}, annotation_text=f"chosen: {chosen}")
    fig.add_vline(x=9, line={"dash": "dash", "color": "grey"}, annotation_text="paper: 9",
                  annotation_position="bottom right")
    fig.update_xaxes(title="median-filter window (frames of 40 ms; filled: odd, hollow: even)", dtick=1)
    fig.update_yaxes(title="PSDS1 macro on validation clips (%)")
    fig.update_layout(title=title, template="plotly_white", width=720, height=440)
    return fig

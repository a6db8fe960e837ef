"""Performance-complexity plots (plotly), in the shape of the paper's Figures 1 and 2.

Input records are mappings (or a pandas DataFrame) holding a model ``name``, a performance
column (default ``psds1``) and complexity columns as :class:`sedlib.complexity.profile.ModelProfile` names
them (``params``, ``macs``, ``throughput``) -- e.g. ``{**profile.to_dict(), "psds1": 43.86}``.

- Figure 1: fmn10 with each sequence model at dims 128..1024, plus fmn10 alone.
- Figure 2: each backbone width alone (fmn04..fmn30) and with TF / HYBRID / BiGRU at the
  backbone's scaled dim (104, 160, 256, 512, 768).

One line per family (sequence-model type; "CNN" for the backbone alone), points ordered by x
(model names in the legend and hover text, not on the points), log x axis, the Pareto front of
each panel dashed where intervals separate its points (:func:`separated_front`).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sedlib.errors import SedlibError

__all__ = [
    "ImageExportError", "METRICS", "pareto_front", "family", "tradeoff_figure", "paper_figure",
    "save_figure",
]

# column -> (axis title, True when lower is better)
METRICS: dict[str, tuple[str, bool]] = {
    "params": ("parameters", True),
    "macs": ("MACs per 10 s clip", True),
    "throughput": ("throughput (10 s clips / s)", False),
    "peak_memory": ("peak memory (bytes)", True),
}
#: y-axis titles of the PSDS columns
Y_TITLES = {"psds1_macro": "PSDS1 (macro, %)", "psds1": "PSDS1 (alpha_st 1, %)"}
FAMILY_ORDER = ("CNN", "TF", "HYBRID", "BiGRU", "ATT", "TCN", "MAMBA")
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")


class ImageExportError(SedlibError, RuntimeError):
    """A static image (PNG) cannot be written; the message names the missing piece."""


def pareto_front(
    points: Sequence[tuple[float, float]], maximize_y: bool = True, minimize_x: bool = True
) -> list[int]:
    """Indices of the non-dominated points, ordered by increasing x.

    A point is dominated when another one is at least as good in both coordinates and strictly
    better in one ("good": small x if ``minimize_x``, large y if ``maximize_y``). Exact duplicates
    of a front point are all kept; points with a missing (None/NaN) coordinate are never on it.
    """
    sx = 1.0 if minimize_x else -1.0
    sy = -1.0 if maximize_y else 1.0  # in (sx * x, sy * y) smaller is better in both
    valid = [
        (sx * float(x), sy * float(y), i)
        for i, (x, y) in enumerate(points)
        if x is not None and y is not None and not (math.isnan(x) or math.isnan(y))
    ]
    front: list[int] = []
    best: tuple[float, float] | None = None  # (x, y) of the last front point
    for x, y, i in sorted(valid):
        if best is None or y < best[1] or (x, y) == best:
            front.append(i)
            best = (x, y)
    return sorted(front, key=lambda i: float(points[i][0]))


def separated_front(rows: Sequence[dict], front: Sequence[int], y: str, *, cheap_first: bool = True) -> list[int]:
    """The Pareto ``front`` (indices into ``rows``, by increasing x) kept only where intervals
    separate: walking from the cheapest point (the first; the last with ``cheap_first=False``,
    for a higher-is-better x such as throughput), a point stays when its interval (``<y>_low``)
    lies above the last kept point's (``<y>_high``); without intervals the whole front. A front
    drawn through points whose intervals overlap would rank models the data cannot tell apart.
    Returned by increasing x."""
    if not all(rows[i].get(f"{y}_low") is not None and rows[i].get(f"{y}_high") is not None for i in front):
        return list(front)
    kept: list[int] = []
    for i in (front if cheap_first else reversed(front)):
        if not kept or rows[i][f"{y}_low"] > rows[kept[-1]][f"{y}_high"]:
            kept.append(i)
    return kept if cheap_first else kept[::-1]


def family(name: str) -> str:
    """The line a model belongs to: its sequence-model type, or "CNN" for the backbone alone."""
    from sedlib.models.names import parse_name

    seq = parse_name(name).seq_model
    return "CNN" if seq is None else seq


def _records(data: Any) -> list[dict[str, Any]]:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas DataFrame
        return data.to_dict("records")
    return [dict(r) for r in data]


def _error_bars(points: list[dict], y: str) -> dict | None:
    """Asymmetric error bars from ``<y>_low`` / ``<y>_high`` (seed intervals,
    :func:`sedlib.study.intervals.summarise_seeds`), when every point has them."""
    if not points or not all(p.get(f"{y}_low") is not None and p.get(f"{y}_high") is not None
                             for p in points):
        return None
    return {"type": "data", "symmetric": False, "thickness": 1.2, "width": 4,
            "array": [p[f"{y}_high"] - p[y] for p in points],
            "arrayminus": [p[y] - p[f"{y}_low"] for p in points]}


def _color(fam: str) -> str:
    index = FAMILY_ORDER.index(fam) if fam in FAMILY_ORDER else sum(map(ord, fam))
    return _COLORS[index % len(_COLORS)]


def _add_panel(
    fig: go.Figure, records: list[dict], x: str, y: str, group: Callable[[str], str],
    label: str, pareto: bool, row: int | None, col: int | None, show_legend: bool,
) -> None:
    where = {} if row is None else {"row": row, "col": col}
    rows = [r for r in records if r.get(x) is not None and r.get(y) is not None]
    families: dict[str, list[dict]] = {}
    for r in rows:
        families.setdefault(group(r[label]), []).append(r)
    order = sorted(families, key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else 99, f))
    for fam in order:
        pts = sorted(families[fam], key=lambda r: r[x])
        fig.add_trace(go.Scatter(
            x=[r[x] for r in pts], y=[r[y] for r in pts], text=[r[label] for r in pts],
            error_y=_error_bars(pts, y),
            mode="lines+markers",  # names in the hover text and legend, not on the points
            name=fam, legendgroup=fam, showlegend=show_legend,
            line={"color": _color(fam)}, marker={"size": 8},
            hovertemplate=f"%{{text}}<br>{x}=%{{x:.4g}}<br>{y}=%{{y:.2f}}<extra></extra>",
        ), **where)
    if pareto and rows:
        lower_better = METRICS.get(x, (x, True))[1]
        idx = pareto_front([(r[x], r[y]) for r in rows], maximize_y=True, minimize_x=lower_better)
        idx = separated_front(rows, idx, y, cheap_first=lower_better)
        if len(idx) < 2:  # no front point is told apart from the cheapest one: draw none
            return
        fig.add_trace(go.Scatter(
            x=[rows[i][x] for i in idx], y=[rows[i][y] for i in idx],
            text=[rows[i][label] for i in idx], mode="lines+markers", name="Pareto front",
            legendgroup="pareto", showlegend=show_legend,
            line={"color": "black", "dash": "dash", "width": 1},
            marker={"symbol": "circle-open", "size": 14, "color": "black"},
            hovertemplate="Pareto: %{text}<extra></extra>",
        ), **where)


def tradeoff_figure(
    records: Any, x: str = "params", y: str = "psds1", *, group: Callable[[str], str] = family,
    label: str = "name", log_x: bool = True, pareto: bool = True, title: str | None = None,
) -> go.Figure:
    """Performance ``y`` against one complexity column ``x``: one line per ``group(name)``."""
    fig = go.Figure()
    _add_panel(fig, _records(records), x, y, group, label, pareto, None, None, True)
    fig.update_xaxes(type="log" if log_x else "linear", title=METRICS.get(x, (x,))[0])
    fig.update_yaxes(title=y.upper() if y.islower() else y)
    fig.update_layout(title=title, template="plotly_white", legend_title="sequence model")
    return fig


def learning_curve_figure(records: Any, y: str = "psds1_macro", *, x: str = "steps",
                          title: str = "Learning curve") -> go.Figure:
    """``y`` against training ``steps`` (log scale), one line per model ``name``; error bars
    from ``<y>_low`` / ``<y>_high`` (per-step rows of
    :func:`sedlib.study.intervals.summarise_seeds`, grouped by ``(name, steps)``)."""
    rows = [r for r in _records(records) if r.get(x) is not None and r.get(y) is not None]
    fig = go.Figure()
    for name in dict.fromkeys(r["name"] for r in rows):
        pts = sorted((r for r in rows if r["name"] == name), key=lambda r: r[x])
        fig.add_trace(go.Scatter(
            x=[r[x] for r in pts], y=[r[y] for r in pts], name=name, mode="lines+markers",
            error_y=_error_bars(pts, y), line={"color": _color(family(name))},
            hovertemplate=f"{name}<br>{x}=%{{x}}<br>{y}=%{{y:.2f}}<extra></extra>"))
    steps = sorted({r[x] for r in rows})
    fig.update_xaxes(type="log", title="optimiser steps", tickvals=steps, ticktext=[f"{v:,}" for v in steps])
    fig.update_yaxes(title=Y_TITLES.get(y, y))
    fig.update_layout(title=title, template="plotly_white", width=640, height=440)
    return fig


def _in_figure(name: str, which: int) -> bool:
    from sedlib.models.names import DEFAULT_DIMS, parse_name

    cfg = parse_name(name)
    if which == 1:
        return cfg.backbone == "fmn10"
    if which == 2:
        return cfg.seq_model is None or (
            cfg.seq_model in ("TF", "HYBRID", "BiGRU") and cfg.seq_dim == DEFAULT_DIMS[cfg.backbone]
        )
    raise ValueError(f"which must be 1 or 2, got {which!r}")


def paper_figure(
    records: Any, which: int, *, metrics: Iterable[str] = ("params", "macs", "throughput"),
    y: str = "psds1", label: str = "name", pareto: bool = True,
) -> go.Figure:
    """Figure 1 (``which=1``) or 2 (``which=2``): one panel per complexity metric, shared y axis,
    records outside the figure's model set dropped (see the module docstring)."""
    rows = [r for r in _records(records) if _in_figure(r[label], which)]
    metrics = [m for m in metrics if any(r.get(m) is not None for r in rows)]
    if not metrics:
        raise ValueError("no record has any of the requested complexity columns")
    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, horizontal_spacing=0.04)
    for col, metric in enumerate(metrics, start=1):
        _add_panel(fig, rows, metric, y, family, label, pareto, 1, col, show_legend=col == 1)
        fig.update_xaxes(type="log", title=METRICS.get(metric, (metric,))[0], row=1, col=col)
    fig.update_yaxes(title=y.upper() if y.islower() else y, row=1, col=1)
    subject = ("fmn10 with sequence models, dims 128-1024" if which == 1
               else "backbone width scaled, sequence models at scaled dims")
    fig.update_layout(title=f"Figure {which}: performance vs complexity ({subject})",
                      template="plotly_white", width=450 * len(metrics), height=480,
                      legend_title="sequence model")
    return fig


PLOTLYJS = "plotly.min.js"


def write_plotlyjs(folder: str | Path) -> Path:
    """``<folder>/plotly.min.js``: the installed plotly's bundle, written atomically (temp file,
    then rename) unless the file there already holds exactly it; what every HTML figure in the
    folder loads."""
    from plotly.offline import get_plotlyjs

    path = Path(folder) / PLOTLYJS
    data = get_plotlyjs().encode("utf-8")
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return path
    tmp = path.with_name(f".{PLOTLYJS}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def save_figure(fig: go.Figure, path_stem: str | Path, *, png: bool = True,
                scale: float = 2.0, embed_plotlyjs: bool = False) -> dict[str, Path]:
    """Write ``<stem>.html`` and, with ``png``, ``<stem>.png``.

    The HTML works without a network: it loads ``plotly.min.js`` from its own folder, written
    there once (:func:`write_plotlyjs`; 4.8 MB per folder, a few kB per figure).
    ``embed_plotlyjs=True`` puts the library into the file instead (one self-contained file).

    The HTML is always written first. PNG export needs kaleido >= 1 and a Chrome/Chromium on the
    machine; when either is missing this raises :class:`ImageExportError` saying which.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = {"html": stem.with_suffix(".html")}
    if not embed_plotlyjs:
        write_plotlyjs(stem.parent)
    fig.write_html(out["html"], include_plotlyjs=True if embed_plotlyjs else "directory")
    if not png:
        return out
    if importlib.util.find_spec("kaleido") is None:
        raise ImageExportError(
            f"PNG export needs the 'kaleido' package (>= 1.0; `pip install kaleido==1.5.0`) and "
            f"a Chrome/Chromium (Debian: `apt-get install chromium`); wrote {out['html']} only"
        )
    out["png"] = stem.with_suffix(".png")
    try:
        fig.write_image(out["png"], scale=scale)
    except Exception as err:  # kaleido/choreographer raise several types for a missing browser
        raise ImageExportError(
            f"PNG export failed ({type(err).__name__}: {err}). kaleido 1.x drives a local "
            f"Chrome/Chromium: install one (Debian: `apt-get install chromium`); "
            f"wrote {out['html']} only"
        ) from err
    return out

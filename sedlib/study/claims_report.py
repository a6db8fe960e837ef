"""The study's claims as files: ``claims.md`` (the table of :mod:`sedlib.study.claims`) and the
forest plot ``claims_forest.html`` / ``.png``: one row per claim of the paper, our paired
difference with its 95 % interval (the numbers the verdicts come from), the paper's effect
beside it and the smallest effect the design could detect, shaded around zero.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import plotly.graph_objects as go

from sedlib.atomic import atomic_write
from sedlib.study.claims import assess_all
from sedlib.study.intervals import AGREES, DIFFERS

#: Claims of the paper that :func:`catalogue` does not test, and why (shown under the table).
NOT_TESTED = {
    "Fig. 1: the best sequence model depends on the complexity metric": "a ranking of families, "
    "not a paired difference: read Figure 1 (its Pareto front is drawn only where intervals separate)",
    "Fig. 2: BiGRU is unstable across widths (fmn06+BiGRU:160 40.37 < fmn06 40.75)": "a pattern over "
    "widths; its per-width rows are the Fig. 2 rows above where the grid has BiGRU",
    "Sec. III-B: the median filter (9 frames for fmn10)": "no window sweep stored beside these results "
    "(notebook 02 writes median_window.jsonl)",
}


def _signed(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:+.{digits}f}"


def claims_markdown_table(rows: Sequence[Mapping[str, Any]], *, title: str | None = None,
                          not_tested: bool = True) -> str:
    """The table of :func:`assess` rows: source, claim, the paper's effect and its basis, ours
    (paired, 95 %), seeds, the smallest detectable effect and the verdict; then the claims not
    tested, with the reason."""
    head = [f"# {title}\n"] if title else []
    lines = head + [
        "| source | claim | paper | ours (paired, 95 %) | seeds | smallest detectable (80 % power) | verdict |",
        "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        c, iv = r["claim"], r["ours"]
        basis = f" ({c.paper_basis})" if c.paper_basis else ""
        word = f"**{r['verdict']}**" + (f"; {r['reach']}" if r["reach"] else "")
        lines.append(f"| {c.source} | {c.text}{' (' + ', '.join(c.classes) + ')' if c.classes else ''} | "
                     f"{_signed(c.paper)}{basis} | {iv.mean:+.2f} ± {iv.half_width:.2f} | {iv.n} | "
                     f"{_signed(r['mde']).lstrip('+')} | {word} |")
    if not_tested:
        tested = {r["claim"].source for r in rows}
        lines += ["", "Not tested here:", ""] + [f"- {k}: {v}." for k, v in NOT_TESTED.items()
                                                  if not k.startswith("Sec. III-B") or "Sec. III-B" not in tested]
    return "\n".join(lines) + "\n"


def claims_of(records: Iterable[Mapping[str, Any]], sources: Sequence[str],
              sweep: Sequence[Mapping[str, Any]] = ()) -> str:
    """A notebook's rows of the claims table: the claims from ``sources`` (e.g. ``["Table I"]``)
    its ``records`` (and median-window ``sweep``) test, as markdown (a sentence when none)."""
    rows = [r for r in assess_all(records, sweep) if r["claim"].source in sources]
    if not rows:
        return f"No claim of {' / '.join(sources)} can be tested with these runs.\n"
    return claims_markdown_table(rows, not_tested=False)


#: verdict word -> marker colour
VERDICT_COLORS = {AGREES: "#2ca02c", DIFFERS: "#d62728"}
INCONCLUSIVE_COLOR = "#7f7f7f"


def _label(row: Mapping[str, Any], width: int = 70) -> str:
    c = row["claim"]
    text = f"{c.source}: {c.text.replace('`', '')}"
    if c.classes:
        text += " (long-context classes)"
    return text if len(text) <= width else text[: width - 1] + "…"


def forest_figure(rows: Sequence[Mapping[str, Any]], *, title: str = "The paper's claims: "
                  "paired differences (PSDS1 macro points, 95 % intervals)") -> go.Figure:
    """Rows of :func:`sedlib.study.claims.assess`, top to bottom in their order: our difference
    ``a - b`` as a dot with its interval (green: agrees, red: differs, grey: inconclusive), the
    paper's effect as a hollow diamond where SPEC.md has one, and a grey band of
    +-(smallest detectable effect) per row: an effect inside the band was out of reach."""
    labels = [_label(r) for r in rows]
    fig = go.Figure()
    for i, r in enumerate(rows):
        mde = r["mde"]
        if not math.isnan(mde):
            fig.add_shape(type="rect", x0=-mde, x1=mde, y0=i - 0.35, y1=i + 0.35, line={"width": 0},
                          fillcolor="rgba(127,127,127,0.15)", layer="below")
    ours = [r["ours"] for r in rows]
    colors = [VERDICT_COLORS.get(r["verdict"], INCONCLUSIVE_COLOR) for r in rows]
    fig.add_trace(go.Scatter(
        x=[iv.mean for iv in ours], y=list(range(len(rows))), mode="markers", name="ours (paired, 95 %)",
        marker={"size": 9, "color": colors},
        error_x={"type": "data", "symmetric": True, "array": [iv.half_width for iv in ours], "thickness": 1.5},
        text=[f"{lab}<br>{r['verdict']}{'; ' + r['reach'] if r['reach'] else ''}<br>smallest detectable "
              f"{r['mde']:.2f}" for lab, r in zip(labels, rows)],
        hovertemplate="%{text}<br>ours %{x:+.2f}<extra></extra>"))
    paper = [(i, r["claim"].paper) for i, r in enumerate(rows) if r["claim"].paper is not None]
    if paper:
        fig.add_trace(go.Scatter(
            x=[p for _, p in paper], y=[i for i, _ in paper], mode="markers", name="paper",
            marker={"symbol": "diamond-open", "size": 11, "color": "black", "line": {"width": 1.5}},
            hovertemplate="paper %{x:+.2f}<extra></extra>"))
    fig.add_vline(x=0, line={"color": "black", "width": 1})
    fig.update_yaxes(tickvals=list(range(len(rows))), ticktext=labels, autorange="reversed")
    fig.update_xaxes(title="difference a - b, PSDS1 macro points (grey band: +- smallest detectable effect)",
                     zeroline=False)
    fig.update_layout(title=title, template="plotly_white", height=160 + 34 * len(rows), width=1100,
                      margin={"l": 460}, legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0})
    return fig


CLAIMS_MD, FOREST = "claims.md", "claims_forest"


def write_claims(records: Iterable[Mapping[str, Any]], folder: str | os.PathLike, *, title: str,
                 png: bool = True) -> dict[str, Path]:
    """``<folder>/claims.md`` (atomic) and the forest plot (HTML; PNG when it can be made) of
    every claim the records (and ``<folder>/median_window.jsonl``, a stored window sweep) test;
    nothing (and {}) when they test none. A PNG that cannot be
    made leaves the HTML and says why in ``claims.md``'s last line."""
    from sedlib.study.median_window import read_sweep
    from sedlib.study.plots import ImageExportError, save_figure

    rows = assess_all(records, read_sweep(folder))
    if not rows:
        return {}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        out = save_figure(forest_figure(rows), folder / FOREST, png=png)
        note = ""
    except ImageExportError as err:
        out, note = {"html": folder / f"{FOREST}.html"}, f"\n(Forest plot: HTML only; {err})\n"
    text = claims_markdown_table(rows, title=title) + (
        f"\nThe forest plot of these rows: `{FOREST}.html`" + (" / `.png`" if "png" in out else "") + ".\n" + note)
    out["md"] = atomic_write(folder / CLAIMS_MD, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return out

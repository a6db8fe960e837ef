"""Helpers the notebooks call: paths against the project root, creating the run and figure
folders, tables and figures of results, saving outputs (HTML + PNG + markdown).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from sedlib.config import project_path
from sedlib.study.config import RUNNER_PARAMETERS, StudyConfig
from sedlib.study.experiments import ExperimentResult


def prepare(study: StudyConfig) -> StudyConfig:
    """Make a notebook's folders and ``backbone_init`` absolute against the project root
    (:func:`sedlib.config.project_path`; a missing ``figures_dir`` becomes
    ``<run_dir>/figures``) and create the run and figure folders. Data specs are resolved the
    same way when opened (:func:`sedlib.study.training.open_data`)."""
    paths = {name: str(project_path(getattr(study, name))) for name in RUNNER_PARAMETERS
             if getattr(study, name) is not None}
    if study.figures_dir is None:
        paths["figures_dir"] = str(Path(paths["run_dir"]) / "figures")
    if study.backbone_init is not None:
        paths["backbone_init"] = str(project_path(study.backbone_init))
    study = replace(study, **paths)
    Path(study.run_dir).mkdir(parents=True, exist_ok=True)
    Path(study.figures_dir).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return study


def results_frame(results: Iterable[ExperimentResult]):
    """A pandas DataFrame of result records (name, psds1, psds1_macro, params, macs, ...)."""
    import pandas as pd

    return pd.DataFrame([r.record for r in results])


def comparison_figure(records: Any, *, metrics: Sequence[str] = ("params", "macs", "throughput"),
                      y: str = "psds1_macro", title: str = "", group=None):
    """Figure-1/2-style panels (one per complexity metric, shared y, one line per sequence-model
    family, Pareto front dashed) for any set of model names. ``y`` defaults to the macro PSDS1,
    the number the paper reports."""
    from plotly.subplots import make_subplots

    from sedlib.study.plots import METRICS, Y_TITLES, _add_panel, _records, family

    rows = _records(records)
    metrics = [m for m in metrics if any(r.get(m) is not None for r in rows)]
    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, horizontal_spacing=0.04)
    for col, metric in enumerate(metrics, start=1):
        _add_panel(fig, rows, metric, y, group or family, "name", True, 1, col, col == 1)
        fig.update_xaxes(type="log", title=METRICS.get(metric, (metric,))[0], row=1, col=col)
    fig.update_yaxes(title=Y_TITLES.get(y, y), row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", width=430 * len(metrics), height=460,
                      legend_title="sequence model")
    return fig


def save_outputs(study: StudyConfig, name: str, *, figure=None, table=None) -> dict[str, Path]:
    """Write ``figure`` to ``<figures_dir>/<name>.html`` (+ ``.png`` if ``study.png``) and
    ``table`` (DataFrame) to ``<run_dir>/<name>.csv`` and ``.md``, and the ``.md`` also to
    ``<figures_dir>`` (the tables of the study beside its figures)."""
    from sedlib.study.plots import save_figure
    from sedlib.train import runs

    out: dict[str, Path] = {}
    if figure is not None:
        out.update(save_figure(figure, Path(study.figures_dir) / name, png=study.png))
    if table is not None:
        base = Path(study.run_dir) / name
        out["csv"] = runs.atomic_write(base.with_suffix(".csv"), lambda t: table.to_csv(t, index=False))
        text = markdown_table(table)
        out["md"] = runs.atomic_write(base.with_suffix(".md"), lambda t: t.write_text(text))
        out["figures_md"] = runs.atomic_write(Path(study.figures_dir) / f"{name}.md",
                                              lambda t: t.write_text(text))
    return out


def markdown_table(table) -> str:
    """A DataFrame as a GitHub markdown table (floats with 4 significant digits)."""
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def figure_bundle(fig, png: str | os.PathLike | bytes | None = None) -> dict[str, Any]:
    """The output bundle of a plotly figure for a notebook that is also read as a static file:
    plotly's own outputs (interactive in JupyterLab) plus ``image/png`` (what GitHub, nbviewer
    or an untrusted notebook show). ``png``: a PNG file or its bytes (:func:`save_outputs` has
    usually written one); None renders it (kaleido + Chromium), or leaves it out with a warning
    when that is not possible."""
    import base64

    bundle = dict(fig._repr_mimebundle_(include=None, exclude=None) or {})
    if "application/vnd.plotly.v1+json" not in bundle:
        bundle["application/vnd.plotly.v1+json"] = fig.to_plotly_json()
    if png is None:
        try:
            png = fig.to_image(format="png")
        except Exception as err:  # kaleido/choreographer raise several types for a missing browser
            logging.getLogger(__name__).warning("no static PNG beside the figure (%s: %s)",
                                                type(err).__name__, err)
    elif not isinstance(png, bytes):
        png = Path(png).read_bytes()
    if png is not None:
        bundle["image/png"] = base64.b64encode(png).decode("ascii")
    bundle.setdefault("text/plain", f"<plotly figure: {fig.layout.title.text or 'untitled'}>")
    return bundle


def show_figure(fig, saved: Mapping[str, Path] | None = None) -> None:
    """Display ``fig`` with a static PNG beside it (:func:`figure_bundle`); ``saved`` is what
    :func:`save_outputs` returned for it (its PNG is reused)."""
    from IPython.display import display

    display(figure_bundle(fig, (saved or {}).get("png")), raw=True)


def busiest_clip(dataset, first: int = 32) -> int:
    """Index of the clip with the most labelled events among the first ``first`` of ``dataset``
    (items with ``targets`` ``(K, T)``; an event = a run of active frames; ties: the lower
    index): the clip a figure of events should show."""
    import numpy as np

    def events(i: int) -> int:
        t = np.asarray(dataset[i]["targets"]) > 0.5  # (K, T)
        return int((t[:, 1:] & ~t[:, :-1]).sum() + t[:, 0].sum())

    return max(range(min(first, len(dataset))), key=lambda i: (events(i), -i))

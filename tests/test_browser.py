"""The notebooks in a real browser: JupyterLab (this venv's, headless, on a free loopback port)
opened in headless Chromium, a notebook's Run All with the smoke profile's parameters, and what a
student then sees: no error output, every plotly figure drawn with data (not blank), and in
06_listen a widget that redraws when a slider moves (issue 29, item 7).

papermill and nbclient (tests/test_notebooks.py) execute the notebooks but render nothing: this is
the test of the JavaScript side (JupyterLab's plotly and ipywidgets/anywidget renderers, the
"Python (sedlib)" kernel started by JupyterLab itself, in the notebook's folder).

Screenshots of 00 and 06 go to the test's tmp folder, or to ``$SEDLIB_SCREENSHOTS`` when set
(the README's: ``SEDLIB_SCREENSHOTS=figures/screenshots``). Skipped, saying why, where Chromium,
JupyterLab or websocket-client is missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import nbformat
import pytest

from browser_lab import (BrowserTestError, Chromium, LabPage, LabServer, chromium_executable, is_blank,
                         prepare_notebook, wait_for)

MISSING = [name for name in ("jupyterlab", "websocket", "papermill")
           if importlib.util.find_spec(name) is None]
pytestmark = [
    pytest.mark.skipif(chromium_executable() is None,
                       reason="no chromium on PATH (scripts/install.sh installs Debian's)"),
    pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)} "
                                             "(websocket = websocket-client, a jupyter_server dependency)"),
]

#: Seconds for Run All of one smoke notebook in the browser (00: ~45 s alone, ~80 s under `make test`).
RUN_TIMEOUT = 600


def screenshots_dir(tmp: Path) -> Path:
    return Path(os.environ.get("SEDLIB_SCREENSHOTS") or tmp / "screenshots")


def run_notebook_in_lab(browser: Chromium, lab: LabServer, stem: str, shots: Path, *,
                        timeout: float = RUN_TIMEOUT) -> dict:
    """Open ``<lab root>/<stem>.ipynb`` (prepared), Run All, check it and screenshot it to
    ``shots/<stem>_jupyterlab.png``; for 06_listen also move its threshold slider and check the
    widget's redraw. What was seen (a dict)."""
    page = LabPage(browser, lab, f"{stem}.ipynb")
    try:
        state = page.run_all(timeout)
        assert state["kernelName"] == prepare_kernel(lab, stem), state["kernelName"]
        assert not state["errors"], state["errors"]
        assert state["plotlyOutputs"] >= 1, f"{stem}: no plotly output after Run All"
        figures = page.rendered_figures(state["plotlyOutputs"])
        seen = {"figures": [(f["plot"]["title"], f["plot"]["marks"]) for f in figures]}
        if stem == "06_listen":  # the listening app's live piano roll (a FigureWidget)
            plots = wait_for("06's listening app to draw its piano roll",
                             lambda: [p for p in page.widget_plots() if not is_blank(p)], 60)
            assert len(plots) == 1, plots
        if stem == "00_quickstart":  # the detections figure under its code
            titles = [f["plot"]["title"] for f in figures]
            page.scroll_to(".jp-RenderedPlotly", index=_index(titles, "frame probabilities"), block="start",
                           cell=True)
            height = None
        else:  # the listening app: its cell, controls and piano roll
            page.scroll_to(".widget-slider", index=0, block="start", cell=True)
            height = 1400
        seen["screenshot"] = str(browser.screenshot(shots / f"{stem}_jupyterlab.png", height=height))
        if stem == "06_listen":
            seen["slider"] = check_threshold_slider(page)
        return seen
    finally:
        page.close()


def prepare_kernel(lab: LabServer, stem: str) -> str:
    """The kernel the prepared notebook names (prepare_notebook chose it)."""
    return nbformat.read(str(lab.root / f"{stem}.ipynb"), as_version=4).metadata.kernelspec.name


def _index(titles: list[str], title: str) -> int:
    hits = [i for i, t in enumerate(titles) if title in t]
    assert hits, f"no figure titled {title!r} among {titles}"
    return hits[0]


_DETECTED = re.compile(r"(\d+) detected")


def check_threshold_slider(page: LabPage) -> dict:
    """06's listening app: type threshold 0 into the slider (every class is then active in every
    frame: one event per class) and check that the status line, the events table and the outlines
    on the live piano roll all change to the new detections."""
    def status() -> str:
        found = [t for t in page.text(".widget-html-content") if _DETECTED.search(t)]
        return found[0] if found else ""

    def widget_plot() -> dict:
        return page.widget_plots()[0]

    before, shapes_before = status(), widget_plot()["shapes"]
    assert before, "06: the listening app shows no 'N detected' status line"
    n_before = int(_DETECTED.search(before).group(1))
    assert shapes_before == n_before, f"06: {shapes_before} outlines for {n_before} detected events"
    assert page.slider("threshold")["value"] == "0.50"
    page.set_slider("threshold", "0")
    wait_for("06's threshold slider to read 0.00 after typing 0 + Enter",
             lambda: page.slider("threshold")["value"] == "0.00", 30)
    after = wait_for("06's status line to change after the threshold slider moved",
                     lambda: (s := status()) != before and s, 60)
    n_after = int(_DETECTED.search(after).group(1))
    classes = wait_for("the app's events table", lambda: page.browser.js(
        "[...window.__panel.node.querySelectorAll('.widget-html-content table tbody tr')]"
        ".map(r => r.lastChild.textContent)"), 30)
    assert n_after > n_before and n_after == len(classes) == len(set(classes)), (before, after, classes)
    wait_for(f"the live piano roll to outline the {n_after} new detections",
             lambda: widget_plot()["shapes"] == n_after, 30)
    assert not is_blank(widget_plot())
    return {"before": before, "after": after}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a temporary root (the prepared notebooks), ended with its kernels."""
    root = tmp_path_factory.mktemp("lab-root")
    home = tmp_path_factory.mktemp("lab-home")
    server = LabServer(root, home, threads=1)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(tmp_path_factory.mktemp("chromium"))
    yield chromium
    chromium.stop()


@pytest.mark.parametrize("stem", ["00_quickstart", "06_listen"])
def test_notebook_runs_and_renders_in_jupyterlab(stem, lab, browser, tmp_path):
    """Run All of the smoke-profile notebook in JupyterLab: no error output, every figure drawn
    (00: the data, detections and PSDS primer figures; 06: the piano roll and the listening app,
    whose threshold slider redraws the detections)."""
    prepare_notebook(stem, lab.root, profile="smoke")
    seen = run_notebook_in_lab(browser, lab, stem, screenshots_dir(tmp_path))
    assert Path(seen["screenshot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


BLANK_CELLS = [
    ("import plotly.graph_objects as go\ngo.Figure(layout_title_text='no traces')", True),
    ("go.Figure(go.Scatter(x=[], y=[]), layout_title_text='an empty trace')", True),
    ("go.Figure(go.Heatmap(z=[[0, 1], [1, 0]]), layout_title_text='a heatmap')", False),
    ("go.Figure(go.Scatter(x=[0, 1], y=[1, 0]), layout_title_text='a line')", False),
    ("go.Figure(go.Scatter(x=[None], y=[None], name='legend only'), layout_title_text='legend only')", True),
    ("go.Figure(go.Scatter(x=[None], y=[None]), layout_shapes=[dict(type='rect', x0=0, x1=1, y0=0, y1=1)],\n"
     "          layout_title_text='a shape (as the PSDS primer draws events)')", False),
]


def test_blank_figures_and_errors_are_told_apart(lab, browser):
    """The checks can fail: in the same JupyterLab, Run All of a notebook whose last cell raises
    fails naming the error, and of its figures those without data are blank, those with a
    heatmap, a line or shapes are not."""
    from sedlib.study.runner import study_kernel

    cells = [src for src, _ in BLANK_CELLS] + ["1 / 0"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in cells])
    nb.metadata.kernelspec = {"name": study_kernel(), "display_name": study_kernel(), "language": "python"}
    nbformat.write(nb, str(lab.root / "blank.ipynb"))
    page = LabPage(browser, lab, "blank.ipynb")
    try:
        with pytest.raises(BrowserTestError, match="error output.*ZeroDivisionError"):
            page.run_all(120)
        state = page.state()
        expected = [blank for _, blank in BLANK_CELLS]

        def drawn():  # the figures with data drawn; then the others had the same time to draw
            plots = page.state()["plots"]
            return len(plots) == len(BLANK_CELLS) and not any(
                is_blank(p) for p, blank in zip(plots, expected) if not blank) and plots

        plots = wait_for(f"{len(BLANK_CELLS)} plotly figures in blank.ipynb, those with data drawn", drawn, 60)
        assert state["plotlyOutputs"] == len(BLANK_CELLS)
        assert [is_blank(p) for p in plots] == expected, plots
    finally:
        page.close()

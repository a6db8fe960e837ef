"""HTML figures open without a network: checked in a real headless Chromium."""

from __future__ import annotations

import shutil
import subprocess

import plotly.graph_objects as go
import pytest

from sedlib.study.plots import PLOTLYJS, save_figure, write_plotlyjs

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


def _figure() -> go.Figure:
    return go.Figure(go.Scatter(x=[1, 2, 3], y=[0.3, 0.4, 0.35], error_y={"array": [0.02] * 3}))


def rendered_plots(html) -> int:
    """Plotly SVG roots in the page's DOM after its scripts ran, with every host unreachable."""
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000",
                           "--dump-dom", html.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.count('class="main-svg"')


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (installed by scripts/install.sh)")
def test_html_figures_render_offline_and_a_cdn_figure_would_not(tmp_path):
    out = save_figure(_figure(), tmp_path / "fig", png=False)
    assert (tmp_path / PLOTLYJS).is_file() and out["html"].stat().st_size < 50_000
    assert rendered_plots(out["html"]) > 0
    cdn = tmp_path / "cdn.html"  # the former default: blank without a network
    _figure().write_html(cdn, include_plotlyjs="cdn")
    assert rendered_plots(cdn) == 0
    embedded = save_figure(_figure(), tmp_path / "alone" / "fig", png=False, embed_plotlyjs=True)
    assert not (tmp_path / "alone" / PLOTLYJS).exists() and rendered_plots(embedded["html"]) > 0


def test_the_bundle_is_written_once_and_a_torn_one_is_replaced(tmp_path):
    path = write_plotlyjs(tmp_path)
    size, mtime = path.stat().st_size, path.stat().st_mtime_ns
    assert size > 1_000_000 and write_plotlyjs(tmp_path).stat().st_mtime_ns == mtime
    path.write_bytes(path.read_bytes()[: size // 2])  # a copy cut short
    assert write_plotlyjs(tmp_path).stat().st_size == size
    assert sorted(p.name for p in tmp_path.iterdir()) == [PLOTLYJS]  # no temp file left

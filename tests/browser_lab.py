"""Drive a real JupyterLab in a real headless Chromium (tests/test_browser.py).

- :class:`LabServer`: ``jupyter lab`` from this interpreter's environment on a free loopback port,
  with a token, no browser, rooted in a temporary folder; its Jupyter config, settings and
  workspaces are temporary too (the user's own are neither read nor written), so every run starts
  from the same clean state: no news pop-up, no notebook windowing (every cell stays in the DOM,
  where the checks look for it), the app exposed as ``window.jupyterapp``.
- :class:`Chromium`: the Debian ``chromium`` headless, spoken to over the Chrome DevTools Protocol
  (one websocket, ``websocket-client``, which jupyter_server itself depends on).
- :func:`prepare_notebook`: a notebook with a profile's parameters injected by papermill's
  prepare-only path (nothing executed), so Run All in the browser is that profile's run.
- :class:`LabPage`: open a notebook, Run All, wait until every cell ran, and read back what
  JupyterLab shows: errors, plotly figures (rendered, not blank), widget controls.

Every wait has a deadline and fails naming what did not appear. Run as a script, it writes the
README's screenshots: ``python tests/browser_lab.py --profile quick --out figures/screenshots``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Viewport of the screenshots (CSS pixels).
VIEWPORT = (1280, 1000)


class BrowserTestError(AssertionError):
    """A wait ran out, or the page showed something it must not (a test failure, not an error)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, poll, timeout: float, interval: float = 0.25):
    """Call ``poll()`` until it returns a truthy value (returned); BrowserTestError naming
    ``what`` (and the last value polled) after ``timeout`` seconds."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        last = poll()
        if last:
            return last
        if time.monotonic() > deadline:
            raise BrowserTestError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def _stop(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM the process group we started (the process and its children), SIGKILL after
    ``grace`` seconds."""
    if proc is None or proc.poll() is not None and not _group_alive(proc.pid):
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)  # our own group: start_new_session=True made proc its leader
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        if not _group_alive(proc.pid):
            return
        time.sleep(0.5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


# --- the notebook --------------------------------------------------------------------------------

def prepare_notebook(stem: str, folder: Path, *, profile: str = "smoke", cache_dir: Path | None = None,
                     figures_dir: Path | None = None) -> Path:
    """``notebooks/<stem>.ipynb`` with ``profile``'s parameters injected (papermill, prepare only:
    nothing runs) as ``folder/<stem>.ipynb``; run and cache folders in ``folder`` (the cache:
    ``cache_dir`` when given), figures in ``figures_dir`` (default: the notebook's own
    ``<run_dir>/figures``). The kernel: the one the study uses (the notebooks' "Python (sedlib)"
    when it runs this interpreter)."""
    import nbformat
    import papermill as pm

    from sedlib.study.profiles import NOTEBOOKS_DIR, load_profile, notebook_parameters
    from sedlib.study.runner import study_kernel

    src = NOTEBOOKS_DIR / f"{stem}.ipynb"
    runner = {"run_dir": str(folder / "run" / stem), "cache_dir": str(cache_dir or folder / "cache")}
    if figures_dir is not None:
        runner["figures_dir"] = str(figures_dir)
    params = notebook_parameters(load_profile(profile), src, runner)
    out = folder / src.name
    kernel = study_kernel()
    loggers = [logging.getLogger(name) for name in ("papermill", "papermill.translators")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:  # "Passed unknown parameter" for the profile's common names: by design
        lg.setLevel(logging.ERROR)
    try:
        pm.execute_notebook(str(src), str(out), parameters=params, prepare_only=True, kernel_name=kernel,
                            progress_bar=False, log_output=False)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    nb = nbformat.read(str(out), as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
    spec = nb.metadata.setdefault("kernelspec", {})
    if spec.get("name") != kernel:  # a checkout whose "sedlib" kernel belongs to another venv
        spec.update(name=kernel, display_name=kernel)
    nbformat.write(nb, str(out))
    return out


# --- JupyterLab ----------------------------------------------------------------------------------

#: User settings of the temporary JupyterLab: no news pop-up, every cell in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


class LabServer:
    """``jupyter lab`` on 127.0.0.1:<free port> serving ``root``; ``stop()`` ends it and its
    kernels. Its stdout/stderr go to ``<home>/lab.log`` (quoted when it fails to start)."""

    def __init__(self, root: Path, home: Path, *, threads: int = 1, start_timeout: float = 90.0) -> None:
        self.root, self.home = Path(root), Path(home)
        self.port, self.token = free_port(), base64.b16encode(os.urandom(16)).decode().lower()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = self.home / "lab-settings"
        for name, values in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {**os.environ,
               # a config, data and runtime of its own: the kernels come from this venv's
               # sys-prefix (share/jupyter/kernels, where the setup registers "Python (sedlib)")
               "JUPYTER_CONFIG_DIR": str(self.home / "config"), "JUPYTER_DATA_DIR": str(self.home / "data"),
               "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
               "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(self.home / "ws"),
               "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        for var in ("JUPYTER_PATH", "JUPYTER_PREFER_ENV_PATH"):
            env.pop(var, None)
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--port-retries=0", f"--ServerApp.root_dir={self.root}", f"--IdentityProvider.token={self.token}",
               "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--ServerApp.terminals_enabled=False", "--KernelManager.shutdown_wait_time=2",
               "--LabApp.extension_manager=readonly"]  # no PyPI queries (offline machines)
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers, CI
            cmd.append("--allow-root")
        self.log_path = self.home / "lab.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for("JupyterLab to answer /api/status", self._ready, start_timeout, 0.5)
        except BrowserTestError as err:
            self.stop()
            raise BrowserTestError(f"{err}\n--- lab.log ---\n{self.log()[-4000:]}") from None

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise BrowserTestError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
        try:
            self.api("GET", "/api/status", timeout=2)
            return True
        except OSError:
            return False

    def api(self, method: str, path: str, timeout: float = 10) -> Any:
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def lab_url(self) -> str:
        return f"{self.url}/lab?token={self.token}"

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Shut the kernels down through the API, then end the server's process group."""
        if self.proc.poll() is None:
            try:
                for k in self.api("GET", "/api/kernels", timeout=5):
                    self.api("DELETE", f"/api/kernels/{k['id']}", timeout=20)
            except OSError:
                pass
        _stop(self.proc)
        self._log.close()


# --- Chromium ------------------------------------------------------------------------------------

def chromium_executable() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """Headless Chromium with one page, driven over the DevTools Protocol."""

    def __init__(self, home: Path, *, start_timeout: float = 60.0) -> None:
        import websocket  # websocket-client (a jupyter_server dependency)

        exe = chromium_executable()
        if exe is None:
            raise BrowserTestError("no chromium on PATH")
        self.home = Path(home)
        profile = self.home / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        w, h = VIEWPORT
        cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
               "--hide-scrollbars", "--disable-background-networking", "--disable-component-update",
               "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
               "--disable-backgrounding-occluded-windows", f"--window-size={w},{h}",
               f"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-allow-origins=*",
               "about:blank"]
        self.log_path = self.home / "chromium.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.ws = None
        try:
            port_file = profile / "DevToolsActivePort"
            port = int(wait_for("Chromium's DevToolsActivePort", lambda: self._alive() and port_file.exists()
                                and port_file.read_text().split("\n")[0].strip(), start_timeout))
            pages = wait_for("a Chromium page target", lambda: [t for t in self._targets(port)
                                                                 if t.get("type") == "page"], 20)
            self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60,
                                                  suppress_origin=True, enable_multithread=False)
        except BaseException:
            self.stop()
            raise
        self._id = 0
        self.send("Page.enable")  # its dialog events: send() accepts dialogs, which would block the page
        self.send("Emulation.setDeviceMetricsOverride", width=w, height=h, deviceScaleFactor=1, mobile=False)

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            self._log.flush()
            raise BrowserTestError(f"chromium exited with {self.proc.returncode}:\n"
                                   f"{self.log_path.read_text(errors='replace')[-3000:]}")
        return True

    @staticmethod
    def _targets(port: int) -> list[dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return []

    def send(self, method: str, *, wait: float = 60.0, **params) -> dict:
        """One CDP command; its result within ``wait`` seconds (events in between are dropped)."""
        self.ws.settimeout(wait)
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Page.javascriptDialogOpening":  # e.g. "leave with unsaved changes?"
                self._id += 1
                self.ws.send(json.dumps({"id": self._id, "method": "Page.handleJavaScriptDialog",
                                         "params": {"accept": True}}))
                continue
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise BrowserTestError(f"CDP {method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str, *, timeout: float = 60.0) -> Any:
        """Evaluate ``expression`` in the page (promises awaited); its JSON value. A JS exception
        raises BrowserTestError with its message."""
        res = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True,
                        wait=timeout + 10)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            raise BrowserTestError(f"JavaScript error: {text}")
        return res.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def screenshot(self, path: Path, height: int | None = None) -> Path:
        """The viewport as a PNG; ``height``: a taller viewport for this picture (then restored)."""
        w, h = VIEWPORT
        if height:
            self.send("Emulation.setDeviceMetricsOverride", width=w, height=height, deviceScaleFactor=1, mobile=False)
            time.sleep(1.5)  # JupyterLab and plotly lay out again
        try:
            data = self.send("Page.captureScreenshot", format="png")["data"]
        finally:
            if height:
                self.send("Emulation.setDeviceMetricsOverride", width=w, height=h, deviceScaleFactor=1, mobile=False)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def move_mouse(self, x: float, y: float) -> None:
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def type_text(self, text: str) -> None:
        self.send("Input.insertText", text=text)

    def press(self, key: str, code: str, key_code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=code, windowsVirtualKeyCode=key_code,
                      nativeVirtualKeyCode=key_code)

    def stop(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001 -- closing a dead socket
                pass
        _stop(self.proc, grace=5.0)
        self._log.close()


# --- a notebook in JupyterLab ----------------------------------------------------------------------

#: JS: the state of the open notebook (window.__panel): kernel, cells, outputs, figures.
_STATE_JS = r"""
(() => {
  const panel = window.__panel;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const plots = [...panel.node.querySelectorAll('.js-plotly-plot')];
  const outputs = cells.map(c => c.model.outputs.toJSON());
  return {
    kernel: kernel ? kernel.status : null,
    kernelName: kernel ? kernel.name : null,
    counts: cells.map(c => c.model.executionCount),
    prompts: cells.map(c => (c.node.querySelector('.jp-InputPrompt') || {}).textContent || ''),
    errors: outputs.flat().filter(o => o.output_type === 'error')
                   .map(o => `${o.ename}: ${o.evalue}`),
    plotlyOutputs: outputs.flat().filter(o => o.data && o.data['application/vnd.plotly.v1+json']).length,
    widgetOutputs: outputs.flat().filter(o => o.data && o.data['application/vnd.jupyter.widget-view+json']).length,
    plots: plots.map(window.__plotState),
  };
})()
"""

#: JS: how a plotly figure element is drawn. ``marks``: what shows its data (heatmap images,
#: non-degenerate paths of its traces: lines, markers, bars, fills; drawn shapes); 0 marks = a
#: blank figure. ``shapes``: the layout's shapes (06 outlines its detections with them).
_PLOT_STATE_JS = r"""
window.__plotState = (el) => {
  const r = el.getBoundingClientRect();
  const traces = (el._fullData || []).filter(t => t.visible !== false).length;
  const images = [...el.querySelectorAll('g.hm image, g.imagelayer image, .heatmaplayer image')]
    .filter(i => (i.getAttribute('href') || i.getAttribute('xlink:href') || '').length > 32
                 && i.getBoundingClientRect().width > 0);
  const paths = [...el.querySelectorAll('.cartesianlayer g.trace path, .polarlayer g.trace path, g.pielayer path')]
    .filter(p => { const d = p.getAttribute('d') || ''; return d.length > 4 && d !== 'M0,0Z'; });
  // shapes drawn on the axes (the PSDS primer draws its events as rectangles)
  const shapes = [...el.querySelectorAll('.shapelayer path')]
    .filter(p => { const d = p.getAttribute('d') || ''; return d.length > 4 && p.getBoundingClientRect().width > 0; });
  const title = (el.querySelector('.gtitle') || {}).textContent || '';
  return {title, inWidget: !!el.closest('.jupyter-widgets'), width: Math.round(r.width),
          height: Math.round(r.height), traces,
          marks: images.length + paths.length + shapes.length, shapes: ((el.layout || {}).shapes || []).length};
};
"""


def is_blank(plot: dict) -> bool:
    """A figure that shows no data: too small to see, or no drawn mark (an empty trace list,
    traces without points, a heatmap without its image)."""
    return plot["width"] < 100 or plot["height"] < 100 or plot["traces"] == 0 or plot["marks"] == 0


class LabPage:
    """One notebook open in JupyterLab in ``browser``."""

    def __init__(self, browser: Chromium, lab: LabServer, path: str, *, timeout: float = 120.0) -> None:
        self.browser, self.lab, self.path = browser, lab, path
        if not browser.js(f"location.href.startsWith({json.dumps(lab.url + '/lab')}) && !!window.jupyterapp"):
            browser.navigate(lab.lab_url())  # else: JupyterLab is open already, open the notebook in it
        wait_for("JupyterLab to start in Chromium (window.jupyterapp, restored)",
                 lambda: browser.js("!!(window.jupyterapp && window.jupyterapp.shell)"), timeout, 0.5)
        browser.js("window.jupyterapp.restored.then(() => true)", timeout=timeout)
        browser.js(_PLOT_STATE_JS)
        browser.js(f"""window.jupyterapp.commands.execute('docmanager:open',
                        {{path: {json.dumps(path)}, factory: 'Notebook'}})
                      .then(p => {{ window.__panel = p; return p.context.ready; }}).then(() => true)""",
                   timeout=timeout)
        # only this notebook in the main area (no launcher tab), the file browser folded away
        browser.js("""(() => { const app = window.jupyterapp;
            for (const w of [...app.shell.widgets('main')]) if (w !== window.__panel) w.dispose();
            app.shell.collapseLeft(); return true; })()""")
        wait_for(f"the kernel of {path} to start and be idle",
                 lambda: self.state()["kernel"] == "idle", timeout, 0.5)

    def state(self) -> dict:
        return self.browser.js(_STATE_JS)

    def run_all(self, timeout: float) -> dict:
        """Run All (the Run menu's command), then wait until every code cell has run and the
        kernel is idle; fails at once on an error output, naming it."""
        # started, not awaited (its promise settles when the last cell has run)
        self.browser.js("""(() => { window.__runAllError = null;
            window.jupyterapp.commands.execute('notebook:run-all-cells')
              .catch(e => { window.__runAllError = String(e); }); return true; })()""")

        def done():
            s = self.state()
            failed = self.browser.js("window.__runAllError")
            if failed:
                raise BrowserTestError(f"{self.path}: Run All failed: {failed}")
            if s["errors"]:
                raise BrowserTestError(f"{self.path}: error output(s) in JupyterLab: {s['errors']}")
            ran = all(c is not None for c in s["counts"]) and not any("*" in p for p in s["prompts"])
            return s if ran and s["kernel"] == "idle" else None

        return wait_for(f"every cell of {self.path} to run (Run All) and the kernel to be idle", done, timeout, 1.0)

    def figure_outputs(self) -> list[dict]:
        """The plotly outputs as JupyterLab shows them (``.jp-RenderedPlotly``): ``png``: its
        static image is loaded and shown; ``plot``: the live figure's state (None until drawn)."""
        return self.browser.js("""[...window.__panel.node.querySelectorAll('.jp-RenderedPlotly')].map(o => {
            // plotly draws into the output's node itself (which becomes .js-plotly-plot)
            const img = o.querySelector('img.plot-img');
            const plot = o.classList.contains('js-plotly-plot') ? o : o.querySelector('.js-plotly-plot');
            const shown = img && img.complete && img.naturalWidth > 0 && img.style.display !== 'none'
                          && img.getBoundingClientRect().width > 0;
            return {png: !!shown, pngSize: img ? [img.naturalWidth, img.naturalHeight] : null,
                    plot: plot ? window.__plotState(plot) : null};
        })""")

    def hover(self, selector: str, index: int) -> None:
        """Scroll the ``index``-th ``selector`` element to the middle of the view and move the
        mouse onto it (from outside: a real mouseenter)."""
        at = self.browser.js(f"""(() => {{
            const el = window.__panel.node.querySelectorAll({json.dumps(selector)})[{index}];
            if (!el) return null; el.scrollIntoView({{block: 'center'}});
            const r = el.getBoundingClientRect(); return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()""")
        if at is None:
            raise BrowserTestError(f"{self.path}: no element {selector!r} #{index} to hover")
        self.browser.move_mouse(2, 2)
        self.browser.move_mouse(at["x"], at["y"])

    def rendered_figures(self, expected: int, timeout: float = 60.0) -> list[dict]:
        """Every plotly output drawn with data: JupyterLab's plotly renderer first shows the
        figure's PNG (the notebooks store one beside each figure) and draws the live figure when
        the mouse enters it; so each output's PNG must show, then a hover must draw its live
        figure, not blank. Their states (``expected`` outputs, or BrowserTestError)."""
        outs = wait_for(f"{expected} plotly output(s) of {self.path}",
                        lambda: len(o := self.figure_outputs()) == expected and o, timeout, 0.5)
        for i in range(expected):
            what = f"figure {i + 1}/{expected} of {self.path}"
            wait_for(f"{what}: its PNG or live figure shown",
                     lambda: (o := self.figure_outputs()[i])["png"] or o["plot"], timeout, 0.5)

            def live():
                o = self.figure_outputs()[i]
                if o["plot"] is None:  # not drawn yet: (again) move the mouse onto its PNG
                    self.hover(".jp-RenderedPlotly", i)
                    return None
                return not is_blank(o["plot"]) and o

            try:
                outs[i] = wait_for(f"{what}: its live figure drawn with data after a hover", live, timeout, 1.0)
            except BrowserTestError as err:
                raise BrowserTestError(f"{err}; now: {self.figure_outputs()[i]}") from None
        self.browser.move_mouse(2, 2)
        return outs

    def widget_plots(self) -> list[dict]:
        """The plotly figures drawn inside ipywidgets (FigureWidget)."""
        return [p for p in self.state()["plots"] if p["inWidget"]]

    def scroll_to(self, selector: str, index: int = -1, block: str = "start", cell: bool = False) -> None:
        """Scroll the notebook so that the ``index``-th element matching ``selector`` (``cell``:
        the cell holding it) is in view."""
        ok = self.browser.js(f"""(() => {{ const els = window.__panel.node.querySelectorAll({json.dumps(selector)});
            let el = els[{index} < 0 ? els.length + ({index}) : {index}];
            if (el && {json.dumps(cell)}) el = el.closest('.jp-Cell');
            if (!el) return false; el.scrollIntoView({{block: {json.dumps(block)}}}); return true; }})()""")
        if not ok:
            raise BrowserTestError(f"{self.path}: nothing matches {selector!r} to scroll to")
        time.sleep(0.5)  # let plotly/JupyterLab settle after the scroll

    def slider(self, description: str) -> dict:
        """The ipywidgets slider labelled ``description``: its readout text and where its
        (editable) readout is on screen."""
        found = self.browser.js(f"""(() => {{
            const box = [...window.__panel.node.querySelectorAll('.widget-slider')]
              .find(s => ((s.querySelector('.widget-label') || {{}}).textContent || '').trim()
                         === {json.dumps(description)});
            if (!box) return null;
            const readout = box.querySelector('.widget-readout');
            readout.scrollIntoView({{block: 'center'}});
            const r = readout.getBoundingClientRect();
            return {{value: readout.textContent.trim(), x: r.x + r.width / 2, y: r.y + r.height / 2}};
        }})()""")
        if not found:
            raise BrowserTestError(f"{self.path}: no slider labelled {description!r}")
        return found

    def set_slider(self, description: str, value: str) -> None:
        """Type ``value`` into the slider's readout and press Enter, as a user does."""
        s = self.slider(description)
        self.browser.click(s["x"], s["y"])
        # select the readout's text so that typing replaces it
        self.browser.js("""(() => { const el = document.activeElement; const r = document.createRange();
            r.selectNodeContents(el); const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(r);
            return el.className; })()""")
        self.browser.type_text(value)
        self.browser.press("Enter", "Enter", 13)

    def text(self, selector: str) -> list[str]:
        return self.browser.js(f"[...window.__panel.node.querySelectorAll({json.dumps(selector)})]"
                               f".map(e => e.textContent)")

    def close(self) -> None:
        """Shut the notebook's kernel down and close it (the next notebook opens in the same app)."""
        try:
            self.browser.js("""window.__panel.sessionContext.shutdown().then(() => {
                window.__panel.context.model.dirty = false;  // close without a "save changes?" dialog
                window.__panel.dispose(); return true; })""", timeout=30)
        except Exception:  # noqa: BLE001 -- the server's shutdown ends it anyway
            pass


# --- the README's screenshots --------------------------------------------------------------------

def _main() -> None:
    """Run 00 and 06 in JupyterLab with a profile and save their screenshots."""
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_browser import run_notebook_in_lab  # the test's own steps and checks

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--out", default="figures/screenshots")
    ap.add_argument("--cache-dir", default=None, help="training cache (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sedlib-browser-") as tmp:
        tmp = Path(tmp)
        lab_root, home = tmp / "root", tmp / "home"
        lab_root.mkdir()
        home.mkdir()
        cache = Path(args.cache_dir).resolve() if args.cache_dir else None
        for stem in ("00_quickstart", "06_listen"):
            prepare_notebook(stem, lab_root, profile=args.profile, cache_dir=cache)
        lab = LabServer(lab_root, home, threads=2)
        try:
            browser = Chromium(home)
            try:
                for stem in ("00_quickstart", "06_listen"):
                    report = run_notebook_in_lab(browser, lab, stem, Path(args.out), timeout=3600)
                    print(stem, report)
            finally:
                browser.stop()
        finally:
            lab.stop()


if __name__ == "__main__":
    _main()

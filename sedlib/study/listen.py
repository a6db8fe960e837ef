"""Listen to detections: an ipywidgets player over pure functions (view only).

The logic lives in functions a test (or a papermill run) can call without a display:
:func:`synth_clip` / :func:`file_clip` (a clip to show: waveform, name, ground truth),
:func:`score_clip` (sigmoid frame scores ``(K, T)`` on the 40 ms grid, any length, 10 s windows),
:func:`truth_frames` (ground truth on the same grid), :func:`detect` (median filter + threshold
-> events, as ``sedlib detect``) and :func:`piano_roll` (a static plotly figure: ground truth
above, predicted scores below with the detected events outlined).

:class:`ListenApp` wires them to widgets: a clip picker (embedded synthetic clip index, or any
audio file path), an audio player, the piano roll, a threshold and a median-filter slider, a model
switch and the event table. Scores are computed once per (model, clip); the sliders only
re-run post-processing. It builds without a display; in Jupyter, leave it as the last
expression of a cell (or ``display(app)``).

The piano roll is a ``plotly.graph_objects.FigureWidget`` (updated in place) when ``anywidget``
is installed (plotly >= 6 needs it for FigureWidget); otherwise it is redrawn into an
``ipywidgets.Output``. ``figure_widget=True`` / ``False`` forces one of the two.
"""

from __future__ import annotations

import html
import importlib.util
import io
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sedlib.config import AudioConfig, project_path
from sedlib.data.labels import Event, Vocabulary, encode_events
from sedlib.detect.detector import load_detector_model
from sedlib.errors import SedlibError
from sedlib.evaluate.postprocess import FrameScores, scores_to_events

log = logging.getLogger(__name__)

ModelEntry = tuple[nn.Module, Vocabulary]
#: The checkpoint shipped with sedlib: fmn04+TF:104 trained on the embedded data (see its README)
FIGURE_WIDTH = 960  # px of the piano roll inside the app
SHIPPED_CHECKPOINT = "data/checkpoints/fmn04+tf-104_synth.safetensors"


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file named relative to the project root (:func:`sedlib.config.project_path`;
    absolute paths as they are), whatever the working directory; SedlibError if missing."""
    found = project_path(path)
    if not found.is_file():
        raise SedlibError(f"checkpoint {path} not found: no file {found}")
    return found


@dataclass(frozen=True)
class Clip:
    """A recording to show: mono ``waveform`` ``(N,)`` at ``sample_rate``; ``events`` is the
    ground truth, or None when unknown."""

    name: str
    waveform: np.ndarray
    sample_rate: int
    events: tuple[Event, ...] | None = None

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sample_rate


def synth_clip(index: int, *, split: str = "eval", synth_config=None) -> Clip:
    """Clip ``index`` of the embedded synthetic set's ``split``, with its exact labels."""
    from sedlib.data.synth.soundscape import (
        SynthConfig,
        synth_filename,
        synthesize_clip,
    )

    cfg = synth_config or SynthConfig()
    wave, events = synthesize_clip(cfg, split, int(index))
    return Clip(synth_filename(split, int(index)), wave, cfg.synth_sample_rate, tuple(events))


def dataset_clip(dataset, index: int) -> Clip:
    """Item ``index`` of a data source (:func:`sedlib.study.training.open_data`, eval split: the
    first ``clip_seconds`` of the file) with its strong labels when the source has them."""
    item = dataset[int(index)]
    truth = getattr(dataset, "ground_truth", None)
    events = None if truth is None else tuple(truth.get(item["filename"], ()))
    rate = dataset.audio_config.sample_rate if hasattr(dataset, "audio_config") else 16_000
    return Clip(item["filename"], item["waveform"].numpy(), rate, events)


def load_listen_model(spec: str | os.PathLike) -> ModelEntry:
    """``(model, vocab)`` of a checkpoint file (as given or under the project root) or a
    release name (downloaded on first use)."""
    from sedlib.models.releases import RELEASES

    return load_detector_model(None, spec if str(spec) in RELEASES else find_checkpoint(spec))


def file_clip(path: str | os.PathLike, *, sample_rate: int = 16_000,
              events: Sequence[Event] | None = None) -> Clip:
    """Any audio file (any rate / channels; resampled and downmixed), with optional labels."""
    from sedlib.audio.io import load_audio

    path = Path(path)
    return Clip(path.name, load_audio(path, sample_rate), sample_rate,
                None if events is None else tuple(events))


@torch.inference_mode()
def score_clip(model: nn.Module, vocab: Vocabulary, clip: Clip, *,
               audio_config: AudioConfig | None = None, device: str = "cpu") -> FrameScores:
    """Sigmoid strong outputs ``(K, ceil(duration / frame))`` of ``clip``: consecutive windows
    of ``clip_seconds`` (the last zero-padded), each through the mel frontend and the model."""
    from sedlib.audio.frontend import MelFrontend

    audio = audio_config or AudioConfig()
    if clip.sample_rate != audio.sample_rate:
        raise SedlibError(f"{clip.name}: {clip.sample_rate} Hz, the model takes "
                          f"{audio.sample_rate} Hz")
    n = audio.clip_samples
    wave = torch.as_tensor(np.asarray(clip.waveform, dtype=np.float32))
    windows = torch.nn.functional.pad(wave, (0, -len(wave) % n)).reshape(-1, n)  # (W, N)
    model = model.eval().to(device)
    mel = MelFrontend(audio).eval().to(device)(windows.to(device))  # (W, 1, F, T_mel)
    strong, _ = model(mel)  # (W, K, T)
    if strong.shape[1] != len(vocab):
        raise SedlibError(f"model outputs {strong.shape[1]} classes, vocabulary {vocab.name!r} "
                          f"has {len(vocab)}")
    scores = torch.sigmoid(strong.float()).permute(1, 0, 2).reshape(len(vocab), -1)  # (K, W*T)
    total = max(1, math.ceil(round(clip.duration / audio.frame_seconds, 6)))
    return FrameScores(clip.name, scores[:, :total].cpu().numpy(), clip.duration,
                       audio.frame_seconds, vocab.names)


def truth_frames(clip: Clip, scores: FrameScores) -> np.ndarray | None:
    """Ground truth of ``clip`` on the grid of ``scores``: ``(K, T)`` 0/1, or None."""
    if clip.events is None:
        return None
    vocab = Vocabulary(scores.classes, "scores")
    return encode_events(clip.events, vocab, scores.scores.shape[1], 1.0 / scores.frame_seconds,
                         ignore_unknown=True)


def detect(scores: FrameScores, threshold: float = 0.5, median_filter: int = 9) -> list[Event]:
    """Events of ``scores``: median filter over time, ``score > threshold`` (``sedlib detect``)."""
    return scores_to_events(scores, threshold, median_filter)


def events_html(events: Sequence[Event]) -> str:
    """The events as a small HTML table (onset, offset, class)."""
    if not events:
        return "<i>no events detected</i>"
    rows = "".join(f"<tr><td>{e.onset:.2f}</td><td>{e.offset:.2f}</td><td>{html.escape(e.label)}"
                   f"</td></tr>" for e in sorted(events, key=lambda e: (e.onset, e.label)))
    return (f"<table><thead><tr><th>onset (s)</th><th>offset (s)</th><th>class</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")


def event_shapes(events: Sequence[Event], classes: Sequence[str], *, yref: str = "y2",
                 color: str = "white") -> list[dict]:
    """Rectangles outlining ``events`` on a heatmap whose rows are ``classes``."""
    row = {c: i for i, c in enumerate(classes)}
    return [dict(type="rect", xref=yref.replace("y", "x"), yref=yref, x0=e.onset, x1=e.offset,
                 y0=row[e.label] - 0.45, y1=row[e.label] + 0.45, line=dict(color=color, width=2))
            for e in events if e.label in row]


def piano_roll(scores: FrameScores, truth: np.ndarray | None = None,
               events: Sequence[Event] = (), *, title: str | None = None):
    """Static plotly figure: ground truth (top, if given) and frame scores (bottom), classes x
    40 ms frames, the detected ``events`` outlined on the scores."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    k, t = scores.scores.shape
    x = (np.arange(t) + 0.5) * scores.frame_seconds  # frame centres (s)
    classes = list(scores.classes)
    rows = 2 if truth is not None else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=(["ground truth"] if truth is not None else [])
                        + ["predicted frame scores (detections outlined)"])
    if truth is not None:
        fig.add_trace(go.Heatmap(z=truth, x=x, y=classes, zmin=0, zmax=1, colorscale="Greys",
                                 showscale=False, name="truth"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=scores.scores, x=x, y=classes, zmin=0, zmax=1,
                             colorscale="Viridis", colorbar=dict(title="score"), name="scores"),
                  row=rows, col=1)
    fig.update_layout(shapes=event_shapes(events, classes, yref=f"y{rows if rows > 1 else ''}"),
                      height=220 + 28 * k * rows, template="plotly_white",
                      title=title or scores.filename, margin=dict(l=110, r=20, t=60, b=40))
    fig.update_xaxes(title="time (s)", row=rows, col=1)
    return fig


def load_models(models: Mapping[str, ModelEntry] | Sequence[str | os.PathLike]
                ) -> dict[str, ModelEntry]:
    """``{label: (model, vocab)}`` as given, or checkpoint files (sedlib ``.safetensors`` with
    their ``model`` / ``classes`` metadata) loaded and labelled by file name."""
    if isinstance(models, Mapping):
        out = dict(models)
    else:
        out = {Path(p).name: load_listen_model(p) for p in models}
    if not out:
        raise SedlibError("ListenApp needs at least one model")
    return out


class ListenApp:
    """Player + piano roll + threshold / median-filter sliders + model switch (see module doc).

    Args:
        models: ``{label: (model, vocab)}`` or a list of checkpoint paths / release names.
        clips: indices of the clips offered in the picker: of ``dataset`` when given (a data
            source, e.g. ``open_data(spec, "eval", audio)``), else of the embedded synthetic
            set's ``split`` (made with ``synth_config``).
        threshold, median_filter: initial post-processing (``sedlib detect``'s defaults).
    """

    def __init__(self, models: Mapping[str, ModelEntry] | Sequence[str | os.PathLike], *,
                 clips: Sequence[int] = range(20), dataset=None, split: str = "eval",
                 synth_config=None,
                 audio_config: AudioConfig | None = None, threshold: float = 0.5,
                 median_filter: int = 9, device: str = "cpu",
                 figure_widget: bool | None = None) -> None:
        import ipywidgets as w

        self.models = load_models(models)
        self.dataset, self.split, self.synth_config = dataset, split, synth_config
        self.audio_config, self.device = audio_config or AudioConfig(), device
        self._cache: dict[tuple[str, str], FrameScores] = {}
        if figure_widget is None:
            figure_widget = importlib.util.find_spec("anywidget") is not None
            if not figure_widget:
                log.info("anywidget is not installed: the piano roll is redrawn on each change")
        self._use_figure_widget = figure_widget
        self.model_picker = w.Dropdown(options=list(self.models), description="model")
        names = ([dataset.filenames[i] for i in clips] if dataset is not None
                 else [f"{split} #{i}" for i in clips])
        self.clip_picker = w.Dropdown(options=list(zip(names, map(int, clips))), description="clip")
        self.path_box = w.Text(placeholder="or an audio file path", description="file")
        self.load_button = w.Button(description="load file")
        self.threshold_slider = w.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01,
                                              description="threshold", continuous_update=False)
        self.median_slider = w.IntSlider(value=median_filter, min=1, max=51, step=2,
                                         description="median", continuous_update=False)
        self.player = w.Audio(format="wav", autoplay=False, loop=False)
        self.table = w.HTML()
        self.status = w.HTML()
        self.plot = w.Output()
        self.plot_box = w.Box([self.plot])
        self.figure = None  # the current plotly figure (a FigureWidget when available)
        self.clip: Clip | None = None
        self.scores: FrameScores | None = None
        self.truth: np.ndarray | None = None
        self.events: list[Event] = []
        self.model_picker.observe(lambda ch: self._rescore(), names="value")
        self.clip_picker.observe(lambda ch: self.select_clip(ch["new"]), names="value")
        self.load_button.on_click(lambda _: self._load_path())
        self.threshold_slider.observe(lambda ch: self._postprocess(), names="value")
        self.median_slider.observe(lambda ch: self._postprocess(), names="value")
        first = self.clip_picker.options[0][1] if self.clip_picker.options else None
        self.widget = w.VBox([
            w.HBox([self.model_picker, self.clip_picker]),
            w.HBox([self.path_box, self.load_button]),
            w.HBox([self.threshold_slider, self.median_slider]),
            self.player, self.status, self.plot_box, self.table])
        if first is not None:
            self.select_clip(first)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The widget, plus what a static copy of the notebook shows instead of the widget's
        text repr: a note and the current piano roll as a PNG (GitHub, nbviewer, untrusted)."""
        import base64

        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        note = ("Listening app (an interactive widget: player, piano roll, threshold and median "
                "sliders). Run this notebook in JupyterLab to use it; below, the piano roll of "
                f"{self.clip.name if self.clip else 'the first clip'} as it was drawn.")
        bundle["text/plain"] = note
        html_out = f"<p><i>{html.escape(note)}</i></p>"
        if self.figure is not None:
            try:
                png = base64.b64encode(self.figure.to_image(format="png")).decode("ascii")
                html_out += f'<img src="data:image/png;base64,{png}" style="max-width:100%"/>'
            except Exception as err:  # kaleido/choreographer raise several types without a browser
                log.warning("no static piano roll beside the widget (%s: %s)", type(err).__name__, err)
        bundle["text/html"] = html_out + self.table.value
        return bundle

    # --- actions (what the widgets call; tests call them directly) ---------------------------

    @property
    def threshold(self) -> float:
        return float(self.threshold_slider.value)

    @property
    def median_filter(self) -> int:
        return int(self.median_slider.value)

    def set_threshold(self, value: float) -> list[Event]:
        self.threshold_slider.value = float(value)  # triggers _postprocess
        return self.events

    def set_median_filter(self, size: int) -> list[Event]:
        self.median_slider.value = int(size)
        return self.events

    def select_model(self, label: str) -> list[Event]:
        if label not in self.models:
            raise SedlibError(f"unknown model {label!r}; loaded: {', '.join(self.models)}")
        self.model_picker.value = label  # triggers _rescore
        return self.events

    def select_clip(self, clip: int | str | os.PathLike | Clip) -> list[Event]:
        """A clip index (of the dataset or the embedded set), an audio file path or a
        :class:`Clip`."""
        if isinstance(clip, Clip):
            self.clip = clip
        elif isinstance(clip, (int, np.integer)):
            self.clip = (dataset_clip(self.dataset, int(clip)) if self.dataset is not None else
                         synth_clip(int(clip), split=self.split, synth_config=self.synth_config))
        elif str(clip):
            self.clip = file_clip(clip, sample_rate=self.audio_config.sample_rate)
        else:
            return self.events
        buf = io.BytesIO()
        import soundfile as sf

        sf.write(buf, np.clip(self.clip.waveform, -1, 1), self.clip.sample_rate, format="WAV",
                 subtype="PCM_16")
        self.player.value = buf.getvalue()
        self._rescore()
        return self.events

    # --- internals ---------------------------------------------------------------------------

    def _load_path(self) -> None:
        """The "load file" button: errors (missing or unreadable file) go to the status line."""
        try:
            self.select_clip(self.path_box.value.strip())
        except SedlibError as err:
            self.status.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"

    def _rescore(self) -> None:
        if self.clip is None:
            return
        label = self.model_picker.value
        key = (label, self.clip.name)
        if key not in self._cache:
            model, vocab = self.models[label]
            self._cache[key] = score_clip(model, vocab, self.clip, audio_config=self.audio_config,
                                          device=self.device)
        self.scores = self._cache[key]
        self.truth = truth_frames(self.clip, self.scores)
        self.figure = None  # a new clip or model: new heatmap data
        self._postprocess()

    def _postprocess(self) -> None:
        if self.scores is None:
            return
        self.events = detect(self.scores, self.threshold, self.median_filter)
        self.table.value = events_html(self.events)
        truth = "" if self.clip.events is None else f", {len(self.clip.events)} labelled"
        self.status.value = (f"<b>{html.escape(self.clip.name)}</b>: {self.clip.duration:.1f} s, "
                             f"{len(self.events)} detected{truth}")
        self._draw()

    def _draw(self) -> None:
        rows = 2 if self.truth is not None else 1
        shapes = event_shapes(self.events, self.scores.classes, yref=f"y{rows if rows > 1 else ''}")
        if self.figure is not None and self._use_figure_widget:
            with self.figure.batch_update():  # in place: only the outlines change
                self.figure.layout.shapes = shapes
            return
        fig = piano_roll(self.scores, self.truth, self.events,
                         title=f"{self.clip.name} - {self.model_picker.value}")
        if self._use_figure_widget:
            import plotly.graph_objects as go

            # a fixed size: restored from a saved notebook's widget state, an autosized plot
            # measures its not yet laid out container and is drawn a few pixels wide
            fig.update_layout(width=FIGURE_WIDTH, autosize=False)
            self.figure = go.FigureWidget(fig)
            self.plot_box.children = [self.figure]
            return
        self.figure = fig
        self.plot_box.children = [self.plot]
        from IPython import get_ipython

        if get_ipython() is not None:  # outside a kernel (tests) there is nothing to draw on
            from IPython.display import display

            self.plot.clear_output(wait=True)
            with self.plot:
                display(fig)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)

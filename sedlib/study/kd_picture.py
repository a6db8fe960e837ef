"""What a teacher adds, on one training clip (notebook 04): the true events, the label the
student is given (with the training data's annotation noise), the teacher ensemble's
probabilities, and the target the KD loss asks the student to match there.

The KD loss of the study, ``(1 - w) * BCE(p, label) + w * BCE(p, teacher)``, is linear in its
targets, so for each frame it is the BCE against one blended target ``(1 - w) * label + w *
teacher`` and is smallest when the student's probability equals that blend: where the label
missed or confused an event and the teacher did not, the blend follows the teacher.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from sedlib.config import AudioConfig


def _frames(source, index: int) -> np.ndarray:
    """Clip ``index``'s labels of a synth source on the 40 ms grid, ``(K, T)`` (no audio rendered)."""
    from sedlib.data.labels import encode_events

    cfg = source.audio_config
    return encode_events(source.annotation(index), source.vocab, cfg.label_frames, cfg.frames_per_second)


def _sources(noisy_spec: str, audio: AudioConfig):
    from sedlib.data.spec import open_source, without_label_noise

    exact_spec = without_label_noise(noisy_spec)
    if exact_spec == noisy_spec:
        raise ValueError(f"{noisy_spec!r} has no annotation noise: its labels are the exact ones")
    return (open_source(noisy_spec, split="train", audio_config=audio),
            open_source(exact_spec, split="train", audio_config=audio))


def label_errors(noisy_spec: str, audio: AudioConfig, *, clips: int = 200) -> list[tuple[int, int]]:
    """``[(index, frames whose noisy label differs from the exact one)]`` over the first
    ``clips`` training clips of a ``synth`` spec with annotation noise, most errors first (ties:
    lower index). Labels only: no audio is rendered."""
    noisy, exact = _sources(noisy_spec, audio)
    counts = [(i, int((_frames(noisy, i) != _frames(exact, i)).sum())) for i in range(min(clips, len(noisy)))]
    return sorted(counts, key=lambda c: (-c[1], c[0]))


def kd_example(noisy_spec: str, store: Any, audio: AudioConfig, index: int) -> dict[str, Any]:
    """One training clip's ``truth``, ``label`` and ``teacher`` probabilities, each ``(K, T)``
    on the 40 ms grid, with ``filename`` and ``classes``; ``store``: the notebook's pseudo-label
    store (:class:`sedlib.train.pseudo_labels.PseudoLabelStore` or its path)."""
    from sedlib.train.pseudo_labels import PseudoLabelStore

    noisy, exact = _sources(noisy_spec, audio)
    store = PseudoLabelStore(store) if isinstance(store, (str, os.PathLike)) else store
    filename = noisy.filenames[index]
    teacher = store.probs(filename).numpy()
    truth, label = _frames(exact, index), _frames(noisy, index)
    t = min(teacher.shape[-1], label.shape[-1])
    return {"filename": filename, "classes": list(noisy.vocab.names), "truth": truth[:, :t],
            "label": label[:, :t], "teacher": teacher[:, :t]}


def kd_figure(example: dict[str, Any], *, kd_weight: float = 0.9, frame_seconds: float = 0.04,
              title: str | None = None):
    """Four aligned heatmaps (classes x seconds) of one clip: the truth, the training label,
    the teacher's probabilities and the blended target ``(1 - kd_weight) * label + kd_weight *
    teacher`` the KD loss pulls the student towards (module doc)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    blend = (1 - kd_weight) * example["label"] + kd_weight * example["teacher"]
    panels = [("the true events (never shown to the student)", example["truth"], "Greys"),
              ("the training label (annotation noise: missed, confused, shifted events)", example["label"], "Greys"),
              ("the teacher ensemble's probabilities", example["teacher"], "Viridis"),
              (f"what the KD loss asks: {1 - kd_weight:g} x label + {kd_weight:g} x teacher", blend, "Viridis")]
    k, t = example["truth"].shape
    x = (np.arange(t) + 0.5) * frame_seconds
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=[p[0] for p in panels])
    for row, (_, z, scale) in enumerate(panels, start=1):
        fig.add_trace(go.Heatmap(z=z, x=x, y=example["classes"], zmin=0, zmax=1, colorscale=scale,
                                 showscale=row == 3, colorbar={"title": "probability"},
                                 hovertemplate="%{y} at %{x:.2f} s: %{z:.2f}<extra></extra>"), row=row, col=1)
    fig.update_xaxes(title="time (s)", row=4, col=1)
    fig.update_layout(title=title or f"What a teacher adds: {example['filename']}", template="plotly_white",
                      height=260 + 4 * 22 * k, width=900, margin={"l": 110, "r": 20, "t": 70, "b": 40})
    return fig

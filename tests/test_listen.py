"""sedlib.study.listen: the widget builds headlessly and its detections follow the sliders."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from sedlib.data.synth.soundscape import SynthConfig, synth_vocabulary  # noqa: E402
from sedlib.registry import create_model  # noqa: E402
from sedlib.study.listen import (
    Clip,
    ListenApp,
    detect,
    piano_roll,
    score_clip,
    synth_clip,
    truth_frames,
)

SHORT = SynthConfig(synth_clip_seconds=4.0)  # 4 s clips: 100 frames, fast


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    vocab = synth_vocabulary()
    return create_model("fmntiny+TF:32", num_classes=len(vocab)).eval(), vocab


@pytest.mark.parametrize("figure_widget", [
    False,
    pytest.param(True, marks=pytest.mark.skipif(importlib.util.find_spec("anywidget") is None,
                                                reason="plotly's FigureWidget needs anywidget")),
])
def test_app_builds_headless_and_threshold_changes_events(tiny, figure_widget):
    app = ListenApp({"tiny": tiny}, clips=[0, 1], synth_config=SHORT, median_filter=1,
                    figure_widget=figure_widget)
    assert app.clip.name == "synth_eval_000000.wav" and app.player.value[:4] == b"RIFF"
    assert app.scores.scores.shape == (len(tiny[1]), 100)
    assert app.truth.shape == app.scores.scores.shape and app.truth.sum() > 0
    low = list(app.set_threshold(0.0))  # every frame above threshold: one event per class
    assert {e.label for e in low} == set(tiny[1].names)
    assert all(e.onset == 0 and e.offset == pytest.approx(4.0) for e in low)
    high = list(app.set_threshold(1.0))  # sigmoid < 1: nothing
    assert high == [] and app.events == []
    mid = float(np.median(app.scores.scores))
    assert app.set_threshold(mid) != low  # a threshold inside the score range: some, not all
    assert "<table>" in app.table.value or app.events == []
    if figure_widget:
        assert app.plot_box.children[0] is app.figure
        assert len(app.figure.layout.shapes) == len(app.events)
    else:
        assert len(app.figure.layout.shapes) == len(app.events)
    app.select_clip(1)
    assert app.clip.name == "synth_eval_000001.wav"


def test_median_filter_and_model_switch(tiny):
    torch.manual_seed(1)
    other = create_model("fmntiny", num_classes=len(tiny[1])).eval()
    app = ListenApp({"a": tiny, "b": (other, tiny[1])}, clips=[2], synth_config=SHORT,
                    threshold=0.5)
    first = app.scores
    app.select_model("b")
    assert app.scores is not first and not np.allclose(app.scores.scores, first.scores)
    app.set_median_filter(1)
    assert app.median_filter == 1
    with pytest.raises(Exception, match="unknown model"):
        app.select_model("c")


def test_score_clip_any_length(tiny):
    model, vocab = tiny
    rng = np.random.default_rng(0)
    clip = Clip("noise.wav", (0.01 * rng.standard_normal(16_000 * 13 + 123)).astype(np.float32),
                16_000)
    scores = score_clip(model, vocab, clip)
    assert scores.scores.shape == (len(vocab), int(np.ceil((16_000 * 13 + 123) / 640)))
    assert truth_frames(clip, scores) is None
    # the first window equals the model on the same 10 s alone
    alone = score_clip(model, vocab, Clip("a.wav", clip.waveform[:160_000], 16_000))
    np.testing.assert_allclose(scores.scores[:, :250], alone.scores, atol=1e-5)


def test_static_piano_roll_marks_events(tiny):
    model, vocab = tiny
    clip = synth_clip(3, synth_config=SHORT)
    scores = score_clip(model, vocab, clip)
    events = detect(scores, threshold=0.0, median_filter=1)
    fig = piano_roll(scores, truth_frames(clip, scores), events)
    assert len(fig.data) == 2 and len(fig.layout.shapes) == len(events) == len(vocab)


def test_app_from_checkpoint_files(tiny, tmp_path):
    from sedlib.train.runs import save_weights

    model, vocab = tiny
    path = save_weights(model, tmp_path / "tiny.safetensors", model_name=model.name,
                        classes=vocab.names)
    app = ListenApp([path], clips=[0], synth_config=SHORT)
    assert list(app.models) == ["tiny.safetensors"]
    loaded, names = app.models["tiny.safetensors"]
    assert names.names == vocab.names and loaded.name == "fmntiny+TF:32"
    np.testing.assert_allclose(app.scores.scores, score_clip(model, vocab, app.clip).scores,
                               atol=1e-6)


def test_load_audio_file_and_report_a_bad_path(tiny, tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(1)
    stereo = (0.05 * rng.standard_normal((44_100 * 3, 2))).astype(np.float32)  # 3 s, 44.1 kHz
    sf.write(tmp_path / "rec.flac", stereo, 44_100)
    app = ListenApp({"tiny": tiny}, clips=[], synth_config=SHORT)
    assert app.clip is None and app.events == []
    app.path_box.value = str(tmp_path / "rec.flac")
    app._load_path()
    assert app.clip.name == "rec.flac" and app.clip.events is None and app.truth is None
    assert app.scores.scores.shape == (len(tiny[1]), 75)  # 3 s of 40 ms frames
    assert len(app.figure.data) == 1  # no ground-truth panel
    app.path_box.value = str(tmp_path / "missing.wav")
    app._load_path()
    assert "no such audio file" in app.status.value and app.clip.name == "rec.flac"


def test_app_over_a_data_source(tiny):
    from sedlib.config import AudioConfig
    from sedlib.study.training import open_data

    audio = AudioConfig(clip_seconds=4.0)
    data = open_data("synth:5", "eval", audio)
    app = ListenApp({"tiny": tiny}, clips=[3, 4], dataset=data, audio_config=audio)
    assert [o[0] for o in app.clip_picker.options] == ["synth_eval_000003.wav", "synth_eval_000004.wav"]
    expected = synth_clip(3, synth_config=SHORT)
    assert app.clip.name == expected.name and app.clip.events == expected.events
    np.testing.assert_array_equal(app.clip.waveform, expected.waveform)

"""Detection on files of any length/rate/channels: events inside the file, outputs parse."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from sedlib.data.labels import encode_events
from sedlib.data.synth.soundscape import synth_vocabulary
from sedlib.detect.detector import (
    Detector,
    detect_files,
    format_events,
    load_detector_model,
    write_events,
)
from sedlib.errors import SedlibError
from sedlib.evaluate.postprocess import FrameScores, scores_to_events
from sedlib.registry import create_model

VOCAB = synth_vocabulary()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("fmntiny+TF:32", num_classes=len(VOCAB)).eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model):
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"model": "fmntiny+TF:32", "classes": json.dumps(list(VOCAB.names))})
    return path


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    stereo = root / "long_stereo.wav"  # 23 s, 2 channels, 44.1 kHz
    sf.write(stereo, 0.1 * rng.standard_normal((23 * 44100, 2)).astype(np.float32), 44100)
    short = root / "short.flac"  # 3 s mono
    sf.write(short, 0.1 * rng.standard_normal(3 * 16000).astype(np.float32), 16000)
    return stereo, short


def _span_ok(events, duration):
    return all(0 <= e.onset < e.offset <= duration + 1e-9 for e in events)


def test_frame_scores_cover_file_and_events_stay_inside(model, audio_files):
    det = Detector(model, VOCAB, batch_size=2)
    for path, duration in zip(audio_files, (23.0, 3.0)):
        scores = det.frame_scores(path)
        assert scores.scores.shape == (len(VOCAB), int(np.ceil(duration / 0.04)))
        assert np.all((scores.scores >= 0) & (scores.scores <= 1))
        events = scores_to_events(scores, threshold=0.0, median_filter=9)  # everything active
        assert events and _span_ok(events, duration)
        assert max(e.offset for e in events) == pytest.approx(duration)


def test_overlapping_windows_average(model, audio_files):
    stereo, _ = audio_files
    plain = Detector(model, VOCAB).frame_scores(stereo).scores
    overlap = Detector(model, VOCAB, hop_seconds=5.0).frame_scores(stereo).scores
    assert plain.shape == overlap.shape
    # the first 5 s are seen by one window in both settings
    np.testing.assert_allclose(plain[:, :125], overlap[:, :125], atol=1e-6)
    assert not np.allclose(plain, overlap)


def test_scores_equal_direct_model_call(model, audio_files):
    from sedlib.audio.frontend import MelFrontend
    from sedlib.audio.io import load_audio, split_windows

    _, short = audio_files
    wave = split_windows(load_audio(short), 160_000).copy()
    with torch.inference_mode():
        strong, _ = model(MelFrontend().eval()(torch.from_numpy(wave)))
    direct = torch.sigmoid(strong)[0, :, :75].numpy()
    np.testing.assert_allclose(Detector(model, VOCAB).frame_scores(short).scores, direct, atol=1e-6)


def test_decoding_round_trips_with_label_encoder():
    rng = np.random.default_rng(1)
    binary = (rng.random((len(VOCAB), 250)) > 0.7).astype(np.float32)
    scores = FrameScores("x.wav", binary, 10.0, 0.04, VOCAB.names)
    events = scores_to_events(scores, threshold=0.5, median_filter=1)
    np.testing.assert_array_equal(encode_events(events, VOCAB), binary)


def test_output_formats_parse(tmp_path, model, audio_files):
    result = detect_files(Detector(model, VOCAB), audio_files, threshold=0.0, progress=False)
    events = [e for evs in result.events.values() for e in evs]
    tsv = write_events(events, tmp_path / "out.tsv", "tsv").read_text().splitlines()
    assert tsv[0] == "filename\tonset\toffset\tevent_label" and len(tsv) == len(events) + 1
    data = json.loads(write_events(events, tmp_path / "out.json", "json").read_text())
    assert {"filename", "onset", "offset", "event_label"} <= set(data[0])
    one = result.events["short.flac"]
    for line in format_events(one, "audacity").splitlines():
        onset, offset, label = line.split("\t")
        assert 0 <= float(onset) < float(offset) <= 3.0 and label in VOCAB
    assert not list(tmp_path.glob(".*tmp*"))


def test_load_detector_model_recovers_name_and_classes(checkpoint, model):
    loaded, vocab = load_detector_model(None, checkpoint)
    assert vocab == VOCAB
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_failing_file_is_reported_and_others_go_on(tmp_path, model, audio_files):
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    result = detect_files(Detector(model, VOCAB), [bad, audio_files[1], empty], progress=False)
    assert set(result.failures) == {"broken.wav", "empty.wav"}
    assert "broken.wav" in result.failures["broken.wav"]
    assert "short.flac" in result.events


def test_bad_hop_is_rejected(model):
    with pytest.raises(SedlibError, match="multiple"):
        Detector(model, VOCAB, hop_seconds=0.05)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "sedlib", "detect", *map(str, args)],
                          capture_output=True, text=True)


def test_cli_writes_outputs_and_exit_status(tmp_path, checkpoint, audio_files):
    out = tmp_path / "events.tsv"
    proc = _cli(*audio_files, "--checkpoint", checkpoint, "--out", out, "--threshold", "0.4",
                "--scores-dir", tmp_path / "scores", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("filename\tonset")
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == ["long_stereo.tsv", "short.tsv"]
    proc = _cli(audio_files[1], tmp_path / "missing.wav", "--checkpoint", checkpoint,
                "--format", "audacity", "--out", tmp_path / "labels", "--no-progress")
    assert proc.returncode == 1 and "missing.wav" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "labels" / "short.txt").is_file()


def test_cli_bad_threshold_and_unknown_classes(tmp_path, audio_files):
    proc = _cli(audio_files[1], "--model", "fmntiny", "--checkpoint", tmp_path / "nope.pt")
    assert proc.returncode == 2 and "nope.pt" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli(audio_files[1], "--threshold", "2")
    assert proc.returncode == 2 and "--threshold" in proc.stderr

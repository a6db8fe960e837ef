"""sedlib stream: live sources, the streaming resampler and median filter, stream == detect."""

from __future__ import annotations

import io
import json
import threading
import time
import wave

import numpy as np
import pytest
import soundfile as sf

from sedlib import cli
from sedlib.audio.io import resample
from sedlib.audio.live import StreamResampler, growing_wav_source, pcm_source
from sedlib.detect.detector import Detector, load_detector_model
from sedlib.detect.stream import StreamDetector, _Smoother, stream_events
from sedlib.errors import AudioError
from sedlib.evaluate.postprocess import median_filter

SHIPPED_BIGRU = "data/checkpoints/context/fmn04+bigru-104_teacher.safetensors"


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """33 s of context-world soundscapes (3 clips and a bit), 16 kHz mono int16 samples."""
    from sedlib.data.synth.soundscape import SynthConfig, write_desed

    root = tmp_path_factory.mktemp("stream")
    write_desed(root / "data", 3, SynthConfig(synth_seed=3, synth_world="context"), split="eval",
                progress=False)
    clips = [sf.read(p, dtype="int16")[0] for p in sorted((root / "data" / "audio").glob("*.wav"))]
    x = np.concatenate(clips + [clips[0][:37_000]])
    path = root / "long.wav"
    sf.write(path, x, 16_000, subtype="PCM_16")
    return path, x


@pytest.fixture(scope="module")
def teacher():
    from sedlib.config import PROJECT_ROOT

    return load_detector_model(None, str(PROJECT_ROOT / SHIPPED_BIGRU))


def _closed(records):
    return sorted((r["onset"], r["offset"], r["event_label"]) for r in records if r["state"] == "closed")


def _detected(detector, path):
    events, _ = detector.detect_file(path, 0.3, 9)
    return sorted((e.onset, e.offset, e.label) for e in events)


@pytest.mark.parametrize("hop", [10.0, 2.0, 0.44])
def test_stream_of_a_file_equals_detect_with_the_same_hop(recording, teacher, tmp_path, hop):
    """A 22.05 kHz stereo file (so the stream resamples and downmixes) read as a growing WAV:
    the closed events equal detect_file's; every closed event was opened first, at its onset."""
    path, x = recording
    stereo = tmp_path / "long22.wav"
    mono = resample(x.astype(np.float32) / 32768, 16_000, 22_050)
    sf.write(stereo, np.stack([mono, 0.5 * mono], 1), 22_050, subtype="PCM_24")
    detector = Detector(*teacher, hop_seconds=hop, batch_size=4)
    want = _detected(detector, stereo)
    records = list(stream_events(growing_wav_source(stereo, idle_seconds=0), detector, threshold=0.3))
    assert len(want) >= 5 and _closed(records) == want
    opened = [(r["onset"], r["event_label"]) for r in records if r["state"] == "open"]
    assert sorted(opened) == sorted((on, label) for on, _, label in want)
    for i, r in enumerate(records):  # an event closes after it opened
        if r["state"] == "closed":
            assert {"event_label": r["event_label"], "onset": r["onset"], "offset": None,
                    "state": "open"} in records[:i]


def test_sedlib_stream_on_stdin_equals_sedlib_detect(recording, monkeypatch, capsys):
    path, x = recording
    from sedlib.config import PROJECT_ROOT

    ckpt = str(PROJECT_ROOT / SHIPPED_BIGRU)
    assert cli.main(["detect", "--checkpoint", ckpt, str(path), "--hop", "2", "--threshold", "0.3",
                     "--format", "json", "--no-progress"]) == 0
    want = sorted((e["onset"], e["offset"], e["event_label"]) for e in json.loads(capsys.readouterr().out))

    class Stdin:
        buffer = io.BufferedReader(io.BytesIO(x.astype("<i2").tobytes()), buffer_size=3001)

        @staticmethod
        def isatty():
            return False

    monkeypatch.setattr("sys.stdin", Stdin)
    assert cli.main(["stream", "--checkpoint", ckpt, "--hop", "2", "--threshold", "0.3"]) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert _closed(records) == want and len(want) >= 5
    assert "32.3 s of audio" in err and "latency per window p50" in err and "real-time factor" in err


def test_a_wav_that_is_still_being_written_is_read_as_it_grows(recording, teacher, tmp_path):
    """A writer appends 1 s blocks every 50 ms; the stream delivers the first events before
    the writer has finished, and all its closed events equal detect on the finished file."""
    path, x = recording
    growing = tmp_path / "growing.wav"
    started = threading.Event()
    finished_at = []

    def write():
        with wave.open(str(growing), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16_000)
            started.set()
            for i in range(0, len(x), 16_000):
                w.writeframes(x[i:i + 16_000].astype("<i2").tobytes())
                time.sleep(0.05)
        finished_at.append(time.monotonic())

    writer = threading.Thread(target=write)
    writer.start()
    started.wait()
    detector = Detector(*teacher, hop_seconds=2.0, batch_size=1)
    records, seen_at = [], []
    for r in stream_events(growing_wav_source(growing, idle_seconds=1.0), detector, threshold=0.3):
        records.append(r)
        seen_at.append(time.monotonic())
    writer.join()
    assert _closed(records) == _detected(detector, growing)
    assert seen_at[0] < finished_at[0]  # events came out while the file was still growing


def test_the_stream_keeps_constant_memory(monkeypatch):
    """Pushing 5 min of audio in uneven chunks: the ring, score and filter buffers stay bounded
    by one window plus one chunk."""
    import torch

    from sedlib.data.labels import Vocabulary
    from sedlib.registry import create_model

    torch.manual_seed(0)
    detector = Detector(create_model("fmntiny", num_classes=3), Vocabulary(["a", "b", "c"], "t"),
                        window_seconds=2.0, hop_seconds=0.4, batch_size=2)
    stream = StreamDetector(detector, threshold=0.5)
    rng = np.random.default_rng(0)
    sizes = []
    for _ in range(300):
        stream.push(0.1 * rng.standard_normal(int(rng.integers(4_000, 28_000))).astype(np.float32))
        sizes.append((stream._ring.size, stream._acc.shape[1], stream._smoother._raw.shape[1]))
    stream.finish()
    ring, acc, raw = np.max(sizes, axis=0)
    assert stream.seconds > 290
    assert ring <= 32_000 + 28_000 and acc <= 50 and raw <= 10 + 4


def test_streaming_median_filter_and_resampler_equal_the_whole_signal():
    rng = np.random.default_rng(1)
    frames = rng.random((4, 537)).astype(np.float32)
    for size in (1, 3, 9):
        smoother, parts, i = _Smoother(4, size), [], 0
        while i < frames.shape[1]:
            n = int(rng.integers(1, 40))
            parts.append(smoother.push(frames[:, i:i + n], last=i + n >= frames.shape[1])[1])
            i += n
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), median_filter(frames, size))
    x = (0.1 * rng.standard_normal(3 * 44_100)).astype(np.float32)
    for rate in (44_100, 22_050, 8_000):
        resampler, parts, i = StreamResampler(rate, 16_000), [], 0
        while i < 3 * rate:
            n = int(rng.integers(1, 6_000))
            parts.append(resampler.push(x[i:min(i + n, 3 * rate)]))
            i += n
        parts.append(resampler.finish())
        # float32 rounding of the convolution differs with the block length (as in iter_windows)
        np.testing.assert_allclose(np.concatenate(parts), resample(x[:3 * rate], rate, 16_000), rtol=0, atol=1e-6)


def _stdin(data: bytes, tty: bool = False):
    class Stdin:
        buffer = io.BufferedReader(io.BytesIO(data))

        @staticmethod
        def isatty():
            return tty

    return Stdin


@pytest.mark.parametrize("data, tty, says", [
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", False, "stdin: this is a WAV file, not raw PCM; pass it with --input FILE"),
    (b"fLaC\x00\x00\x00\x22" + bytes(100), False, "stdin: this is a FLAC file, not raw PCM"),
    (bytes(2001), False, "the stream ended in the middle of a sample (1 stray byte)"),
    (b"", False, "stdin: no audio received"),
    (b"", True, "stdin is a terminal, not audio"),
])
def test_bad_stdin_is_one_line(data, tty, says, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", _stdin(data, tty))
    assert cli.main(["stream", "--checkpoint", SHIPPED_BIGRU]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_files_and_a_missing_microphone_library_are_one_line(tmp_path, capsys, monkeypatch):
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    adpcm = tmp_path / "adpcm.wav"
    sf.write(adpcm, np.zeros(1600, np.float32), 16_000, subtype="IMA_ADPCM")
    cases = [(text, "cannot read audio"), (tmp_path / "missing.wav", "no such audio file"),
             (adpcm, "a growing file must be PCM")]
    for path, says in cases:
        assert cli.main(["stream", "--checkpoint", SHIPPED_BIGRU, "--input", str(path), "--idle", "0"]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setitem(__import__("sys").modules, "sounddevice", None)  # import fails
    assert cli.main(["stream", "--checkpoint", SHIPPED_BIGRU, "--input", "mic"]) == 2
    assert "needs the optional package sounddevice" in capsys.readouterr().err


def test_pcm_source_decodes_little_endian_int16_like_soundfile(tmp_path):
    x = np.array([0, 1, -1, 32767, -32768, 1234], dtype="<i2")
    path = tmp_path / "x.wav"
    sf.write(path, x, 16_000, subtype="PCM_16")
    chunks = list(pcm_source(io.BufferedReader(io.BytesIO(x.tobytes())), chunk_bytes=4))
    np.testing.assert_array_equal(np.concatenate(chunks), sf.read(path, dtype="float32")[0])
    with pytest.raises(AudioError, match="--rate must be positive"):
        pcm_source(io.BytesIO(b""), rate=0)

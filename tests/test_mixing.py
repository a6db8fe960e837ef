"""sedlib mix: isolated sounds over backgrounds -> soundscapes with exact strong labels."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sedlib import cli
from sedlib.data.formats import read_strong_tsv
from sedlib.data.mixing import MixConfig, mix_soundscapes, trim_silence
from sedlib.data.spec import open_source
from sedlib.errors import FormatError

SR = 16_000


def _sound(path, freq, seconds=0.5, pad=0.3, sr=SR):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * freq * t)
    sf.write(path, np.concatenate([np.zeros(int(pad * sr)), tone, np.zeros(int(pad * sr))]).astype(np.float32), sr)


@pytest.fixture
def sounds(tmp_path):
    _sound(tmp_path / "fg" / "bell" / "a.wav", 1000)
    _sound(tmp_path / "fg" / "bell" / "b.wav", 1200, seconds=0.8)
    _sound(tmp_path / "fg" / "buzz" / "a.wav", 150, seconds=1.2)
    rng = np.random.default_rng(0)
    (tmp_path / "bg").mkdir()
    sf.write(tmp_path / "bg" / "room.wav", (0.01 * rng.standard_normal(4 * SR)).astype(np.float32), SR)
    return tmp_path


def test_labels_are_the_sounds_and_the_set_reads_back(sounds):
    out = sounds / "mix"
    cfg = MixConfig(clip_seconds=4.0, events=(1, 2), snr_db=(10.0, 10.0), seed=3)
    events = mix_soundscapes(sounds / "fg", out, 8, background=sounds / "bg", config=cfg, progress=False)
    assert read_strong_tsv(out / "strong.tsv") and (out / "classes.txt").read_text() == "bell\nbuzz\n"
    lengths = {"bell": (0.5, 0.8), "buzz": (1.2,)}
    for e in events:
        clip = sf.read(out / "audio" / e.filename)[0]
        inside = clip[int(e.onset * SR):int(e.offset * SR)]
        assert e.offset <= 4.0 and len(inside) > 0
        # a whole sound is its trimmed length (to one 10 ms frame); a cut one ends at the clip's end
        assert e.offset == 4.0 or min(abs(e.offset - e.onset - n) for n in lengths[e.label]) <= 0.011
        assert np.sqrt(np.mean(inside ** 2)) > 2 * 10 ** (-30 / 20)  # 10 dB over the -30 dBFS bed
    data = open_source(str(out), split="validation")
    assert list(data.vocab.names) == ["bell", "buzz"] and len(data) == 8
    with pytest.raises(FormatError, match="already holds a data set"):
        mix_soundscapes(sounds / "fg", out, 1, config=cfg, progress=False)


def test_clips_are_reproducible_and_independent_of_the_count(sounds):
    cfg = MixConfig(clip_seconds=3.0, seed=5)
    a = mix_soundscapes(sounds / "fg", sounds / "a", 3, config=cfg, progress=False)
    b = mix_soundscapes(sounds / "fg", sounds / "b", 5, config=cfg, progress=False)
    assert a == [e for e in b if e.filename in {x.filename for x in a}]
    for name in ("mix_000000.wav", "mix_000002.wav"):
        assert np.array_equal(sf.read(sounds / "a" / "audio" / name)[0], sf.read(sounds / "b" / "audio" / name)[0])
    c = mix_soundscapes(sounds / "fg", sounds / "c", 3, config=MixConfig(clip_seconds=3.0, seed=6), progress=False)
    assert c != a


def test_trim_silence_keeps_the_sound():
    x = np.concatenate([np.zeros(1600), np.ones(800), 1e-6 * np.ones(1600)])
    assert len(trim_silence(x, SR)) == 800
    assert len(trim_silence(np.zeros(100), SR)) == 100  # shorter than a frame: as it is
    assert len(trim_silence(np.zeros(1600), SR)) == 0  # silent: nothing (refused when mixing)


def test_sedlib_mix_and_its_errors(sounds, capsys, tmp_path):
    assert cli.main(["mix", "--foreground", str(sounds / "fg"), "--out", str(tmp_path / "m"), "--clips", "2",
                     "--clip-seconds", "2", "--no-progress"]) == 0
    assert "2 clips" in capsys.readouterr().out
    (sounds / "empty").mkdir()
    for args, says in ((["--foreground", str(sounds / "empty")], "no class folders with audio"),
                       (["--foreground", str(sounds / "fg"), "--events", "3", "1"], "events must be")):
        assert cli.main(["mix", *args, "--out", str(tmp_path / "x"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1

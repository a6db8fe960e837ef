"""Data sources (sedlib.data.sources / sedlib.data.audioset) on tiny data in the real layouts."""

from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

from sedlib.audio.io import fit_to_length, load_audio, resample
from sedlib.config import AudioConfig
from sedlib.data.audioset import AudioSetHDF5Source, weak_index_names
from sedlib.data.formats import read_strong_tsv
from sedlib.data.labels import (
    Event,
    audioset_strong_classes,
    audioset_weak_classes,
    desed_classes,
    encode_events,
)
from sedlib.data.loading import collate, paired_loader, set_epoch
from sedlib.data.sources import SynthSource
from sedlib.data.spec import SPEC_FORMS, DataSpecError, open_source, parse_spec
from sedlib.data.synth.soundscape import (
    SynthConfig,
    synth_events,
    synth_vocabulary,
    synthesize_clip,
    write_desed,
)
from sedlib.errors import AudioError, FormatError, SedlibError, UnknownClassError
from sedlib.train.augment import WavMixDataset

AUDIO = AudioConfig()
N = AUDIO.clip_samples  # 160,000
K_T = (AUDIO.label_frames,)  # (250,)
SYNTH = SynthConfig()


def _tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write_tsv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _check_item(item: dict, k: int, strong: bool = True) -> None:
    assert item["waveform"].dtype == torch.float32 and item["waveform"].shape == (N,)
    if strong:
        assert item["targets"].dtype == torch.float32 and item["targets"].shape == (k, *K_T)
        assert "weak_targets" not in item
    else:
        assert item["weak_targets"].dtype == torch.float32 and item["weak_targets"].shape == (k,)
        assert "targets" not in item
    assert isinstance(item["filename"], str) and isinstance(item["index"], int)


@pytest.fixture(scope="module")
def desed_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_desed")
    write_desed(out, 3, SYNTH, split="train", progress=False)
    return out


@pytest.fixture()
def desed_copy(desed_dir, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(desed_dir, tmp_path / "copy"))


# --- synth ---------------------------------------------------------------------------------------

def test_synth_source_attributes_and_items():
    src = open_source("synth:4", split="validation")
    assert isinstance(src, SynthSource) and len(src) == 4 and src.has_strong
    assert src.vocab == synth_vocabulary() and src.filenames[0] == "synth_validation_000000.wav"
    assert src.durations == {fn: 10.0 for fn in src.filenames}
    assert src.ground_truth[src.filenames[2]] == synth_events(SYNTH, "validation", 2)
    item = src[2]
    _check_item(item, len(src.vocab))
    wave, events = synthesize_clip(SYNTH, "validation", 2)
    assert torch.equal(item["waveform"], torch.from_numpy(wave)) and item["index"] == 2
    assert np.array_equal(item["targets"].numpy(), encode_events(events, src.vocab))
    again = open_source("synth:4", split="validation")[2]
    assert torch.equal(again["waveform"], item["waveform"])


def test_synth_defaults_length_and_seed():
    assert [len(open_source("synth", split=s)) for s in ("train", "validation", "eval")] == \
        [2000, 250, 250]
    assert len(open_source("synth", length=7)) == len(open_source("synth:7", length=7)) == 7
    with pytest.raises(DataSpecError, match="length=6"):
        open_source("synth:7", length=6)
    seeded = open_source("synth:2:5")
    assert seeded.ground_truth["synth_train_000001.wav"] == synth_events(SynthConfig(5), "train", 1)
    with pytest.raises(IndexError):
        seeded[2]
    with pytest.raises(IndexError):
        seeded[-1]  # no wrapping around


# --- DESED layout --------------------------------------------------------------------------------

def test_folder_source_written_by_synth(desed_dir):
    src = open_source(str(desed_dir), split="eval")
    assert open_source(f"folder:{desed_dir}", split="eval").filenames == src.filenames
    assert len(src) == 3 and src.vocab == synth_vocabulary() and src.has_strong
    assert src.durations == {fn: 10.0 for fn in src.filenames}
    truth = read_strong_tsv(desed_dir / "strong.tsv")
    assert src.ground_truth == {fn: truth[fn] for fn in src.filenames}
    for i, fn in enumerate(src.filenames):
        item = src[i]
        _check_item(item, len(src.vocab))
        wave, events = synthesize_clip(SYNTH, "train", int(fn[-10:-4]))
        assert item["filename"] == fn
        assert np.abs(item["waveform"].numpy() - wave).max() < 2 / 32767  # 16-bit PCM
        assert np.array_equal(item["targets"].numpy(), encode_events(events, src.vocab))


def test_desed_spec_real_layout(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    names = ["Y00pbt6aJV8Y_350.000_360.000.wav", "Y01gtdbk3Zp0_30.000_40.000.wav"]
    for name in names:
        sf.write(audio / name, _tone(10.0, 44_100), 44_100)
    tsv = _write_tsv(tmp_path / "strong.tsv", "filename\tonset\toffset\tevent_label",
                     [f"{names[0]}\t0.0\t9.971\tVacuum_cleaner", f"{names[0]}\t1.0\t2.0\tDog",
                      f"{names[1]}\t\t\t"])
    dur = _write_tsv(tmp_path / "durations.tsv", "filename\tduration",
                     [f"{names[0]}\t10.0", f"{names[1]}\t9.5"])
    src = open_source(f"desed:{tsv}:{audio}:{dur}", split="eval")
    assert src.vocab == desed_classes() and src.filenames == sorted(names)
    assert src.durations == {names[0]: 10.0, names[1]: 9.5}
    item = src[src.filenames.index(names[0])]
    _check_item(item, 10)
    assert item["targets"][desed_classes().index("Dog"), 25:50].all()
    assert item["targets"].sum(1)[desed_classes().index("Vacuum_cleaner")] == 250
    assert src[src.filenames.index(names[1])]["targets"].sum() == 0
    # 44.1 kHz resampled: the first 10 s of the file, as load_audio would give
    assert np.allclose(item["waveform"].numpy(), fit_to_length(load_audio(audio / names[0]), N),
                       atol=1e-6)
    # without a durations file they come from the headers
    assert open_source(f"desed:{tsv}:{audio}").durations == {names[0]: 10.0, names[1]: 10.0}


def test_weak_only_folder(desed_copy):
    (desed_copy / "strong.tsv").unlink()
    src = open_source(str(desed_copy))
    assert not src.has_strong and src.ground_truth is None and src.vocab == synth_vocabulary()
    item = src[0]
    _check_item(item, len(synth_vocabulary()), strong=False)
    labels = {e.label for e in synth_events(SYNTH, "train", int(src.filenames[0][-10:-4]))}
    assert item["weak_targets"].nonzero().ravel().tolist() == sorted(
        synth_vocabulary().index(c) for c in labels)


def test_unknown_class_names_file_and_line(tmp_path, desed_copy):
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "a.wav", _tone(1.0, 16_000), 16_000)
    tsv = _write_tsv(tmp_path / "strong.tsv", "filename\tonset\toffset\tevent_label",
                     ["a.wav\t0\t1\tDog", "a.wav\t0\t1\tUnicorn"])
    with pytest.raises(UnknownClassError, match=r"strong\.tsv:3: .*'Unicorn'"):
        open_source(f"desed:{tsv}:{audio}")
    text = (desed_copy / "strong.tsv").read_text().splitlines()
    text[2] = text[2].rsplit("\t", 1)[0] + "\tUnicorn"
    (desed_copy / "strong.tsv").write_text("\n".join(text) + "\n")
    with pytest.raises(UnknownClassError, match=r"strong\.tsv:3: .*'Unicorn'"):
        open_source(str(desed_copy))


# --- crop and pad --------------------------------------------------------------------------------

@pytest.fixture()
def long_and_short(tmp_path) -> Path:
    audio = tmp_path / "audio"
    audio.mkdir()
    ramp = (np.arange(12 * 16_000) / (12 * 16_000)).astype(np.float32)  # value reveals position
    sf.write(audio / "long.wav", ramp, 16_000, subtype="FLOAT")
    sf.write(audio / "short.wav", _tone(3.0, 32_000), 32_000, subtype="FLOAT")
    sf.write(audio / "long32.wav", _tone(11.0, 32_000), 32_000, subtype="FLOAT")
    _write_tsv(tmp_path / "strong.tsv", "filename\tonset\toffset\tevent_label",
               ["long.wav\t11.0\t11.5\tDog", "short.wav\t0.5\t1.0\tCat", "long32.wav\t\t\t"])
    return tmp_path


def test_eval_takes_first_10s_and_pads(long_and_short):
    src = open_source(f"desed:{long_and_short / 'strong.tsv'}:{long_and_short / 'audio'}",
                      split="eval")
    long = src[src.filenames.index("long.wav")]
    assert long["waveform"][0] == 0 and long["targets"].sum() == 0  # event lies after 10 s
    assert torch.equal(long["waveform"], src[src.filenames.index("long.wav")]["waveform"])
    short = src[src.filenames.index("short.wav")]
    ref = fit_to_length(load_audio(long_and_short / "audio" / "short.wav"), N)
    assert np.array_equal(short["waveform"].numpy(), ref) and not short["waveform"][48_000:].any()
    assert short["targets"][desed_classes().index("Cat")].nonzero().ravel().tolist() == \
        list(range(12, 25))
    x = sf.read(long_and_short / "audio" / "long32.wav", dtype="float32")[0]
    long32 = src[src.filenames.index("long32.wav")]["waveform"].numpy()
    assert np.array_equal(long32, fit_to_length(resample(x[:320_000], 32_000, 16_000), N))


def test_train_crop_is_random_but_seeded_per_epoch_and_index(long_and_short):
    spec = f"desed:{long_and_short / 'strong.tsv'}:{long_and_short / 'audio'}"
    src = open_source(spec, split="train", seed=3)
    i = src.filenames.index("long.wav")
    dog = desed_classes().index("Dog")

    def crop(epoch: int, source=src) -> tuple[int, torch.Tensor]:
        set_epoch(source, epoch)
        item = source[i]
        offset = int(round(float(item["waveform"][0]) * 12 * 16_000))
        return offset, item["targets"][dog]

    offsets = []
    for epoch in range(4):
        offset, dog_frames = crop(epoch)
        assert 0 <= offset <= 2 * 16_000
        assert crop(epoch)[0] == offset  # same (seed, epoch, index): same crop
        assert crop(epoch, open_source(spec, split="train", seed=3))[0] == offset
        start = 11.0 - offset / 16_000  # the label moves with the crop
        expected = encode_events([Event("long.wav", start, start + 0.5, "Dog")],
                                 desed_classes())[dog]
        assert np.array_equal(dog_frames.numpy(), expected)
        offsets.append(offset)
    assert len(set(offsets)) == 4
    assert crop(0, open_source(spec, split="train", seed=4))[0] != offsets[0]


# --- AudioSet Strong -----------------------------------------------------------------------------

STRONG_HEADER = "segment_id\tstart_time_seconds\tend_time_seconds\tlabel"


@pytest.fixture()
def audioset_dir(tmp_path) -> Path:
    audio = tmp_path / "audio"
    (audio / "sub").mkdir(parents=True)
    sf.write(audio / "Yaaa-_b1.wav", _tone(10.0, 32_000), 32_000)
    sf.write(audio / "sub" / "Ybbb_c2.flac", _tone(8.0, 16_000), 16_000)
    _write_tsv(tmp_path / "strong.tsv", STRONG_HEADER, [
        "aaa-_b1_30000\t0.000\t2.500\t/m/09x0r",   # Speech
        "aaa-_b1_30000\t1.000\t3.000\t/m/028v0c",  # Silence: eval-only class, dropped
        "aaa-_b1_30000\t5.000\t10.000\t/m/04rlf",  # Music
        "bbb_c2_0\t0.000\t1.000\t/m/05tny_",       # Bark
        "ccc_1000\t0.000\t1.000\t/m/05tny_",       # no audio: left out
    ])
    return tmp_path


def test_audioset_strong_source(audioset_dir, caplog):
    spec = f"audioset-strong:{audioset_dir / 'strong.tsv'}:{audioset_dir / 'audio'}"
    with caplog.at_level(logging.INFO):
        src = open_source(spec, split="eval")
    assert "dropped 1 events of 1 classes" in caplog.text and "Silence" in caplog.text
    assert "1 of 3 labelled clips have no audio" in caplog.text and "Yccc.mp3" in caplog.text
    assert src.filenames == ["Yaaa-_b1.mp3", "Ybbb_c2.mp3"] and src.missing == ["Yccc.mp3"]
    assert src.vocab == audioset_strong_classes() and src.skip_unknown
    assert [e.label for e in src.ground_truth["Yaaa-_b1.mp3"]] == ["Speech", "Music"]
    assert src.durations == {"Yaaa-_b1.mp3": 10.0, "Ybbb_c2.mp3": 8.0}
    item = src[0]
    _check_item(item, 447)
    speech, music = (audioset_strong_classes().index(c) for c in ("Speech", "Music"))
    assert item["targets"][speech].sum() == 63 and item["targets"][music].sum() == 125
    assert item["targets"].sum() == 63 + 125
    _check_item(src[1], 447)
    csv = audioset_dir / "eval_durations.csv"
    csv.write_text("Yaaa-_b1,9.5\n")  # the reference's layout: no header, no extension
    assert open_source(f"{spec}:{csv}").durations == {"Yaaa-_b1.mp3": 9.5, "Ybbb_c2.mp3": 8.0}
    with pytest.raises(DataSpecError, match="is not a file .*order of the grammar"):
        open_source(f"audioset-strong:{audioset_dir / 'audio'}:{audioset_dir / 'strong.tsv'}")


def test_audioset_weak_tsv_source(audioset_dir):
    tsv = _write_tsv(audioset_dir / "weak.tsv", "filename\tevent_labels",
                     ["Yaaa-_b1.wav\tSpeech,Music", "Ybbb_c2.wav\t"])
    src = open_source(f"audioset-weak:{tsv}:{audioset_dir / 'audio'}")
    assert not src.has_strong and src.ground_truth is None and src.vocab == audioset_weak_classes()
    item = src[0]
    _check_item(item, 527, strong=False)
    assert item["weak_targets"].nonzero().ravel().tolist() == sorted(
        audioset_weak_classes().index(c) for c in ("Speech", "Music"))
    assert src[1]["weak_targets"].sum() == 0


# --- PaSST-style HDF5 ----------------------------------------------------------------------------

def _mp3_bytes(x: np.ndarray, sr: int = 32_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="MP3")
    return buf.getvalue()


@pytest.fixture()
def hdf5_file(tmp_path) -> Path:
    if "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write MP3")
    names = [b"Yaaa-_b1.mp3", b"Ybbb_c2.mp3", b"Ybroken.mp3"]
    mp3 = [_mp3_bytes(_tone(10.0, 32_000)), _mp3_bytes(_tone(4.0, 32_000, 880.0)), b"not an mp3"]
    bits = np.zeros((3, 527), dtype=np.uint8)
    bits[0, [0, 137]] = 1  # class_labels_indices.csv order: 0 = Speech, 137 = Music
    path = tmp_path / "eval_segments_mp3.hdf"
    with h5py.File(path, "w") as f:
        f.create_dataset("audio_name", data=np.array(names, dtype="S20"))
        ds = f.create_dataset("mp3", shape=(3,), dtype=h5py.vlen_dtype(np.dtype("uint8")))
        for i, data in enumerate(mp3):
            ds[i] = np.frombuffer(data, dtype=np.uint8)
        f.create_dataset("target", data=np.packbits(bits, axis=-1))
    return path


def test_hdf5_weak_source(hdf5_file, caplog):
    assert weak_index_names()[0] == "Speech" and weak_index_names()[137] == "Music"
    src = open_source(f"audioset-weak:{hdf5_file}", split="eval", on_error="skip")
    assert isinstance(src, AudioSetHDF5Source) and not src.has_strong and len(src) == 3
    item = src[0]
    _check_item(item, 527, strong=False)
    assert item["filename"] == "Yaaa-_b1.mp3"
    assert item["weak_targets"].nonzero().ravel().tolist() == sorted(
        audioset_weak_classes().index(c) for c in ("Speech", "Music"))
    assert np.abs(item["waveform"].numpy()).max() > 0.2
    short = src[1]["waveform"]
    assert short[: 4 * 16_000 - 100].abs().max() > 0.2 and not short[4 * 16_000 + 1000:].any()
    with caplog.at_level(logging.WARNING):
        assert src[2]["filename"] == "Yaaa-_b1.mp3" and src.skipped == 1  # wraps to the next
    assert "Ybroken.mp3" in caplog.text
    clone = pickle.loads(pickle.dumps(src))  # no h5py handle travels
    assert torch.equal(clone[0]["waveform"], item["waveform"])
    loader = torch.utils.data.DataLoader(open_source(f"audioset-hdf5:{hdf5_file}", length=2),
                                         batch_size=2, num_workers=1, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["weak_targets"].shape == (2, 527) and batch["filename"][1] == "Ybbb_c2.mp3"


def test_hdf5_strong_source(hdf5_file, audioset_dir):
    src = open_source(f"audioset-hdf5:{hdf5_file}:{audioset_dir / 'strong.tsv'}", split="eval")
    assert src.has_strong and src.filenames == ["Yaaa-_b1.mp3", "Ybbb_c2.mp3"]
    assert src.missing == ["Yccc.mp3"]
    durations = src.durations
    assert durations["Yaaa-_b1.mp3"] == pytest.approx(10.0, abs=0.05)
    assert durations["Ybbb_c2.mp3"] == pytest.approx(4.0, abs=0.05)
    item = src[1]
    _check_item(item, 447)
    assert item["targets"][audioset_strong_classes().index("Bark"), :25].all()
    with pytest.raises(AudioError, match="Ybroken.mp3"):
        open_source(f"audioset-hdf5:{hdf5_file}", split="eval")[2]


def test_hdf5_layout_and_mp3_support_errors(tmp_path, monkeypatch):
    path = tmp_path / "bad.hdf"
    with h5py.File(path, "w") as f:
        f.create_dataset("audio_name", data=np.array([b"Ya.mp3"], dtype="S20"))
    with pytest.raises(FormatError, match="no dataset 'mp3'"):
        open_source(f"audioset-weak:{path}")
    monkeypatch.setattr(sf, "available_formats", lambda: {"WAV": "WAV"})
    with pytest.raises(AudioError, match="cannot decode MP3"):
        open_source(f"audioset-weak:{path}")


# --- errors --------------------------------------------------------------------------------------

def test_corrupt_audio_raise_or_skip(desed_copy, caplog):
    src = open_source(str(desed_copy), split="eval")
    bad = src.filenames[1]
    (desed_copy / "audio" / bad).write_bytes(b"RIFF....garbage")
    with pytest.raises(AudioError, match=bad):
        src[1]
    skip = open_source(str(desed_copy), split="eval", on_error="skip")
    with caplog.at_level(logging.WARNING):
        first = skip[1]
        again = skip[1]
    assert first["filename"] == again["filename"] == skip.filenames[2] and first["index"] == 2
    assert skip.skipped == 1  # warned once, by name:
    assert len([r for r in caplog.records if bad in r.getMessage()]) == 1
    for fn in skip.filenames:
        (desed_copy / "audio" / fn).write_bytes(b"")
    with pytest.raises(AudioError, match="none of the 3 clips is readable"):
        open_source(str(desed_copy), on_error="skip")[0]


def test_missing_audio_raise_or_skip(desed_copy):
    gone = sorted((desed_copy / "audio").iterdir())[0]
    gone.unlink()
    with pytest.raises(AudioError, match=r"1 of 3 labelled clips have no audio file"):
        open_source(str(desed_copy))
    src = open_source(str(desed_copy), on_error="skip")
    assert len(src) == 2 and src.missing == [gone.name]


# --- spec grammar --------------------------------------------------------------------------------

def test_parse_spec_good_and_bad(tmp_path, desed_dir):
    assert parse_spec("synth") == ("synth", [])
    assert parse_spec("synth:10:3") == ("synth", ["10", "3"])
    assert parse_spec(str(desed_dir)) == ("folder", [str(desed_dir)])
    assert parse_spec("audioset-hdf5:a.hdf:b.tsv") == ("audioset-hdf5", ["a.hdf", "b.tsv"])
    bad = ["", "nope", str(tmp_path / "absent"), "synth:", "synth:1:2:3:4", "desed:only.tsv",
           "audioset-strong:a.tsv", "audioset-weak:a:b:c", "folder:"]
    for spec in bad:
        with pytest.raises(DataSpecError) as err:
            parse_spec(spec)
        assert all(form in str(err.value) for form in SPEC_FORMS)
        assert isinstance(err.value, ValueError) and isinstance(err.value, SedlibError)
    for spec, why in [("synth:x", "integer"), ("synth:0", ">= 1"), ("synth:2:-1", ">= 0"),
                      (f"folder:{tmp_path / 'absent'}", "not a directory"),
                      (f"desed:{tmp_path}:{tmp_path}", "not a file")]:
        with pytest.raises(DataSpecError, match=why):
            open_source(spec)
    with pytest.raises(ValueError, match="on_error"):
        open_source("synth:2", on_error="ignore")
    with pytest.raises(ValueError, match="split"):
        open_source(str(desed_dir), split="test")
    with pytest.raises(ValueError, match="length"):
        open_source(str(desed_dir), length=4)
    first_two = open_source(str(desed_dir), length=2).filenames
    assert first_two == open_source(str(desed_dir)).filenames[:2]


# --- batching ------------------------------------------------------------------------------------

def test_collate_and_set_epoch(desed_dir, audioset_dir):
    src = open_source(str(desed_dir))
    batch = collate([src[0], src[1]])
    assert batch["waveform"].shape == (2, N) and batch["index"].tolist() == [0, 1]
    tsv = _write_tsv(audioset_dir / "w.tsv", "filename\tevent_labels", ["Yaaa-_b1.wav\tSpeech"])
    weak = open_source(f"audioset-weak:{tsv}:{audioset_dir / 'audio'}")
    with pytest.raises(ValueError, match="cannot batch"):
        collate([src[0], weak[0]])
    wrapped = torch.utils.data.ConcatDataset([WavMixDataset(src), open_source("synth:1")])
    set_epoch(wrapped, 7)
    assert src.epoch == 7 and wrapped.datasets[0].epoch == 7 and wrapped.datasets[1].epoch == 7


def test_paired_loader_mixes_half_and_half(desed_dir, audioset_dir):
    strong = open_source("synth:6")
    tsv = _write_tsv(audioset_dir / "weak.tsv", "filename\tevent_labels",
                     ["Yaaa-_b1.wav\tSpeech", "Ybbb_c2.wav\tMusic"])
    weak = open_source(f"audioset-weak:{tsv}:{audioset_dir / 'audio'}")
    dl = torch.utils.data.DataLoader
    pairs = paired_loader(dl(strong, batch_size=2, collate_fn=collate),
                          dl(weak, batch_size=2, collate_fn=collate))
    assert len(pairs) == 1
    steps = list(pairs)
    assert len(steps) == 1
    step = steps[0]
    assert step["strong"]["targets"].shape == (2, len(strong.vocab), 250)
    assert step["weak"]["weak_targets"].shape == (2, 527)
    assert step["strong"]["waveform"].shape == step["weak"]["waveform"].shape == (2, N)
    assert len(list(pairs)) == 1  # a new epoch restarts both
    with pytest.raises(ValueError, match="equal batch sizes"):
        paired_loader(dl(strong, batch_size=2), dl(weak, batch_size=1))


def test_table2_weak_set_with_pseudo_labels_in_lockstep(tmp_path, audioset_dir):
    """Teacher-only clips carry teacher probabilities by filename; wavmix and set_epoch reach the
    sources through the wrappers."""
    from sedlib.train.pseudo_labels import PseudoLabelWriter, WithPseudoLabels

    tsv = _write_tsv(audioset_dir / "weak.tsv", "filename\tevent_labels",
                     ["Yaaa-_b1.wav\tSpeech", "Ybbb_c2.wav\t"])
    weak = open_source(f"audioset-weak:{tsv}:{audioset_dir / 'audio'}")
    logits = torch.linspace(-3, 3, 2 * 447 * 250).reshape(2, 447, 250)
    with PseudoLabelWriter(tmp_path / "weak_pl.h5", 447, 250) as writer:
        writer.write(weak.filenames, logits)
    weak_set = WavMixDataset(WithPseudoLabels(weak, tmp_path / "weak_pl.h5"), p=0.0)
    strong = open_source("synth:2")
    dl = torch.utils.data.DataLoader
    pairs = paired_loader(dl(strong, batch_size=2, collate_fn=collate),
                          dl(weak_set, batch_size=2, collate_fn=collate))
    set_epoch(weak_set, 3)
    assert weak.epoch == 3
    (step,) = list(pairs)
    assert step["weak"]["filename"] == weak.filenames
    expected = torch.sigmoid(logits.half().float())
    assert torch.allclose(step["weak"]["pseudo_targets"], expected)
    assert step["strong"]["targets"].shape == (2, len(synth_vocabulary()), 250)


def test_synth_clips_follow_the_audio_config_length():
    from sedlib.config import AudioConfig
    from sedlib.data.spec import open_source

    short = open_source("synth:2", split="eval", audio_config=AudioConfig(clip_seconds=4.0))
    item = short[0]
    assert item["waveform"].shape == (64000,) and item["targets"].shape[-1] == 100
    assert open_source("synth:2", split="eval")[0]["waveform"].shape == (160000,)

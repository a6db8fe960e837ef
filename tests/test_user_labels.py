"""Your own labels: Audacity label tracks beside the audio, and a folder per class."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sedlib.data.labels import Vocabulary
from sedlib.data.spec import DataSpecError, open_source
from sedlib.data.user_labels import read_audacity_labels
from sedlib.errors import FormatError, UnknownClassError

SR = 16_000


def _wav(path, seconds, sr=SR):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)


@pytest.fixture
def labelled(tmp_path):
    """Two recordings labelled as Audacity exports them (one label with a frequency range, a
    label text with spaces, CRLF line ends), one in a subfolder, one with an empty track."""
    root = tmp_path / "rec"
    _wav(root / "kitchen.wav", 12.0)
    (root / "kitchen.txt").write_bytes(b"1.250000\t2.500000\tdoor bell\r\n"
                                       b"\\\t300.000000\t4200.000000\r\n"
                                       b"6.000000\t9.040000\tkettle\r\n")
    _wav(root / "day2" / "hall.flac", 5.0)
    (root / "day2" / "hall.txt").write_text("0.000000\t0.400000\tdoor bell\n4.900000\t5.004000\tkettle\n")
    _wav(root / "quiet.wav", 3.0)
    (root / "quiet.txt").write_text("")
    return root


def test_an_audacity_folder_becomes_a_strong_source(labelled):
    data = open_source(f"audacity:{labelled}", split="validation")
    assert list(data.vocab.names) == ["door bell", "kettle"]
    truth = data.ground_truth
    assert sorted(truth) == ["day2/hall.flac", "kitchen.wav", "quiet.wav"]
    assert [(e.onset, e.offset, e.label) for e in truth["kitchen.wav"]] == [
        (1.25, 2.5, "door bell"), (6.0, 9.04, "kettle")]
    assert truth["day2/hall.flac"][-1].offset == 5.0  # 4 ms past the end: clipped to the audio
    assert truth["quiet.wav"] == []
    item = data[data.filenames.index("kitchen.wav")]
    targets = item["targets"].numpy()  # (K, T) at 40 ms, first 10 s
    assert targets.shape == (2, 250)
    assert targets[0, 31:63].all() and not targets[0, 63:].any() and targets[1, 150:226].all()


@pytest.mark.parametrize("text, says", [
    ("1.0 2.0 dog\n", ":1: expected 'start<TAB>end<TAB>label'"),
    ("1.0\t2.0\tdog\n3.0\tx\tdog\n", ":2: expected a number of seconds for end"),
    ("2.0\t1.0\tdog\n", ":1: label 'dog' ends (1 s) before it starts (2 s)"),
    ("1.5\t1.5\tdog\n", ":1: 'dog' is a point label"),
    ("1.0\t12.5\tdog\n", ":1: label 'dog' ends at 12.5 s, after the end of kitchen.wav (12.000 s)"),
    ("1.0\t2.0\t\n", ":1: expected a class label, got an empty field"),
    ("\\\t100\t200\n", ":1: expected a frequency line"),
    ("1.0\t2.0\tdog\n\\\t900\t200\n", ":2: frequency range 900-200 Hz ends before it starts"),
])
def test_malformed_label_tracks_are_refused_by_file_and_line(labelled, text, says):
    track = labelled / "kitchen.txt"
    track.write_text(text)
    with pytest.raises(FormatError) as err:
        open_source(f"audacity:{labelled}")
    assert f"{track}{says}" in str(err.value)


def test_missing_audio_missing_labels_and_unknown_classes_are_refused(labelled):
    (labelled / "ghost.txt").write_text("1\t2\tdog\n")
    with pytest.raises(FormatError, match=r"ghost.txt: a label track without audio"):
        open_source(f"audacity:{labelled}")
    (labelled / "ghost.txt").unlink()
    _wav(labelled / "new.wav", 1.0)
    with pytest.raises(FormatError, match=r"new.wav: no label track new.txt beside it"):
        open_source(f"audacity:{labelled}")
    (labelled / "new.wav").unlink()
    with pytest.raises(UnknownClassError, match="hall.txt:2: unknown class 'kettle'"):
        open_source(f"audacity:{labelled}", vocab=Vocabulary(["door bell"], "mine"))
    with pytest.raises(DataSpecError, match="is not a directory"):
        open_source(f"audacity:{labelled / 'kitchen.wav'}")


def test_read_audacity_labels_without_a_duration(tmp_path):
    track = tmp_path / "x.txt"
    track.write_text("3.5\t4\tb\n0.5\t1\ta\n")
    assert [(e.filename, e.onset, e.label) for e in read_audacity_labels(track, "x.wav")] == [
        ("x.wav", 0.5, "a"), ("x.wav", 3.5, "b")]


def test_class_folders_are_a_weak_source(tmp_path):
    for cls, n in (("bell", 2), ("phone", 1)):
        for i in range(n):
            _wav(tmp_path / "clips" / cls / f"{i}.wav", 2.0)
    data = open_source(f"classfolders:{tmp_path / 'clips'}")
    assert list(data.vocab.names) == ["bell", "phone"] and len(data) == 3
    item = data[data.filenames.index("phone/0.wav")]
    assert item["weak_targets"].tolist() == [0.0, 1.0]
    with pytest.raises(FormatError, match="no audio in class folders"):
        open_source(f"classfolders:{tmp_path / 'clips' / 'bell'}")


def test_a_plain_folder_is_read_in_the_layout_it_is_in(labelled, tmp_path):
    """--data DIR: label tracks beside the audio -> audacity:DIR; audio only in sub-folders ->
    classfolders:DIR; the same sources the explicit specs open."""
    plain = open_source(str(labelled), split="eval")
    explicit = open_source(f"audacity:{labelled}", split="eval")
    assert plain.name == explicit.name == f"audacity:{labelled}"
    assert plain.ground_truth == explicit.ground_truth
    root = tmp_path / "byclass"
    _wav(root / "dog" / "a.wav", 1.0)
    _wav(root / "cat" / "b.wav", 1.0)
    folders = open_source(str(root), split="eval")
    assert folders.name == f"classfolders:{root}" and list(folders.vocab.names) == ["cat", "dog"]


def test_a_folder_in_no_layout_names_the_specs_for_your_own_recordings(tmp_path):
    """Loose recordings without label tracks, or a DESED folder missing its strong.tsv: the
    DESED error, naming audacity:DIR and classfolders:DIR."""
    loose = tmp_path / "loose"
    _wav(loose / "a.wav", 1.0)
    desed = tmp_path / "desed"
    _wav(desed / "audio" / "a.wav", 1.0)
    for root in (loose, desed, tmp_path / "empty"):
        root.mkdir(exist_ok=True)
        with pytest.raises(FormatError, match=f"expected the DESED layout.*audacity:{root} with a label "
                                              f"track <stem>.txt beside each, or classfolders:{root}"):
            open_source(str(root), split="eval")

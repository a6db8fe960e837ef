"""Class vocabularies and the events <-> frames encoding (SPEC 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sedlib.data.labels import (
    DESED_CLASSES,
    Event,
    Vocabulary,
    audioset_eval_protocol_classes,
    audioset_strong_classes,
    audioset_strong_eval_classes,
    audioset_weak_classes,
    decode_frames,
    desed_classes,
    encode_events,
    merge_overlapping,
)
from sedlib.errors import UnknownClassError

# the shared originals beside the repo when present (checks the packaged copies), else the copies
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "audioset"
RESOURCES = Path(__file__).resolve().parents[1] / "sedlib" / "resources"
EVAL_ONLY = {
    "Silence", "Vibration", "Heart murmur", "Studio recording", "Throbbing",
    "Unmodified field recording", "Specific impact sounds", "Source-ambiguous sounds",
    "Outside, rural or natural",
}


def _lines(name: str) -> list[str]:
    path = SHARED / name if (SHARED / name).exists() else RESOURCES / name
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- vocabularies -------------------------------------------------------------------------------

def test_strong_447_matches_file_and_is_sorted():
    vocab = audioset_strong_classes()
    assert len(vocab) == 447
    assert list(vocab.names) == _lines("strong_train_classes_447.txt")
    assert list(vocab.names) == sorted(vocab.names)
    assert vocab.index(vocab.names[0]) == 0 and vocab.index(vocab.names[-1]) == 446


def test_strong_eval_416_and_407_intersection():
    train, evals = audioset_strong_classes(), audioset_strong_eval_classes()
    protocol = audioset_eval_protocol_classes()
    assert len(evals) == 416 and list(evals.names) == _lines("strong_eval_classes_416.txt")
    assert len(protocol) == 407
    assert set(protocol.names) == set(train.names) & set(evals.names)
    # the protocol keeps the output (447) order
    assert [train.index(n) for n in protocol.names] == sorted(train.index(n) for n in protocol.names)
    assert set(evals.names) - set(train.names) == EVAL_ONLY


def test_weak_527_matches_file_and_weak_csv():
    vocab = audioset_weak_classes()
    assert len(vocab) == 527 and list(vocab.names) == _lines("weak_classes_527.txt")
    rows = _lines("class_labels_indices.csv")
    assert rows[0] == "index,mid,display_name" and len(rows) == 528


def test_desed_10():
    vocab = desed_classes()
    assert len(vocab) == 10 and vocab.names == DESED_CLASSES
    assert list(vocab.names) == sorted(vocab.names)


def test_vocabulary_rejects_duplicates_and_subset_keeps_order():
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary(["a", "b", "a"])
    vocab = Vocabulary(["a", "b", "c", "d"])
    assert vocab.subset(["d", "b", "zz"]).names == ("b", "d")


def test_unknown_class_error_message():
    vocab = desed_classes()
    with pytest.raises(UnknownClassError) as info:
        vocab.index("dog")
    msg = str(info.value)
    assert "'dog'" in msg and "desed-10" in msg and "10 classes" in msg and "Dog" in msg
    assert not msg.startswith('"')  # not KeyError's quoted repr
    with pytest.raises(UnknownClassError, match="Sheep"):
        encode_events([Event("a.wav", 0.0, 1.0, "Sheep")], vocab)


# --- encoding -----------------------------------------------------------------------------------

def _enc(onset: float, offset: float, num_frames: int = 250) -> list[int]:
    """Active frame indices of one Dog event."""
    target = encode_events([Event("a.wav", onset, offset, "Dog")], desed_classes(), num_frames)
    assert target.shape == (10, num_frames) and target.dtype == np.float32
    return np.nonzero(target[desed_classes().index("Dog")])[0].tolist()


@pytest.mark.parametrize(
    "onset, offset, frames",
    [
        (0.0, 0.04, [0]),            # exactly one 40 ms frame
        (0.0, 0.041, [0, 1]),        # offset frame = ceil(1.025) = 2 -> frames 0, 1
        (0.039, 0.081, [0, 1, 2]),   # onset frame = floor(0.975) = 0, offset = ceil(2.025) = 3
        (0.04, 0.08, [1]),           # exact boundaries are not widened by float error
        (1.0, 1.2, [25, 26, 27, 28, 29]),
        (9.99, 10.0, [249]),
        (9.9, 12.0, [247, 248, 249]),  # clipped to the clip end
        (0.5, 0.5, [12]),            # zero-length inside frame 12 (floor 12.5, ceil 12.5)
        (0.48, 0.48, []),            # zero-length on a frame boundary covers nothing
    ],
)
def test_encode_floor_ceil_rule(onset, offset, frames):
    assert _enc(onset, offset) == frames


def test_encode_clips_to_num_frames_and_ignores_unknown():
    assert _enc(0.0, 10.0, num_frames=10) == list(range(10))
    vocab = desed_classes()
    events = [Event("a.wav", 0.0, 1.0, "Sheep"), Event("a.wav", 0.0, 0.08, "Cat")]
    target = encode_events(events, vocab, ignore_unknown=True)
    assert target.sum() == 2 and target[vocab.index("Cat"), :2].tolist() == [1.0, 1.0]


def test_same_class_overlaps_are_merged_other_classes_not():
    events = [
        Event("a.wav", 1.0, 2.0, "Dog"),
        Event("a.wav", 1.5, 3.0, "Dog"),
        Event("a.wav", 3.0, 3.5, "Dog"),   # touching: merged too
        Event("a.wav", 5.0, 6.0, "Dog"),
        Event("a.wav", 1.5, 2.5, "Cat"),
    ]
    merged = merge_overlapping(events)
    assert merged == [
        Event("a.wav", 1.0, 3.5, "Dog"),
        Event("a.wav", 1.5, 2.5, "Cat"),
        Event("a.wav", 5.0, 6.0, "Dog"),
    ]
    vocab = desed_classes()
    target = encode_events(events, vocab)
    np.testing.assert_array_equal(target, encode_events(merged, vocab))
    assert decode_frames(target, vocab, "a.wav") == [  # widened to whole 40 ms frames
        Event("a.wav", 1.0, 3.52, "Dog"),
        Event("a.wav", 1.48, 2.52, "Cat"),
        Event("a.wav", 5.0, 6.0, "Dog"),
    ]


def test_merge_keeps_files_apart():
    events = [Event("a.wav", 0.0, 2.0, "Dog"), Event("b.wav", 1.0, 3.0, "Dog")]
    assert merge_overlapping(events) == events


# --- decoding -----------------------------------------------------------------------------------

def test_encode_decode_round_trip_random_frames():
    rng = np.random.default_rng(0)
    vocab = desed_classes()
    for density in (0.05, 0.3, 0.7, 0.95):
        frames = (rng.random((10, 250)) < density).astype(np.float32)  # (K, T)
        events = decode_frames(frames, vocab, "x.wav")
        assert all(e.filename == "x.wav" and e.offset > e.onset for e in events)
        np.testing.assert_array_equal(encode_events(events, vocab), frames)


def test_decode_runs_and_frame_times():
    vocab = Vocabulary(["a", "b"])
    frames = np.zeros((2, 10))
    frames[0, 0:3] = 1
    frames[0, 5] = 1
    frames[1, 7:] = 1
    assert decode_frames(frames, vocab, "f") == [
        Event("f", 0.0, 0.12, "a"),
        Event("f", 0.2, 0.24, "a"),
        Event("f", 0.28, 0.4, "b"),
    ]
    assert decode_frames(np.zeros((2, 10)), vocab) == []


def test_decode_clips_to_duration():
    vocab = Vocabulary(["a"])
    frames = np.zeros((1, 250))
    frames[0, 240:] = 1   # 9.6 s .. 10.0 s
    frames[0, 100] = 1    # 4.0 s .. 4.04 s, entirely past a 3.99 s clip
    assert decode_frames(frames, vocab, duration=9.87) == [
        Event("", 4.0, 4.04, "a"), Event("", 9.6, 9.87, "a"),
    ]
    assert decode_frames(frames, vocab, duration=3.99) == []


def test_decode_rejects_wrong_shape():
    with pytest.raises(ValueError, match="K=10"):
        decode_frames(np.zeros((9, 250)), desed_classes())

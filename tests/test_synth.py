"""The embedded synthetic data set: determinism, disjoint splits, exact labels, DESED layout."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from sedlib.config import AudioConfig
from sedlib.data.labels import encode_events
from sedlib.data.synth.sounds import RECIPES
from sedlib.data.synth.soundscape import (
    SPLITS,
    SYNTH_CLASSES,
    WORLDS,
    SynthConfig,
    SynthDataset,
    synth_events,
    synth_filename,
    synth_vocabulary,
    synthesize_clip,
    synthesize_stems,
    write_desed,
)

SR = 16_000
CONFIG = SynthConfig(synth_seed=7)
CONTEXT = SynthConfig(synth_seed=7, synth_world="context")
CONTEXT2 = SynthConfig(synth_seed=7, synth_world="context2")
PATTERN_CLASSES = ("alarm", "ringtone", "ticking")


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _clips_with_whole(label: str, count: int, config: SynthConfig = CONFIG) -> list[int]:
    """The first ``count`` clips with a ``label`` event that lies wholly inside the clip."""
    found = [i for i in range(200) if any(e.label == label and 0 < e.onset and e.offset < 10
                                          for e in synth_events(config, "train", i))]
    assert len(found) >= count, f"fewer than {count} of 200 clips contain a whole {label!r}"
    return found[:count]


def test_vocabulary_and_config_fields():
    assert len(SYNTH_CLASSES) == 11 and {"beep", "alarm", "siren", "engine"} <= set(SYNTH_CLASSES)
    assert synth_vocabulary().names == SYNTH_CLASSES
    names = {f.name for f in dataclasses.fields(SynthConfig)}
    assert not names & {f.name for f in dataclasses.fields(AudioConfig)}
    assert all(n.startswith("synth_") for n in names)
    assert synth_filename("eval", 12) == "synth_eval_000012.wav"


def test_same_key_same_clip_any_order():
    w1, e1 = synthesize_clip(CONFIG, "train", 3)
    synthesize_clip(CONFIG, "train", 4)  # other clips in between change nothing
    w2, e2 = synthesize_clip(CONFIG, "train", 3)
    assert w1.dtype == np.float32 and w1.shape == (10 * SR,)
    assert np.array_equal(w1, w2) and e1 == e2 and len(e1) >= 1
    assert np.abs(w1).max() <= 0.99 and np.isfinite(w1).all()
    assert synth_events(CONFIG, "train", 3) == e1  # labels without rendering agree
    w3, _ = synthesize_clip(dataclasses.replace(CONFIG, synth_seed=8), "train", 3)
    assert not np.array_equal(w1, w3)


def test_splits_are_disjoint():
    clips = {split: synthesize_clip(CONFIG, split, 0) for split in SPLITS}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not np.allclose(clips[a][0], clips[b][0])
    assert {e.filename for e in clips["validation"][1]} == {"synth_validation_000000.wav"}


@pytest.mark.parametrize("config", [CONFIG, CONTEXT, CONTEXT2], ids=["basic", "context", "context2"])
def test_stems_sum_to_mixture_and_labels_are_exact(config):
    """Each event's stem is zero outside its label and audible from the first to the last
    labelled sample; events other than the pattern classes (alarm, ringtone, ticking) have no
    silent gap longer than 120 ms."""
    for index in range(8):
        mixture, events = synthesize_clip(config, "train", index)
        background, stems, events2 = synthesize_stems(config, "train", index)
        assert events2 == events and len(stems) == len(events)
        assert np.allclose(background + sum(stems), mixture, atol=1e-6)
        for stem, ev in zip(stems, events):
            lo, hi = round(ev.onset * SR), round(ev.offset * SR)
            assert not stem[:lo].any() and not stem[hi:].any(), ev  # energy outside: exactly 0
            nonzero = np.flatnonzero(stem)
            assert ev.onset == 0 or nonzero[0] - lo <= 2, ev  # audible from the onset ...
            assert ev.offset == 10 or hi - 1 - nonzero[-1] <= 2, ev  # ... to the offset
            zero = np.concatenate([[0], (stem[lo:hi] == 0).astype(np.int8), [0]])
            runs = np.flatnonzero(np.diff(zero) == -1) - np.flatnonzero(np.diff(zero) == 1)
            if ev.label not in PATTERN_CLASSES and len(runs):
                assert runs.max() <= 0.12 * SR + 1, (ev, runs.max() / SR)
            if 0 < ev.onset and ev.offset < 10:  # SNR >= 3 dB re the nominal level (drift <= 3 dB)
                rms_inside = np.sqrt(np.mean(stem[lo:hi][stem[lo:hi] != 0] ** 2))
                assert rms_inside > 0.9 * np.sqrt(np.mean(background ** 2)), ev


def test_alarm_is_periodic_beep_pattern():
    """An alarm is >= 3 identical beeps at a fixed period; its label spans first to last beep."""
    for index in _clips_with_whole("alarm", 3):
        _, stems, events = synthesize_stems(CONFIG, "train", index)
        for stem, ev in zip(stems, events):
            if ev.label != "alarm" or ev.onset == 0 or ev.offset == 10:
                continue
            on = np.concatenate([[0], (stem != 0).astype(np.int8), [0]])
            starts, stops = np.flatnonzero(np.diff(on) == 1), np.flatnonzero(np.diff(on) == -1)
            assert starts[0] == round(ev.onset * SR) and stops[-1] == round(ev.offset * SR)
            periods, widths = np.diff(starts), stops - starts
            assert len(starts) >= 3 and periods.min() == periods.max(), periods
            assert widths.min() == widths.max() < periods[0]  # equal beeps, silent gaps
            a, b, w = starts[0], starts[1], widths[0]
            assert np.allclose(stem[a:a + w], stem[b:b + w])  # identical beeps


def _hits(stem):
    on = np.concatenate([[0], (stem != 0).astype(np.int8), [0]])
    return np.flatnonzero(np.diff(on) == 1), np.flatnonzero(np.diff(on) == -1)


def test_ringtone_rings_in_pairs_with_long_pauses():
    """A ringtone is >= 2 double rings of one tone (40-120 ms apart) with pauses of 1.2-2.5 s
    between them (10 s clips), all inside one label: the pauses are labelled."""
    for index in _clips_with_whole("ringtone", 3, CONTEXT):
        _, stems, events = synthesize_stems(CONTEXT, "train", index)
        for stem, ev in zip(stems, events):
            if ev.label != "ringtone" or ev.onset == 0 or ev.offset == 10:
                continue
            starts, stops = _hits(stem)
            assert starts[0] == round(ev.onset * SR) and stops[-1] == round(ev.offset * SR)
            assert len(starts) % 2 == 0 and len(starts) >= 4
            gaps = (starts[1:] - stops[:-1]) / SR
            assert np.all((0.039 <= gaps[0::2]) & (gaps[0::2] <= 0.121)), gaps  # within a ring
            assert np.all((1.199 <= gaps[1::2]) & (gaps[1::2] <= 2.501)), gaps  # the pauses
            w = stops[0] - starts[0]
            assert np.allclose(stem[starts[0]:starts[0] + w], stem[starts[2]:starts[2] + w])


def test_ticking_is_a_regular_single_knock():
    """Ticking is >= 3 hits at one exact period of 0.5-1.2 s, each as long as a knock's hit."""
    for index in _clips_with_whole("ticking", 3, CONTEXT):
        _, stems, events = synthesize_stems(CONTEXT, "train", index)
        for stem, ev in zip(stems, events):
            if ev.label != "ticking" or ev.onset == 0 or ev.offset == 10:
                continue
            starts, stops = _hits(stem)
            periods = np.diff(starts)
            assert len(starts) >= 3 and periods.min() == periods.max(), periods
            assert 0.5 * SR <= periods[0] <= 1.2 * SR
            assert (stops - starts).max() < 0.2 * SR  # one hit rings < 200 ms


@pytest.mark.parametrize("max_ms", [1800, 3600, 9000])
def test_every_recipe_fits_the_longest_event(max_ms):
    """draw(rng, max_ms) keeps every event within max_ms (0.9 x the clip) and its segments in
    order inside it (a knock's hits may ring into each other), down to the shortest clip (2 s)."""
    for label, recipe in RECIPES.items():
        rng = np.random.default_rng(7)
        for _ in range(50):
            p = recipe.draw(rng, max_ms)
            segments = p["segments"]
            assert 0 < p["length_ms"] <= max_ms and segments[-1][1] == p["length_ms"], label
            assert all(a < b and a < c for (a, b), (c, _) in zip(segments, segments[1:])), label


def test_every_class_appears_and_events_overlap():
    events = [e for i in range(200) for e in synth_events(CONFIG, "train", i)]
    counts = Counter(e.label for e in events)
    assert set(counts) == set(SYNTH_CLASSES), counts
    assert min(counts.values()) >= 20
    polyphonic = 0
    for i in range(200):
        targets = encode_events(synth_events(CONFIG, "train", i), synth_vocabulary())
        polyphonic += (targets.sum(0) >= 2).any()
    assert polyphonic >= 50
    for e in events:
        assert 0 <= e.onset < e.offset <= 10 and round(e.onset, 3) == e.onset


def test_dataset_items_and_indexing():
    ds = SynthDataset("validation", length=3, config=CONFIG, first_index=5)
    assert len(ds) == 3
    item = ds[1]
    waveform, events = synthesize_clip(CONFIG, "validation", 6)
    assert item["filename"] == "synth_validation_000006.wav" == ds.filename(1)
    assert item["waveform"].dtype == torch.float32
    assert torch.equal(item["waveform"], torch.from_numpy(waveform))
    assert item["targets"].shape == (len(SYNTH_CLASSES), 250) and item["targets"].dtype == torch.float32
    assert ds.events(1) == events
    assert torch.equal(item["targets"], torch.from_numpy(encode_events(events, synth_vocabulary())))
    for bad in (3, -1):
        with pytest.raises(IndexError, match="out of range"):
            ds[bad]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["waveform"].shape == (2, 10 * SR) and batch["targets"].shape == (2, 11, 250)
    with pytest.raises(ValueError, match="AudioConfig"):
        SynthDataset("train", 2, CONFIG, AudioConfig(clip_seconds=5.0))


def test_write_desed_is_byte_identical_and_readable(tmp_path):
    import soundfile as sf

    from sedlib.data.formats import read_durations_tsv, read_strong_tsv, read_weak_tsv

    events = write_desed(tmp_path / "a", 3, CONFIG, split="eval", progress=False)
    write_desed(tmp_path / "b", 3, CONFIG, split="eval", progress=False)
    digests = _digests(tmp_path / "a")
    assert digests == _digests(tmp_path / "b")
    names = [synth_filename("eval", i) for i in range(3)]
    assert sorted(digests) == sorted([f"audio/{n}" for n in names]
                                     + ["durations.tsv", "strong.tsv", "weak.tsv"])
    strong = read_strong_tsv(tmp_path / "a" / "strong.tsv", vocab=synth_vocabulary())
    assert [e for evs in strong.values() for e in evs] == events
    for i, name in enumerate(names):
        waveform, clip_events = synthesize_clip(CONFIG, "eval", i)
        assert strong[name] == clip_events
        audio, sr = sf.read(tmp_path / "a" / "audio" / name, dtype="float32")
        info = sf.info(tmp_path / "a" / "audio" / name)
        assert sr == SR and info.subtype == "PCM_16" and info.channels == 1
        assert np.abs(audio - waveform).max() <= 1.5 / 32768
    assert read_weak_tsv(tmp_path / "a" / "weak.tsv") == {
        n: sorted({e.label for e in strong[n]}) for n in names}
    assert read_durations_tsv(tmp_path / "a" / "durations.tsv") == {n: 10.0 for n in names}


def test_cli_writes_layout(tmp_path, capsys):
    from sedlib.cli import main

    out = tmp_path / "synth"
    assert main(["synth", str(out), "--clips", "2", "--seed", "3", "--split", "validation",
                 "--no-progress"]) == 0
    assert "wrote 2 validation clips" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "audio").iterdir()) == [
        "synth_validation_000000.wav", "synth_validation_000001.wav"]
    assert (out / "strong.tsv").read_text().startswith("filename\tonset\toffset\tevent_label\n")
    assert synth_events(SynthConfig(synth_seed=3), "validation", 1)[0].filename in (
        out / "strong.tsv").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--clips", "0"], "expected a positive integer, got 0"),
    (["--clips", "x"], "expected a positive integer, got 'x'"),
    (["--seed", "-1"], "expected an integer >= 0"),
    (["--split", "test"], "invalid choice"),
])
def test_cli_bad_arguments(tmp_path, capsys, argv, message):
    from sedlib.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["synth", str(tmp_path / "x"), *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bad_library_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_clips must be a positive integer"):
        write_desed(tmp_path, 0, CONFIG, progress=False)
    with pytest.raises(ValueError, match="unknown split 'test'"):
        synthesize_clip(CONFIG, "test", 0)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*32\)"):
        synth_events(CONFIG, "train", -1)
    with pytest.raises(ValueError, match="synth_min_events <= synth_max_events"):
        SynthConfig(synth_min_events=4, synth_max_events=2)
    with pytest.raises(ValueError, match="multiple of 1000"):
        SynthConfig(synth_sample_rate=22_050)


def test_the_basic_world_is_unchanged():
    """The basic world's clips are what they were before the context world existed (taken
    then, on 40 train + 40 eval 4 s clips): the labels exactly (digest) and the audio to 1e-7
    (three sums). Not a digest of the audio: numpy's SIMD math (AVX-512 vs AVX2 kernels of
    sin / exp, picked at run time by the CPU) differs in the last bits between machines; on an
    AVX2 machine the audio digest was 547b79c0...ba89e and it still is with AVX-512 disabled
    (NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL")."""
    events = hashlib.sha256()
    rms, moment, peak = 0.0, 0.0, 0.0
    for split in ("train", "eval"):
        for i in range(40):
            w, ev = synthesize_clip(SynthConfig(synth_seed=0, synth_clip_seconds=4.0), split, i)
            events.update(repr(ev).encode())
            w = w.astype(np.float64)
            rms += np.sqrt(np.mean(w ** 2))
            moment += abs(np.mean(w * np.linspace(-1.0, 1.0, len(w))))
            peak += np.abs(w).max()
    assert events.hexdigest()[:12] == "124f6bd703a9"
    assert (rms, moment, peak) == pytest.approx((6.647949522071764, 0.008349652660161643, 37.77583449706435),
                                                rel=1e-7)


def test_the_context_world_adds_the_pattern_classes():
    config = SynthConfig(synth_seed=7, synth_world="context")
    events = [e for i in range(120) for e in synth_events(config, "train", i)]
    counts = Counter(e.label for e in events)
    assert set(counts) == set(WORLDS["context"]) and min(counts.values()) >= 15, counts
    assert WORLDS["context"] == tuple(sorted(WORLDS["basic"] + ("ringtone", "ticking")))
    assert synth_vocabulary("context").name == "synth-13" and SYNTH_CLASSES == WORLDS["basic"]
    with pytest.raises(ValueError, match="synth_world"):
        SynthConfig(synth_world="big")


def test_the_context_world_is_unchanged():
    """context2 did not change the context world: its labels (digest, taken before context2
    existed) and audio level over 40 train + 40 eval 4 s clips."""
    events, rms = hashlib.sha256(), 0.0
    for split in ("train", "eval"):
        for i in range(40):
            w, ev = synthesize_clip(SynthConfig(synth_seed=0, synth_clip_seconds=4.0, synth_world="context"), split, i)
            events.update(repr(ev).encode())
            rms += np.sqrt(np.mean(w.astype(np.float64) ** 2))
    assert events.hexdigest()[:12] == "cb70d9cfa99f" and rms == pytest.approx(6.395773384371114, rel=1e-7)


def test_context2_keeps_every_pattern_decidable_within_the_clip():
    """In context2 every alarm, ringtone and ticking shows its identifying parts inside the clip
    (3 beeps, 3 rings, 2 ticks), also at 4 s where the context world cuts 15 % of alarms; the
    class mix is the context world's; the same key gives the same clip."""
    from sedlib.data.synth.patterns import IDENTIFYING_PARTS
    from sedlib.data.synth.soundscape import synth_event_parts

    counts = {}
    for world in ("context", "context2"):
        config = SynthConfig(synth_seed=3, synth_world=world, synth_clip_seconds=4.0)
        parts = [ep for i in range(300) for ep in synth_event_parts(config, "train", i)]
        cut = [e for e, p in parts if len(p) < IDENTIFYING_PARTS.get(e.label, 0)]
        counts[world] = (Counter(e.label for e, _ in parts), len(cut))
        events = [x for i in range(300) for x in synth_events(config, "train", i)]
        assert [e for e, _ in parts] == events
    assert counts["context"][1] > 20 and counts["context2"][1] == 0
    assert set(counts["context2"][0]) == set(WORLDS["context"]) and min(counts["context2"][0].values()) >= 50
    w1, e1 = synthesize_clip(CONTEXT2, "eval", 5)
    w2, e2 = synthesize_clip(CONTEXT2, "eval", 5)
    assert np.array_equal(w1, w2) and e1 == e2


def test_context2_clips_have_their_own_keys_and_exact_eval_labels():
    """A context2 source is named, cached and keyed apart from the context world's (same
    classes, other clips); annotation noise is refused outside the training split."""
    from sedlib.data.spec import DataSpecError, open_source

    a = open_source("synth:200:0:world=context", split="eval")
    b = open_source("synth:200:0:world=context2", split="eval")
    assert a.name != b.name and a.cache_identity() != b.cache_identity()
    assert list(a.vocab.names) == list(b.vocab.names) and a.vocab.name == b.vocab.name == "synth-13"
    # the same plans, except where a cut pattern was placed again: clips of a seed mostly agree
    differ = [k for k in a.ground_truth if a.ground_truth[k] != b.ground_truth[k]]
    assert 0 < len(differ) < 100
    with pytest.raises(DataSpecError, match="eval labels stay exact"):
        open_source("synth:8:0:world=context2,miss=0.1", split="eval")

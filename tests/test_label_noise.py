"""Annotation noise of the synthetic training labels (sedlib.data.synth.label_noise)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sedlib.config import AudioConfig
from sedlib.data.labels import encode_events
from sedlib.data.sources import SynthSource
from sedlib.data.synth.label_noise import CONFUSABLE, MIN_EVENT_MS, LabelNoise
from sedlib.data.synth.soundscape import SynthConfig

NOISE = LabelNoise(miss_rate=0.1, confusion_rate=0.2, boundary_jitter_ms=50.0)
CLIPS = 3000  # 10,278 events of 10 s clips


@pytest.fixture(scope="module")
def annotated():
    """(exact event, its annotation or None) for every event of 3000 training clips."""
    source = SynthSource("train", CLIPS)
    pairs = []
    for i in range(CLIPS):
        exact = source.synth.events(i)
        pairs += zip(exact, NOISE.annotate(exact, seed=0, index=i, clip_seconds=10.0))
    return pairs


def test_the_rates_on_10000_events_are_the_documented_ones(annotated):
    assert len(annotated) >= 10_000
    missed = sum(a is None for _, a in annotated) / len(annotated)
    assert abs(missed - NOISE.miss_rate) < 0.01
    kept = [(e, a) for e, a in annotated if a is not None]
    confusable = [(e, a) for e, a in kept if e.label in CONFUSABLE]
    assert all(a.label == e.label for e, a in kept if e.label not in CONFUSABLE)
    assert all(a.label in (e.label, CONFUSABLE[e.label]) for e, a in confusable)
    confused = sum(a.label != e.label for e, a in confusable) / len(confusable)
    assert abs(confused - NOISE.confusion_rate) < 0.01
    assert all(0 <= a.onset and a.offset <= 10.0 and round((a.offset - a.onset) * 1000) >= MIN_EVENT_MS
               for _, a in kept)
    shifts = [(a.onset - e.onset) * 1000 for e, a in kept if 0.5 < e.onset < 9.5]  # no clipping
    assert abs(np.std(shifts) / NOISE.boundary_jitter_ms - 1) < 0.025 and abs(np.mean(shifts)) < 2
    # the sorted annotation is the kept events
    source = SynthSource("train", 2)
    exact = source.synth.events(1)
    got = NOISE.apply(exact, seed=0, index=1, clip_seconds=10.0)
    want = [a for a in NOISE.annotate(exact, seed=0, index=1, clip_seconds=10.0) if a is not None]
    assert got == sorted(want, key=lambda e: (e.onset, e.offset, e.label))


def test_annotations_are_fixed_per_clip_and_eval_labels_stay_exact():
    audio = AudioConfig(clip_seconds=4.0)
    cfg = SynthConfig(synth_clip_seconds=4.0)
    noisy = SynthSource("train", 40, synth_config=cfg, audio_config=audio, label_noise=NOISE)
    exact = SynthSource("train", 40, synth_config=cfg, audio_config=audio)
    assert noisy.ground_truth != exact.ground_truth
    again = SynthSource("train", 40, synth_config=cfg, audio_config=audio, label_noise=NOISE)
    assert again.ground_truth == noisy.ground_truth  # same clip, same annotation
    item, clean = noisy[3], exact[3]
    assert torch.equal(item["waveform"], clean["waveform"])  # the audio is untouched
    want = encode_events(noisy.ground_truth[noisy.filenames[3]], noisy.vocab, audio.label_frames,
                         audio.frames_per_second)
    assert np.array_equal(item["targets"].numpy(), want)  # targets are the annotation
    assert noisy.cache_identity() != exact.cache_identity()
    for split in ("validation", "eval"):
        with pytest.raises(ValueError, match="stay exact"):
            SynthSource(split, 4, synth_config=cfg, audio_config=audio, label_noise=NOISE)
        ev = SynthSource(split, 4, synth_config=cfg, audio_config=audio)
        assert ev.ground_truth == {ev.filenames[i]: ev.synth.events(i) for i in range(4)}
    assert SynthSource("train", 4, label_noise=LabelNoise()).label_noise is None  # all zero: off
    with pytest.raises(ValueError, match="miss_rate"):
        LabelNoise(miss_rate=1.5)


def test_the_data_spec_turns_noise_on_for_training_only():
    from sedlib.data.spec import DataSpecError, open_source

    audio = AudioConfig(clip_seconds=4.0)
    src = open_source("synth:8:0:miss=0.1,confuse=0.2,jitter=50", split="train", audio_config=audio)
    assert src.label_noise == NOISE
    assert open_source("synth:8:0:jitter=20", audio_config=audio).label_noise == LabelNoise(
        boundary_jitter_ms=20.0)
    for bad, why in (("synth:8:0:miss=0.1", "stay exact"), ("synth:8:0:loud=1", "expected"),
                     ("synth:8:0:miss=x", "not a number"), ("synth:8:0:miss=2", "miss_rate"),
                     ("synth:8:0:miss=0.1,miss=0.2", "each once")):
        split = "eval" if why == "stay exact" else "train"
        with pytest.raises(DataSpecError, match=why):
            open_source(bad, split=split, audio_config=audio)


def test_the_data_spec_picks_the_world_in_any_split():
    from sedlib.data.spec import DataSpecError, open_source

    audio = AudioConfig(clip_seconds=4.0)
    src = open_source("synth:8:0:world=context,miss=0.1", split="train", audio_config=audio)
    assert src.synth.config.synth_world == "context" and len(src.vocab) == 13
    assert src.label_noise == LabelNoise(miss_rate=0.1) and src.name == "synth:8:0:world=context"
    ev = open_source("synth:8:0:world=context", split="eval", audio_config=audio)
    assert ev.label_noise is None and ev.vocab.name == "synth-13"
    assert open_source("synth:8:0:world=basic", split="eval", audio_config=audio).vocab.name == \
        "synth-11"
    for bad, why in (("synth:8:0:world=big", "expected one of basic, context"),
                     ("synth:8:0:world=basic,world=context", "each once")):
        with pytest.raises(DataSpecError, match=why):
            open_source(bad, split="eval", audio_config=audio)


def test_the_context2_world_confuses_alike_sounds_only():
    """context2 annotations confuse siren/whistle and knock/noise_burst at the set rate, never a
    pattern with its part (alarm, beep, ringtone and ticking keep their label or are missed)."""
    from sedlib.data.synth.label_noise import SOUND_CONFUSABLE

    cfg = SynthConfig(synth_world="context2", synth_clip_seconds=4.0)
    noise = LabelNoise(confusion_rate=0.2)
    noisy = SynthSource("train", 600, synth_config=cfg, audio_config=AudioConfig(clip_seconds=4.0), label_noise=noise)
    pairs = [(e, a) for i in range(600)
             for e, a in zip(noisy.synth.events(i), noise.annotate(noisy.synth.events(i), seed=0, index=i,
                                                                    clip_seconds=4.0, confusable=SOUND_CONFUSABLE))]
    assert all(a.label == e.label for e, a in pairs if e.label not in SOUND_CONFUSABLE)
    alike = [(e, a) for e, a in pairs if e.label in SOUND_CONFUSABLE]
    assert abs(sum(a.label != e.label for e, a in alike) / len(alike) - 0.2) < 0.04
    truth = {fn: [(e.onset, e.offset, e.label) for e in evs] for fn, evs in noisy.ground_truth.items()}
    assert truth == {noisy.filenames[i]: sorted((a.onset, a.offset, a.label) for _, a in pairs_i)
                     for i, pairs_i in enumerate([[p for p in zip(noisy.synth.events(i), noise.annotate(
                         noisy.synth.events(i), seed=0, index=i, clip_seconds=4.0, confusable=SOUND_CONFUSABLE))]
                         for i in range(600)])}

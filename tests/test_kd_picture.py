"""Notebook 04's picture of what a teacher adds (sedlib.study.kd_picture)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sedlib.config import AudioConfig
from sedlib.study.kd_picture import kd_example, kd_figure, label_errors

NOISY = "synth:16:0:world=context2,miss=0.3,confuse=0.3,jitter=50"
AUDIO = AudioConfig(clip_seconds=4.0)


class _Store:
    """A pseudo-label store stand-in: probability 0.25 everywhere."""

    def probs(self, filename):
        return torch.full((13, 100), 0.25)


def test_label_errors_rank_clips_by_wrong_frames():
    from sedlib.data.spec import without_label_noise

    errors = label_errors(NOISY, AUDIO, clips=16)
    assert len(errors) == 16 and errors[0][1] >= errors[-1][1] > -1
    assert errors[0][1] > 0  # 30 % missed / confused events: some clip has wrong frames
    assert without_label_noise(NOISY) == "synth:16:0:world=context2"
    with pytest.raises(ValueError, match="no annotation noise"):
        label_errors("synth:16:0:world=context2", AUDIO)


def test_the_example_and_its_blend():
    index, wrong = label_errors(NOISY, AUDIO, clips=16)[0]
    ex = kd_example(NOISY, _Store(), AUDIO, index)
    assert ex["truth"].shape == ex["label"].shape == ex["teacher"].shape == (13, 100)
    assert int((ex["truth"] != ex["label"]).sum()) == wrong
    assert len(ex["classes"]) == 13 and ex["filename"] == f"synth_train_{index:06d}.wav"
    fig = kd_figure(ex, kd_weight=0.9)
    blend = np.asarray(fig.data[3].z)
    assert np.allclose(blend, 0.1 * ex["label"] + 0.9 * 0.25)  # the target the KD loss pulls towards
    assert len(fig.data) == 4 and fig.layout.xaxis4.title.text == "time (s)"

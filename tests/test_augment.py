"""Augmentations (SPEC 5): exact formulas, reference rounding, determinism, no global RNG."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from sedlib.train.augment import (
    PSEUDO_KEY,
    MixupDraw,
    WavMixDataset,
    apply_mixup,
    draw_frame_shifts,
    draw_mixup,
    draw_wavmix,
    frame_shift,
    label_shifts,
    mixup,
    roll_time,
    wavmix,
)


def _batch(b=5, k=3, t=20, pooling=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(b, 1, 8, t * pooling, generator=g, dtype=dtype)
    targets = (torch.rand(b, k, t, generator=g, dtype=dtype) > 0.7).to(dtype)
    pseudo = torch.rand(b, k, t, generator=g, dtype=dtype)
    return mel, targets, pseudo


def _item(seed, n=400, k=3, t=10, pseudo=True):
    g = torch.Generator().manual_seed(seed)
    item = {"waveform": torch.randn(n, generator=g, dtype=torch.float64) + 0.3,
            "targets": (torch.rand(k, t, generator=g, dtype=torch.float64) > 0.5).double(),
            "filename": f"clip{seed}.wav"}
    if pseudo:
        item[PSEUDO_KEY] = torch.rand(k, t, generator=g, dtype=torch.float64)
    return item


# --- wavmix --------------------------------------------------------------------------------------

def test_wavmix_formula():
    a, b, lam = _item(1), _item(2), 0.7
    out = wavmix(a, b, lam)
    x1 = a["waveform"] - a["waveform"].mean()
    x2 = b["waveform"] - b["waveform"].mean()
    x = lam * x1 + (1 - lam) * x2
    torch.testing.assert_close(out["waveform"], x - x.mean(), rtol=0, atol=1e-12)
    assert abs(out["waveform"].mean().item()) < 1e-12
    # labels and pseudo labels: linear, not clamped, not max-combined
    torch.testing.assert_close(out["targets"], lam * a["targets"] + (1 - lam) * b["targets"])
    torch.testing.assert_close(out[PSEUDO_KEY], lam * a[PSEUDO_KEY] + (1 - lam) * b[PSEUDO_KEY])
    assert out["filename"] == a["filename"]
    assert a["waveform"].mean().item() > 0.1  # inputs untouched


def test_wavmix_lambda_one_is_mean_removed_item():
    a, b = _item(1), _item(2)
    out = wavmix(a, b, 1.0)
    torch.testing.assert_close(out["waveform"], a["waveform"] - a["waveform"].mean())
    assert torch.equal(out["targets"], a["targets"])


def test_wavmix_rejects_mismatch():
    with pytest.raises(ValueError, match="equal shape"):
        wavmix(_item(1, n=400), _item(2, n=300), 0.6)
    with pytest.raises(ValueError, match="only one"):
        wavmix(_item(1), _item(2, pseudo=False), 0.6)


def test_draw_wavmix_probability_and_lambda():
    rng = np.random.default_rng(0)
    draws = [draw_wavmix(rng, 10, p=0.5) for _ in range(2000)]
    mixed = [d for d in draws if d is not None]
    assert 0.45 < len(mixed) / len(draws) < 0.55
    lams = np.array([lam for _, lam in mixed])
    assert lams.min() >= 0.5 and lams.max() <= 1.0
    # lambda = max(l, 1 - l), l ~ Beta(2, 2): mean 0.5 + E|l - 0.5| = 0.5 + 3/16
    assert abs(lams.mean() - (0.5 + 3 / 16)) < 0.01
    assert {p for p, _ in mixed} == set(range(10))
    assert all(draw_wavmix(rng, 10, p=0.0) is None for _ in range(50))


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_wavmix_dataset_deterministic_per_epoch_and_index():
    base = _ListDataset([_item(i) for i in range(6)])
    ds = WavMixDataset(base, p=1.0, seed=3)
    first = [ds[i] for i in range(6)]
    again = WavMixDataset(base, p=1.0, seed=3)
    for i in reversed(range(6)):  # order and instance do not matter
        assert torch.equal(again[i]["waveform"], first[i]["waveform"])
    # every item is mixed with the partner and lambda its own generator draws
    for i in range(6):
        partner, lam = draw_wavmix(ds.item_rng(i), 6, 1.0, 2.0)
        expected = wavmix(base[i], base[partner], lam)
        assert torch.equal(first[i]["waveform"], expected["waveform"])
        assert torch.equal(first[i][PSEUDO_KEY], expected[PSEUDO_KEY])
    ds.set_epoch(1)
    assert any(not torch.equal(ds[i]["waveform"], first[i]["waveform"]) for i in range(6))
    assert WavMixDataset(base, p=0.0)[2] is base[2]


# --- frame shift ---------------------------------------------------------------------------------

def test_label_shift_rounding_is_half_to_even():
    shifts = np.array([0, 1, 2, 3, 6, 10, 14, -1, -2, -6, -10, -14, 125, -125])
    expected = [0, 0, 0, 1, 2, 2, 4, 0, 0, -2, -2, -4, 31, -31]
    assert label_shifts(shifts, 4).tolist() == expected


def test_frame_shift_draws_truncated_gaussian_of_sigma_125():
    rng = np.random.default_rng(0)
    shifts = draw_frame_shifts(rng, 20_000, 1000, 0.125)
    expected = np.trunc(np.random.default_rng(0).normal(0.0, 125, size=20_000)).astype(np.int64)
    assert np.array_equal(shifts, expected)
    assert 120 < shifts.std() < 130
    assert np.array_equal(draw_frame_shifts(rng, 4, 1000, 0.0), np.zeros(4, dtype=np.int64))


def test_roll_time_equals_torch_roll_per_sample():
    x = torch.arange(3 * 2 * 7, dtype=torch.float32).view(3, 2, 7)
    shifts = np.array([2, -3, 9])
    out = roll_time(x, shifts)
    for b, s in enumerate(shifts):
        assert torch.equal(out[b], torch.roll(x[b], int(s), dims=-1))


def test_frame_shift_matches_reference_loop():
    mel, targets, pseudo = _batch()
    rng = np.random.default_rng(5)
    out_mel, out_t, out_p = frame_shift(mel, targets, pseudo, rng=np.random.default_rng(5))
    shifts = draw_frame_shifts(rng, mel.shape[0], mel.shape[-1], 0.125)
    assert np.any(shifts != 0)
    for b, shift in enumerate(shifts):  # the reference's per-sample torch.roll
        lshift = round(-abs(int(shift)) / 4 if shift < 0 else int(shift) / 4)
        assert torch.equal(out_mel[b], torch.roll(mel[b], int(shift), dims=-1))
        assert torch.equal(out_t[b], torch.roll(targets[b], lshift, dims=-1))
        assert torch.equal(out_p[b], torch.roll(pseudo[b], lshift, dims=-1))
    _, _, none = frame_shift(mel, targets, None, rng=np.random.default_rng(5))
    assert none is None


# --- mixup ---------------------------------------------------------------------------------------

def test_apply_mixup_formula_and_clamp():
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.5, 0.0]], dtype=torch.float64)
    draw = MixupDraw(perm=np.array([2, 0, 1]), coeffs=np.array([0.25, 0.5, 1.0]))
    expected = torch.tensor([[0.375, 0.25], [0.5, 1.0], [0.5, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(apply_mixup(x, draw), expected, rtol=0, atol=0)
    assert apply_mixup(x * 3, draw, clamp=True).max() == 1.0


def test_mixup_is_per_batch_with_probability_p():
    mel, targets, pseudo = _batch()
    # p = 0: unchanged objects; p = 1: always mixed
    out = mixup(mel, targets, pseudo, rng=np.random.default_rng(0), p=0.0)
    assert out[0] is mel and out[1] is targets and out[2] is pseudo
    # one uniform per call decides for the whole batch (reference: mixup_p > random.random())
    for seed in range(30):
        rng, ref = np.random.default_rng(seed), np.random.default_rng(seed)
        out_mel, out_t, out_p = mixup(mel, targets, pseudo, rng=rng, p=0.3)
        if not 0.3 > ref.random():
            assert out_mel is mel
            continue
        draw = draw_mixup(ref, mel.shape[0], 0.2)
        assert torch.equal(out_mel, apply_mixup(mel, draw))
        assert torch.equal(out_t, apply_mixup(targets, draw).clamp(0, 1))
        assert torch.equal(out_p, apply_mixup(pseudo, draw))
        c = torch.as_tensor(draw.coeffs).view(-1, 1, 1)
        torch.testing.assert_close(out_p, c * pseudo + (1 - c) * pseudo[draw.perm])


def test_mixup_coefficients_beta_without_max():
    draw = draw_mixup(np.random.default_rng(0), 20_000, 0.2)
    assert draw.coeffs.min() < 0.01 and draw.coeffs.max() > 0.99  # not folded to >= 0.5
    assert abs(draw.coeffs.mean() - 0.5) < 0.02
    assert sorted(draw.perm.tolist()) == list(range(20_000))
    folded = draw_mixup(np.random.default_rng(0), 1000, 0.3, max_coef=True)
    assert folded.coeffs.min() >= 0.5


# --- determinism ---------------------------------------------------------------------------------

def _pipeline(rng):
    mel, targets, pseudo = _batch(dtype=torch.float32)
    mel, targets, pseudo = frame_shift(mel, targets, pseudo, rng=rng)
    return mixup(mel, targets, pseudo, rng=rng, p=1.0)


def test_explicit_generator_only_and_resumable():
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    py_state = random.getstate()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    a = _pipeline(np.random.default_rng(7))
    torch.manual_seed(2), np.random.seed(2), random.seed(2)
    b = _pipeline(np.random.default_rng(7))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    # global generators untouched by the augmentations
    torch.manual_seed(3)
    before = torch.get_rng_state()
    _pipeline(np.random.default_rng(0))
    assert torch.equal(before, torch.get_rng_state())
    # resume from a saved bit-generator state
    rng = np.random.default_rng(11)
    _pipeline(rng)
    saved = rng.bit_generator.state
    expected = _pipeline(rng)
    resumed = np.random.default_rng()
    resumed.bit_generator.state = saved
    for x, y in zip(expected, _pipeline(resumed)):
        assert torch.equal(x, y)
    torch.set_rng_state(torch_state), np.random.set_state(np_state), random.setstate(py_state)

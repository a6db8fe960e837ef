"""Training augmentations of the reference recipe (SPEC 5): wavmix, frame shift, mixup.

Order in a training step (reference ``training_step``): waveform batch (already wavmixed by
the data set) -> log-mel -> :func:`frame_shift` -> :func:`mixup` -> model.

Every random draw comes from an explicit ``numpy.random.Generator`` (never the global numpy,
``random`` or torch generators), so a run is reproducible and resumable: save
``rng.bit_generator.state`` (a JSON-able dict) with the checkpoint and assign it back on resume.
Draws are made on the CPU and moved to the tensors' device, so results do not depend on it.

Item and batch keys: ``waveform`` ``(N,)``, ``targets`` ``(K, T)`` hard strong labels,
``pseudo_targets`` ``(K, T)`` teacher probabilities (optional; see :mod:`sedlib.train.pseudo_labels`).
Batched tensors add a leading ``B``; the log-mel is ``(B, 1, F, T_mel)`` with ``T = T_mel / 4``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

WAVEFORM_KEY = "waveform"
TARGETS_KEY = "targets"
PSEUDO_KEY = "pseudo_targets"

WAVMIX_SALT = 0x57415658  # "WAVX": keeps wavmix streams apart from other SeedSequence users


# --- wavmix (dataset level) ----------------------------------------------------------------------

def draw_wavmix(rng: np.random.Generator, dataset_len: int, p: float = 0.5,
                alpha: float = 2.0) -> tuple[int, float] | None:
    """Decide whether one item is mixed: with probability ``p`` a partner index drawn uniformly
    from ``[0, dataset_len)`` (it may be the item itself, as in the reference) and
    lambda = max(l, 1 - l), l ~ Beta(alpha, alpha); otherwise None.

    Reference ``MixupDataset.__getitem__`` (``data_util/audioset_strong.py``): beta 2, rate 0.5.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"wavmix probability must be in [0, 1], got {p}")
    if dataset_len <= 0:
        raise ValueError(f"wavmix needs a non-empty data set, got length {dataset_len}")
    if rng.random() >= p:
        return None
    partner = int(rng.integers(dataset_len))
    lam = float(rng.beta(alpha, alpha))
    return partner, max(lam, 1.0 - lam)


def wavmix(item: dict[str, Any], partner: dict[str, Any], lam: float) -> dict[str, Any]:
    """Mix two data-set items (SPEC 5, "wavmix"); other keys (``filename``...) come from ``item``.

    x = lam * (x1 - mean x1) + (1 - lam) * (x2 - mean x2), then its mean is removed again;
    ``targets`` and ``pseudo_targets`` are mixed linearly with the same lam (no clamp, no max:
    the reference mixes labels linearly here, unlike the clamped batch mixup). Waveforms must
    have the same length.
    """
    x1, x2 = item[WAVEFORM_KEY], partner[WAVEFORM_KEY]
    if x1.shape != x2.shape:
        raise ValueError(f"wavmix needs waveforms of equal shape, got {tuple(x1.shape)} and "
                         f"{tuple(x2.shape)}")
    if (PSEUDO_KEY in item) != (PSEUDO_KEY in partner):
        raise ValueError(f"wavmix: {PSEUDO_KEY!r} present in only one of the two items")
    x1 = x1 - x1.mean()
    x2 = x2 - x2.mean()
    x = x1 * lam + x2 * (1.0 - lam)
    out = dict(item)
    out[WAVEFORM_KEY] = x - x.mean()
    for key in (TARGETS_KEY, PSEUDO_KEY):
        if key in item:
            out[key] = item[key] * lam + partner[key] * (1.0 - lam)
    return out


class WavMixDataset(torch.utils.data.Dataset):
    """Wraps a data set of dict items and wavmixes each item with probability ``p``.

    The draws for item ``i`` come from a generator seeded by ``(seed, epoch, i)``: the same
    index in the same epoch is mixed with the same partner and lambda in any worker, after a
    resume, on any machine. Call :meth:`set_epoch` before each epoch (and recreate the
    DataLoader's workers, i.e. ``persistent_workers=False``, so they see it). A sampler that
    repeats an index within an epoch repeats its mix too (the reference samples without
    replacement).
    """

    def __init__(self, dataset: torch.utils.data.Dataset, p: float = 0.5, alpha: float = 2.0,
                 seed: int = 0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"wavmix probability must be in [0, 1], got {p}")
        if alpha <= 0:
            raise ValueError(f"wavmix Beta parameter must be > 0, got {alpha}")
        self.dataset, self.p, self.alpha, self.seed = dataset, float(p), float(alpha), int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def item_rng(self, index: int) -> np.random.Generator:
        key = (WAVMIX_SALT, self.epoch, int(index))
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        draw = draw_wavmix(self.item_rng(index), len(self.dataset), self.p, self.alpha)
        if draw is None:
            return item
        partner, lam = draw
        return wavmix(item, self.dataset[partner], lam)


# --- frame shift (batch level, per sample) -------------------------------------------------------

def draw_frame_shifts(rng: np.random.Generator, batch_size: int, mel_frames: int,
                      shift_range: float = 0.125) -> np.ndarray:
    """Per-sample shifts in mel frames: int(N(0, sigma)), truncated toward zero, with
    sigma = int(mel_frames * shift_range) (125 for 1000 frames; the reference's "in seconds"
    comment is wrong, the range is a fraction of the clip)."""
    sigma = int(mel_frames * shift_range)
    return np.trunc(rng.normal(0.0, sigma, size=batch_size)).astype(np.int64)


def label_shifts(shifts: np.ndarray, pooling: int = 4) -> np.ndarray:
    """Label-frame shifts: round(shift / pooling) with Python's round half to even, as the
    reference (shift 2 -> 0, 6 -> 2, -6 -> -2)."""
    return np.array([round(int(s) / pooling) for s in shifts], dtype=np.int64)


def roll_time(x: Tensor, shifts: np.ndarray | Tensor) -> Tensor:
    """Roll each sample along the last axis by its own shift: ``out[b, ..., t] =
    x[b, ..., (t - shifts[b]) mod T]`` (``torch.roll`` per sample, vectorised)."""
    b, t = x.shape[0], x.shape[-1]
    shifts = torch.as_tensor(np.asarray(shifts), dtype=torch.long)
    if shifts.shape != (b,):
        raise ValueError(f"roll_time needs one shift per sample ({b}), got shape "
                         f"{tuple(shifts.shape)}")
    idx = (torch.arange(t).unsqueeze(0) - shifts.unsqueeze(1)) % t  # (B, T)
    idx = idx.view(b, *([1] * (x.dim() - 2)), t).expand_as(x).to(x.device)
    return torch.gather(x, -1, idx)


def frame_shift(mel: Tensor, targets: Tensor, pseudo_targets: Tensor | None = None, *,
                rng: np.random.Generator, shift_range: float = 0.125, pooling: int = 4
                ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Random circular time shift per sample (SPEC 5, reference ``helpers/augment.frame_shift``).

    Args:
        mel: ``(B, 1, F, T_mel)``; targets, pseudo_targets: ``(B, K, T)`` on the pooled grid.
        shift_range: sigma as a fraction of ``T_mel`` (0.125 -> 125 frames for 10 s).
        pooling: mel frames per label frame (4).

    Returns new tensors (the reference rolls in place); ``pseudo_targets`` stays None if None.
    """
    if mel.dim() != 4 or targets.dim() != 3 or mel.shape[0] != targets.shape[0]:
        raise ValueError(f"frame_shift expects mel (B, 1, F, T) and targets (B, K, T), got "
                         f"{tuple(mel.shape)} and {tuple(targets.shape)}")
    shifts = draw_frame_shifts(rng, mel.shape[0], mel.shape[-1], shift_range)
    lshifts = label_shifts(shifts, pooling)
    mel = roll_time(mel, shifts)
    targets = roll_time(targets, lshifts)
    if pseudo_targets is not None:
        pseudo_targets = roll_time(pseudo_targets, lshifts)
    return mel, targets, pseudo_targets


# --- mixup (batch level) -------------------------------------------------------------------------

@dataclass(frozen=True)
class MixupDraw:
    """One batch mixup: sample b becomes ``coeffs[b] * x[b] + (1 - coeffs[b]) * x[perm[b]]``."""

    perm: np.ndarray  # (B,) int64
    coeffs: np.ndarray  # (B,) float64


def draw_mixup(rng: np.random.Generator, batch_size: int, alpha: float = 0.2,
               max_coef: bool = False) -> MixupDraw:
    """c ~ Beta(alpha, alpha) per sample (``max_coef``: c = max(c, 1 - c), as the reference's
    AS-Weak mixup), and a random permutation of the batch."""
    coeffs = rng.beta(alpha, alpha, size=batch_size)
    if max_coef:
        coeffs = np.maximum(coeffs, 1.0 - coeffs)
    return MixupDraw(perm=rng.permutation(batch_size), coeffs=coeffs)


def apply_mixup(x: Tensor, draw: MixupDraw, clamp: bool = False) -> Tensor:
    """``c * x + (1 - c) * x[perm]`` along the batch axis (c cast to ``x``'s dtype);
    ``clamp`` limits the result to [0, 1] (the reference's "soft" label mixup)."""
    b = x.shape[0]
    if draw.perm.shape != (b,):
        raise ValueError(f"mixup draw is for batch size {draw.perm.shape[0]}, tensor has {b}")
    c = torch.as_tensor(draw.coeffs, dtype=x.dtype).to(x.device).view(b, *([1] * (x.dim() - 1)))
    perm = torch.as_tensor(draw.perm, dtype=torch.long).to(x.device)
    mixed = c * x + (1 - c) * x[perm]
    return mixed.clamp(0, 1) if clamp else mixed


def mixup(mel: Tensor, targets: Tensor, pseudo_targets: Tensor | None = None, *,
          rng: np.random.Generator, p: float = 0.3, alpha: float = 0.2
          ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Batch mixup (SPEC 5; reference ``helpers/augment.mixup`` called with ``mixup_p``).

    With probability ``p`` for the whole batch (one uniform draw per call, as the reference's
    ``mixup_p > random.random()``): per-sample c ~ Beta(alpha, alpha) (no max), one permutation;
    mel mixed; targets mixed and clamped to [0, 1]; pseudo targets mixed (not clamped; they are
    probabilities already). Otherwise the inputs are returned unchanged.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"mixup probability must be in [0, 1], got {p}")
    if mel.shape[0] != targets.shape[0]:
        raise ValueError(f"mixup: mel batch {mel.shape[0]} != targets batch {targets.shape[0]}")
    if not p > rng.random():
        return mel, targets, pseudo_targets
    draw = draw_mixup(rng, mel.shape[0], alpha)
    mel = apply_mixup(mel, draw)
    targets = apply_mixup(targets, draw, clamp=True)
    if pseudo_targets is not None:
        pseudo_targets = apply_mixup(pseudo_targets, draw)
    return mel, targets, pseudo_targets

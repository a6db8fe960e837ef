"""Data plumbing of the training loop: a deterministic, resumable, distributed epoch sampler, the
paired strong/weak data set of weak-set distillation, and validation (median-filtered scores ->
PSDS1 on the validation set's ground truth), and the pseudo-label store checks.

Sampling (reference ``get_weighted_sampler``): each epoch draws ``epoch_len`` indices without
replacement from a generator seeded by ``(seed, epoch)``, then rank ``r`` of ``W`` takes
``indices[r::W]`` (as the reference's ``DistributedSamplerWrapper``). Two deliberate differences:

* ``epoch_len`` larger than the data set (the embedded synthetic set, small folders) is allowed:
  the epoch is made of consecutive independent permutations (each clip once per pass), where
  the reference's ``WeightedRandomSampler(replacement=False)`` would raise. The schedule then
  still has ``TrainConfig.total_steps()`` steps.
* the index list is padded by wrapping around to a multiple of ``W`` (``DistributedSampler``'s
  rule), so every rank runs the same number of batches (the reference's wrapper does not pad;
  unequal batch counts hang DDP).

A sampler can start part-way into an epoch (``set_epoch(epoch, start)``), which is how a resumed
run skips the batches it already consumed without loading them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sedlib.config import AudioConfig
from sedlib.errors import SedlibError

if TYPE_CHECKING:  # pragma: no cover
    from sedlib.train.config import DistillConfig, TrainConfig

SAMPLER_SALT = 0x53414D50  # "SAMP"
WEAK_SAMPLER_SALT = 0x5745414B  # "WEAK"


class EpochSampler(torch.utils.data.Sampler[int]):
    """``epoch_len`` indices per epoch (see the module doc), this rank's share, from ``start``.

    The indices of an epoch depend only on ``(seed, salt, epoch, dataset_len, epoch_len,
    world_size, rank)``.
    """

    def __init__(self, dataset_len: int, epoch_len: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, salt: int = SAMPLER_SALT) -> None:
        if dataset_len <= 0:
            raise SedlibError("the training data set is empty")
        if epoch_len <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"need epoch_len > 0 and 0 <= rank < world_size, got {epoch_len}, "
                             f"{rank}, {world_size}")
        self.dataset_len, self.epoch_len = int(dataset_len), int(epoch_len)
        self.seed, self.rank, self.world_size, self.salt = int(seed), rank, world_size, salt
        self.epoch, self.start = 0, 0

    @property
    def per_rank(self) -> int:
        """Indices of one rank in a full epoch: ceil(epoch_len / world_size)."""
        return math.ceil(self.epoch_len / self.world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and skip the first ``start`` indices of this rank's share."""
        if not 0 <= start <= self.per_rank:
            raise ValueError(f"start {start} outside [0, {self.per_rank}]")
        self.epoch, self.start = int(epoch), int(start)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """All ranks' indices of ``epoch``, padded to ``per_rank * world_size``."""
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.salt, epoch)))
        passes = math.ceil(self.epoch_len / self.dataset_len)
        order = np.concatenate([rng.permutation(self.dataset_len) for _ in range(passes)])
        order = order[:self.epoch_len]
        total = self.per_rank * self.world_size
        return np.resize(order, total)  # wraps around to pad, as DistributedSampler does

    def __iter__(self) -> Iterator[int]:
        mine = self.epoch_indices(self.epoch)[self.rank::self.world_size]
        return iter(mine[self.start:].tolist())

    def __len__(self) -> int:
        return self.per_rank - self.start


class PairedSampler(torch.utils.data.Sampler[tuple[int, int]]):
    """Zips a strong-set and a weak-set :class:`EpochSampler` (the reference's ``CombinedLoader``
    with ``min_size``: one strong and one weak clip per slot)."""

    def __init__(self, strong: EpochSampler, weak: EpochSampler) -> None:
        self.strong, self.weak = strong, weak

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.strong.set_epoch(epoch, start)
        self.weak.set_epoch(epoch, start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(iter(self.strong), iter(self.weak))

    def __len__(self) -> int:
        return min(len(self.strong), len(self.weak))


class PairedDataset(torch.utils.data.Dataset):
    """``ds[(i, j)] == {"strong": strong[i], "weak": weak[j]}`` (batched by the default collate
    into two batches)."""

    def __init__(self, strong: torch.utils.data.Dataset, weak: torch.utils.data.Dataset) -> None:
        self.strong, self.weak = strong, weak
        self.datasets = [strong, weak]  # walked by sedlib.data.loading.set_epoch

    def __len__(self) -> int:
        return len(self.strong)

    def __getitem__(self, index: tuple[int, int]) -> dict[str, Any]:
        i, j = index
        return {"strong": self.strong[i], "weak": self.weak[j]}


# --- data sets -----------------------------------------------------------------------------------

def dataset_vocab(dataset: torch.utils.data.Dataset, what: str):
    """The data set's ``vocab`` (a :class:`~sedlib.data.labels.Vocabulary`); SedlibError if it
    has none."""
    vocab = getattr(dataset, "vocab", None)
    if vocab is None:
        raise SedlibError(f"the {what} data set ({type(dataset).__name__}) has no 'vocab' "
                          f"attribute naming its classes")
    return vocab


def validation_reference(dataset: torch.utils.data.Dataset, audio: AudioConfig
                         ) -> tuple[Mapping[str, list], Mapping[str, float]]:
    """(ground truth ``{filename: [Event]}``, durations ``{filename: seconds}``) of a validation
    set: its ``ground_truth`` / ``durations`` attributes, or, for a
    :class:`~sedlib.data.synth.SynthDataset`, its exact synthetic events. Same-class events that
    overlap or touch are merged (PSDS refuses them)."""
    from sedlib.data.labels import merge_overlapping

    gt = getattr(dataset, "ground_truth", None)
    durations = getattr(dataset, "durations", None)
    if gt is None and hasattr(dataset, "events") and hasattr(dataset, "filename"):
        gt = {dataset.filename(i): dataset.events(i) for i in range(len(dataset))}
        durations = {name: audio.clip_seconds for name in gt}
    if gt is None or durations is None:
        raise SedlibError(f"the validation data set ({type(dataset).__name__}) has no strong "
                          f"ground truth ('ground_truth' and 'durations' attributes)")
    return {name: merge_overlapping(events) for name, events in gt.items()}, dict(durations)


def checked_store(path: str, dataset: torch.utils.data.Dataset, vocab, audio: AudioConfig,
                  what: str):
    """The pseudo-label store at ``path``; SedlibError unless it has ``vocab``'s class count and
    ``audio``'s label frames and (when the data set lists ``filenames``) every clip."""
    from sedlib.train.pseudo_labels import PseudoLabelStore

    store = PseudoLabelStore(path)
    want = (len(vocab), audio.label_frames)
    if (store.num_classes, store.num_frames) != want:
        raise SedlibError(f"{path}: pseudo labels have {store.num_classes} classes x "
                          f"{store.num_frames} frames, the model predicts {want[0]} x {want[1]} "
                          f"({vocab.name!r})")
    missing = [n for n in getattr(dataset, "filenames", []) if n not in store]
    if missing:
        raise SedlibError(f"{path}: no pseudo labels for {len(missing)} {what} clips, e.g. "
                          f"{missing[:3]}")
    return store


def uses_strong_kd(distill: "DistillConfig", weak_set: bool) -> bool:
    """Whether the strong set's batches get a KD term (and so need pseudo labels)."""
    return distill.kd_weight > 0 and (not weak_set or distill.kd_weak_fraction < 1)


def training_data(train: torch.utils.data.Dataset, weak: torch.utils.data.Dataset | None,
                  cfg: "TrainConfig", distill: "DistillConfig", vocab, audio: AudioConfig, *,
                  rank: int = 0, world_size: int = 1):
    """(data set, sampler) of a run: the training set with its pseudo labels (when its batches
    get a KD term), wavmixed; with a weak set, paired with it (weak items carry their pseudo
    labels). SedlibError for a distillation setting that cannot work."""
    from sedlib.train.augment import WavMixDataset
    from sedlib.train.pseudo_labels import WithPseudoLabels

    d = distill
    if (weak is not None) != (d.weak_pseudo_labels is not None):
        raise SedlibError("weak-set distillation needs both a weak data set (--weak-data) and "
                          "its pseudo labels (--weak-pseudo-labels)")
    if weak is not None and (d.kd_weight == 0 or d.kd_weak_fraction == 0):
        raise SedlibError("a weak data set is only used for distillation: set kd_weight and "
                          "kd_weak_fraction above 0 (paper: 0.9 and 0.5)")
    if cfg.balanced_sampler:
        raise SedlibError("balanced_sampler is not implemented (it is off in the paper's runs)")
    data = train
    if uses_strong_kd(d, weak is not None):
        if d.pseudo_labels is None:
            raise SedlibError(f"kd_weight {d.kd_weight} needs the training set's pseudo labels "
                              f"(--pseudo-labels FILE)")
        data = WithPseudoLabels(data, checked_store(d.pseudo_labels, train, vocab, audio,
                                                    "training"))
    elif d.pseudo_labels is not None:
        logging.getLogger(__name__).warning("pseudo labels %s are not used (kd_weight 0)",
                                            d.pseudo_labels)
    if cfg.wavmix_p > 0:
        data = WavMixDataset(data, cfg.wavmix_p, cfg.wavmix_alpha, cfg.seed)
    sampler = EpochSampler(len(train), cfg.epoch_len, seed=cfg.seed, rank=rank,
                           world_size=world_size)
    if weak is None:
        return data, sampler
    weak = WithPseudoLabels(weak, checked_store(d.weak_pseudo_labels, weak, vocab, audio, "weak"))
    weak_sampler = EpochSampler(len(weak), cfg.epoch_len, seed=cfg.seed, rank=rank,
                                world_size=world_size, salt=WEAK_SAMPLER_SALT)
    return PairedDataset(data, weak), PairedSampler(sampler, weak_sampler)


# --- validation ----------------------------------------------------------------------------------

@torch.no_grad()
def validation_scores(model: torch.nn.Module, frontend: torch.nn.Module,
                      dataset: torch.utils.data.Dataset, *, device: torch.device,
                      batch_size: int, median_window: int = 9, indices: list[int] | None = None,
                      autocast_dtype: torch.dtype | None = None, num_workers: int = 0
                      ) -> tuple[dict[str, np.ndarray], float, int]:
    """Median-filtered strong **logits** per clip (reference ``validation_step``: no sigmoid;
    PSDS ranks scores, so sigmoid would change nothing), plus the summed BCE against the hard
    targets and the number of clips. ``model`` and ``frontend`` must be in eval mode.

    Returns ``({filename: (K, T) float32}, loss_sum, clips)``; ``indices`` picks a subset (a
    rank's share).
    """
    from sedlib.evaluate.postprocess import median_filter

    subset = dataset if indices is None else torch.utils.data.Subset(dataset, indices)
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers,
                                         generator=torch.Generator().manual_seed(0))
    scores: dict[str, np.ndarray] = {}
    loss_sum, clips = 0.0, 0
    for batch in loader:
        mel = frontend(batch["waveform"].to(device))  # (B, 1, F, T_mel)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            logits = model(mel)[0].float()  # (B, K, T)
        targets = batch["targets"].to(device)
        loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        loss_sum += float(loss.mean(dim=(1, 2)).sum())
        clips += len(logits)
        filtered = median_filter(logits.cpu().numpy(), median_window)  # (B, K, T)
        for name, s in zip(batch["filename"], filtered):
            scores[name] = s
    return scores, loss_sum, clips


class _ScoreFrames(Mapping):
    """``{filename: score DataFrame}`` built on access from ``(K, T)`` arrays (bounded memory:
    the DataFrames of 16,935 AudioSet clips would not fit)."""

    def __init__(self, scores: Mapping[str, np.ndarray], classes: list[str], frame_seconds: float,
                 durations: Mapping[str, float]) -> None:
        self.scores, self.classes = scores, classes
        self.frame_seconds, self.durations = frame_seconds, durations

    def __getitem__(self, key: str):
        from sedlib.evaluate.scores_io import scores_to_dataframe

        return scores_to_dataframe(self.scores[key], self.classes, self.frame_seconds,
                                   self.durations[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self.scores)

    def __len__(self) -> int:
        return len(self.scores)


def psds_of(scores: Mapping[str, np.ndarray], dataset: torch.utils.data.Dataset, vocab,
            audio: AudioConfig, *, folds: int = 0) -> dict[str, Any]:
    """PSDS1 (``psds1``, alpha_st 1), its macro average over classes (``psds1_macro``, the
    paper's number) and segment-based pAUROC of validation scores, via
    :func:`sedlib.evaluate.psds_report`. A 447-class AudioSet Strong vocabulary is evaluated
    with the reference protocol (the 407 train-and-eval classes); any other vocabulary on its
    classes that have ground-truth events in the set (PSDS is undefined for the others).

    ``folds`` > 1 also scores ``folds`` disjoint folds of the clips (clip ``i`` of the sorted
    names in fold ``i % folds``; every model evaluated on the same clips gets the same folds) as
    ``psds1_folds`` / ``psds1_macro_folds``: batch means from which the eval-clip sampling
    variance of the full-set value is estimated (``var(folds) / folds``, paired between models
    by fold; :mod:`sedlib.study.intervals`); fewer folds when there are fewer than
    ``2 * folds`` clips, none below 4 clips. Costs about one more PSDS pass.
    ``psds1_per_class`` (and ``psds1_per_class_folds``): each evaluated class's PSDS1, whose
    mean is ``psds1_macro``."""
    from sedlib.data.labels import (
        audioset_eval_protocol_classes,
        audioset_strong_classes,
    )
    from sedlib.evaluate.config import PAUROC
    from sedlib.evaluate.report import psds_report

    gt, durations = validation_reference(dataset, audio)
    missing = [name for name in scores if name not in gt]
    if missing:
        raise SedlibError(f"validation clips without ground truth: {missing[:3]}")
    gt = {name: gt[name] for name in scores}
    names = list(vocab.names)
    if vocab == audioset_strong_classes():
        classes, restrict = None, list(audioset_eval_protocol_classes().names)
    else:
        present = {e.label for events in gt.values() for e in events}
        classes, restrict = [c for c in names if c in present], None
        if not classes:
            raise SedlibError("the validation set has no ground-truth events: PSDS is undefined")
    frames = _ScoreFrames(scores, names, audio.frame_seconds, durations)
    report = psds_report(frames, gt, durations, classes=classes, restrict_to=restrict,
                         psds2=None, pauroc=PAUROC)
    out = {"psds1": report["psds1"], "psds1_macro": report["psds1_macro"],
           "pauroc": report["pauroc"], "psds_classes": report["num_classes"],
           "psds_clips": report["num_clips"],
           "psds1_per_class": {c: v["psds1"] for c, v in report["per_class"].items()}}
    clips = sorted(scores)
    folds = min(folds, len(clips) // 2)  # a fold needs >= 2 clips; tiny test sets get fewer
    if folds > 1:
        parts = []
        for f in range(folds):
            part = clips[f::folds]
            fold_gt = {c: gt[c] for c in part}
            present = {e.label for events in fold_gt.values() for e in events}
            parts.append(psds_report(
                _ScoreFrames({c: scores[c] for c in part}, names, audio.frame_seconds, durations),
                fold_gt, {c: durations[c] for c in part},
                classes=None if classes is None else [c for c in classes if c in present],
                restrict_to=restrict, psds2=None, pauroc=None))
        out["psds1_folds"] = [p["psds1"] for p in parts]
        out["psds1_macro_folds"] = [p["psds1_macro"] for p in parts]
        out["psds1_per_class_folds"] = {c: [p["per_class"].get(c, {}).get("psds1") for p in parts]
                                        for c in out["psds1_per_class"]}  # None: not in that fold
    return out


def validate(model: torch.nn.Module, dataset: torch.utils.data.Dataset, *,
             audio_config: AudioConfig | None = None, device: str = "cpu", batch_size: int = 16,
             median_window: int = 9, folds: int = 0) -> dict[str, Any]:
    """PSDS1, PSDS1 macro, pAUROC and BCE of ``model`` on a validation set, as :func:`fit`
    validates (median-filtered logits; see :func:`sedlib.train.data.psds_of`, also for
    ``folds``)."""
    from sedlib.audio.frontend import MelFrontend

    audio = audio_config or AudioConfig()
    frontend = MelFrontend(audio).to(device).eval()
    scores, loss_sum, clips = validation_scores(model.to(device).eval(), frontend, dataset,
                                                device=torch.device(device), batch_size=batch_size,
                                                median_window=median_window)
    return {"val_loss": loss_sum / clips, "eval_clips": clips,
            **psds_of(scores, dataset, dataset_vocab(dataset, "validation"), audio, folds=folds)}


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, dataset: torch.utils.data.Dataset, *,
                          audio_config: AudioConfig | None = None, batches: int = 8,
                          batch_size: int = 16, device: str | torch.device = "cpu", seed: int = 0,
                          num_workers: int = 0, autocast_dtype: torch.dtype | None = None,
                          indices: Sequence[int] | None = None) -> int:
    """Re-estimate every BatchNorm layer's running statistics as the plain average over
    ``batches`` batches of ``dataset`` ("precise BN"; Wu & Johnson 2021), unaugmented and with
    a fixed mel band, as validation sees its clips. Returns the number of clips used.

    Why: the fmn backbone's BatchNorm momentum is 0.01 (EfficientAT), so its running statistics
    average over the last ~100 steps' weights. In the reference's 47k-step runs that lag is
    harmless; after a few hundred steps the statistics belong to much earlier weights and eval
    mode collapses (measured: a run with training loss 0.13 scores BCE 0.75 and PSDS1 0 in eval
    mode; 0.13 and PSDS1 0.47 after this). Not part of the reference recipe; off by default in
    :func:`sedlib.train.fitting.fit`. Clips are the first ``batches * batch_size`` of a permutation
    seeded by ``seed`` (the same on every rank), or ``indices`` when given (``batches`` and
    ``seed`` then unused; the study passes its first ``bn_recalibration_clips`` clips,
    :func:`sedlib.study.training.train_and_evaluate`); the global RNGs are not touched; other
    layers stay in eval mode (no dropout); the model is left in eval mode.
    """
    from sedlib.audio.frontend import MelFrontend

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if indices is None and batches > 0:
        order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SAMPLER_SALT, 2**31)))
        indices = order.permutation(len(dataset))[:batches * batch_size].tolist()
    if not norms or not indices:
        return 0
    device = torch.device(device)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, list(indices)),
                                         batch_size=batch_size, num_workers=num_workers,
                                         generator=torch.Generator().manual_seed(0))
    frontend = MelFrontend(audio_config or AudioConfig()).to(device).eval()
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    clips = 0
    try:
        for batch in loader:
            mel = frontend(batch["waveform"].to(device))  # (B, 1, F, T_mel)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                                enabled=autocast_dtype is not None):
                model(mel)
            clips += len(mel)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    return clips

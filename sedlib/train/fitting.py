"""Training: :func:`fit` runs the reference recipe (SPEC 5) on any strongly labelled data set.

One optimiser step = ``accumulate_grad_batches`` forward passes of ``batch_size`` clips per
device. Per forward pass (reference ``training_step``): waveforms (wavmixed by the data set) ->
log-mel (band jitter in training mode) -> frame shift -> mixup -> model -> strong logits ->
``(1 - w) * BCE(hard labels) + w * BCE(teacher probabilities)``. Adam with layer-wise LR groups,
warmup + cosine schedule stepped per optimiser step, AMP on CUDA. With a weak set (advanced KD,
Table II) each forward pass also takes ``batch_size`` weak-set clips (mel -> mixup with
max(c, 1 - c), alpha 0.3, p 1 -> model), and the loss is ``(1 - w) * BCE(hard) + w * ((1 - f) *
KD(strong batch) + f * KD(weak batch))``: 0.1 / 0.9 x (0.5 / 0.5) as the reference's online
distillation script, with stored teacher outputs instead of an online teacher.

Randomness: model init from ``torch.manual_seed(seed)`` (same on every rank); per rank, one
numpy generator for frame shift / mixup and a seeded global torch generator (mel band jitter,
dropout); wavmix per (seed, epoch, clip); sampler per (seed, epoch). All of it, the optimiser,
schedule, grad scaler and data position go into ``checkpoint.pt``, so a stopped and resumed
run ends with the same weights as an uninterrupted one (bit for bit on CPU). See
:mod:`sedlib.train.runs` for the run directory, :mod:`sedlib.train.data` for sampling and validation.

Validation (every ``val_every`` steps or ``check_val_every_n_epoch`` epochs, and after the last
step): median-filtered strong logits -> PSDS1 and its class average on the validation set's
ground truth, in eval mode. Short runs should set ``recalibrate_bn`` (BatchNorm momentum 0.01
leaves eval-mode statistics hundreds of steps behind; see
:func:`sedlib.train.data.recalibrate_batchnorm`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from sedlib.config import AudioConfig
from sedlib.train.config import DistillConfig, TrainConfig
from sedlib.train.loop import Trainer
from sedlib.train.runs import RunResult


def fit(model: str | nn.Module, train_data: torch.utils.data.Dataset, *,
        out_dir: str | os.PathLike, train_config: TrainConfig | None = None,
        distill_config: DistillConfig | None = None,
        val_data: torch.utils.data.Dataset | None = None,
        weak_data: torch.utils.data.Dataset | None = None,
        audio_config: AudioConfig | None = None, device: str = "cpu", resume: bool = False,
        max_steps: int | None = None, init: str | os.PathLike | None = None,
        checkpoint_every: int = 500, val_every: int | None = None, log_every: int = 10,
        validate_at_start: bool = False, progress: bool = True, recalibrate_bn: int = 0,
        run_info: Mapping[str, Any] | None = None, cache_clips: bool = True,
        pos_weight: Sequence[float] | None = None, keep_best: bool = False) -> RunResult:
    """Train ``model`` (a name for :func:`sedlib.registry.create_model`, or a built
    :class:`~sedlib.models.sed.SEDModel`) on ``train_data`` and write the run to ``out_dir``.
    Returns a :class:`RunResult` (the trained model in eval mode). Under ``torchrun`` every rank
    calls it alike (``batch_size`` per rank); rank 0 writes the files.

    Args:
        train_data / val_data: items ``waveform`` (N,), ``targets`` (K, T), ``filename``; the
            data sets name their classes (``vocab``); ``val_data`` needs strong ground truth
            (see :func:`sedlib.train.data.validation_reference`).
        weak_data: teacher-only set for weak-set distillation (needs
            ``distill_config.weak_pseudo_labels``); items ``waveform``, ``filename``.
        max_steps: optimiser steps to run (the schedule's length); None: ``n_epochs`` epochs of
            ``epoch_len`` clips, i.e. ``train_config.total_steps(world_size)``. An epoch draws
            ``epoch_len`` clips without replacement, in consecutive permutations of the data set
            when it is smaller (see :class:`sedlib.train.data.EpochSampler`).
        init: weights to start from (file or release; strict, see
            :func:`sedlib.models.checkpoints.load_checkpoint`); else ``train_config.pretrained`` for a
            model name (``scratch``: random init).
        val_every: validate every N optimiser steps; None: every ``check_val_every_n_epoch``
            epochs. Validation also runs after the last step.
        resume: continue the run in ``out_dir`` from its ``checkpoint.pt`` (a new run if none).
            Without it, an ``out_dir`` holding a checkpoint is refused.
        recalibrate_bn: before each validation and the final weights, re-estimate BatchNorm
            statistics from this many unaugmented training batches
            (:func:`sedlib.train.data.recalibrate_batchnorm`; not in the reference recipe, which
            trains long enough for BatchNorm momentum 0.01; short runs need it). 0: off.
        run_info: extra JSON-able entries for ``config.json`` (e.g. data source specs).
        cache_clips: serve fixed-audio sources (the embedded synthetic set) from the clip cache
            (:func:`sedlib.data.clip_cache.cached`; built on first use, after the model is made,
            items equal bit for bit).
        pos_weight: per-class weight of positive frames in the supervised BCE (None: plain).
        keep_best: keep the weights of the best validation PSDS1 macro (``best.safetensors``);
            ``model.safetensors`` and the returned model are then those weights.
    """
    trainer = Trainer(model, train_data, out_dir=Path(out_dir),
                      cfg=train_config or TrainConfig(), dcfg=distill_config,
                      val_data=val_data, weak_data=weak_data, audio=audio_config or AudioConfig(),
                      device=device, resume=resume, max_steps=max_steps, init=init,
                      checkpoint_every=checkpoint_every, val_every=val_every, log_every=log_every,
                      progress=progress, recalibrate_bn=recalibrate_bn,
                      run_info=dict(run_info or {}), cache_clips=cache_clips, pos_weight=pos_weight,
                      keep_best=keep_best)
    try:
        return trainer.run(validate_at_start=validate_at_start)
    finally:
        trainer.close()

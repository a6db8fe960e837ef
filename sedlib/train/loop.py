"""The training loop: :class:`Trainer` holds one run's state and steps it (see
:mod:`sedlib.train.fitting` for the recipe and :func:`~sedlib.train.fitting.fit`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sedlib.audio.frontend import MelFrontend
from sedlib.config import AudioConfig
from sedlib.data.clip_cache import cached
from sedlib.data.loading import set_epoch
from sedlib.errors import SedlibError
from sedlib.progress import tqdm
from sedlib.train import runs
from sedlib.train.augment import PSEUDO_KEY, apply_mixup, draw_mixup, frame_shift, mixup
from sedlib.train.config import DistillConfig, TrainConfig, optimizer_from_config
from sedlib.train.data import (
    dataset_vocab,
    psds_of,
    recalibrate_batchnorm,
    training_data,
    uses_strong_kd,
    validation_scores,
)
from sedlib.train.kd import kd_terms
from sedlib.train.optim import SEQ_GROUP, make_scheduler, set_train_mode
from sedlib.train.runs import RunResult, derived_seed
from sedlib.train.step import StudentForward, autocast_setting, restore_layout, use_channels_last

log = logging.getLogger(__name__)

_TORCH_SALT, _AUG_SALT, _LOADER_SALT, _PY_SALT = 0x544F5243, 0x41554758, 0x4C4F4144, 0x50595448
# TrainConfig fields that may change when a run is resumed (they do not change the weights'
# trajectory; nor do fit's checkpoint_every, val_every, log_every, recalibrate_bn, progress)
RESUMABLE_CHANGES = ("num_workers", "check_val_every_n_epoch")


class Trainer:
    """One run's state: model, optimiser, schedule, scaler, data, RNGs, position (``step``,
    ``epoch``, ``batch`` = batches consumed in the current epoch). Use :func:`fit`."""

    def __init__(self, model: str | nn.Module, train_data: torch.utils.data.Dataset, *,
                 out_dir: Path, cfg: TrainConfig, dcfg: DistillConfig | None,
                 val_data: torch.utils.data.Dataset | None,
                 weak_data: torch.utils.data.Dataset | None, audio: AudioConfig, device: str,
                 resume: bool, max_steps: int | None, init: str | os.PathLike | None,
                 checkpoint_every: int, val_every: int | None, log_every: int, progress: bool,
                 recalibrate_bn: int, run_info: dict[str, Any], cache_clips: bool = True,
                 pos_weight: Sequence[float] | None = None, keep_best: bool = False) -> None:
        for name, value in (("checkpoint_every", checkpoint_every), ("log_every", log_every),
                            ("val_every", val_every or 1), ("max_steps", max_steps or 1),
                            ("recalibrate_bn", recalibrate_bn + 1)):
            if not isinstance(value, int) or value <= 0:
                raise SedlibError(f"{name} must be a positive integer, got {value!r}")
        self.cfg, self.dcfg, self.audio, self.run_dir = cfg, dcfg or DistillConfig(0.0), audio, out_dir
        self.keep_best = keep_best
        self._pos_weight = None if pos_weight is None else torch.tensor(list(pos_weight))[:, None]  # (K, 1)
        self.val_data, self.progress, self.metrics = val_data, progress, None
        self.checkpoint_every, self.val_every, self.log_every = checkpoint_every, val_every, log_every
        self.dist = runs.Distributed(device)
        self.device, self.rank, self.world = self.dist.device, self.dist.rank, self.dist.world
        self.vocab = dataset_vocab(train_data, "training")
        if val_data is not None and dataset_vocab(val_data, "validation") != self.vocab:
            raise SedlibError(f"validation classes ({dataset_vocab(val_data, 'validation')!r}) differ "
                              f"from the training classes ({self.vocab!r})")
        self.total_steps = max_steps or cfg.total_steps(self.world)
        if cfg.schedule != "exp" and cfg.warmup_steps >= self.total_steps:
            raise SedlibError(f"warmup_steps ({cfg.warmup_steps}) must be below the run's "
                              f"{self.total_steps} optimiser steps (--warmup)")
        self.model = self._build_model(model, init)
        self._layout = use_channels_last(self.model)  # undone before the weights are saved
        if cache_clips:  # after the model: a failed download should not wait for a cache build
            train_data, val_data, weak_data = (None if ds is None else cached(ds, progress=progress)
                                               for ds in (train_data, val_data, weak_data))
            self.val_data = val_data
        self.model_name = str(getattr(self.model, "name", type(self.model).__name__))
        self.use_weak = weak_data is not None
        self.kd_strong = uses_strong_kd(self.dcfg, self.use_weak)
        self.train_set, self.sampler = training_data(
            train_data, weak_data, cfg, self.dcfg, self.vocab, audio, rank=self.rank,
            world_size=self.world)
        self.raw_train, self.recalibrate_bn = train_data, recalibrate_bn
        if recalibrate_bn and cfg.freeze_backbone:
            log.warning("recalibrate_bn ignored: the frozen backbone keeps its BatchNorm statistics")
            self.recalibrate_bn = 0
        self.frontend = MelFrontend(audio).to(self.device)
        # only the strong head is trained (SPEC 5); a gradient-less weak head would stall DDP
        self._flags = {n: p.requires_grad for n, p in self.model.named_parameters()}
        if hasattr(self.model, "weak_head"):
            self.model.weak_head.requires_grad_(False)
        self.opt = optimizer_from_config(self.model, cfg)
        self.sched = make_scheduler(self.opt, total_steps=self.total_steps,
                                    warmup_steps=cfg.warmup_steps, schedule=cfg.schedule,
                                    lr_end=cfg.lr_end, gamma=cfg.lr_gamma)
        self.amp_dtype, scaling = autocast_setting(cfg.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=scaling)
        torch.manual_seed(derived_seed(cfg.seed, _TORCH_SALT, self.rank))
        random.seed(derived_seed(cfg.seed, _PY_SALT, self.rank))
        self.rng = np.random.default_rng(derived_seed(cfg.seed, _AUG_SALT, self.rank))
        self.step = self.epoch = self.batch = 0
        self.validations: list[dict[str, Any]] = []
        self.identity = self._identity(max_steps)
        self.fresh = not self._resume(resume)
        self.net: nn.Module = StudentForward(self.model)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        if self.rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.metrics = runs.MetricsLog(out_dir, fresh=self.fresh)
            if self.fresh:
                runs.write_json(out_dir / runs.CONFIG, self._config_record(
                    init, train_data, val_data, weak_data, run_info))
            else:
                self.metrics.write({"event": "resumed", "step": self.step, "epoch": self.epoch})

    # --- setup -----------------------------------------------------------------------------------

    def _build_model(self, model: str | nn.Module, init: str | os.PathLike | None) -> nn.Module:
        k = len(self.vocab)
        if isinstance(model, str):
            from sedlib.registry import create_model

            torch.manual_seed(self.cfg.seed)
            try:
                model = create_model(model, num_classes=k)
            except ValueError as err:
                raise SedlibError(str(err)) from None
            if init is None and self.cfg.pretrained != "scratch":
                self._load_pretrained(model)
        if getattr(model, "num_classes", k) != k:
            raise SedlibError(f"model {getattr(model, 'name', '')} has {model.num_classes} output "
                              f"classes, the training data's vocabulary {self.vocab.name!r} has {k}")
        if init is not None:
            from sedlib.models.checkpoints import checkpoint_metadata
            from sedlib.models.checkpoints import load_checkpoint

            theirs = json.loads(checkpoint_metadata(init).get("classes", "null"))
            if theirs is not None and len(theirs) == k and theirs != list(self.vocab.names):
                bad = next(i for i, (a, b) in enumerate(zip(theirs, self.vocab.names)) if a != b)
                raise SedlibError(f"--init {init}: its class {bad} is {theirs[bad]!r}, the data's "
                                  f"is {self.vocab.names[bad]!r}; the heads would mean other classes")
            report = load_checkpoint(model, init)  # strict: CheckpointError lists mismatches
            log.info("initialised from %s: %s", init, report)
        return model.to(self.device)

    def _load_pretrained(self, model: nn.Module) -> None:
        from sedlib.models.checkpoints import load_checkpoint
        from sedlib.models.releases import RELEASES, model_to_release

        kind = self.cfg.pretrained
        try:
            release = (f"{model.config.backbone}_weak" if kind == "weak"
                       else model_to_release(model.name, kind))
            if release not in RELEASES:
                raise ValueError(f"{release!r} was not released")
        except ValueError as err:
            raise SedlibError(f"pretrained={kind!r}: no released checkpoint for {model.name} "
                              f"({err}); use pretrained 'scratch' (--pretrained scratch) or "
                              f"--init FILE") from None
        log.info("%s: %s", release, load_checkpoint(model, release))

    def _identity(self, max_steps: int | None) -> dict[str, Any]:
        """What a resumed run must share with the checkpoint it continues."""
        train = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in RESUMABLE_CHANGES}
        return {"model": self.model_name, "classes": list(self.vocab.names), "train": train,
                "distill": dataclasses.asdict(self.dcfg), "max_steps": max_steps,
                "total_steps": self.total_steps, "world_size": self.world,
                "audio": dataclasses.asdict(self.audio)}

    def _resume(self, resume: bool) -> bool:
        path = self.run_dir / runs.CHECKPOINT
        if not path.exists():
            if resume:
                log.info("%s holds no checkpoint: starting a new run", self.run_dir)
            return False
        if not resume:
            raise SedlibError(f"{self.run_dir} already holds a run ({runs.CHECKPOINT}); resume it "
                              f"(--resume) or choose another output folder")
        state = runs.load_checkpoint_state(path)
        diffs = [f"{k}: checkpoint {state['identity'].get(k)!r}, now {v!r}"
                 for k, v in self.identity.items() if state["identity"].get(k) != v]
        if diffs:
            raise SedlibError(f"cannot resume {path}: the run's settings changed:\n  "
                              + "\n  ".join(diffs))
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        runs.restore_rng(state["rng"][self.rank], {"augment": self.rng}, self.device)
        self.step, self.epoch, self.batch = state["step"], state["epoch"], state["batch"]
        self.validations = list(state["validations"])
        log.info("resumed %s at step %d (epoch %d, batch %d)", path, self.step, self.epoch, self.batch)
        return True

    def _config_record(self, init, train_data, val_data, weak_data, run_info) -> dict[str, Any]:
        import platform

        import sedlib

        def describe(ds):
            if ds is None:
                return None
            source = getattr(ds, "source", ds)  # a CachedClips serves its source's items
            return {"type": type(source).__name__, "clips": len(ds), "cached": source is not ds,
                    "vocab": getattr(getattr(ds, "vocab", None), "name", None)}
        return {**self.identity, "recalibrate_bn": self.recalibrate_bn,
                "num_classes": len(self.vocab), "vocab": self.vocab.name,
                "seed": self.cfg.seed, "num_workers": self.cfg.num_workers,
                "check_val_every_n_epoch": self.cfg.check_val_every_n_epoch,
                "steps_per_epoch": self.cfg.steps_per_epoch(self.world), "device": str(self.device),
                "autocast": str(self.amp_dtype) if self.amp_dtype else None,
                "init": None if init is None else str(init),
                "data": {"train": describe(train_data), "val": describe(val_data),
                         "weak": describe(weak_data)},
                "checkpoint_every": self.checkpoint_every, "val_every": self.val_every,
                "versions": {"sedlib": sedlib.__version__, "torch": torch.__version__,
                             "numpy": np.__version__, "python": platform.python_version()},
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **run_info}

    # --- the loop --------------------------------------------------------------------------------

    def run(self, validate_at_start: bool = False) -> RunResult:
        cfg = self.cfg
        if validate_at_start and self.fresh and self.val_data is not None:
            self._validate()
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", desc="train",
                   disable=not self.progress or self.rank != 0, dynamic_ncols=True)
        per_epoch = cfg.batches_per_epoch(self.world)
        self._stats = torch.zeros(6, dtype=torch.float64, device=self.device)
        self._busy, self._t0 = 0.0, time.perf_counter()
        while self.step < self.total_steps:
            self.sampler.set_epoch(self.epoch, self.batch * cfg.batch_size)
            set_epoch(self.train_set, self.epoch)  # wavmix draws, random crops
            set_train_mode(self.model, freeze_backbone=cfg.freeze_backbone)
            self.frontend.train()
            start = self.batch  # first batch of the current accumulation window
            for batch in self._batches():
                window = min(cfg.accumulate_grad_batches, per_epoch - start)
                last = self.batch + 1 - start == window
                no_sync = self.world > 1 and not last
                with self.net.no_sync() if no_sync else contextlib.nullcontext():
                    self.scaler.scale(self._loss(batch) / window).backward()
                self.batch += 1
                if not last:
                    continue
                self.scaler.step(self.opt)
                self.scaler.update()
                self.opt.zero_grad(set_to_none=True)
                self.sched.step()
                self.step, start = self.step + 1, self.batch
                epoch_done = self.batch == per_epoch
                if epoch_done:
                    self.epoch, self.batch = self.epoch + 1, 0
                self._after_step(epoch_done, bar)
                if self.step >= self.total_steps:
                    break
        bar.close()
        if self.recalibrate_bn and self.val_data is None:  # else the last validation did it
            self._recalibrate()
        restore_layout(self.model, self._layout)
        for name, p in self.model.named_parameters():
            p.requires_grad_(self._flags[name])
        weights, extra = None, {"step": str(self.step)}
        best = self.run_dir / runs.BEST_WEIGHTS
        if self.keep_best and best.is_file():  # every rank: the returned model is the best one
            from sedlib.models.checkpoints import load_state_dict

            self.model.load_state_dict(load_state_dict(best))
            extra = {**runs.weights_metadata(best), "selected": "best validation PSDS1 macro"}
            extra = {k: v for k, v in extra.items() if k in ("step", "psds1_macro", "selected")}
        if self.rank == 0:
            weights = runs.save_weights(self.model, self.run_dir / runs.WEIGHTS,
                                        model_name=self.model_name, classes=self.vocab.names,
                                        extra=extra)
        return RunResult(self.run_dir, self.model.eval(), self.step, self.epoch,
                         list(self.validations), weights)

    def _batches(self):
        """The loader's batches; an error raised on purpose inside a worker comes out as
        itself, with its own one-line message (not the worker's traceback text)."""
        batches = iter(self._loader())
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except SedlibError as err:
                text = str(err).rstrip()
                if "DataLoader worker" not in text:
                    raise
                raise type(err)(text.splitlines()[-1].split(": ", 1)[-1]) from None
            yield batch

    def _loader(self) -> torch.utils.data.DataLoader:
        # own generator: creating the iterator must not draw from the global torch RNG
        seed = derived_seed(self.cfg.seed, _LOADER_SALT, self.epoch, self.rank)
        g = torch.Generator().manual_seed(seed)
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=self.cfg.batch_size, sampler=self.sampler,
            num_workers=self.cfg.num_workers, generator=g, drop_last=False,
            pin_memory=self.device.type == "cuda", persistent_workers=False)

    def _loss(self, batch: dict[str, Any]) -> Tensor:
        """One forward pass: augmentations in the reference order, strong logits, loss."""
        cfg, d, dev = self.cfg, self.dcfg, self.device
        strong = batch["strong"] if self.use_weak else batch
        targets = strong["targets"].to(dev)  # (B, K, T)
        pseudo = strong[PSEUDO_KEY].to(dev) if self.kd_strong else None
        mel = self.frontend(strong["waveform"].to(dev))  # (B, 1, F, T_mel)
        if cfg.frame_shift_range > 0:
            mel, targets, pseudo = frame_shift(mel, targets, pseudo, rng=self.rng,
                                               shift_range=cfg.frame_shift_range,
                                               pooling=self.audio.time_pooling)
        if cfg.mixup_p > 0:
            mel, targets, pseudo = mixup(mel, targets, pseudo, rng=self.rng, p=cfg.mixup_p,
                                         alpha=cfg.mixup_alpha)
        mels = [mel]
        if self.use_weak:  # weak-set batch: mel -> mixup (max(c, 1 - c)), no frame shift
            weak_pseudo = batch["weak"][PSEUDO_KEY].to(dev)  # (B, K, T)
            weak_mel = self.frontend(batch["weak"]["waveform"].to(dev))
            if d.weak_mixup_p > self.rng.random():
                draw = draw_mixup(self.rng, len(weak_mel), d.weak_mixup_alpha, max_coef=True)
                weak_mel, weak_pseudo = apply_mixup(weak_mel, draw), apply_mixup(weak_pseudo, draw)
            mels.append(weak_mel)
        with torch.autocast(dev.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            logits = self.net(*mels)  # (B, K, T) per batch
        supervised, kd = kd_terms(logits[0], targets, pseudo, pos_weight=self._pos_weight)
        w = d.kd_weight
        kd_weak = None
        if self.use_weak:
            weak_logits = logits[1].to(torch.promote_types(logits[1].dtype, torch.float32))
            kd_weak = F.binary_cross_entropy_with_logits(weak_logits, weak_pseudo.to(weak_logits.dtype))
            f = d.kd_weak_fraction
            loss = (1 - w) * supervised + w * (f * kd_weak + ((1 - f) * kd if kd is not None else 0))
        elif kd is not None:
            loss = (1 - w) * supervised + w * kd  # sedlib.train.kd.kd_loss
        else:
            loss = supervised  # kd_weight 0: exactly the plain BCE
        zero = supervised.new_zeros(())
        clips = sum(len(m) for m in mels)
        self._stats += torch.stack([loss.detach(), supervised.detach(),
                                    zero if kd is None else kd.detach(),
                                    zero if kd_weak is None else kd_weak.detach(),
                                    zero + 1, zero + clips]).double()
        return loss

    def _after_step(self, epoch_done: bool, bar: tqdm) -> None:
        self._busy += time.perf_counter() - self._t0
        final = self.step >= self.total_steps
        bar.update(1)
        if self.step % self.log_every == 0 or final:
            self._log(bar)
        if self.val_data is not None and (final or (
                self.step % self.val_every == 0 if self.val_every else
                epoch_done and self.epoch % self.cfg.check_val_every_n_epoch == 0)):
            self._validate()
        if self.step % self.checkpoint_every == 0 or final:
            self._checkpoint()
        self._t0 = time.perf_counter()

    def _log(self, bar: tqdm) -> None:
        loss, sup, kd, kd_weak, n, clips = self.dist.sum(self._stats.clone()).tolist()
        record = {"step": self.step, "epoch": self.epoch, "loss": loss / n, "supervised": sup / n}
        if self.kd_strong:
            record["kd"] = kd / n
        if self.use_weak:
            record["kd_weak"] = kd_weak / n
        record["lr"] = self.opt.param_groups[0]["lr"]  # top backbone block (or seq+heads if frozen)
        record.update({"seq_lr": g["lr"] for g in self.opt.param_groups if g.get("name") == SEQ_GROUP})
        record["clips_per_s"] = clips / max(self._busy, 1e-9)
        self._stats.zero_()
        self._busy = 0.0
        if self.rank == 0:
            self.metrics.write(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", clips_s=f"{record['clips_per_s']:.1f}")

    def _recalibrate(self) -> None:
        recalibrate_batchnorm(self.model, self.raw_train, audio_config=self.audio,
                              batches=self.recalibrate_bn, batch_size=self.cfg.batch_size,
                              device=self.device, seed=self.cfg.seed,
                              num_workers=self.cfg.num_workers, autocast_dtype=self.amp_dtype)

    def _validate(self) -> None:
        self.model.eval()
        self.frontend.eval()
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # validation leaves every RNG as it was
            if self.recalibrate_bn:
                self._recalibrate()
            part = validation_scores(
                self.model, self.frontend, self.val_data, device=self.device,
                batch_size=self.cfg.batch_size, median_window=self.cfg.median_window,
                indices=list(range(self.rank, len(self.val_data), self.world)),
                autocast_dtype=self.amp_dtype, num_workers=self.cfg.num_workers)
        parts = self.dist.gather_scores(part, self.run_dir / ".validation")
        record = None
        if self.rank == 0:
            scores = {k: v for s, _, _ in parts for k, v in s.items()}
            loss = sum(p[1] for p in parts) / sum(p[2] for p in parts)
            record = {"step": self.step, "epoch": self.epoch, "val_loss": loss,
                      **psds_of(scores, self.val_data, self.vocab, self.audio)}
            self.metrics.write(record)
            log.info("step %d: PSDS1 %.4f, PSDS1 macro %.4f", self.step, record["psds1"],
                     record["psds1_macro"])
            best = max((v["psds1_macro"] for v in self.validations if v), default=-1.0)
            if self.keep_best and record["psds1_macro"] > best:  # the weights of the best validation
                runs.save_weights(self.model, self.run_dir / runs.BEST_WEIGHTS, model_name=self.model_name,
                                  classes=self.vocab.names, extra={"step": str(self.step),
                                                                   "psds1_macro": f"{record['psds1_macro']:.6f}"})
        self.validations.append(self.dist.broadcast(record))
        set_train_mode(self.model, freeze_backbone=self.cfg.freeze_backbone)
        self.frontend.train()

    def _checkpoint(self) -> None:
        rngs = self.dist.gather(runs.capture_rng({"augment": self.rng}, self.device))
        if self.rank != 0:
            return
        runs.save_checkpoint({
            "format": runs.CHECKPOINT_FORMAT, "version": runs.CHECKPOINT_VERSION,
            "identity": self.identity, "step": self.step, "epoch": self.epoch, "batch": self.batch,
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": rngs, "validations": self.validations,
        }, self.run_dir / runs.CHECKPOINT)

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        self.dist.close()

"""Stride adaptation (paper Sec. II-A): EfficientAT's clip-wise strides vs fmn's frame-wise ones.

EfficientAT's MobileNetV3 strides both axes by 2 at the stem and at blocks 1, 3, 6, 12, so a
log-mel ``(B, 1, 128, 1000)`` becomes ``(B, C, 4, 32)``: one feature vector per 320 ms, fine for
clip-wise tagging. fmn strides frequency by 128 and time only by 4: ``(B, C, 1, 250)``, one frame
per 40 ms. :class:`ClipwiseSED` is the clip-wise network made to emit the same 40 ms frames as
the reference wrapper does for backbones with fewer frames: mean over the 4 remaining frequency
bins, then **linear interpolation of the frame sequence** to ``T / 4`` frames
(``PredictionsWrapper``: "linear interpolation when shorter"), then the same sequence model and
heads as :class:`~sedlib.models.sed.SEDModel`. It trains with :func:`sedlib.train.fitting.fit` like any
SEDModel (same parameter names, so layer-wise LR decay and ``freeze_backbone`` apply).

:func:`shape_trace` lists tensor shapes through a model; :func:`receptive_fields` the cumulative
stride ("jump") and receptive field of every backbone block, in mel bins and mel frames (10 ms);
:func:`resolution` summarises a backbone's time resolution and receptive field.
:func:`run_clipwise_experiment` trains and evaluates a ClipwiseSED with the caching of
:func:`sedlib.study.cache.run_experiment` (which takes model names only).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sedlib.config import AudioConfig
from sedlib.models.backbone import FMN_TIME_STRIDES, FrameMobileNet, clipwise_strides
from sedlib.models.names import ModelConfig
from sedlib.models.sed import BackboneWrapper, SEDModel

log = logging.getLogger(__name__)

#: mel frames per output frame of the frame-wise models (stem 2 x block 1's 2): the 40 ms grid
FRAME_POOLING = 2 * math.prod(FMN_TIME_STRIDES)
CLIPWISE_STRIDES = (2, 2, 2, 2)  # EfficientAT: blocks 1, 3, 6, 12


class FrameUpsample(nn.Module):
    """Linear interpolation of a frame sequence to ``ceil(T_mel / pooling)`` frames (a module,
    so :func:`shape_trace` sees it). No parameters."""

    def __init__(self, pooling: int = FRAME_POOLING) -> None:
        super().__init__()
        self.pooling = pooling

    def forward(self, x: Tensor, mel_frames: int) -> Tensor:
        """(B, T', E) -> (B, ceil(mel_frames / pooling), E)"""
        frames = math.ceil(mel_frames / self.pooling)
        if x.shape[1] == frames:
            return x
        x = F.interpolate(x.transpose(1, 2), size=frames, mode="linear", align_corners=False)
        return x.transpose(1, 2)  # (B, frames, E)


class ClipwiseSED(SEDModel):
    """SEDModel on EfficientAT's clip-wise strides with upsampled frame output (module doc).

    Args:
        config: model name or :class:`~sedlib.models.names.ModelConfig` (``"fmn04+TF:64"``).
        strides: the four symmetric strides at blocks 1, 3, 6, 12 (EfficientAT: 2, 2, 2, 2).
    Attributes as SEDModel; ``name`` reads ``"<name> clip-wise"`` (not a registry name).
    """

    def __init__(self, config: ModelConfig | str, num_classes: int = 447,
                 strides: Sequence[int] = CLIPWISE_STRIDES, **seq_options: Any) -> None:
        super().__init__(config, num_classes=num_classes, **seq_options)
        self.name = f"{self.config.name} clip-wise"
        self.clip_strides = tuple(int(s) for s in strides)
        fmn = FrameMobileNet(self.config.width, clipwise_strides(strides), freq_reduction="mean")
        self.model = BackboneWrapper(fmn)
        self.upsample = FrameUpsample()

    def embed(self, mel: Tensor) -> Tensor:
        """(B, 1, 128, T) -> (B, T / 4, num_features)"""
        x = self.model(mel)  # (B, T / 32, E): frequency averaged
        x = self.upsample(x, mel.shape[-1])  # (B, T / 4, E)
        return self.seq_model(x)  # (B, T / 4, D)


def shape_trace(model: nn.Module, mel: Tensor) -> list[dict[str, Any]]:
    """Output shape of every backbone block, the upsampling (if any), the sequence model and the
    heads for one forward pass of ``mel``, in call order: rows ``layer``, ``module``, ``shape``."""
    named = [(f"features.{i}", m) for i, m in enumerate(model.model.fmn.features)]
    named += [(n, getattr(model, n)) for n in ("upsample", "seq_model", "strong_head", "weak_head")
              if isinstance(getattr(model, n, None), nn.Module)]
    rows: list[dict[str, Any]] = [{"layer": "input", "module": "log-mel", "shape": tuple(mel.shape)}]
    hooks = [m.register_forward_hook(
        lambda mod, args, out, n=n: rows.append({"layer": n, "module": type(mod).__name__,
                                                 "shape": tuple(out.shape)}))
        for n, m in named]
    try:
        with torch.inference_mode():
            model.eval()(mel)
    finally:
        for h in hooks:
            h.remove()
    return rows


def receptive_fields(backbone: FrameMobileNet) -> list[dict[str, Any]]:
    """Per backbone block (``features.<i>``): its (freq, time) stride, the cumulative stride
    (``jump``: input bins / frames per output step) and receptive field in input mel bins and
    frames, from every convolution in order (r += (k - 1) * dilation * jump; jump *= stride).
    Squeeze-excitation gates (a global mean) are left out, as is usual for receptive fields."""
    rows = []
    jump, rf = [1, 1], [1, 1]
    for i, block in enumerate(backbone.features):
        stride = [1, 1]
        for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d)):
            for axis in (0, 1):
                rf[axis] += (conv.kernel_size[axis] - 1) * conv.dilation[axis] * jump[axis]
                jump[axis] *= conv.stride[axis]
                stride[axis] *= conv.stride[axis]
        rows.append({"layer": f"features.{i}", "stride": tuple(stride), "jump_freq": jump[0],
                     "jump_time": jump[1], "rf_freq": rf[0], "rf_time": rf[1]})
    return rows


def resolution(model: nn.Module, audio: AudioConfig | None = None) -> dict[str, Any]:
    """Time resolution and receptive field of ``model``'s backbone for one clip of ``audio``:
    native frames and ms per frame, output frames, receptive field in seconds and mel bins."""
    audio = audio or AudioConfig()
    last = receptive_fields(model.model.fmn)[-1]
    hop_ms = 1000 * audio.hop_length / audio.sample_rate
    mel_frames = audio.mel_frames
    freq_left = math.ceil(audio.n_mels / last["jump_freq"])
    return {"backbone frames": math.ceil(mel_frames / last["jump_time"]),
            "backbone ms / frame": last["jump_time"] * hop_ms,
            "freq bins left": freq_left,
            "output frames": math.ceil(mel_frames / FRAME_POOLING),
            "output ms / frame": FRAME_POOLING * hop_ms,
            "receptive field (s)": last["rf_time"] * hop_ms / 1000,
            "receptive field (mel bins)": last["rf_freq"]}


def run_clipwise_experiment(exp, *, strides: Sequence[int] = CLIPWISE_STRIDES,
                            cache_dir: str | os.PathLike = "runs/cache", device: str = "cpu",
                            progress: bool = True, throughput_batch_size: int = 8,
                            throughput_repeats: int = 3, throughput_warmup: int = 1,
                            throughput_dtype: str | None = None, num_threads: int | None = None):
    """:func:`sedlib.study.cache.run_experiment` (same options, same steps: train, optional
    BatchNorm recalibration, evaluate, profile) for a :class:`ClipwiseSED` of ``exp.model``,
    cached under ``<cache_dir>/clipwise<strides>-<exp.key>``. Returns an ExperimentResult whose
    ``weights`` load into ``ClipwiseSED(exp.model, ...)`` (not into ``create_model``)."""
    from sedlib.locking import file_lock
    from sedlib.study.cache import _log_record
    from sedlib.study.experiments import RESULT, RUN, ExperimentResult
    from sedlib.study.training import train_and_evaluate
    from sedlib.train import runs

    key = clipwise_key(exp, strides)
    folder = Path(cache_dir) / key
    threads = torch.get_num_threads()
    label = f"{exp.model} (clip-wise strides)"  # its row in the study's results table
    with file_lock(Path(cache_dir) / f".{key}.lock"):
        if (folder / RESULT).is_file():
            d = json.loads((folder / RESULT).read_text(encoding="utf-8"))
            result = ExperimentResult(exp, key, d["metrics"], d["profile"], folder / RUN,
                                      folder / RUN / d["weights"], True, d["train_seconds"],
                                      d["eval_seconds"])
            _log_record(result, label)
            return result
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        try:
            run, metrics, train_s, eval_s, k = train_and_evaluate(
                exp, folder, device=device, progress=progress,
                build=lambda k: ClipwiseSED(exp.model, num_classes=k, strides=strides),
                run_info={"clipwise_strides": list(strides)})
            prof = clipwise_profile(exp.model, k, strides, Path(cache_dir), device=device,
                                    batch_size=throughput_batch_size, repeats=throughput_repeats,
                                    warmup=throughput_warmup, dtype=throughput_dtype)
        finally:
            torch.set_num_threads(threads)
        result = ExperimentResult(exp, key, metrics, prof,
                                  folder / RUN, Path(run.weights), False, train_s, eval_s)
        runs.write_json(folder / RESULT, result.to_dict())
    _log_record(result, label)
    return result


def clipwise_profile(model: str, num_classes: int, strides: Sequence[int], cache_dir: Path, *,
                     device: str = "cpu", batch_size: int = 8, repeats: int = 3, warmup: int = 1,
                     dtype: str | None = None) -> dict[str, Any]:
    """Params, MACs and throughput of ``ClipwiseSED(model)`` (one 10 s clip), cached under
    ``<cache_dir>/profiles`` per settings and thread count, as the study's other profiles."""
    import hashlib

    from sedlib.complexity.profile import profile_model
    from sedlib.study.experiments import CACHE_VERSION, PROFILES
    from sedlib.train import runs

    dtype = dtype or ("fp16" if str(device).startswith("cuda") else "fp32")
    ident = {"model": model, "clipwise_strides": list(strides), "num_classes": num_classes,
             "device": device, "batch": batch_size, "repeats": repeats, "warmup": warmup,
             "dtype": dtype, "threads": torch.get_num_threads(), "version": CACHE_VERSION}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / PROFILES / f"clipwise-{digest}.json"
    if path.is_file():
        return json.loads(path.read_text())
    prof = profile_model(ClipwiseSED(model, num_classes=num_classes, strides=strides), device=device,
                         dtype=dtype, batch_size=batch_size, repeats=repeats, warmup=warmup,
                         deepspeed=False)
    out = {**prof.to_dict(), "num_classes": num_classes}
    runs.write_json(path, out)
    return out


def run_clipwise_experiments(experiments: Sequence[Any], *, parallel_runs: int = 1,
                             strides: Sequence[int] = CLIPWISE_STRIDES, executor: str = "local",
                             slurm: Any = None, **kwargs: Any) -> list[Any]:
    """:func:`run_clipwise_experiment` for each, ``parallel_runs`` side by side (as
    :func:`sedlib.study.cache.run_experiments`: data caches and the throughput profile are made
    here first, on an idle machine); ``executor="slurm"``: one SLURM job each, as there."""
    from sedlib.study.cache import prepare_experiment
    from sedlib.study.workers import in_processes
    from sedlib.study.training import open_data
    from sedlib.train.data import dataset_vocab

    from sedlib.study.experiments import RESULT

    cache = Path(kwargs.get("cache_dir", "runs/cache"))
    if executor == "slurm":
        from sedlib.study.cache import _log_record
        from sedlib.study.slurm import run_as_slurm_jobs

        keys = [clipwise_key(e, strides) for e in experiments]
        job_kwargs = {**kwargs, "strides": tuple(strides)}
        trained = run_as_slurm_jobs(run_clipwise_experiment, experiments, keys, job_kwargs, slurm or {},
                                    finished=lambda i: (cache / keys[i] / RESULT).is_file(),
                                    desc="clip-wise runs (SLURM)")
        out = []
        for i, exp in enumerate(experiments):  # logged in the experiments' order, as locally
            if i in trained:
                _log_record(trained[i], f"{exp.model} (clip-wise strides)")
            out.append(trained[i] if i in trained else run_clipwise_experiment(exp, **job_kwargs))
        return out
    todo = [i for i, e in enumerate(experiments) if not (cache / clipwise_key(e, strides) / RESULT).is_file()]
    if parallel_runs > 1 and len(todo) > 1:
        for exp in (experiments[i] for i in todo):
            prepare_experiment(exp, **kwargs)
            k = len(dataset_vocab(open_data(exp.train_data, "train", exp.audio), "training"))
            threads = torch.get_num_threads()
            if kwargs.get("num_threads") is not None:
                torch.set_num_threads(kwargs["num_threads"])
            try:
                clipwise_profile(exp.model, k, strides, Path(kwargs.get("cache_dir", "runs/cache")),
                                 device=kwargs.get("device", "cpu"),
                                 batch_size=kwargs.get("throughput_batch_size", 8),
                                 repeats=kwargs.get("throughput_repeats", 3),
                                 warmup=kwargs.get("throughput_warmup", 1),
                                 dtype=kwargs.get("throughput_dtype"))
            finally:
                torch.set_num_threads(threads)
    return in_processes(run_clipwise_experiment, list(experiments), parallel_runs,
                        {**kwargs, "strides": tuple(strides)}, todo=todo, desc="clip-wise runs")


def clipwise_key(exp: Any, strides: Sequence[int] = CLIPWISE_STRIDES) -> str:
    """The cache folder of ``exp``'s clip-wise variant: ``clipwise<strides>-<exp.key>``."""
    return f"clipwise{''.join(map(str, strides))}-{exp.key}"

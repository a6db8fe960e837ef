"""Model complexity per model name: parameters, MACs, throughput and peak memory.

Definitions (the paper's, where it gives one):

- **params**: ``sum(p.numel() for p in model.parameters())`` -- both heads and the rotary
  ``freqs`` included (SPEC 3.1), split into backbone / sequence model / strong and weak head.
- **MACs**: one forward pass of one 10 s clip, i.e. a log-mel input ``(1, 1, 128, 1000)``,
  **model only** (the mel front end is excluded; its own count is ``macs_frontend``), counted on
  the CPU in float32. ``macs`` is our complete count (:func:`sedlib.complexity.macs.count_macs`);
  ``macs_deepspeed`` is DeepSpeed's flops profiler, the paper's tool, which counts 0 for GRUs and
  einsum (see :mod:`sedlib.complexity.macs` for exactly which operations each counts).
- **throughput**: 10 s clips per second at a batch size (paper: 64, fp16, CUDA): random inputs,
  ``warmup`` untimed batches, then ``repeats`` timed batches (``torch.cuda.synchronize`` around
  each on CUDA); throughput = batch size / median batch time. fp16/bf16 run under autocast
  (mixed precision, as the reference trains; weights stay fp32, so MAMBA's fp32 island works).
  The front end is excluded by default (model cost, as MACs); ``include_frontend`` times
  waveform -> log-mel -> model.
- **peak_memory** (bytes) during the timed batches. CUDA: ``torch.cuda.max_memory_allocated``
  (weights + input + activations + workspaces, as seen by torch's allocator). CPU: bytes of
  parameters, buffers and input plus the growth of the process's peak resident set size
  (``VmHWM``, reset via ``/proc/self/clear_refs``) -- an estimate: it includes oneDNN scratch and
  page granularity, and misses memory the C allocator reuses from earlier work (we
  ``malloc_trim`` first). ``tracemalloc`` would not see torch's allocations at all.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import gc
import logging
import os
import statistics
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from sedlib.atomic import atomic_write
from sedlib.complexity.macs import count_macs, deepspeed_macs
from sedlib.complexity.memory import PeakMemory

log = logging.getLogger(__name__)

__all__ = [
    "CLIP_MEL_SHAPE", "CLIP_SAMPLES", "DTYPES", "DEFAULT_BATCH", "ModelProfile", "Throughput",
    "count_params", "frontend_macs", "measure_throughput", "profile_model", "profile_models",
    "format_table", "write_csv",
]

CLIP_MEL_SHAPE = (1, 1, 128, 1000)  # one 10 s clip as log-mel (B, 1, F, T)
CLIP_SAMPLES = 160_000  # one 10 s clip at 16 kHz
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEFAULT_BATCH = {"cuda": 64, "cpu": 16}  # paper: 64 on the GPU; CPU: kept affordable
# SEDModel attribute per role (InferenceSED from sedlib.models.fuse names its backbone `backbone`)
PARTS = {"backbone": "model", "seq": "seq_model", "strong_head": "strong_head",
         "weak_head": "weak_head"}


@dataclass
class ModelProfile:
    """Complexity of one model (see the module docstring for every definition; MACs, memory in
    bytes; throughput in 10 s clips per second; None where not measured)."""

    name: str
    params: int
    params_backbone: int | None
    params_seq: int | None
    params_heads: int | None
    macs: int
    macs_deepspeed: int | None
    macs_counter: int
    throughput: float | None
    peak_memory: int | None
    device: str
    dtype: str
    batch_size: int | None
    threads: int | None
    params_strong_head: int | None = None
    params_weak_head: int | None = None
    macs_backbone: int | None = None
    macs_seq: int | None = None
    macs_heads: int | None = None
    macs_frontend: int | None = None
    macs_input: str = "log-mel (1, 1, 128, 1000), model only (mel front end excluded)"
    latency_s: float | None = None  # median seconds per batch
    repeats: int | None = None
    include_frontend: bool = False  # in the throughput / memory measurement
    optimize: str | None = None  # sedlib.models.fuse backend used for timing, if any
    backend: str = "torch"  # the engine timed (sedlib.deploy.backends)
    peak_memory_method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Throughput:
    """One timing measurement: samples/s, median and all batch times, peak memory."""

    samples_per_s: float
    median_s: float
    times_s: list[float]
    peak_memory: int
    peak_memory_method: str


def _num_params(module: nn.Module | None) -> int | None:
    return None if module is None else sum(p.numel() for p in module.parameters())


def count_params(model: nn.Module) -> dict[str, int | None]:
    """Parameter counts: ``total`` and per SEDModel part (None for parts the model lacks)."""
    parts = {role: getattr(model, attr, None) for role, attr in PARTS.items()}
    counts = {"total": _num_params(model)}
    counts.update({role: _num_params(m) for role, m in parts.items()})
    heads = (counts["strong_head"], counts["weak_head"])
    counts["heads"] = None if None in heads else sum(heads)
    return counts


@lru_cache(maxsize=4)
def frontend_macs(num_samples: int = CLIP_SAMPLES) -> int:
    """MACs of the mel front end for one clip (pre-emphasis conv + mel matmul, 33.2 M for 10 s;
    the STFT's FFT is not counted)."""
    from sedlib.audio.frontend import MelFrontend

    wave = torch.zeros(1, num_samples)
    return count_macs(MelFrontend().eval(), wave, parts=[]).total


class _WithFrontend(nn.Module):
    """waveform (B, N) -> log-mel -> model."""

    def __init__(self, frontend: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.model = model

    def forward(self, wave: Tensor) -> Any:
        return self.model(self.frontend(wave))


def measure_throughput(
    model: nn.Module,
    *,
    device: str = "cpu",
    dtype: str = "fp32",
    batch_size: int | None = None,
    threads: int | None = None,
    warmup: int = 2,
    repeats: int = 5,
    include_frontend: bool = False,
) -> Throughput:
    """Time ``model`` (eval mode, moved to ``device``) on random batches of 10 s clips.

    CPU: ``threads`` sets ``torch.set_num_threads`` for the measurement (restored after).
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    batch = batch_size or DEFAULT_BATCH.get(dev.type, 16)
    gen = torch.Generator().manual_seed(0)
    if include_frontend:
        from sedlib.audio.frontend import MelFrontend

        if not getattr(model, "takes_waveform", False):  # an engine graph may hold the front end
            model = _WithFrontend(MelFrontend(), model)
        x = 0.1 * torch.randn(batch, CLIP_SAMPLES, generator=gen)  # (B, N) waveform
    else:
        x = torch.randn(batch, *CLIP_MEL_SHAPE[1:], generator=gen)  # (B, 1, 128, 1000)
    model = model.eval().to(dev)
    x = x.to(dev)
    autocast = torch.autocast(dev.type, dtype=DTYPES[dtype], enabled=dtype != "fp32")
    old_threads = torch.get_num_threads()
    if threads is not None and dev.type == "cpu":
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode(), autocast:
            for _ in range(warmup):
                model(x)
            meter = PeakMemory(dev, resident=[model, x])
            times = []
            with meter:
                for _ in range(repeats):
                    meter.synchronize()
                    t0 = time.perf_counter()
                    model(x)
                    meter.synchronize()
                    times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old_threads)
    median = statistics.median(times)
    return Throughput(batch / median, median, times, meter.peak, meter.method)


def profile_model(
    model: str | nn.Module,
    *,
    device: str = "cpu",
    dtype: str = "fp32",
    batch_size: int | None = None,
    threads: int | None = None,
    warmup: int = 2,
    repeats: int = 5,
    throughput: bool = True,
    include_frontend: bool = False,
    deepspeed: bool = True,
    optimize: str | None = None,
    backend: str = "torch",
    num_classes: int = 447,
    seed: int = 0,
) -> ModelProfile:
    """Profile one model, given by name (built with :func:`sedlib.registry.create_model`, random
    weights -- complexity does not depend on them) or as a module (copied, never modified).

    ``optimize``: time a :func:`sedlib.models.fuse.optimize_for_inference` copy (``"eager"``,
    ``"jit"``, ``"compile"``; CPU only). ``backend``: time the model exported to ONNX and run in
    ``"onnxruntime"`` or ``"openvino"`` (:mod:`sedlib.deploy.backends`; CPU, ``threads`` engine
    threads). Parameters and MACs are always of the plain model.
    """
    if isinstance(model, str):
        from sedlib.registry import create_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = create_model(model, num_classes=num_classes)
    else:
        model = copy.deepcopy(model)
    name = getattr(model, "name", type(model).__name__)
    model = model.float().cpu().eval()
    params = count_params(model)

    mel = torch.randn(*CLIP_MEL_SHAPE, generator=torch.Generator().manual_seed(seed))
    parts = [attr for attr in PARTS.values() if hasattr(model, attr)]
    counted = count_macs(model, mel, parts=parts)
    ds = deepspeed_macs(model, mel, parts=parts) if deepspeed else None
    if ds is not None and ds.total > counted.total:
        log.warning("%s: DeepSpeed counts more MACs (%d) than sedlib's counter (%d): an op is "
                    "missing from sedlib.complexity.macs", name, ds.total, counted.total)
    by_part = {role: counted.by_module.get(attr) for role, attr in PARTS.items()}
    heads = (by_part["strong_head"], by_part["weak_head"])

    result = ModelProfile(
        name=name, params=params["total"], params_backbone=params["backbone"],
        params_seq=params["seq"], params_heads=params["heads"], macs=counted.total,
        macs_deepspeed=None if ds is None else ds.total, macs_counter=counted.total,
        throughput=None, peak_memory=None, device=device, dtype=dtype, batch_size=None,
        threads=None, params_strong_head=params["strong_head"],
        params_weak_head=params["weak_head"], macs_backbone=by_part["backbone"],
        macs_seq=by_part["seq"], macs_heads=None if None in heads else sum(heads),
        macs_frontend=frontend_macs(), include_frontend=include_frontend, optimize=optimize,
        backend=backend,
    )
    if not throughput:
        return result
    if optimize is not None:
        if torch.device(device).type != "cpu":
            raise ValueError(f"optimize={optimize!r} is for CPU inference, got device {device!r}")
        from sedlib.models.fuse import optimize_for_inference

        model = optimize_for_inference(model, backend=optimize)
    if backend != "torch":
        model = _engine_model(model, backend, device, optimize, threads, include_frontend)
    thr = measure_throughput(
        model, device=device, dtype=dtype, batch_size=batch_size, threads=threads,
        warmup=warmup, repeats=repeats, include_frontend=include_frontend,
    )
    result.throughput = thr.samples_per_s
    result.latency_s = thr.median_s
    result.peak_memory = thr.peak_memory
    result.peak_memory_method = thr.peak_memory_method
    result.batch_size = batch_size or DEFAULT_BATCH.get(torch.device(device).type, 16)
    result.threads = (threads or torch.get_num_threads()) if device == "cpu" else None
    result.repeats = repeats
    return result


def _engine_model(model: nn.Module, backend: str, device: str, optimize: str | None,
                  threads: int | None, include_frontend: bool) -> nn.Module:
    """``model`` exported to a temporary ONNX file and opened in ``backend``."""
    import tempfile

    from sedlib.deploy.backends import check_backend, runtime_model

    check_backend(backend)
    if optimize is not None or torch.device(device).type != "cpu":
        raise ValueError(f"backend {backend!r} times CPU inference of the exported model; it does "
                         f"not combine with optimize or device {device!r}")
    classes = [f"class{i}" for i in range(model.strong_head.out_features)]
    with tempfile.TemporaryDirectory(prefix="sedlib-profile-") as tmp:  # the engine has loaded the file
        return runtime_model(model, backend, classes, threads=threads, with_frontend=include_frontend,
                             cache_dir=tmp)


def profile_models(names: str | Sequence[str], **options: Any) -> list[ModelProfile]:
    """:func:`profile_model` for each name (options as there), in order; one at a time, the
    previous model freed before the next is built."""
    from tqdm import tqdm

    names = [names] if isinstance(names, str) else list(names)
    profiles = []
    for name in tqdm(names, desc="profile", unit="model", disable=len(names) < 2):
        log.info("profiling %s", name)
        profiles.append(profile_model(name, **options))
        gc.collect()
    return profiles


# --- output --------------------------------------------------------------------------------------

_COLUMNS = (  # header, width, formatter
    ("model", 18, lambda p: p.name),
    ("params", 11, lambda p: f"{p.params:,}"),
    ("backbone", 11, lambda p: _fmt_int(p.params_backbone)),
    ("seq", 11, lambda p: _fmt_int(p.params_seq)),
    ("heads", 9, lambda p: _fmt_int(p.params_heads)),
    ("MACs (M)", 9, lambda p: f"{p.macs / 1e6:.1f}"),
    ("DS MACs (M)", 11, lambda p: _fmt_mega(p.macs_deepspeed)),
    ("clips/s", 8, lambda p: "-" if p.throughput is None else f"{p.throughput:.1f}"),
    ("ms/batch", 9, lambda p: "-" if p.latency_s is None else f"{p.latency_s * 1e3:.0f}"),
    ("peak MiB", 8, lambda p: "-" if p.peak_memory is None else f"{p.peak_memory / 2**20:.0f}"),
)


def _fmt_mega(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}"


def _fmt_int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def format_table(profiles: Sequence[ModelProfile]) -> str:
    """A plain-text table, one row per model, with a footnote stating the settings."""
    head = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w, _) in enumerate(_COLUMNS))
    lines = [head, "-" * len(head)]
    for p in profiles:
        cells = [f(p) for _, _, f in _COLUMNS]
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, (_, w, _)) in enumerate(zip(cells, _COLUMNS))))
    if profiles:
        p = profiles[0]
        lines.append(f"MACs: one 10 s clip, {p.macs_input}; mel front end "
                     f"{(p.macs_frontend or 0) / 1e6:.1f} M. DS = DeepSpeed (0 for GRU/einsum).")
        timed = [q for q in profiles if q.throughput is not None]
        if timed:
            q = timed[0]
            extra = f", {q.threads} thread{'s' if q.threads != 1 else ''}" if q.threads else ""
            extra += f", optimize={q.optimize}" if q.optimize else ""
            extra += f", {q.backend} (exported to ONNX)" if q.backend != "torch" else ""
            fe = "included" if q.include_frontend else "excluded"
            lines.append(f"Throughput: {q.device} {q.dtype}, batch {q.batch_size}{extra}, median "
                         f"of {q.repeats}, front end {fe}. Peak memory: {q.peak_memory_method}.")
    return "\n".join(lines)


def write_csv(profiles: Sequence[ModelProfile], path: str | os.PathLike) -> Path:
    """Write one row per profile (all fields) to ``path`` atomically (:func:`sedlib.atomic.atomic_write`)."""
    fields = [f.name for f in dataclasses.fields(ModelProfile)]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            for p in profiles:
                writer.writerow(p.to_dict())

    return atomic_write(path, write)

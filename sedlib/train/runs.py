"""A training run's directory (resolved config, metrics log, checkpoints, final weights), its
random states, and its processes (torch.distributed as torchrun sets it up).

``RUN_DIR/``

* ``config.json``: the resolved configuration (model, TrainConfig, DistillConfig, AudioConfig,
  data specs, seed, versions), written when the run starts;
* ``metrics.jsonl``: one JSON object per line (training log steps and validations);
* ``checkpoint.pt``: everything needed to continue exactly (model, optimiser, scheduler, grad
  scaler, RNG states of every rank, data position), rewritten every N steps;
* ``model.safetensors``: the final weights, with safetensors metadata ``model`` (name),
  ``classes`` (JSON list) and ``format`` (``sedlib``), which ``sedlib detect`` reads.

Every file is written to a temporary name beside its target, flushed, fsynced and renamed
(``os.replace``): a process killed at any moment leaves the previous complete file or the new
one, never a torn one. Checkpoints hold only tensors, dicts, lists, tuples, numbers and strings,
so ``torch.load(path, weights_only=True)`` reads them (no code runs on load).
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from sedlib.atomic import atomic_write  # also runs.atomic_write, as before
from sedlib.errors import CheckpointError

log = logging.getLogger(__name__)

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.safetensors"
#: the weights of the best validation (PSDS1 macro) when a run keeps the best (sedlib finetune)
BEST_WEIGHTS = "best.safetensors"
CHECKPOINT_FORMAT = "sedlib-train-checkpoint"
CHECKPOINT_VERSION = 1


# --- atomic files (sedlib.atomic.atomic_write) -----------------------------------------------------

def write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: torch.save(dict(state), tmp))


def load_checkpoint_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``; CheckpointError names the file."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file fails anywhere inside the unpickler
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: not a readable training checkpoint ({why})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a sedlib training checkpoint (expected format "
                              f"{CHECKPOINT_FORMAT!r}; use --init for plain weights)")
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')}, this sedlib "
                              f"reads version {CHECKPOINT_VERSION}")
    return state


def weights_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata :func:`save_weights` wrote (``model``, ``classes``, ``step``, ...)."""
    from sedlib.models.checkpoints import checkpoint_metadata

    return checkpoint_metadata(path)


def save_weights(model: nn.Module, path: str | os.PathLike, *, model_name: str,
                 classes: Sequence[str], extra: Mapping[str, str] | None = None,
                 backbone_only: bool = False, half: bool = False) -> Path:
    """The model's state_dict as safetensors, atomically, with metadata ``model``, ``classes``
    (JSON list) and ``format`` ``sedlib`` (what :func:`sedlib.models.checkpoints.checkpoint_metadata` reads),
    plus ``extra`` strings. ``backbone_only``: only the backbone's ``model.*`` keys (a
    pre-trained backbone: :func:`sedlib.models.checkpoints.load_into` gives any model fresh heads).
    ``half``: floating-point tensors stored as float16 (half the file; loading upcasts them to
    float32, so the model stored is the rounded one: score that file, not the model in memory)."""
    from safetensors.torch import save_file

    sd = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()
          if not backbone_only or k.startswith("model.")}
    if half:
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
        extra = {**(extra or {}), "stored": "float16"}
    if not sd:
        raise ValueError(f"{model_name}: no backbone keys (model.*) to save")
    meta = {"format": "sedlib", "model": model_name, "classes": json.dumps(list(classes)),
            **{str(k): str(v) for k, v in (extra or {}).items()}}
    return atomic_write(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))


# --- metrics -------------------------------------------------------------------------------------

class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` (flushed per line) and mirrors
    numbers to TensorBoard when ``torch.utils.tensorboard`` can be imported (optional)."""

    def __init__(self, run_dir: Path, *, fresh: bool, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / METRICS
        self._fh = open(self.path, "w" if fresh else "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def write(self, record: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(dict(record)) + "\n")
        self._fh.flush()
        if self._tb is not None and "step" in record:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- random states -------------------------------------------------------------------------------

def capture_rng(generators: Mapping[str, np.random.Generator],
                device: torch.device | None = None) -> dict[str, Any]:
    """Every random state a training step reads, as plain data: the global torch generator (a
    uint8 tensor), the CUDA generator of ``device`` (a list with one tensor; empty off CUDA),
    Python ``random`` (lists) and the given numpy generators (their ``bit_generator.state``)."""
    version, internal, gauss = random.getstate()
    cuda = device is not None and device.type == "cuda"
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if cuda else [],
        "python": [version, list(internal), gauss],
        "numpy": {name: g.bit_generator.state for name, g in generators.items()},
    }


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, np.random.Generator],
                device: torch.device | None = None) -> None:
    """Inverse of :func:`capture_rng`; the generators are updated in place."""
    torch.set_rng_state(state["torch"])
    cuda = device is not None and device.type == "cuda"
    if bool(state["cuda"]) != cuda:  # moved between CPU and GPU: no bitwise continuation anyway
        log.warning("checkpoint written %s CUDA, resumed on %s: CUDA random state not restored",
                    "on" if state["cuda"] else "off", device)
    elif cuda:
        torch.cuda.set_rng_state(state["cuda"][0], device)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    missing = set(generators) - set(state["numpy"])
    if missing:
        raise CheckpointError(f"checkpoint has no state for generators {sorted(missing)}")
    for name, g in generators.items():
        g.bit_generator.state = state["numpy"][name]


def tensors_equal(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> list[str]:
    """Keys whose tensors differ (bitwise) or exist in only one mapping; empty when identical."""
    keys = sorted(set(a) | set(b))
    return [k for k in keys if k not in a or k not in b or a[k].dtype != b[k].dtype
            or a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]


# --- processes -----------------------------------------------------------------------------------

def derived_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for ``key`` under ``seed`` (numpy SeedSequence: independent streams)."""
    return int(np.random.SeedSequence(seed, spawn_key=key).generate_state(1, np.uint64)[0] >> 1)


class Distributed:
    """torch.distributed from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK): NCCL on
    CUDA, gloo on CPU. World size 1 without it; every helper is then a no-op."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.owned = False
        cuda = str(device).startswith("cuda")
        if self.world > 1 and not dist.is_initialized():
            if cuda:
                torch.cuda.set_device(local)
            dist.init_process_group("nccl" if cuda else "gloo")
            self.owned = True
        if dist.is_initialized():
            self.world, self.rank = dist.get_world_size(), dist.get_rank()
        self.device = torch.device(f"cuda:{local}" if cuda and self.world > 1 else device)

    def sum(self, t: Tensor) -> Tensor:
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (None elsewhere)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out

    def gather_scores(self, part: tuple[dict[str, np.ndarray], float, int], folder: Path
                      ) -> list | None:
        """Every rank's validation ``(scores, loss sum, clips)`` on rank 0 (None elsewhere),
        through ``.npz`` files in ``folder``: at AudioSet scale the scores are gigabytes, too
        much for an object collective (NCCL would stage them in GPU memory)."""
        if self.world == 1:
            return [part]
        folder.mkdir(parents=True, exist_ok=True)
        names = list(part[0])
        scores = np.stack([part[0][n] for n in names]) if names else np.zeros((0, 0, 0), np.float32)
        np.savez(folder / f"rank{self.rank}.npz", names=np.array(names, dtype=str), scores=scores,
                 totals=np.array([part[1], part[2]]))
        dist.barrier()
        if self.rank != 0:
            return None
        parts = []
        for r in range(self.world):
            with np.load(folder / f"rank{r}.npz", allow_pickle=False) as f:
                names, scores, (loss, clips) = f["names"], f["scores"], f["totals"]
                parts.append((dict(zip(names.tolist(), scores)), float(loss), int(clips)))
            (folder / f"rank{r}.npz").unlink()
        folder.rmdir()
        return parts

    def broadcast(self, obj: Any) -> Any:
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.owned:
            dist.destroy_process_group()


@dataclass
class RunResult:
    """What :func:`fit` leaves: the run directory, the trained model (unwrapped, on its device),
    the final step and epoch, every validation record and the final weights file."""

    run_dir: Path
    model: nn.Module
    step: int
    epoch: int
    validations: list[dict[str, Any]] = field(default_factory=list)
    weights: Path | None = None

"""Checkpoints: safe reading and writing of weights, and strict loading into a model through the
key adapter of the checkpoint's format (a release name is resolved in
:mod:`sedlib.models.releases` and downloaded by :mod:`sedlib.models.download`).

Formats (one named adapter each, :data:`sedlib.models.adapters.ADAPTERS`):

- ``sedlib``: our own layout (``model.fmn.*``, ``seq_model.*``, ``strong_head.*``, ``weak_head.*``).
- ``efficientsed``: EfficientSED release files (``fmnXX[...]_strong.pt``) and PretrainedSED's
  ``frame_mnXX_strong_1.pt``; keys as the reference loader maps them (SPEC 2.1).
- ``fmn_weak``: the AudioSet-Weak ``fmnXX_weak.pt`` files: same mapping, backbone kept, heads
  (trained on other classes) ignored, so any sequence model / class count can be put on top.
- ``efficientat``: EfficientAT ``mn*_as*.pt`` / ``mn*_im*.pt``: ``features.*`` -> backbone,
  ``classifier.*`` ignored. (Those backbones saw 32 kHz / hop 320 mels, not our frontend.)

Only plain tensors are ever unpickled (``torch.load(weights_only=True)``) or safetensors read.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor, nn

from sedlib.errors import CheckpointError
from sedlib.models.adapters import ADAPTERS, HEADS, detect_format
from sedlib.models.download import download
from sedlib.models.releases import get_release

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- reading


def load_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a ``.pt``/``.ckpt`` (plain tensors only) or ``.safetensors`` file into a CPU state_dict.

    Lightning checkpoints (``{"state_dict": ...}``) are unwrapped; fp16/bf16 tensors are upcast
    to fp32. A pickle holding anything but tensors and containers is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: object = load_file(str(path), device="cpu")
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise CheckpointError(
                f"refusing to unpickle {path}: it holds objects other than tensors, which "
                f"torch.load(weights_only=True) will not execute ({str(err).splitlines()[0]})"
            ) from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, expected a state_dict")
    out: dict[str, Tensor] = {}
    upcast = 0
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        if value.dtype in (torch.float16, torch.bfloat16):
            value = value.float()
            upcast += 1
        out[str(key)] = value
    if upcast:
        log.info("%s: upcast %d half-precision tensors to float32", path.name, upcast)
    return out


def save_state_dict(model_or_sd: nn.Module | Mapping[str, Tensor], path: str | os.PathLike) -> Path:
    """Write a state_dict as ``.safetensors`` (by suffix) or a plain ``torch.save`` file.
    Tensors are copied first: a TCN registers each conv twice (``conv1`` and ``net.0``, as the
    reference), and safetensors refuses tensors that share memory."""
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else dict(model_or_sd)
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.detach().to("cpu").clone() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    return path


# --------------------------------------------------------------------------- loading


@dataclass
class LoadReport:
    """What :func:`load_into` did: keys loaded, model keys left as they were (initialised),
    checkpoint keys not used (ignored), and whether the heads were reset."""

    loaded: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    heads_reset: bool = False
    skipped: list[str] = field(default_factory=list)  # non-strict only: unusable keys

    def __str__(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        if self.initialised:
            parts.append(f"initialised {len(self.initialised)} ({_short(self.initialised)})")
        if self.ignored:
            parts.append(f"ignored {len(self.ignored)} checkpoint keys ({_short(self.ignored)})")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} ({_short(self.skipped)})")
        return "; ".join(parts)


def _short(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n})" if len(keys) > n else "")


def load_into(model: nn.Module, state_dict: Mapping[str, Tensor], *, strict: bool = True) -> LoadReport:
    """Load a sedlib-layout state_dict into a :class:`~sedlib.models.sed.SEDModel`.

    Strict (default): every checkpoint key must exist in the model with the same shape, and
    every model key must be in the checkpoint, except in these recognised cases:

    - class count differs (head weights differ only in dim 0): the checkpoint's heads are
      dropped (logged) and the model's heads re-initialised;
    - backbone-only checkpoint (no ``seq_model.*``, no heads): backbone loaded, heads
      re-initialised, the sequence model keeps its current (fresh) values;
    - checkpoint without a sequence model loaded into a model with one (``fmnXX_strong`` under a
      new TF): backbone loaded, checkpoint heads ignored (they fit the backbone width), as the
      reference does.

    Anything else raises :class:`CheckpointError` listing missing and unexpected keys and the
    first shape mismatch. ``strict=False`` loads what fits and reports the rest as skipped.
    """
    target = model.state_dict()
    sd = dict(state_dict)
    report = LoadReport()
    model_has_seq = any(k.startswith("seq_model.") for k in target)
    ckpt_has_seq = any(k.startswith("seq_model.") for k in sd)
    ckpt_heads = [k for k in sd if k.startswith(HEADS)]
    allowed_missing: set[str] = set()
    reset_heads = False

    if model_has_seq and not ckpt_has_seq:
        # backbone transfer: seq model stays, heads (sized for the backbone) cannot be used
        report.ignored += ckpt_heads
        for k in ckpt_heads:
            del sd[k]
        allowed_missing |= {k for k in target if k.startswith(("seq_model.",) + HEADS)}
        reset_heads = True
    elif not ckpt_heads:
        allowed_missing |= {k for k in target if k.startswith(HEADS)}
        reset_heads = True
    else:
        for head in ("strong_head", "weak_head"):
            w, b = f"{head}.weight", f"{head}.bias"
            if w in sd and w in target and sd[w].dim() == 2 and sd[w].shape[1] == target[w].shape[1] \
                    and sd[w].shape[0] != target[w].shape[0]:
                log.info("checkpoint %s has %d classes, model %d: dropping the checkpoint heads",
                         head, sd[w].shape[0], target[w].shape[0])
                for k in (w, b):
                    if k in sd:
                        report.ignored.append(k)
                        del sd[k]
                allowed_missing |= {k for k in target if k.startswith(HEADS)}
                reset_heads = True
        if reset_heads:  # both heads are re-initialised together: drop the other one too
            for k in [k for k in sd if k.startswith(HEADS)]:
                report.ignored.append(k)
                del sd[k]

    missing = [k for k in target if k not in sd and k not in allowed_missing]
    unexpected = [k for k in sd if k not in target]
    mismatched = [(k, tuple(sd[k].shape), tuple(target[k].shape))
                  for k in sd if k in target and sd[k].shape != target[k].shape]
    if missing or unexpected or mismatched:
        if strict:
            lines = [f"checkpoint does not fit {getattr(model, 'name', type(model).__name__)}:"]
            if missing:
                lines.append(f"  missing {len(missing)} keys: {_short(missing, 8)}")
            if unexpected:
                lines.append(f"  unexpected {len(unexpected)} keys: {_short(unexpected, 8)}")
            if mismatched:
                k, got, want = mismatched[0]
                lines.append(f"  first shape mismatch: {k}: checkpoint {got}, model {want}"
                             + (f" (+{len(mismatched) - 1} more)" if len(mismatched) > 1 else ""))
            raise CheckpointError("\n".join(lines))
        report.skipped = unexpected + [k for k, _, _ in mismatched]
        for k in report.skipped:
            del sd[k]
        log.warning("non-strict load skipped %d checkpoint keys, %d model keys missing",
                    len(report.skipped), len(missing))

    model.load_state_dict(sd, strict=False)
    report.loaded = list(sd)
    report.initialised = [k for k in target if k not in sd]
    if reset_heads and hasattr(model, "reset_heads"):
        model.reset_heads()
        report.heads_reset = True
    if report.ignored:
        log.info("ignored checkpoint keys: %s", _short(report.ignored, 8))
    return report


def load_checkpoint(model: nn.Module, checkpoint: str | os.PathLike, *, fmt: str | None = None,
                    strict: bool = True) -> LoadReport:
    """Load a file path or a release name (downloaded to the cache) into ``model``.

    The key format is the release's, else ``fmt``, else guessed by :func:`detect_format`.
    """
    path = Path(checkpoint)
    if path.is_file():
        sd = load_state_dict(path)
    else:
        try:
            release = get_release(str(checkpoint))
        except ValueError:
            raise CheckpointError(f"checkpoint {checkpoint!s} is neither a file nor a release name "
                                  f"(see sedlib.models.releases.RELEASES)") from None
        fmt = fmt or release.format
        sd = load_state_dict(download(release.name))
    fmt = fmt or detect_format(sd)
    if fmt not in ADAPTERS:
        raise ValueError(f"unknown checkpoint format {fmt!r}; valid: {', '.join(ADAPTERS)}")
    sd, ignored = ADAPTERS[fmt](sd)
    report = load_into(model, sd, strict=strict)
    report.ignored = ignored + report.ignored
    log.info("%s -> %s: %s", checkpoint, getattr(model, "name", "model"), report)
    return report


def checkpoint_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (sedlib training writes ``model`` and
    ``classes`` (a JSON list)); empty for other files."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def canonical_name(name: str) -> str:
    """``name`` as the registry spells it (``fmn10+tf:256`` -> ``fmn10+TF:256``); unparsable names as given."""
    from sedlib.models.names import format_name, parse_name

    try:
        return format_name(parse_name(name))
    except ValueError:
        return name


def read_checkpoint(checkpoint: str | os.PathLike, name: str | None = None
                    ) -> tuple[str, dict[str, Tensor], dict[str, str], Path]:
    """A checkpoint file or release name (downloaded on first use) -> (model name, sedlib-layout
    state_dict, safetensors metadata, path). The model is the metadata's, else ``name``, else
    the release's; a ``name`` that contradicts the metadata is refused in one line."""
    path, fmt = Path(checkpoint), None
    if not path.is_file():
        try:
            release = get_release(str(checkpoint))
        except ValueError:
            raise CheckpointError(f"checkpoint {checkpoint!s} is neither a file nor a release name") from None
        fmt, path = release.format, download(release.name)
        name = name or release.model
    meta = checkpoint_metadata(path)
    if name is not None and meta.get("model") and canonical_name(meta["model"]) != canonical_name(name):
        raise CheckpointError(f"{path}: a checkpoint of {meta['model']}, not {name} (drop --model, or give "
                              f"the checkpoint of {name})")
    name = meta.get("model") or name
    if name is None:
        raise CheckpointError(f"{path}: the checkpoint does not name its model; pass --model")
    sd = load_state_dict(path)
    sd, _ = ADAPTERS[fmt or detect_format(sd)](sd)
    return name, sd, meta, path

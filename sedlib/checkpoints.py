"""Released checkpoints: catalogue, download (+ sha256), safe loading, key adapters, strict load.

Formats (one named adapter each, :data:`ADAPTERS`):

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

import hashlib
import logging
import os
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from sedlib.errors import CheckpointError
from sedlib.registry import SEQ_ALIASES, format_name, parse_name

log = logging.getLogger(__name__)

EFFICIENTSED_URL = "https://github.com/theMoro/EfficientSED/releases/download/v0.0.1/"
PRETRAINEDSED_URL = "https://github.com/fschmid56/PretrainedSED/releases/download/v0.0.1/"
EFFICIENTAT_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
HEADS = ("strong_head.", "weak_head.")
BACKBONE_PREFIX = "model.fmn."


@dataclass(frozen=True)
class Release:
    """One downloadable checkpoint: ``name`` (release name), the sedlib model it fits, its key
    format (a key of :data:`ADAPTERS`) and, where known, its sha256."""

    name: str
    url: str
    model: str
    format: str
    sha256: str | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _efficientsed_releases() -> dict[str, Release]:
    out: dict[str, Release] = {}
    seq_dims = {"04": (104,), "06": (160,), "10": (128, 256, 512, 1024), "20": (512,), "30": (768,)}
    for w, dims in seq_dims.items():
        for kind, fmt in (("strong", "efficientsed"), ("weak", "fmn_weak")):
            out[f"fmn{w}_{kind}"] = Release(f"fmn{w}_{kind}", f"{EFFICIENTSED_URL}fmn{w}_{kind}.pt",
                                            f"fmn{w}", fmt)
        for seq in ("gru", "hybrid", "tf"):
            for dim in dims:
                name = f"fmn{w}+{seq}-{dim}_strong"
                out[name] = Release(name, f"{EFFICIENTSED_URL}{name}.pt", release_to_model(name),
                                    "efficientsed")
    name = "fmn10+tf-256_advanced-kd-weak-strong"
    out[name] = Release(name, f"{EFFICIENTSED_URL}{name}.pt", "fmn10+TF:256", "efficientsed")
    for w in ("06", "10"):  # PretrainedSED's frame-wise MobileNets (keys model.frame_mn.*)
        name = f"frame_mn{w}_strong_1"
        out[name] = Release(name, f"{PRETRAINEDSED_URL}{name}.pt", f"fmn{w}", "efficientsed")
    return out


# EfficientAT (models/mn/model.py `pretrained_models`): key -> file stem. Only the backbone
# (features.*) is used; widths without an fmn name (mn01, mn02, mn05, mn40) need
# `registry.register_backbone("fmn40", 4.0, ...)` first.
_EFFICIENTAT_FILES = {
    "mn10_im_pytorch": "mn10_im_pytorch",
    **{f"mn{w}_im": f"mn{w}_im" for w in ("01", "02", "04", "05", "06", "10", "20", "30", "40")},
    "mn01_as": "mn01_as_mAP_298", "mn02_as": "mn02_as_mAP_378", "mn04_as": "mn04_as_mAP_432",
    "mn05_as": "mn05_as_mAP_443", "mn10_as": "mn10_as_mAP_471", "mn20_as": "mn20_as_mAP_478",
    "mn30_as": "mn30_as_mAP_482", "mn40_as": "mn40_as_mAP_484", "mn40_as(2)": "mn40_as_mAP_483",
    "mn40_as(3)": "mn40_as_mAP_483(2)", "mn40_as_no_im_pre": "mn40_as_no_im_pre_mAP_483",
    "mn40_as_no_im_pre(2)": "mn40_as_no_im_pre_mAP_483(2)",
    "mn40_as_no_im_pre(3)": "mn40_as_no_im_pre_mAP_482", "mn40_as_ext": "mn40_as_ext_mAP_487",
    "mn40_as_ext(2)": "mn40_as_ext_mAP_486", "mn40_as_ext(3)": "mn40_as_ext_mAP_485",
    "mn10_as_hop_5": "mn10_as_hop_5_mAP_475", "mn10_as_hop_15": "mn10_as_hop_15_mAP_463",
    "mn10_as_hop_20": "mn10_as_hop_20_mAP_456", "mn10_as_hop_25": "mn10_as_hop_25_mAP_447",
    "mn10_as_mels_40": "mn10_as_mels_40_mAP_453", "mn10_as_mels_64": "mn10_as_mels_64_mAP_461",
    "mn10_as_mels_256": "mn10_as_mels_256_mAP_474", "mn10_as_fc": "mn10_as_fc_mAP_465",
    "mn10_as_fc_s2221": "mn10_as_fc_s2221_mAP_466", "mn10_as_fc_s2211": "mn10_as_fc_s2211_mAP_466",
}


def _efficientat_releases() -> dict[str, Release]:
    return {key: Release(key, f"{EFFICIENTAT_URL}{stem}.pt", f"fmn{key[2:4]}", "efficientat")
            for key, stem in _EFFICIENTAT_FILES.items()}


_RELEASE_RE = re.compile(r"^(fmn\d\d)(?:\+([a-z]+)-(\d+))?_([a-z0-9-]+)$")


def release_to_model(release: str) -> str:
    """Release name -> sedlib model name: ``fmn10+tf-256_strong`` -> ``fmn10+TF:256``."""
    if release in RELEASES:
        return RELEASES[release].model
    m = _RELEASE_RE.match(release)
    if m is None:
        raise ValueError(f"not an EfficientSED release name: {release!r} "
                         f"(expected fmnXX[+seq-dim]_<pretraining>)")
    backbone, seq, dim, _ = m.groups()
    return backbone if seq is None else format_name(parse_name(f"{backbone}+{seq}:{dim}"))


def model_to_release(model: str, pretrained: str = "strong") -> str:
    """sedlib model name -> EfficientSED release name (``fmn10+TF:256`` -> ``fmn10+tf-256_strong``).
    Raises ValueError when no such checkpoint was released."""
    cfg = parse_name(model)
    seq = ""
    if cfg.seq_model is not None:
        aliases = {c: a for a, c in SEQ_ALIASES.items()}
        seq = f"+{aliases.get(cfg.seq_model, cfg.seq_model).lower()}-{cfg.seq_dim}"
    name = f"{cfg.backbone}{seq}_{pretrained}"
    if name not in RELEASES:
        have = sorted(n for n, r in RELEASES.items() if r.model == cfg.name)
        raise ValueError(f"no released checkpoint {name!r} for {cfg.name}; released for it: {have or 'none'}")
    return name


RELEASES: dict[str, Release] = {}
RELEASES.update(_efficientsed_releases())
RELEASES.update(_efficientat_releases())


def get_release(name: str) -> Release:
    """Look up a release by name or by file name (with or without ``.pt``)."""
    if name in RELEASES:
        return RELEASES[name]
    stem = name[:-3] if name.endswith(".pt") else name
    for release in RELEASES.values():
        if release.filename in (name, f"{stem}.pt"):
            return release
    raise ValueError(f"unknown release {name!r}; valid: {', '.join(RELEASES)}")


# --------------------------------------------------------------------------- download


def resolve_cache_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$SEDLIB_CACHE``, else ``~/.cache/sedlib``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get("SEDLIB_CACHE") or Path.home() / ".cache" / "sedlib")


def sha256sum(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(name: str, cache_dir: str | os.PathLike | None = None, url: str | None = None,
             sha256: str | None = None, progress: bool = True) -> Path:
    """Fetch a release (or ``url``, saved as file ``name``) into the cache and return its path.

    The file appears atomically (temporary file + ``os.replace``) and only after its sha256
    matched (the release's, or ``sha256``); a mismatch deletes the download and raises
    :class:`CheckpointError`. An existing cached file is re-verified, not re-downloaded.
    """
    release = None
    if url is None:
        release = get_release(name)
        url = release.url
        sha256 = sha256 or release.sha256
        filename = release.filename
    else:
        filename = Path(name).name if Path(name).suffix else f"{Path(name).name}.pt"
    folder = resolve_cache_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / filename
    if dest.exists():
        if sha256 is not None and (actual := sha256sum(dest)) != sha256.lower():
            raise CheckpointError(f"cached {dest} has sha256 {actual}, expected {sha256}; "
                                  f"delete it to download again")
        return dest
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".part")
    os.close(fd)
    try:
        log.info("downloading %s -> %s", url, dest)
        torch.hub.download_url_to_file(url, tmp, progress=progress)
        actual = sha256sum(tmp)
        if sha256 is None:
            log.info("%s: sha256 %s (no known hash to verify against)", filename, actual)
        elif actual != sha256.lower():
            raise CheckpointError(f"download of {url} has sha256 {actual}, expected {sha256}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


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
    """Write a state_dict as ``.safetensors`` (by suffix) or a plain ``torch.save`` file."""
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else dict(model_or_sd)
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    return path


# --------------------------------------------------------------------------- key adapters

Adapted = tuple[dict[str, Tensor], list[str]]  # (state_dict in sedlib layout, ignored keys)


def adapt_sedlib(sd: Mapping[str, Tensor]) -> Adapted:
    """Our own layout: unchanged."""
    return dict(sd), []


# backbone prefixes after ``net.`` -> ``model.``, longest first: Lightning files of the current
# reference wrapper (net.model.fmn.*), release files (net.model.* / model.model.*), PretrainedSED
_BACKBONE_ALIASES = ("model.model.fmn.", "model.model.frame_mn.", "model.model.", "model.frame_mn.")


def adapt_efficientsed(sd: Mapping[str, Tensor]) -> Adapted:
    """EfficientSED / PretrainedSED keys -> sedlib keys, as the reference loader renames them:
    ``net.`` -> ``model.``; ``model.model.`` (Lightning module) and ``model.frame_mn.``
    (PretrainedSED) -> ``model.fmn.``; any other ``model.`` prefix is dropped
    (``net.seq_model.*`` -> ``seq_model.*``). Also accepted: ``net.model.fmn.*`` (a Lightning
    file of the current reference wrapper, which the reference loader would mangle). Keys
    already in sedlib layout pass unchanged; mel-frontend keys (``model.mel.*``) are ignored."""
    out: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, value in sd.items():
        new = "model." + key[len("net."):] if key.startswith("net.") else key
        for old in _BACKBONE_ALIASES:
            if new.startswith(old):
                new = BACKBONE_PREFIX + new[len(old):]
                break
        if new.startswith("model.mel.") or new.startswith("model.mel_"):
            ignored.append(key)
            continue
        if new.startswith("model.") and not new.startswith(BACKBONE_PREFIX):
            new = new[len("model."):]
        if new in out:
            raise CheckpointError(f"keys collide after renaming: {key!r} -> {new!r}")
        out[new] = value
    return out, ignored


def adapt_fmn_weak(sd: Mapping[str, Tensor]) -> Adapted:
    """``fmnXX_weak.pt`` (AudioSet Weak pre-training): EfficientSED renaming, then only the
    backbone is kept; heads (other classes/features) and anything else are ignored."""
    renamed, ignored = adapt_efficientsed(sd)
    out = {k: v for k, v in renamed.items() if k.startswith(BACKBONE_PREFIX)}
    ignored += [k for k in renamed if not k.startswith(BACKBONE_PREFIX)]
    return out, ignored


def adapt_efficientat(sd: Mapping[str, Tensor]) -> Adapted:
    """EfficientAT ``mn`` files: ``features.*`` -> ``model.fmn.features.*``; ``classifier.*``
    ignored. Any other key is an error (not an EfficientAT MobileNet file)."""
    out: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, value in sd.items():
        if key.startswith("features."):
            out[BACKBONE_PREFIX + key] = value
        elif key.startswith("classifier."):
            ignored.append(key)
        else:
            raise CheckpointError(f"unexpected key {key!r} in an EfficientAT checkpoint "
                                  f"(expected features.* and classifier.*)")
    return out, ignored


ADAPTERS: dict[str, Callable[[Mapping[str, Tensor]], Adapted]] = {
    "sedlib": adapt_sedlib,
    "efficientsed": adapt_efficientsed,
    "fmn_weak": adapt_fmn_weak,
    "efficientat": adapt_efficientat,
}


def detect_format(sd: Mapping[str, Tensor]) -> str:
    """Guess the key format of a file of unknown origin from its key prefixes."""
    keys = list(sd)
    if keys and all(k.startswith(("features.", "classifier.")) for k in keys):
        return "efficientat"
    if any(k.startswith(("net.", "model.model.", "model.frame_mn.")) for k in keys):
        return "efficientsed"
    return "sedlib"


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
                                  f"(see sedlib.checkpoints.RELEASES)") from None
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

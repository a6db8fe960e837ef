"""The release catalogue: every released checkpoint (EfficientSED, PretrainedSED, EfficientAT)
with its URL, format, model name and sha256 where known, and the release <-> model name maps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sedlib.models.names import SEQ_ALIASES, format_name, parse_name

EFFICIENTSED_URL = "https://github.com/theMoro/EfficientSED/releases/download/v0.0.1/"


PRETRAINEDSED_URL = "https://github.com/fschmid56/PretrainedSED/releases/download/v0.0.1/"


EFFICIENTAT_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"


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

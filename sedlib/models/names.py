"""Model names: one grammar, one parser, the tables they read (built by :func:`sedlib.registry.create_model`).

Grammar (SPEC naming)::

    <backbone>[+<SEQ>][:<dim>]      fmn10   fmn10+TF:256   fmn04+HYBRID   fmn10+BiGRU:512

- ``<backbone>``: a key of :data:`BACKBONES` (fmn04, fmn06, fmn10, fmn20, fmn30; the test-only
  ``fmntiny`` is also accepted). Case-insensitive, canonical lower case.
- ``<SEQ>``: a key of :data:`SEQ_MODELS` (TF, ATT, BiGRU, TCN, MAMBA, HYBRID), case-insensitive;
  aliases ``gru`` -> BiGRU (the reference's ``--seq_model_type gru``) and ``attn`` -> ATT.
- ``:<dim>``: sequence-model dim (hidden size per direction for BiGRU). Missing: the reference
  default for the backbone (:data:`DEFAULT_DIMS`, from the reference ``config.py``). A dim without
  a sequence model is an error.

``format_name(parse_name(s))`` is the canonical spelling (``fmn10+gru`` -> ``fmn10+BiGRU:256``),
and ``parse_name(format_name(cfg)) == cfg`` for every config.

Unlisted backbones are always parseable but not in :func:`list_models`: the test-only
``fmntiny`` (width 0.1, so CI can build every sequence model in milliseconds) and the CPU
study's ``fmn02`` / ``fmn03`` (widths 0.2 / 0.3; not in the paper).
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from dataclasses import dataclass
from typing import Any

from torch import nn

from sedlib.models.backbone import embed_dim as _backbone_embed_dim

# backbone name -> width multiplier (SPEC 1.2 NAME_TO_WIDTH; no fallback for unknown names)
BACKBONES: dict[str, float] = {"fmn04": 0.4, "fmn06": 0.6, "fmn10": 1.0, "fmn20": 2.0, "fmn30": 3.0}
# backbone name -> default sequence-model dim (reference config.py; fmn10 uses the CLI default 256)
DEFAULT_DIMS: dict[str, int] = {"fmn04": 104, "fmn06": 160, "fmn10": 256, "fmn20": 512, "fmn30": 768}
# canonical sequence-model name -> module defining build(in_dim, dim, **options) -> nn.Module
SEQ_MODELS: dict[str, str] = {
    "TF": "sedlib.models.seq.tf",
    "ATT": "sedlib.models.seq.att",
    "BiGRU": "sedlib.models.seq.bigru",
    "TCN": "sedlib.models.seq.tcn",
    "MAMBA": "sedlib.models.seq.mamba",
    "HYBRID": "sedlib.models.seq.hybrid",
}
SEQ_ALIASES: dict[str, str] = {"gru": "BiGRU", "attn": "ATT"}

# The configurations of the study (SPEC 3.1 plus the MAMBA dims): backbone -> seq -> dims.
_SCALED = {"TF": None, "HYBRID": None, "BiGRU": None}  # None: the backbone's default dim
STUDY: dict[str, dict[str, tuple[int, ...] | None]] = {
    "fmn04": dict(_SCALED),
    "fmn06": dict(_SCALED),
    "fmn10": {seq: (128, 256, 512, 1024) for seq in ("TF", "ATT", "BiGRU", "TCN", "MAMBA", "HYBRID")},
    "fmn20": dict(_SCALED),
    "fmn30": dict(_SCALED),
}

_UNLISTED: set[str] = set()
_NAME_RE = re.compile(r"^(?P<backbone>[A-Za-z][A-Za-z0-9_]*)(?:\+(?P<seq>[A-Za-z]+))?(?::(?P<dim>[^:+]*))?$")


def register_backbone(name: str, width: float, default_dim: int, *, listed: bool = False) -> None:
    """Add a backbone width under ``name`` (lower case). Unlisted ones stay out of
    :func:`list_models` (test-only variants)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"backbone name must be lower-case alphanumeric, got {name!r}")
    if name in BACKBONES and (BACKBONES[name], DEFAULT_DIMS[name]) != (width, default_dim):
        raise ValueError(f"backbone {name!r} already registered with width {BACKBONES[name]}")
    BACKBONES[name] = float(width)
    DEFAULT_DIMS[name] = int(default_dim)
    if not listed:
        _UNLISTED.add(name)


register_backbone("fmntiny", 0.1, 32, listed=False)
# Quick-profile backbones of the CPU study (notebooks/quick.yaml): narrower than the paper's
# smallest (fmn04), named by width like the paper's; default dims ~256 x width, multiples of 32
# so every sequence model builds (MAMBA: headdim 64 at expand 2).
register_backbone("fmn02", 0.2, 64, listed=False)
register_backbone("fmn03", 0.3, 96, listed=False)


def register_seq_model(name: str, module: str) -> None:
    """Add a sequence model: ``module`` must define ``build(in_dim, dim, **options)``."""
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"sequence model names are letters only, got {name!r}")
    taken = {k.lower(): k for k in SEQ_MODELS} | {a: a for a in SEQ_ALIASES}
    if name.lower() in taken and SEQ_MODELS.get(name) != module:
        raise ValueError(f"sequence model {name!r} clashes with existing {taken[name.lower()]!r}")
    SEQ_MODELS[name] = module


@dataclass(frozen=True)
class ModelConfig:
    """A parsed model name. ``seq_model`` None means backbone + heads only (``seq_dim`` None)."""

    backbone: str = "fmn10"
    seq_model: str | None = None
    seq_dim: int | None = None

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; valid: {', '.join(BACKBONES)}")
        if self.seq_model is None:
            if self.seq_dim is not None:
                raise ValueError(f"seq_dim={self.seq_dim} given without a sequence model")
        else:
            if self.seq_model not in SEQ_MODELS:
                raise ValueError(f"unknown sequence model {self.seq_model!r}; "
                                 f"valid: {', '.join(SEQ_MODELS)}")
            if self.seq_dim is None:
                object.__setattr__(self, "seq_dim", DEFAULT_DIMS[self.backbone])
            if not isinstance(self.seq_dim, int) or self.seq_dim <= 0:
                raise ValueError(f"seq_dim must be a positive int, got {self.seq_dim!r}")

    @property
    def width(self) -> float:
        return BACKBONES[self.backbone]

    @property
    def embed_dim(self) -> int:
        """Backbone output channels (E)."""
        return embed_dim(self.width)

    @property
    def name(self) -> str:
        return format_name(self)


def embed_dim(width: float) -> int:
    """Backbone embedding size at a width multiplier: 6 x make_divisible(160 x width)."""
    return _backbone_embed_dim(width)


def _canonical_seq(seq: str) -> str:
    lowered = seq.lower()
    if lowered in SEQ_ALIASES:
        return SEQ_ALIASES[lowered]
    for canonical in SEQ_MODELS:
        if canonical.lower() == lowered:
            return canonical
    raise ValueError(f"unknown sequence model {seq!r}; valid: {', '.join(SEQ_MODELS)} "
                     f"(aliases: {', '.join(f'{a}={c}' for a, c in SEQ_ALIASES.items())})")


def parse_name(name: str) -> ModelConfig:
    """``"fmn10+TF:256"`` -> ``ModelConfig("fmn10", "TF", 256)``; raises ValueError naming the
    bad part and the valid choices."""
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string, got {type(name).__name__}")
    m = _NAME_RE.match(name.strip())
    if m is None:
        raise ValueError(f"cannot parse model name {name!r}; expected <backbone>[+<seq>][:<dim>], "
                         f"e.g. fmn10, fmn10+TF:256")
    backbone = m["backbone"].lower()
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {m['backbone']!r} in {name!r}; valid: {', '.join(BACKBONES)}")
    seq = _canonical_seq(m["seq"]) if m["seq"] is not None else None
    dim = None
    if m["dim"] is not None:
        if not m["dim"].isdigit() or int(m["dim"]) <= 0:
            raise ValueError(f"bad dim {m['dim']!r} in {name!r}; expected a positive integer")
        if seq is None:
            raise ValueError(f"dim given without a sequence model in {name!r}; "
                             f"e.g. {backbone}+TF:{m['dim']}")
        dim = int(m["dim"])
    return ModelConfig(backbone, seq, dim)


def format_name(cfg: ModelConfig) -> str:
    """Canonical spelling: ``fmn10``, ``fmn10+BiGRU:256``."""
    if cfg.seq_model is None:
        return cfg.backbone
    return f"{cfg.backbone}+{cfg.seq_model}:{cfg.seq_dim}"


def list_models(pattern: str | None = None, *, include_unlisted: bool = False) -> list[str]:
    """Canonical names of the study's configurations: every row of SPEC 3.1 (fmn04..fmn30 alone;
    fmn10 with TF/ATT/BiGRU/TCN/HYBRID/MAMBA at 128, 256, 512, 1024; fmn04/06/20/30 with TF,
    HYBRID, BiGRU at their scaled dim). ``pattern`` is an fnmatch filter (``"fmn10+*"``).
    ``include_unlisted`` adds each test-only backbone alone and with every sequence model."""
    names: list[str] = []
    for backbone, seqs in STUDY.items():
        names.append(backbone)
        for seq, dims in seqs.items():
            for dim in dims or (DEFAULT_DIMS[backbone],):
                names.append(format_name(ModelConfig(backbone, seq, dim)))
    if include_unlisted:
        for backbone in sorted(_UNLISTED):
            names.append(backbone)
            names.extend(format_name(ModelConfig(backbone, seq)) for seq in SEQ_MODELS)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())]
    return names


def build_seq_model(seq: str, in_dim: int, dim: int, **options: Any) -> nn.Module:
    """Import the sequence model's module lazily and call its ``build``."""
    module_name = SEQ_MODELS[_canonical_seq(seq)]
    module = importlib.import_module(module_name)
    seq_model = module.build(in_dim, dim, **options)
    if not hasattr(seq_model, "out_dim"):
        raise TypeError(f"{module_name}.build() returned a module without `out_dim`")
    return seq_model

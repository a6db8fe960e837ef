"""``create_model``: build any model of the registry by name, optionally with released or own
weights. The name grammar and the tables it reads live in :mod:`sedlib.models.names` (re-exported
here for users: ``sedlib.models.names.parse_name``, ``SEQ_MODELS``, ``register_seq_model``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sedlib.models.checkpoints import load_checkpoint
from sedlib.models.names import (  # noqa: F401
    BACKBONES,
    DEFAULT_DIMS,
    SEQ_ALIASES,
    SEQ_MODELS,
    STUDY,
    ModelConfig,
    build_seq_model,
    embed_dim,
    format_name,
    list_models,
    parse_name,
    register_backbone,
    register_seq_model,
)
from sedlib.models.sed import SEDModel


def create_model(name: str | ModelConfig, *, num_classes: int = 447,
                 checkpoint: str | Path | None = None, **seq_options: Any) -> SEDModel:
    """Build a model by name; optionally load a checkpoint (a file path or a release name from
    :data:`sedlib.models.releases.RELEASES`, downloaded on first use) strictly via
    :func:`sedlib.models.checkpoints.load_into`. ``seq_options`` go to the sequence model's ``build``.
    """
    cfg = parse_name(name) if isinstance(name, str) else name
    model = SEDModel(cfg, num_classes=num_classes, **seq_options)
    if checkpoint is not None:
        model.load_report = load_checkpoint(model, checkpoint)
    return model

"""Models: the frame-wise MobileNetV3 backbone, the sequence models (``seq/``, one file each),
their assembly, the name grammar, checkpoints and the inference fast path.

- :mod:`~sedlib.models.names`: ``parse_name`` / ``format_name`` / ``list_models`` and the tables
  (backbones, sequence models) that :func:`sedlib.registry.create_model` builds from.
- :mod:`~sedlib.models.backbone`, :mod:`~sedlib.models.seq`, :mod:`~sedlib.models.sed`.
- :mod:`~sedlib.models.releases` (catalogue), :mod:`~sedlib.models.download`,
  :mod:`~sedlib.models.adapters` (one key adapter per foreign format),
  :mod:`~sedlib.models.checkpoints` (safe reading, strict loading).
- :mod:`~sedlib.models.fuse`, :mod:`~sedlib.models.gru_infer`: ``optimize_for_inference``.
- :mod:`~sedlib.models.random_init`: ``with_live_activations`` (random weights whose logits
  depend on the input, for comparing implementations).

May import: ``sedlib.config``, ``sedlib.errors``.
"""

from sedlib._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "SEDModel": ".sed", "FrameMobileNet": ".backbone", "optimize_for_inference": ".fuse",
    "load_checkpoint": ".checkpoints", "load_state_dict": ".checkpoints",
    "save_state_dict": ".checkpoints", "RELEASES": ".releases", "get_release": ".releases",
    "parse_name": ".names", "format_name": ".names",
    "list_models": ".names", "ModelConfig": ".names", "with_live_activations": ".random_init",
})

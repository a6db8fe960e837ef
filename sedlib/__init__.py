"""sedlib: low-complexity sound event detection (EfficientSED) as a library.

Nothing runs on import (torch is imported only when a name below is first used)::

    import sedlib
    model = sedlib.create_model("fmn10+TF:256")          # (B, 1, 128, T) -> strong, weak logits
    frontend = sedlib.MelFrontend()                      # (B, N) 16 kHz -> (B, 1, 128, T)
    events = sedlib.detect("recording.wav", "fmn10+TF:256")

Rooms (subpackages), data flowing one way, each importing only the ones above it:
``config``/``errors`` -> ``audio`` -> ``data`` -> ``models`` (+ ``registry``) -> ``evaluate`` ->
``detect`` / ``train`` / ``complexity`` -> ``study`` -> ``commands`` / ``cli``.
"""

from __future__ import annotations

from sedlib._exports import lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__, _names = lazy_exports(__name__, {
    "AudioConfig": "sedlib.config",
    "MelFrontend": "sedlib.audio.frontend",
    "load_audio": "sedlib.audio.io",
    "create_model": "sedlib.registry",
    "list_models": "sedlib.models.names",
    "parse_name": "sedlib.models.names",
    "format_name": "sedlib.models.names",
    "ModelConfig": "sedlib.models.names",
    "SEDModel": "sedlib.models.sed",
    "optimize_for_inference": "sedlib.models.fuse",
    "load_checkpoint": "sedlib.models.checkpoints",
    "download": "sedlib.models.download",
    "Vocabulary": "sedlib.data.labels",
    "Event": "sedlib.data.labels",
    "psds_report": "sedlib.evaluate.report",
    "median_filter": "sedlib.evaluate.postprocess",
    "detect": "sedlib.detect.detector",
    "Detector": "sedlib.detect.detector",
    "profile_model": "sedlib.complexity.profile",
    "profile_models": "sedlib.complexity.profile",
})
__all__ = ["__version__", *_names]

"""sedlib: low-complexity sound event detection (EfficientSED) as a library.

Nothing runs on import (torch is imported only when a name below is first used)::

    import sedlib
    model = sedlib.create_model("fmn10+TF:256")          # (B, 1, 128, T) -> strong, weak logits
    frontend = sedlib.MelFrontend()                      # (B, N) 16 kHz -> (B, 1, 128, T)
    events = sedlib.detect("recording.wav", "fmn10+TF:256")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily on first attribute access)
_LAZY: dict[str, str] = {
    "AudioConfig": "sedlib.config",
    "MelFrontend": "sedlib.frontend",
    "load_audio": "sedlib.audio",
    "create_model": "sedlib.registry",
    "list_models": "sedlib.registry",
    "parse_name": "sedlib.registry",
    "format_name": "sedlib.registry",
    "ModelConfig": "sedlib.registry",
    "SEDModel": "sedlib.models.sed",
    "optimize_for_inference": "sedlib.models.fuse",
    "load_checkpoint": "sedlib.checkpoints",
    "download": "sedlib.checkpoints",
    "Vocabulary": "sedlib.data.labels",
    "Event": "sedlib.data.labels",
    "psds_report": "sedlib.evaluate",
    "median_filter": "sedlib.evaluate",
    "detect": "sedlib.detect",
    "Detector": "sedlib.detect",
    "profile_model": "sedlib.profile",
    "profile_models": "sedlib.profile",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sedlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

"""Detection: any-length audio -> frame scores (10 s windows) -> events -> DCASE TSV, Audacity
labels or JSON.

- :mod:`~sedlib.detect.detector`: ``Detector``, ``detect``, ``detect_files``, model loading.
- :mod:`~sedlib.detect.stream`: ``stream_events``, ``StreamDetector`` (live sources, events as
  they are decided; equal to ``detect`` on a file).

May import: ``sedlib.config``, ``sedlib.errors``, ``sedlib.audio``, ``sedlib.data``,
``sedlib.models``, ``sedlib.registry``, ``sedlib.trained``, ``sedlib.evaluate``, ``sedlib.deploy``.
"""

from sedlib._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    name: ".detector" for name in (
        "Detector", "detect", "detect_files", "load_detector_model", "format_events",
        "write_events", "resolve_vocabulary", "checkpoint_metadata")
} | {"stream_events": ".stream", "StreamDetector": ".stream"})

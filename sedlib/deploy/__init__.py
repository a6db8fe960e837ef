"""Running a detector outside PyTorch: ONNX export checked in ONNX Runtime, and the ONNX Runtime
model that detection runs in a PyTorch model's place.

- :mod:`~sedlib.deploy.onnx_export`: ``export_onnx``, ``ExportError``.
- :mod:`~sedlib.deploy.onnx_runtime`: ``OnnxDetectorModel``, ``OpenVinoDetectorModel``.
- :mod:`~sedlib.deploy.backends`: ``BACKENDS``, ``runtime_model`` (a model in an engine, exported
  once into the cache), ``open_exported``.
- :mod:`~sedlib.deploy.frontend_graph`: the log-mel front end as an exportable graph.
- :mod:`~sedlib.deploy.quantize`: ``quantize_int8`` (ONNX Runtime static quantization).

An exported file carries the model's name, class names, sample rate and output frame length, so
``sedlib detect --checkpoint model.onnx`` needs nothing else.

May import: ``sedlib.config``, ``sedlib.errors``, ``sedlib.audio``, ``sedlib.data``,
``sedlib.models``, ``sedlib.registry``.
"""

from sedlib._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "export_onnx": ".onnx_export", "ExportError": ".onnx_export", "OnnxDetectorModel": ".onnx_runtime",
    "quantize_int8": ".quantize", "OpenVinoDetectorModel": ".onnx_runtime", "BACKENDS": ".backends",
    "runtime_model": ".backends", "open_exported": ".backends",
})

"""An exported detector run by an inference engine, usable wherever a sedlib model is
(``Detector``): log-mel ``(B, 1, 128, T)`` (or, exported with the front end, the waveform
``(B, N)``) -> ``(strong (B, K, T/4), weak (B, K))`` logits as torch tensors.

- :class:`OnnxDetectorModel`: ONNX Runtime's CPU provider (the export's own check runs there).
- :class:`OpenVinoDetectorModel`: OpenVINO's CPU plugin, precision pinned to f32 (on CPUs with
  AVX-512 BF16/AMX OpenVINO would otherwise compute in bf16: not the exported function).

Files are checked when opened: a file that is not ONNX (or is truncated), an ONNX graph that
sedlib did not export (no ``sedlib_model`` / ``classes`` metadata) or one without the ``mel``
input each give one line naming the file and what was expected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sedlib.errors import CheckpointError


class ExportedDetectorModel(nn.Module):
    """Base of the engine-backed models. ``path``: a file written by
    :func:`sedlib.deploy.onnx_export.export_onnx` (or ``sedlib export``). ``threads``: the
    engine's intra-op threads (None: its default, all cores). Attributes ``name`` (the registry
    name the file was exported from), ``classes``, ``num_classes``, ``sample_rate``,
    ``frame_seconds``, ``takes_waveform``. No parameters: ``.to()`` and ``.eval()`` change
    nothing; inputs are taken to the CPU and outputs come back there."""

    backend = ""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such ONNX file")
        try:
            meta, inputs = self._open(threads)
        except CheckpointError:
            raise
        except Exception as err:
            raise CheckpointError(f"{self.path}: not a readable ONNX model (truncated or another "
                                  f"format?): {str(err).splitlines()[0][:160]}") from None
        missing = [k for k in ("sedlib_model", "classes") if k not in meta]
        if missing:
            raise CheckpointError(f"{self.path}: an ONNX model without sedlib's metadata {missing}; "
                                  f"export it with `sedlib export`")
        if [n for n, _ in inputs] not in (["mel"], ["waveform"]):
            raise CheckpointError(f"{self.path}: expected one input, 'mel' (B, 1, 128, T) or 'waveform' "
                                  f"(B, N), found {inputs}")
        self.input = inputs[0][0]
        self.takes_waveform = self.input == "waveform"  # exported --with-frontend
        self.name = meta["sedlib_model"]
        self.classes = json.loads(meta["classes"])
        self.num_classes = len(self.classes)
        self.sample_rate = int(meta.get("sample_rate", 16000))
        self.frame_seconds = float(meta.get("frame_seconds", 0.04))
        self.max_mel_frames = int(meta["max_mel_frames"]) if "max_mel_frames" in meta else None

    def _open(self, threads: int | None) -> tuple[dict[str, str], list[tuple[str, object]]]:
        """Load the file into the engine; return its metadata and its inputs (name, shape)."""
        raise NotImplementedError

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, 128, T) log-mel, or (B, N) 16 kHz waveform for a graph with the front end
        (``takes_waveform``) -> (strong (B, K, T/4), weak (B, K)) logits."""
        if self.takes_waveform and x.dim() != 2:
            raise CheckpointError(f"{self.path}: expected a waveform (B, N), got {tuple(x.shape)}")
        if not self.takes_waveform and (x.dim() != 4 or x.shape[1:3] != (1, 128)):
            raise CheckpointError(f"{self.path}: expected log-mel (B, 1, 128, T), got {tuple(x.shape)}")
        frames = x.shape[-1] if not self.takes_waveform else x.shape[-1] // round(self.sample_rate / 100) + 1
        if self.max_mel_frames is not None and frames > self.max_mel_frames:
            raise CheckpointError(f"{self.path}: {frames} log-mel frames in one window; this graph is exact "
                                  f"for up to {self.max_mel_frames} (its minGRU scan); use shorter windows")
        strong, weak = self._run(np.ascontiguousarray(x.detach().float().cpu().numpy()))
        return torch.from_numpy(np.asarray(strong)), torch.from_numpy(np.asarray(weak))


class OnnxDetectorModel(ExportedDetectorModel):
    """An exported file in ONNX Runtime (CPU execution provider)."""

    backend = "onnxruntime"

    def _open(self, threads):
        from sedlib.deploy.onnx_export import _session

        self.session = _session(self.path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        return meta, [(i.name, i.shape) for i in self.session.get_inputs()]

    def _run(self, x):
        return self.session.run(["strong", "weak"], {self.input: x})


class OpenVinoDetectorModel(ExportedDetectorModel):
    """An exported file in OpenVINO (CPU plugin, f32, latency hint; needs ``openvino``)."""

    backend = "openvino"

    def _open(self, threads):
        try:
            import openvino as ov
            import openvino.properties as props
            import openvino.properties.hint as hints
        except ImportError as err:
            raise CheckpointError(f"--backend openvino needs the package openvino (pip install openvino): "
                                  f"{err}") from None
        config = {hints.inference_precision(): ov.Type.f32,
                  hints.performance_mode(): hints.PerformanceMode.LATENCY}
        if threads is not None:
            config[props.inference_num_threads()] = int(threads)
        core = ov.Core()
        graph = core.read_model(str(self.path))  # raises on a truncated or foreign file
        framework = graph.get_rt_info(["framework"]).astype(dict) if graph.has_rt_info(["framework"]) else {}
        meta = {key: value.astype(str) for key, value in framework.items()}  # the ONNX metadata_props
        self.compiled = core.compile_model(graph, "CPU", config)
        self.request = self.compiled.create_infer_request()
        return meta, [(i.get_any_name(), i.get_partial_shape()) for i in self.compiled.inputs]

    def _run(self, x):
        out = self.request.infer({self.input: x})
        return (out[self.compiled.output("strong")].copy(), out[self.compiled.output("weak")].copy())

"""An exported detector run by ONNX Runtime, usable wherever a sedlib model is (``Detector``):
log-mel ``(B, 1, 128, T)`` (or, exported with the front end, the waveform ``(B, N)``) ->
``(strong (B, K, T/4), weak (B, K))`` logits as torch tensors.

Files are checked when opened: a file that is not ONNX (or is truncated), an ONNX graph that
sedlib did not export (no ``sedlib_model`` / ``classes`` metadata) or one without the ``mel``
input each give one line naming the file and what was expected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from sedlib.errors import CheckpointError


class OnnxDetectorModel(nn.Module):
    """``path``: a file written by :func:`sedlib.deploy.onnx_export.export_onnx` (or
    ``sedlib export``). ``threads``: ONNX Runtime intra-op threads (None: its default, all
    cores). Attributes ``name`` (the registry name the file was exported from), ``classes``,
    ``num_classes``, ``sample_rate``, ``frame_seconds``. No parameters: ``.to()`` and ``.eval()``
    change nothing; inputs are taken to the CPU and outputs come back there."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        from sedlib.deploy.onnx_export import _session

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such ONNX file")
        try:
            self.session = _session(self.path, threads)
        except Exception as err:
            raise CheckpointError(f"{self.path}: not a readable ONNX model (truncated or another "
                                  f"format?): {str(err).splitlines()[0][:160]}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [k for k in ("sedlib_model", "classes") if k not in meta]
        if missing:
            raise CheckpointError(f"{self.path}: an ONNX model without sedlib's metadata {missing}; "
                                  f"export it with `sedlib export`")
        inputs = [(i.name, i.shape) for i in self.session.get_inputs()]
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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, 128, T) log-mel, or (B, N) 16 kHz waveform for a graph with the front end
        (``takes_waveform``) -> (strong (B, K, T/4), weak (B, K)) logits."""
        if self.takes_waveform and x.dim() != 2:
            raise CheckpointError(f"{self.path}: expected a waveform (B, N), got {tuple(x.shape)}")
        if not self.takes_waveform and (x.dim() != 4 or x.shape[1:3] != (1, 128)):
            raise CheckpointError(f"{self.path}: expected log-mel (B, 1, 128, T), got {tuple(x.shape)}")
        strong, weak = self.session.run(["strong", "weak"], {self.input: x.detach().float().cpu().numpy()})
        return torch.from_numpy(strong), torch.from_numpy(weak)

"""Post-training int8 quantization of an exported detector (ONNX Runtime static quantization).

Not exact, so never a default: weights int8 per channel, activations uint8, QDQ format,
activation ranges calibrated (min/max) on the log-mel of real clips from a data spec (the
embedded synthetic set by default). The result keeps the source file's sedlib metadata, so
``sedlib detect --checkpoint model-int8.onnx`` runs it like any exported file. What it costs in
accuracy is measured, not assumed: ``benchmarks/bench_int8.py`` reports speed, the largest logit
deviation and the PSDS change with its interval.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import torch

from sedlib.deploy.onnx_export import ExportError

log = logging.getLogger(__name__)

#: Calibration clips by default (their log-mel sets the activation ranges).
CALIBRATION_CLIPS = 64


def calibration_mels(spec: str, clips: int, *, clip_seconds: float = 10.0,
                     batch_size: int = 8) -> list[torch.Tensor]:
    """Log-mel batches ``(b, 1, 128, T)`` of the first ``clips`` clips of ``spec``'s train
    split (``synth:N:SEED[:world=...]`` or a folder spec, as ``--data`` takes it)."""
    from sedlib.audio.frontend import MelFrontend
    from sedlib.config import AudioConfig, project_path
    from sedlib.data.spec import open_source, resolve_spec_paths

    audio = AudioConfig(clip_seconds=clip_seconds)
    data = open_source(resolve_spec_paths(spec, project_path), split="train", audio_config=audio)
    if len(data) < clips:
        raise ExportError(f"calibration data {spec!r} has {len(data)} clips, {clips} asked for")
    frontend = MelFrontend(audio).eval()
    with torch.no_grad():
        return [frontend(torch.stack([torch.as_tensor(data[i]["waveform"])
                                      for i in range(j, min(j + batch_size, clips))]))
                for j in range(0, clips, batch_size)]


def quantize_int8(source: str | os.PathLike, out: str | os.PathLike, *,
                  calibration: str = "synth:64:7:world=context", clips: int = CALIBRATION_CLIPS,
                  clip_seconds: float = 10.0) -> Path:
    """``source`` (an exported ``mel``-input file) -> ``out``, int8 (module doc), atomically."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)

    from sedlib.deploy.onnx_runtime import OnnxDetectorModel

    src = OnnxDetectorModel(source)  # checks the file
    if src.takes_waveform:
        raise ExportError(f"{source}: quantize a graph without the front end (log-mel input)")
    batches = calibration_mels(calibration, clips, clip_seconds=clip_seconds)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self):
            mel = next(self.batches, None)
            return None if mel is None else {"mel": mel.numpy()}

    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)  # its INFO chatter
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        pre, q = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        try:
            quant_pre_process(str(source), str(pre))
        except Exception as err:  # its symbolic shape inference fails on some graphs (rotary attention)
            log.debug("symbolic shape inference failed (%s); pre-processing without it", err)
            quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(q), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
        graph = onnx.load(str(q))
        del graph.metadata_props[:]
        graph.metadata_props.extend(onnx.load(str(source)).metadata_props)
        graph.metadata_props.add(key="quantized", value=f"int8 static, {clips} clips of {calibration}")
        onnx.save(graph, str(q))
        os.replace(q, out)
    return out

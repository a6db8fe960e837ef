"""sedlib.deploy: ONNX export checked in ONNX Runtime, the ONNX Runtime detector, `sedlib export`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sedlib import cli
from sedlib.deploy.onnx_export import ExportError, export_onnx
from sedlib.deploy.onnx_runtime import OnnxDetectorModel
from sedlib.errors import CheckpointError
from sedlib.models.random_init import with_live_activations
from sedlib.registry import create_model
SHIPPED_BIGRU = "data/checkpoints/context/fmn04+bigru-104_teacher.safetensors"


FAMILIES = ["fmntiny", "fmntiny+BiGRU:16", "fmntiny+TCN:16", "fmntiny+TF:16", "fmntiny+ATT:32",
            "fmntiny+HYBRID:16", "fmntiny+MAMBA:64"]


@pytest.mark.parametrize("name", FAMILIES)
def test_export_reproduces_the_model_in_onnx_runtime(name, tmp_path):
    """Every family exports (HYBRID and MAMBA through their export formulations), on live random
    weights (logits that depend on the input). Dynamic batch and time: ONNX Runtime equals
    PyTorch within 1e-4 at 4 s, 6.7 s and 10 s and at a fourth length; the file names its model
    and classes; the model is left in its training formulation."""
    torch.manual_seed(0)
    model = with_live_activations(create_model(name, num_classes=3))
    path = tmp_path / "m.onnx"
    deviation = export_onnx(model, path, classes=["a", "b", "c"])
    assert set(deviation) == {401, 667, 1001} and max(deviation.values()) <= 1e-4
    assert {getattr(m, "scan", None) for m in model.modules()} <= {None, "log", "chunked"}
    onnx_model = OnnxDetectorModel(path, threads=1)
    assert (onnx_model.name, onnx_model.classes, onnx_model.sample_rate) == (name, ["a", "b", "c"], 16000)
    assert onnx_model.frame_seconds == pytest.approx(0.04)
    mel = torch.randn(3, 1, 128, 250)
    with torch.no_grad():
        ref = model(mel)
    assert float(ref[0].std(0).mean()) > 0.01  # the logits depend on the input
    out = onnx_model(mel)
    assert [o.shape for o in out] == [(3, 3, 63), (3, 3)]
    for o, r in zip(out, ref):
        assert torch.allclose(o, r, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_export_with_the_front_end_reproduces_frontend_and_model(name, tmp_path):
    """The waveform graph of every family equals MelFrontend + the model within the front-end
    tolerance at the three lengths (random weights with live activations, noise input)."""
    from sedlib.deploy.onnx_export import FRONTEND_TOLERANCE

    torch.manual_seed(0)
    model = with_live_activations(create_model(name, num_classes=3))
    deviation = export_onnx(model, tmp_path / "w.onnx", classes=["a", "b", "c"], with_frontend=True)
    assert set(deviation) == {401, 667, 1001} and max(deviation.values()) <= FRONTEND_TOLERANCE
    assert OnnxDetectorModel(tmp_path / "w.onnx").takes_waveform


REAL_SCALE = ["fmn10", "fmn10+BiGRU:256", "fmn10+TCN:256", "fmn10+TF:256", "fmn10+ATT:256",
              "fmn10+HYBRID:256", "fmn10+MAMBA:256"]


def _assert_exports_at_three_lengths(model, path, classes):
    deviation = export_onnx(model, path, classes=classes)
    assert set(deviation) == {401, 667, 1001}
    engine = OnnxDetectorModel(path, threads=1)
    mel = torch.randn(2, 1, 128, 1001, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(mel)
    scale = max(float(r.abs().max()) for r in ref)
    for o, r in zip(engine(mel), ref):
        assert float((o - r).abs().max()) <= 1e-4 * max(1.0, scale)
    return scale


@pytest.mark.parametrize("name", REAL_SCALE)
def test_every_family_exports_at_the_reference_scale(name, tmp_path):
    """The paper's fmn10 with each family at width 256 and AudioSet Strong's 447 classes,
    initialised as the reference does (BatchNorm statistics on noise so the logits are live):
    logits reach ~8, and float32 accumulation over a TCN's dilated convolutions differs by up to
    1.1e-4 in absolute terms (seed 2: the export was refused before the tolerance scaled with
    the logits). Every family exports and runs in ONNX Runtime at 4 s, 6.7 s and 10 s."""
    torch.manual_seed(2)
    model = with_live_activations(create_model(name, num_classes=447))
    scale = _assert_exports_at_three_lengths(model, tmp_path / "m.onnx", [str(i) for i in range(447)])
    assert scale > (5.0 if "TCN" in name else 0.5)  # the TCN case: logits up to ~8


@pytest.mark.parametrize("family", ["TF:104", "BiGRU:104", "TCN:104", "ATT:128", "HYBRID:104", "MAMBA:128"])
def test_every_family_exports_with_trained_weights(family, tmp_path):
    """Trained scale: the shipped context backbone (trained, live activations of its own) under
    each family's sequence model and heads; for TF and BiGRU the whole shipped teacher."""
    from sedlib.models.checkpoints import load_checkpoint

    torch.manual_seed(0)
    name = f"fmn04+{family}"
    shipped = {"TF:104": "data/checkpoints/context/fmn04+tf-104_teacher.safetensors",
               "BiGRU:104": SHIPPED_BIGRU}.get(family)
    model = create_model(name, num_classes=13)
    load_checkpoint(model, shipped or "data/checkpoints/context/fmn04_synth.safetensors", strict=shipped is not None)
    _assert_exports_at_three_lengths(model.eval(), tmp_path / "m.onnx", [str(i) for i in range(13)])


class _Corrupted(torch.nn.Module):
    """A model whose traced graph is wrong by 0.1 % of its logits (a genuinely wrong graph)."""

    num_classes = 3

    def __init__(self):
        super().__init__()
        self.inner = with_live_activations(create_model("fmntiny", num_classes=3))

    def forward(self, mel):  # (B, 1, 128, T) -> (B, 3, T/4), (B, 3)
        strong, weak = self.inner(mel)
        if torch.jit.is_tracing():
            strong, weak = 1.001 * strong + 0.01, 1.001 * weak + 0.01
        return strong, weak


def test_wrong_graphs_are_still_refused_with_both_figures(tmp_path, monkeypatch):
    """A graph off by 0.1 % + 0.01 and MAMBA traced without its export formulation (chunk
    arithmetic baked at the traced length) are refused; the line names the absolute and the
    relative deviation; nothing is written."""
    import contextlib

    from sedlib.deploy import onnx_export

    with pytest.raises(ExportError, match=r"^_Corrupted: ONNX Runtime differs from PyTorch by \S+ at \d+ "
                                          r"frames, \S+ of the logits' largest magnitude \S+ \(> 0.0001"):
        export_onnx(_Corrupted(), tmp_path / "c.onnx", classes=["a", "b", "c"])
    torch.manual_seed(0)
    mamba = with_live_activations(create_model("fmn10+MAMBA:256", num_classes=447))
    monkeypatch.setattr(onnx_export, "export_formulations", lambda model: contextlib.nullcontext(model))
    with pytest.raises(ExportError, match=r"^fmn10\+MAMBA:256: ONNX Runtime differs from PyTorch|"
                                          r"^fmn10\+MAMBA:256: the exported graph does not run"):
        export_onnx(mamba, tmp_path / "m.onnx", classes=[str(i) for i in range(447)])
    assert list(tmp_path.iterdir()) == []


def test_a_hybrid_graph_names_and_enforces_the_longest_window_it_is_exact_for(tmp_path):
    """The doubling scan runs DOUBLING_STEPS rounds: exact for 2**11 sequence frames = 8192
    log-mel frames (stride 4); the file says so and a longer window is refused in one line."""
    from sedlib.deploy.onnx_export import DOUBLING_STEPS

    torch.manual_seed(0)
    model = with_live_activations(create_model("fmntiny+HYBRID:16", num_classes=3))
    export_onnx(model, tmp_path / "h.onnx", classes=["a", "b", "c"])
    engine = OnnxDetectorModel(tmp_path / "h.onnx", threads=1)
    assert engine.max_mel_frames == 4 * 2**DOUBLING_STEPS == 8192
    with pytest.raises(CheckpointError, match="8193 log-mel frames in one window; this graph is exact for up to 8192"):
        engine(torch.zeros(1, 1, 128, 8193))
    export_onnx(create_model("fmntiny", num_classes=3), tmp_path / "c.onnx", classes=["a", "b", "c"])
    assert OnnxDetectorModel(tmp_path / "c.onnx").max_mel_frames is None


def test_export_formulations_equal_the_training_paths_in_float64():
    """The doubling scan equals the minGRU's log-space scan and the quadratic SSD equals the
    chunked one (T = 300 > chunk 256: two chunks) in float64, with and without an initial state."""
    from sedlib.models.seq.mamba import Mamba2
    from sedlib.models.seq.mingru import MinGRU

    torch.manual_seed(0)
    gru = MinGRU(6, 10).double()
    x = torch.randn(2, 300, 6, dtype=torch.float64) * 3
    h0 = torch.rand(2, 10, dtype=torch.float64) + 0.1
    ref = [gru(x), gru(x, prev_hidden=h0)]
    gru.scan = "doubling"
    for got, want in zip([gru(x), gru(x, prev_hidden=h0)], ref):
        assert torch.allclose(got, want, atol=1e-10, rtol=1e-10)
    mamba = Mamba2(16, d_state=8, headdim=8).double()
    u = torch.randn(2, 300, 16, dtype=torch.float64)
    want = mamba(u)
    mamba.scan = "quadratic"
    assert torch.allclose(mamba(u), want, atol=1e-10, rtol=0)


class _Cummax(torch.nn.Module):
    """A head with an operation ONNX has no form for (aten::cummax), to test the refusal."""

    num_classes = 3

    def forward(self, mel):  # (B, 1, 128, T) -> (B, 3, T), (B, 3)
        strong = mel[:, 0, :3].cummax(dim=-1).values
        return strong, strong.mean(-1)


class _Baked(torch.nn.Module):
    """A head whose traced graph is right only at the traced length (a Python-int shape)."""

    num_classes = 3

    def forward(self, mel):  # (B, 1, 128, T) -> (B, 3, T), (B, 3)
        strong = mel[:, 0, :3] * (1.0 / int(mel.shape[-1]))
        return strong, strong.mean(-1)


@pytest.mark.parametrize("model, says", [
    (_Cummax(), "not exportable to ONNX opset 18 yet"),
    (_Baked(), r"ONNX Runtime differs from PyTorch by .* at 1001 frames"),  # traced at 401, worst at 10 s
])
def test_a_model_that_does_not_export_faithfully_fails_in_one_line(model, says, tmp_path, capfd):
    name = type(model).__name__
    with pytest.raises(ExportError, match=says) as err:
        export_onnx(model, tmp_path / "m.onnx", classes=["a", "b", "c"])
    assert "\n" not in str(err.value) and str(err.value).startswith(name)
    out, errs = capfd.readouterr()
    assert "Torch IR graph" not in out + errs and "onnxruntime" not in errs  # no dumps, no log lines
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    with pytest.raises(ExportError, match="2 class names for a 3-class head"):
        export_onnx(model, tmp_path / "m.onnx", classes=["a", "b"])


def test_detect_on_the_exported_file_equals_the_torch_backend(tmp_path, capsys, monkeypatch):
    """`sedlib export` then `sedlib detect --checkpoint X.onnx` in ONNX Runtime and OpenVINO,
    with and without the front end in the graph, and `--backend` on the PyTorch checkpoint
    (exported once into the cache): the same events as the torch backend on the same audio
    (the shipped context-world BiGRU teacher, real clips)."""
    monkeypatch.setenv("SEDLIB_CACHE", str(tmp_path / "cache"))
    from sedlib.config import PROJECT_ROOT
    from sedlib.data.synth.soundscape import SynthConfig, write_desed

    write_desed(tmp_path / "data", 3, SynthConfig(synth_seed=3, synth_world="context"), split="eval",
                progress=False)
    audio = sorted(str(p) for p in (tmp_path / "data" / "audio").glob("*.wav"))
    checkpoint = str(PROJECT_ROOT / SHIPPED_BIGRU)
    onnx_file = tmp_path / "det.onnx"
    assert cli.main(["export", "--checkpoint", checkpoint, "--out", str(onnx_file)]) == 0
    assert "fmn04+BiGRU:104, 13 classes" in capsys.readouterr().out
    with_frontend = tmp_path / "det-wave.onnx"
    assert cli.main(["export", "--checkpoint", checkpoint, "--out", str(with_frontend), "--with-frontend"]) == 0
    assert "waveform in, against MelFrontend + the model" in capsys.readouterr().out
    out = {}
    runs = {"torch": [checkpoint], "onnx": [str(onnx_file)], "onnx+frontend": [str(with_frontend)],
            "openvino": [str(onnx_file), "--backend", "openvino"],
            "openvino+frontend": [str(with_frontend), "--backend", "openvino", "--threads", "1"],
            "checkpoint->onnxruntime": [checkpoint, "--backend", "onnxruntime"],
            "checkpoint->openvino": [checkpoint, "--backend", "openvino"]}
    for backend, args in runs.items():
        assert cli.main(["detect", "--checkpoint", *args, *audio, "--format", "json", "--no-progress",
                         "--threshold", "0.3"]) == 0
        out[backend] = json.loads(capsys.readouterr().out)
    assert out["onnx"] and all(events == out["torch"] for events in out.values())
    cached = list((tmp_path / "cache" / "onnx").glob("fmn04+BiGRU_104-*.onnx"))
    assert len(cached) == 1  # exported once, reused by the second engine
    assert cli.main(["detect", "--checkpoint", str(onnx_file), "--backend", "torch", audio[0]]) == 2
    assert "runs in onnxruntime or openvino, not torch" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_models_equal_pytorch_at_two_lengths(backend, tmp_path):
    """Both engines reproduce PyTorch within 1e-4 on the same exported file (OpenVINO pinned to
    f32: its default on AVX-512 CPUs is bf16) at 10 s and 6.7 s, batch 1 and 3."""
    from sedlib.deploy.backends import runtime_model

    torch.manual_seed(0)
    model = with_live_activations(create_model("fmntiny+BiGRU:16", num_classes=3))
    engine = runtime_model(model, backend, ["a", "b", "c"], threads=1, cache_dir=tmp_path)
    assert engine.backend == backend and runtime_model(engine, backend, ["a", "b", "c"]) is engine
    for shape in ((1, 1, 128, 1001), (3, 1, 128, 667)):
        mel = torch.randn(*shape)
        with torch.no_grad():
            ref = model(mel)
        for o, r in zip(engine(mel), ref):
            assert o.shape == r.shape and float((o - r).abs().max()) <= 1e-4


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the plain file uses torch's legacy exporter
def test_bad_onnx_files_are_refused_in_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    good = tmp_path / "good.onnx"
    export_onnx(create_model("fmntiny", num_classes=2).eval(), good, classes=["a", "b"])
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[:2000])
    plain = tmp_path / "plain.onnx"  # an ONNX graph that sedlib did not export
    torch.onnx.export(torch.nn.Linear(4, 2), (torch.zeros(1, 4),), str(plain), dynamo=False,
                      input_names=["x"])
    with pytest.raises(CheckpointError, match="truncated or another format"):
        OnnxDetectorModel(truncated)
    with pytest.raises(CheckpointError, match=r"without sedlib's metadata \['sedlib_model', 'classes'\]"):
        OnnxDetectorModel(plain)
    with pytest.raises(CheckpointError, match="no such ONNX file"):
        OnnxDetectorModel(tmp_path / "missing.onnx")
    from sedlib.deploy.onnx_runtime import OpenVinoDetectorModel

    for path, says in ((truncated, "truncated or another format"), (plain, "without sedlib's metadata")):
        with pytest.raises(CheckpointError, match=says):
            OpenVinoDetectorModel(path)
    with pytest.raises(CheckpointError, match=r"expected log-mel \(B, 1, 128, T\), got \(2, 64, 100\)"):
        OnnxDetectorModel(good)(torch.zeros(2, 64, 100))
    wav = tmp_path / "x.wav"
    import soundfile as sf

    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    for args, says in ((["--model", "fmn10", "--checkpoint", SHIPPED_BIGRU],
                        "a checkpoint of fmn04+BiGRU:104, not fmn10 (drop --model"),
                       (["--checkpoint", str(truncated)], "truncated or another format"),
                       (["--checkpoint", str(truncated), "--backend", "openvino"], "truncated or another format"),
                       (["--model", "fmn10", "--checkpoint", str(good)], "exported from fmntiny, not fmn10")):
        assert cli.main(["detect", *args, str(wav), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_exportable_front_end_equals_mel_frontend_on_audio():
    """STFT as gathered frames x the windowed DFT basis (float64) equals MelFrontend (torch.stft
    in float32) within 1e-4 but in bins at the 1e-7 power floor, where the float32 FFT's own
    rounding is that large (then within 2e-4); any length."""
    from sedlib.audio.frontend import MelFrontend
    from sedlib.data.synth.soundscape import SynthConfig, synthesize_clip
    from sedlib.deploy.frontend_graph import ExportableMelFrontend

    frontend = MelFrontend().eval()
    exportable = ExportableMelFrontend(frontend)
    wave = torch.stack([torch.from_numpy(synthesize_clip(SynthConfig(synth_seed=5, synth_world="context"),
                                                         "eval", i)[0]) for i in range(4)])  # (4, 160000)
    for n in (160000, 68813):
        a, b = frontend(wave[:, :n]), exportable(wave[:, :n])
        assert a.shape == b.shape == (4, 1, 128, 1 + (n - 1) // 160)
        diff = (a - b).abs()
        assert diff.max() <= 2e-4 and (diff > 1e-4).float().mean() <= 1e-4
        assert diff[a > -2.0].max() <= 1e-4  # away from the floor ((log 1e-7 + 4.5) / 5 = -2.32)


def test_a_graph_with_the_front_end_takes_the_waveform(tmp_path):
    torch.manual_seed(0)
    from sedlib.audio.frontend import MelFrontend

    model = create_model("fmntiny+TF:16", num_classes=3).eval()
    path = tmp_path / "wave.onnx"
    deviation = export_onnx(model, path, classes=["a", "b", "c"], with_frontend=True)
    assert max(deviation.values()) <= 1e-3
    onnx_model = OnnxDetectorModel(path)
    assert onnx_model.takes_waveform and onnx_model.input == "waveform"
    wave = 0.1 * torch.randn(2, 50_000)
    with torch.no_grad():
        ref = model(MelFrontend().eval()(wave))
    for o, r in zip(onnx_model(wave), ref):
        assert torch.allclose(o, r, atol=1e-3, rtol=0)
    with pytest.raises(CheckpointError, match=r"expected a waveform \(B, N\), got \(2, 1, 128, 100\)"):
        onnx_model(torch.zeros(2, 1, 128, 100))


def test_int8_copy_keeps_the_metadata_and_runs(tmp_path):
    """Static int8 quantization: a file detection can run (same classes, same shapes, close
    logits on the calibration-like input); refused for a front-end graph or too few clips."""
    import onnx

    from sedlib.deploy.quantize import quantize_int8

    torch.manual_seed(0)
    model = create_model("fmntiny+BiGRU:16", num_classes=3).eval()
    fp32, int8 = tmp_path / "m.onnx", tmp_path / "m8.onnx"
    export_onnx(model, fp32, classes=["a", "b", "c"])
    quantize_int8(fp32, int8, calibration="synth:8:7:world=context", clips=8, clip_seconds=2.0)
    q = OnnxDetectorModel(int8)
    assert (q.name, q.classes) == ("fmntiny+BiGRU:16", ["a", "b", "c"])
    meta = {p.key: p.value for p in onnx.load(str(int8)).metadata_props}
    assert meta["quantized"] == "int8 static, 8 clips of synth:8:7:world=context"
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(int8)).graph.node)
    mel = torch.randn(2, 1, 128, 300) * 0.3 - 1.0
    out, ref = q(mel), OnnxDetectorModel(fp32)(mel)
    assert [o.shape for o in out] == [r.shape for r in ref] and all(torch.isfinite(o).all() for o in out)
    with pytest.raises(ExportError, match="has 8 clips, 16 asked for"):
        quantize_int8(fp32, tmp_path / "x.onnx", calibration="synth:8:7", clips=16, clip_seconds=2.0)
    wave = tmp_path / "w.onnx"
    export_onnx(model, wave, classes=["a", "b", "c"], with_frontend=True)
    with pytest.raises(ExportError, match="without the front end"):
        quantize_int8(wave, tmp_path / "y.onnx")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()


def test_cli_export_with_an_int8_copy(tmp_path, capsys):
    from sedlib.train.runs import save_weights

    torch.manual_seed(0)
    ckpt = save_weights(create_model("fmntiny", num_classes=2), tmp_path / "m.safetensors",
                        model_name="fmntiny", classes=["a", "b"])
    out, int8 = tmp_path / "m.onnx", tmp_path / "m8.onnx"
    assert cli.main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--int8", str(int8),
                     "--calibration", "synth:64:7"]) == 0
    printed = capsys.readouterr().out
    assert "int8 copy, activations calibrated on 64 clips of synth:64:7 (not exact)" in printed
    assert OnnxDetectorModel(int8).classes == ["a", "b"]

"""Complexity: MAC counters against hand counts, SPEC 3.1 numbers, Pareto front, CLI, plots."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sedlib.complexity.macs import count_macs, deepspeed_macs
from sedlib.complexity.profile import (
    ModelProfile,
    measure_throughput,
    profile_model,
    write_csv,
)
from sedlib.study.plots import (
    ImageExportError,
    paper_figure,
    pareto_front,
    save_figure,
    tradeoff_figure,
)


def _both(model: nn.Module, *inputs: torch.Tensor) -> tuple[int, int]:
    model.eval()
    return count_macs(model, *inputs).total, deepspeed_macs(model, *inputs).total


# --- hand counts ---------------------------------------------------------------------------------


def test_linear_macs_match_hand_count():
    ours, ds = _both(nn.Linear(7, 5), torch.randn(3, 4, 7))
    assert ours == ds == 3 * 4 * 7 * 5  # every output element: 7 MACs


@pytest.mark.parametrize(
    "conv, shape, hand",
    [
        # out (2, 8, 5, 6); each output: 3 in-channels x 3 x 3
        (nn.Conv2d(3, 8, 3, stride=2, padding=1), (2, 3, 10, 12), 2 * 5 * 6 * 8 * 3 * 9),
        # depthwise: each output sees 1 channel x 3 x 3
        (nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), (1, 8, 6, 6), 6 * 6 * 8 * 9),
        # grouped, 4 groups: each output sees 2 channels x 3 x 5
        (nn.Conv2d(8, 12, (3, 5), padding=(1, 2), groups=4), (1, 8, 6, 7), 6 * 7 * 12 * 2 * 15),
        # dilated causal-TCN style Conv1d: output length 10 + 8 - 4 = 14
        (nn.Conv1d(4, 4, 3, padding=4, dilation=2), (1, 4, 10), 14 * 4 * 4 * 3),
    ],
    ids=["conv", "depthwise", "grouped", "dilated1d"],
)
def test_conv_macs_match_hand_count(conv, shape, hand):
    ours, ds = _both(conv, torch.randn(shape))
    assert ours == ds == hand


def test_bigru_macs_per_gate_formula():
    gru = nn.GRU(6, 5, num_layers=2, bidirectional=True, batch_first=True)
    steps = 2 * 7  # (B, T)
    # per step and direction: 3 gates x (I H + H H); layer 1 input is 2H = 10
    hand = steps * 2 * (3 * (6 * 5 + 5 * 5) + 3 * (10 * 5 + 5 * 5))
    ours, ds = _both(gru, torch.randn(2, 7, 6))
    assert ours == hand == 10_920
    assert ds == 0  # the known gap: DeepSpeed gives GRUs flops but no MACs


def test_lstm_counted_although_its_cpu_kernel_is_fused():
    lstm = nn.LSTM(6, 5, batch_first=True)
    ours, _ = _both(lstm, torch.randn(2, 7, 6))
    assert ours == 2 * 7 * 4 * (6 * 5 + 5 * 5)


class SDPABlock(nn.Module):
    """qkv projection -> SDPA over H heads -> output projection."""

    def __init__(self, dim: int = 16, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.to_qkv(x).view(B, T, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, d)
        return self.to_out(out.transpose(1, 2).reshape(B, T, D))


def test_attention_macs_include_sdpa_matmuls():
    B, T, D = 2, 9, 16
    hand = B * T * D * 3 * D + B * 2 * T * T * D + B * T * D * D  # qkv, QK^T + AV, out
    ours, ds = _both(SDPABlock(D), torch.randn(B, T, D))
    assert ours == ds == hand == 23_616


def test_multihead_attention_fast_path_counted():
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x = torch.randn(2, 9, 16)

    class Self(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = mha

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.mha(x, x, x, need_weights=False)[0]

    assert count_macs(Self().eval(), x).total == 23_616  # same cost as SDPABlock


def test_einsum_counted_by_ours_not_by_deepspeed():
    class Einsum(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bij,bjk->bik", a, b)

    ours, ds = _both(Einsum(), torch.randn(2, 3, 4), torch.randn(2, 4, 5))
    assert (ours, ds) == (2 * 3 * 4 * 5, 0)


# --- real models against SPEC 3.1 --------------------------------------------------------------


@pytest.fixture(scope="module")
def fmn10_profile() -> ModelProfile:
    return profile_model("fmn10", throughput=False)


def test_fmn10_params_exactly_spec(fmn10_profile):
    p = fmn10_profile
    assert p.params == 3_830_798
    assert p.params_backbone == 2_971_664
    assert p.params_seq == 0
    assert p.params_strong_head == p.params_weak_head == 429_567
    assert p.params_heads == 2 * 429_567


def test_fmn10_macs_match_spec(fmn10_profile):
    p = fmn10_profile
    assert p.macs == pytest.approx(1055.1e6, rel=1e-3)  # SPEC 3.1 total MACs (M)
    assert p.macs_backbone == pytest.approx(947.4e6, rel=1e-3)
    assert p.macs == p.macs_counter == p.macs_deepspeed  # no GRU/einsum: the tools agree
    assert p.macs_backbone + p.macs_seq + p.macs_heads == p.macs
    assert p.macs_frontend == pytest.approx(33.2e6, rel=1e-2)
    assert p.throughput is None and p.peak_memory is None


@pytest.mark.parametrize("name, spec_mmacs",
                         [("fmn10+TF:256", 1495.8), ("fmn10+BiGRU:256", 1766.7)])
def test_sequence_model_macs_match_spec(name, spec_mmacs):
    from sedlib.registry import create_model

    model = create_model(name).eval()
    count = count_macs(model, torch.randn(1, 1, 128, 1000))
    assert count.total == pytest.approx(spec_mmacs * 1e6, rel=1e-3)


def test_throughput_and_memory_measured_on_cpu():
    p = profile_model("fmntiny+BiGRU", batch_size=2, warmup=0, repeats=2, threads=1,
                      deepspeed=False)
    assert p.throughput > 0 and p.latency_s > 0
    assert p.peak_memory >= 4 * p.params  # at least the fp32 weights
    assert (p.device, p.dtype, p.batch_size, p.threads, p.repeats) == ("cpu", "fp32", 2, 1, 2)
    assert p.macs > p.macs_backbone > 0 and p.macs_deepspeed is None


def test_measure_throughput_with_frontend_and_bf16():
    model = nn.Sequential(nn.Flatten(1), nn.LazyLinear(3))
    thr = measure_throughput(model, batch_size=1, warmup=1, repeats=1, threads=1,
                             include_frontend=True, dtype="bf16")
    assert thr.samples_per_s > 0 and len(thr.times_s) == 1
    with pytest.raises(ValueError, match="unknown dtype"):
        measure_throughput(model, dtype="fp8")


# --- Pareto front ------------------------------------------------------------------------------


def test_pareto_front_known_points():
    # (x = cost, y = score)
    pts = [(1, 40.0), (2, 39.0), (3, 43.0), (3, 42.0), (5, 43.0), (8, 45.0), (8, 45.0), (9, 44.0)]
    assert pareto_front(pts) == [0, 2, 5, 6]  # dominated: 1 (by 0), 3, 4 (by 2), 7 (by 5)
    # throughput-like x (higher is better): (9, 44) is now not dominated by (8, 45)
    assert pareto_front(pts, minimize_x=False) == [5, 6, 7]
    # minimise y too (e.g. an error rate)
    assert pareto_front(pts, maximize_y=False) == [0, 1]  # (2, 39): more cost, lower y
    assert pareto_front([(1, float("nan")), (2, 1.0)]) == [1]
    assert pareto_front([]) == []


# --- CLI ---------------------------------------------------------------------------------------


def _cli(monkeypatch, argv):
    import sedlib.cli as cli

    if "profile" not in cli.COMMANDS:  # until sedlib/cli.py registers it
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "profile"))
    return cli.main(argv)


def test_cli_json_and_csv(monkeypatch, capsys, tmp_path):
    out_csv = tmp_path / "sub" / "profile.csv"
    rc = _cli(monkeypatch, ["profile", "fmntiny", "fmntiny+tf", "--json", "--repeats", "1",
                            "--warmup", "0", "--batch-size", "1", "--threads", "1",
                            "--csv", str(out_csv)])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["fmntiny", "fmntiny+TF:32"]
    for r in rows:
        assert {"name", "params", "macs", "throughput", "peak_memory"} <= r.keys()
        assert r["params"] > 0 and r["macs"] > 0 and r["throughput"] > 0
    with out_csv.open() as fh:
        assert [r["name"] for r in csv.DictReader(fh)] == ["fmntiny", "fmntiny+TF:32"]
    assert sorted(p.name for p in out_csv.parent.iterdir()) == ["profile.csv"]  # no temp left


def test_cli_table_and_errors(monkeypatch, capsys):
    assert _cli(monkeypatch, ["profile", "fmntiny", "--no-throughput", "--no-deepspeed"]) == 0
    out = capsys.readouterr().out
    assert "fmntiny" in out and "MACs (M)" in out and "front end" in out
    assert _cli(monkeypatch, ["profile", "fmn99", "--no-throughput"]) == 2
    assert "unknown backbone" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_cli_times_an_engine(backend, monkeypatch, capsys):
    """--backend times the exported model in the engine (with the front end in the graph too);
    parameters and MACs stay the plain model's; it refuses --optimize."""
    rc = _cli(monkeypatch, ["profile", "fmntiny+HYBRID:16", "--json", "--repeats", "1", "--warmup", "0",
                            "--batch-size", "2", "--threads", "1", "--no-deepspeed", "--backend", backend,
                            "--with-frontend"])
    assert rc == 0
    (row,) = json.loads(capsys.readouterr().out)
    plain = profile_model("fmntiny+HYBRID:16", throughput=False, deepspeed=False)
    assert row["backend"] == backend and row["throughput"] > 0 and row["include_frontend"]
    assert (row["params"], row["macs"]) == (plain.params, plain.macs)
    assert _cli(monkeypatch, ["profile", "fmntiny", "--backend", backend, "--optimize", "jit"]) == 2
    assert "times CPU inference" in capsys.readouterr().err


def test_write_csv_replaces_atomically(tmp_path, fmn10_profile):
    path = tmp_path / "p.csv"
    path.write_text("old")
    write_csv([fmn10_profile], path)
    rows = list(csv.DictReader(path.open()))
    assert rows[0]["name"] == "fmn10" and int(rows[0]["params"]) == 3_830_798


# --- plots -------------------------------------------------------------------------------------

RECORDS = [
    {"name": "fmn10", "params": 3.8e6, "macs": 1.06e9, "throughput": 900.0, "psds1": 42.28},
    {"name": "fmn10+TF:128", "params": 3.6e6, "macs": 1.12e9, "throughput": 850.0, "psds1": 42.75},
    {"name": "fmn10+TF:256", "params": 5.0e6, "macs": 1.50e9, "throughput": 800.0, "psds1": 43.86},
    {"name": "fmn10+BiGRU:256", "params": 6.5e6, "macs": 1.77e9, "throughput": 300.0,
     "psds1": 43.53},
    {"name": "fmn04", "params": 0.86e6, "macs": 0.22e9, "throughput": 2000.0, "psds1": 39.52},
]


def test_figures_have_one_line_per_family_and_a_pareto_front():
    fig = tradeoff_figure(RECORDS, x="params")
    names = [t.name for t in fig.data]
    assert names == ["CNN", "TF", "BiGRU", "Pareto front"]
    tf = fig.data[1]
    assert list(tf.x) == sorted(tf.x) and list(tf.text) == ["fmn10+TF:128", "fmn10+TF:256"]
    assert fig.layout.xaxis.type == "log"
    assert list(fig.data[-1].text) == ["fmn04", "fmn10+TF:128", "fmn10+TF:256"]
    fig1 = paper_figure(RECORDS, 1)
    assert "fmn04" not in {t for trace in fig1.data for t in trace.text}
    assert len({trace.xaxis for trace in fig1.data}) == 3  # params, MACs, throughput panels


def test_save_figure_writes_html_and_reports_png_problems(tmp_path, monkeypatch):
    fig = tradeoff_figure(RECORDS, x="macs")
    out = save_figure(fig, tmp_path / "fig", png=False)
    assert out["html"].stat().st_size > 0
    import importlib.util

    if importlib.util.find_spec("kaleido") is None:
        with pytest.raises(ImageExportError, match="kaleido"):
            save_figure(fig, tmp_path / "fig2")
        assert (tmp_path / "fig2.html").exists()  # HTML always written
    else:
        def broken(*args, **kwargs):
            raise RuntimeError("no Chrome found")

        monkeypatch.setattr(type(fig), "write_image", broken)
        with pytest.raises(ImageExportError, match="chromium"):
            save_figure(fig, tmp_path / "fig3")

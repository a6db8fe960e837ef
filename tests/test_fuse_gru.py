"""FusedGRU (the inference-only nn.GRU of optimize_for_inference) against nn.GRU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sedlib.models.random_init import with_live_activations
from sedlib.models.fuse import fuse_grus, optimize_for_inference
from sedlib.models.gru_infer import FusedGRU
from sedlib.registry import create_model

CONFIGS = [  # (input, hidden, layers, bidirectional, bias, batch_first)
    (12, 8, 2, True, True, True),
    (10, 6, 1, False, True, True),
    (7, 5, 3, True, False, False),
]


def _gru(i, h, layers, bidirectional, bias, batch_first, dtype=torch.float32) -> nn.GRU:
    torch.manual_seed(0)
    gru = nn.GRU(i, h, num_layers=layers, bidirectional=bidirectional, bias=bias,
                 batch_first=batch_first, dropout=0.1 if layers > 1 else 0.0)
    with torch.no_grad():
        for p in gru.parameters():  # larger than the default init: saturating gates too
            p.uniform_(-0.8, 0.8)
    return gru.to(dtype).eval()


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("config", CONFIGS)
def test_fused_gru_equals_nn_gru(config, dtype, tol, parallel):
    gru = _gru(*config, dtype=dtype)
    fused = FusedGRU(gru, parallel=parallel)
    i, h, layers, bidirectional, _, batch_first = config
    dirs = 2 if bidirectional else 1
    g = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        for batch, t in [(1, 7), (3, 13), (3, 1)]:  # odd T; batch 1 and 3
            x = torch.randn(batch, t, i, generator=g, dtype=dtype)
            if not batch_first:
                x = x.transpose(0, 1)
            hx = torch.randn(layers * dirs, batch, h, generator=g, dtype=dtype)
            for state in (None, hx):
                (o0, h0), (o1, h1) = gru(x, state), fused(x, state)
                assert o1.shape == o0.shape and h1.shape == h0.shape and o1.dtype == dtype
                torch.testing.assert_close(o1, o0, rtol=0, atol=tol)
                torch.testing.assert_close(h1, h0, rtol=0, atol=tol)
        x = torch.randn(5, i, generator=g, dtype=dtype)  # unbatched (T, I)
        for a, b in zip(gru(x), fused(x)):
            torch.testing.assert_close(b, a, rtol=0, atol=tol)


def test_fused_gru_every_length_one_model():
    """One FusedGRU serves every batch size and sequence length, also after its TorchScript
    loops have been profiled and optimised for the first shapes."""
    gru = _gru(9, 4, 2, True, True, True)
    fused = FusedGRU(gru)
    with torch.no_grad():
        for batch, t in [(2, 3), (5, 40), (1, 2), (4, 17), (2, 3)]:
            x = torch.randn(batch, t, 9)
            torch.testing.assert_close(fused(x)[0], gru(x)[0], rtol=0, atol=2e-5)


def test_fused_gru_is_inference_only():
    gru = _gru(6, 4, 1, True, True, True)
    fused = FusedGRU(gru)
    assert not list(fused.parameters())
    with pytest.raises(RuntimeError, match="inference-only"):
        fused(torch.randn(2, 3, 6, requires_grad=True))
    with pytest.raises(TypeError):
        FusedGRU(nn.LSTM(6, 4))
    with pytest.raises(ValueError):
        fused(torch.randn(1, 2, 3, 6))
    assert "bidirectional=True" in repr(fused)


def test_fuse_grus_replaces_only_outside_skip():
    outer = nn.Sequential(nn.GRU(4, 3, batch_first=True), nn.Sequential(nn.GRU(3, 3)))
    assert fuse_grus(outer, skip=outer[1]) == 1
    assert type(outer[0]) is FusedGRU and type(outer[1][0]) is nn.GRU


@pytest.mark.parametrize("backend", ["eager", "jit"])
def test_optimize_for_inference_bigru(backend):
    torch.manual_seed(0)  # live activations: a fresh backbone gives the same logits for every input
    model = with_live_activations(create_model("fmntiny+BiGRU"))
    fast = optimize_for_inference(model, backend=backend)
    assert fast.fused_grus == 1 and type(model.seq_model[0].gru) is nn.GRU  # original untouched
    assert not any(type(m) is nn.GRU for m in fast.modules())
    with torch.inference_mode():
        for shape in [(1, 1, 128, 64), (3, 1, 128, 204)]:
            x = torch.randn(*shape)
            for a, b in zip(model(x), fast(x)):
                assert a.shape == b.shape
                torch.testing.assert_close(b, a, rtol=0, atol=1e-4)

"""MAMBA and HYBRID sequence models: parameter counts (SPEC.md 3 / 3.1), state_dict keys (SPEC 3.2),
parallel == step invariants (minGRU, Mamba-2 SSD), bidirectional flip, mixing formula, batch
invariance, forward/backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sedlib.models.seq import hybrid, mamba
from sedlib.models.seq.mingru import BidirectionalMinGRU, MinGRU, g

BACKBONE_FMN10 = 2_971_664


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def heads_params(dim: int) -> int:
    return 2 * (447 * dim + 447)  # strong + weak head


# ---------------------------------------------------------------------------------------------
# parameter counts and keys
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "in_dim, dim, expected",
    [
        (960, 128, 714_816),
        (960, 256, 2_609_280),
        (960, 512, 9_937_152),
        (960, 1024, 38_748_672),
        (384, 104, 431_028),
        (576, 160, 1_016_400),
        (1920, 512, 10_428_672),
        (2880, 768, 23_458_176),
    ],
)
def test_hybrid_param_count(in_dim, dim, expected):
    with torch.device("meta"):
        m = hybrid.build(in_dim, dim)
    assert n_params(m) == expected
    assert len(m.state_dict()) == 29  # 341 (fmn+HYBRID) - 312 (fmn)
    assert m.out_dim == dim


@pytest.mark.parametrize(
    "dim, total", [(128, 3_445_310), (256, 4_310_206), (512, 7_227_886), (1024, 17_806_414)]
)
def test_mamba_param_count(dim, total):
    with torch.device("meta"):
        m = mamba.build(960, dim)
    assert n_params(m) == total - BACKBONE_FMN10 - heads_params(dim)
    assert m.out_dim == dim


def test_hybrid_keys():
    sd = hybrid.build(960, 128).state_dict()
    expected = {"0.weight": (128, 960), "0.bias": (128,), "1.norm.gamma": (128,)}
    for i in range(2):
        p = f"1.layers.{i}."
        expected |= {
            p + "0.gamma": (128,),
            p + "1.to_qkv.weight": (384, 128),
            p + "1.rnn.forward_minGRU.to_hidden_and_gate.weight": (256, 128),
            p + "1.rnn.backward_minGRU.to_hidden_and_gate.weight": (256, 128),
            p + "1.rnn.to_out.weight": (128, 256),
            p + "1.rnn_out_norm.gamma": (16,),
            p + "1.attn_out_norm.gamma": (16,),
            p + "1.to_out.weight": (128, 128),
            p + "2.gamma": (128,),
            p + "3.0.weight": (512, 128),
            p + "3.0.bias": (512,),
            p + "3.2.weight": (128, 512),
            p + "3.2.bias": (128,),
        }
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    # last keys in reference order (SPEC 3.2)
    assert list(sd)[-6:] == [
        "1.layers.1.2.gamma", "1.layers.1.3.0.weight", "1.layers.1.3.0.bias",
        "1.layers.1.3.2.weight", "1.layers.1.3.2.bias", "1.norm.gamma",
    ]
    sd104 = hybrid.build(384, 104).state_dict()
    assert sd104["1.layers.0.1.rnn_out_norm.gamma"].shape == (13,)
    assert sd104["0.weight"].shape == (104, 384)


def test_mamba_keys():
    D = 256
    sd = mamba.build(960, D).state_dict()
    nh, conv_dim = 2 * D // 64, 2 * D + 2 * 64
    expected = {"0.weight": (D, 960), "0.bias": (D,), "1.weight": (D,), "1.bias": (D,)}
    for i in range(2):
        p = f"2.layers.{i}."
        expected |= {
            p + "0.dt_bias": (nh,),
            p + "0.A_log": (nh,),
            p + "0.D": (nh,),
            p + "0.in_proj.weight": (2 * 2 * D + 2 * 64 + nh, D),
            p + "0.conv1d.weight": (conv_dim, 1, 3),
            p + "0.conv1d.bias": (conv_dim,),
            p + "0.out_proj.weight": (D, 2 * D),
            p + "1.weight": (D,),
            p + "1.bias": (D,),
        }
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert mamba.build(960, 128)[2].layers[0][0].headdim == 32


def test_mamba_init_ranges():
    torch.manual_seed(0)
    blk = mamba.Mamba2(256, d_state=64, d_conv=3, headdim=16)
    dt = F.softplus(blk.dt_bias)
    assert torch.all(dt >= 1e-3 * (1 - 1e-5)) and torch.all(dt <= 0.1 * (1 + 1e-5))
    A = blk.A_log.exp()
    assert torch.all(A >= 1) and torch.all(A <= 16)
    assert torch.equal(blk.D, torch.ones_like(blk.D))


def test_build_rejects_bad_options():
    with pytest.raises(ValueError, match="headdim"):
        mamba.build(384, 104)  # 208 not divisible by 64, as in the reference
    with pytest.raises(ValueError):
        hybrid.build(960, 100, heads=8)
    with pytest.raises(TypeError):
        hybrid.build(960, 128, dropout=0.1)
    with pytest.raises(ValueError, match="mode"):
        hybrid.build(8, 16, heads=2)(torch.zeros(1, 3, 8), mode="scan")


# ---------------------------------------------------------------------------------------------
# minGRU: parallel (Heinsen log-space scan) == sequential (eq. 1)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_prev", [False, True])
@pytest.mark.parametrize("T", [1, 7, 64])
def test_mingru_parallel_equals_sequential(with_prev, T):
    torch.manual_seed(0)
    m = MinGRU(6, 10).double()
    x = torch.randn(3, T, 6, dtype=torch.float64) * 3
    h0 = torch.rand(3, 10, dtype=torch.float64) + 0.1 if with_prev else None
    yp, hp = m(x, prev_hidden=h0, return_next_hidden=True, mode="parallel")
    ys, hs = m(x, prev_hidden=h0, return_next_hidden=True, mode="sequential")
    assert yp.shape == (3, T, 10)
    torch.testing.assert_close(yp, ys, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hp, hs, rtol=1e-10, atol=1e-12)


def test_mingru_hand_computed_and_chunking():
    m = MinGRU(1, 1).double()
    with torch.no_grad():
        m.to_hidden_and_gate.weight.copy_(torch.tensor([[1.0], [1.0]]))  # hidden = gate = x
    x = torch.tensor([[[0.5], [-1.0]]], dtype=torch.float64)
    z1, z2 = torch.sigmoid(torch.tensor(0.5)), torch.sigmoid(torch.tensor(-1.0))
    h1 = z1 * (0.5 + 0.5)
    h2 = (1 - z2) * h1 + z2 * torch.sigmoid(torch.tensor(-1.0))
    torch.testing.assert_close(m(x)[0, :, 0], torch.stack([h1, h2]).double())
    # streaming: two halves with the carried state == one pass
    torch.manual_seed(1)
    m = MinGRU(4).double()
    x = torch.randn(2, 20, 4, dtype=torch.float64)
    y_full = m(x)
    y1, h = m(x[:, :9], return_next_hidden=True)
    y2 = m(x[:, 9:], prev_hidden=h)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y_full)


def test_bidirectional_mingru_flip():
    torch.manual_seed(0)
    bi = BidirectionalMinGRU(5).double()
    x = torch.randn(2, 11, 5, dtype=torch.float64)
    # backward direction by hand: eq. 1 run from the last frame to the first
    hid, gate = bi.backward_minGRU.to_hidden_and_gate(x).chunk(2, dim=-1)
    h, bwd = torch.zeros(2, 5, dtype=torch.float64), [None] * 11
    for t in reversed(range(11)):
        z = torch.sigmoid(gate[:, t])
        h = (1 - z) * h + z * g(hid[:, t])
        bwd[t] = h
    fwd = bi.forward_minGRU(x, mode="sequential")
    expected = bi.to_out(torch.cat([fwd, torch.stack(bwd, 1)], dim=-1))
    torch.testing.assert_close(bi(x), expected)
    torch.testing.assert_close(bi(x, mode="sequential"), expected)
    # forward half is causal, backward half anti-causal
    x2 = x.clone()
    x2[:, 6] += 1.0
    f1, f2 = bi.forward_minGRU(x), bi.forward_minGRU(x2)
    b1 = torch.flip(bi.backward_minGRU(torch.flip(x, [1])), [1])
    b2 = torch.flip(bi.backward_minGRU(torch.flip(x2, [1])), [1])
    torch.testing.assert_close(f1[:, :6], f2[:, :6])
    torch.testing.assert_close(b1[:, 7:], b2[:, 7:])
    assert not torch.allclose(f1[:, 6:], f2[:, 6:]) and not torch.allclose(b1[:, :7], b2[:, :7])


# ---------------------------------------------------------------------------------------------
# HYBRID
# ---------------------------------------------------------------------------------------------


def _rmsnorm(x, gamma):
    return F.normalize(x, dim=-1) * x.shape[-1] ** 0.5 * gamma


def test_hybrid_mix_formula():
    """Each branch checked alone (other branch zeroed) against an independent re-derivation."""
    torch.manual_seed(0)
    B, T, D, H = 2, 9, 12, 3
    d = D // H
    mix = hybrid.MinGRUAttnHybrid(D, heads=H, dim_head=d).double()
    with torch.no_grad():
        mix.rnn_out_norm.gamma.uniform_(0.5, 1.5)
        mix.attn_out_norm.gamma.uniform_(0.5, 1.5)
    x = torch.randn(B, T, D, dtype=torch.float64)
    with torch.no_grad():
        qkv_w = mix.to_qkv.weight.clone()
        mix.to_qkv.weight.zero_()  # attention output 0 -> its RMSNorm is 0
        rnn = mix.rnn(x).reshape(B, T, H, d)  # (qkv|h d) channel layout, as einops 'b n (h d)'
        expected = mix.to_out((0.5 * _rmsnorm(rnn, mix.rnn_out_norm.gamma)).reshape(B, T, D))
        torch.testing.assert_close(mix(x), expected)

        mix.to_qkv.weight.copy_(qkv_w)
        mix.rnn.to_out.weight.zero_()  # RNN output 0
        q, k, v = mix.to_qkv(x).reshape(B, T, 3, H, d).unbind(2)  # 'b n (qkv h d)'
        att = torch.softmax(torch.einsum("bthd,bshd->bhts", q, k) / d**0.5, dim=-1)
        o = torch.einsum("bhts,bshd->bthd", att, v)  # (B, T, H, d); no PE, no gate, non-causal
        expected = mix.to_out((0.5 * _rmsnorm(o, mix.attn_out_norm.gamma)).reshape(B, T, D))
        torch.testing.assert_close(mix(x), expected)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_hybrid_parallel_equals_sequential(bidirectional):
    torch.manual_seed(0)
    m = hybrid.build(20, 16, heads=4, bidirectional=bidirectional).double().eval()
    x = torch.randn(2, 13, 20, dtype=torch.float64)
    yp = m(x)
    assert yp.shape == (2, 13, 16)
    torch.testing.assert_close(yp, m(x, mode="sequential"), rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Mamba-2: chunked SSD == step recurrence
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("T, chunk", [(1, 8), (7, 8), (8, 8), (21, 8), (24, 8), (5, 256)])
@pytest.mark.parametrize("ngroups", [1, 2])
def test_ssd_chunked_equals_recurrent(T, chunk, ngroups):
    torch.manual_seed(0)
    b, H, P, N = 2, 4, 3, 5
    X = torch.randn(b, T, H, P, dtype=torch.float64)
    a = -torch.rand(b, T, H, dtype=torch.float64)  # log decays <= 0
    Bm = torch.randn(b, T, ngroups, N, dtype=torch.float64)
    Cm = torch.randn(b, T, ngroups, N, dtype=torch.float64)
    h0 = torch.randn(b, H, P, N, dtype=torch.float64)
    for init in (None, h0):
        Yc, hc = mamba.ssd_chunked(X, a, Bm, Cm, chunk, initial_state=init)
        Yr, hr = mamba.ssd_recurrent(X, a, Bm, Cm, initial_state=init)
        torch.testing.assert_close(Yc, Yr, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(hc, hr, rtol=1e-10, atol=1e-10)


def test_segsum():
    a = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    inf = float("-inf")
    expected = torch.tensor([[0, inf, inf], [2, 0, inf], [6, 4, 0]], dtype=torch.float64)
    torch.testing.assert_close(mamba.segsum(a), expected)


def _small_mamba(chunk_size: int, **kw) -> mamba.MambaSeqModel:
    return mamba.build(12, 16, d_state=8, headdim=8, chunk_size=chunk_size, **kw).double().eval()


@pytest.mark.parametrize("T, chunk", [(1, 8), (7, 8), (8, 8), (21, 8), (30, 256)])
def test_mamba_parallel_equals_sequential(T, chunk):
    torch.manual_seed(0)
    m = _small_mamba(chunk)
    x = torch.randn(2, T, 12, dtype=torch.float64)
    yp = m(x)
    assert yp.shape == (2, T, 16)
    torch.testing.assert_close(yp, m(x, mode="sequential"), rtol=1e-9, atol=1e-10)


def test_mamba_block_groups_and_causality():
    torch.manual_seed(0)
    blk = mamba.Mamba2(8, d_state=4, d_conv=3, headdim=4, ngroups=2, chunk_size=4).double()
    u = torch.randn(2, 10, 8, dtype=torch.float64)
    y = blk(u)
    torch.testing.assert_close(y, blk(u, mode="sequential"), rtol=1e-9, atol=1e-10)
    u2 = u.clone()
    u2[:, 6] += 1.0
    y2 = blk(u2)
    torch.testing.assert_close(y[:, :6], y2[:, :6])  # causal: frames < 6 unaffected
    assert not torch.allclose(y[:, 6:], y2[:, 6:])


def test_mamba_chunk_size_irrelevant():
    torch.manual_seed(0)
    m8 = _small_mamba(8)
    m256 = _small_mamba(256)
    m256.load_state_dict(m8.state_dict())
    x = torch.randn(2, 37, 12, dtype=torch.float64)
    torch.testing.assert_close(m8(x), m256(x), rtol=1e-9, atol=1e-10)


def test_mamba_autocast_runs_in_fp32():
    torch.manual_seed(0)
    m = mamba.build(12, 16, d_state=8, headdim=8).eval()
    x = torch.randn(2, 10, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


# ---------------------------------------------------------------------------------------------
# both models: forward/backward, batch invariance
# ---------------------------------------------------------------------------------------------


BUILDERS = {
    "hybrid": lambda: hybrid.build(24, 16, heads=4),
    "hybrid104": lambda: hybrid.build(30, 104),  # 8 heads x 13 (released fmn04 config)
    "mamba": lambda: mamba.build(24, 16, d_state=8, headdim=8, chunk_size=8),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_forward_backward(name):
    torch.manual_seed(0)
    m = BUILDERS[name]().train()
    x = torch.randn(3, 19, m[0].in_features, requires_grad=True)
    y = m(x)
    assert y.shape == (3, 19, m.out_dim) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for k, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), k


@pytest.mark.parametrize("name", list(BUILDERS))
def test_batch_invariance(name):
    torch.manual_seed(0)
    m = BUILDERS[name]().double().eval()
    x = torch.randn(4, 17, m[0].in_features, dtype=torch.float64)
    with torch.no_grad():
        y = m(x)
        for i in range(4):
            torch.testing.assert_close(m(x[i : i + 1]), y[i : i + 1], rtol=1e-10, atol=1e-10)


def test_identity_projection_when_dims_match():
    m = hybrid.build(16, 16, heads=4)
    assert isinstance(m[0], torch.nn.Identity) and "0.weight" not in m.state_dict()
    assert m(torch.randn(1, 5, 16)).shape == (1, 5, 16)

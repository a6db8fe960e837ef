"""Sequence models TF, ATT, BiGRU, TCN: SPEC.md 3.1 parameter counts, 3.2 keys, invariants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sedlib.models.seq import att, bigru, common, tcn, tf

BUILDERS = {"TF": tf.build, "ATT": att.build, "BiGRU": bigru.build, "TCN": tcn.build}

# (model, dim D, backbone embed E, "seq model" params from SPEC.md 3.1)
PARAM_COUNTS = [
    ("TF", 128, 960, 520_224),
    ("TF", 256, 960, 1_826_864),
    ("TF", 512, 960, 6_799_440),
    ("TF", 1024, 960, 26_181_776),
    ("TF", 104, 384, 302_050),
    ("TF", 160, 576, 711_716),
    ("TF", 512, 1920, 7_290_960),
    ("TF", 768, 2880, 16_392_304),
    ("ATT", 128, 960, 256_416),
    ("ATT", 256, 960, 774_960),
    ("ATT", 512, 960, 2_598_480),
    ("ATT", 1024, 960, 9_391_248),
    ("BiGRU", 128, 960, 1_133_568),
    ("BiGRU", 256, 960, 3_053_568),
    ("BiGRU", 512, 960, 9_252_864),
    ("BiGRU", 1024, 960, 31_088_640),
    ("BiGRU", 104, 384, 501_696),
    ("BiGRU", 160, 576, 1_171_200),
    ("BiGRU", 512, 1920, 12_201_984),
    ("BiGRU", 768, 2880, 27_445_248),
    ("TCN", 128, 960, 1_111_168),
    ("TCN", 256, 960, 4_188_416),
    ("TCN", 512, 960, 16_241_152),
    ("TCN", 1024, 960, 63_939_584),
]

# full-model state_dict entries (SPEC.md 3.1) minus the 312 of fmn10 without a sequence model
STATE_DICT_ENTRIES = {"TF": 337 - 312, "ATT": 326 - 312, "BiGRU": 328 - 312, "TCN": 434 - 312}

# keys and shapes measured for fmn10+<model>:256 (SPEC.md 3.2), `seq_model.` prefix removed
SPEC_KEYS = {
    "TF": {
        "0.weight": (256, 960),
        "0.bias": (256,),
        "1.layers.0.0.pos_encoding.freqs": (16,),
        "1.layers.0.0.norm.gamma": (256,),
        "1.layers.0.0.to_qkv.weight": (768, 256),
        "1.layers.0.0.to_gates.weight": (8, 256),
        "1.layers.0.0.to_gates.bias": (8,),
        "1.layers.0.0.to_out.0.weight": (256, 256),
        "1.layers.1.1.net.0.gamma": (256,),
        "1.layers.1.1.net.1.weight": (1024, 256),
        "1.layers.1.1.net.1.bias": (1024,),
        "1.layers.1.1.net.4.weight": (256, 1024),
        "1.layers.1.1.net.4.bias": (256,),
        "1.norm.gamma": (256,),
    },
    "ATT": {
        "0.weight": (256, 960),
        "1.layers.1.pos_encoding.freqs": (16,),
        "1.layers.1.norm.gamma": (256,),
        "1.layers.1.to_qkv.weight": (768, 256),
        "1.layers.1.to_gates.weight": (8, 256),
        "1.layers.1.to_gates.bias": (8,),
        "1.layers.1.to_out.0.weight": (256, 256),
    },
    "BiGRU": {
        "0.gru.weight_ih_l0": (768, 960),
        "0.gru.bias_ih_l1": (768,),
        "0.gru.bias_hh_l1": (768,),
        "0.gru.weight_ih_l1_reverse": (768, 512),
        "0.gru.weight_hh_l1_reverse": (768, 256),
        "0.gru.bias_ih_l1_reverse": (768,),
        "0.gru.bias_hh_l1_reverse": (768,),
    },
    "TCN": {
        "0.weight": (256, 960),
        "1.layers.1.network.4.net.0.bias": (256,),
        "1.layers.1.network.4.net.0.weight_g": (256, 1, 1),
        "1.layers.1.network.4.net.0.weight_v": (256, 256, 3),
        "1.layers.1.network.4.net.4.bias": (256,),
        "1.layers.1.network.4.net.4.weight_g": (256, 1, 1),
        "1.layers.1.network.4.net.4.weight_v": (256, 256, 3),
        "1.layers.1.network.4.conv1.weight_v": (256, 256, 3),
        "1.layers.1.network.4.conv2.weight_g": (256, 1, 1),
    },
}

# tiny configs for numerical tests: B=2, T=12, E=32, D=16 (ATT/TF heads must divide D)
E, D, T = 32, 16, 12
SMALL = {"TF": {"heads": 4}, "ATT": {"heads": 4}, "BiGRU": {}, "TCN": {}}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def small(name: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    return BUILDERS[name](E, D, **SMALL[name]).to(dtype)


@pytest.mark.parametrize(("name", "dim", "in_dim", "expected"), PARAM_COUNTS)
def test_parameter_counts_match_spec(name, dim, in_dim, expected):
    with torch.device("meta"):  # shapes only: counts are exact, nothing is allocated
        model = BUILDERS[name](in_dim, dim)
    assert n_params(model) == expected
    assert len(model.state_dict()) == STATE_DICT_ENTRIES[name]
    assert model.out_dim == (2 * dim if name == "BiGRU" else dim)


@pytest.mark.parametrize(("name", "dim", "in_dim", "expected"), [PARAM_COUNTS[0], PARAM_COUNTS[20]])
def test_meta_count_equals_real_count(name, dim, in_dim, expected):
    assert n_params(BUILDERS[name](in_dim, dim)) == expected


@pytest.mark.parametrize("name", BUILDERS)
def test_state_dict_keys_match_spec(name):
    with torch.device("meta"):
        sd = BUILDERS[name](960, 256).state_dict()
    for key, shape in SPEC_KEYS[name].items():
        assert key in sd, f"{name}: missing {key}"
        assert tuple(sd[key].shape) == shape, f"{name}: {key} {tuple(sd[key].shape)} != {shape}"


def test_tcn_convs_registered_twice_counted_once():
    model = tcn.build(E, D)
    sd = model.state_dict()
    block = "1.layers.0.network.2."
    assert sd[block + "conv1.weight_v"].data_ptr() == sd[block + "net.0.weight_v"].data_ptr()
    assert sd[block + "conv2.weight_g"].data_ptr() == sd[block + "net.4.weight_g"].data_ptr()
    assert len(sd) == 2 + 2 * 5 * 12


def test_tf_head_rule():
    with torch.device("meta"):
        narrow, wide = tf.build(384, 104), tf.build(960, 256)
        explicit = tf.build(384, 104, heads=8)
    assert (narrow[1].layers[0][0].heads, narrow[1].layers[0][0].dim_head) == (4, 26)
    assert (wide[1].layers[0][0].heads, wide[1].layers[0][0].dim_head) == (8, 32)
    assert explicit[1].layers[0][0].heads == 8


def test_identity_projection_when_dims_equal():
    model = tf.build(D, D, heads=4)
    assert isinstance(model[0], torch.nn.Identity)
    assert not any(k.startswith("0.") for k in model.state_dict())


def test_invalid_options_raise():
    with pytest.raises(ValueError, match="divisible"):
        att.build(E, 18, heads=4)
    with pytest.raises(ValueError, match="dim_head"):
        tf.build(E, D, heads=4, dim_head=8)
    with pytest.raises(ValueError, match="activation"):
        tcn.build(E, D, activation="gelu")
    with pytest.raises(ValueError, match="pos_encoding"):
        att.build(E, D, heads=4, pos_encoding="sinusoidal")
    with pytest.raises(TypeError):
        bigru.build(E, D, heads=4)


def test_reference_init():
    torch.manual_seed(0)
    model = tf.build(960, 256)
    for key in ["0.weight", "1.layers.0.0.to_qkv.weight", "1.layers.1.1.net.4.weight"]:
        assert model.state_dict()[key].std().item() == pytest.approx(0.02, rel=0.05)
    for key in ["0.bias", "1.layers.0.0.to_gates.bias", "1.layers.0.1.net.1.bias"]:
        assert torch.count_nonzero(model.state_dict()[key]) == 0
    assert torch.equal(model.state_dict()["1.norm.gamma"], torch.ones(256))
    rope = model[1].layers[0][0].pos_encoding
    assert not rope.freqs.requires_grad
    assert torch.allclose(rope.freqs, 10000 ** (-torch.arange(0, 32, 2) / 32))
    # TCN: weight norm starts at g = ||v|| per output channel, so the conv is PyTorch's default
    conv = tcn.build(E, D)[1].layers[0].network[0].conv1
    assert torch.allclose(conv.weight_g.flatten(), conv.weight_v.flatten(1).norm(dim=1))


def test_rmsnorm_definition():
    norm = common.RMSNorm(8)
    with torch.no_grad():
        norm.gamma.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    expected = x / x.pow(2).mean(-1, keepdim=True).sqrt() * norm.gamma
    assert torch.allclose(norm(x), expected)


@pytest.mark.parametrize("name", BUILDERS)
def test_forward_backward(name):
    model = small(name).train()
    x = torch.randn(2, T, E, requires_grad=True)
    y = model(x)
    assert y.shape == (2, T, model.out_dim)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for key, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), key


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("frames", [1, 37])
def test_any_length(name, frames):
    model = small(name).eval()
    with torch.no_grad():
        assert model(torch.randn(1, frames, E)).shape == (1, frames, model.out_dim)


@pytest.mark.parametrize("name", BUILDERS)
def test_batch_invariance(name):
    model = small(name, torch.float64).eval()
    x = torch.randn(3, T, E, dtype=torch.float64)
    with torch.no_grad():
        together = model(x)
        alone = model(x[1:2])
    assert torch.allclose(alone, together[1:2], atol=1e-12)


@pytest.mark.parametrize("name", ["TF", "TCN"])
def test_dropout_only_in_training(name):
    model = small(name)
    x = torch.randn(2, T, E)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def explicit_attention(layer: common.Attention, x: torch.Tensor) -> torch.Tensor:
    """RoPE-rotated softmax(q k^T / sqrt(d)) v, gated per head, written out by hand (eval mode)."""
    B, T, dim = x.shape
    heads, d = layer.heads, layer.dim_head
    h = F.normalize(x, dim=-1) * dim**0.5 * layer.norm.gamma
    q, k, v = (h @ layer.to_qkv.weight.T).split(dim, dim=-1)  # 3 x (B, T, H*d), (qkv, h, d) order
    pos = torch.arange(T, dtype=x.dtype)[:, None] * layer.pos_encoding.freqs  # (T, d/2)
    cos, sin = pos.cos(), pos.sin()

    def rope(t):  # (B, T, H*d) -> (B, H, T, d), pairs (2i, 2i+1) rotated by angle pos * f_i
        t = t.reshape(B, T, heads, d // 2, 2).transpose(1, 2)  # (B, H, T, d/2, 2)
        a, b = t[..., 0], t[..., 1]
        return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)

    q, k = rope(q), rope(k)
    v = v.view(B, T, heads, d).transpose(1, 2)  # (B, H, T, d)
    out = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1) @ v  # (B, H, T, d)
    gates = torch.sigmoid(h @ layer.to_gates.weight.T + layer.to_gates.bias)  # (B, T, H)
    out = out * gates.transpose(1, 2)[..., None]
    return out.transpose(1, 2).reshape(B, T, dim) @ layer.to_out[0].weight.T


def reference_attention(layer: common.Attention, x: torch.Tensor) -> torch.Tensor:
    """The reference (EfficientSED) forward, op for op: rotary_embedding_torch rotates q and k
    separately on (B, H, T, d) copies; gates applied in (B, H, T, d)."""
    B, T, _ = x.shape
    H, d = layer.heads, layer.dim_head
    h = layer.norm(x)
    q, k, v = layer.to_qkv(h).view(B, T, 3, H, d).permute(2, 0, 3, 1, 4).unbind(0)
    q = layer.pos_encoding.rotate_queries_or_keys(q)  # (B, H, T, d)
    k = layer.pos_encoding.rotate_queries_or_keys(k)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=layer.dropout if layer.training else 0.0)
    out = out * layer.to_gates(h).transpose(1, 2).unsqueeze(-1).sigmoid()  # (B, H, T, d)
    return layer.to_out(out.transpose(1, 2).reshape(B, T, H * d))


def test_attention_matches_explicit_formula():
    """Attention == RoPE-rotated softmax(q k^T / sqrt(d)) v, gated per head, written out by hand."""
    torch.manual_seed(0)
    layer = common.Attention(D, 4, 4).double().eval()
    x = torch.randn(2, T, D, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(layer(x), explicit_attention(layer, x), atol=1e-12)


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("training", [False, True])
def test_attention_equals_reference_forward_and_gradients(dtype, atol, training):
    """The fast path (one rotation for q and k, no copies) == the reference's op sequence, in
    outputs and in gradients of input and weights; in training with attention dropout drawn
    from the same seed."""
    torch.manual_seed(0)
    layer = common.Attention(D, 4, 4, dropout=0.3).to(dtype).train(training)
    with torch.no_grad():
        for p in layer.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)  # non-trivial gamma and gate bias too
    x = torch.randn(2, T, D, dtype=dtype)
    results = []
    for forward in (layer, lambda inp: reference_attention(layer, inp)):
        inp = x.clone().requires_grad_()
        layer.zero_grad()
        torch.manual_seed(1)
        out = forward(inp)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out))
        grads = [inp.grad] + [p.grad.clone() for p in layer.parameters() if p.requires_grad]
        results.append((out.detach(), grads))
    (fast, fast_grads), (ref, ref_grads) = results
    torch.testing.assert_close(fast, ref, rtol=0, atol=atol)
    for g_fast, g_ref in zip(fast_grads, ref_grads):
        torch.testing.assert_close(g_fast, g_ref, rtol=0, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("frames", [1, 37])
def test_rope_bitwise_equals_rotary_embedding_torch(dtype, frames):
    """apply_rope(rope_tables(...)) on q and k side by side == the library on each alone."""
    rope = common.RotaryEmbedding(8).to(dtype)
    heads = 3
    qk = torch.randn(2, frames, 2 * heads * 8, dtype=dtype)  # (B, T, (q|k, head, d))
    cos, sin = common.rope_tables(rope.freqs, frames, dtype, qk.shape[-1])
    fast = common.apply_rope(qk, cos, sin).view(2, frames, 2, heads, 8).permute(2, 0, 3, 1, 4)
    lib = rope.rotate_queries_or_keys(qk.view(2, frames, 2, heads, 8).permute(2, 0, 3, 1, 4))
    assert fast.dtype == dtype
    assert torch.equal(fast, lib)


def test_rope_follows_freqs_after_load_state_dict():
    """`freqs` is read on every forward: new values loaded after a forward take effect (the
    rotary_embedding_torch cache would keep the old angles)."""
    torch.manual_seed(0)
    layer = common.Attention(D, 4, 4).double().eval()
    x = torch.randn(2, T, D, dtype=torch.float64)
    with torch.no_grad():
        before = layer(x)
        state = layer.state_dict()
        state["pos_encoding.freqs"] = state["pos_encoding.freqs"] * 3.0
        layer.load_state_dict(state)
        after = layer(x)
    assert not torch.allclose(after, before, atol=1e-6)
    assert torch.allclose(after, explicit_attention(layer, x), atol=1e-12)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_gru_step_equals_parallel(bidirectional):
    model = bigru.build(E, D, bidirectional=bidirectional).double().eval()
    gru = model[0].gru
    x = torch.randn(2, T, E, dtype=torch.float64)
    with torch.no_grad():
        parallel = model(x)
        step = bigru.gru_sequential(gru, x)
    assert parallel.shape == step.shape == (2, T, model.out_dim)
    assert torch.allclose(parallel, step, atol=1e-12)


def test_tcn_is_causal():
    model = small("TCN", torch.float64).eval()
    x = torch.randn(1, 40, E, dtype=torch.float64)
    t = 20
    x2 = x.clone()
    x2[:, t + 1 :] = torch.randn_like(x2[:, t + 1 :])
    with torch.no_grad():
        y, y2 = model(x), model(x2)
    assert torch.equal(y[:, : t + 1], y2[:, : t + 1])
    assert not torch.allclose(y[:, t + 1 :], y2[:, t + 1 :])


def test_tcn_receptive_field():
    assert tcn.receptive_field(blocks=5, kernel_size=3) == 125
    net = tcn.TemporalConvNet(4, blocks=5, kernel_size=3, dropout=0.0, act=torch.nn.ReLU).double()
    frames, t = 140, 139
    x = torch.randn(1, frames, 4, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda inp: net(inp)[0, t].sum(), x)[0]  # (T, 4)
    seen = (jac.abs().sum(-1) > 0).nonzero().flatten()
    assert seen.min().item() == t - 124 and seen.max().item() == t


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", BUILDERS)
def test_device_follows_input_cuda(name):
    model = small(name).eval()
    x = torch.randn(2, T, E)
    with torch.no_grad():
        expected = model(x)
        got = model.cuda()(x.cuda())
    assert got.device.type == "cuda"
    assert torch.allclose(got.cpu(), expected, atol=1e-4)

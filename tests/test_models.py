"""Backbone, assembled SED model, name registry, checkpoints and the inference rewrite.

Parameter counts and state_dict layouts are checked against SPEC 3.1/3.2 on the meta device
(no memory, no init), forward/backward runs on tiny inputs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os

import pytest
import torch
from torch import nn

from sedlib.errors import CheckpointError
from sedlib.models import adapters, checkpoints, download, releases
from sedlib.models.backbone import FrameMobileNet, clipwise_strides, make_divisible
from sedlib.models.random_init import with_live_activations
from sedlib.models.fuse import OneDNNLinear, optimize_for_inference, use_onednn_linears
from sedlib.models.names import (
    SEQ_MODELS,
    ModelConfig,
    embed_dim,
    format_name,
    list_models,
    parse_name,
)
from sedlib.models.onednn import onednn_linear_available
from sedlib.registry import create_model

# SPEC 3.1: name -> (params total, backbone params)
PARAMS = {
    "fmn04": (860_318, 516_128),
    "fmn06": (1_615_022, 1_099_184),
    "fmn10": (3_830_798, 2_971_664),
    "fmn20": (13_359_254, 11_641_880),
    "fmn30": (28_574_734, 25_999_120),
    "fmn10+TF:256": (5_028_286, 2_971_664),
    "fmn10+HYBRID:128": (3_801_806, 2_971_664),
    "fmn10+BiGRU:256": (6_483_854, 2_971_664),
    "fmn10+ATT:256": (3_976_382, 2_971_664),
    "fmn10+TCN:256": (7_389_838, 2_971_664),
    "fmn04+HYBRID:104": (1_041_026, 516_128),
    "fmn04+TF:104": (912_048, 516_128),
    "fmn04+BiGRU:104": (1_204_670, 516_128),
    "fmn06+HYBRID:160": (2_259_518, 1_099_184),
    "fmn06+TF:160": (1_954_834, 1_099_184),
    "fmn06+BiGRU:160": (2_557_358, 1_099_184),
    "fmn20+TF:512": (19_391_462, 11_641_880),
    "fmn20+HYBRID:512": (22_529_174, 11_641_880),
    "fmn20+BiGRU:512": (24_760_214, 11_641_880),
    "fmn30+TF:768": (43_078_910, 25_999_120),
    "fmn30+HYBRID:768": (50_144_782, 25_999_120),
    "fmn30+BiGRU:768": (54_818_446, 25_999_120),
    "fmn10+TF:128": (3_607_214, 2_971_664),
    "fmn10+TF:512": (10_229_726, 2_971_664),
    "fmn10+TF:1024": (30_069_790, 2_971_664),
    "fmn10+HYBRID:256": (5_810_702, 2_971_664),
    "fmn10+HYBRID:512": (13_367_438, 2_971_664),
    "fmn10+HYBRID:1024": (42_636_686, 2_971_664),
    "fmn10+BiGRU:128": (4_334_990, 2_971_664),
    "fmn10+BiGRU:512": (13_140_878, 2_971_664),
    "fmn10+BiGRU:1024": (35_892_110, 2_971_664),
    "fmn10+ATT:128": (3_343_406, 2_971_664),
    "fmn10+ATT:512": (6_028_766, 2_971_664),
    "fmn10+ATT:1024": (13_279_262, 2_971_664),
    "fmn10+TCN:128": (4_198_158, 2_971_664),
    "fmn10+TCN:512": (19_671_438, 2_971_664),
    "fmn10+TCN:1024": (67_827_598, 2_971_664),
    "fmn10+MAMBA:128": (3_445_310, 2_971_664),
    "fmn10+MAMBA:256": (4_310_206, 2_971_664),
    "fmn10+MAMBA:512": (7_227_886, 2_971_664),
    "fmn10+MAMBA:1024": (17_806_414, 2_971_664),
}
# SPEC 3.1 state_dict entry counts (MAMBA: 312 + projection 2 + LayerNorm 2 + 2 x 9)
ENTRIES = {None: 312, "TF": 337, "ATT": 326, "BiGRU": 328, "HYBRID": 341, "TCN": 434, "MAMBA": 334}


def needs_seq(name: str) -> None:
    """Skip (only) while the sequence model's module has not been written yet."""
    seq = parse_name(name).seq_model
    if seq is not None and importlib.util.find_spec(SEQ_MODELS[seq]) is None:
        pytest.skip(f"{SEQ_MODELS[seq]} does not exist yet")


def meta_model(name: str) -> nn.Module:
    needs_seq(name)
    with torch.device("meta"):
        return create_model(name)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def perturb_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics, so folding and eval-mode tests mean something."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)


def fill_deterministic(model: nn.Module, seed: int = 0) -> None:
    """Overwrite every float tensor of the state_dict from a seeded CPU generator, in key order
    (weights ~ N(0, (1.3)^2/fan_in), a gain at which activations neither vanish nor explode
    through the 17 stages; biases/BN shifts small, running_var in [0.5, 1.5])."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if key.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float64) + 0.5)
            elif t.dim() >= 2:
                t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float64) * 1.3 / t[0].numel() ** 0.5)
            else:
                t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float64) * 0.2
                        + (0.9 if key.endswith(".weight") else -0.1))


def reference_input() -> torch.Tensor:
    return torch.randn(1, 1, 128, 1000, generator=torch.Generator().manual_seed(1),
                       dtype=torch.float64)


# --------------------------------------------------------------------------- (a) parameter counts


def test_list_models_is_the_study():
    names = list_models()
    assert set(names) == set(PARAMS)
    assert len(names) == len(set(names)) == 41
    assert "fmntiny" not in names and "fmntiny" in list_models(include_unlisted=True)
    assert list_models("fmn10+MAMBA*") == [f"fmn10+MAMBA:{d}" for d in (128, 256, 512, 1024)]


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_counts(name):
    model = meta_model(name)
    total, backbone = PARAMS[name]
    assert n_params(model) == total
    assert n_params(model.model.fmn) == backbone
    assert len(model.state_dict()) == ENTRIES[parse_name(name).seq_model]


@pytest.mark.parametrize("width,embed", [(0.4, 384), (0.6, 576), (1.0, 960), (2.0, 1920), (3.0, 2880)])
def test_embed_dim(width, embed):
    assert embed_dim(width) == embed
    with torch.device("meta"):
        assert FrameMobileNet(width).features[16][0].out_channels == embed


def test_make_divisible():
    assert [make_divisible(v) for v in (1.6, 6.4, 9.6, 28.8, 64, 72 * 0.4, 184 * 0.4)] == \
        [8, 8, 16, 32, 64, 32, 72]
    assert make_divisible(10.0) == 16  # 8 < 0.9 * 10 -> +8


# --------------------------------------------------------------------------- (b) state_dict layout

FIRST10 = ["features.0.0.weight", "features.0.1.weight", "features.0.1.bias",
           "features.0.1.running_mean", "features.0.1.running_var",
           "features.0.1.num_batches_tracked", "features.1.block.0.0.weight",
           "features.1.block.0.1.weight", "features.1.block.0.1.bias",
           "features.1.block.0.1.running_mean"]


@pytest.mark.parametrize("name,c", [("fmn04", 8), ("fmn10", 16), ("fmn20", 32)])
def test_first_keys(name, c):
    sd = meta_model(name).state_dict()
    keys = list(sd)[:10]
    assert keys == ["model.fmn." + k for k in FIRST10]
    shapes = [tuple(sd[k].shape) for k in keys]
    assert shapes == [(c, 1, 3, 3), (c,), (c,), (c,), (c,), (), (c, 1, 3, 3), (c,), (c,), (c,)]


def _heads(n):
    return [("strong_head.weight", (447, n)), ("strong_head.bias", (447,)),
            ("weak_head.weight", (447, n)), ("weak_head.bias", (447,))]


LAST10 = {
    "fmn10": [("model.fmn.features.16.0.weight", (960, 160, 1, 1))]
    + [(f"model.fmn.features.16.1.{k}", (960,)) for k in ("weight", "bias", "running_mean", "running_var")]
    + [("model.fmn.features.16.1.num_batches_tracked", ())] + _heads(960),
    "fmn20": [("model.fmn.features.16.0.weight", (1920, 320, 1, 1))]
    + [(f"model.fmn.features.16.1.{k}", (1920,)) for k in ("weight", "bias", "running_mean", "running_var")]
    + [("model.fmn.features.16.1.num_batches_tracked", ())] + _heads(1920),
    "fmn10+TF:256": [("seq_model.1.layers.1.1.net.0.gamma", (256,)),
                     ("seq_model.1.layers.1.1.net.1.weight", (1024, 256)),
                     ("seq_model.1.layers.1.1.net.1.bias", (1024,)),
                     ("seq_model.1.layers.1.1.net.4.weight", (256, 1024)),
                     ("seq_model.1.layers.1.1.net.4.bias", (256,)),
                     ("seq_model.1.norm.gamma", (256,))] + _heads(256),
    "fmn10+HYBRID:128": [("seq_model.1.layers.1.2.gamma", (128,)),
                         ("seq_model.1.layers.1.3.0.weight", (512, 128)),
                         ("seq_model.1.layers.1.3.0.bias", (512,)),
                         ("seq_model.1.layers.1.3.2.weight", (128, 512)),
                         ("seq_model.1.layers.1.3.2.bias", (128,)),
                         ("seq_model.1.norm.gamma", (128,))] + _heads(128),
    "fmn10+BiGRU:256": [("seq_model.0.gru.bias_ih_l1", (768,)), ("seq_model.0.gru.bias_hh_l1", (768,)),
                        ("seq_model.0.gru.weight_ih_l1_reverse", (768, 512)),
                        ("seq_model.0.gru.weight_hh_l1_reverse", (768, 256)),
                        ("seq_model.0.gru.bias_ih_l1_reverse", (768,)),
                        ("seq_model.0.gru.bias_hh_l1_reverse", (768,))] + _heads(512),
    "fmn10+ATT:256": [("seq_model.1.layers.1.pos_encoding.freqs", (16,)),
                      ("seq_model.1.layers.1.norm.gamma", (256,)),
                      ("seq_model.1.layers.1.to_qkv.weight", (768, 256)),
                      ("seq_model.1.layers.1.to_gates.weight", (8, 256)),
                      ("seq_model.1.layers.1.to_gates.bias", (8,)),
                      ("seq_model.1.layers.1.to_out.0.weight", (256, 256))] + _heads(256),
    "fmn10+TCN:256": [("seq_model.1.layers.1.network.4.net.0.bias", (256,)),
                      ("seq_model.1.layers.1.network.4.net.0.weight_g", (256, 1, 1)),
                      ("seq_model.1.layers.1.network.4.net.0.weight_v", (256, 256, 3)),
                      ("seq_model.1.layers.1.network.4.net.4.bias", (256,)),
                      ("seq_model.1.layers.1.network.4.net.4.weight_g", (256, 1, 1)),
                      ("seq_model.1.layers.1.network.4.net.4.weight_v", (256, 256, 3))] + _heads(256),
    "fmn04+HYBRID:104": [("seq_model.1.layers.1.2.gamma", (104,)),
                         ("seq_model.1.layers.1.3.0.weight", (416, 104)),
                         ("seq_model.1.layers.1.3.0.bias", (416,)),
                         ("seq_model.1.layers.1.3.2.weight", (104, 416)),
                         ("seq_model.1.layers.1.3.2.bias", (104,)),
                         ("seq_model.1.norm.gamma", (104,))] + _heads(104),
}


@pytest.mark.parametrize("name", list(LAST10))
def test_last_keys(name):
    sd = meta_model(name).state_dict()
    assert [(k, tuple(v.shape)) for k, v in list(sd.items())[-10:]] == LAST10[name]


def test_other_reference_keys():
    sd = meta_model("fmn10+TF:256").state_dict()
    assert tuple(sd["seq_model.0.weight"].shape) == (256, 960)
    for i in (0, 1):
        p = f"seq_model.1.layers.{i}.0."
        assert tuple(sd[p + "pos_encoding.freqs"].shape) == (16,)
        assert tuple(sd[p + "to_qkv.weight"].shape) == (768, 256)
    sd = meta_model("fmn04+HYBRID:104").state_dict()
    assert tuple(sd["seq_model.0.weight"].shape) == (104, 384)
    assert tuple(sd["seq_model.1.layers.0.1.rnn_out_norm.gamma"].shape) == (13,)
    sd = meta_model("fmn10").state_dict()
    se = "model.fmn.features.4.block.2.conc_se_layers.0."
    assert tuple(sd[se + "fc1.weight"].shape) == (24, 72) and tuple(sd[se + "fc2.weight"].shape) == (72, 24)
    assert "model.fmn.features.1.block.2.0.weight" not in sd  # block 0: no expansion conv
    assert not any(k.startswith("seq_model") for k in sd)  # Identity adds no keys


# --------------------------------------------------------------------------- backbone shapes


def test_backbone_time_contract():
    fmn = FrameMobileNet(0.4).eval()
    with torch.no_grad():
        for t, out in [(64, 16), (1000, 250), (36, 9), (65, 17), (66, 17), (67, 17)]:
            assert fmn(torch.randn(1, 1, 128, t)).shape == (1, out, 384)
        with pytest.raises(ValueError, match="frequency bins"):
            fmn(torch.randn(1, 1, 256, 64))


def test_backbone_options():
    m = FrameMobileNet(0.4, strides=clipwise_strides()).eval()
    assert m.state_dict().keys() == FrameMobileNet(0.4).state_dict().keys()
    with torch.no_grad():
        assert m.forward_features(torch.randn(1, 1, 128, 1000)).shape == (1, 384, 4, 32)
        with pytest.raises(ValueError):
            m(torch.randn(1, 1, 128, 1000))
        pooled = FrameMobileNet(0.4, strides=clipwise_strides(), freq_reduction="mean").eval()
        assert pooled(torch.randn(1, 1, 128, 1000)).shape == (1, 32, 384)
    dil = FrameMobileNet(0.4, time_dilations=[1] * 12 + [2] * 3)
    assert dil.features[15].block[1][0].dilation == (1, 2)
    assert dil.features[15].block[1][0].padding == (2, 4)
    bn = m.features[0][1]
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
    with pytest.raises(ValueError):
        FrameMobileNet(1.0, strides=[(1, 1)] * 3)


# --------------------------------------------------------------------------- (c) forward / backward


@pytest.mark.parametrize("name", list_models())
def test_forward_every_listed_model(name):
    needs_seq(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).eval()
    with torch.inference_mode():
        strong, weak = model(torch.randn(2, 1, 128, 64))
    assert strong.shape == (2, 5, 16) and weak.shape == (2, 5)
    assert torch.isfinite(strong).all() and torch.isfinite(weak).all()
    assert model.name == name and format_name(model.config) == name


TRAIN_NAMES = ["fmntiny", "fmn04"] + [f"fmntiny+{s}" for s in SEQ_MODELS] + ["fmn04+TF:104"]


@pytest.mark.parametrize("name", TRAIN_NAMES)
def test_forward_backward_small(name):
    needs_seq(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=7).train()
    strong, weak = model(torch.randn(2, 1, 128, 64))
    assert strong.shape == (2, 7, 16) and weak.shape == (2, 7)
    (strong.square().mean() + weak.square().mean()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.model.fmn.features[0][0].weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------- (d) batch invariance


@pytest.mark.parametrize("name", ["fmntiny"] + [f"fmntiny+{s}" for s in SEQ_MODELS])
def test_eval_batch_invariance(name):
    needs_seq(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).double().eval()
    perturb_bn(model)
    x = torch.randn(3, 1, 128, 48, dtype=torch.float64)
    with torch.no_grad():
        strong, weak = model(x)
        for i in range(3):
            s1, w1 = model(x[i:i + 1])
            torch.testing.assert_close(s1[0], strong[i], rtol=0, atol=1e-10)
            torch.testing.assert_close(w1[0], weak[i], rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- (e) names


@pytest.mark.parametrize("name", list_models(include_unlisted=True))
def test_name_round_trip(name):
    cfg = parse_name(name)
    assert format_name(cfg) == name == cfg.name
    assert parse_name(format_name(cfg)) == cfg


@pytest.mark.parametrize("alias,canonical", [
    ("fmn10", "fmn10"), ("FMN10", "fmn10"), ("fmn10+tf", "fmn10+TF:256"),
    ("fmn10+gru:512", "fmn10+BiGRU:512"), ("fmn10+bigru", "fmn10+BiGRU:256"),
    ("fmn04+hybrid", "fmn04+HYBRID:104"), ("fmn06+attn", "fmn06+ATT:160"),
    ("fmn20+Mamba", "fmn20+MAMBA:512"), ("fmn30+tcn", "fmn30+TCN:768"),
    (" fmn10+TF:128 ", "fmn10+TF:128"),
])
def test_name_aliases(alias, canonical):
    assert parse_name(alias).name == canonical


@pytest.mark.parametrize("bad,match", [
    ("fmn11", "unknown backbone 'fmn11'.*fmn04, fmn06, fmn10"),
    ("mn10", "unknown backbone"),
    ("fmn10+LSTM", "unknown sequence model 'LSTM'.*TF, ATT, BiGRU, TCN, MAMBA, HYBRID"),
    ("fmn10:256", "dim given without a sequence model"),
    ("fmn10+TF:abc", "bad dim 'abc'"),
    ("fmn10+TF:0", "bad dim"),
    ("fmn10+TF:-1", "bad dim"),
    ("fmn10+TF+ATT", "cannot parse"),
    ("", "cannot parse"),
])
def test_name_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        parse_name(bad)


def test_model_config_is_frozen_and_validated():
    cfg = ModelConfig("fmn10", "TF")
    assert cfg.seq_dim == 256 and cfg.embed_dim == 960 and cfg.width == 1.0
    with pytest.raises(Exception):
        cfg.seq_dim = 128
    with pytest.raises(ValueError):
        ModelConfig("fmn10", None, 128)
    with pytest.raises(ValueError, match="no sequence model"):
        create_model("fmn04", dropout=0.1)


# --------------------------------------------------------------------------- (f) checkpoints


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = create_model("fmntiny", num_classes=6).eval()
    perturb_bn(model)
    return model


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_reload_strict(tmp_path, tiny):
    path = checkpoints.save_state_dict(tiny, tmp_path / "m.pt")
    fresh = create_model("fmntiny", num_classes=6, checkpoint=path)
    assert _same(fresh, tiny)
    assert not fresh.load_report.initialised and not fresh.load_report.ignored


def test_reference_layout_loads_strict(tmp_path):
    needs_seq("fmntiny+TF")
    torch.manual_seed(0)
    src = create_model("fmntiny+TF", num_classes=6)
    raw = {}
    for k, v in src.state_dict().items():  # how the reference Lightning module stores them
        raw["net.model." + k[len("model.fmn."):] if k.startswith("model.fmn.") else "net." + k] = v
    assert "net.model.features.0.0.weight" in raw and "net.strong_head.bias" in raw
    torch.save(raw, tmp_path / "ref.pt")
    sd, ignored = adapters.adapt_efficientsed(checkpoints.load_state_dict(tmp_path / "ref.pt"))
    dst = create_model("fmntiny+TF", num_classes=6)
    report = checkpoints.load_into(dst, sd)
    assert _same(dst, src) and not ignored and not report.initialised
    # also via create_model with format detection, and PretrainedSED's model.frame_mn.*
    assert _same(create_model("fmntiny+TF", num_classes=6, checkpoint=tmp_path / "ref.pt"), src)
    pretrained_sed = {k.replace("model.fmn.", "model.frame_mn."): v for k, v in src.state_dict().items()}
    lightning = {"net." + k: v for k, v in src.state_dict().items()}  # net.model.fmn.*
    for variant in (pretrained_sed, lightning, src.state_dict()):
        dst2 = create_model("fmntiny+TF", num_classes=6)
        checkpoints.load_into(dst2, adapters.adapt_efficientsed(variant)[0])
        assert _same(dst2, src)


def test_efficientat_backbone_only(tmp_path, tiny, caplog):
    sd = {k[len("model.fmn."):]: v for k, v in tiny.state_dict().items() if k.startswith("model.fmn.")}
    sd["classifier.2.weight"] = torch.randn(1280, 96)
    sd["classifier.5.bias"] = torch.randn(527)
    torch.save(sd, tmp_path / "mn_as.pt")
    with caplog.at_level(logging.INFO, logger="sedlib.models.checkpoints"):
        model = create_model("fmntiny", num_classes=6, checkpoint=tmp_path / "mn_as.pt")
    report = model.load_report
    assert report.ignored == ["classifier.2.weight", "classifier.5.bias"]
    assert set(report.initialised) == {"strong_head.weight", "strong_head.bias",
                                       "weak_head.weight", "weak_head.bias"}
    assert report.heads_reset and "classifier.2.weight" in caplog.text
    for k, v in model.model.state_dict().items():
        assert torch.equal(v, tiny.model.state_dict()[k])
    # a backbone-only file under a new sequence model (fmnXX_weak under a TF)
    needs_seq("fmntiny+TF")
    weak_like = {"net.model." + k: v for k, v in sd.items() if k.startswith("features.")}
    weak_like["net.weak_head.weight"] = torch.randn(527, 96)
    weak_like["net.weak_head.bias"] = torch.randn(527)
    adapted, ignored = adapters.adapt_fmn_weak(weak_like)
    assert ignored == ["weak_head.weight", "weak_head.bias"]
    seq = create_model("fmntiny+TF", num_classes=6)
    rep = checkpoints.load_into(seq, adapted)
    assert all(k.startswith(("seq_model.", "strong_head.", "weak_head.")) for k in rep.initialised)


def test_strong_checkpoint_under_new_sequence_model(tiny):
    needs_seq("fmntiny+BiGRU")
    model = create_model("fmntiny+BiGRU", num_classes=6)
    report = checkpoints.load_into(model, tiny.state_dict())
    assert sorted(report.ignored) == sorted(["strong_head.weight", "strong_head.bias",
                                             "weak_head.weight", "weak_head.bias"])
    assert torch.equal(model.model.fmn.features[0][0].weight, tiny.model.fmn.features[0][0].weight)


def test_num_classes_change_reinitialises_heads(tiny):
    model = create_model("fmntiny", num_classes=10)
    before = model.strong_head.weight.clone()
    report = checkpoints.load_into(model, tiny.state_dict())
    assert report.heads_reset
    assert set(report.ignored) == {"strong_head.weight", "strong_head.bias", "weak_head.weight",
                                   "weak_head.bias"}
    assert not torch.equal(model.strong_head.weight, before)  # re-initialised
    assert torch.equal(model.model.fmn.features[16][0].weight, tiny.model.fmn.features[16][0].weight)


def test_mismatch_raises_with_details(tiny):
    sd = dict(tiny.state_dict())
    sd["model.fmn.features.3.block.0.0.weight"] = torch.zeros(3, 3, 1, 1)
    sd["model.fmn.bogus"] = torch.zeros(1)
    del sd["model.fmn.features.16.1.running_var"]
    with pytest.raises(CheckpointError) as err:
        checkpoints.load_into(create_model("fmntiny", num_classes=6), sd)
    msg = str(err.value)
    assert "missing 1 keys: model.fmn.features.16.1.running_var" in msg
    assert "unexpected 1 keys: model.fmn.bogus" in msg
    assert "first shape mismatch: model.fmn.features.3.block.0.0.weight: checkpoint (3, 3, 1, 1)" in msg
    with pytest.raises(CheckpointError, match="shape mismatch"):  # another width
        checkpoints.load_into(create_model("fmn04", num_classes=6), tiny.state_dict())
    report = checkpoints.load_into(create_model("fmntiny", num_classes=6), sd, strict=False)
    assert set(report.skipped) == {"model.fmn.bogus", "model.fmn.features.3.block.0.0.weight"}


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"w": torch.zeros(2), "x": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refusing to unpickle.*weights_only"):
        checkpoints.load_state_dict(tmp_path / "evil.pt")
    assert not marker.exists()


def test_safetensors_round_trip_and_fp16(tmp_path, tiny):
    path = checkpoints.save_state_dict(tiny, tmp_path / "m.safetensors")
    assert _same(create_model("fmntiny", num_classes=6, checkpoint=path), tiny)
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in tiny.state_dict().items()}
    torch.save(half, tmp_path / "half.pt")
    sd = checkpoints.load_state_dict(tmp_path / "half.pt")
    assert all(v.dtype == torch.float32 for v in sd.values() if v.is_floating_point())
    assert torch.equal(sd["strong_head.weight"], half["strong_head.weight"].float())


def test_a_tcn_model_saves_as_safetensors(tmp_path):
    """A TCN registers each conv twice (conv1 / net.0, as the reference): its state_dict holds
    tensors that share memory, which safetensors refuses unless they are copied."""
    torch.manual_seed(0)
    model = create_model("fmntiny+TCN:16", num_classes=3)
    path = checkpoints.save_state_dict(model, tmp_path / "tcn.safetensors")
    assert _same(create_model("fmntiny+TCN:16", num_classes=3, checkpoint=path), model)


def test_download_file_url(tmp_path):
    src = tmp_path / "src" / "weights.pt"
    src.parent.mkdir()
    torch.save({"a": torch.arange(4.0)}, src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    bad = "0" * 64
    with pytest.raises(CheckpointError, match="sha256"):
        download.download("weights.pt", cache_dir=cache, url=src.as_uri(), sha256=bad, progress=False)
    assert list(cache.iterdir()) == []  # no partial file left
    path = download.download("weights.pt", cache_dir=cache, url=src.as_uri(), sha256=digest, progress=False)
    assert path == cache / "weights.pt" and torch.equal(checkpoints.load_state_dict(path)["a"], torch.arange(4.0))
    assert [p.name for p in cache.iterdir()] == ["weights.pt"]
    with pytest.raises(CheckpointError, match="cached"):  # a cached file is verified too
        download.download("weights.pt", cache_dir=cache, url=src.as_uri(), sha256=bad, progress=False)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SEDLIB_CACHE", str(tmp_path))
    assert download.resolve_cache_dir() == tmp_path


def test_release_catalogue():
    r = releases.RELEASES
    efficientsed = [n for n, rel in r.items() if rel.url.startswith(releases.EFFICIENTSED_URL)]
    assert len(efficientsed) == 5 + 5 + 3 * (4 + 1 + 1 + 1 + 1) + 1 == 35
    assert r["fmn10+tf-256_strong"].url.endswith("/v0.0.1/fmn10+tf-256_strong.pt")
    assert releases.release_to_model("fmn10+tf-256_strong") == "fmn10+TF:256"
    assert releases.release_to_model("fmn10+gru-1024_strong") == "fmn10+BiGRU:1024"
    assert releases.release_to_model("fmn04+hybrid-104_strong") == "fmn04+HYBRID:104"
    assert releases.release_to_model("fmn10+tf-256_advanced-kd-weak-strong") == "fmn10+TF:256"
    assert r["fmn20_weak"].format == "fmn_weak" and r["fmn20_weak"].model == "fmn20"
    assert r["mn10_as"].filename == "mn10_as_mAP_471.pt" and r["mn10_as"].model == "fmn10"
    assert releases.get_release("mn10_as_mAP_471.pt").name == "mn10_as"
    for name, rel in r.items():
        if rel.url.startswith(releases.EFFICIENTSED_URL) and "+" in name:
            assert releases.model_to_release(rel.model, name.split("_", 1)[1]) == name
            parse_name(rel.model)
    assert releases.model_to_release("fmn10") == "fmn10_strong"
    with pytest.raises(ValueError, match="no released checkpoint"):
        releases.model_to_release("fmn10+ATT:256")
    with pytest.raises(CheckpointError, match="neither a file nor a release"):
        create_model("fmntiny", checkpoint="no_such_release_or_file")


# --------------------------------------------------------------------------- inference rewrite


@pytest.mark.parametrize("backend", ["eager", "jit"])
@pytest.mark.parametrize("name", ["fmntiny", "fmntiny+TF"])
def test_optimize_for_inference_matches(name, backend):
    needs_seq(name)
    torch.manual_seed(0)
    model = create_model(name).eval()
    perturb_bn(model)
    fast = optimize_for_inference(model, backend=backend)
    assert model.model.fmn.features[0][1].__class__ is nn.BatchNorm2d  # original untouched
    with torch.inference_mode():
        for shape in [(2, 1, 128, 64), (3, 1, 128, 200)]:
            x = torch.randn(*shape)
            (s0, w0), (s1, w1) = model(x), fast(x)
            assert s1.shape == s0.shape and w1.shape == w0.shape
            torch.testing.assert_close(s1, s0, rtol=0, atol=1e-4)
            torch.testing.assert_close(w1, w0, rtol=0, atol=1e-4)
        with pytest.raises(ValueError):
            fast(torch.randn(1, 1, 256, 64))


@pytest.mark.parametrize("name", [f"fmntiny+{s}" for s in SEQ_MODELS])
def test_optimize_for_inference_every_sequence_model(name):
    """The sequence-model/head rewrite (oneDNN linears) keeps every sequence model's outputs."""
    needs_seq(name)
    torch.manual_seed(0)  # live activations: a fresh backbone gives the same logits for every input
    model = with_live_activations(create_model(name))
    fast = optimize_for_inference(model, backend="eager")
    if onednn_linear_available():
        linears = [m for m in (model.seq_model, model.strong_head, model.weak_head)
                   for m in m.modules() if type(m) is nn.Linear]
        assert fast.onednn_linears == len(linears) >= 2
        assert not any(type(m) is nn.Linear for m in fast.seq_model.modules())
    with torch.inference_mode():
        x = torch.randn(2, 1, 128, 40)
        for a, b in zip(model(x), fast(x)):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-4)


@pytest.mark.skipif(not onednn_linear_available(), reason="torch built without oneDNN")
def test_onednn_linear_equals_linear():
    torch.manual_seed(0)
    for bias in (True, False):
        linear = nn.Linear(24, 10, bias=bias)
        fast = OneDNNLinear(linear)
        for x in (torch.randn(5, 24), torch.randn(2, 7, 24), torch.randn(2, 24, 7).transpose(1, 2),
                  torch.randn(1, 1, 3, 48)[..., ::2], torch.randn(0, 24)):
            with torch.no_grad():
                torch.testing.assert_close(fast(x), linear(x), rtol=0, atol=1e-5)
    with pytest.raises(RuntimeError, match="inference-only"):
        fast(torch.randn(2, 24, requires_grad=True))


@pytest.mark.skipif(not onednn_linear_available(), reason="torch built without oneDNN")
def test_use_onednn_linears_skips_and_keeps_subclasses():
    backbone = nn.Sequential(nn.Linear(4, 4))
    mha = nn.MultiheadAttention(4, 1)  # out_proj: a Linear subclass read functionally
    tree = nn.ModuleDict({"backbone": backbone, "mha": mha,
                          "seq": nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 4))})
    assert use_onednn_linears(tree, skip=backbone) == 2
    assert type(backbone[0]) is nn.Linear and type(mha.out_proj) is not OneDNNLinear
    assert [type(m) for m in tree["seq"]] == [OneDNNLinear, nn.GELU, OneDNNLinear]


# --------------------------------------------------------------------------- reference parity


@pytest.mark.parametrize("name", ["fmntiny", "fmn04"])
def test_matches_reference_logits(name):
    """tests/fixtures/fmn_reference_logits.pt holds float64 logits of the reference
    ``PredictionsWrapper(FrameMNWrapper(width), n_classes_strong=5)`` (EfficientSED code, run once
    outside this repo) after :func:`fill_deterministic`, on :func:`reference_input` (T = 1000, so
    the reference's resampling to 250 frames is a no-op)."""
    expected = torch.load(os.path.join(os.path.dirname(__file__), "fixtures", "fmn_reference_logits.pt"),
                          weights_only=True)[name]
    model = create_model(name, num_classes=5).double().eval()
    fill_deterministic(model)
    with torch.no_grad():
        strong, weak = model(reference_input())
    assert expected["strong"].std(dim=2).mean() > 0.1  # logits vary over time: a real signal
    torch.testing.assert_close(strong, expected["strong"], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(weak, expected["weak"], rtol=1e-9, atol=1e-9)


def test_with_live_activations_makes_random_logits_depend_on_the_input():
    """A fresh fmn backbone's logits are one constant for every input (activations shrink to
    ~1e-15); after with_live_activations they spread over a batch. Weights and BN momenta are
    kept; the global RNG is untouched."""
    torch.manual_seed(0)
    model = create_model("fmntiny", num_classes=4).eval()
    x = torch.randn(3, 1, 128, 100, generator=torch.Generator().manual_seed(1))
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    with torch.no_grad():
        before = model(x)[0].std(0).mean().item()
    state = torch.get_rng_state()
    with_live_activations(model)
    assert torch.equal(torch.get_rng_state(), state) and not model.training
    with torch.no_grad():
        after = model(x)[0].std(0).mean().item()
    assert before < 1e-5 < 0.05 < after
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    assert {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.01}

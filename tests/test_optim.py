"""Layer-wise LR decay, Adam, the warmup + cosine schedule, and the training configs (SPEC 5)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from sedlib.config import AudioConfig
from sedlib.data.synth.soundscape import SynthConfig
from sedlib.evaluate.config import AUROCConfig, PSDSConfig
from sedlib.models.names import ModelConfig
from sedlib.registry import create_model
from sedlib.train.config import (
    DISTILL_PRESETS,
    PRESETS,
    DistillConfig,
    TrainConfig,
    optimizer_from_config,
    scheduler_from_config,
)
from sedlib.train.optim import (
    REFERENCE_WARMUP_STEPS,
    SEQ_GROUP,
    CosineWithWarmup,
    block_lrs,
    make_optimizer,
    make_scheduler,
    param_groups,
    set_train_mode,
)

MAX_LR, SEQ_LR = 3e-3, 8e-4


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("fmn04+TF:32", num_classes=7)


def _reference_lrs(model, lr, lr_decay):
    """The reference ``layerwise_lr_decay`` walk, re-stated: parameter name -> LR."""
    names = [n for n, _ in model.model.fmn.named_parameters() if n.startswith("features")]
    out, prev = {}, ".".join(names[-1].split(".")[:2])
    for name in reversed(names):
        group = ".".join(name.split(".")[:2])
        if group != prev:
            lr *= lr_decay
        prev = group
        out["model.fmn." + name] = lr
    return out


def test_seventeen_levels_of_decay(model):
    groups = param_groups(model, max_lr=MAX_LR, seq_lr=SEQ_LR)
    names = [g["name"] for g in groups]
    assert names == [f"features.{i}" for i in range(16, -1, -1)] + [SEQ_GROUP]
    for k, g in enumerate(groups[:17]):
        assert g["lr"] == pytest.approx(MAX_LR * 0.9 ** k, rel=1e-13, abs=0)
    assert groups[0]["lr"] == MAX_LR
    assert groups[16]["lr"] == pytest.approx(MAX_LR * 0.9 ** 16, rel=1e-13)
    assert groups[-1]["lr"] == SEQ_LR
    # every trainable parameter exactly once, at the reference's LR (bit for bit)
    ref = _reference_lrs(model, MAX_LR, 0.9)
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert len(by_id) == sum(len(g["params"]) for g in groups)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert id(p) not in by_id  # rotary freqs
        elif name.startswith("model."):
            assert by_id[id(p)] == ref[name]
        else:
            assert by_id[id(p)] == SEQ_LR
    assert len(set(block_lrs(model, MAX_LR).values())) == 17


def test_per_parameter_groups_and_no_decay(model):
    groups = param_groups(model, max_lr=MAX_LR, per_parameter=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert [g["name"] for g in groups if g["name"].startswith("model.")] == \
        [n for n in reversed([n for n in trainable if n.startswith("model.")])]
    assert all(len(g["params"]) == 1 for g in groups) and len(groups) == len(trainable)
    # seq_lr None: max_lr
    assert {g["lr"] for g in groups if not g["name"].startswith("model.")} == {MAX_LR}
    for decay in (0.0, 1.0):  # 0 = off (reference convention)
        assert {g["lr"] for g in param_groups(model, max_lr=MAX_LR, lr_decay=decay)} == {MAX_LR}


def test_frozen_backbone():
    torch.manual_seed(0)
    model = create_model("fmntiny+BiGRU:8", num_classes=3)
    groups = param_groups(model, max_lr=MAX_LR, freeze_backbone=True)
    assert [g["name"] for g in groups] == [SEQ_GROUP]
    assert not any(p.requires_grad for p in model.model.parameters())
    assert all(p.requires_grad for p in model.seq_model.parameters())
    # BatchNorm running statistics stay put in training mode
    set_train_mode(model, freeze_backbone=True)
    assert model.training and model.seq_model.training and not model.model.training
    bn = model.model.fmn.features[0][1]
    before = bn.running_mean.clone()
    opt = make_optimizer(groups)
    strong, _ = model(torch.randn(2, 1, 128, 16))
    strong.sum().backward()
    opt.step()
    assert torch.equal(bn.running_mean, before)
    assert all(p.grad is None for p in model.model.parameters())
    with pytest.raises(ValueError, match="no trainable"):
        param_groups(torch.nn.Module(), max_lr=1.0)


def test_adam_settings(model):
    opt = make_optimizer(param_groups(model, max_lr=MAX_LR, seq_lr=SEQ_LR))
    assert type(opt) is torch.optim.Adam
    assert opt.defaults["lr"] == MAX_LR and opt.defaults["betas"] == (0.9, 0.999)
    assert all(g["weight_decay"] == 0 for g in opt.param_groups)
    adamw = make_optimizer(param_groups(model, max_lr=MAX_LR), weight_decay=0.01)
    assert type(adamw) is torch.optim.AdamW
    for g in adamw.param_groups:
        assert all(p.ndim >= 2 for p in g["params"]) == (g["weight_decay"] == 0.01)


# --- schedule ------------------------------------------------------------------------------------

def _transformers_cosine(step, warmup, total):
    """transformers' ``_get_cosine_schedule_with_warmup_lr_lambda`` (num_cycles 0.5), restated."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    progress = float(step - warmup) / float(max(1, total - warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


def test_cosine_schedule_values():
    f = CosineWithWarmup(warmup_steps=100, total_steps=1100)
    assert f(0) == 0.0 and f(50) == 0.5 and f(100) == 1.0
    assert f(600) == pytest.approx(0.5, abs=1e-15)  # midpoint of the cosine
    assert f(1100) == 0.0
    for step in range(0, 1300, 7):
        assert f(step) == _transformers_cosine(step, 100, 1100)
    with pytest.raises(ValueError):
        CosineWithWarmup(warmup_steps=10, total_steps=10)


def test_scheduler_steps_lrs_and_resumes():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    groups = [{"params": [params[0]], "lr": 1e-3}, {"params": [params[1]], "lr": 4e-4}]

    def fresh():
        opt = make_optimizer([dict(g) for g in groups])
        return opt, make_scheduler(opt, total_steps=20, warmup_steps=4)

    opt, sched = fresh()
    seen = []
    for _ in range(21):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert seen[0] == [0.0, 0.0] and seen[2] == [5e-4, 2e-4] and seen[4] == [1e-3, 4e-4]
    assert seen[12][0] == pytest.approx(5e-4) and seen[20] == [0.0, 0.0]
    # exact resume from state dicts
    opt, sched = fresh()
    for _ in range(9):
        opt.step(), sched.step()
    state = (opt.state_dict(), sched.state_dict())
    json.dumps(sched.state_dict(), default=str)
    opt2, sched2 = fresh()
    opt2.load_state_dict(state[0]), sched2.load_state_dict(state[1])
    assert [g["lr"] for g in opt2.param_groups] == seen[9]
    opt2.step(), sched2.step()
    assert [g["lr"] for g in opt2.param_groups] == seen[10]


def test_linear_and_exp_schedules():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer([{"params": [p], "lr": 1e-3}])
    lin = make_scheduler(opt, total_steps=10, warmup_steps=2, schedule="linear", lr_end=1e-5)
    f = lin.lr_lambdas[0]
    assert f(1) == 0.5 and f(2) == 1.0
    assert f(10) * 1e-3 == pytest.approx(1e-5) and f(99) == 1e-5 / 1e-3
    opt = make_optimizer([{"params": [p], "lr": 1e-3}])
    exp = make_scheduler(opt, total_steps=10, schedule="exp", gamma=0.5)
    assert exp.lr_lambdas[0](3) == 0.125
    with pytest.raises(ValueError, match="unknown schedule"):
        make_scheduler(opt, total_steps=10, schedule="step")


# --- configs -------------------------------------------------------------------------------------

def test_paper_config_steps_and_presets():
    paper = PRESETS["paper"]
    assert paper == TrainConfig()
    assert paper.batches_per_epoch() == 1563 and paper.steps_per_epoch() == 391
    assert paper.total_steps() == 46_920 and paper.effective_batch_size == 256
    assert paper.warmup_steps == 5000
    assert PRESETS["reference"].warmup_steps == REFERENCE_WARMUP_STEPS
    assert dataclasses.replace(paper, seq_lr=None).effective_seq_lr == paper.max_lr
    for name, cfg in PRESETS.items():
        restored = TrainConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
        assert restored == cfg, name
    assert PRESETS["smoke"].total_steps() < 10
    assert DISTILL_PRESETS["paper"].kd_weight == 0.9 and DISTILL_PRESETS["none"].kd_weight == 0.0
    with pytest.raises(ValueError, match="warmup_steps"):
        dataclasses.replace(PRESETS["smoke"], warmup_steps=100)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="kd_weight"):
        DistillConfig(kd_weight=2.0)


def test_config_from_train_config():
    torch.manual_seed(0)
    model = create_model("fmntiny+TF:16", num_classes=3)
    cfg = dataclasses.replace(PRESETS["smoke"], seq_lr=SEQ_LR)
    opt = optimizer_from_config(model, cfg)
    sched = scheduler_from_config(opt, cfg)
    assert len(opt.param_groups) == 18 and sched.lr_lambdas[0].total_steps == cfg.total_steps()
    assert [g["initial_lr"] for g in opt.param_groups][-1] == SEQ_LR


def test_field_names_unique_across_configs():
    mine = [f.name for cls in (TrainConfig, DistillConfig) for f in dataclasses.fields(cls)]
    others = {f.name for cls in (AudioConfig, SynthConfig, ModelConfig, PSDSConfig, AUROCConfig)
              for f in dataclasses.fields(cls)}
    assert len(mine) == len(set(mine)) and not set(mine) & others

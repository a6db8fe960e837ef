"""sedlib.study.stride: the clip-wise model's shapes, receptive fields, and that fit() trains it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sedlib.config import AudioConfig
from sedlib.data.sources import SynthSource
from sedlib.data.synth.soundscape import SynthConfig
from sedlib.registry import create_model
from sedlib.study.stride import ClipwiseSED, receptive_fields, resolution, shape_trace
from sedlib.train.config import PRESETS
from sedlib.train.optim import param_groups


@pytest.mark.parametrize("frames", [1000, 400, 64])
def test_clipwise_outputs_the_40ms_grid(frames):
    torch.manual_seed(0)
    model = ClipwiseSED("fmntiny+TF:32", num_classes=5).eval()
    strong, weak = model(torch.randn(2, 1, 128, frames))
    assert strong.shape == (2, 5, frames // 4) and weak.shape == (2, 5)
    # same parameter names and counts as the frame-wise model: only strides differ
    frame = create_model("fmntiny+TF:32", num_classes=5)
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in frame.state_dict().items()}


def test_shape_trace_and_resolution():
    mel = torch.zeros(1, 1, 128, 1000)
    clip = shape_trace(ClipwiseSED("fmntiny+TF:32", num_classes=3), mel)
    frame = shape_trace(create_model("fmntiny+TF:32", num_classes=3), mel)
    by = {r["layer"]: r["shape"] for r in clip}
    assert by["features.16"][2:] == (4, 32) and by["upsample"] == (1, 250, by["features.16"][1])
    assert {r["layer"]: r["shape"] for r in frame}["features.16"][2:] == (1, 250)
    assert by["strong_head"] == (1, 250, 3) and clip[0]["layer"] == "input"

    rf = receptive_fields(create_model("fmn10").model.fmn)
    assert (rf[-1]["jump_freq"], rf[-1]["jump_time"]) == (128, 4)
    assert rf[0] == {"layer": "features.0", "stride": (2, 2), "jump_freq": 2, "jump_time": 2,
                     "rf_freq": 3, "rf_time": 3}
    cw = resolution(ClipwiseSED("fmn10", num_classes=3), AudioConfig())
    fw = resolution(create_model("fmn10", num_classes=3), AudioConfig())
    assert (cw["backbone frames"], cw["backbone ms / frame"], cw["freq bins left"]) == (32, 320.0, 4)
    assert (fw["backbone frames"], fw["backbone ms / frame"], fw["freq bins left"]) == (250, 40.0, 1)
    assert cw["output frames"] == fw["output frames"] == 250


def test_fit_trains_clipwise_with_layerwise_groups_and_frozen_backbone(tmp_path):
    from sedlib.train.fitting import fit

    model = ClipwiseSED("fmntiny+TF:32", num_classes=11)
    groups = param_groups(model, max_lr=1e-3)
    assert groups[0]["name"] == "features.16" and groups[-1]["name"] == "seq+heads"
    audio = AudioConfig(clip_seconds=2.0)
    data = SynthSource("train", 4, synth_config=SynthConfig(synth_clip_seconds=2.0),
                       audio_config=audio)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = dataclasses.replace(PRESETS["smoke"], freeze_backbone=True)
    run = fit(model, data, out_dir=tmp_path / "run", train_config=cfg, audio_config=audio,
              max_steps=2, progress=False)
    after = run.model.state_dict()
    assert run.step == 2 and run.weights.is_file()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("model."))
    assert not torch.equal(before["strong_head.weight"], after["strong_head.weight"])


def test_clipwise_experiment_is_cached_and_listed_in_the_study_log(tmp_path, monkeypatch):
    import json

    from sedlib.study.cache import run_experiment
    from sedlib.study.experiments import RESULTS_LOG_ENV, Experiment
    from sedlib.study.stride import clipwise_experiment

    log = tmp_path / "results.jsonl"
    monkeypatch.setenv(RESULTS_LOG_ENV, str(log))
    base = Experiment(model="fmntiny+TF:16", train_data="synth:4", eval_data="synth:2",
                      train=dataclasses.replace(PRESETS["smoke"], batch_size=2), steps=2,
                      audio=AudioConfig(clip_seconds=2.0))
    exp = clipwise_experiment(base)
    kw = dict(cache_dir=tmp_path / "cache", progress=False, throughput_batch_size=1,
              throughput_repeats=1, throughput_warmup=0, num_threads=1)
    first = run_experiment(exp, **kw)
    again = run_experiment(exp, **kw)
    assert not first.cached and again.cached and first.key == again.key
    assert first.key == "clipwise2222-" + base.key  # the folders clip-wise runs always had
    assert isinstance(first.load_model(), ClipwiseSED) and again.load_model().clip_strides == (2, 2, 2, 2)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["name"] for r in rows] == ["fmntiny+TF:16 (clip-wise strides)"] * 2
    assert [r["cached"] for r in rows] == [False, True]
    assert rows[0]["psds1_macro"] == rows[1]["psds1_macro"] and rows[0]["macs"] > 0
    assert Experiment.from_dict(rows[0]["experiment"]).key == first.key  # the variant is stored
    frame = run_experiment(base, **kw)  # the frame-wise run: another network, another folder
    assert frame.macs != first.macs and not frame.cached
    assert (tmp_path / "cache" / "profiles").is_dir()


def test_clipwise_runs_side_by_side_equal_the_serial_ones(tmp_path):
    from sedlib.study.cache import run_experiment, run_experiments
    from sedlib.study.experiments import Experiment
    from sedlib.study.stride import clipwise_experiment

    exps = [clipwise_experiment(Experiment(
        model="fmntiny+TF:16", train_data="synth:4", eval_data="synth:4",
        train=dataclasses.replace(PRESETS["smoke"], batch_size=2), steps=2, seed=s,
        audio=AudioConfig(clip_seconds=2.0))) for s in (0, 1)]
    kw = dict(progress=False, throughput_batch_size=1, throughput_repeats=1, throughput_warmup=0,
              num_threads=1)
    serial = [run_experiment(e, cache_dir=tmp_path / "a", **kw) for e in exps]
    parallel = run_experiments(exps, parallel_runs=2, cache_dir=tmp_path / "b", **kw)
    assert [r.key for r in parallel] == [r.key for r in serial] and not any(r.cached for r in parallel)
    assert [r.metrics["psds1_macro"] for r in parallel] == [r.metrics["psds1_macro"] for r in serial]
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "b" / "profiles").iterdir()) == ["clipwise"]


def test_a_variant_is_named_and_checked():
    from sedlib.study.experiments import Experiment
    from sedlib.study.stride import build_model, clipwise_variant, variant_label

    assert clipwise_variant((2, 2, 1, 1)) == "clipwise2211"
    assert variant_label("fmn02", "clipwise2211") == "fmn02 (clip-wise strides 2, 2, 1, 1)"
    assert variant_label("fmn02", None) == "fmn02"
    assert build_model("fmntiny", 3, "clipwise2211").clip_strides == (2, 2, 1, 1)
    with pytest.raises(ValueError, match="Experiment.variant 'clipwise22'.*clipwise2222"):
        Experiment(model="fmntiny", train_data="synth:4", eval_data="synth:2", variant="clipwise22")

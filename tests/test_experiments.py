"""sedlib.study.experiments: config keys, the parameters -> configs mapping, the result cache."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import sedlib.train.data
import sedlib.train.fitting
from sedlib.config import AudioConfig
from sedlib.data.synth.soundscape import SynthConfig
from sedlib.evaluate.config import AUROCConfig, PSDSConfig
from sedlib.models.names import ModelConfig
from sedlib.study.cache import load_result, run_experiment
from sedlib.study.config import (
    NOTEBOOK_PARAMETERS,
    PARAMETER_CONFIGS,
    StudyConfig,
    configs_from_parameters,
    parameter_names,
    parameters_from,
)
from sedlib.study.experiments import (
    RESULT,
    RESULTS_LOG_ENV,
    Experiment,
    make_experiment,
)
from sedlib.train.config import PRESETS, DistillConfig

SMOKE = dataclasses.replace(PRESETS["smoke"], batch_size=2)
AUDIO = AudioConfig(clip_seconds=2.0)


def _exp(**changes) -> Experiment:
    fields = dict(model="fmntiny+TF:16", train_data="synth:4", eval_data="synth:2", train=SMOKE,
                  steps=2, audio=AUDIO)
    fields.update(changes)
    return Experiment(**fields)


# --- keys --------------------------------------------------------------------------------------

def test_key_is_stable_and_canonical():
    a = _exp()
    assert a.key == _exp().key
    assert a.key == _exp(model="FMNTINY+tf:16").key  # canonical model name
    assert a.key.startswith("fmntiny_TF_16-") and len(a.key.split("-")[-1]) == 16
    # "no KD" spelled as a DistillConfig with weight 0 is the same run as distill=None
    assert a.key == _exp(distill=DistillConfig(kd_weight=0.0)).key


@pytest.mark.parametrize("changes", [
    {"model": "fmntiny+TF:32"}, {"train_data": "synth:5"}, {"eval_data": "synth:3"},
    {"val_data": "synth:2"}, {"steps": 3}, {"seed": 1}, {"audio": AudioConfig(clip_seconds=4.0)},
    {"train": dataclasses.replace(SMOKE, max_lr=1e-3)}, {"bn_recalibration_clips": 4},
    {"train": dataclasses.replace(SMOKE, mixup_p=0.0)}, {"val_every": 1}, {"eval_clip_seconds": 4.0},
])
def test_any_config_change_gives_a_new_key(changes):
    assert _exp(**changes).key != _exp().key


def test_eval_clip_seconds_keeps_old_keys_and_evaluates_longer_clips(tmp_path, monkeypatch):
    """eval_clip_seconds=None (or the training length) is absent from the key, so runs stored before
    the field existed keep theirs; a run trained on 2 s clips is scored on 4 s eval clips."""
    assert "eval_clip_seconds" not in _exp().to_dict() and _exp(eval_clip_seconds=2.0).key == _exp().key
    assert Experiment.from_dict(_exp(eval_clip_seconds=4.0).to_dict()).eval_clip_seconds == 4.0
    with pytest.raises(ValueError, match="eval_clip_seconds must be a positive"):
        _exp(eval_clip_seconds=0)
    import sedlib.train.data

    seen, real = [], sedlib.train.data.validate

    def validate(model, dataset, **kwargs):
        seen.append((kwargs["audio_config"].clip_seconds, dataset[0]["waveform"].shape[-1]))
        return real(model, dataset, **kwargs)

    monkeypatch.setattr(sedlib.train.data, "validate", validate)
    result = run_experiment(_exp(eval_clip_seconds=4.0), cache_dir=tmp_path, **PROFILE)
    assert seen == [(4.0, 64_000)]  # 4 s eval clips at 16 kHz; trained on 2 s
    study, train, _, audio = configs_from_parameters({"eval_clip_seconds": 10.0, "clip_seconds": 4.0,
                                                      "train_preset": "smoke"})
    assert make_experiment("fmntiny", study, train, audio=audio).eval_clip_seconds == 10.0
    assert study.eval_audio(audio).clip_seconds == 10.0 and StudyConfig().eval_audio(audio) is audio
    assert _exp(eval_clip_seconds=4.0).evaluation == ("synth:2", "eval", AudioConfig(clip_seconds=4.0))
    assert result.metrics["psds_clips"] == 2 and "psds1_macro" in result.metrics


def test_key_hashes_pseudo_label_file_content(tmp_path):
    store = tmp_path / "pseudo.h5"
    store.write_bytes(b"teacher A")
    kd = DistillConfig(kd_weight=0.9, pseudo_labels=str(store))
    first = _exp(distill=kd).key
    assert first == _exp(distill=kd).key
    moved = tmp_path / "elsewhere.h5"
    moved.write_bytes(b"teacher A")  # same labels in another folder: the same run
    assert _exp(distill=dataclasses.replace(kd, pseudo_labels=str(moved))).key == first
    store.write_bytes(b"teacher B, retrained")  # same path, other teacher outputs
    assert _exp(distill=kd).key != first
    store.unlink()
    with pytest.raises(Exception, match="does not exist"):
        _exp(distill=kd).key


def test_experiment_round_trip_and_checks():
    exp = _exp(distill=DistillConfig(kd_weight=0.5, pseudo_labels="x.h5", teachers=("a", "b")))
    back = Experiment.from_dict(json.loads(json.dumps(exp.to_dict())))
    assert back == exp and back.to_dict() == exp.to_dict()
    assert exp.train.seed == exp.seed
    with pytest.raises(ValueError, match="backbone"):
        _exp(model="fmn99")
    with pytest.raises(ValueError, match="multiple of 4"):
        _exp(audio=AudioConfig(clip_seconds=2.5))  # 250 mel frames: labels and outputs differ
    with pytest.raises(ValueError, match="seed once"):
        _exp(train=dataclasses.replace(SMOKE, seed=3), seed=4)


# --- parameters -> configs ----------------------------------------------------------------------

def test_config_field_names_are_unique_across_all_configs():
    names = parameter_names()  # raises on a duplicate among the parameter configs
    others = [SynthConfig, ModelConfig, PSDSConfig, AUROCConfig]
    config_fields = {f.name for cls in PARAMETER_CONFIGS for f in dataclasses.fields(cls)}
    for cls in others:
        clash = config_fields & {f.name for f in dataclasses.fields(cls)}
        assert not clash, f"{cls.__name__} shares field names {clash} with the parameter configs"
    assert not set(NOTEBOOK_PARAMETERS) & config_fields, "a notebook-only name is a config field"
    assert set(names) == config_fields | set(NOTEBOOK_PARAMETERS)


def test_configs_from_parameters():
    study, train, distill, audio = configs_from_parameters(
        {"train_preset": "smoke", "steps": 7, "batch_size": 3, "kd_weight": 0.5,
         "clip_seconds": 4.0, "adam_betas": [0.8, 0.9], "models": ["fmn04"]})
    assert study.steps == 7 and study.train_preset == "smoke"
    assert train == dataclasses.replace(PRESETS["smoke"], batch_size=3, adam_betas=(0.8, 0.9))
    assert distill.kd_weight == 0.5 and audio.clip_seconds == 4.0
    defaults = configs_from_parameters({})
    assert defaults[0] == StudyConfig() and defaults[1] == PRESETS["quick"]
    with pytest.raises(ValueError, match="stpes"):
        configs_from_parameters({"stpes": 3})
    with pytest.raises(ValueError, match="train_preset"):
        configs_from_parameters({"train_preset": "fast"})
    assert parameters_from({"steps": 1, "np": object(), "models": []}) == {"steps": 1, "models": []}


def test_make_experiment_uses_the_study():
    study = StudyConfig(train_data="synth:4", eval_data="synth:2", val_data=None, steps=3,
                        bn_recalibration_clips=2)
    exp = make_experiment("fmntiny", study, SMOKE, None, AUDIO)
    assert (exp.train_data, exp.eval_data, exp.steps, exp.bn_recalibration_clips) == \
        ("synth:4", "synth:2", 3, 2)
    assert make_experiment("fmntiny", study, SMOKE, None, AUDIO, steps=5).steps == 5


# --- the cache ----------------------------------------------------------------------------------

@pytest.fixture
def count_fits(monkeypatch):
    calls = []
    real = sedlib.train.fitting.fit

    def counting_fit(*args, **kwargs):
        calls.append(kwargs["out_dir"])
        return real(*args, **kwargs)

    monkeypatch.setattr(sedlib.train.fitting, "fit", counting_fit)
    return calls


PROFILE = dict(throughput_batch_size=1, throughput_repeats=1, throughput_warmup=0,
               progress=False, num_threads=1)


def test_cache_miss_then_hit_then_new_key(tmp_path, count_fits, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(RESULTS_LOG_ENV, str(log))
    exp = _exp(bn_recalibration_clips=2)
    assert load_result(exp, tmp_path) is None
    first = run_experiment(exp, cache_dir=tmp_path, **PROFILE)
    assert not first.cached and len(count_fits) == 1
    assert set(first.metrics) >= {"psds1", "psds1_macro", "val_history"}
    assert first.params > 0 and first.macs > 0 and first.throughput > 0
    assert first.weights.is_file() and first.run_dir == tmp_path / exp.key / "run"
    stored = json.loads((tmp_path / exp.key / RESULT).read_text())
    assert stored["key"] == exp.key and stored["experiment"] == exp.to_dict()
    assert stored["fingerprint"] == exp.fingerprint

    again = run_experiment(_exp(bn_recalibration_clips=2), cache_dir=tmp_path, **PROFILE)
    assert again.cached and len(count_fits) == 1  # no training
    assert again.metrics == first.metrics and again.profile == first.profile
    assert again.load_model().num_classes == 11

    other = run_experiment(_exp(bn_recalibration_clips=2, steps=3), cache_dir=tmp_path, **PROFILE)
    assert not other.cached and len(count_fits) == 2 and other.key != exp.key
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["cached"] for r in rows] == [False, True, False]
    assert {"psds1", "psds1_macro", "params", "macs", "throughput"} <= set(rows[0])


def test_result_is_atomic_and_an_interrupted_run_resumes(tmp_path, count_fits, monkeypatch):
    exp = _exp()

    def broken_validate(*args, **kwargs):
        raise RuntimeError("killed during evaluation")

    monkeypatch.setattr(sedlib.train.data, "validate", broken_validate)
    with pytest.raises(RuntimeError, match="killed"):
        run_experiment(exp, cache_dir=tmp_path, **PROFILE)
    folder = tmp_path / exp.key
    assert not (folder / RESULT).exists()  # no result without metrics
    assert not [p for p in folder.rglob("*.tmp")]  # no torn temporary files left
    assert load_result(exp, tmp_path) is None
    monkeypatch.undo()
    done = run_experiment(exp, cache_dir=tmp_path, **PROFILE)  # resumes from checkpoint.pt
    assert not done.cached and (folder / RESULT).is_file()
    assert json.loads((folder / RESULT).read_text())["metrics"]["psds1_macro"] == \
        done.metrics["psds1_macro"]


def test_a_tampered_result_is_refused(tmp_path):
    exp = _exp()
    folder = tmp_path / exp.key
    folder.mkdir()
    (folder / RESULT).write_text(json.dumps({"fingerprint": {"experiment": {"model": "other"}}}))
    with pytest.raises(Exception, match="differs"):
        load_result(exp, tmp_path)


def test_run_models_pretrains_each_backbone_once(tmp_path, count_fits):
    from safetensors.torch import load_file

    from sedlib.study.cache import run_models

    study = StudyConfig(train_data="synth:4", eval_data="synth:2", val_data=None, steps=2,
                        pretrain_steps=2, bn_recalibration_clips=0, cache_dir=str(tmp_path),
                        throughput_batch_size=1, throughput_repeats=1, throughput_warmup=0,
                        progress=False, num_threads=1)
    frozen = dataclasses.replace(SMOKE, freeze_backbone=True)
    results = run_models(["fmntiny+TF:16", "fmntiny+HYBRID:16"], study, frozen, None, AUDIO)
    assert len(count_fits) == 3  # one backbone run + two models
    base = Path(results[0].experiment.init)
    assert base == Path(results[1].experiment.init) and base.is_file()
    assert results[0].record["init"] == base.parent.parent.name and results[0].record["frozen_backbone"]
    pretrained, tuned = load_file(str(base)), load_file(str(results[0].weights))
    backbone = [k for k in pretrained if k.startswith("model.fmn.") and "running" not in k]
    assert backbone and all(pretrained[k].equal(tuned[k]) for k in backbone)  # frozen: unchanged
    again = run_models(["fmntiny+TF:16"], study, frozen, None, AUDIO)
    assert again[0].cached and len(count_fits) == 3


def test_backbone_init_resolves_per_backbone_and_is_part_of_the_key(tmp_path):
    import torch

    from sedlib.errors import SedlibError
    from sedlib.models.checkpoints import load_checkpoint
    from sedlib.registry import create_model
    from sedlib.train.runs import save_weights

    torch.manual_seed(0)
    source = create_model("fmntiny", num_classes=11)
    path = save_weights(source, tmp_path / "fmntiny_synth.safetensors", model_name="fmntiny",
                        classes=[f"c{i}" for i in range(11)], backbone_only=True)
    from safetensors.torch import load_file
    keys = list(load_file(str(path)))
    assert keys and all(k.startswith("model.fmn.") for k in keys)  # no heads
    study = StudyConfig(train_data="synth:4", eval_data="synth:2", steps=2,
                        backbone_init=str(tmp_path / "{backbone}_synth.safetensors"))
    exp = make_experiment("fmntiny+TF:16", study, SMOKE, None, AUDIO)
    assert exp.init == str(path)
    assert make_experiment("fmntiny+TF:16", study, SMOKE, None, AUDIO, init=None).init is None
    # the file's content is part of the key
    plain = make_experiment("fmntiny+TF:16", StudyConfig(train_data="synth:4", eval_data="synth:2",
                                                         steps=2), SMOKE, None, AUDIO)
    assert plain.init is None and plain.key != exp.key
    # a model with a sequence model gets the backbone, fresh heads and a fresh sequence model
    target = create_model("fmntiny+TF:16", num_classes=11)
    load_checkpoint(target, path)
    assert all(target.state_dict()[k].equal(source.state_dict()[k]) for k in keys)
    with pytest.raises(SedlibError, match=r"no .*fmn02_synth.safetensors for fmn02\+TF:64 .*"
                                          r"found: \['fmntiny_synth.safetensors'\]"):
        make_experiment("fmn02+TF:64", study, SMOKE, None, AUDIO)
    with pytest.raises(ValueError, match="backbone_init"):
        StudyConfig(backbone_init="")


def test_results_table_lists_seeds_and_eval_sizes():
    from sedlib.study.results import summary_markdown

    base = dict(name="fmn02+TF:64", psds1=40.0, psds1_macro=42.5, params=253_430, macs=1.2e8,
                throughput=30.0, kd_weight=0.0, steps=256, notebooks=["02_sequence_models"],
                eval_data="synth:1000", eval_clips=1000)
    rows = [{**base, "seed": s, "key": f"k{s}"} for s in (2, 0, 1)]
    text = summary_markdown(rows)
    runs_table = text.split("\n## ")[0]  # per-notebook summaries follow
    lines = [line for line in runs_table.splitlines() if line.startswith("| fmn02")]
    assert [line.split("|")[2].strip() for line in lines] == ["0", "1", "2"]  # sorted by seed
    assert "| fmn02+TF:64, 256 steps | 3 | 42.50 ± 0.00 |" in text  # the summary of the three
    assert all("| 1,000 |" in line for line in lines)
    assert "Eval sets: `synth:1000` (1,000 clips)." in text
    old = summary_markdown([{k: v for k, v in rows[0].items() if k not in ("seed", "eval_clips")}])
    assert "| fmn02+TF:64 | - |" in old  # a row stored before seeds were recorded


def test_results_table_shows_start_files_relative_to_the_project():
    from sedlib.config import PROJECT_ROOT
    from sedlib.study.results import summary_markdown

    row = dict(name="fmn02+TF:64", psds1=1.0, psds1_macro=2.0, params=1, macs=1e6, key="k",
               init=str(PROJECT_ROOT / "data" / "checkpoints" / "fmn02_synth.safetensors"))
    assert "| `data/checkpoints/fmn02_synth.safetensors` |" in summary_markdown([row])
    assert "| `/elsewhere/b.safetensors` |" in summary_markdown([{**row, "init": "/elsewhere/b.safetensors"}])


def test_run_models_trains_each_model_once_per_seed(tmp_path, count_fits):
    from sedlib.study.cache import run_models
    from sedlib.study.intervals import summarise_seeds

    study = StudyConfig(train_data="synth:4", eval_data="synth:2", val_data=None, steps=2,
                        bn_recalibration_clips=0, cache_dir=str(tmp_path), **PROFILE)
    results = run_models(["fmntiny+TF:16"], study, SMOKE, None, AUDIO, seeds=[0, 1, 2])
    assert len(count_fits) == 3 and [r.record["seed"] for r in results] == [0, 1, 2]
    assert len({r.key for r in results}) == 3
    row, = summarise_seeds([r.record for r in results])
    assert row["n_seeds"] == 3 and row["psds1_macro_low"] <= row["psds1_macro"] <= row["psds1_macro_high"]
    run_models(["fmntiny+TF:16"], study, SMOKE, None, AUDIO, seeds=[1])  # cached
    assert len(count_fits) == 3


def test_parallel_runs_equal_the_serial_ones(tmp_path):
    """Two runs side by side in spawned processes give the metrics of the same runs one after
    the other (same seeds, one thread each), in the order asked for, and log every record."""
    from sedlib.study.cache import run_models

    kw = dict(train_data="synth:4", eval_data="synth:4", val_data=None, steps=2,
              bn_recalibration_clips=0, **PROFILE)
    models = ["fmntiny+TF:16", "fmntiny"]
    serial = run_models(models, StudyConfig(cache_dir=str(tmp_path / "a"), **kw), SMOKE, None, AUDIO,
                        seeds=[0, 1])
    log = tmp_path / "log.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RESULTS_LOG_ENV, str(log))
        parallel = run_models(models, StudyConfig(cache_dir=str(tmp_path / "b"), parallel_runs=2, **kw),
                              SMOKE, None, AUDIO, seeds=[0, 1])
    assert [(r.name, r.experiment.seed) for r in parallel] == [(r.name, r.experiment.seed) for r in serial]
    for a, b in zip(serial, parallel):
        assert a.key == b.key and not b.cached
        assert a.metrics["psds1_macro"] == b.metrics["psds1_macro"]
        assert a.metrics["psds1_macro_folds"] == b.metrics["psds1_macro_folds"]
        per = a.record["psds1_per_class"]  # percent, every evaluated class; its mean is the macro
        assert len(per) == a.metrics["psds_classes"]
        assert sum(per.values()) / len(per) == pytest.approx(a.record["psds1_macro"], abs=1e-9)
        assert set(a.record["psds1_per_class_folds"]) == set(per)
    assert sorted(json.loads(line)["key"] for line in log.read_text().splitlines()) == \
        sorted(r.key for r in parallel)


def test_pool_workers_end_quietly_on_an_interrupt(capfd):
    """papermill shutting a kernel down interrupts its process group: an idle pool worker exits
    with status 130 and prints no KeyboardInterrupt traceback."""
    import os
    import signal
    import time

    from sedlib.study import workers

    pool = workers._pool(1)
    assert pool.submit(os.getpid).result(timeout=120) > 0  # the worker is up
    worker, = pool._processes.values()
    os.kill(worker.pid, signal.SIGINT)
    worker.join(timeout=30)
    workers._POOLS.pop(1)
    pool.shutdown(wait=False)
    time.sleep(0.2)
    assert worker.exitcode == 130
    assert "KeyboardInterrupt" not in capfd.readouterr().err


def test_stale_stored_results_are_detected():
    from sedlib.study.results import stale_rows

    exp = _exp()
    row = {"key": exp.key, "experiment": exp.to_dict(), "file_digests": {}}
    assert stale_rows([row]) == []
    assert stale_rows([{**row, "key": "clipwise2222-" + exp.key}]) == []  # a variant's prefix
    changed = {**row, "experiment": {**exp.to_dict(), "steps": 3}}  # stored under the old key
    assert "the current code gives" in stale_rows([changed])[0]
    gone = {**row, "experiment": {**exp.to_dict(), "no_such_field": 1}}
    assert "no longer loads" in stale_rows([gone])[0]
    assert "no stored experiment" in stale_rows([{"key": exp.key}])[0]
    import sedlib.study.experiments as experiments

    with pytest.MonkeyPatch.context() as mp:  # a cache-version bump makes every stored row stale
        mp.setattr(experiments, "CACHE_VERSION", experiments.CACHE_VERSION + 1)
        assert len(stale_rows([row])) == 1


def test_the_committed_study_results_are_not_stale():
    """figures/results.jsonl (what the README and the committed figures show) must be what the
    current code would produce: rerun `make study` after a change that alters experiment keys."""
    from sedlib.config import PROJECT_ROOT
    from sedlib.study.results import read_results_log, stale_rows

    path = PROJECT_ROOT / "figures" / "results.jsonl"
    rows = read_results_log(path)
    assert rows, f"{path} is missing or empty"
    assert stale_rows(rows) == []
    stored = PROJECT_ROOT / "figures" / "classroom" / "results.jsonl"  # shown beside live runs
    assert stale_rows(read_results_log(stored)) == [], f"{stored}: rerun the classroom profile"


def test_stored_results_beside_a_live_run(tmp_path):
    """A notebook shows another profile's stored summary for itself, or says none is stored."""
    from sedlib.study.results import stored_results_markdown

    assert stored_results_markdown("02_sequence_models", "classroom", tmp_path).startswith(
        "No stored `classroom` results for `02_sequence_models` yet (`sedlib study --profile classroom")
    rows = [dict(name="fmn02", seed=s, key=f"k{s}", psds1=1.0, psds1_macro=30.0 + s,  # percent
                 psds1_folds=[1.0] * 5, psds1_macro_folds=[30.0 + s] * 5, steps=64,
                 notebooks=["02_sequence_models"], params=1, macs=1) for s in range(3)]
    rows.append({**rows[0], "key": "other", "notebooks": ["04_distillation_ablation"]})
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "results.md").write_text("# Study results (classroom profile, 2026-12-04 19:00)\n")
    text = stored_results_markdown("02_sequence_models", "classroom", tmp_path)
    assert text.startswith("**Stored Study results (classroom profile, 2026-12-04 19:00)**")
    assert "3 runs of this notebook" in text and "| fmn02, 64 steps | 3 | 31.00 ± " in text


def test_results_summaries_give_each_configuration_its_interval():
    from sedlib.study.results import summaries_markdown

    base = dict(name="fmn02", psds1=10.0, params=1, macs=1.0, kd_weight=0.0, steps=64,
                notebooks=["02_sequence_models"], init="data/checkpoints/fmn02_synth.safetensors")
    rows = [{**base, "seed": s, "psds1_macro": v, "key": f"k{s}"} for s, v in zip((0, 1, 2), (30.0, 32.0, 34.0))]
    rows += [{**base, "seed": 0, "psds1_macro": 50.0, "key": "c0", "init": "fmn02_TF_64-0123456789abcdef"}]
    text = "\n".join(summaries_markdown(rows))
    assert "## 02_sequence_models: mean ± 95 % interval over seeds" in text
    assert "| fmn02, 64 steps | 3 | 32.00 ± 4.97 |" in text  # t(0.975, 2) * 2 / sqrt(3)
    assert "| fmn02, 64 steps, continued from a `fmn02_TF_64` run | 1 | 50.00 (one run) |" in text

"""The training loop (SPEC 5): files of a run, exact resume, KD, frozen backbone, DDP, bad input.

Everything runs on the test-only ``fmntiny`` backbone with 2 s synthetic clips (50 label frames).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sedlib import cli
from sedlib.audio.frontend import MelFrontend
from sedlib.config import AudioConfig
from sedlib.data.sources import SynthSource
from sedlib.data.spec import open_source
from sedlib.data.synth.soundscape import SynthConfig, write_desed
from sedlib.errors import AudioError, CheckpointError, SedlibError
from sedlib.registry import create_model
from sedlib.train import runs
from sedlib.train.config import PRESETS, DistillConfig, optimizer_from_config
from sedlib.train.data import EpochSampler, recalibrate_batchnorm
from sedlib.train.fitting import fit
from sedlib.train.loop import Trainer
from sedlib.train.optim import make_scheduler, set_train_mode
from sedlib.train.pseudo_labels import PseudoLabelWriter
from sedlib.train.step import restore_layout, use_channels_last

AUDIO = AudioConfig(clip_seconds=2.0)
NO_JITTER = replace(AUDIO, fmin_aug_range=1, fmax_aug_range=1)  # mel band fixed in training mode
SYNTH = SynthConfig(synth_clip_seconds=2.0)
MODEL = "fmntiny+TF:16"
K, T = 11, 50
NO_AUGMENT = dict(wavmix_p=0.0, frame_shift_range=0.0, mixup_p=0.0)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores; also makes CPU kernels' reductions fixed
    yield
    torch.set_num_threads(threads)


def synth(split: str, n: int, audio: AudioConfig = AUDIO) -> SynthSource:
    return SynthSource(split, n, synth_config=SYNTH, audio_config=audio)


def config(**kw):
    base = dict(batch_size=4, accumulate_grad_batches=1, epoch_len=16, n_epochs=2, warmup_steps=1,
                max_lr=3e-3)
    return replace(PRESETS["smoke"], **{**base, **kw})


def store(path: Path, names: list[str], seed: int = 0, k: int = K) -> str:
    logits = np.random.default_rng(seed).normal(0, 3, (len(names), k, T))
    with PseudoLabelWriter(path, k, T) as w:
        w.write(names, logits)
    return str(path)


def no_dropout_model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model(MODEL, num_classes=K, dropout=0.0)


# --- a run and its files -------------------------------------------------------------------------

def test_run_writes_its_files_and_the_loss_falls(tmp_path):
    out = tmp_path / "run"
    result = fit(MODEL, synth("train", 32), out_dir=out, val_data=synth("validation", 8),
                 train_config=config(epoch_len=32, n_epochs=3), audio_config=AUDIO,
                 val_every=12, log_every=4, progress=False, validate_at_start=True,
                 recalibrate_bn=2, run_info={"sources": {"train": "synth:32"}})
    assert result.step == 24 and result.epoch == 3

    cfg = json.loads((out / runs.CONFIG).read_text())
    assert cfg["model"] == MODEL and cfg["classes"] == list(synth("train", 1).vocab.names)
    assert cfg["train"]["batch_size"] == 4 and cfg["audio"]["clip_seconds"] == 2.0
    assert cfg["total_steps"] == 24 and cfg["seed"] == 0 and cfg["versions"]["torch"]
    assert cfg["sources"] == {"train": "synth:32"} and cfg["recalibrate_bn"] == 2

    records = runs.read_metrics(out)
    logs = [r for r in records if "loss" in r]
    vals = [r for r in records if "psds1" in r]
    assert [r["step"] for r in logs] == [4, 8, 12, 16, 20, 24]
    assert {"epoch", "supervised", "lr", "seq_lr", "clips_per_s"} <= set(logs[0])
    assert all(r["loss"] == r["supervised"] for r in logs)  # no KD: plain BCE
    assert logs[-1]["loss"] < logs[0]["loss"] - 0.05
    assert [r["step"] for r in vals] == [0, 12, 24]
    assert all(0 <= r["psds1"] <= 1 and 0 <= r["psds1_macro"] <= 1 for r in vals)
    assert vals[-1]["val_loss"] < vals[0]["val_loss"]
    assert result.validations == vals

    from safetensors import safe_open

    with safe_open(str(out / runs.WEIGHTS), framework="pt") as f:
        meta = f.metadata()
        weights = {k: f.get_tensor(k) for k in f.keys()}
    assert meta["model"] == MODEL and json.loads(meta["classes"]) == cfg["classes"]
    assert not runs.tensors_equal(weights, {k: v for k, v in result.model.state_dict().items()})
    state = torch.load(out / runs.CHECKPOINT, weights_only=True)
    assert state["step"] == 24 and set(state) >= {"model", "optimizer", "scheduler", "scaler", "rng"}


def test_recalibrate_batchnorm_averages_batch_statistics():
    model = no_dropout_model()
    data = synth("train", 8)
    bn = model.model.fmn.features[0][1]  # the stem's BatchNorm
    seen = []
    hook = bn.register_forward_pre_hook(lambda mod, args: seen.append(args[0].mean(dim=(0, 2, 3))))
    state = torch.get_rng_state()
    assert recalibrate_batchnorm(model, data, audio_config=AUDIO, batches=2, batch_size=3) == 6
    hook.remove()
    assert len(seen) == 2 and not model.training and bn.momentum == 0.01
    torch.testing.assert_close(bn.running_mean, (seen[0] + seen[1]) / 2)  # plain average
    assert int(bn.num_batches_tracked) == 2 and torch.equal(torch.get_rng_state(), state)


def test_recalibrate_batchnorm_on_given_clips_as_the_study_asks():
    """The study recalibrates on its first clips (indices); the same function, other clips,
    other statistics; the given clips in batches of batch_size, the last one short."""
    data = synth("train", 8)
    first, seeded = no_dropout_model(), no_dropout_model()
    assert recalibrate_batchnorm(first, data, audio_config=AUDIO, batch_size=3, indices=range(5)) == 5
    assert recalibrate_batchnorm(seeded, data, audio_config=AUDIO, batches=2, batch_size=3) == 6
    bn_first, bn_seeded = first.model.fmn.features[0][1], seeded.model.fmn.features[0][1]
    assert int(bn_first.num_batches_tracked) == 2  # 3 + 2 clips
    assert not torch.equal(bn_first.running_mean, bn_seeded.running_mean)
    again = no_dropout_model()
    recalibrate_batchnorm(again, data, audio_config=AUDIO, batch_size=3, indices=[0, 1, 2, 3, 4])
    assert torch.equal(again.model.fmn.features[0][1].running_var, bn_first.running_var)
    assert recalibrate_batchnorm(no_dropout_model(), data, audio_config=AUDIO, indices=[]) == 0


# --- exact resume ------------------------------------------------------------------------------

def _interrupt_at(monkeypatch, step: int) -> None:
    original = Trainer._after_step

    def after_step(self, *args):
        original(self, *args)
        if self.step == step:
            raise KeyboardInterrupt  # as if the process were killed after this step

    monkeypatch.setattr(Trainer, "_after_step", after_step)


@pytest.mark.parametrize("workers,distill", [(0, False), (1, True)])
def test_resumed_run_ends_bit_identical(tmp_path, monkeypatch, workers, distill):
    """5 batches per epoch, 2 per step (the last window has 1): 3 steps per epoch, 9 in all. The
    interrupted run checkpoints every 2 steps and dies after step 5: it resumes mid-epoch from
    step 4 (epoch 1, batch 2) and redoes step 5."""
    train = synth("train", 24)
    cfg = config(accumulate_grad_batches=2, epoch_len=20, n_epochs=3, wavmix_p=0.5, mixup_p=0.5,
                 num_workers=workers)
    kw = dict(train_config=cfg, audio_config=AUDIO, progress=False)
    if distill:  # weak-set distillation: stored teacher outputs for both sets
        weak = synth("eval", 12)
        kw.update(weak_data=weak, distill_config=DistillConfig(
            kd_weight=0.9, pseudo_labels=store(tmp_path / "strong.h5", train.filenames),
            weak_pseudo_labels=store(tmp_path / "weak.h5", weak.filenames, seed=1)))
    whole = fit(MODEL, train, out_dir=tmp_path / "whole", checkpoint_every=100, **kw)

    with monkeypatch.context() as m:
        _interrupt_at(m, 5)
        with pytest.raises(KeyboardInterrupt):
            fit(MODEL, train, out_dir=tmp_path / "parts", checkpoint_every=2, **kw)
    assert torch.load(tmp_path / "parts" / runs.CHECKPOINT, weights_only=True)["batch"] == 2
    torch.manual_seed(1234)  # the resumed run must not depend on the process's RNG state
    np.random.seed(1234)
    resumed = fit(MODEL, train, out_dir=tmp_path / "parts", checkpoint_every=2, resume=True, **kw)

    assert resumed.step == whole.step == 9
    assert runs.tensors_equal(whole.model.state_dict(), resumed.model.state_dict()) == []
    logs = [r for r in runs.read_metrics(tmp_path / "parts") if "loss" in r]
    assert [r["step"] for r in logs][-1] == 9
    if distill:  # loss = 0.1 supervised + 0.9 (0.5 KD strong + 0.5 KD weak), per logged mean
        for r in logs:
            expect = 0.1 * r["supervised"] + 0.9 * (0.5 * r["kd"] + 0.5 * r["kd_weak"])
            assert r["loss"] == pytest.approx(expect, rel=1e-6)


def _sigkill_run(out: Path, kill_at: int | None) -> None:
    """A run on cached clips (one DataLoader worker) that SIGKILLs its own process right after
    optimiser step ``kill_at`` (None: runs to the end); spawned by the test below."""
    torch.set_num_threads(1)
    if kill_at is not None:
        original = Trainer._after_step

        def after_step(self, *args):
            original(self, *args)
            if self.step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception handlers

        Trainer._after_step = after_step
    cfg = config(accumulate_grad_batches=2, epoch_len=20, n_epochs=3, wavmix_p=0.5, mixup_p=0.5,
                 num_workers=1)
    fit(MODEL, synth("train", 24), out_dir=out, train_config=cfg, audio_config=AUDIO,
        progress=False, checkpoint_every=2, resume=True)


def test_a_sigkilled_run_resumes_to_the_uninterrupted_weights(tmp_path):
    """Killed with SIGKILL after step 5 (last checkpoint: step 4, mid-epoch), resumed in a new
    process: the same weights as a run never interrupted, bit for bit (clips from the cache)."""
    ctx = torch.multiprocessing.get_context("spawn")
    for out, kill_at in ((tmp_path / "whole", None), (tmp_path / "parts", 5),
                         (tmp_path / "parts", None)):
        proc = ctx.Process(target=_sigkill_run, args=(out, kill_at))
        proc.start()
        proc.join(timeout=300)
        assert proc.exitcode == (-signal.SIGKILL if kill_at else 0), proc.exitcode
        if kill_at:
            assert torch.load(out / runs.CHECKPOINT, weights_only=True)["step"] == 4
    from safetensors.torch import load_file

    whole, parts = load_file(tmp_path / "whole" / runs.WEIGHTS), load_file(tmp_path / "parts" / runs.WEIGHTS)
    assert json.loads((tmp_path / "parts" / runs.CONFIG).read_text())["data"]["train"]["cached"]
    assert runs.tensors_equal(whole, parts) == []


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / runs.CHECKPOINT
    runs.save_checkpoint({"format": runs.CHECKPOINT_FORMAT, "version": runs.CHECKPOINT_VERSION,
                          "step": 1, "w": torch.ones(3)}, path)
    real_save = torch.save

    def dying_save(obj, f, *a, **kw):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        runs.save_checkpoint({"format": runs.CHECKPOINT_FORMAT, "step": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    state = runs.load_checkpoint_state(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == [runs.CHECKPOINT]  # no temp file left
    path.write_bytes(b"torn")
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        runs.load_checkpoint_state(path)


# --- the loss --------------------------------------------------------------------------------

def test_kd_weight_zero_is_the_plain_bce_loop(tmp_path):
    """fit with kd_weight 0 (and a pseudo-label store given) == a hand-written loop: sampler
    order -> mel -> model -> plain BCE -> Adam with layer-wise groups -> cosine schedule."""
    train, cfg, steps = synth("train", 12), config(epoch_len=12, n_epochs=2, **NO_AUGMENT), 6
    model = no_dropout_model()
    reference = copy.deepcopy(model)
    fit(model, train, out_dir=tmp_path / "run", train_config=cfg, audio_config=NO_JITTER,
        distill_config=DistillConfig(kd_weight=0.0,
                                     pseudo_labels=store(tmp_path / "p.h5", train.filenames)),
        progress=False)

    frontend = MelFrontend(NO_JITTER).train()
    layout = use_channels_last(reference)  # as fit does (same values up to rounding)
    opt = optimizer_from_config(reference, cfg)
    sched = make_scheduler(opt, total_steps=steps, warmup_steps=cfg.warmup_steps)
    sampler = EpochSampler(len(train), cfg.epoch_len, seed=cfg.seed)
    set_train_mode(reference)
    for epoch in range(2):
        order = sampler.epoch_indices(epoch)
        for b in range(0, len(order), cfg.batch_size):
            items = [train[int(i)] for i in order[b:b + cfg.batch_size]]
            mel = frontend(torch.stack([it["waveform"] for it in items]))
            strong, _ = reference(mel)
            targets = torch.stack([it["targets"] for it in items])
            loss = F.binary_cross_entropy_with_logits(strong, targets)
            loss.backward()
            opt.step()
            opt.zero_grad()
            sched.step()
    restore_layout(reference, layout)
    assert runs.tensors_equal(model.state_dict(), reference.state_dict()) == []


def test_frozen_backbone_keeps_weights_and_batchnorm_statistics(tmp_path):
    model = no_dropout_model()
    before = copy.deepcopy(model.state_dict())
    flags = [p.requires_grad for p in model.parameters()]
    fit(model, synth("train", 8), out_dir=tmp_path / "run", progress=False, audio_config=AUDIO,
        train_config=config(epoch_len=8, freeze_backbone=True))
    after = model.state_dict()
    changed = runs.tensors_equal(before, after)
    assert changed and all(k.startswith(("seq_model.", "strong_head.")) for k in changed)
    assert not any(k.startswith("model.") for k in changed)  # incl. BN running stats
    assert [p.requires_grad for p in model.parameters()] == flags  # restored after training


# --- multi-process (DDP, gloo) -----------------------------------------------------------------

def ddp_run(out, batch: int) -> None:
    """The run compared: 2 ranks x ``batch`` 2 or 1 process x 4."""
    train, val = synth("train", 16, NO_JITTER), synth("validation", 6, NO_JITTER)
    cfg = config(batch_size=batch, accumulate_grad_batches=2, epoch_len=16, freeze_backbone=True,
                 **NO_AUGMENT)
    fit(no_dropout_model(), train, out_dir=out, train_config=cfg, audio_config=NO_JITTER,
        val_data=val, progress=False, log_every=1)


def _rank(rank: int, world: int, port: int, out: Path) -> None:
    """One rank, set up as torchrun sets it up (env:// rendezvous on 127.0.0.1)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    ddp_run(out, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_at_half_batch_equal_one_process(tmp_path):
    """DDP averages the ranks' gradients: 2 ranks x batch 2 == 1 process x batch 4, given
    per-sample independent forward passes. BatchNorm in training mode is not (each rank would
    normalise with its own half batch; torch's SyncBatchNorm needs CUDA), so the backbone is
    frozen (BatchNorm in eval mode) and the sequence model and head are trained; no dropout, no
    augmentation (their draws are per rank). The ranks are spawned, not forked: by now the test
    process holds threads (OpenMP and inter-op pools, the notebook tests' zmq) that a forked
    child inherits half-dead, and one such rank once hung at exit in CI.
    ``torchrun --nproc_per_node=2 -m sedlib train`` takes the same path (env://)."""
    ctx = torch.multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, 2, port, tmp_path / "ddp")) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert codes == [0, 0], f"rank exit codes {codes} (None: still running after 300 s)"
    ddp_run(tmp_path / "one", 4)

    from safetensors.torch import load_file

    ddp, one = load_file(tmp_path / "ddp" / runs.WEIGHTS), load_file(tmp_path / "one" / runs.WEIGHTS)
    assert set(ddp) == set(one)
    for key in one:
        torch.testing.assert_close(ddp[key], one[key], rtol=1e-5, atol=1e-6, msg=key)
    logs = [r for r in runs.read_metrics(tmp_path / "ddp") if "loss" in r]
    ref = [r for r in runs.read_metrics(tmp_path / "one") if "loss" in r]
    assert [r["loss"] for r in logs] == pytest.approx([r["loss"] for r in ref], rel=1e-5)  # all-reduced
    vals = [r for r in runs.read_metrics(tmp_path / "ddp") if "psds1" in r]
    assert [r["psds_clips"] for r in vals] == [6, 6]  # both ranks' validation shares gathered
    assert [r["val_loss"] for r in vals] == pytest.approx(
        [r["val_loss"] for r in runs.read_metrics(tmp_path / "one") if "psds1" in r], rel=1e-5)


# --- bad input -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def desed_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("desed")
    write_desed(root / "train", 8, SYNTH, progress=False)
    write_desed(root / "val", 4, SYNTH, split="validation", progress=False)
    (root / "config.json").write_text(json.dumps({"audio": {"clip_seconds": 2.0}}))
    return root


def test_corrupt_audio_file_is_named_and_fatal_or_skipped(tmp_path, desed_dirs, caplog):
    data = tmp_path / "data"
    write_desed(data, 6, SYNTH, progress=False)
    bad = sorted((data / "audio").iterdir())[2]
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    kw = dict(train_config=config(epoch_len=6, n_epochs=1, batch_size=3), audio_config=AUDIO,
              progress=False)
    with pytest.raises(AudioError, match=bad.name):
        fit(MODEL, open_source(str(data), audio_config=AUDIO), out_dir=tmp_path / "a", **kw)
    with pytest.raises(AudioError, match=bad.name) as err:  # from a worker: its own message
        fit(MODEL, open_source(str(data), audio_config=AUDIO), out_dir=tmp_path / "w",
            **{**kw, "train_config": replace(kw["train_config"], num_workers=1)})
    assert str(err.value).startswith(f"{bad}: cannot read audio") and "worker" not in str(err.value)
    with caplog.at_level(logging.WARNING):
        result = fit(MODEL, open_source(str(data), audio_config=AUDIO, on_error="skip"),
                     out_dir=tmp_path / "b", **kw)
    assert result.step == 2 and bad.name in caplog.text


def test_classes_the_model_does_not_have_are_refused(tmp_path):
    train = synth("train", 8)
    with pytest.raises(SedlibError, match="5 output classes.*synth-11.* 11"):
        fit(create_model("fmntiny", num_classes=5), train, out_dir=tmp_path / "a", progress=False,
            audio_config=AUDIO, train_config=config())
    wrong = store(tmp_path / "p.h5", train.filenames, k=7)
    with pytest.raises(SedlibError, match="7 classes x 50 frames.*11 x 50"):
        fit(MODEL, train, out_dir=tmp_path / "b", progress=False, audio_config=AUDIO,
            train_config=config(), distill_config=DistillConfig(kd_weight=0.9, pseudo_labels=wrong))
    with pytest.raises(SedlibError, match="validation classes"):
        fit(MODEL, train, out_dir=tmp_path / "c", progress=False, audio_config=AUDIO,
            train_config=config(), val_data=open_source(
                "synth:4", split="validation", vocab=train.vocab.subset(train.vocab.names[:5])))


def test_runs_are_not_overwritten_and_resume_checks_settings(tmp_path):
    kw = dict(out_dir=tmp_path / "run", progress=False, audio_config=AUDIO)
    cfg = config(epoch_len=4, n_epochs=1, warmup_steps=0)
    fit(MODEL, synth("train", 4), train_config=cfg, **kw)
    with pytest.raises(SedlibError, match="already holds a run"):
        fit(MODEL, synth("train", 4), train_config=cfg, **kw)
    with pytest.raises(SedlibError, match=r"settings changed:\n.*batch_size"):
        fit(MODEL, synth("train", 4), train_config=replace(cfg, batch_size=2), resume=True, **kw)


# --- the command line ------------------------------------------------------------------------

@pytest.fixture
def sedlib_cli(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", tuple(dict.fromkeys(cli.COMMANDS + ("train", "distill"))))
    return cli.main


def test_cli_make_labels_then_distil_and_init_errors(tmp_path, desed_dirs, sedlib_cli, capsys):
    d = desed_dirs
    common = ["--preset", "smoke", "--config", str(d / "config.json"), "--batch-size", "4",
              "--warmup", "1", "--no-progress"]
    teacher = tmp_path / "teacher"
    assert sedlib_cli(["train", "--model", MODEL, "--data", str(d / "train"), "--out", str(teacher),
                       "--steps", "2", *common]) == 0
    labels = tmp_path / "labels.h5"
    assert sedlib_cli(["distill", "make-labels", "--teacher", f"{MODEL}:{teacher / runs.WEIGHTS}",
                       "--teacher", str(teacher / runs.WEIGHTS), "--data", str(d / "train"),
                       "--out", str(labels), "--config", str(d / "config.json"), "--no-progress"]) == 0
    student = tmp_path / "student"
    assert sedlib_cli(["train", "--model", MODEL, "--data", str(d / "train"),
                       "--val-data", str(d / "val"), "--out", str(student), "--steps", "3",
                       "--pseudo-labels", str(labels),
                       "--kd-weight", "0.5", "--freeze-backbone", *common]) == 0
    out = capsys.readouterr().out
    assert "trained 3 steps" in out and "PSDS1" in out
    logs = [r for r in runs.read_metrics(student) if "loss" in r]
    assert logs[-1]["loss"] == pytest.approx(0.5 * logs[-1]["supervised"] + 0.5 * logs[-1]["kd"])
    cfg = json.loads((student / runs.CONFIG).read_text())
    assert cfg["distill"]["kd_weight"] == 0.5 and cfg["train"]["freeze_backbone"] is True
    assert cfg["sources"]["train"] == str(d / "train")

    # --init with another model's weights: a clear error listing the mismatch, exit status 2
    assert sedlib_cli(["train", "--model", "fmntiny+TF:32", "--data", str(d / "train"),
                       "--out", str(tmp_path / "x"), "--steps", "2", "--init",
                       str(teacher / runs.WEIGHTS), *common]) == 2
    err = capsys.readouterr().err
    assert "does not fit fmntiny+TF:32" in err and "shape mismatch" in err
    with pytest.raises(CheckpointError, match="does not fit"):
        fit("fmntiny+TF:32", synth("train", 4), out_dir=tmp_path / "y", init=teacher / runs.WEIGHTS,
            progress=False, audio_config=AUDIO, train_config=config())
    # teachers without weights or for other classes
    five = runs.save_weights(create_model("fmntiny", num_classes=5), tmp_path / "five.safetensors",
                             model_name="fmntiny", classes=list("abcde"))
    for spec, why in (("fmntiny:missing.pt", "neither a file nor a release"),
                      (str(five), "predicts 5 classes"), ("fmntiny", "give its weights")):
        assert sedlib_cli(["distill", "make-labels", "--teacher", spec, "--data", str(d / "train"),
                           "--out", str(tmp_path / "z.h5"), "--config", str(d / "config.json")]) == 2
        err = capsys.readouterr().err
        assert f"--teacher {spec!r}" in err and why in err, err
    assert not (tmp_path / "z.h5").exists()


def test_save_weights_handles_shared_tcn_tensors(tmp_path):
    """TCN's legacy weight_norm registers each conv twice (shared storage); safetensors refuses
    shared tensors, so the weights file must store copies and reload strictly."""
    from sedlib.models.checkpoints import load_into, load_state_dict
    from sedlib.registry import create_model

    torch.manual_seed(0)
    model = create_model("fmntiny+TCN:32", num_classes=3)
    path = runs.save_weights(model, tmp_path / "model.safetensors", model_name="fmntiny+TCN:32",
                             classes=["a", "b", "c"])
    fresh = create_model("fmntiny+TCN:32", num_classes=3)
    load_into(fresh, load_state_dict(path), strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_save_weights_in_half_precision(tmp_path):
    """half=True: float16 on disk (about half the file), float32 again on loading, within fp16
    rounding of the model; the metadata says so."""
    from sedlib.models.checkpoints import checkpoint_metadata, load_state_dict
    from sedlib.registry import create_model

    torch.manual_seed(0)
    model = create_model("fmntiny+TF:16", num_classes=3)
    full = runs.save_weights(model, tmp_path / "f.safetensors", model_name="fmntiny+TF:16", classes=["a", "b", "c"])
    half = runs.save_weights(model, tmp_path / "h.safetensors", model_name="fmntiny+TF:16", classes=["a", "b", "c"],
                             half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size and checkpoint_metadata(half)["stored"] == "float16"
    sd = load_state_dict(half)
    for key, value in model.state_dict().items():
        assert sd[key].dtype == value.dtype
        if value.is_floating_point():
            assert torch.allclose(sd[key], value, rtol=1e-3, atol=1e-4), key


def test_saved_weights_get_the_umask_permissions(tmp_path):
    """safetensors creates its file 0600; a shipped or shared checkpoint must be readable as
    any other file the process writes (0666 less the umask)."""
    from sedlib.registry import create_model

    old = os.umask(0o022)
    try:
        path = runs.save_weights(create_model("fmntiny", num_classes=2), tmp_path / "m.safetensors",
                                 model_name="fmntiny", classes=["a", "b"])
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_cli_serves_synth_from_the_clip_cache_unless_told_not_to(tmp_path, sedlib_cli, monkeypatch):
    monkeypatch.setenv("SEDLIB_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"audio": {"clip_seconds": 2.0}}))
    common = ["--model", MODEL, "--data", "synth:4", "--preset", "smoke", "--config", str(cfg),
              "--steps", "2", "--warmup", "1", "--threads", "1", "--no-progress"]
    for out, flags, cached in (("plain", ["--no-clip-cache"], False), ("cached", [], True)):
        assert sedlib_cli(["train", *common, "--out", str(tmp_path / out), *flags]) == 0
        data = json.loads((tmp_path / out / runs.CONFIG).read_text())["data"]["train"]
        assert data == {"type": "SynthSource", "clips": 4, "cached": cached, "vocab": "synth-11"}
    assert len(list((tmp_path / "cache" / "clips").glob("*/manifest.json"))) == 1
    plain = load_file_weights(tmp_path / "plain")
    assert runs.tensors_equal(plain, load_file_weights(tmp_path / "cached")) == []


def load_file_weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run_dir / runs.WEIGHTS)

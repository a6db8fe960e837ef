"""KD loss and the pseudo-label store (SPEC 5, SPEC 2.2)."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sedlib.audio.frontend import MelFrontend
from sedlib.config import AudioConfig
from sedlib.errors import SedlibError
from sedlib.registry import create_model
from sedlib.train.kd import kd_loss, kd_terms
from sedlib.train.pseudo_labels import (
    MissingPseudoLabelError,
    PseudoLabelStore,
    PseudoLabelWriter,
    WithPseudoLabels,
    make_pseudo_labels,
)

K, T = 5, 12


def _logits(n, seed=0):
    return torch.randn(n, K, T, generator=torch.Generator().manual_seed(seed)) * 4


def _write(path, names, logits, **kw):
    with PseudoLabelWriter(path, K, T, **kw) as w:
        w.write(names, logits)
    return path


# --- loss ----------------------------------------------------------------------------------------

def test_kd_weight_zero_is_plain_bce_exactly():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, K, T, generator=g)
    hard = (torch.rand(3, K, T, generator=g) > 0.8).float()
    teacher = torch.rand(3, K, T, generator=g)
    plain = F.binary_cross_entropy_with_logits(logits, hard)
    assert torch.equal(kd_loss(logits, hard, teacher, weight=0.0), plain)
    assert torch.equal(kd_loss(logits, hard, None, weight=0.0), plain)
    assert torch.equal(kd_loss(logits, hard, teacher, weight=1.0),
                       F.binary_cross_entropy_with_logits(logits, teacher))


def test_kd_loss_formula_float64():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, K, T, generator=g, dtype=torch.float64)
    hard = (torch.rand(2, K, T, generator=g, dtype=torch.float64) > 0.5).double()
    teacher = torch.rand(2, K, T, generator=g, dtype=torch.float64)

    def bce(x, y):  # mean over every element
        return -(y * torch.log(torch.sigmoid(x)) + (1 - y) * torch.log(1 - torch.sigmoid(x))).mean()

    expected = 0.1 * bce(logits, hard) + 0.9 * bce(logits, teacher)
    torch.testing.assert_close(kd_loss(logits, hard, teacher, weight=0.9), expected,
                               rtol=1e-12, atol=1e-12)
    sup, dist = kd_terms(logits, hard, teacher)
    torch.testing.assert_close(dist, bce(logits, teacher), rtol=1e-12, atol=1e-12)
    # half-precision logits are promoted to float32
    assert kd_loss(logits.half(), hard.half(), teacher.half()).dtype == torch.float32


def test_kd_loss_rejects_bad_input():
    logits, hard = torch.zeros(1, K, T), torch.zeros(1, K, T)
    with pytest.raises(ValueError, match="no teacher"):
        kd_loss(logits, hard, None, weight=0.9)
    with pytest.raises(ValueError, match="do not match"):
        kd_loss(logits, torch.zeros(1, K, T + 1), None, weight=0.0)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        kd_loss(logits, hard, hard, weight=1.5)


# --- store ---------------------------------------------------------------------------------------

def test_round_trip_and_reference_layout(tmp_path):
    names = [f"Yclip{i}.mp3" for i in range(7)]
    logits = _logits(7)
    path = tmp_path / "pl.hdf5"
    with PseudoLabelWriter(path, K, T, teachers=["fmn10", "fmn20"]) as w:
        w.write(names[:3], logits[:3])
        w.write(names[3:], logits[3:].numpy())
        assert not path.exists()
    assert sorted(os.listdir(tmp_path)) == ["pl.hdf5"]
    with h5py.File(path, "r") as f:  # what the reference reads
        assert f["strong_logits"].dtype == np.float16 and f["strong_logits"].shape == (7, K, T)
        assert [n.decode("UTF-8") for n in f["filenames"]] == names
        assert json.loads(f.attrs["teachers"]) == ["fmn10", "fmn20"]
        assert f.attrs["num_classes"] == K and f.attrs["num_clips"] == 7
    store = PseudoLabelStore(path)
    assert len(store) == 7 and store.filenames == names and "Yclip3.mp3" in store
    assert (store.num_classes, store.num_frames, store.teachers) == (K, T, ("fmn10", "fmn20"))
    for i in (6, 0, 3):
        stored = store.logits(names[i])
        assert stored.dtype == torch.float32 and stored.shape == (K, T)
        assert torch.equal(stored, logits[i].half().float())
        assert torch.equal(store.probs(names[i]), torch.sigmoid(stored))
        assert torch.equal(store[names[i]], store.probs(names[i]))
    store.close()


def test_missing_clip_names_clip_and_store(tmp_path):
    path = _write(tmp_path / "pl.h5", ["Yabc.mp3", "Ydef.mp3"], _logits(2))
    store = PseudoLabelStore(path)
    with pytest.raises(MissingPseudoLabelError) as err:
        store.probs("Yxyz.mp3")
    assert isinstance(err.value, SedlibError)
    assert "Yxyz.mp3" in str(err.value) and str(path) in str(err.value)
    with pytest.raises(MissingPseudoLabelError, match="stored under"):
        store.probs("Yabc.wav")


def test_writer_rejects_duplicates_shapes_and_short_stores(tmp_path):
    path = tmp_path / "pl.h5"
    with pytest.raises(ValueError, match="written twice"):
        _write(path, ["a", "a"], _logits(2))
    with pytest.raises(ValueError, match="expected"):
        _write(path, ["a", "b"], _logits(3))
    with pytest.raises(SedlibError, match="2 clips written, 3 expected"):
        _write(path, ["a", "b"], _logits(2), expected_rows=3)
    assert os.listdir(tmp_path) == []


def test_exception_inside_with_leaves_nothing(tmp_path):
    path = tmp_path / "pl.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with PseudoLabelWriter(path, K, T) as w:
            w.write(["a", "b"], _logits(2))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    # an existing complete store survives a failed rewrite
    _write(path, ["old"], _logits(1))
    with pytest.raises(RuntimeError):
        with PseudoLabelWriter(path, K, T) as w:
            w.write(["new"], _logits(1))
            raise RuntimeError("boom")
    assert PseudoLabelStore(path).filenames == ["old"]
    assert os.listdir(tmp_path) == ["pl.h5"]


def _killed_writer(path):
    w = PseudoLabelWriter(path, K, T)
    w.write(["a", "b"], _logits(2))
    os.kill(os.getpid(), signal.SIGKILL)


def test_killed_writer_leaves_no_complete_looking_file(tmp_path):
    path = tmp_path / "pl.h5"
    proc = multiprocessing.get_context("fork").Process(target=_killed_writer, args=(path,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    assert not path.exists()
    leftovers = os.listdir(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].endswith(".partial")
    with pytest.raises(SedlibError):
        PseudoLabelStore(path)


class _Clips(torch.utils.data.Dataset):
    def __init__(self, n, samples=16_000, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.waves = torch.randn(n, samples, generator=g) * 0.1
        self.names = [f"clip_{i:03d}.wav" for i in range(n)]

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        return {"waveform": self.waves[i], "filename": self.names[i]}


def test_store_reads_in_dataloader_workers(tmp_path):
    data = _Clips(8, samples=400)
    logits = _logits(8, seed=3)
    path = _write(tmp_path / "pl.h5", data.names, logits)
    store = PseudoLabelStore(path)
    store.probs(data.names[0])  # handle opened in the parent before the workers fork
    ds = WithPseudoLabels(data, store)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    got = torch.cat([b["pseudo_targets"] for b in loader])
    assert torch.equal(got, torch.stack([store.probs(n) for n in data.names]))
    torch.testing.assert_close(got, torch.sigmoid(logits.half().float()))
    assert pickle.loads(pickle.dumps(store)).probs(data.names[5]).shape == (K, T)


def _tiny(seed):
    torch.manual_seed(seed)
    model = create_model("fmntiny", num_classes=K)
    for head in (model.strong_head, model.weak_head):  # visible, different outputs per seed
        torch.nn.init.normal_(head.weight, std=2.0)
    return model.eval()


def test_make_pseudo_labels_stores_mean_of_teacher_logits(tmp_path):
    data = _Clips(5)
    frontend = MelFrontend(AudioConfig())
    teachers = [_tiny(1), _tiny(2)]
    teachers[0].train()
    path = make_pseudo_labels(teachers, data, tmp_path / "ens.h5", batch_size=2, device="cpu",
                              frontend=frontend, progress=False)
    assert teachers[0].training and not teachers[1].training  # modes restored
    with torch.no_grad():
        mel = frontend.eval()(data.waves)
        each = [t.eval()(mel)[0] for t in teachers]  # (B, K, T / 4)
    mean = (each[0] + each[1]) / 2
    assert not torch.allclose(each[0], each[1], atol=1e-2)
    store = PseudoLabelStore(path)
    assert store.filenames == data.names and store.teachers == ("fmntiny", "fmntiny")
    stored = torch.stack([store.logits(n) for n in data.names])
    assert stored.shape == mean.shape == (5, K, 25)
    torch.testing.assert_close(stored, mean, rtol=1e-3, atol=1e-3)  # float16 storage
    assert torch.equal(stored, mean.half().float())

    single = make_pseudo_labels(teachers[1], data, tmp_path / "one.h5", batch_size=4,
                                device="cpu", frontend=frontend, progress=False,
                                teacher_names=["t1"])
    one = PseudoLabelStore(single)
    assert one.teachers == ("t1",)
    assert torch.equal(one.logits(data.names[4]), each[1][4].half().float())

"""sedlib.study.teachers: checkpoint teachers load with their classes; label stores are made once."""

from __future__ import annotations

import pytest
import torch

from sedlib.config import AudioConfig
from sedlib.data.labels import Vocabulary
from sedlib.data.synth.soundscape import synth_vocabulary
from sedlib.errors import SedlibError
from sedlib.registry import create_model
from sedlib.study.teachers import get_teachers, teacher_labels
from sedlib.train.pseudo_labels import PseudoLabelStore
from sedlib.train.runs import save_weights


@pytest.fixture()
def checkpoint(tmp_path):
    torch.manual_seed(0)
    vocab = synth_vocabulary()
    model = create_model("fmntiny+TF:16", num_classes=len(vocab))
    return save_weights(model, tmp_path / "teacher.safetensors", model_name=model.name,
                        classes=vocab.names), model


def test_checkpoint_teacher_and_cached_labels(checkpoint, tmp_path):
    path, model = checkpoint
    audio = AudioConfig(clip_seconds=2.0)
    (teacher,) = get_teachers([str(path)], synth_vocabulary(), study=None, train=None, audio=audio)
    assert teacher.model.name == "fmntiny+TF:16" and teacher.result is None and teacher.psds1 is None
    assert teacher.ident.startswith("teacher-") and len(teacher.ident) == len("teacher-") + 16
    store = teacher_labels([teacher], "synth:3", audio, cache_dir=tmp_path, progress=False)
    with PseudoLabelStore(store) as labels:
        assert len(labels) == 3 and (labels.num_classes, labels.num_frames) == (11, 50)
    mtime = store.stat().st_mtime_ns
    assert teacher_labels([teacher], "synth:3", audio, cache_dir=tmp_path) == store
    assert store.stat().st_mtime_ns == mtime  # reused, not remade
    other = teacher_labels([teacher], "synth:2:1", audio, cache_dir=tmp_path, progress=False)
    assert other != store


def test_teacher_with_other_classes_is_refused(checkpoint):
    path, _ = checkpoint
    with pytest.raises(SedlibError, match="predicts 11 classes"):
        get_teachers([str(path)], Vocabulary([f"c{i}" for i in range(11)], "mine"), study=None,
                     train=None, audio=AudioConfig())
    with pytest.raises(SedlibError, match="no teachers"):
        get_teachers([], synth_vocabulary(), study=None, train=None, audio=AudioConfig())


def test_distillation_labels_use_given_stores_and_make_the_rest(checkpoint, tmp_path):
    from types import SimpleNamespace

    from sedlib.study.teachers import distillation_labels
    from sedlib.train.config import DistillConfig

    path, _ = checkpoint
    audio = AudioConfig(clip_seconds=2.0)
    study = SimpleNamespace(cache_dir=str(tmp_path), device="cpu", progress=False)
    made, teachers = distillation_labels(DistillConfig(teachers=(str(path),)), {"strong": "synth:2"},
                                         synth_vocabulary(), study=study, train=None, audio=audio)
    assert len(teachers) == 1 and made["strong"].is_file()
    given = DistillConfig(pseudo_labels=str(made["strong"]), teachers=("not-used",))
    stores, none = distillation_labels(given, {"strong": "synth:2"}, synth_vocabulary(),
                                       study=study, train=None, audio=audio)
    assert stores == {"strong": made["strong"]} and none == []
    with pytest.raises(SedlibError, match="do not exist"):
        distillation_labels(DistillConfig(pseudo_labels=str(tmp_path / "x.h5")),
                            {"strong": "synth:2"}, synth_vocabulary(), study=study, train=None,
                            audio=audio)

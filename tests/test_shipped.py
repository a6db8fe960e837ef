"""The checkpoints shipped in data/checkpoints: they load, they are what their metadata says, and
the quick study profile finds a pre-trained backbone for every backbone it trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sedlib.data.synth.soundscape import synth_vocabulary
from sedlib.detect.detector import checkpoint_metadata
from sedlib.models.checkpoints import load_checkpoint
from sedlib.models.names import parse_name
from sedlib.registry import create_model
from sedlib.study.config import StudyConfig
from sedlib.study.runner import load_profile

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "data" / "checkpoints").glob("**/*.safetensors"))


def _world(path: Path) -> str:
    """data/checkpoints/*: the basic world; data/checkpoints/context/*: the context world."""
    return "context" if path.parent.name == "context" else "basic"


def test_shipped_checkpoints_are_small():
    assert SHIPPED
    assert sum(p.stat().st_size for p in SHIPPED) < 20 * 2**20


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_checkpoint_loads_strictly_into_its_model(path):
    meta = checkpoint_metadata(path)
    vocab = synth_vocabulary(_world(path))
    assert json.loads(meta["classes"]) == list(vocab.names)
    model = create_model(meta["model"], num_classes=len(vocab))
    report = load_checkpoint(model, path)  # strict
    assert not report.skipped
    if parse_name(meta["model"]).seq_model is None:  # a pre-trained backbone: no heads stored
        with torch.no_grad():
            assert model.model.fmn.features[0][0].weight.abs().sum() > 0


def test_quick_profile_has_a_backbone_for_every_model_it_trains(monkeypatch):
    monkeypatch.chdir(ROOT)  # profile paths are relative to the project
    widths = set()
    for name in ("quick", "classroom", "context"):  # the CPU profiles: all start from shipped backbones
        profile = load_profile(name)
        study = StudyConfig(backbone_init=profile["common"]["backbone_init"])
        names = set()
        for section in profile["notebooks"].values():
            for key in ("models", "stride_models", "backbones"):
                names.update(section.get(key, []))
            for key in ("base_backbone", "wide_backbone", "student"):
                if key in section:
                    names.add(section[key])
        backbones = {parse_name(n).backbone for n in names}
        widths |= backbones
        for backbone in sorted(backbones):
            path = Path(study.backbone_init_for(backbone))
            assert path.is_file() and checkpoint_metadata(path)["model"] == backbone, (name, path)
    assert widths >= {"fmn02", "fmn03", "fmn04"}


@pytest.mark.parametrize("name", ["quick", "classroom", "context"])
def test_every_checkpoint_a_profile_names_is_shipped_for_its_world(name, monkeypatch):
    """Teachers and the listening model of a CPU profile are shipped files of the profile's world
    (the context profile's are the 13-class ones)."""
    monkeypatch.chdir(ROOT)
    profile = load_profile(name)
    world = "context" if "world=context" in profile["common"]["train_data"] else "basic"
    files = []
    for section in profile["notebooks"].values():
        files += [t for t in section.get("teachers", []) if t.endswith(".safetensors")]
        files += [section["listen_model"]] if "listen_model" in section else []
    assert files
    for file in files:
        path = ROOT / file
        assert path.is_file(), file
        assert json.loads(checkpoint_metadata(path)["classes"]) == list(synth_vocabulary(world).names)

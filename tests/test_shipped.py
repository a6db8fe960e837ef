"""The checkpoints shipped in data/checkpoints: they load, they are what their metadata says, and
the quick study profile finds a pre-trained backbone for every backbone it trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sedlib.data.spec import open_source
from sedlib.data.synth.soundscape import synth_vocabulary
from sedlib.detect.detector import checkpoint_metadata
from sedlib.models.checkpoints import load_checkpoint
from sedlib.models.names import parse_name
from sedlib.registry import create_model
from sedlib.study.config import StudyConfig
from sedlib.study.profiles import load_profile

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "data" / "checkpoints").glob("**/*.safetensors"))


def _world(path: Path) -> str:
    """data/checkpoints/*: the basic world; data/checkpoints/<world>/*: that world."""
    from sedlib.data.synth.soundscape import WORLDS

    return path.parent.name if path.parent.name in WORLDS else "basic"


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
    for name in ("quick", "classroom"):  # the CPU profiles: all start from shipped backbones
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


def _spec_world(spec: str) -> str:
    """``synth:N:SEED:world=context2,miss=0.1`` -> ``context2`` (no ``world=``: basic), as the
    data-spec parser reads it."""
    return open_source(spec, split="train").synth.config.synth_world


@pytest.mark.parametrize("name", ["quick", "classroom", "smoke"])
def test_every_checkpoint_a_profile_names_is_shipped_for_its_world(name, monkeypatch):
    """What each notebook of a CPU profile really gets (common, its section and the notebook's
    own defaults): every data spec is of one world, and every checkpoint it names (teachers,
    the listening model, 00's reference) is a shipped file with that world's classes."""
    from sedlib.study.profiles import declared_parameters, notebook_parameters

    monkeypatch.chdir(ROOT)
    profile = load_profile(name)
    world = _spec_world(profile["common"]["train_data"])
    files = []
    for notebook in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        params = {**declared_parameters(notebook), **notebook_parameters(profile, notebook)}
        for key, value in params.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                if isinstance(v, str) and v.startswith("synth:"):
                    assert _spec_world(v) == world, (notebook.name, key, v)
                if isinstance(v, str) and v.endswith(".safetensors") and "{" not in v:  # not backbone_init
                    files.append((notebook.name, key, v))
    assert {n for n, _, _ in files} >= {"00_quickstart.ipynb", "06_listen.ipynb"}
    for notebook, key, file in files:
        path = ROOT / file
        assert path.is_file(), (notebook, key, file)
        assert json.loads(checkpoint_metadata(path)["classes"]) == list(synth_vocabulary(world).names), \
            (notebook, key, file)

"""The clip cache (sedlib.data.clip_cache): equal items, keys, atomic and concurrent builds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sedlib.config import AudioConfig
from sedlib.data import clip_cache, clip_cache_space
from sedlib.data.clip_cache import CachedClips, cache_key, cached, lookup
from sedlib.data.labels import Vocabulary
from sedlib.data.sources import SynthSource
from sedlib.data.synth.soundscape import SynthConfig, synth_vocabulary

ROOT = Path(__file__).resolve().parents[1]
AUDIO = AudioConfig(clip_seconds=2.0)


def synth(n: int = 5, split: str = "train", audio: AudioConfig = AUDIO, seed: int = 0,
          vocab: Vocabulary | None = None) -> SynthSource:
    return SynthSource(split, n, audio_config=audio, vocab=vocab,
                       synth_config=SynthConfig(synth_seed=seed,
                                                synth_clip_seconds=audio.clip_seconds))


def test_cached_items_equal_the_synthesised_ones_bit_for_bit(tmp_path):
    source = synth(6)
    data = cached(source, root=tmp_path, workers=2, progress=False)
    assert isinstance(data, CachedClips) and len(data) == 6
    for i in range(6):
        want, got = source[i], data[i]
        assert set(got) == set(want)
        assert torch.equal(got["waveform"], want["waveform"])  # (samples,)
        assert torch.equal(got["targets"], want["targets"])  # (K, T)
        assert got["waveform"].dtype == got["targets"].dtype == torch.float32
        assert (got["filename"], got["index"]) == (want["filename"], want["index"])
    assert data.vocab == source.vocab and data.filenames == source.filenames
    assert data.ground_truth == source.ground_truth and data.durations == source.durations
    with pytest.raises(IndexError, match="out of range"):
        data[6]
    # a DataLoader with workers pickles it (the memory maps are reopened in each worker)
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=6, num_workers=1)))
    assert torch.equal(batch["waveform"], torch.stack([source[i]["waveform"] for i in range(6)]))
    # a second lookup reads the same folder without building
    again = cached(synth(6), root=tmp_path, progress=False)
    assert again.folder == data.folder and cached(again, root=tmp_path) is again


def test_the_key_changes_with_every_setting_the_items_depend_on():
    base = synth()
    key = cache_key(base.cache_identity())
    assert cache_key(synth().cache_identity()) == key  # same settings, same key
    others = {
        "audio config": synth(audio=replace(AUDIO, n_mels=64)),
        "sample handling": synth(audio=replace(AUDIO, hop_length=320)),
        "clip length": synth(audio=AudioConfig(clip_seconds=3.0)),
        "synth seed": synth(seed=1),
        "split": synth(split="eval"),
        "clip count": synth(6),
        "classes": synth(vocab=Vocabulary("sub", synth_vocabulary().names[:5])),
    }
    keys = {name: cache_key(s.cache_identity()) for name, s in others.items()}
    assert key not in keys.values() and len(set(keys.values())) == len(keys), keys


def test_the_cache_format_and_the_synthesis_code_are_part_of_the_key(monkeypatch):
    identity = synth().cache_identity()
    key = cache_key(identity)
    assert len(identity["code"]) == 16  # digest of sedlib/data/synth/*.py and labels.py
    assert cache_key({**identity, "code": "0" * 16}) != key
    monkeypatch.setattr(clip_cache, "FORMAT", clip_cache.FORMAT + 1)
    assert cache_key(identity) != key


def test_off_switch_and_sources_without_identity(tmp_path, monkeypatch):
    source = synth()
    monkeypatch.setenv(clip_cache.CACHE_ENV, "off")
    assert cached(source, root=tmp_path) is source
    monkeypatch.delenv(clip_cache.CACHE_ENV)
    plain = torch.utils.data.TensorDataset(torch.zeros(2))
    assert cached(plain, root=tmp_path) is plain
    assert list(tmp_path.iterdir()) == []


_SLOW_BUILD = textwrap.dedent("""
    import sys, time
    from sedlib.config import AudioConfig
    from sedlib.data.clip_cache import cached
    from sedlib.data.sources import SynthSource
    from sedlib.data.synth.soundscape import SynthConfig

    class Slow(SynthSource):
        def load(self, index):  # the first clip (read to size the arrays) comes at once
            time.sleep(float(sys.argv[2]) if index else 0.0)
            return super().load(index)

    audio = AudioConfig(clip_seconds=2.0)
    src = Slow("train", 5, audio_config=audio, synth_config=SynthConfig(synth_clip_seconds=2.0))
    cached(src, root=sys.argv[1], workers=0, progress=False)
""")


def _build_in_process(root: Path, delay: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _SLOW_BUILD, str(root), str(delay)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_killed_build_leaves_nothing_readable_and_the_next_build_cleans_up(tmp_path):
    proc = _build_in_process(tmp_path, 30.0)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*.tmp-*/waveforms.npy")) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    key = cache_key(synth().cache_identity())
    assert [p.name for p in tmp_path.glob("*.tmp-*")] == [f"{key}.tmp-{proc.pid}"]
    assert not (tmp_path / key).exists() and lookup(synth(), tmp_path) is None
    data = cached(synth(), root=tmp_path, workers=0, progress=False)  # rebuilds
    assert torch.equal(data[4]["waveform"], synth()[4]["waveform"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [key, f"{key}.lock"]


def test_two_processes_building_at_once_share_one_result(tmp_path):
    procs = [_build_in_process(tmp_path, 0.5) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    key = cache_key(synth().cache_identity())
    assert sorted(p.name for p in tmp_path.iterdir()) == [key, f"{key}.lock"]
    data = lookup(synth(), tmp_path)
    for i in range(5):
        assert torch.equal(data[i]["waveform"], synth()[i]["waveform"])


def test_a_manifest_for_other_settings_is_not_read(tmp_path):
    data = cached(synth(), root=tmp_path, workers=0, progress=False)
    manifest = data.folder / clip_cache_space.MANIFEST
    manifest.write_text(manifest.read_text().replace('"split": "train"', '"split": "eval"'))
    assert lookup(synth(), tmp_path) is None
    rebuilt = cached(synth(), root=tmp_path, workers=0, progress=False)
    assert rebuilt.folder == data.folder and lookup(synth(), tmp_path) is not None


def test_entries_are_listed_and_cleared_from_the_command_line(tmp_path, monkeypatch, capsys):
    from sedlib import cli
    from sedlib.data.clip_cache import cache_root
    from sedlib.data.clip_cache_space import cache_entries, clear_cache

    monkeypatch.setenv("SEDLIB_CACHE", str(tmp_path))
    root = cache_root()
    assert cache_entries(root) == [] and clear_cache(root) == 0  # no folder yet
    a = cached(synth(3), progress=False, workers=0)
    cached(synth(2, seed=4), progress=False, workers=0)
    (root / "deadbeef.tmp-1").mkdir()  # a killed build
    entries = cache_entries(root)
    assert len(entries) == 3 and sum(e.get("incomplete", False) for e in entries) == 1
    built = {e["key"]: e for e in entries if not e.get("incomplete")}
    assert built[a.folder.name]["clips"] == 3 and "train, seed 0, world basic, 2.0 s" in built[a.folder.name]["source"]
    assert built[a.folder.name]["bytes"] > 3 * 32000 * 4  # 3 clips x 2 s x 16 kHz float32
    assert cli.main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "3 entries" in out and "incomplete" in out and a.folder.name in out
    assert cli.main(["cache", "--clear"]) == 0
    assert "freed" in capsys.readouterr().out and list(root.iterdir()) == []

"""The clip cache's room (sedlib.data.clip_cache_space): the cap and least-recently-used
eviction, entries kept while in use or being built, the free-disk check, ``sedlib cache --prune``."""

from __future__ import annotations

import logging
import os
import time
from collections import namedtuple

import pytest
import torch

from sedlib import cli
from sedlib.config import AudioConfig
from sedlib.data import clip_cache_space as space
from sedlib.data.clip_cache import cache_key, cached, lookup
from sedlib.data.sources import SynthSource
from sedlib.data.synth.soundscape import SynthConfig
from sedlib.errors import DiskSpaceError, SedlibError
from sedlib.locking import file_lock

AUDIO = AudioConfig(clip_seconds=2.0)


def synth(seed: int, n: int = 3) -> SynthSource:
    return SynthSource("train", n, audio_config=AUDIO,
                       synth_config=SynthConfig(synth_seed=seed, synth_clip_seconds=2.0))


def build(root, seed: int, hours_ago: float = 0.0):
    """An entry of 3 clips, last used ``hours_ago``."""
    data = cached(synth(seed), root=root, workers=0, progress=False)
    t = time.time() - hours_ago * 3600
    os.utime(data.folder / space.MANIFEST, (t, t))
    return data.folder.name


def keys(root) -> set[str]:
    return {e["key"] for e in space.cache_entries(root)}


def test_least_recently_used_entries_are_evicted_to_fit_the_cap(tmp_path, monkeypatch, caplog):
    a, b, c = build(tmp_path, 1, 3.0), build(tmp_path, 2, 2.0), build(tmp_path, 3, 0.1)
    size = space.cache_entries(tmp_path)[0]["bytes"]
    assert {e["bytes"] for e in space.cache_entries(tmp_path)} == {size}  # equal shapes
    monkeypatch.setenv(space.LIMIT_ENV, str(3.5 * size / 1e9))
    d = build(tmp_path, 4)
    assert keys(tmp_path) == {b, c, d}  # a, used longest ago, made room for d
    # c (used 6 min ago) and d (just built) are in use: over the cap they stay, with a warning
    monkeypatch.setenv(space.LIMIT_ENV, str(1.5 * size / 1e9))
    with caplog.at_level(logging.WARNING, logger=space.__name__):
        e = build(tmp_path, 5)
    assert keys(tmp_path) == {c, d, e} and "over its cap" in caplog.text
    # an evicted entry is built again on its next use, equal to the synthesis
    assert lookup(synth(1), tmp_path) is None
    monkeypatch.delenv(space.LIMIT_ENV)
    again = cached(synth(1), root=tmp_path, workers=0, progress=False)
    assert again.folder.name == a and torch.equal(again[2]["waveform"], synth(1)[2]["waveform"])


def test_a_lookup_and_a_read_mark_an_entry_used(tmp_path):
    key = build(tmp_path, 1, hours_ago=5.0)
    assert time.time() - space.cache_entries(tmp_path)[0]["used"] > 4 * 3600
    data = lookup(synth(1), tmp_path)
    assert data is not None and time.time() - space.cache_entries(tmp_path)[0]["used"] < 60
    t = time.time() - 5 * 3600
    os.utime(data.folder / space.MANIFEST, (t, t))
    data[0]  # a worker opening the arrays (long after the lookup) marks it used too
    assert time.time() - space.cache_entries(tmp_path)[0]["used"] < 60
    assert space.make_room(tmp_path, 10**12, limit=0) == [] and keys(tmp_path) == {key}


def test_an_entry_being_built_is_never_evicted(tmp_path):
    a, b = build(tmp_path, 1, 3.0), build(tmp_path, 2, 2.0)
    with file_lock(tmp_path / f"{a}.lock"):  # as a process building a would hold it
        assert space.make_room(tmp_path, 1, limit=0) == [b]
    assert keys(tmp_path) == {a}
    assert space.make_room(tmp_path, 1, limit=0, keep=a) == [] and keys(tmp_path) == {a}


def test_a_build_the_disk_cannot_hold_fails_with_one_line_and_writes_nothing(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(space.shutil, "disk_usage", lambda path: usage(10**10, 10**10 - 10**8, 10**8))
    with pytest.raises(DiskSpaceError) as err:
        cached(synth(1, n=4000), root=tmp_path, workers=0, progress=False)
    msg = str(err.value)
    assert isinstance(err.value, SedlibError) and "\n" not in msg
    item = synth(1, n=4000)[0]  # 4,000 clips x (samples + classes x frames) x 4 bytes
    needed = 4000 * (item["waveform"].numel() + item["targets"].numel()) * 4
    assert str(tmp_path) in msg and "(4000 clips)" in msg and "100.0 MB free" in msg
    assert f"needs {space.format_bytes(needed)}" in msg and 500e6 < needed < 540e6
    assert "SEDLIB_CLIP_CACHE=off" in msg and "sedlib cache --clear" in msg
    key = cache_key(synth(1, n=4000).cache_identity())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.lock"]  # no folder, no tmp


@pytest.mark.parametrize("text, want", [("", 20e9), ("0.5", 5e8), ("0", 0), (" 3 ", 3e9)])
def test_the_cap_is_read_from_the_environment(monkeypatch, text, want):
    monkeypatch.setenv(space.LIMIT_ENV, text)
    assert space.cache_limit_bytes() == int(want)


@pytest.mark.parametrize("text", ["lots", "-1", "nan"])
def test_a_bad_cap_is_one_clear_line(monkeypatch, text):
    monkeypatch.setenv(space.LIMIT_ENV, text)
    with pytest.raises(SedlibError, match=rf"\$SEDLIB_CLIP_CACHE_GB='{text}': expected a size in GB"):
        space.cache_limit_bytes()


def test_prune_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEDLIB_CACHE", str(tmp_path))
    root = tmp_path / "clips"
    build(root, 1, 30.0)
    new = build(root, 2)
    size = space.cache_entries(root)[0]["bytes"]
    monkeypatch.setenv(space.LIMIT_ENV, str(1.5 * size / 1e9))
    assert cli.main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "2 entries" in out and "cap ($SEDLIB_CLIP_CACHE_GB)" in out and "used 1 d ago" in out
    assert "beside it" not in out
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "m.onnx").write_bytes(b"x" * 2500)
    (tmp_path / "fmn10_weak.pt").write_bytes(b"x" * 100)
    assert cli.main(["cache"]) == 0
    assert f"(beside it in {tmp_path}: fmn10_weak.pt 100 B, onnx 2.5 kB;" in capsys.readouterr().out
    assert cli.main(["cache", "--prune"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("evicted 1 entries") and keys(root) == {new} and "used just now" in out
    monkeypatch.setenv(space.LIMIT_ENV, "many")
    assert cli.main(["cache"]) != 0
    assert "expected a size in GB" in capsys.readouterr().err
    assert cli.main(["cache", "--clear"]) == 0 and keys(root) == set()  # a bad cap does not block it

"""What a user sees: no third-party warning (dcase_util's pkg_resources notice through
sed_scores_eval, DeepSpeed's accelerator notice) in the output of ``sedlib --help``,
``sedlib eval`` or ``sedlib profile``; sedlib's own warnings are not filtered."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from sedlib.data.formats import write_durations_tsv, write_strong_tsv
from sedlib.data.labels import Event
from sedlib.evaluate.scores_io import scores_to_dataframe, write_scores_dir


def _sedlib(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "default", "-m", "sedlib", *args],
                          capture_output=True, text=True, timeout=300)


def _no_third_party_warning(text: str) -> None:
    for needle in ("pkg_resources", "UserWarning", "DeprecationWarning", "[WARNING]",
                   "unable to detect"):
        assert needle not in text, text


def test_help_is_quiet():
    proc = _sedlib("--help")
    assert proc.returncode == 0
    _no_third_party_warning(proc.stdout + proc.stderr)


def test_eval_is_quiet(tmp_path):
    classes = ["a", "b"]
    rng = np.random.default_rng(0)
    scores = {"clip1": scores_to_dataframe(rng.random((2, 50)), classes, duration=2.0)}
    write_scores_dir(scores, tmp_path / "scores")
    write_strong_tsv(tmp_path / "gt.tsv", [Event("clip1.wav", 0.2, 1.0, "a"), Event("clip1.wav", 1.2, 1.8, "b")])
    write_durations_tsv(tmp_path / "durations.tsv", {"clip1.wav": 2.0})
    proc = _sedlib("eval", "--scores", str(tmp_path / "scores"), "--ground-truth",
                   str(tmp_path / "gt.tsv"), "--durations", str(tmp_path / "durations.tsv"),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    _no_third_party_warning(proc.stdout + proc.stderr)


def test_profile_with_deepspeed_is_quiet():
    proc = _sedlib("profile", "fmntiny", "--no-throughput", "--json")
    assert proc.returncode == 0, proc.stderr
    _no_third_party_warning(proc.stdout + proc.stderr)


def test_only_that_warning_is_filtered():
    """The filter names one message of one package: any other UserWarning still shows."""
    code = ("import warnings, sedlib.evaluate; warnings.simplefilter('default');"
            "warnings.warn('pkg_resources is deprecated as an API', UserWarning)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "pkg_resources is deprecated" in proc.stderr  # raised from __main__, not dcase_util

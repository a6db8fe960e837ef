"""Project-level checks: install metadata agrees, the CLI works, nothing runs on import."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"{path.name}: requirement not pinned with '==': {line!r}"
        pins[m.group(1).lower()] = m.group(2)
    return pins


def test_requirements_are_pinned_and_exclude_torch():
    pins = _pins(ROOT / "requirements.txt")
    assert "torch" not in pins, "torch is installed by scripts/install.sh (CPU/CUDA choice)"
    for name in ("torchaudio", "jupyterlab", "ipywidgets", "plotly", "papermill",
                 "sed-scores-eval-np2", "deepspeed", "soundfile", "pytest"):
        assert name in pins, f"{name} missing from requirements.txt"


def test_environment_yml_defers_to_requirements():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*- python=3\.11\s*$", text, re.M)
    assert re.search(r"^\s*- -r requirements\.txt\s*$", text, re.M)
    # nothing pinned in the yml that could disagree with requirements.txt
    listed = re.findall(r"^\s*- ([A-Za-z0-9_.\-]+)[=<>]", text, re.M)
    assert set(listed) <= {"python"}, f"environment.yml pins packages itself: {listed}"


def test_installed_versions_match_pins():
    from importlib.metadata import version

    for name, pin in _pins(ROOT / "requirements.txt").items():
        assert version(name) == pin, f"{name}: installed {version(name)}, pinned {pin}"


def test_torchaudio_imports_without_cuda_extension():
    import torchaudio
    from torchaudio.compliance import kaldi

    banks, _ = kaldi.get_mel_banks(128, 512, 16000.0, 0.0, 7000.0, 100.0, -500.0, 1.0)
    assert tuple(banks.shape) == (128, 256)
    assert torchaudio.__version__


def test_import_is_side_effect_free():
    code = "import sedlib, sys; assert 'torch' not in sys.modules, 'import sedlib pulled in torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "sedlib", "--help"], capture_output=True,
                         text=True, check=True).stdout
    from sedlib.cli import COMMANDS

    for name in COMMANDS:
        assert name in out


def test_cli_reports_errors_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "sedlib", "demo", "--clips", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "sedlib demo: error: --clips must be positive" in proc.stderr


@pytest.mark.parametrize("path", ["LICENSE", "sedlib/resources/LICENSE-EfficientSED-MIT.txt",
                                  "data/audioset/LICENSE-EfficientSED-MIT.txt"])
def test_licenses_present(path):
    assert (ROOT / path).is_file()


def test_lazy_public_api_resolves():
    import sedlib

    for name in sedlib.__all__:
        assert getattr(sedlib, name) is not None, name
    with pytest.raises(AttributeError):
        sedlib.no_such_thing  # noqa: B018


def test_install_warns_before_pip_when_the_disk_is_nearly_full(tmp_path):
    """scripts/install.sh says how much room there is and what to do before pip would fail with
    "No space left on device" (what CI met once); a fake df reports 1.2 GB free, a fake Python
    stops the script right after the check."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "df").write_text("#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity "
                                "Mounted'\necho '/dev/x 100000000 98800000 1200000 99% /'\n")
    (bin_dir / "chromium").write_text("#!/bin/sh\n")  # never apt-get in a test
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHON": "false", "HOME": str(tmp_path),
           "SEDLIB_VENV": str(tmp_path / "venv")}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and not (tmp_path / "venv").exists()
    assert f"WARNING: 1200 MB free on the disk of {tmp_path}" in proc.stderr
    assert "needs about 3.5 GB" in proc.stderr and "SEDLIB_VENV" in proc.stderr

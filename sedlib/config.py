"""Frozen configuration dataclasses, one per concern.

Field names are unique across all configs so a notebook's flat ``parameters`` cell maps onto
them one to one. Derived values are properties, never stored fields.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The checkout sedlib is installed from (editable install): shipped data, notebooks, profiles.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_path(path: str | os.PathLike) -> Path:
    """``path`` made absolute against the project root (``~`` expanded; absolute paths kept).

    Every path a notebook's parameters hold (run, figure and cache folders, shipped checkpoints,
    data specs naming files) goes through here, so a notebook gives the same results whether
    papermill runs it from the project root or JupyterLab from ``notebooks/`` (a kernel starts
    in the notebook's own folder)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p).resolve()


def user_cache_dir() -> Path:
    """``$SEDLIB_CACHE``, else ``~/.cache/sedlib``: downloaded releases and the clip cache."""
    return Path(os.environ.get("SEDLIB_CACHE") or Path.home() / ".cache" / "sedlib")


@dataclass(frozen=True)
class AudioConfig:
    """The reference input pipeline (SPEC 1.3): 16 kHz, 10 s clips, 128 log-mel bins, 10 ms hop.

    The model pools time by 4, so labels and strong outputs live on a 40 ms grid.
    """

    sample_rate: int = 16_000
    clip_seconds: float = 10.0
    n_mels: int = 128
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    fmin: float = 0.0
    fmax: float | None = None  # None: sample_rate // 2 - fmax_aug_range // 2 (= 7000 Hz)
    fmin_aug_range: int = 10
    fmax_aug_range: int = 2000
    time_pooling: int = 4

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def mel_frames(self) -> int:
        """Mel frames of one clip: 1 + (N - 1) // hop after the valid pre-emphasis (1000)."""
        return 1 + (self.clip_samples - 1) // self.hop_length

    @property
    def label_frames(self) -> int:
        """Strong output / label frames of one clip (250 for 10 s)."""
        return self.mel_frames // self.time_pooling

    @property
    def frame_seconds(self) -> float:
        """Duration of one output frame (0.04 s)."""
        return self.hop_length * self.time_pooling / self.sample_rate

    @property
    def frames_per_second(self) -> float:
        return 1.0 / self.frame_seconds

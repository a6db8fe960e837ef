"""Evaluation configurations (SPEC 7): PSDS and segment-based AUROC parameters, DCASE presets.

Frozen, validated on construction, and handed to ``sed_scores_eval`` as keyword arguments
(``kwargs()``) by the reference engine and read field by field by the fast one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SECONDS_PER_UNIT = {"second": 1.0, "minute": 60.0, "hour": 3600.0}


@dataclass(frozen=True)
class PSDSConfig:
    """Intersection-based PSDS parameters (Bilen et al. 2020), as ``sed_scores_eval`` takes them."""

    dtc_threshold: float
    gtc_threshold: float
    cttc_threshold: float | None = None
    alpha_ct: float = 0.0
    alpha_st: float = 0.0
    max_efpr: float = 100.0
    unit_of_time: str = "hour"
    time_decimals: int = 6

    def __post_init__(self) -> None:
        if not (0 < self.dtc_threshold <= 1 and 0 < self.gtc_threshold <= 1):
            raise ValueError(f"PSDSConfig: dtc_threshold and gtc_threshold must be in (0, 1], got {self}")
        if (self.alpha_ct == 0) != (self.cttc_threshold is None):
            raise ValueError(
                "PSDSConfig: cttc_threshold must be given exactly when alpha_ct != 0 "
                f"(got cttc_threshold={self.cttc_threshold}, alpha_ct={self.alpha_ct})"
            )
        if self.alpha_ct < 0 or self.alpha_st < 0:
            raise ValueError(f"PSDSConfig: alpha_ct and alpha_st must be >= 0, got {self}")
        if self.unit_of_time not in SECONDS_PER_UNIT:
            raise ValueError(f"PSDSConfig: unit_of_time must be one of {list(SECONDS_PER_UNIT)}")

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``sed_scores_eval.intersection_based.psds``."""
        return dict(
            dtc_threshold=self.dtc_threshold, gtc_threshold=self.gtc_threshold,
            cttc_threshold=self.cttc_threshold, alpha_ct=self.alpha_ct, alpha_st=self.alpha_st,
            max_efpr=self.max_efpr, unit_of_time=self.unit_of_time,
            time_decimals=self.time_decimals,
        )


@dataclass(frozen=True)
class AUROCConfig:
    """Segment-based (partial) AUROC parameters (``sed_scores_eval.segment_based.auroc``)."""

    segment_length: float = 1.0
    max_fpr: float | None = 0.1
    mcclish_correction: bool = False
    time_decimals: int = 6

    def kwargs(self) -> dict[str, Any]:
        return dict(
            segment_length=self.segment_length, max_fpr=self.max_fpr,
            mcclish_correction=self.mcclish_correction, time_decimals=self.time_decimals,
        )


#: DCASE PSDS scenario 1 (the reference's ``val/psds1``) and scenario 2.
PSDS1 = PSDSConfig(dtc_threshold=0.7, gtc_threshold=0.7, cttc_threshold=None,
                   alpha_ct=0.0, alpha_st=1.0, max_efpr=100.0)
PSDS2 = PSDSConfig(dtc_threshold=0.1, gtc_threshold=0.1, cttc_threshold=0.3,
                   alpha_ct=0.5, alpha_st=1.0, max_efpr=100.0)
#: The reference's ``val/pauroc``: 1 s segments, partial AUROC up to FPR 0.1, mean over classes.
PAUROC = AUROCConfig(segment_length=1.0, max_fpr=0.1)

"""Evaluation: post-processing, score files, PSDS / pAUROC equal to sed_scores_eval, reports.

- :mod:`~sedlib.evaluate.postprocess`: ``FrameScores``, ``median_filter``, ``scores_to_events``.
- :mod:`~sedlib.evaluate.scores_io`: per-clip score TSVs in the sed_scores_eval layout.
- :mod:`~sedlib.evaluate.config`: PSDS1 / PSDS2 / pAUROC settings;
  :mod:`~sedlib.evaluate.inputs`: ground truth, durations, checks.
- :mod:`~sedlib.evaluate.psds_engine`, :mod:`~sedlib.evaluate.psds_stats`, :mod:`~sedlib.evaluate.psds_counts`,
  :mod:`~sedlib.evaluate.auroc_stats`: the fast exact engine.
- :mod:`~sedlib.evaluate.report`: ``psds_report``.

May import: ``sedlib.config``, ``sedlib.errors``, ``sedlib.data``.
"""

import warnings

from sedlib._exports import lazy_exports

# sed_scores_eval -> sed_eval -> dcase_util imports pkg_resources, which warns that it is
# deprecated on every first import; this room is entered before sedlib imports sed_scores_eval.
# Only that warning from that package is hidden; everything else (sedlib's own) stays visible.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated as an API",
                        category=UserWarning, module="dcase_util")

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "psds_report": ".report", "median_filter": ".postprocess",
    "median_filter_scores": ".postprocess", "MappedScores": ".postprocess",
    "FrameScores": ".postprocess",
    "scores_to_events": ".postprocess", "scores_to_dataframe": ".scores_io",
    "read_scores_dir": ".scores_io", "write_scores_dir": ".scores_io",
    "write_frame_scores": ".scores_io", "PSDS1": ".config", "PSDS2": ".config",
    "PSDSConfig": ".config", "PAUROC": ".config", "EvaluationError": ".inputs",
    "frame_timestamps": ".scores_io",
})

"""Evaluation: post-processing, score files, PSDS / pAUROC equal to sed_scores_eval, reports.

- :mod:`~sedlib.evaluate.postprocess`: ``FrameScores``, ``median_filter``, ``scores_to_events``.
- :mod:`~sedlib.evaluate.scores_io`: per-clip score TSVs in the sed_scores_eval layout.
- :mod:`~sedlib.evaluate.config`: PSDS1 / PSDS2 / pAUROC settings;
  :mod:`~sedlib.evaluate.inputs`: ground truth, durations, checks.
- :mod:`~sedlib.evaluate.psds_engine`, :mod:`~sedlib.evaluate.psds_stats`: the fast exact engine.
- :mod:`~sedlib.evaluate.report`: ``psds_report``.

May import: ``sedlib.config``, ``sedlib.errors``, ``sedlib.data``.
"""

from sedlib._exports import lazy_exports

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

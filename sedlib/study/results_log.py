"""Writing the study's results log: one JSON line per run, appended by the process that made
or read it (:func:`log_result_row`), and the key of a row that is not a study Experiment.
Reading and summarising it: :mod:`sedlib.study.results`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from sedlib.study.experiments import NOTEBOOK_ENV, RESULTS_LOG_ENV

#: ``kind`` of a results-log row that is not a study Experiment (keys derived otherwise)
OWN_CLASSES, CHECKPOINT_EVAL = "own_classes", "checkpoint_eval"


def log_result_row(row: Mapping[str, Any]) -> None:
    """Append ``row`` to the study's results log (when ``sedlib study`` set one,
    :data:`~sedlib.study.experiments.RESULTS_LOG_ENV`), tagged with the running notebook: every
    Experiment (:func:`sedlib.study.cache.run_experiment`), notebook 07's fine-tuning runs and
    notebook 06's score of the shipped checkpoint."""
    path = os.environ.get(RESULTS_LOG_ENV)
    if not path:
        return
    line = json.dumps({**row, "notebook": os.environ.get(NOTEBOOK_ENV)}) + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:  # one short write: atomic under O_APPEND
        fh.write(line)


def settings_key(prefix: str, settings: Mapping[str, Any]) -> str:
    """``<prefix>-<10 hex digits of sha256(settings)>``: the key of a row that is no Experiment."""
    import hashlib

    text = json.dumps(dict(settings), sort_keys=True)
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def content_id(ref: str) -> str:
    """A weights file by its content (``sha256:...``, wherever it lies; paths relative to the
    project root), a release name as given: the identity a row's key hashes."""
    from sedlib.config import project_path
    from sedlib.study.experiments import _file_digest

    path = project_path(ref)
    return f"sha256:{_file_digest(path)}" if path.is_file() else str(ref)


def checkpoint_row(name: str, checkpoint: str, eval_data: str, audio: Any, median_window: int,
                   metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A trained checkpoint scored without training (notebook 06: the shipped model on the
    player's clips) as a results-log row: ``metrics`` of :func:`sedlib.train.data.validate`
    (fractions) in percent; keyed by the checkpoint's content (a release by its name), the clips,
    the audio settings and the median filter."""
    import dataclasses

    settings = {"checkpoint": content_id(checkpoint),
                "eval_data": eval_data, "audio": dataclasses.asdict(audio), "median_window": median_window}
    return {"name": f"{name} (shipped checkpoint, not trained here)", "seed": None, "steps": None,
            "init": str(checkpoint), "eval_clips": metrics.get("eval_clips"), "eval_data": eval_data,
            "params": None, "macs": None, "throughput": None, "kd_weight": None, "train_seconds": None,
            "cached": False, "key": settings_key("06-eval", settings), "kind": CHECKPOINT_EVAL,
            "settings": settings, "psds1": 100 * metrics["psds1"], "psds1_macro": 100 * metrics["psds1_macro"]}

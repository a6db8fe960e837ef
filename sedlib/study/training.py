"""What one study experiment does: open its data, train (from its backbone init), recalibrate
BatchNorm, evaluate PSDS on the eval split.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from sedlib.config import AudioConfig
from sedlib.study.experiments import RUN, Experiment

log = logging.getLogger(__name__)

#: Disjoint eval folds every study evaluation also scores (``psds1_macro_folds``): the eval-clip
#: part of the study's intervals (:func:`sedlib.train.data.psds_of`, :mod:`sedlib.study.intervals`).
EVAL_FOLDS = 5


def open_data(spec: str, split: str, audio: AudioConfig):
    """The data source for ``spec`` (:func:`sedlib.data.spec.open_source`); ``synth`` specs
    make clips of ``audio.clip_seconds`` (the length the model trains on), served from the clip
    cache (:func:`sedlib.data.clip_cache.cached`). Paths in the spec
    are relative to the project root (:func:`sedlib.config.project_path`), whatever the working
    directory; the spec itself (as the experiment key holds it) is left as written."""
    from sedlib.config import project_path
    from sedlib.data.clip_cache import cached
    from sedlib.data.spec import open_source, resolve_spec_paths

    return cached(open_source(resolve_spec_paths(spec, project_path), split=split,
                              audio_config=audio))


def train_and_evaluate(exp: Experiment, folder: Path, *, device: str = "cpu", progress: bool = True
                       ) -> tuple[Any, dict[str, Any], float, float, int]:
    """Train ``exp`` into ``folder/run`` (resuming), recalibrate BatchNorm if asked, evaluate on
    ``eval_data`` (else ``val_data``). A :attr:`~Experiment.variant`'s network is built here
    (:func:`sedlib.study.stride.build_model`) after seeding with ``exp.seed``, as fit() seeds
    before ``create_model``. Returns (fit's RunResult, metrics, train s, eval s, class count)."""
    from sedlib.train import runs
    from sedlib.train.data import dataset_vocab, recalibrate_batchnorm, validate
    from sedlib.train.fitting import fit

    audio = exp.audio
    train = open_data(exp.train_data, "train", audio)
    val = None if exp.val_data is None else open_data(exp.val_data, "validation", audio)
    weak = None if exp.weak_data is None else open_data(exp.weak_data, "train", audio)
    eval_spec, eval_split, eval_audio = exp.evaluation
    same_as_val = (eval_split, eval_audio) == ("validation", audio)
    evaluation = val if same_as_val else open_data(eval_spec, eval_split, eval_audio)
    k = len(dataset_vocab(train, "training"))
    model, run_info = exp.model, {}
    if exp.variant is not None:
        import torch

        from sedlib.study.stride import build_model, variant_strides

        torch.manual_seed(exp.seed)
        model = build_model(exp.model, k, exp.variant)
        run_info = {"clipwise_strides": list(variant_strides(exp.variant))}
    t0 = time.perf_counter()
    run = fit(model, train, out_dir=folder / RUN,
              train_config=exp.train, distill_config=exp.distill, val_data=val, weak_data=weak,
              audio_config=audio, device=device, resume=True, max_steps=exp.steps,
              init=exp.init, val_every=exp.val_every, progress=progress,
              run_info={"experiment_key": folder.name, "experiment": exp.to_dict(),
                        **run_info})
    if int(os.environ.get("RANK", "0")):  # a DDP rank other than 0: rank 0 evaluates and writes
        return run, {}, time.perf_counter() - t0, 0.0, k
    if exp.bn_recalibration_clips:  # the first clips: a random sample of i.i.d. synthetic clips
        recalibrate_batchnorm(run.model, train, audio_config=audio, batch_size=exp.train.batch_size,
                              device=device, indices=range(min(exp.bn_recalibration_clips, len(train))))
        runs.save_weights(run.model, run.weights, model_name=getattr(run.model, "name", exp.model),
                          classes=list(train.vocab.names),
                          extra={"step": str(run.step), "bn_recalibrated": "1"})
    t1 = time.perf_counter()
    metrics = validate(run.model, evaluation, audio_config=eval_audio, device=device,
                       batch_size=exp.train.batch_size, median_window=exp.train.median_window,
                       folds=EVAL_FOLDS)
    metrics["val_history"] = list(run.validations)
    log.info("%s: PSDS1 %.4f, PSDS1 macro %.4f (%.0f s)", exp.model, metrics["psds1"],
             metrics["psds1_macro"], t1 - t0)
    return run, metrics, t1 - t0, time.perf_counter() - t1, k


def evaluate_on(model, spec: str, audio: AudioConfig, *, batch_size: int = 8,
                device: str = "cpu", median_window: int = 9) -> dict[str, Any]:
    """PSDS1 / PSDS1 macro / pAUROC of a trained ``model`` on the eval split of ``spec``, with
    the :data:`EVAL_FOLDS` fold values, as every study run is evaluated (e.g. a shipped teacher,
    for its interval beside the students')."""
    from sedlib.train.data import validate

    return validate(model, open_data(spec, "eval", audio), audio_config=audio, device=device,
                    batch_size=batch_size, median_window=median_window, folds=EVAL_FOLDS)

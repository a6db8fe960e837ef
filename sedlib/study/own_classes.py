"""Notebook 07: your own classes on real recordings, fine-tuned from a checkpoint vs from scratch.

:func:`prepare_sets` builds three soundscape sets from the shipped real recordings
(:mod:`sedlib.data.real_sounds`) over backgrounds of the embedded synthetic set:

- ``train`` and ``val``: the training recordings (val: other mixtures, other seed);
- ``eval``: the held-out recordings only, over other backgrounds, so no sound of the eval set
  was heard in training (mixed by :func:`sedlib.data.mixing.mix_soundscapes`).

:func:`run_conditions` fine-tunes (:func:`sedlib.train.finetune.finetune`) each condition
(``checkpoint``: the shipped model's backbone and sequence model with new heads; ``scratch``:
the same model from random weights) once per seed, scores it on ``eval`` with 5 eval folds,
and returns records for :mod:`sedlib.study.findings` (mean ± 95 % over seeds and folds, paired
differences). Runs are cached in the work folder by their settings and the initial weights'
content, atomically and under a file lock.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONDITIONS = ("checkpoint", "scratch")


@dataclass(frozen=True)
class OwnClassesConfig:
    """The experiment's settings (notebook 07's parameters)."""

    init: str = "data/checkpoints/context/fmn04+bigru-104_teacher.safetensors"
    model: str = "fmn04+BiGRU:104"  # the scratch baseline builds this model
    train_clips: int = 256
    val_clips: int = 32
    eval_clips: int = 200
    clip_seconds: float = 4.0
    steps: int = 150
    batch_size: int = 8
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    mix_seed: int = 0


def _mix(recordings: Path, backgrounds: Path, out: Path, clips: int, seed: int, seconds: float) -> Path:
    from sedlib.data.mixing import MixConfig, mix_soundscapes

    if not (out / "strong.tsv").is_file():
        mix_soundscapes(recordings, out, clips, background=backgrounds, progress=False,
                        config=MixConfig(clip_seconds=seconds, seed=seed))
    return out


def _backgrounds(out: Path, clips: int, seed: int, seconds: float) -> Path:
    """Soundscapes of the embedded synthetic set (its other sounds are distractors)."""
    from sedlib.data.synth.soundscape import SynthConfig, write_desed

    if not (out / "audio").is_dir():
        write_desed(out, clips, SynthConfig(synth_seed=seed, synth_world="context", synth_clip_seconds=seconds),
                    split="eval", progress=False)
    return out / "audio"


def prepare_sets(work_dir: str | os.PathLike, cfg: OwnClassesConfig = OwnClassesConfig()) -> dict[str, str]:
    """Write (once) the train / val / eval soundscape folders; returns their ``--data`` specs."""
    from sedlib.data.real_sounds import write_class_folders

    work = Path(work_dir)
    key = f"{cfg.train_clips}-{cfg.val_clips}-{cfg.eval_clips}-{cfg.clip_seconds:g}s-mix{cfg.mix_seed}"
    root = work / "sets" / key
    sounds = {s: write_class_folders(root / f"sounds_{s}", s) for s in ("train", "eval")}
    beds = {s: _backgrounds(root / f"backgrounds_{s}", 24, 100 + i, cfg.clip_seconds)
            for i, s in enumerate(("train", "eval"))}
    m = cfg.mix_seed
    sets = {"train": _mix(sounds["train"], beds["train"], root / "train", cfg.train_clips, m, cfg.clip_seconds),
            "val": _mix(sounds["train"], beds["train"], root / "val", cfg.val_clips, m + 1, cfg.clip_seconds),
            "eval": _mix(sounds["eval"], beds["eval"], root / "eval", cfg.eval_clips, m + 2, cfg.clip_seconds)}
    return {name: str(path) for name, path in sets.items()}


def run_settings(cfg: OwnClassesConfig, cond: str, seed: int) -> dict[str, Any]:
    """What a run's key hashes: its settings, and for the ``checkpoint`` condition the initial
    weights by their content (a release by its name), so a checkpoint replaced under the same path
    is a new run. A ``scratch`` run never loads them: its key leaves them out (``init`` None), so
    profiles fine-tuning different checkpoints share their scratch runs."""
    from sedlib.study.results_log import content_id

    init = content_id(cfg.init) if cond == "checkpoint" else None
    return {**asdict(cfg), "seeds": None, "seed": seed, "condition": cond, "init": init}


def run_key(settings: dict[str, Any]) -> str:
    """``07-<condition>-s<seed>-<digest of the settings>``: the run's cache folder and its key in
    the study's results log. Settings stored by older code are re-read through the current
    :class:`OwnClassesConfig` (a field added or removed since gives another key: stale)."""
    fields = {k: v for k, v in settings.items() if k not in ("seed", "condition", "init")}
    fields["seeds"] = ()
    cfg = OwnClassesConfig(**{**fields, "init": settings["init"]})
    from sedlib.study.results_log import settings_key

    current = {**asdict(cfg), "seeds": None, "seed": settings["seed"], "condition": settings["condition"]}
    return settings_key(f"07-{settings['condition']}-s{settings['seed']}", current)


def _run_dir(cache_dir: str | os.PathLike, cfg: OwnClassesConfig, cond: str, seed: int) -> Path:
    """The run's cache folder (:func:`run_key`)."""
    return Path(cache_dir) / run_key(run_settings(cfg, cond, seed))


def run_conditions(cache_dir: str | os.PathLike, cfg: OwnClassesConfig = OwnClassesConfig(), *,
                   progress: bool = True) -> list[dict[str, Any]]:
    """One record per condition and seed (module doc; PSDS values in percent), trained or read from the cache
    (``cache_dir/07-<condition>-s<seed>-<settings digest>/result.json``, written atomically, each
    run under a file lock: notebooks run side by side train it once); each also logged to the
    study's results log (:func:`results_row`)."""
    from sedlib.locking import file_lock
    from sedlib.study.results_log import log_result_row

    sets = prepare_sets(Path(cache_dir) / "07-sets", cfg)
    records = []
    for seed in cfg.seeds:
        for cond in CONDITIONS:
            folder = _run_dir(cache_dir, cfg, cond, seed)
            result_file = folder / "result.json"
            with file_lock(Path(cache_dir) / f".{folder.name}.lock"):  # one process trains a run
                trained = not result_file.is_file()
                if trained:
                    _run_one(cfg, sets, cond, seed, folder, progress)
            records.append(_percent(json.loads(result_file.read_text())["record"]))
            log_result_row(results_row(records[-1], cfg, cond, seed, cached=not trained))
    return records


def results_row(record: dict[str, Any], cfg: OwnClassesConfig, cond: str, seed: int, *,
                cached: bool) -> dict[str, Any]:
    """One run as a row of the study's results log (``results.jsonl`` / ``results.md``, beside
    the Experiments): PSDS in percent with its eval folds and per class, keyed and checked for
    staleness by :func:`run_key` of its stored ``settings`` (params/MACs not profiled here)."""
    from sedlib.study.results_log import OWN_CLASSES

    settings = run_settings(cfg, cond, seed)
    return {"name": f"{cfg.model}, {'fine-tuned from the checkpoint' if cond == 'checkpoint' else 'from scratch'}",
            "seed": seed, "steps": cfg.steps, "init": cfg.init if cond == "checkpoint" else None,
            "eval_clips": cfg.eval_clips, "eval_data": f"own classes: held-out recordings ({cfg.eval_clips} mixtures)",
            "params": None, "macs": None, "throughput": None, "kd_weight": None, "train_seconds": None,
            "cached": cached, "key": run_key(settings), "kind": OWN_CLASSES, "settings": settings,
            **{k: v for k, v in record.items() if k.startswith("psds1")}}


def _percent(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record (PSDS as fractions) with every PSDS value in percent, as every other
    notebook prints them."""
    def pct(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: pct(x) for k, x in v.items()}
        if isinstance(v, list):
            return [pct(x) for x in v]
        return None if v is None else 100 * v

    return {k: pct(v) if k.startswith("psds1") else v for k, v in record.items()}


def _run_one(cfg: OwnClassesConfig, sets: dict[str, str], cond: str, seed: int, folder: Path,
             progress: bool) -> None:
    """Fine-tune one condition and seed into ``folder/run`` and write ``folder/result.json``
    (atomically: a run stopped midway leaves no result, and resumes)."""
    from sedlib.atomic import atomic_write
    from sedlib.config import project_path
    from sedlib.train.finetune import evaluate_model, finetune

    log.info("07: %s, seed %d", cond, seed)
    init = str(project_path(cfg.init)) if project_path(cfg.init).is_file() else cfg.init  # or a release
    result = finetune(init if cond == "checkpoint" else "scratch", sets["train"], folder / "run",
                      steps=cfg.steps, val_data=sets["val"], batch_size=cfg.batch_size, lr=cfg.lr,
                      seed=seed, model_name=cfg.model, clip_seconds=cfg.clip_seconds, progress=progress,
                      validations=3)
    metrics = evaluate_model(result.model, sets["eval"], result.vocab, clip_seconds=cfg.clip_seconds)
    record = {"name": cond, "seed": seed, "best_step": result.best["step"],
              **{k: v for k, v in metrics.items() if k.startswith("psds1")}}
    text = json.dumps({"record": record, "metrics": {k: metrics[k] for k in ("psds1", "psds1_macro")}})
    atomic_write(folder / "result.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))


def best_model(cache_dir: str | os.PathLike, cfg: OwnClassesConfig, cond: str = "checkpoint", seed: int | None = None):
    """The kept (best-validation) model of one run and its classes."""
    from sedlib.trained import load_trained_model

    seed = cfg.seeds[0] if seed is None else seed
    return load_trained_model(None, _run_dir(cache_dir, cfg, cond, seed) / "run" / "model.safetensors")


def own_config(study, train, audio, *, own_init: str, own_model: str, own_clips) -> OwnClassesConfig:
    """The experiment's settings from a notebook's configs (steps, seeds, batch, LR, clip length)."""
    n_train, n_val, n_eval = own_clips
    return OwnClassesConfig(init=own_init, model=own_model, train_clips=n_train, val_clips=n_val,
                            eval_clips=n_eval, clip_seconds=audio.clip_seconds, steps=study.steps,
                            batch_size=train.batch_size, lr=train.max_lr, seeds=tuple(study.seeds or (0,)))


def recordings_table():
    """One row per class: its training and held-out recordings and their seconds."""
    import pandas as pd

    from sedlib.audio.io import audio_duration
    from sedlib.data.real_sounds import split_recordings

    split = split_recordings()
    return pd.DataFrame([{"class": c, "train recordings": len(split["train"][c]),
                          "train seconds": round(sum(audio_duration(p) for p in split["train"][c]), 2),
                          "held out for eval": ", ".join(p.name for p in split["eval"][c])}
                         for c in split["train"]])


def per_class_table(records):
    """PSDS1 (percent) per class and condition: the mean over seeds with its 95 % interval over
    seeds (rows: classes; columns ``<condition>``, ``<condition>_low``, ``<condition>_high``)."""
    import pandas as pd

    from sedlib.study.intervals import mean_interval

    conditions = list(dict.fromkeys(r["name"] for r in records))
    classes = list(dict.fromkeys(c for r in records for c in r["psds1_per_class"]))
    rows = []
    for c in classes:
        row = {"class": c}
        for cond in conditions:
            iv = mean_interval([r["psds1_per_class"][c] for r in records if r["name"] == cond])
            row.update({cond: iv.mean, f"{cond}_low": max(0.0, iv.low), f"{cond}_high": min(100.0, iv.high)})
        rows.append(row)
    return pd.DataFrame(rows).set_index("class")


def per_class_figure(table):
    """Grouped bars: PSDS1 (%) per class, one bar per condition, with the 95 % interval over
    seeds (clipped to the metric's range, 0-100)."""
    import plotly.graph_objects as go

    conditions = [c for c in table.columns if not c.endswith(("_low", "_high"))]
    fig = go.Figure([go.Bar(name=cond, x=list(table.index), y=list(table[cond]),
                            error_y={"type": "data", "symmetric": False,
                                     "array": list(table[f"{cond}_high"] - table[cond]),
                                     "arrayminus": list(table[cond] - table[f"{cond}_low"])})
                     for cond in conditions])
    fig.update_layout(barmode="group", title="Held-out recordings: PSDS1 per class (mean over seeds, 95 % interval)",
                      yaxis_title="PSDS1 (%)", xaxis_title="class", width=800, height=420)
    return fig


def unmixed_recording(out_dir: str | os.PathLike, gap_seconds: float = 1.0):
    """The held-out recordings one after another (``gap_seconds`` of silence between them) as
    one real, unmixed WAV at 16 kHz, and its true events."""
    import numpy as np
    import soundfile as sf

    from sedlib.audio.io import load_audio
    from sedlib.data.labels import Event
    from sedlib.data.real_sounds import split_recordings

    parts, events, t = [], [], gap_seconds
    gap = np.zeros(round(gap_seconds * 16_000), np.float32)
    for cls, files in split_recordings()["eval"].items():
        x = load_audio(files[0], 16_000)
        parts += [gap, x]
        events.append(Event("held_out_recordings.wav", round(t, 3), round(t + len(x) / 16_000, 3), cls))
        t += len(x) / 16_000 + gap_seconds
    path = Path(out_dir) / "held_out_recordings.wav"
    sf.write(path, np.concatenate(parts + [gap]), 16_000)
    return path, events


def comparison_sentence(records) -> str:
    """The paired difference checkpoint - scratch in PSDS1 macro points, and what it says."""
    from sedlib.study.findings import difference

    d = difference(records, "checkpoint", "scratch")
    n = len({r["seed"] for r in records})
    if not d.known:
        word = "no interval with one seed"
    elif d.low > 0:
        word = "**starting from the checkpoint is better**"
    elif d.high < 0:
        word = "**starting from the checkpoint is worse**"
    else:
        word = "**inconclusive** at this budget (the interval contains 0)"
    return (f"Fine-tuned from the checkpoint − from scratch, PSDS1 macro on the held-out recordings: "
            f"{d.mean:+.1f} points [{d.low:+.1f}, {d.high:+.1f}] (95 %, {n} seed"
            f"{'s' if n != 1 else ''}, paired, eval folds): {word}.")


def found_classes(truth, found) -> list[str]:
    """Classes of the true events that a detection of the same class overlaps."""
    return sorted({t.label for t in truth
                   if any(f.label == t.label and f.onset < t.offset and t.onset < f.offset for f in found)})

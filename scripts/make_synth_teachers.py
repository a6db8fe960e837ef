"""Make a teacher ensemble for the study's distillation notebooks (04, 05) on a synthetic world.

The paper's students learn from an ensemble of far stronger models (larger, pre-trained, trained
far longer on far more data). The stand-in here: models ~4x the student's size (fmn04 with a
sequence model, vs the quick profile's fmn02+TF:64), each started from the world's pre-trained
fmn04 backbone (``scripts/make_synth_backbones.py``) and trained for ``--steps`` steps (1,500 by
default: 23x the student's 64) on 16x the student's labelled clips, with the SAME annotation
noise as the student's labels (as the paper's teachers also learn from AudioSet Strong's
annotations), the quick preset's augmentations (wavmix, frame shift, mixup), layer-wise LR
decay 0.9. Each member is written as a full sedlib checkpoint; then the members and their
ensemble (the mean of their logits, :class:`sedlib.models.ensemble.MeanLogits`, as the
pseudo-labels are made) are evaluated on the world's eval clips with 5-fold intervals, and the
table is printed and written beside them as ``teachers.json``::

    .venv/bin/python scripts/make_synth_teachers.py fmn04+TF:104 fmn04+BiGRU:104

Members train one after the other; to use both cores, start one process per member with
``--no-ensemble`` and evaluate the ensemble afterwards with ``--evaluate-only``. Deterministic
for a given torch build and thread count (``--threads``, default 1).

The context2 world's teachers (``data/checkpoints/context2/``; README "The embedded data set")
start from that world's pre-trained fmn04 backbone, train on 16,384 distinct clips at batch 16
and are scored on 4 s eval clips (their training length, as the study's models), with per-class
PSDS1 and frame AUC::

    .venv/bin/python scripts/make_synth_teachers.py fmn04+TF:104 --world context2 --steps 3000 --no-ensemble
    .venv/bin/python scripts/make_synth_teachers.py fmn04+BiGRU:104 --world context2 --steps 3000 --no-ensemble
    .venv/bin/python scripts/make_synth_teachers.py fmn04+TF:104 fmn04+BiGRU:104 --world context2 --evaluate-only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sedlib.config import AudioConfig
from sedlib.detect.detector import checkpoint_metadata, load_detector_model
from sedlib.models.ensemble import MeanLogits
from sedlib.study.results import project_relative
from sedlib.study.training import open_data
from sedlib.train.class_report import class_report
from sedlib.train.config import PRESETS
from sedlib.train.fitting import fit
from sedlib.train.runs import save_weights

ROOT = Path(__file__).resolve().parent.parent
NOISE = "miss=0.1,confuse=0.2,jitter=50"  # the quick profile's training annotations


def teacher_file(out: Path, name: str) -> Path:
    """``fmn04+TF:104`` -> ``OUT/fmn04+tf-104_teacher.safetensors``."""
    return out / f"{name.lower().replace(':', '-')}_teacher.safetensors"


def score(model: torch.nn.Module, evaluation, audio: AudioConfig) -> dict:
    """PSDS1 / PSDS1 macro (%) on ``evaluation`` with a 95 % eval-clip interval from 5 folds,
    and per class PSDS1 and frame ROC AUC (%; median filter 9)."""
    r = class_report(model, evaluation, audio_config=audio, median_windows=(9,), folds=5)
    m = r["psds"][9]
    folds = np.asarray(m["psds1_macro_folds"]) * 100
    half = 1.96 * folds.std(ddof=1) / math.sqrt(len(folds))
    return {"psds1": 100 * m["psds1"], "psds1_macro": 100 * m["psds1_macro"],
            "psds1_macro_ci95": float(half),
            "per_class": {c: 100 * v for c, v in m["psds1_per_class"].items()},
            "frame_auc": {c: 100 * v for c, v in r["frame_auc"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teachers", nargs="+", help="model names, e.g. fmn04+TF:104 fmn04+BiGRU:104")
    parser.add_argument("--world", default="context", choices=("basic", "context", "context2"))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--warmup", type=int, default=30, help="LR warmup steps (30)")
    parser.add_argument("--clips", type=int, default=None,
                        help="labelled training clips (8,192; context2: 16,384)")
    parser.add_argument("--batch", type=int, default=None, help="clips per step (8; context2: 16)")
    parser.add_argument("--eval-clips", type=int, default=1000)
    parser.add_argument("--eval-seconds", type=float, default=None,
                        help="eval clip length (4 s, the training length, where the study evaluates)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--half", action="store_true",
                        help="store float16 weights (half the file; what is scored is the stored file)")
    parser.add_argument("--out", default=None, help="default data/checkpoints/<world>")
    parser.add_argument("--runs", default="runs/synth_teachers", help="fit() run folders")
    parser.add_argument("--no-ensemble", action="store_true", help="train and score members only")
    parser.add_argument("--init", default=None,
                        help="backbone to start from ({backbone}: its name); default OUT/<backbone>_synth")
    parser.add_argument("--evaluate-only", action="store_true", help="score existing files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out or ROOT / "data" / "checkpoints" / args.world)
    world = f"world={args.world}"
    v2 = args.world == "context2"
    clips, batch = args.clips or (16384 if v2 else 8192), args.batch or (16 if v2 else 8)
    data = f"synth:{clips}:0:{world},{NOISE}"
    audio = AudioConfig(clip_seconds=4.0)  # the quick profile's training clips
    eval_audio = AudioConfig(clip_seconds=args.eval_seconds or 4.0)
    evaluation = open_data(f"synth:{args.eval_clips}:0:{world}", "eval", eval_audio)
    table: dict[str, dict] = {}
    for i, name in enumerate(args.teachers):
        path = teacher_file(out, name)
        if not args.evaluate_only:
            t0 = time.perf_counter()
            backbone = Path(args.init.replace("{backbone}", name.split("+")[0]) if args.init
                            else out / f"{name.split('+')[0]}_synth.safetensors")
            cfg = replace(PRESETS["quick"], batch_size=batch, num_workers=0 if v2 else 1, max_lr=0.003,
                          lr_decay=0.9, warmup_steps=args.warmup, pretrained="scratch", seed=i)
            train = open_data(data, "train", audio)
            run = fit(name, train, out_dir=Path(args.runs) / path.stem,
                      train_config=cfg, audio_config=audio, max_steps=args.steps, init=backbone,
                      recalibrate_bn=64, resume=True,
                      run_info={"data": data, "script": "scripts/make_synth_teachers.py"})
            save_weights(run.model, path, model_name=name, classes=list(train.vocab.names),
                         extra={"step": str(run.step), "data": data, "init": project_relative(str(backbone)),
                                "bn_recalibrated": "64 train clips"}, half=args.half)
            print(f"{path}: {run.step} steps in {time.perf_counter() - t0:.0f} s", flush=True)
        model, _ = load_detector_model(name, path)
        meta = checkpoint_metadata(path)
        table[name] = {"file": path.name, "bytes": path.stat().st_size, "step": int(meta.get("step", 0)),
                       "init": meta.get("init"), **score(model, evaluation, eval_audio)}
    if not args.no_ensemble and len(args.teachers) > 1:
        members = [load_detector_model(n, teacher_file(out, n))[0] for n in args.teachers]
        table["ensemble"] = {"members": args.teachers, **score(MeanLogits(members), evaluation, eval_audio)}
    for name, row in table.items():
        print(f"{name:>22}: PSDS1 {row['psds1']:.2f}, PSDS1 macro {row['psds1_macro']:.2f} "
              f"± {row['psds1_macro_ci95']:.2f} ({args.eval_clips} eval clips)")
    classes = list(next(iter(table.values()))["per_class"])
    print("\n| model | macro | " + " | ".join(classes) + " |\n|---|---:|" + "---:|" * len(classes))
    for name, row in table.items():
        print(f"| {name} | {row['psds1_macro']:.1f} | " + " | ".join(
            f"{row['per_class'][c]:.1f} ({row['frame_auc'][c]:.1f})" for c in classes) + " |")
    if not args.no_ensemble:
        summary = out / "teachers.json"
        tmp = summary.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"eval": f"synth:{args.eval_clips}:0:{world}",
                                   "eval_seconds": eval_audio.clip_seconds, "train": data,
                                   "batch": batch, "teachers": table}, indent=2) + "\n")
        os.replace(tmp, summary)


if __name__ == "__main__":
    main()

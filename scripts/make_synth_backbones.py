"""Make the shipped pre-trained backbones ``data/checkpoints/<backbone>_synth.safetensors``.

The paper starts every model from a backbone pre-trained on AudioSet Weak (EfficientAT's
``fmnXX_weak.pt``); the quick study profile starts from these stand-ins instead: each backbone
alone (no sequence model) trained on the embedded synthetic set drawn with ANOTHER seed than
the study's training and evaluation clips (``synth:4000:1``; the study trains on ``synth:4000``
and evaluates on its eval split), BatchNorm statistics recalibrated, heads dropped (only
``model.fmn.*`` is saved, like ``fmnXX_weak.pt``: every model of the study gets fresh heads)::

    .venv/bin/python scripts/make_synth_backbones.py fmn02 fmn03 fmn04 --steps 1000

Deterministic for a given torch build and thread count (``--threads``, default 1).
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import replace
from pathlib import Path

import torch

from sedlib.config import AudioConfig
from sedlib.study.training import open_data
from sedlib.train.config import PRESETS
from sedlib.train.data import validate
from sedlib.train.fitting import fit
from sedlib.train.runs import save_weights

OUT = Path(__file__).resolve().parent.parent / "data" / "checkpoints"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backbones", nargs="+", help="e.g. fmn02 fmn03 fmn04")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--data", default="synth:4000:1")
    parser.add_argument("--eval-data", default="synth:100")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", default="runs/synth_backbones",
                        help="fit() run folders, one per backbone and --data (resumed if there)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    audio = AudioConfig(clip_seconds=4.0)  # the quick profile's clips
    cfg = replace(PRESETS["quick"], batch_size=8, num_workers=1, max_lr=0.006, lr_decay=0.0,
                  warmup_steps=30, wavmix_p=0.0, mixup_p=0.0, pretrained="scratch", seed=0)
    train = open_data(args.data, "train", audio)
    evaluation = open_data(args.eval_data, "eval", audio)
    for name in args.backbones:
        t0 = time.perf_counter()
        # keyed by the data too: a run of another world (or size) is never resumed
        folder = Path(args.runs) / f"{name}-{re.sub(r'[^A-Za-z0-9.=]+', '_', args.data)}"
        run = fit(name, train, out_dir=folder, train_config=cfg,
                  audio_config=audio, max_steps=args.steps, recalibrate_bn=64, resume=True,
                  run_info={"data": args.data, "script": "scripts/make_synth_backbones.py"})
        metrics = validate(run.model, evaluation, audio_config=audio,
                           batch_size=cfg.batch_size, median_window=cfg.median_window)
        path = save_weights(run.model, Path(args.out) / f"{name}_synth.safetensors",
                            model_name=name, classes=list(train.vocab.names), backbone_only=True,
                            extra={"step": str(run.step), "data": args.data,
                                   "bn_recalibrated": "64 train clips"})
        print(f"{path}: {run.step} steps in {time.perf_counter() - t0:.0f} s; {args.eval_data} "
              f"eval PSDS1 {100 * metrics['psds1']:.2f}, macro {100 * metrics['psds1_macro']:.2f}",
              flush=True)


if __name__ == "__main__":
    main()

"""Make the shipped pre-trained backbones ``data/checkpoints/<backbone>_synth.safetensors``.

The paper starts every model from a backbone pre-trained on AudioSet Weak (EfficientAT's
``fmnXX_weak.pt``); the quick study profile starts from these stand-ins instead: each backbone
alone (no sequence model) trained on the embedded synthetic set drawn with ANOTHER seed than
the study's training and evaluation clips (``synth:4000:1``; the study trains on ``synth:4000``
and evaluates on its eval split), BatchNorm statistics recalibrated, heads dropped (only
``model.fmn.*`` is saved, like ``fmnXX_weak.pt``: every model of the study gets fresh heads)::

    .venv/bin/python scripts/make_synth_backbones.py fmn02 fmn03 fmn04 --steps 1000

The context2 world's backbones (``data/checkpoints/context2/``) are pre-trained far longer, on
4x the distinct clips, so that a study model starts close to its end as the paper's do (its
backbones had 300 epochs of AudioSet Weak): each continues from the context world's backbone
of its width, batch 32, one process per backbone (two side by side, one thread each)::

    .venv/bin/python scripts/make_synth_backbones.py fmn02 --world context2 --steps 3000 \
        --init data/checkpoints/context/{backbone}_synth.safetensors

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
    parser.add_argument("--world", default="basic", choices=("basic", "context", "context2"))
    parser.add_argument("--data", default=None,
                        help="default synth:4000:1 (basic, context), synth:16384:1:world=context2")
    parser.add_argument("--eval-data", default=None, help="default synth:100 of the world")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.006)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--init", default=None,
                        help="start from these weights ({backbone}: the name); default: scratch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--half", action="store_true",
                        help="store float16 weights (half the file)")
    parser.add_argument("--runs", default="runs/synth_backbones",
                        help="fit() run folders, one per backbone and --data (resumed if there)")
    parser.add_argument("--out", default=None, help="default data/checkpoints[/<world>]")
    args = parser.parse_args()
    world = "" if args.world == "basic" else f":world={args.world}"
    args.data = args.data or (f"synth:16384:1{world}" if args.world == "context2" else f"synth:4000:1{world}")
    args.eval_data = args.eval_data or f"synth:100:0{world}"
    out = Path(args.out or (OUT if args.world == "basic" else OUT / args.world))
    torch.set_num_threads(args.threads)
    audio = AudioConfig(clip_seconds=4.0)  # the quick profile's clips
    cfg = replace(PRESETS["quick"], batch_size=args.batch, num_workers=0, max_lr=args.lr, lr_decay=0.0,
                  warmup_steps=args.warmup, wavmix_p=0.0, mixup_p=0.0, pretrained="scratch", seed=0)
    train = open_data(args.data, "train", audio)
    evaluation = open_data(args.eval_data, "eval", audio)
    for name in args.backbones:
        t0 = time.perf_counter()
        # keyed by the data too: a run of another world (or size) is never resumed
        folder = Path(args.runs) / f"{name}-{re.sub(r'[^A-Za-z0-9.=]+', '_', args.data)}"
        init = args.init.replace("{backbone}", name) if args.init else None
        if init:
            from sedlib.models.checkpoints import load_checkpoint
            from sedlib.registry import create_model

            model = create_model(name, num_classes=len(train.vocab))
            load_checkpoint(model, init, strict=False)  # the backbone; fresh heads
        run = fit(model if init else name, train, out_dir=folder, train_config=cfg,
                  audio_config=audio, max_steps=args.steps, recalibrate_bn=64, resume=True,
                  run_info={"data": args.data, "init": init, "script": "scripts/make_synth_backbones.py"})
        metrics = validate(run.model, evaluation, audio_config=audio,
                           batch_size=cfg.batch_size, median_window=cfg.median_window)
        path = save_weights(run.model, out / f"{name}_synth.safetensors",
                            model_name=name, classes=list(train.vocab.names), backbone_only=True,
                            extra={"step": str(run.step), "data": args.data, "init": str(init),
                                   "bn_recalibrated": "64 train clips"}, half=args.half)
        print(f"{path}: {run.step} steps in {time.perf_counter() - t0:.0f} s; {args.eval_data} "
              f"eval PSDS1 {100 * metrics['psds1']:.2f}, macro {100 * metrics['psds1_macro']:.2f}",
              flush=True)


if __name__ == "__main__":
    main()

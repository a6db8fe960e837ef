"""``sedlib finetune``: a detector for your own classes, from a released or shipped checkpoint.

    sedlib finetune --init data/checkpoints/context/fmn04+bigru-104_teacher.safetensors \\
        --data audacity:my_recordings --out runs/mine --steps 300
    sedlib detect --checkpoint runs/mine/model.safetensors new_recording.wav

The backbone and sequence model come from ``--init``, the heads are new; validation recordings
are held out by file (``--val-split``) or given (``--val-data``); ``model.safetensors`` holds the
best validation PSDS1 macro's weights with the class names (:mod:`sedlib.train.finetune`).
"""

from __future__ import annotations

import argparse

from sedlib.commands import positive_int

HELP = "fine-tune a checkpoint on your own classes (Audacity labels, mixed soundscapes, DESED folders)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--init", required=True, metavar="RELEASE_OR_FILE", help="starting weights (a release name or a file)")
    a("--data", required=True, metavar="SOURCE", help="strong-labelled data: audacity:DIR, a folder from "
      "sedlib mix, desed:..., (sedlib.data.spec grammar)")
    a("--out", required=True, metavar="RUN_DIR", help="run directory (model.safetensors: the best weights)")
    a("--model", help="model name if the checkpoint does not carry it")
    a("--classes", metavar="FILE", help="class names, one per line (default: the labels found, sorted); "
      "a label not in it is refused")
    a("--steps", type=positive_int, default=300, help="optimiser steps (300)")
    a("--val-split", type=float, default=0.2, help="fraction of the recordings held out for validation (0.2)")
    a("--val-data", metavar="SOURCE", help="validation data instead of a split (e.g. mixtures of held-out sounds)")
    a("--freeze-steps", type=int, default=0, help="first train this many steps with the backbone frozen")
    a("--validations", type=positive_int, default=5, help="validations during the run (5); the best is kept")
    a("--batch-size", type=positive_int, default=16)
    a("--lr", type=float, default=1e-3, help="max learning rate (1e-3)")
    a("--seed", type=int, default=0)
    a("--no-balance", action="store_true", help="plain BCE (no per-class positive weights)")
    a("--device", default="cpu")
    a("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from sedlib.errors import SedlibError
    from sedlib.train.finetune import finetune, per_class_table

    if args.freeze_steps < 0:
        raise SedlibError(f"--freeze-steps must be >= 0, got {args.freeze_steps}")
    vocab = None
    if args.classes:
        from pathlib import Path

        from sedlib.data.labels import read_class_list

        path = Path(args.classes)
        if not path.is_file():
            raise SedlibError(f"--classes {path}: no such file")
        vocab = read_class_list(path)
    result = finetune(args.init, args.data, args.out, steps=args.steps, val_fraction=args.val_split,
                      val_data=args.val_data, freeze_steps=args.freeze_steps, validations=args.validations,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed, model_name=args.model,
                      balance=not args.no_balance, vocab=vocab, device=args.device,
                      progress=not args.no_progress)
    print(per_class_table(result.best))
    print(f"{result.run_dir}/model.safetensors: {len(result.vocab)} classes ({', '.join(result.vocab.names)}); "
          f"sedlib detect --checkpoint {result.run_dir}/model.safetensors FILE")
    return 0

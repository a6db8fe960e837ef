"""The reference implementation's training step, timed on a fixed batch (for bench_train.py).

    .venv/bin/python benchmarks/reference_step.py --reference DIR --model fmn02+TF:64 \
        [--batch 8] [--clip-seconds 4] [--steps 12] [--threads 2]

``DIR`` is a checkout of the EfficientSED reference code (github.com/theMoro/EfficientSED),
kept outside this repository; it is imported only by this script, in its own process, never by
sedlib. One step is the body of the reference's ``PLModule.training_step`` with the quick
profile's augmentations (mel with band jitter, frame shift; no mixup, wavmix or masking):
``mel_forward`` -> ``frame_shift`` -> model -> ``BCEWithLogitsLoss`` -> backward -> Adam over the
reference's layer-wise LR groups (``layerwise_lr_decay`` + sequence/head group) -> zero_grad.
Data loading is not part of it (in the reference's favour). Prints one JSON line: median and
best step seconds, clips/s.

Two modules the reference imports are not installed here and are provided in-process:
``torchvision.ops.misc.ConvNormActivation`` (conv -> norm -> activation, torchvision's padding
rule) and ``mamba_ssm`` (unused by these models).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import sys
import time
import types


def _install_shims() -> None:
    import torch.nn as nn

    class ConvNormActivation(nn.Sequential):
        """torchvision's block: Conv2d (padding (k - 1) // 2 * dilation, bias only without a
        norm) -> norm -> activation (inplace)."""

        def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None,
                     groups=1, norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU, dilation=1,
                     inplace=True, bias=None):
            k = (kernel_size,) * 2 if isinstance(kernel_size, int) else tuple(kernel_size)
            d = (dilation,) * 2 if isinstance(dilation, int) else tuple(dilation)
            if padding is None:
                padding = tuple((ki - 1) // 2 * di for ki, di in zip(k, d))
            layers = [nn.Conv2d(in_channels, out_channels, k, stride, padding, dilation=d,
                                groups=groups, bias=norm_layer is None if bias is None else bias)]
            if norm_layer is not None:
                layers.append(norm_layer(out_channels))
            if activation_layer is not None:
                layers.append(activation_layer(**({} if inplace is None else {"inplace": inplace})))
            super().__init__(*layers)

    tv = types.ModuleType("torchvision")
    tv.ops = types.ModuleType("torchvision.ops")
    tv.ops.misc = types.ModuleType("torchvision.ops.misc")
    tv.ops.misc.ConvNormActivation = ConvNormActivation
    mamba = types.ModuleType("mamba_ssm")
    mamba.Mamba2 = None
    sys.modules.update({"torchvision": tv, "torchvision.ops": tv.ops,
                        "torchvision.ops.misc": tv.ops.misc, "mamba_ssm": mamba})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="EfficientSED checkout (outside the repo)")
    ap.add_argument("--model", default="fmn02+TF:64", help="fmnXX+TF:DIM")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--clip-seconds", type=float, default=4.0)
    ap.add_argument("--classes", type=int, default=11, help="strong classes (synth: 11)")
    ap.add_argument("--steps", type=int, default=12, help="timed steps (after 2 warm-up steps)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--lr-decay", type=float, default=0.9)
    args = ap.parse_args()
    match = re.fullmatch(r"fmn(\d\d)\+TF:(\d+)", args.model)
    if not match:
        raise SystemExit(f"--model {args.model!r}: expected fmnXX+TF:DIM")
    width, dim = int(match[1]) / 10, int(match[2])

    import torch

    torch.set_num_threads(args.threads)
    _install_shims()
    sys.path.insert(0, args.reference)
    import warnings

    warnings.filterwarnings("ignore")
    from helpers.augment import frame_shift
    from models.efficient_cnns.fmn.fmn_wrapper import FrameMNWrapper
    from models.prediction_wrapper import PredictionsWrapper

    torch.manual_seed(0)
    frames = int(args.clip_seconds * 100) // 4  # label frames: 10 ms hop, time pooling 4
    with contextlib.redirect_stdout(sys.stderr):  # the reference prints its model
        fmn = FrameMNWrapper(width)
        embed_dim = fmn.state_dict()["fmn.features.16.1.bias"].shape[0]
        model = PredictionsWrapper(fmn, checkpoint=None, seq_model_type="tf", seq_model_dim=dim,
                                   embed_dim=embed_dim, n_classes_strong=args.classes,
                                   seq_len=frames)
    model.train()
    groups = model.model.layerwise_lr_decay(args.lr, args.lr_decay)  # reference get_optimizer
    groups += [{"params": p, "lr": args.lr} for n, p in model.named_parameters()
               if not n.startswith("model.")]
    opt = torch.optim.Adam(groups, lr=args.lr, betas=(0.9, 0.999), weight_decay=0.0)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(1)
    audio = torch.randn(args.batch, int(args.clip_seconds * 16000), generator=gen) * 0.1
    labels = (torch.rand(args.batch, args.classes, frames, generator=gen) > 0.8).float()

    def step() -> None:
        mel = model.mel_forward(audio)
        mel, y, _ = frame_shift(mel, labels.clone(), pseudo_labels=torch.zeros_like(labels),
                                net_pooling=4, shift_range=0.125)
        strong, _ = model(mel)
        loss_fn(strong, y).backward()
        opt.step()
        opt.zero_grad()

    times = []
    for i in range(args.steps + 2):
        t0 = time.perf_counter()
        step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({"model": args.model, "median_s": med, "best_s": min(times),
                      "clips_per_s": args.batch / med, "params": sum(p.numel() for p in model.parameters()),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()

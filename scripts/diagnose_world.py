"""Diagnose why classes of a synthetic world are or are not learned (issue: detectors that work).

Each diagnosis is a measured comparison on VALIDATION clips (the eval clips stay for the study):

    # train one model per condition (resumable; one thread each, run two side by side)
    .venv/bin/python scripts/diagnose_world.py train clean --labels ""
    .venv/bin/python scripts/diagnose_world.py train noisy --labels miss=0.1,confuse=0.2,jitter=50
    # score a run (or any checkpoint) per class: PSDS1 at median windows 1..9, frame AUC,
    # on 4 s clips and on 10 s clips (more context at inference)
    .venv/bin/python scripts/diagnose_world.py score runs/diagnose/clean
    # one table of every scored run
    .venv/bin/python scripts/diagnose_world.py table
    # where in the patterns a model fails: frame AUC on sounding parts, labelled pauses, patterns
    # cut by the clip edge (fewer parts visible than identify the class), lone beeps vs tones,
    # lone beeps within 2 s of an alarm's or ringtone's tone vs lone beeps away from them
    .venv/bin/python scripts/diagnose_world.py parts runs/diagnose/clean

The model (default fmn02+BiGRU:64, the quick profile's sequence-model student shape) starts
from the world's shipped backbone with fresh sequence model and heads, batch 16, 4 s clips,
the quick profile's augmentations (frame shift; no wavmix, no mixup), layer-wise LR decay 0.9,
BatchNorm recalibrated on 64 clips before each validation.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sedlib.config import AudioConfig
from sedlib.study.training import open_data
from sedlib.train.class_report import class_report
from sedlib.train.config import PRESETS
from sedlib.train.fitting import fit
from sedlib.train.runs import save_weights

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "diagnose"
WINDOWS = (1, 3, 5, 7, 9)


def _train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    audio = AudioConfig(clip_seconds=4.0)
    options = ",".join(x for x in (f"world={args.world}", args.labels) if x)
    data = f"synth:{args.clips}:{args.data_seed}:{options}"
    val = open_data(f"synth:{args.val_clips}:0:world={args.world}", "validation", audio)
    cfg = replace(PRESETS["quick"], batch_size=args.batch, num_workers=0, max_lr=args.lr,
                  seq_lr=args.seq_lr, lr_decay=0.9, warmup_steps=args.warmup, pretrained="scratch",
                  wavmix_p=0.0, mixup_p=0.0, seed=args.seed)
    init = args.init or ROOT / "data" / "checkpoints" / args.world / f"{args.model.split('+')[0]}_synth.safetensors"
    out = RUNS / args.tag
    t0 = time.perf_counter()
    run = fit(args.model, open_data(data, "train", audio), out_dir=out, train_config=cfg,
              audio_config=audio, max_steps=args.steps, init=init, val_data=val,
              val_every=args.val_every, recalibrate_bn=64, resume=True, progress=False,
              run_info={"data": data, "script": "scripts/diagnose_world.py", "init": str(init)})
    save_weights(run.model, out / "final.safetensors", model_name=args.model,
                 classes=list(val.vocab.names),
                 extra={"step": str(run.step), "data": data})
    print(f"{args.tag}: {run.step} steps in {time.perf_counter() - t0:.0f} s", flush=True)


def _score(args: argparse.Namespace) -> None:
    from sedlib.detect.detector import load_detector_model

    torch.set_num_threads(args.threads)
    path = Path(args.run)
    weights = path / "final.safetensors" if path.is_dir() else path
    model, _ = load_detector_model(None, weights)
    report = {"weights": str(weights)}
    for seconds in args.seconds:
        audio = AudioConfig(clip_seconds=seconds)
        val = open_data(f"synth:{args.val_clips}:0:world={args.world}", "validation", audio)
        r = class_report(model, val, audio_config=audio, median_windows=WINDOWS)
        report[f"{seconds:g}s"] = {"frame_auc": r["frame_auc"],
                                   "psds": {w: {"psds1": p["psds1"], "psds1_macro": p["psds1_macro"],
                                                "per_class": p["psds1_per_class"]}
                                            for w, p in r["psds"].items()}}
    out = (path if path.is_dir() else RUNS / path.stem) / "report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"{out}")


def _table(args: argparse.Namespace) -> None:
    for report_file in sorted(RUNS.glob("*/report.json")):
        report = json.loads(report_file.read_text())
        for length, r in report.items():
            if length == "weights":
                continue
            classes = list(r["frame_auc"])
            print(f"\n{report_file.parent.name} ({length} clips)")
            print("| window | macro | " + " | ".join(classes) + " |")
            print("|---|---:|" + "---:|" * len(classes))
            print("| frame AUC | | " + " | ".join(f"{100 * r['frame_auc'][c]:.1f}" for c in classes) + " |")
            for w, p in r["psds"].items():
                print(f"| {w} | {100 * p['psds1_macro']:.1f} | "
                      + " | ".join(f"{100 * p['per_class'].get(c, float('nan')):.1f}" for c in classes) + " |")


def _auc(pos, neg) -> float:
    from sedlib.evaluate.frame_auc import frame_auc

    pos, neg = np.asarray(pos), np.asarray(neg)
    if not len(pos) or not len(neg):
        return float("nan")
    scores = np.concatenate([pos, neg])[None, None]
    return float(frame_auc(scores, np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])[None, None])[0])


@torch.no_grad()
def _parts(args: argparse.Namespace) -> None:
    from sedlib.audio.frontend import MelFrontend
    from sedlib.data.synth.patterns import IDENTIFYING_PARTS
    from sedlib.data.synth.soundscape import SynthConfig, synth_event_parts, synthesize_clip
    from sedlib.detect.detector import load_detector_model

    torch.set_num_threads(args.threads)
    path = Path(args.run)
    model, vocab = load_detector_model(None, path / "final.safetensors" if path.is_dir() else path)
    audio = AudioConfig(clip_seconds=args.seconds)
    config = SynthConfig(synth_world=args.world, synth_clip_seconds=args.seconds)
    frontend = MelFrontend(audio).eval()
    names = list(vocab.names)
    cells: dict[str, list[float]] = {}
    frame = audio.frame_seconds

    def add(key, values):
        cells.setdefault(key, []).extend(values)

    for start in range(0, args.val_clips, 16):
        idx = range(start, min(start + 16, args.val_clips))
        wave = torch.stack([torch.from_numpy(synthesize_clip(config, "validation", i)[0]) for i in idx])
        prob = torch.sigmoid(model.eval()(frontend(wave))[0]).numpy()  # (B, K, T)
        t = prob.shape[-1]
        centres = (np.arange(t) + 0.5) * frame
        for b, i in enumerate(idx):
            parts = synth_event_parts(config, "validation", i)
            for c, name in enumerate(names):
                inside = np.zeros(t, bool)
                sounding = np.zeros(t, bool)
                cut = np.zeros(t, bool)
                for event, segs in parts:
                    if event.label != name:
                        continue
                    span = (centres >= event.onset) & (centres < event.offset)
                    inside |= span
                    if len(segs) < IDENTIFYING_PARTS.get(name, 1):
                        cut |= span
                    for a, z in segs:
                        sounding |= (centres >= a - frame / 2) & (centres < z + frame / 2)
                add(f"{name}/neg", prob[b, c][~inside])
                add(f"{name}/sounding", prob[b, c][inside & sounding & ~cut])
                add(f"{name}/pause", prob[b, c][inside & ~sounding & ~cut])
                add(f"{name}/cut", prob[b, c][cut])
                if name == "beep":  # a lone beep's score on the tones of alarms and ringtones
                    tone_segs = [seg for e, segs in parts if e.label in ("alarm", "ringtone") for seg in segs]
                    tones = np.zeros(t, bool)
                    for a, z in tone_segs:
                        tones |= (centres >= a) & (centres < z)
                    add("beep/pattern_tones", prob[b, c][tones & ~inside])
                    # lone beeps within 2 s of an alarm's or ringtone's tone vs the others
                    for event, _ in parts:
                        if event.label == "beep":
                            span = (centres >= event.onset) & (centres < event.offset)
                            near = any(z > event.onset - 2 and a < event.offset + 2 for a, z in tone_segs)
                            add("beep/near_pattern" if near else "beep/alone", prob[b, c][span])
    rows = {}
    for name in names:
        neg = cells.get(f"{name}/neg", [])
        rows[name] = {kind: {"auc": _auc(cells.get(f"{name}/{kind}", []), neg),
                             "frames": len(cells.get(f"{name}/{kind}", []))}
                      for kind in ("sounding", "pause", "cut")}
    rows["beep"]["vs_pattern_tones"] = {"auc": _auc(cells["beep/sounding"], cells["beep/pattern_tones"]),
                                        "frames": len(cells["beep/pattern_tones"])}
    for kind in ("near_pattern", "alone"):  # a lone beep's frames vs every frame outside beeps
        rows["beep"][kind] = {"auc": _auc(cells.get(f"beep/{kind}", []), cells.get("beep/neg", [])),
                              "frames": len(cells.get(f"beep/{kind}", []))}
    out = (path if path.is_dir() else RUNS / path.stem) / f"parts_{args.seconds:g}s.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{path.name}, {args.val_clips} validation clips of {args.seconds:g} s: frame AUC (frames)")
    for name, r in rows.items():
        print(f"  {name:>12}: " + ", ".join(f"{k} {100 * v['auc']:.1f} ({v['frames']})" for k, v in r.items()
                                              if v["frames"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("tag")
    t.add_argument("--labels", default="", help="annotation noise options, e.g. miss=0.1,confuse=0.2,jitter=50")
    t.add_argument("--model", default="fmn02+BiGRU:64")
    t.add_argument("--world", default="context")
    t.add_argument("--init", default=None, help="weights to start from (default: the world's shipped backbone)")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--clips", type=int, default=8192)
    t.add_argument("--data-seed", type=int, default=0)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--seq-lr", type=float, default=None)
    t.add_argument("--warmup", type=int, default=30)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-clips", type=int, default=500)
    t.add_argument("--val-every", type=int, default=500)
    t.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("score")
    s.add_argument("run", help="a run folder of `train` or a checkpoint file")
    s.add_argument("--world", default="context")
    s.add_argument("--val-clips", type=int, default=500)
    s.add_argument("--seconds", type=float, nargs="+", default=[4.0, 10.0])
    s.add_argument("--threads", type=int, default=1)
    sub.add_parser("table")
    q = sub.add_parser("parts")
    q.add_argument("run", help="a run folder of `train` or a checkpoint file")
    q.add_argument("--world", default="context")
    q.add_argument("--val-clips", type=int, default=500)
    q.add_argument("--seconds", type=float, default=4.0)
    q.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    {"train": _train, "score": _score, "table": _table, "parts": _parts}[args.command](args)


if __name__ == "__main__":
    main()

"""``sedlib profile``: parameters, MACs (ours and DeepSpeed's), throughput and peak memory.

    sedlib profile fmn10 fmn10+TF:256 --batch-size 16 --threads 2
    sedlib profile 'fmn10+*' --no-throughput --json
    sedlib profile fmn10 --device cuda --dtype fp16            # the paper's setting (batch 64)

Names may be fnmatch patterns over :func:`sedlib.models.names.list_models` (quote them in a shell).
The table goes to stdout; ``--json`` prints a JSON list instead; ``--csv`` also writes a file.
"""

from __future__ import annotations

import argparse

HELP = "parameters, MACs, throughput and peak memory of models (the paper's complexity metrics)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME",
                        help="model names (fmn10, fmn10+TF:256) or patterns ('fmn10+*')")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default=None,
                        help="throughput precision; fp16/bf16 via autocast "
                             "(default fp32 on cpu, fp16 on cuda)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="clips per batch (default 64 on cuda, 16 on cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for timing (default: torch's current setting)")
    parser.add_argument("--repeats", type=int, default=5, help="timed batches (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches (default 2)")
    parser.add_argument("--no-throughput", action="store_true",
                        help="only parameters and MACs (fast)")
    parser.add_argument("--with-frontend", action="store_true",
                        help="time waveform -> mel -> model (default: model only)")
    parser.add_argument("--optimize", choices=("eager", "jit", "compile"), default=None,
                        help="time the sedlib.models.fuse inference copy (CPU only)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "openvino"), default="torch",
                        help="time the model exported to ONNX in this engine (CPU; default torch)")
    parser.add_argument("--no-deepspeed", action="store_true",
                        help="skip DeepSpeed's MAC count")
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    parser.add_argument("--csv", metavar="PATH", default=None,
                        help="also write all fields to a CSV file (atomically)")


def _expand(names: list[str]) -> list[str]:
    from sedlib.models.names import format_name, list_models, parse_name

    out: list[str] = []
    for name in names:
        if any(ch in name for ch in "*?["):
            matches = list_models(name)
            if not matches:
                raise ValueError(f"pattern {name!r} matches no model in list_models()")
            out.extend(matches)
        else:
            out.append(format_name(parse_name(name)))
    return out


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from sedlib.complexity.profile import format_table, profile_models, write_csv
    from sedlib.errors import SedlibError

    for flag in ("batch_size", "threads", "repeats"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise SedlibError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    if args.warmup < 0:
        raise SedlibError(f"--warmup must be >= 0, got {args.warmup}")
    try:
        names = _expand(args.names)
        device = torch.device(args.device)
    except (ValueError, RuntimeError) as err:
        raise SedlibError(str(err)) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SedlibError("--device cuda: no CUDA device is available to torch")
    if args.optimize and device.type != "cpu":
        raise SedlibError("--optimize applies to CPU inference only")
    if args.backend != "torch" and (args.optimize or device.type != "cpu"):
        raise SedlibError(f"--backend {args.backend} times CPU inference; drop --optimize/--device")
    dtype = args.dtype or ("fp16" if device.type == "cuda" else "fp32")
    try:
        profiles = profile_models(
            names, device=str(device), dtype=dtype, batch_size=args.batch_size,
            threads=args.threads, warmup=args.warmup, repeats=args.repeats,
            throughput=not args.no_throughput, include_frontend=args.with_frontend,
            deepspeed=not args.no_deepspeed, optimize=args.optimize, backend=args.backend,
        )
    except ImportError as err:  # DeepSpeed missing: the message says how to install or skip
        raise SedlibError(str(err)) from err
    if args.csv:
        path = write_csv(profiles, args.csv)
    if args.json:
        print(json.dumps([p.to_dict() for p in profiles], indent=1))
    else:
        print(format_table(profiles))
        if args.csv:
            print(f"wrote {path}")
    return 0

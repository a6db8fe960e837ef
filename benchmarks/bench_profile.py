"""Complexity table of the study's main configurations, checked against SPEC 3.1.

    .venv/bin/python benchmarks/bench_profile.py                 # CPU fp32, batch 16, 2 threads
    .venv/bin/python benchmarks/bench_profile.py --device cuda --dtype fp16 --batch-size 64

Prints the profile table (sedlib.complexity.profile.format_table), then parameters and MACs next to the
values measured for SPEC 3.1 (torch FlopCounter + analytic attention matmuls; MAMBA's parameter
count is SPEC section 3's analytic one; no MAMBA MACs are listed there).
"""

from __future__ import annotations

import argparse
import logging
import time

from sedlib.complexity.profile import format_table, profile_models, write_csv

NAMES = (
    "fmn04", "fmn06", "fmn10", "fmn20", "fmn30", "fmn10+TF:256", "fmn10+HYBRID:128",
    "fmn10+BiGRU:256", "fmn10+ATT:256", "fmn10+TCN:256", "fmn10+MAMBA:256",
)
# name -> (params total, total MACs in millions or None), SPEC 3.1 / section 3 (MAMBA)
SPEC = {
    "fmn04": (860_318, 224.2),
    "fmn06": (1_615_022, 440.9),
    "fmn10": (3_830_798, 1055.1),
    "fmn20": (13_359_254, 3839.6),
    "fmn30": (28_574_734, 8353.7),
    "fmn10+TF:256": (5_028_286, 1495.8),
    "fmn10+HYBRID:128": (3_801_806, 1171.9),
    "fmn10+BiGRU:256": (6_483_854, 1766.7),
    "fmn10+ATT:256": (3_976_382, 1233.6),
    "fmn10+TCN:256": (7_389_838, 2069.3),
    "fmn10+MAMBA:256": (4_310_206, None),
}


def spec_table(profiles) -> str:
    head = (f"{'model':18}  {'params':>11}  {'SPEC':>11}  {'MACs (M)':>9}  {'SPEC (M)':>9}  "
            f"{'diff %':>7}  {'DS (M)':>8}  {'DS gap (M)':>10}")
    lines = [head, "-" * len(head)]
    for p in profiles:
        spec_params, spec_macs = SPEC.get(p.name, (None, None))
        macs = p.macs / 1e6
        diff = "-" if spec_macs is None else f"{100 * (macs - spec_macs) / spec_macs:+.2f}"
        ds = "-" if p.macs_deepspeed is None else f"{p.macs_deepspeed / 1e6:.1f}"
        gap = "-" if p.macs_deepspeed is None else f"{(p.macs - p.macs_deepspeed) / 1e6:.1f}"
        lines.append(
            f"{p.name:18}  {p.params:>11,}  {spec_params or 0:>11,}  {macs:>9.1f}  "
            f"{'-' if spec_macs is None else f'{spec_macs:.1f}':>9}  {diff:>7}  {ds:>8}  {gap:>10}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--csv", default=None, help="also write all fields to this CSV")
    parser.add_argument("names", nargs="*", default=list(NAMES))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    t0 = time.perf_counter()
    profiles = profile_models(
        args.names, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
        threads=args.threads, warmup=args.warmup, repeats=args.repeats,
    )
    print(format_table(profiles))
    print()
    print(spec_table(profiles))
    print(f"\n{len(profiles)} models in {time.perf_counter() - t0:.0f} s")
    if args.csv:
        print(f"wrote {write_csv(profiles, args.csv)}")


if __name__ == "__main__":
    main()

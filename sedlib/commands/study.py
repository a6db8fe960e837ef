"""``sedlib study``: execute the numbered notebooks in order with a parameter profile.

    sedlib study                          # quick profile (CPU, embedded data, ~20 min)
    sedlib study --profile smoke --only 00
    sedlib study --profile quick --only 02,03 --out runs/mine --figures figures/mine

Each notebook is executed by papermill into the run folder (``--out``, default
``runs/study-<profile>-<time>``), never in place. A failing notebook is reported and the next one
runs; the exit status is 1 when any failed. Figures (HTML + PNG) go to ``--figures``
(default ``figures/``) with ``results.md``, the table of every model trained. Training runs are
cached by config hash in ``--cache`` (default ``runs/cache``), shared by all notebooks.

    sedlib study --profile paper --only 02 --executor slurm --slurm-partition gpu --slurm-gpus 1

``--executor slurm`` trains every uncached run as a SLURM job (submitit; the cache folder must
be shared with the nodes); the ``--slurm-*`` options replace the profile's ``slurm_*`` settings.
"""

from __future__ import annotations

import argparse

HELP = "run the notebook study (papermill) with a smoke / quick / paper profile"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick",
                        help="smoke | quick | classroom | paper, or a YAML file (default quick)")
    parser.add_argument("--only", default=None, metavar="NN[,NN]",
                        help="run only these notebooks, by number or stem (e.g. 02,03)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="run folder for executed notebooks (default runs/study-<profile>-<time>)")
    parser.add_argument("--figures", default="figures", metavar="DIR",
                        help="where figures and results.md go (default figures/)")
    parser.add_argument("--cache", default="runs/cache", metavar="DIR",
                        help="training-result cache shared by notebooks (default runs/cache)")
    parser.add_argument("--executor", choices=("local", "slurm"), default=None,
                        help="where uncached runs train: here, or one SLURM job each (default: the "
                             "profile's executor, else local)")
    slurm = parser.add_argument_group("SLURM job settings (per run; default: the profile's slurm_*)")
    slurm.add_argument("--slurm-partition", default=None, metavar="NAME")
    slurm.add_argument("--slurm-cpus", type=int, default=None, metavar="N", help="CPUs per run")
    slurm.add_argument("--slurm-gpus", type=int, default=None, metavar="N", help="GPUs per run")
    slurm.add_argument("--slurm-processes", type=int, default=None, metavar="N",
                       help="DDP processes per run (default: one per GPU), as torchrun starts them")
    slurm.add_argument("--slurm-mem-gb", type=float, default=None, metavar="GB", help="memory per run")
    slurm.add_argument("--slurm-time-min", type=int, default=None, metavar="MIN",
                       help="time limit per run (a run past it is requeued and resumes)")
    slurm.add_argument("--slurm-max-jobs", type=int, default=None, metavar="N",
                       help="runs at once (the job array's parallelism)")
    slurm.add_argument("--slurm-option", action="append", default=None, metavar="NAME=VALUE",
                       help="an extra sbatch option, e.g. qos=high (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    parser.add_argument("--claims-only", action="store_true",
                        help="run nothing: rewrite claims.md and the forest plot in --figures from its "
                             "results.jsonl (the study writes them after every run)")


def run(args: argparse.Namespace) -> int:
    if args.claims_only:
        return _claims_only(args.figures)
    from sedlib.study.runner import run_study

    only = args.only.split(",") if args.only else None
    report = run_study(args.profile, only=only, out=args.out, figures=args.figures,
                       cache_dir=args.cache, progress=not args.no_progress,
                       overrides=_executor_overrides(args))
    total = sum(report.seconds.values())
    print(f"\nstudy: {len(report.done)} notebook(s) done, {len(report.failed)} failed, "
          f"{total / 60:.1f} min; executed notebooks in {report.out}")
    print(f"results table: {report.summary}; figures in {report.figures}")
    if report.failed:
        print("failed notebooks:")
        for stem, why in report.failed.items():
            print(f"  {stem}: {why}  (see {report.out / (stem + '.ipynb')})")
        return 1
    return 0


def _executor_overrides(args: argparse.Namespace) -> dict:
    """The StudyConfig fields the command line sets (``--executor``, ``--slurm-*``)."""
    from sedlib.errors import SedlibError

    out = {name: value for name, value in vars(args).items()  # --executor and each --slurm-NAME
           if (name == "executor" or name.startswith("slurm_")) and name != "slurm_option" and value is not None}
    if args.slurm_option:
        options = {}
        for item in args.slurm_option:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise SedlibError(f"--slurm-option {item!r}: expected NAME=VALUE, e.g. qos=high")
            options[name.strip().lstrip("-")] = value
        out["slurm_options"] = options
    return out


def _claims_only(figures: str) -> int:
    from pathlib import Path

    from sedlib.errors import SedlibError
    from sedlib.study.claims_report import write_claims
    from sedlib.study.results import read_results_log
    from sedlib.study.runner import STORED_RESULTS

    path = Path(figures) / STORED_RESULTS
    if not path.is_file():
        raise SedlibError(f"{path}: no stored results (run `sedlib study` first, or point --figures at a "
                          f"folder holding {STORED_RESULTS})")
    try:
        rows = read_results_log(path)
        out = write_claims(rows, figures, title=f"The paper's claims (from {path})")
    except (ValueError, KeyError, TypeError) as err:  # json.JSONDecodeError is a ValueError
        raise SedlibError(f"{path}: not a study results file ({type(err).__name__}: {err})") from err
    if not out:
        print(f"{path}: its runs test none of the paper's claims; nothing written")
        return 0
    print(f"wrote {', '.join(str(p) for p in out.values())}")
    return 0

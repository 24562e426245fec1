"""The ``reproduce`` sub-command of ``lavan`` (``python -m lab``): arguments to :class:`Options`, one run per experiment."""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from .runner import Options


def _doc() -> str:
    from . import __doc__ as doc

    return doc


def _out_for_record(out) -> str | None:
    """``--out`` as a report records it: relative to the working folder (the repository) when inside it, else
    ``OUT`` — a stored command never carries a path of the machine that ran it (reports are shown to visitors)."""
    if out is None:
        return None
    path = Path(out)
    if not path.is_absolute():
        return str(out)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return "OUT"


def _command(args) -> str:
    parts = ["python -m lab reproduce", args.name]
    for flag, val in (("--quick", args.quick), ("--out", _out_for_record(args.out)), ("--seed", args.seed), ("--model", args.model),
                      ("--device", args.device), ("--max-iter", args.max_iter), ("--configs", args.configs),
                      ("--batch", args.batch), ("--targets", args.targets), ("--threads", args.threads),
                      ("--time-budget", args.time_budget), ("--report-only", args.report_only),
                      ("--restarts", getattr(args, "restarts", None)),
                      ("--engine", None if getattr(args, "engine", "local") == "local" else args.engine),
                      ("--address", getattr(args, "address", None))):
        if val is True:
            parts.append(flag)
        elif val not in (None, False):
            parts.append(f"{flag} {shlex.quote(str(val))}")
    if args.variants:
        parts.append("--variants " + " ".join(args.variants))
    if getattr(args, "models", None):
        parts.append("--models " + " ".join(shlex.quote(m) for m in args.models))
    return " ".join(parts)


def cmd_reproduce(args) -> int:
    if args.out is None:  # a smoke run never resumes into (or overwrites) the committed full reports
        args.out = str(Path("reports") / "quick") if args.quick else "reports"
    if args.address and args.engine != "ray":
        raise ValueError("--address names a Ray cluster: use it with --engine ray")
    from ..experiments import EXPERIMENTS
    from . import run_experiment

    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    results = {}
    for name in names:
        sub = argparse.Namespace(**{**vars(args), "name": name})
        opts = Options(name=name, out=Path(args.out), quick=args.quick, seed=args.seed, model=args.model,
                       device=args.device, max_iter=args.max_iter, configs=args.configs, batch=args.batch,
                       variants=tuple(args.variants) if args.variants else None, targets=args.targets,
                       threads=args.threads, report_only=args.report_only, time_budget=args.time_budget,
                       restarts=args.restarts, engine=args.engine, address=args.address, command=_command(sub),
                       models=tuple(args.models) if args.models else None)
        results[name] = run_experiment(opts)
        if not args.json:
            print(f"{name}: wrote {Path(args.out) / (name + '.md')}")
    if args.json:
        print(json.dumps(results[names[0]] if len(names) == 1 else results, default=str))
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``reproduce`` on the ``lavan`` sub-command parser."""
    p = subparsers.add_parser("reproduce", help="run (or resume) one of the paper's experiments and write its report",
                              description=_doc(), formatter_class=argparse.RawDescriptionHelpFormatter)
    from ..experiments import EXPERIMENTS
    from ..experiments.single import VARIANTS

    p.add_argument("name", choices=list(EXPERIMENTS) + ["all"])
    p.add_argument("--quick", action="store_true", help="tiny version for the test suite (2 configs, 10 iterations)")
    p.add_argument("--out", default=None,
                   help="folder for <name>.csv/.md/.png/.json (default: reports, or reports/quick with --quick)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="efficientnet-lite0",
                   help="the model every experiment but crossmodel attacks: efficientnet-lite0/1/2 or torchvision:<name> "
                        "(e.g. torchvision:inception_v3, the paper's; weights from the torch hub cache, see "
                        "`python -m attack models`)")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="crossmodel: the models of the matrix (default: efficientnet-lite0 lite1 lite2)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--max-iter", type=int, default=None,
                   help="iteration cap per config / step cap for universal patches (default 1000, quick 10; paper 10,000)")
    p.add_argument("--restarts", type=int, default=None,
                   help="patches per config under successive halving; --max-iter is then the budget of forward+backward "
                        "evaluations, restarts x iterations (default: auto, 1 at the default area or larger, 8 below)")
    p.add_argument("--configs", type=int, default=None,
                   help="configs per variant / per class / per model (default: single 100, classes 3, crossmodel 10)")
    p.add_argument("--batch", type=int, default=None, help="configs trained together (default 8, quick 2)")
    p.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS),
                   help="single: which geometry/domain variants (default: all four; quick: app-network)")
    p.add_argument("--targets", type=int, default=None, help="universal/brown/classes: number of target classes")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for this run")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop training after this many seconds: running configs end at the iteration reached, which "
                        "is recorded as their cap; configs not started are left for a later run (e.g. a lent GPU's "
                        "fixed slot)")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="where chunks of --batch configs train (single, classes, crossmodel): local = this process; "
                        "ray = Ray tasks, a GPU each when the cluster has GPUs (needs `pip install ray`; "
                        "docs/SCALE.md). Rows land in the same resumable CSV either way")
    p.add_argument("--address", default=None,
                   help="--engine ray: the Ray cluster to join (e.g. ray://head:10001 or auto; default: start a local "
                        "Ray instance for this run)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: rewrite the report from the rows already in the CSV")
    p.set_defaults(func=cmd_reproduce)
    return p

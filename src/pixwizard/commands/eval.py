"""``pixwizard eval --suite NAME|FILE --model SPEC --out DIR``: predict, score and report a suite.

The run goes to ``OUT/<suite>/<model tag>`` (e.g. ``/tmp/q/quick/baseline-auto``); other runs of
the same suite under ``OUT`` (and ``--compare`` folders) appear beside it in ``report.md``.
Rerunning the same command resumes: finished items are neither regenerated nor predicted again.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model or a baseline on a suite",
                       description="Evaluate a model or a classical baseline on an evaluation suite "
                                   "(resumable), then write metrics.json, report.md and grid.png.")
    p.add_argument("--suite", help="built-in suite name (see --list) or a suite JSON file")
    p.add_argument("--list", action="store_true", help="list the built-in suites and exit")
    p.add_argument("--model", default="default",
                   help="default (shipped weights), a checkpoint path, baseline:NAME or baseline:auto")
    p.add_argument("--out", help="output root; the run goes to OUT/<suite>/<model tag>")
    p.add_argument("--limit", type=int, help="at most N items per task")
    p.add_argument("--size", type=int,
                   help="make a generated suite's items at N px (the run goes to OUT/<suite>-<N>px/<model tag>)")
    p.add_argument("--photos", action="append", help="folder of clean photos for photo tasks (repeatable)")
    p.add_argument("--data-root", help="dataset folder for benchmark suites (native published layout)")
    p.add_argument("--steps", type=int, help="sampling steps for a model (default: the model's for each task)")
    p.add_argument("--shifts", type=int, choices=(1, 2, 4),
                   help="half-patch shift ensemble for a model (default: the model's for each task; see pixwizard run --help)")
    p.add_argument("--tile", type=int, metavar="PX",
                   help="run a model in PX x PX tiles at the item's own resolution (see pixwizard run --help)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    p.add_argument("--compare", action="append", default=[],
                   help="another run folder (or a folder of runs) of the same suite to show in the report")
    p.add_argument("--grid-per-task", type=int, default=2, help="sample rows per task in grid.png (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="predict here, or in chunks of items as Ray tasks (pip install 'pixwizard[ray]'; docs/ray.md)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray runtime)")
    p.add_argument("--chunk-size", type=int, default=16, help="items per Ray task (--engine ray)")
    p.set_defaults(func=main)


def list_suites() -> int:
    from pixwizard.eval.suites import load_suite, suite_names

    for name in suite_names():
        s = load_suite(name)
        print(f"{name:20s} {s.kind:9s} {len(s.tasks):2d} tasks  {s.description}")
    return 0


def main(args: argparse.Namespace) -> int:
    from pixwizard.eval.harness import evaluate, make_predictor
    from pixwizard.eval.report import write_report
    from pixwizard.eval.suites import at_size, load_suite

    if args.list:
        return list_suites()
    if not args.suite or not args.out:
        raise ValueError("give --suite NAME|FILE and --out DIR (or --list)")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    if args.grid_per_task < 0:
        raise ValueError(f"--grid-per-task must be >= 0, got {args.grid_per_task}")
    suite = at_size(load_suite(args.suite), args.size)
    predictor = make_predictor(args.model, device=args.device, steps=args.steps, shifts=args.shifts,
                               tile=args.tile)
    run_dir = Path(args.out) / suite.name / predictor.tag
    t0 = time.perf_counter()
    if args.engine == "ray":
        from pixwizard.eval.engine_ray import evaluate_ray

        metrics, stats = evaluate_ray(suite, args.model, predictor, run_dir, limit=args.limit, photo_dirs=args.photos,
                                      data_root=args.data_root, device=args.device, steps=args.steps,
                                      shifts=args.shifts, tile=args.tile, chunk_size=args.chunk_size, address=args.address,
                                      progress=not args.no_progress)
    elif args.address:
        raise ValueError("--address needs --engine ray")
    else:
        metrics, stats = evaluate(suite, predictor, run_dir, limit=args.limit, photo_dirs=args.photos,
                                  data_root=args.data_root, progress=not args.no_progress)
    report = write_report(run_dir, args.compare, per_task=args.grid_per_task)
    dt = time.perf_counter() - t0
    print(f"{suite.name} / {predictor.tag}: {stats.generated} generated, {stats.predicted} predicted, "
          f"{stats.reused} reused, {len(stats.failed)} failed in {dt:.1f} s")
    for key, reason in list(stats.failed.items())[:10]:
        print(f"  failed {key}: {reason}", file=sys.stderr)
    print(f"wrote {run_dir / 'metrics.json'} and {report}")
    return 0

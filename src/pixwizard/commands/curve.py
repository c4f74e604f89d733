"""``pixwizard curve``: the training campaign's learning curve and compute ledger.

``pixwizard curve add --label L --samples N --cpu-hours H EVAL_RUN...`` summarises ``pixwizard eval``
run folders into a ledger row; ``pixwizard curve show`` prints the ledger as a markdown table and
draws the plot (``--plot PNG``); ``pixwizard curve compare NEW_RUN REF_RUN`` says whether one
evaluated checkpoint beats another beyond item noise (paired bootstrap; ``pixwizard.eval.paired``).
"""

from __future__ import annotations

import argparse

DEFAULT_LEDGER = "docs/learning-curve.json"


def _add(args: argparse.Namespace) -> int:
    from pixwizard.train.curve import add_row, load_ledger, save_ledger, summarize_eval

    suites = dict(summarize_eval(d) for d in args.eval_runs)
    row = {"label": args.label, "samples": args.samples, "cpu_hours": args.cpu_hours, "machine": args.machine,
           "precision": args.precision, "note": args.note, "shipped": not args.not_shipped, "suites": suites}
    save_ledger(add_row(load_ledger(args.ledger), row), args.ledger)
    print(f"{args.ledger}: row {args.label!r} with {', '.join(sorted(suites))}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from pixwizard.train.curve import draw_learning_curve, load_ledger, markdown_table

    ledger = load_ledger(args.ledger)
    print(markdown_table(ledger), end="")
    if args.plot:
        print(f"wrote {draw_learning_curve(ledger, args.plot)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from pixwizard.eval.paired import compare_runs, format_comparison

    tasks, groups = compare_runs(args.new_run, args.ref_run, n_boot=args.boot, seed=args.seed)
    if args.json:
        print(json.dumps({"tasks": [{k: v for k, v in vars(t).items() if not k.endswith("_values")} | {"diff": t.diff}
                                    for t in tasks],
                          "groups": [vars(g) | {"diff": g.diff, "beyond_noise": g.beyond_noise} for g in groups]},
                         indent=1))
    else:
        print(format_comparison(tasks, groups, Path(args.new_run).name, Path(args.ref_run).name), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("curve", help="learning curve and compute ledger of the training campaign",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="curve_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add (or replace) a checkpoint's row from eval run folders")
    add.add_argument("eval_runs", nargs="+", metavar="EVAL_RUN", help="pixwizard eval run folders (OUT/SUITE/MODEL)")
    add.add_argument("--label", required=True, help="the checkpoint's name in the table")
    add.add_argument("--samples", type=int, required=True, help="training samples behind the weights (cumulative)")
    add.add_argument("--cpu-hours", type=float, required=True, help="training hours behind the weights (cumulative)")
    add.add_argument("--machine", default="", help="machine kind, e.g. '2 cores, AMX'")
    add.add_argument("--precision", default="", help="training precision (fp32, bf16)")
    add.add_argument("--note", default="", help="what this stretch changed")
    add.add_argument("--not-shipped", action="store_true", help="these weights were not shipped (a branch)")
    add.add_argument("--ledger", default=DEFAULT_LEDGER, help=f"ledger JSON (default {DEFAULT_LEDGER})")
    add.set_defaults(func=_add)
    show = sub.add_parser("show", help="print the ledger as a markdown table, optionally draw it")
    show.add_argument("--ledger", default=DEFAULT_LEDGER, help=f"ledger JSON (default {DEFAULT_LEDGER})")
    show.add_argument("--plot", default=None, metavar="PNG", help="also draw the learning curve here")
    show.set_defaults(func=_show)
    cmp = sub.add_parser("compare", help="is NEW_RUN better than REF_RUN beyond item noise? (paired bootstrap)")
    cmp.add_argument("new_run", metavar="NEW_RUN", help="pixwizard eval run folder of the candidate")
    cmp.add_argument("ref_run", metavar="REF_RUN", help="run folder of the same suite and items to compare with")
    cmp.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    cmp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    cmp.add_argument("--json", action="store_true", help="print JSON instead of the table")
    cmp.set_defaults(func=_compare)

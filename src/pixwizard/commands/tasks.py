"""``pixwizard tasks``: list the tasks by domain with their metrics; ``pixwizard tasks route TEXT``
routes an instruction to a task and prints the confidence (warning, with the closest tasks, when
it is low)."""

from __future__ import annotations

import argparse
import json
import sys

from pixwizard.tasks.registry import tasks_by_domain


def register(subparsers) -> None:
    parser = subparsers.add_parser("tasks", help="list tasks, or route an instruction to a task",
                                   description=__doc__)
    parser.set_defaults(func=_list)
    sub = parser.add_subparsers(dest="tasks_command", metavar="ACTION")
    sub.add_parser("list", help="list tasks by domain with their metrics (default)").set_defaults(func=_list)
    route = sub.add_parser("route", help="route an instruction to a task")
    route.add_argument("instruction", help="the instruction, e.g. \"remove the rain\"")
    route.add_argument("--threshold", type=float, default=0.5,
                       help="confidence below which a warning names the closest tasks (default 0.5)")
    route.add_argument("--json", action="store_true", help="print the route as JSON")
    route.set_defaults(func=_route)


def _list(args: argparse.Namespace) -> int:
    for domain, specs in tasks_by_domain().items():
        print(f"{domain} ({specs[0].paper_share:.0%} of the paper's data)")
        width = max(len(s.id) for s in specs)
        for s in specs:
            names = list(s.slots) + [f"[{o}]" for o in s.optional_slots]  # [optional]
            slots = f"  slots: {', '.join(names)}" if names else ""
            print(f"  {s.id:<{width}}  {s.source:<5}  codec {s.codec:<8} metrics: {', '.join(s.metrics)}{slots}")
    return 0


def _route(args: argparse.Namespace) -> int:
    if not args.instruction.strip():
        raise ValueError("the instruction is empty")
    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
    from pixwizard.tasks.routing import default_router

    route = default_router().route(args.instruction, threshold=args.threshold)
    if args.json:
        print(json.dumps({"task": route.task, "confidence": round(route.confidence, 4),
                          "low_confidence": route.low_confidence, "no_match": route.no_match,
                          "similarity": None if route.similarity is None else round(route.similarity, 4),
                          "alternatives": [[t, round(p, 4)] for t, p in route.alternatives]}))
    else:
        print(f"{route.task}\t{route.confidence:.2f}")
    if route.no_match:
        print(f"warning: {route.message()}", file=sys.stderr)
    elif route.low_confidence:
        close = ", ".join(f"{t} ({p:.2f})" for t, p in route.alternatives)
        print(f"warning: low confidence {route.confidence:.2f} for {route.task}; closest tasks: {close}",
              file=sys.stderr)
    return 0

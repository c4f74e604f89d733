"""``pixwizard bench model|data|train``: benchmarks that print JSON figures."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks that print JSON figures")
    bsub = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    m = bsub.add_parser("model", help="latency/memory of the model, sampler on/off, vs diffusers Lumina-Next")
    m.add_argument("--preset", default="tiny")
    m.add_argument("--device", default=None)
    m.add_argument("--repeats", type=int, default=5)
    m.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke check)")
    m.set_defaults(func=_model)
    d = bsub.add_parser("data", help="triplets per second per generator on one core")
    d.add_argument("--size", type=int, default=256)
    d.add_argument("--seconds", type=float, default=2.0, help="seconds per generator")
    d.add_argument("--photos", action="append", default=[], help="folder(s) of photos for photo tasks")
    d.add_argument("--tasks", nargs="*", default=None)
    d.set_defaults(func=_data)
    t = bsub.add_parser("train", help="training samples per second at the training resolution")
    t.add_argument("--preset", default="tiny")
    t.add_argument("--size", type=int, default=64)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--device", default=None)
    t.set_defaults(func=_train)


def _model(args: argparse.Namespace) -> int:
    from pixwizard.benchmarks.model import bench_model

    print(json.dumps(bench_model(args.preset, args.device, args.repeats, quick=args.quick), indent=2))
    return 0


def _data(args: argparse.Namespace) -> int:
    from pixwizard.data.bench import bench_generators

    bench_generators(size=args.size, seconds_per_task=args.seconds, tasks=args.tasks, photo_dirs=args.photos)
    return 0


def _train(args: argparse.Namespace) -> int:
    from pixwizard.train.bench import bench_training

    print(json.dumps(bench_training(preset=args.preset, size=args.size, batch=args.batch, steps=args.steps,
                                    device=args.device), indent=2))
    return 0

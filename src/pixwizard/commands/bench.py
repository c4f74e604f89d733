"""``pixwizard bench model|data|train|serve``: benchmarks that print JSON figures."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks that print JSON figures")
    bsub = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    m = bsub.add_parser("model", help="latency/memory of the model, sampler on/off, vs diffusers Lumina-Next")
    m.add_argument("--preset", default="tiny", help="model preset to time (default tiny)")
    m.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    m.add_argument("--repeats", type=int, default=5, help="timed repeats per size; the median is shown (default 5)")
    m.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke check)")
    m.add_argument("--checkpoint", help="--preset official: a converted checkpoint, to time the whole pipeline")
    m.add_argument("--sizes", type=int, nargs="*", help="--preset official: bucket resolutions "
                   "(default 512 768 1024 on a GPU, 256 on the CPU)")
    m.add_argument("--offload", action="store_true", help="--preset official: sequential CPU offload of the parts")
    m.add_argument("--exact", action="store_true", help="--preset official: three branches (exact-compat)")
    m.set_defaults(func=_model)
    d = bsub.add_parser("data", help="triplets per second per generator on one core")
    d.add_argument("--size", type=int, default=256, help="item side in pixels (default 256)")
    d.add_argument("--seconds", type=float, default=2.0, help="seconds per generator")
    d.add_argument("--photos", action="append", default=[], help="folder(s) of photos for photo tasks")
    d.add_argument("--tasks", nargs="*", default=None, help="task ids to time (default: every generator)")
    d.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="ray: build throughput of the Ray engine beside the local process pool (docs/ray.md)")
    d.add_argument("--address", help="--engine ray: Ray cluster address (default: RAY_ADDRESS, else a local runtime)")
    d.add_argument("--items-per-task", type=int, default=4, help="--engine ray: items of each task per build")
    d.add_argument("--workers", type=int, default=None, help="--engine ray: local pool size (default: all CPUs)")
    d.add_argument("--scratch", help="--engine ray: folder for the two builds (shared storage on a cluster)")
    d.set_defaults(func=_data)
    t = bsub.add_parser("train", help="training samples per second at the training resolution")
    t.add_argument("--preset", default="tiny", help="model preset to train (default tiny)")
    t.add_argument("--size", type=int, default=64, help="training crop side in pixels (default 64)")
    t.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    t.add_argument("--steps", type=int, default=10, help="timed optimiser steps (default 10)")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    t.add_argument("--compile", action="store_true", help="torch.compile the model (as train --compile); "
                   "the compile happens in the untimed warm-up steps and is reported separately")
    t.set_defaults(func=_train)
    s = bsub.add_parser("serve", help="loopback load test of the REST API: latency, throughput, /healthz while busy")
    s.add_argument("--url", help="a running server on this machine (default: start one here on 127.0.0.1)")
    s.add_argument("--checkpoint", help="model for the server started here (default: the shipped pixwizard-tiny)")
    s.add_argument("--device", default=None, help="device of the server started here (default: cuda if present)")
    s.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    s.add_argument("--requests", type=int, default=200, help="requests in all (default 200)")
    s.add_argument("--size", type=int, default=64, help="side of the square test image (default 64)")
    s.add_argument("--instruction", default="remove the noise",
                   help='instruction of every request (default "remove the noise")')
    s.add_argument("--task", help="task to decode as (default: routed)")
    s.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    s.set_defaults(func=_serve)


def _model(args: argparse.Namespace) -> int:
    if args.preset in ("official", "official-2b"):
        from pixwizard.benchmarks.official import bench_official

        print(json.dumps(bench_official(args.device, args.sizes, repeats=min(args.repeats, 3), exact=args.exact,
                                        checkpoint=args.checkpoint, offload=args.offload), indent=2))
        return 0
    from pixwizard.benchmarks.model import bench_model

    print(json.dumps(bench_model(args.preset, args.device, args.repeats, quick=args.quick), indent=2))
    return 0


def _data(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        from pixwizard.data.bench_ray import bench_build_engines

        print(json.dumps(bench_build_engines(size=args.size, items_per_task=args.items_per_task, tasks=args.tasks,
                                             photo_dirs=args.photos, workers=args.workers, address=args.address,
                                             scratch=args.scratch), indent=1))
        return 0
    from pixwizard.data.bench import bench_generators

    bench_generators(size=args.size, seconds_per_task=args.seconds, tasks=args.tasks, photo_dirs=args.photos)
    return 0


def _train(args: argparse.Namespace) -> int:
    from pixwizard.train.bench import bench_training

    print(json.dumps(bench_training(preset=args.preset, size=args.size, batch=args.batch, steps=args.steps,
                                    device=args.device, compile=args.compile), indent=2))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from pixwizard.serve.bench import bench_serve

    report = bench_serve(args.url, checkpoint=args.checkpoint, device=args.device, clients=args.clients,
                         requests=args.requests, size=args.size, instruction=args.instruction, task=args.task,
                         steps=args.steps)
    print(json.dumps(report, indent=2))
    if report["failed"] or report["lost"] or report["healthz_while_busy_ms"]["failed"]:
        print(f"pixwizard bench serve: {report['failed']} failed, {report['lost']} lost requests", file=sys.stderr)
        return 1
    return 0

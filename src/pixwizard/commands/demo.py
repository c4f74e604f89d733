"""``pixwizard demo``: the main job on example images, with the embedded default model."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser("demo", help="run instructions from several domains on example images")
    p.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    p.add_argument("--checkpoint", help="model checkpoint (default: the shipped pixwizard-tiny)")
    p.add_argument("--size", type=int, default=128, help="example image size in pixels (default 128)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pixwizard.demo import run_demo
    from pixwizard.pipeline import UNTRAINED_WARNING

    res = run_demo(args.out, args.checkpoint, args.size, args.device)
    if res["untrained"]:
        print(f"warning: {UNTRAINED_WARNING}", file=sys.stderr)
    if res["notice"]:
        print(f"note: {res['notice']}", file=sys.stderr)
    print(f"PixWizard demo: {len(res['files']) // 3} jobs; outputs in {args.out}/")
    print(f"side-by-side sheet (input | output | target): {res['sheet']}")
    return 0

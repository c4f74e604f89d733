"""``pixwizard train``: two-stage training from built shards (one process; torchrun for several)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from pixwizard.train.run import run_from_args

    return run_from_args(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    from pixwizard.train.run import add_arguments

    parser = subparsers.add_parser("train", help="train PixWizard (two stages, resumable)", description=__doc__)
    add_arguments(parser)
    parser.set_defaults(func=_run)

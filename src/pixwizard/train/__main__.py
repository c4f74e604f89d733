"""``python -m pixwizard.train`` / ``torchrun --nproc-per-node N -m pixwizard.train``: the trainer."""

from __future__ import annotations

import argparse
import sys

from pixwizard.train.run import add_arguments, run_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixwizard.train", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"pixwizard.train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

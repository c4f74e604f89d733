"""The ``pixwizard`` command: thin wrappers, one module per command under ``pixwizard.commands``.

Each module in ``pixwizard.commands`` defines ``register(subparsers)``, adding its sub-command
and setting ``func`` on its parser; ``func(args)`` returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from pixwizard import __version__, commands


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixwizard", description="PixWizard: one image, one free-form instruction, one image back "
                                      "(restoration, grounding, dense prediction, editing, generation).")
    parser.add_argument("--version", action="version", version=f"pixwizard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"pixwizard.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError, PermissionError) as e:
        print(f"pixwizard {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pixwizard {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

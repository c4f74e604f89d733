"""The ``pixwizard`` command: thin wrappers, one module per command under ``pixwizard.commands``.

Each module in ``pixwizard.commands`` defines ``register(subparsers)``, adding its sub-command
and setting ``func`` on its parser; ``func(args)`` returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import sys

from pixwizard import __version__, commands


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit code 2, no traceback."""


_RST_LITERAL = re.compile(r"``([^`]+)``")
_RST_INLINE = re.compile(r"`([^`]+)`")


def plain_text(text: str) -> str:
    """Help text as a terminal shows it: ``literal`` -> literal, `name` -> 'name' (the command
    modules' docstrings double as descriptions and are written in reStructuredText)."""
    return _RST_INLINE.sub(r"'\1'", _RST_LITERAL.sub(r"\1", text))


class _PlainFormatter(argparse.HelpFormatter):
    def _format_text(self, text: str) -> str:
        return super()._format_text(plain_text(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return plain_text(super()._expand_help(action))


class _PlainRawFormatter(argparse.RawDescriptionHelpFormatter, _PlainFormatter):
    pass


class _Parser(argparse.ArgumentParser):
    """Every (sub)parser prints its help without reStructuredText markup."""

    def __init__(self, *args, **kwargs) -> None:
        raw = kwargs.get("formatter_class") is argparse.RawDescriptionHelpFormatter
        kwargs["formatter_class"] = _PlainRawFormatter if raw else _PlainFormatter
        super().__init__(*args, **kwargs)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of the command ``only`` alone when a module of that name
    exists (``main`` does so: ``pixwizard run`` imports no other command's module, a faster start)."""
    parser = _Parser(
        prog="pixwizard", description="PixWizard: one image, one free-form instruction, one image back "
                                      "(restoration, grounding, dense prediction, editing, generation).")
    parser.add_argument("--version", action="version", version=f"pixwizard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    names = sorted(info.name for info in pkgutil.iter_modules(commands.__path__))
    for name in ([only] if only in names else names):
        module = importlib.import_module(f"pixwizard.commands.{name}")
        module.register(sub)
    return parser


PASSIVE_WAIT_COMMANDS = ("run", "demo")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in PASSIVE_WAIT_COMMANDS and "torch" not in sys.modules:
        # OpenMP threads that sleep rather than spin while waiting: on a busy machine spinning threads
        # fight the other processes (measured: a 256x256 run 12.7 s -> 3.6 s wall at load 7 on 2 cores)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser(only=argv[0] if argv and not argv[0].startswith("-") else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, OSError) as e:  # OSError: missing files, permissions, a full disk
        print(f"pixwizard {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pixwizard {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (an OSError without a message gets its errno text)."""
    text = str(e) if not isinstance(e, OSError) or e.strerror is None or e.filename is None \
        else f"{e.filename}: {e.strerror}"
    return " ".join(text.split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())

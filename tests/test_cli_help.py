"""Help pages (issue 10, item 19): no reStructuredText markup, every option explained; the run note
names a model card that is installed with the package."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import pixwizard
from pixwizard.cli import build_parser, plain_text

COVERED = ("run", "eval", "data", "tasks", "train", "demo", "ablate", "bench")


def _parsers(parser: argparse.ArgumentParser, name: str):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def _all():
    return list(_parsers(build_parser(), "pixwizard"))


def test_help_pages_show_no_rst_markup():
    for name, parser in _all():
        text = parser.format_help()
        assert "``" not in text and "`" not in text, f"{name} --help shows markup"
    assert plain_text("see ``pixwizard tasks`` or `run`") == "see pixwizard tasks or 'run'"


@pytest.mark.parametrize("command", COVERED)
def test_every_option_has_help_text(command):
    lacking = [f"{name} {a.option_strings or a.dest}" for name, parser in _all()
               if name.split()[1:2] == [command]
               for a in parser._actions
               if not isinstance(a, (argparse._SubParsersAction, argparse._HelpAction)) and not a.help]
    assert lacking == []


def test_the_checkpoint_note_names_the_installed_model_card():
    from pixwizard.pipeline import with_installed_docs

    installed = Path(pixwizard.__file__).parent / "MODEL_CARD.md"
    assert installed.is_file(), "MODEL_CARD.md is not installed with the package"
    note = with_installed_docs("an early checkpoint; see MODEL_CARD.md")
    assert note == f"an early checkpoint; see {installed}"
    assert with_installed_docs(None) is None and with_installed_docs("no card named") == "no card named"

"""Sub-commands of the pixwizard CLI (discovered by pixwizard.cli)."""

from __future__ import annotations

import json


def json_object_option(text: str, option: str, what: str) -> dict:
    """The JSON object a command-line option holds, or a clear error naming the option (``what``
    says what the object maps, e.g. "mapping task id -> weight")."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{option} is not valid JSON (want a JSON object {what}): {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{option} must be a JSON object {what}, got {value!r}")
    return value


def name_list_option(text: str) -> tuple[str, ...]:
    """The comma-separated names a command-line option holds, stripped, empty parts skipped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def int_list_option(text: str, option: str, what: str) -> tuple[int, ...]:
    """The comma-separated integers a command-line option holds (empty parts skipped), or a clear
    error naming the option (``what`` says what they are, e.g. "integers")."""
    try:
        return tuple(int(part) for part in name_list_option(text))
    except ValueError:
        raise ValueError(f"{option} must be comma-separated {what}, got {text!r}") from None

"""The named colours used everywhere a colour is named: instructions, overlays, boxes, world objects.

One table, so that "mark the cube in blue" always means the same RGB in the data generator, the
target codecs and the decoders. Values are sRGB uint8 triples; names are lower-case English and
``grey`` / ``gray`` are both accepted.
"""

from __future__ import annotations

import re

import numpy as np

NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 35),
    "green": (30, 190, 60),
    "blue": (30, 80, 230),
    "yellow": (250, 225, 25),
    "orange": (250, 140, 20),
    "purple": (140, 40, 190),
    "pink": (250, 120, 190),
    "cyan": (20, 220, 230),
    "magenta": (230, 30, 220),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "grey": (128, 128, 128),
    "brown": (140, 85, 40),
}

_ALIASES = {"gray": "grey"}


def colour_names() -> tuple[str, ...]:
    """Canonical colour names, in table order."""
    return tuple(NAMED_COLOURS)


def colour_rgb(name: str) -> np.ndarray:
    """RGB of a named colour as a uint8 array of shape (3,). Raises ValueError for an unknown name."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in NAMED_COLOURS:
        raise ValueError(f"unknown colour {name!r}; known colours: {', '.join(NAMED_COLOURS)}")
    return np.array(NAMED_COLOURS[key], dtype=np.uint8)


_COLOUR_WORD = re.compile(r"[a-z]+")


def colour_in_text(text: str) -> str | None:
    """The last colour name of the table mentioned in ``text`` (aliases resolved), or None.

    Instructions name the highlight colour after the object ("tint the red cube blue"), so the
    last mention is the one to draw or look for."""
    found = None
    for word in _COLOUR_WORD.findall(text.lower()):
        word = _ALIASES.get(word, word)
        if word in NAMED_COLOURS:
            found = word
    return found

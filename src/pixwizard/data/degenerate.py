"""Degenerate triplets: an item whose input already is its target (a shadow that missed the crop,
colourising a grey photo) teaches nothing, and scores PSNR inf for the identity (a task mean of inf).

``unchanged_fraction(input, target)`` is the fraction of pixel positions where the two differ in
any channel; an item is degenerate when it is below ``MIN_CHANGED_FRACTION`` (0.1 % of the
pixels; every generator changes at least ~1 % on real photos, measured over the 28 photo tasks).
The data builder and the evaluation suites draw such an item again from the same seeded streams
(a new photo, crop and degradation), at most ``MAX_DRAWS`` times, then give up with
``DegenerateItemError`` (a ValueError: the item is counted as failed, never written).
"""

from __future__ import annotations

import numpy as np

MIN_CHANGED_FRACTION = 1e-3
MAX_DRAWS = 8


class DegenerateItemError(ValueError):
    """Every draw of an item gave an input equal (or nearly equal) to its target."""


def changed_fraction(input_image: np.ndarray, target: np.ndarray) -> float:
    """Fraction of the HxW positions where ``input_image`` and ``target`` differ in any channel."""
    a, b = np.asarray(input_image), np.asarray(target)
    if a.shape != b.shape:
        return 1.0  # not comparable pixel for pixel: never the same picture
    diff = a != b
    return float((diff.any(axis=-1) if diff.ndim == 3 else diff).mean())


def is_degenerate(input_image: np.ndarray, target: np.ndarray) -> bool:
    """True when fewer than ``MIN_CHANGED_FRACTION`` of the pixels differ (module doc)."""
    return changed_fraction(input_image, target) < MIN_CHANGED_FRACTION

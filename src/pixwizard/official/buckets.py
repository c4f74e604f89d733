"""The original PixWizard inference's aspect buckets.

For a bucket resolution R (512, 768 or 1024) the original lists sizes W x H in multiples of 16
with about R^2 pixels, walking a staircase from 2R x R/2 to R/2 x 2R: raise H by 16 where
W * (H + 16) <= R^2, else lower W by 16 (this reproduces its 768 table entry for entry). An
image goes to the bucket whose W/H is nearest its own (first one on ties), and is resized to it
with LANCZOS. The proportional-attention base of the bucket is (R // 16)^2 tokens.
"""

from __future__ import annotations

from functools import lru_cache

STEP = 16


@lru_cache(maxsize=8)
def buckets(resolution: int) -> tuple[tuple[int, int], ...]:
    """(W, H) sizes of the staircase for ``resolution`` (the square included)."""
    if resolution < 2 * STEP or resolution % (2 * STEP):
        raise ValueError(f"bucket resolution must be a multiple of {2 * STEP}, got {resolution}")
    area = resolution * resolution
    w, h = 2 * resolution, resolution // 2
    out = [(w, h)]
    while (w, h) != (resolution // 2, 2 * resolution):
        if w * (h + STEP) <= area:
            h += STEP
        else:
            w -= STEP
        out.append((w, h))
    return tuple(out)


def nearest_bucket(width: int, height: int, resolution: int = 768) -> tuple[int, int]:
    """The (W, H) bucket whose aspect ratio is nearest ``width / height``."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    target = width / height
    best, diff = None, float("inf")
    for w, h in buckets(resolution):
        d = abs(w / h - target)
        if d < diff:
            best, diff = (w, h), d
    assert best is not None
    return best

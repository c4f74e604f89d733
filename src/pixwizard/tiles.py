"""Overlapping tiles with seamless blending, for running the model on large images at their own
resolution instead of downscaling them to the working-size limit.

``tile_boxes(h, w, tile, overlap)`` covers the image with ``tile x tile`` boxes (smaller where
the image is), neighbours overlapping by at least ``overlap`` pixels, the last row and column
flush with the far edges. ``blend_tiles`` runs a function on every box and averages the outputs
with weights that ramp linearly over the overlap from every side (``feather``), so a pixel's
value moves smoothly from one tile's answer to the next one's; pixels covered by one tile get
that tile's value exactly. Both are pure: no model here.

``shift_windows`` weights the passes of a half-patch shift ensemble (the pipeline's ``shifts``):
each pass counts little near its own patch borders and fully at its patch centres, so the blend
takes every pixel mostly from the passes for which it lies inside a patch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

DEFAULT_OVERLAP = 32  # pixels, when the caller does not say


def default_overlap(tile: int) -> int:
    """The overlap used when none is given: 32 px, at most a quarter of the tile."""
    return min(DEFAULT_OVERLAP, tile // 4)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with windows of ``min(tile, length)``."""
    if tile < 1 or overlap < 0 or overlap >= tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got tile {tile}, overlap {overlap}")
    if length <= tile:
        return [0]
    n = -(-(length - overlap) // (tile - overlap))  # ceil: windows needed at stride tile - overlap
    last = length - tile
    return [round(i * last / (n - 1)) for i in range(n)]  # spread evenly: overlaps >= ``overlap``


def tile_boxes(h: int, w: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(y0, x0, y1, x1) boxes, row by row."""
    return [(y, x, min(y + tile, h), min(x + tile, w))
            for y in tile_starts(h, tile, overlap) for x in tile_starts(w, tile, overlap)]


def feather(th: int, tw: int, overlap: int) -> np.ndarray:
    """th x tw weights in (0, 1]: a linear ramp over ``overlap`` pixels from each side."""
    def ramp(n: int) -> np.ndarray:
        i = np.arange(n, dtype=np.float64)
        if overlap == 0:
            return np.ones(n)
        return np.minimum(1.0, np.minimum(i + 1, n - i) / (overlap + 1))
    return np.outer(ramp(th), ramp(tw))


def blend_tiles(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], tile: int,
                overlap: int) -> tuple[np.ndarray, int]:
    """Apply ``fn`` (HxWxC array -> HxWxC float array of the same size) tile by tile and blend.
    Returns (the blended float64 image, the number of tiles)."""
    h, w = image.shape[:2]
    boxes = tile_boxes(h, w, tile, overlap)
    acc: np.ndarray | None = None
    weight = np.zeros((h, w, 1))
    for y0, x0, y1, x1 in boxes:
        out = np.asarray(fn(image[y0:y1, x0:x1]), dtype=np.float64)
        if out.shape[:2] != (y1 - y0, x1 - x0):
            raise ValueError(f"a tile of {y1 - y0}x{x1 - x0} came back as {out.shape[0]}x{out.shape[1]}")
        if acc is None:
            acc = np.zeros((h, w, out.shape[2]))
        wt = feather(y1 - y0, x1 - x0, overlap)[..., None]
        acc[y0:y1, x0:x1] += out * wt
        weight[y0:y1, x0:x1] += wt
    return acc / weight, len(boxes)


def shift_windows(offsets: list[tuple[int, int]], h: int, w: int, period: int, strength: float = 1.0) -> np.ndarray:
    """(n, h, w) blending weights for ``n`` passes run on the image shifted by ``offsets`` (dy, dx)
    pixels, each with patch borders every ``period`` pixels; they sum to 1 at every pixel.
    ``strength`` mixes them with the plain mean: 0 gives 1/n everywhere, 1 the windows below.

    A pass's raw weight is sin^2(pi (u + 0.5) / period) along each axis, ``u`` the pixel's position
    inside that pass's patch (``(y + dy) mod period``): about 0.04 on its border rows and columns, 1
    at its patch centres. For passes half a period apart these are a partition of unity along an
    axis (sin^2 + cos^2), so the four half-patch offsets need no normalising; two diagonal passes
    are normalised by their sum, which stays above 0.07 everywhere. One pass gets weight 1."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"shift window strength must be in [0, 1], got {strength!r}")
    if len(offsets) == 1:
        return np.ones((1, h, w))
    ys, xs = np.arange(h), np.arange(w)
    raw = np.stack([np.outer(np.sin(np.pi * (((ys + dy) % period) + 0.5) / period) ** 2,
                             np.sin(np.pi * (((xs + dx) % period) + 0.5) / period) ** 2) for dy, dx in offsets])
    return (1.0 - strength) / len(offsets) + strength * raw / raw.sum(axis=0, keepdims=True)

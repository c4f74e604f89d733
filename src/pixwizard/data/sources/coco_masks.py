"""COCO segmentation formats -> boolean masks (no pycocotools needed).

A COCO ``segmentation`` field is one of
- polygons: ``[[x1, y1, x2, y2, ...], ...]`` in pixel coordinates where pixel ``(r, c)``
  covers ``[c, c+1) x [r, r+1)``; a pixel is inside when its centre ``(c+0.5, r+0.5)`` is,
  which matches pycocotools' area (an axis-aligned ``w x h`` rectangle fills ``w*h`` pixels).
  Rasterised with ``skimage.draw.polygon`` (``cv2.fillPoly`` also fills boundary pixels, which
  overshoots the area by a perimeter row);
- uncompressed RLE: ``{"size": [h, w], "counts": [int, ...]}``;
- compressed RLE: ``{"size": [h, w], "counts": "<string>"}`` (pycocotools' LEB128-like text
  form, 5 bits per character offset by 48, runs after the second stored as differences to the
  run two before).

RLE runs alternate 0s and 1s starting with 0s, over the mask in column-major (Fortran) order.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from skimage.draw import polygon as draw_polygon


def rle_string_to_counts(text: str | bytes) -> list[int]:
    """Decode pycocotools' compressed RLE string into run lengths (``rleFrString``)."""
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    p = 0
    while p < len(data):
        x = 0
        k = 0
        more = True
        while more:
            if p >= len(data):
                raise ValueError("compressed RLE string ends inside a value")
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def counts_to_rle_string(counts: Sequence[int]) -> str:
    """Encode run lengths as pycocotools' compressed RLE string (``rleToString``)."""
    out = []
    for i, value in enumerate(counts):
        x = int(value) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_counts_to_mask(counts: Sequence[int], size_hw: Sequence[int]) -> np.ndarray:
    """Run lengths (0s first, column-major) -> HxW bool mask."""
    h, w = int(size_hw[0]), int(size_hw[1])
    runs = np.asarray(counts, dtype=np.int64)
    if runs.sum() != h * w or (runs < 0).any():
        raise ValueError(f"RLE runs sum to {int(runs.sum())}, expected {h}*{w}={h * w}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape((w, h)).T.copy()


def mask_to_rle_counts(mask: np.ndarray) -> list[int]:
    """HxW bool mask -> run lengths (0s first, column-major); inverse of ``rle_counts_to_mask``."""
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    return [int(r) for r in runs]


def polygons_to_mask(polygons: Sequence[Sequence[float]], size_hw: Sequence[int]) -> np.ndarray:
    """COCO polygons (each a flat ``[x1, y1, x2, y2, ...]`` list) -> HxW bool mask (union)."""
    h, w = int(size_hw[0]), int(size_hw[1])
    mask = np.zeros((h, w), dtype=bool)
    for poly in polygons:
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(xy) < 3:
            continue  # degenerate polygon (pycocotools gives it zero area too)
        rr, cc = draw_polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape=(h, w))
        mask[rr, cc] = True
    return mask


def segmentation_to_mask(segmentation: Any, size_hw: Sequence[int]) -> np.ndarray:
    """Any COCO ``segmentation`` value -> HxW bool mask at image size ``size_hw``."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, size_hw)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        rle_hw = segmentation.get("size", size_hw)
        if [int(v) for v in rle_hw] != [int(v) for v in size_hw]:
            raise ValueError(f"RLE size {list(rle_hw)} differs from the image size {list(size_hw)}")
        counts = segmentation["counts"]
        if isinstance(counts, (str, bytes)):
            counts = rle_string_to_counts(counts)
        return rle_counts_to_mask(counts, size_hw)
    raise ValueError(f"unrecognised COCO segmentation of type {type(segmentation).__name__}")


def xywh_to_xyxy(bbox: Sequence[float]) -> list[float]:
    x, y, w, h = (float(v) for v in bbox)
    return [x, y, x + w, y + h]

"""Inpainting and outpainting: ``inpaint_freeform``, ``inpaint_box``, ``inpaint_circle``, ``outpaint``.

Every sample has ``input`` = the photo with the hole filled by one flat value, black (0) or
white (255) with equal probability, ``truth["image"]`` = the clean photo and ``truth["mask"]`` =
the HxW bool hole (True = to be filled). ``slots["colour"]`` names the fill ("black"/"white").
Sizes are fractions of the short side (or of the width/height for boxes and outpainting).
- freeform (DeepFill v2 / LaMa irregular masks): 1-5 brush strokes of 2-8 segments each,
  segment length 5-25%, brush width 3-10%, round joints, heading changing by up to 90 deg.
- box: 1-2 axis-aligned rectangles, each side 20-60% of the image side, fully inside.
- circle: 1-3 discs, radius 8-30%, centres inside the image.
- outpaint: a centred crop is kept and the border is the hole; the layout is ``all`` (kept
  width and height 40-80% each, so the aspect ratio varies), ``horizontal`` (full height,
  30-75% of the width) or ``vertical`` (full width, 30-75% of the height).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pixwizard.data.photo.common import integer, jsonable, photo_task, uniform
from pixwizard.data.sample import Sample

FILLS = {"black": 0, "white": 255}
STROKES = (1, 5)
STROKE_SEGMENTS = (2, 8)
STROKE_LENGTH = (0.05, 0.25)
STROKE_WIDTH = (0.03, 0.10)
STROKE_TURN = np.pi / 2
BOXES = (1, 2)
BOX_SIDE = (0.2, 0.6)
CIRCLES = (1, 3)
CIRCLE_RADIUS = (0.08, 0.3)
OUTPAINT_KEEP_BOTH = (0.4, 0.8)
OUTPAINT_KEEP_ONE = (0.3, 0.75)
# layout -> (range of the kept width fraction, range of the kept height fraction); None = keep all
OUTPAINT_LAYOUTS: dict[str, tuple[tuple[float, float] | None, tuple[float, float] | None]] = {
    "all": (OUTPAINT_KEEP_BOTH, OUTPAINT_KEEP_BOTH),
    "horizontal": (OUTPAINT_KEEP_ONE, None),
    "vertical": (None, OUTPAINT_KEEP_ONE),
}


def freeform_mask(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Random brush strokes; returns (HxW bool mask, params)."""
    side = min(h, w)
    canvas = np.zeros((h, w), np.uint8)
    strokes = []
    for _ in range(integer(rng, STROKES)):
        width = max(1, int(round(uniform(rng, STROKE_WIDTH) * side)))
        pts = [(uniform(rng, (0, w - 1)), uniform(rng, (0, h - 1)))]
        heading = uniform(rng, (0, 2 * np.pi))
        for _ in range(integer(rng, STROKE_SEGMENTS)):
            heading += uniform(rng, (-STROKE_TURN, STROKE_TURN))
            length = uniform(rng, STROKE_LENGTH) * side
            x, y = pts[-1]
            pts.append((float(np.clip(x + length * np.cos(heading), 0, w - 1)),
                        float(np.clip(y + length * np.sin(heading), 0, h - 1))))
        ipts = np.round(pts).astype(np.int32)
        for a, b in zip(ipts[:-1], ipts[1:]):
            cv2.line(canvas, tuple(a.tolist()), tuple(b.tolist()), 255, width)
        for p in ipts:
            cv2.circle(canvas, tuple(p.tolist()), width // 2, 255, -1)
        strokes.append({"width": width, "points": ipts.tolist()})
    return canvas > 0, {"strokes": strokes}


def box_mask(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """1-2 rectangles fully inside the image; returns (mask, params with xyxy boxes)."""
    mask = np.zeros((h, w), bool)
    boxes = []
    for _ in range(integer(rng, BOXES)):
        bw = max(1, int(round(uniform(rng, BOX_SIDE) * w)))
        bh = max(1, int(round(uniform(rng, BOX_SIDE) * h)))
        x0, y0 = integer(rng, (0, w - bw)), integer(rng, (0, h - bh))
        mask[y0:y0 + bh, x0:x0 + bw] = True
        boxes.append([x0, y0, x0 + bw, y0 + bh])
    return mask, {"boxes": boxes}


def circle_mask(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """1-3 discs with centres inside the image; returns (mask, params)."""
    side = min(h, w)
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    mask = np.zeros((h, w), bool)
    circles = []
    for _ in range(integer(rng, CIRCLES)):
        cx, cy = uniform(rng, (0, w - 1)), uniform(rng, (0, h - 1))
        r = max(uniform(rng, CIRCLE_RADIUS) * side, 1.0)
        mask |= (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
        circles.append({"cx": cx, "cy": cy, "r": r})
    return mask, {"circles": circles}


def outpaint_mask(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Border hole around a centred kept crop; returns (mask, params with the kept xyxy box)."""
    layout = str(rng.choice(tuple(OUTPAINT_LAYOUTS)))
    fw, fh = (1.0 if r is None else uniform(rng, r) for r in OUTPAINT_LAYOUTS[layout])
    kw, kh = max(1, int(round(fw * w))), max(1, int(round(fh * h)))
    x0, y0 = (w - kw) // 2, (h - kh) // 2
    mask = np.ones((h, w), bool)
    mask[y0:y0 + kh, x0:x0 + kw] = False
    return mask, {"layout": layout, "keep": [x0, y0, x0 + kw, y0 + kh]}


def _masked_sample(task: str, clean: np.ndarray, mask: np.ndarray, params: dict[str, Any],
                   rng: np.random.Generator) -> Sample:
    fill = str(rng.choice(tuple(FILLS)))
    degraded = clean.copy()
    degraded[mask] = FILLS[fill]
    return Sample(task=task, input=degraded, truth={"image": clean.copy(), "mask": mask},
                  slots={"colour": fill},
                  meta={"params": jsonable({**params, "fill": fill, "hole_fraction": float(mask.mean())})})


@photo_task
def inpaint_freeform(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Free-form brush-stroke hole filled black or white; target = clean, truth mask = hole."""
    mask, params = freeform_mask(*clean.shape[:2], rng)
    return _masked_sample("inpaint_freeform", clean, mask, params, rng)


@photo_task
def inpaint_box(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Rectangular hole(s) filled black or white; target = clean, truth mask = hole."""
    mask, params = box_mask(*clean.shape[:2], rng)
    return _masked_sample("inpaint_box", clean, mask, params, rng)


@photo_task
def inpaint_circle(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Circular hole(s) filled black or white; target = clean, truth mask = hole."""
    mask, params = circle_mask(*clean.shape[:2], rng)
    return _masked_sample("inpaint_circle", clean, mask, params, rng)


@photo_task
def outpaint(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Centred crop kept, border filled black or white; target = clean, truth mask = border."""
    mask, params = outpaint_mask(*clean.shape[:2], rng)
    return _masked_sample("outpaint", clean, mask, params, rng)

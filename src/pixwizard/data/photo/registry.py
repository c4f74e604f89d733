"""The photo task registry: task id -> generator, and the shared source-photo crop.

Every generator is a seeded pure function ``(clean HxWx3 uint8, rng) -> Sample``; see the
module of each family for the parameter ranges. Typical use (one item of a shard)::

    rng = np.random.default_rng(seed)
    clean = prepare_photo(load_photo(path), 256, rng)   # one crop; degraded and target align
    sample = PHOTO_GENERATORS["derain"](clean, rng)

No generator returns a degenerate triplet (input equal to its target, ``pixwizard.data.degenerate``:
a shadow that missed the crop, a grey photo to colourise, a white crop to sketch): a degenerate draw
is drawn again with the same ``rng`` (new parameters; at most ``MAX_DRAWS`` draws, one for the
``DETERMINISTIC_TASKS``), then ``DegenerateItemError`` says the crop cannot make this task and the
caller (data builder, evaluation suites) takes another photo or crop. A first draw that is not
degenerate is returned as before, so existing items stay byte-identical.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from pixwizard.data.degenerate import MAX_DRAWS, DegenerateItemError, changed_fraction, is_degenerate
from pixwizard.data.photo import artifacts, blur, edges, masks, noise, style, weather
from pixwizard.data.photo.common import PhotoGenerator, check_photo
from pixwizard.data.sample import Sample

RESTORATION_TASKS = ("denoise", "derain", "raindrop_removal", "dehaze", "deblur_motion",
                     "deblur_defocus", "deblur_gaussian", "desnow", "lowlight", "sr_x2", "sr_x4",
                     "jpeg_artifact", "deshadow", "watermark_removal", "demoire", "colorize")
DENSE_TASKS = ("canny", "sketch")
CONTROL_TASKS = ("canny_to_image", "sketch_to_image")
STYLE_TASKS = ("style_sketch", "style_watercolor", "style_oil", "style_cartoon")
INPAINT_TASKS = ("inpaint_freeform", "inpaint_box", "inpaint_circle", "outpaint")
PHOTO_TASKS = RESTORATION_TASKS + DENSE_TASKS + CONTROL_TASKS + STYLE_TASKS + INPAINT_TASKS

#: Generators that draw nothing from ``rng``: their output depends on the photo only.
DETERMINISTIC_TASKS = frozenset({"sr_x2", "sr_x4", "colorize"})

_GENERATORS: dict[str, PhotoGenerator] = {
    "denoise": noise.denoise,
    "derain": weather.derain,
    "raindrop_removal": weather.raindrop_removal,
    "dehaze": weather.dehaze,
    "deblur_motion": blur.deblur_motion,
    "deblur_defocus": blur.deblur_defocus,
    "deblur_gaussian": blur.deblur_gaussian,
    "desnow": weather.desnow,
    "lowlight": noise.lowlight,
    "sr_x2": artifacts.sr_x2,
    "sr_x4": artifacts.sr_x4,
    "jpeg_artifact": artifacts.jpeg_artifact,
    "deshadow": artifacts.deshadow,
    "watermark_removal": artifacts.watermark_removal,
    "demoire": artifacts.demoire,
    "colorize": artifacts.colorize,
    "canny": edges.canny,
    "sketch": edges.sketch,
    "canny_to_image": edges.canny_to_image,
    "sketch_to_image": edges.sketch_to_image,
    "style_sketch": style.style_sketch,
    "style_watercolor": style.style_watercolor,
    "style_oil": style.style_oil,
    "style_cartoon": style.style_cartoon,
    "inpaint_freeform": masks.inpaint_freeform,
    "inpaint_box": masks.inpaint_box,
    "inpaint_circle": masks.inpaint_circle,
    "outpaint": masks.outpaint,
}


def redrawing(task: str, fn: PhotoGenerator) -> PhotoGenerator:
    """``fn`` drawn again while its input equals its target (module doc); DegenerateItemError at last."""
    draws = 1 if task in DETERMINISTIC_TASKS else MAX_DRAWS

    @functools.wraps(fn)
    def generate(clean: np.ndarray, rng: np.random.Generator) -> Sample:
        for _ in range(draws):
            sample = fn(clean, rng)
            if not is_degenerate(sample.input, sample.truth["image"]):
                return sample
        raise DegenerateItemError(
            f"{task}: this {clean.shape[1]}x{clean.shape[0]} crop gives an input equal to its target in "
            f"{draws} draw(s) ({changed_fraction(sample.input, sample.truth['image']):.3%} of the pixels differ)")

    return generate


PHOTO_GENERATORS: dict[str, PhotoGenerator] = {task: redrawing(task, fn) for task, fn in _GENERATORS.items()}


def prepare_photo(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square ``size`` x ``size`` uint8 crop of a source photo (HxWx3 uint8 RGB).

    The crop side is drawn log-uniformly between ``min(size, short side)`` (native resolution,
    fine texture kept) and the short side (the whole scene), its position uniformly, then it
    is resized to ``size`` (area filter when shrinking, bicubic when enlarging) and flipped
    left-right with probability 0.5. Degrade the returned crop: input and target then align.
    """
    check_photo(img, "img")
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    h, w = img.shape[:2]
    side = min(h, w)
    lo = min(size, side)
    crop = int(round(np.exp(rng.uniform(np.log(lo), np.log(side))))) if side > lo else side
    y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    patch = img[y0:y0 + crop, x0:x0 + crop]
    if crop != size:
        interp = cv2.INTER_AREA if crop > size else cv2.INTER_CUBIC
        patch = cv2.resize(patch, (size, size), interpolation=interp)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(patch)

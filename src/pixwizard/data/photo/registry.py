"""The photo task registry: task id -> generator, and the shared source-photo crop.

Every generator is a seeded pure function ``(clean HxWx3 uint8, rng) -> Sample``; see the
module of each family for the parameter ranges. Typical use (one item of a shard)::

    rng = np.random.default_rng(seed)
    clean = prepare_photo(load_photo(path), 256, rng)   # one crop; degraded and target align
    sample = PHOTO_GENERATORS["derain"](clean, rng)
"""

from __future__ import annotations

import cv2
import numpy as np

from pixwizard.data.photo import artifacts, blur, edges, masks, noise, style, weather
from pixwizard.data.photo.common import PhotoGenerator, check_photo

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

PHOTO_GENERATORS: dict[str, PhotoGenerator] = {
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

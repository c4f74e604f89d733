"""Edge and line-art maps, both directions: ``canny``, ``sketch`` (photo -> map, dense prediction)
and ``canny_to_image``, ``sketch_to_image`` (map -> photo, controllable generation).

- canny (random thresholds, as ControlNet trains with, but relative to the image's contrast so
  that low-contrast photos still get edges): grey (BT.601) -> Gaussian pre-blur sigma
  ~ U(0.5, 1.5) px -> cv2.Canny (3x3 Sobel, L1 gradient: OpenCV's and ControlNet's default)
  with high = the q-th percentile of the L1 gradient magnitude, q ~ U(85, 97), at least 20,
  and low = high / U(2, 3) (Canny's recommended 2:1-3:1 ratio). Map: white (255) edges on black, 3 equal channels.
- sketch (pencil line art by colour-dodge): grey / (1 - blur(1 - grey)) with blur sigma
  ~ U(1.5, 5) px, then darkened by a power ~ U(1.5, 3) so lines read as strokes. Map: dark
  lines on white, 3 equal channels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from pixwizard.data.photo.common import jsonable, photo_task, uniform
from pixwizard.data.sample import Sample

CANNY_BLUR = (0.5, 1.5)     # px
CANNY_PERCENTILE = (85.0, 97.0)
CANNY_MIN_HIGH = 20.0
CANNY_RATIO = (2.0, 3.0)
SKETCH_BLUR = (1.5, 5.0)    # px
SKETCH_POWER = (1.5, 3.0)

EdgeMap = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, dict[str, Any]]]


def canny_edges(img: np.ndarray, blur: float, percentile: float, ratio: float) -> tuple[np.ndarray, float, float]:
    """HxWx3 uint8 Canny edge map (255 on edges, 0 elsewhere) at the given parameters, and (low, high)."""
    grey = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (0, 0), blur)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    magnitude = np.abs(gx) + np.abs(gy)  # the L1 magnitude cv2.Canny thresholds
    high = max(float(np.percentile(magnitude, percentile)), CANNY_MIN_HIGH)
    low = high / ratio
    return cv2.cvtColor(cv2.Canny(grey, low, high), cv2.COLOR_GRAY2RGB), low, high


def canny_map(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """HxWx3 uint8 Canny edge map (255 on edges, 0 elsewhere) and its drawn parameters."""
    blur, q, ratio = uniform(rng, CANNY_BLUR), uniform(rng, CANNY_PERCENTILE), uniform(rng, CANNY_RATIO)
    edges, low, high = canny_edges(img, blur, q, ratio)
    return edges, {"blur": blur, "percentile": q, "low": low, "high": high}


def sketch_lines(img: np.ndarray, blur: float, power: float) -> np.ndarray:
    """HxWx3 uint8 pencil line art (dark lines on white) at the given parameters."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    inv_blur = cv2.GaussianBlur(255 - grey, (0, 0), blur)
    dodge = cv2.divide(grey, 255 - inv_blur, scale=256)  # colour dodge, saturates at 255
    lut = (255.0 * (np.arange(256) / 255.0) ** power + 0.5).astype(np.uint8)
    return cv2.cvtColor(cv2.LUT(dodge, lut), cv2.COLOR_GRAY2RGB)


def sketch_map(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """HxWx3 uint8 pencil line art (dark lines on white) and its drawn parameters."""
    blur, power = uniform(rng, SKETCH_BLUR), uniform(rng, SKETCH_POWER)
    return sketch_lines(img, blur, power), {"blur": blur, "power": power}


def _map_sample(task: str, clean: np.ndarray, make: EdgeMap, rng: np.random.Generator,
                to_map: bool) -> Sample:
    edge, params = make(clean, rng)
    src, dst = (clean, edge) if to_map else (edge, clean)
    truth = {"image": dst.copy()}
    if to_map and make is canny_map:  # the canny task's codec is a binary mask: white edges on black
        truth["mask"] = edge[..., 0] > 127
    return Sample(task=task, input=src.copy(), truth=truth, meta={"params": jsonable(params)})


@photo_task
def canny(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Photo -> Canny edge map (white edges on black)."""
    return _map_sample("canny", clean, canny_map, rng, to_map=True)


@photo_task
def sketch(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Photo -> pencil line art (dark lines on white)."""
    return _map_sample("sketch", clean, sketch_map, rng, to_map=True)


@photo_task
def canny_to_image(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Canny edge map -> photo."""
    return _map_sample("canny_to_image", clean, canny_map, rng, to_map=False)


@photo_task
def sketch_to_image(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Pencil line art -> photo."""
    return _map_sample("sketch_to_image", clean, sketch_map, rng, to_map=False)

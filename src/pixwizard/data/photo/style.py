"""Stylisation (editing, photo -> stylised photo): ``style_sketch``, ``style_watercolor``,
``style_oil``, ``style_cartoon``. ``input`` = the photo, ``truth["image"]`` = the stylised
photo, ``slots["style"]`` = the style's name in words.

- sketch: cv2.pencilSketch (domain-transform filter + shading), sigma_s ~ U(20, 80),
  sigma_r ~ U(0.05, 0.12), shade ~ U(0.02, 0.06); the grey or the colour result (p = 0.5).
- watercolor: flat washes from a recursive edge-preserving filter (sigma_s ~ U(30, 60),
  sigma_r = 0.4) and a 5x5 median (which removes speckle that would otherwise become ink dots),
  then cv2.stylization (edge-aware smoothing + edge darkening), sigma_s ~ U(30, 90),
  sigma_r ~ U(0.4, 0.6).
- oil: the Kuwahara filter (Kuwahara et al. 1976), the classic oil-paint approximation, built
  from OpenCV box filters: each pixel takes the mean colour of whichever of its four
  (r+1)x(r+1) corner windows has the lowest luma variance, radius r ~ U{2..5}; then a
  saturation boost ~ U(1.1, 1.4). (cv2.xphoto.oilPainting is not in opencv-python-headless.)
- cartoon: 1-3 passes of a bilateral filter (d = 9, sigma_color ~ U(50, 150),
  sigma_space ~ U(5, 10)), posterised to 4-10 levels per channel, with black outlines from an
  adaptive mean threshold (block 7-13 px, C ~ U(2, 6)) of the median-blurred grey image.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pixwizard.data.photo.common import integer, jsonable, photo_task, to_uint8, uniform
from pixwizard.data.sample import Sample

PENCIL_SIGMA_S = (20.0, 80.0)
PENCIL_SIGMA_R = (0.05, 0.12)
PENCIL_SHADE = (0.02, 0.06)
WATERCOLOR_PRE_SIGMA_S = (30.0, 60.0)
WATERCOLOR_SIGMA_S = (30.0, 90.0)
WATERCOLOR_SIGMA_R = (0.4, 0.6)
OIL_RADIUS = (2, 5)
OIL_SATURATION = (1.1, 1.4)
CARTOON_PASSES = (1, 3)
CARTOON_SIGMA_COLOR = (50.0, 150.0)
CARTOON_SIGMA_SPACE = (5.0, 10.0)
CARTOON_LEVELS = (4, 10)
CARTOON_BLOCK = (7, 13)
CARTOON_C = (2.0, 6.0)


def _style_sample(task: str, style: str, clean: np.ndarray, stylised: np.ndarray,
                  params: dict[str, Any]) -> Sample:
    return Sample(task=task, input=clean.copy(), truth={"image": stylised}, slots={"style": style},
                  meta={"params": jsonable(params)})


def kuwahara(img: np.ndarray, radius: int) -> np.ndarray:
    """Kuwahara filter of an HxWx3 uint8 image with (radius+1)^2 corner windows; returns uint8."""
    x = img.astype(np.float32)
    luma = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    k = radius + 1
    means, variances = [], []
    for anchor in ((0, 0), (radius, 0), (0, radius), (radius, radius)):  # the four corner windows
        m = cv2.boxFilter(luma, -1, (k, k), anchor=anchor, borderType=cv2.BORDER_REFLECT)
        sq = cv2.boxFilter(luma * luma, -1, (k, k), anchor=anchor, borderType=cv2.BORDER_REFLECT)
        variances.append(sq - m * m)
        means.append(cv2.boxFilter(x, -1, (k, k), anchor=anchor, borderType=cv2.BORDER_REFLECT))
    best = np.argmin(np.stack(variances), axis=0)
    out = np.take_along_axis(np.stack(means), best[None, :, :, None], axis=0)[0]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# The operators at given parameters (the generators draw them; the classical baselines use mid-range values).


def pencil(img: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """cv2.pencilSketch at ``sigma_s``, ``sigma_r``, ``shade``; the colour result if ``colour``, else grey."""
    grey, colour = cv2.pencilSketch(img[..., ::-1].copy(), sigma_s=p["sigma_s"], sigma_r=p["sigma_r"],
                                    shade_factor=p["shade"])
    return colour[..., ::-1].copy() if p["colour"] else cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def watercolor(img: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """Recursive edge-preserving washes (``pre_sigma_s``), 5x5 median, cv2.stylization (``sigma_s``, ``sigma_r``)."""
    washes = cv2.edgePreservingFilter(img[..., ::-1].copy(), flags=cv2.RECURS_FILTER,
                                      sigma_s=p["pre_sigma_s"], sigma_r=0.4)
    return cv2.stylization(cv2.medianBlur(washes, 5), sigma_s=p["sigma_s"], sigma_r=p["sigma_r"])[..., ::-1].copy()


def oil(img: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """Kuwahara filter of ``radius``, saturation times ``saturation``."""
    hsv = cv2.cvtColor(kuwahara(img, p["radius"]), cv2.COLOR_RGB2HSV)
    hsv[..., 1] = np.clip(hsv[..., 1].astype(np.float32) * p["saturation"] + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def cartoon(img: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """``passes`` bilateral passes, ``levels`` posterisation, adaptive-threshold outlines (``block``, ``c``)."""
    smooth = img
    for _ in range(p["passes"]):
        smooth = cv2.bilateralFilter(smooth, 9, p["sigma_color"], p["sigma_space"])
    step = 256.0 / p["levels"]
    poster = to_uint8((np.floor(smooth.astype(np.float32) / step) + 0.5) * step / 255.0)
    grey = cv2.medianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 5)
    lines = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY,
                                  p["block"], p["c"])
    return np.where(lines[..., None] > 0, poster, 0).astype(np.uint8)


@photo_task
def style_sketch(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Pencil drawing of the photo (grey or coloured pencil)."""
    p = {"sigma_s": uniform(rng, PENCIL_SIGMA_S), "sigma_r": uniform(rng, PENCIL_SIGMA_R),
         "shade": uniform(rng, PENCIL_SHADE), "colour": bool(rng.random() < 0.5)}
    return _style_sample("style_sketch", "sketch", clean, pencil(clean, p), p)


@photo_task
def style_watercolor(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Watercolour-like rendering via OpenCV's stylization filter."""
    p = {"pre_sigma_s": uniform(rng, WATERCOLOR_PRE_SIGMA_S), "sigma_s": uniform(rng, WATERCOLOR_SIGMA_S),
         "sigma_r": uniform(rng, WATERCOLOR_SIGMA_R)}
    return _style_sample("style_watercolor", "watercolor", clean, watercolor(clean, p), p)


@photo_task
def style_oil(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Oil-painting look: Kuwahara filter plus a saturation boost."""
    p = {"radius": integer(rng, OIL_RADIUS), "saturation": uniform(rng, OIL_SATURATION)}
    return _style_sample("style_oil", "oil painting", clean, oil(clean, p), p)


@photo_task
def style_cartoon(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Cartoon look: bilateral smoothing, posterised colours and adaptive-threshold outlines."""
    p = {"passes": integer(rng, CARTOON_PASSES), "sigma_color": uniform(rng, CARTOON_SIGMA_COLOR),
         "sigma_space": uniform(rng, CARTOON_SIGMA_SPACE), "levels": integer(rng, CARTOON_LEVELS),
         "block": 2 * integer(rng, (CARTOON_BLOCK[0] // 2, CARTOON_BLOCK[1] // 2)) + 1,
         "c": uniform(rng, CARTOON_C)}
    return _style_sample("style_cartoon", "cartoon", clean, cartoon(clean, p), p)

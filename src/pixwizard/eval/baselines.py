"""Classical baselines: what a task scores WITHOUT a learned model, from maintained libraries.

Every baseline is ``fn(image, task_id, slots) -> image`` with ``image`` HxWx3 uint8 RGB in and out,
same size (the output is the baseline's answer in the task's target format). ``BASELINES`` holds
them by name, ``TASK_BASELINES`` lists the applicable ones per task id (headline first) and
``baseline_for(task_id)`` returns the headline name.

Assumptions (stated once, here):
- ``identity``: the input as the answer (valid for every task; the floor to beat).
- ``nlm``: OpenCV ``fastNlMeansDenoisingColored`` with h = hColor = 0.65 x the noise sigma estimated by
  ``skimage.restoration.estimate_sigma`` (0-255 units), template 7, search 21.
  ``bm3d``: BM3D (the ``bm3d`` package) at the same estimated sigma; only registered when the
  package is installed.
- super-resolution: the input is already the bicubic upsample at the target size, so ``bicubic``
  is the input itself; ``unsharp`` sharpens it: x + 1.0 * (x - GaussianBlur_sigma2(x)).
- deblurring with assumed PSFs (no kernel estimation): ``rl_gaussian`` = Richardson-Lucy
  (``skimage.restoration.richardson_lucy``, 10 iterations) with a Gaussian PSF of sigma 2;
  ``rl_disk`` = the same with a uniform disk PSF of radius 3 (defocus); ``wiener_motion`` =
  ``skimage.restoration.wiener`` (balance 0.1) with a horizontal 9-pixel box PSF (motion
  direction unknown; ``unsharp`` is the motion headline for that reason).
- ``dark_channel``: He et al. dark channel prior: 15x15 dark channel, atmospheric light = mean
  colour of the brightest 0.1% dark-channel pixels, omega 0.95, transmission refined by a guided
  filter (radius 40, eps 1e-3, grey guide; ``cv2.ximgproc`` when present, else box filters),
  t >= 0.1.
- ``auto_gamma`` (low-light headline): gamma = log(0.5) / log(mean luminance in [0,1]), so the
  mean maps to mid-grey; ``clahe``: CLAHE (clip 2, 8x8 tiles) on the L channel of Lab.
- ``median3`` / ``median5``: ``cv2.medianBlur`` (rain streaks, snow, raindrops).
- ``bilateral`` (JPEG deblocking): ``cv2.bilateralFilter`` d 5, sigmaColor 25, sigmaSpace 3.
- ``retinex`` (deshadow): single-scale illumination normalisation: illumination = Gaussian blur
  (sigma = 1/8 of the short side) of the luminance; each pixel is scaled by
  max(1, mean / illumination), so dark (shadowed) regions are lifted to the image's mean
  brightness and bright regions are left alone.
- ``watermark_inpaint``: watermark mask = bright (V >= 200) low-saturation (S <= 40) HSV pixels,
  dilated by 1 pixel, filled by ``cv2.inpaint`` (Telea, radius 3). Also removes genuine white
  areas: it is a baseline, not a detector.
- ``lowpass``: Gaussian blur sigma 1.5 (demoire).
- ``telea``: inpainting; the hole = pure black (0,0,0) or pure white (255,255,255) pixels, opened by
  a 3x3 square so isolated clipped pixels stay, filled by ``cv2.inpaint`` (Telea, radius 5).
- targets that OpenCV computes (``pixwizard.data.photo.edges`` / ``.style``): the generator's own
  operator with every drawn parameter at the middle of its range (a baseline cannot see the
  item's draw): ``canny_op`` (Canny, pre-blur 1.0 px, high = the 91st percentile of the L1
  gradient, low = high / 2.5), ``sketch_op`` (colour dodge, blur 3.25 px, power 2.25),
  ``pencil`` (cv2.pencilSketch sigma_s 50, sigma_r 0.085, shade 0.04, the grey result),
  ``watercolor`` (washes sigma_s 45, stylization sigma_s 60, sigma_r 0.5), ``kuwahara`` (radius 4,
  saturation x1.25), ``cartoon`` (2 bilateral passes sigma_color 100 / sigma_space 7.5, 7 levels,
  outline block 9, C 4). Tasks with no classical operator for their target (controllable
  generation, colourisation, world tasks, text-to-image) have only ``identity``: "no classical
  baseline".
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping

import cv2
import numpy as np
from skimage.restoration import estimate_sigma, richardson_lucy, wiener

BaselineFn = Callable[[np.ndarray, str, Mapping[str, str]], np.ndarray]


def _check(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"baseline input must be HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
    return image


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """float image in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def noise_sigma(image: np.ndarray) -> float:
    """Estimated Gaussian noise sigma in 0-255 units (wavelet MAD, averaged over channels)."""
    return float(estimate_sigma(_check(image).astype(np.float64), average_sigmas=True, channel_axis=-1))


# ------------------------------------------------------------------ per-baseline functions


def identity(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    return _check(image).copy()


def nlm(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    h = max(1.0, 0.65 * noise_sigma(image))
    return cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(image), None, h, h, 7, 21)


def bm3d_denoise(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    import bm3d

    sigma = max(1.0, noise_sigma(image)) / 255.0
    return _to_uint8(bm3d.bm3d_rgb(image.astype(np.float64) / 255.0, sigma))


def unsharp(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    x = _check(image).astype(np.float32) / 255.0
    blurred = cv2.GaussianBlur(x, (0, 0), 2.0, borderType=cv2.BORDER_REFLECT)
    return _to_uint8(x + 1.0 * (x - blurred))


def gaussian_psf(sigma: float) -> np.ndarray:
    r = int(np.ceil(3 * sigma))
    ax = np.arange(-r, r + 1)
    k = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def disk_psf(radius: int) -> np.ndarray:
    ax = np.arange(-radius, radius + 1)
    k = (ax[:, None] ** 2 + ax[None, :] ** 2 <= radius ** 2).astype(np.float64)
    return k / k.sum()


def _deconvolve(image: np.ndarray, psf: np.ndarray, op: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run ``op`` per channel on [0,1] floats, reflect-padded by 4x the PSF size (no dark or
    wrapped-around borders: skimage deconvolves with zero padding / circular FFTs)."""
    pad = 4 * max(psf.shape)
    x = np.pad(_check(image).astype(np.float64) / 255.0, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.stack([op(x[..., c]) for c in range(3)], axis=-1)
    return _to_uint8(out[pad:-pad, pad:-pad])


def rl_gaussian(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    psf = gaussian_psf(2.0)
    return _deconvolve(image, psf, lambda c: richardson_lucy(c, psf, num_iter=10))


def rl_disk(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    psf = disk_psf(3)
    return _deconvolve(image, psf, lambda c: richardson_lucy(c, psf, num_iter=10))


def wiener_motion(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    psf = np.full((1, 9), 1.0 / 9.0)
    return _deconvolve(image, psf, lambda c: wiener(c, psf, balance=0.1))


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al. guided filter (grey guide, float32 [0,1]); cv2.ximgproc when available."""
    if hasattr(cv2, "ximgproc"):
        return cv2.ximgproc.guidedFilter(guide, src, radius, eps)
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    cov_ip = box(guide * src) - mean_i * mean_p
    var_i = box(guide * guide) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def dark_channel(x: np.ndarray, size: int = 15) -> np.ndarray:
    """Per-pixel min over channels, then min filter (erosion) over a size x size window."""
    return cv2.erode(x.min(axis=2), np.ones((size, size), np.uint8))


def dehaze_dcp(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    x = _check(image).astype(np.float32) / 255.0
    dark = dark_channel(x)
    n_top = max(1, dark.size // 1000)
    top = np.argpartition(dark.ravel(), -n_top)[-n_top:]
    airlight = np.maximum(x.reshape(-1, 3)[top].mean(axis=0), 1e-3)
    transmission = 1.0 - 0.95 * dark_channel(x / airlight)
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
    transmission = np.maximum(guided_filter(grey, transmission.astype(np.float32), 40, 1e-3), 0.1)
    return _to_uint8((x - airlight) / transmission[..., None] + airlight)


def auto_gamma(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    x = _check(image).astype(np.float64) / 255.0
    mean = float(np.clip(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).mean() / 255.0, 1e-3, 1 - 1e-3))
    return _to_uint8(x ** (np.log(0.5) / np.log(mean)))


def clahe(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    lab = cv2.cvtColor(_check(image), cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def median3(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    return cv2.medianBlur(np.ascontiguousarray(_check(image)), 3)


def median5(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    return cv2.medianBlur(np.ascontiguousarray(_check(image)), 5)


def bilateral(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    return cv2.bilateralFilter(np.ascontiguousarray(_check(image)), 5, 25, 3)


def retinex(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    x = _check(image).astype(np.float32) / 255.0
    lum = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
    illum = np.maximum(cv2.GaussianBlur(lum, (0, 0), min(lum.shape) / 8.0), 1e-3)
    return _to_uint8(x * np.maximum(lum.mean() / illum, 1.0)[..., None])


def watermark_mask(image: np.ndarray) -> np.ndarray:
    """HxW uint8 {0,255}: bright (V >= 200), low-saturation (S <= 40) pixels, dilated by 1."""
    hsv = cv2.cvtColor(_check(image), cv2.COLOR_RGB2HSV)
    mask = ((hsv[..., 2] >= 200) & (hsv[..., 1] <= 40)).astype(np.uint8) * 255
    return cv2.dilate(mask, np.ones((3, 3), np.uint8))


def watermark_inpaint(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    return cv2.inpaint(np.ascontiguousarray(image), watermark_mask(image), 3, cv2.INPAINT_TELEA)


def lowpass(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    return cv2.GaussianBlur(_check(image), (0, 0), 1.5)


def _mid(lo_hi: tuple[float, float]) -> float:
    return (lo_hi[0] + lo_hi[1]) / 2.0


def canny_op(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    from pixwizard.data.photo import edges

    return edges.canny_edges(_check(image), _mid(edges.CANNY_BLUR), _mid(edges.CANNY_PERCENTILE),
                             _mid(edges.CANNY_RATIO))[0]


def sketch_op(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    from pixwizard.data.photo import edges

    return edges.sketch_lines(_check(image), _mid(edges.SKETCH_BLUR), _mid(edges.SKETCH_POWER))


def pencil(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    from pixwizard.data.photo import style

    return style.pencil(_check(image), {"sigma_s": _mid(style.PENCIL_SIGMA_S), "sigma_r": _mid(style.PENCIL_SIGMA_R),
                                        "shade": _mid(style.PENCIL_SHADE), "colour": False})


def watercolor(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    from pixwizard.data.photo import style

    return style.watercolor(_check(image), {"pre_sigma_s": _mid(style.WATERCOLOR_PRE_SIGMA_S),
                                            "sigma_s": _mid(style.WATERCOLOR_SIGMA_S),
                                            "sigma_r": _mid(style.WATERCOLOR_SIGMA_R)})


def kuwahara(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    from pixwizard.data.photo import style

    return style.oil(_check(image), {"radius": round(_mid(style.OIL_RADIUS)), "saturation": _mid(style.OIL_SATURATION)})


def cartoon(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    from pixwizard.data.photo import style

    half_block = round(_mid((style.CARTOON_BLOCK[0] // 2, style.CARTOON_BLOCK[1] // 2)))
    return style.cartoon(_check(image), {
        "passes": round(_mid(style.CARTOON_PASSES)), "sigma_color": _mid(style.CARTOON_SIGMA_COLOR),
        "sigma_space": _mid(style.CARTOON_SIGMA_SPACE), "levels": round(_mid(style.CARTOON_LEVELS)),
        "block": 2 * half_block + 1, "c": _mid(style.CARTOON_C)})


def fill_mask(image: np.ndarray) -> np.ndarray:
    """HxW uint8 {0,255}: pure black or pure white pixels, opened by a 3x3 square."""
    img = _check(image)
    fill = (img == 0).all(axis=2) | (img == 255).all(axis=2)
    return cv2.morphologyEx(fill.astype(np.uint8) * 255, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))


def telea(image: np.ndarray, task_id: str, slots: Mapping[str, str]) -> np.ndarray:
    mask = fill_mask(image)
    if not mask.any():
        return image.copy()  # nothing detected to fill: the input is the answer
    return cv2.inpaint(np.ascontiguousarray(image), mask, 5, cv2.INPAINT_TELEA)


# ------------------------------------------------------------------ tables

BASELINES: dict[str, BaselineFn] = {
    "identity": identity, "nlm": nlm, "bicubic": identity, "unsharp": unsharp,
    "rl_gaussian": rl_gaussian, "rl_disk": rl_disk, "wiener_motion": wiener_motion,
    "dark_channel": dehaze_dcp, "auto_gamma": auto_gamma, "clahe": clahe,
    "median3": median3, "median5": median5, "bilateral": bilateral, "retinex": retinex,
    "watermark_inpaint": watermark_inpaint, "lowpass": lowpass, "telea": telea,
    "canny_op": canny_op, "sketch_op": sketch_op, "pencil": pencil, "watercolor": watercolor,
    "kuwahara": kuwahara, "cartoon": cartoon,
}
if importlib.util.find_spec("bm3d") is not None:
    BASELINES["bm3d"] = bm3d_denoise

# No classical operator computes these targets: the identity is the only baseline.
_IDENTITY_ONLY = (
    "colorize", "refseg_overlay", "refseg_mask", "refbox", "depth", "normals", "semseg",
    "canny_to_image", "sketch_to_image", "depth_to_image", "normal_to_image",
    "seg_to_image", "edit_remove", "edit_add", "edit_replace", "edit_recolor", "edit_move",
    "edit_background", "t2i",
)

# Applicable baselines per canonical task id, headline first; "identity" is always applicable.
TASK_BASELINES: dict[str, tuple[str, ...]] = {
    "denoise": ("nlm", "bm3d"),
    "derain": ("median3", "median5"),
    "raindrop_removal": ("median5", "median3"),
    "desnow": ("median3", "median5"),
    "dehaze": ("dark_channel",),
    "deblur_motion": ("unsharp", "wiener_motion"),
    "deblur_defocus": ("rl_disk", "unsharp"),
    "deblur_gaussian": ("rl_gaussian", "unsharp"),
    "lowlight": ("auto_gamma", "clahe"),
    "sr_x2": ("bicubic", "unsharp"),
    "sr_x4": ("bicubic", "unsharp"),
    "jpeg_artifact": ("bilateral",),
    "deshadow": ("retinex",),
    "watermark_removal": ("watermark_inpaint",),
    "demoire": ("lowpass",),
    **{t: ("telea",) for t in ("inpaint_freeform", "inpaint_box", "inpaint_circle", "outpaint")},
    "canny": ("canny_op",),
    "sketch": ("sketch_op",),
    "style_sketch": ("pencil",),
    "style_watercolor": ("watercolor",),
    "style_oil": ("kuwahara",),
    "style_cartoon": ("cartoon",),
    **{t: () for t in _IDENTITY_ONLY},
}


def baselines_for(task_id: str) -> tuple[str, ...]:
    """Names of the baselines available here for ``task_id``: headline first, identity last."""
    if task_id not in TASK_BASELINES:
        raise ValueError(f"unknown task id {task_id!r}; known: {', '.join(TASK_BASELINES)}")
    return tuple(n for n in TASK_BASELINES[task_id] if n in BASELINES) + ("identity",)


def has_classical_baseline(task_id: str) -> bool:
    """False where only the identity applies (the model card says "no classical baseline" there)."""
    return baseline_for(task_id) != "identity"


def baseline_for(task_id: str) -> str:
    """The headline classical baseline's name for ``task_id`` (``identity`` where none applies)."""
    return baselines_for(task_id)[0]


def run_baseline(name: str, image: np.ndarray, task_id: str, slots: Mapping[str, str] | None = None) -> np.ndarray:
    """Apply baseline ``name``; ValueError for an unknown name."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    out = BASELINES[name](_check(image), task_id, slots or {})
    if out.dtype != np.uint8 or out.shape != image.shape:
        raise RuntimeError(f"baseline {name} returned {out.dtype} {out.shape} for {image.shape}")
    return out

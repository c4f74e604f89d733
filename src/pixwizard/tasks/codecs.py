"""Target codecs: typed ground truth -> target image, and model output image -> typed result.

Every codec has a ``name`` (its key in ``CODECS``), ``encode(sample) -> HxWx3 uint8`` (the target
image the model learns to produce, always the size of ``sample.input``) and
``decode(output, input, slots) -> Decoded`` (``output`` and ``input`` HxWx3 uint8 RGB of the same
size; ``slots`` the instruction slots, e.g. the named colour).

Conventions (DESIGN section 5):
- ``image``:   the target is ``truth["image"]``; decoding returns the output image.
- ``depth``:   grey, linear in metric depth over the fixed range [near, far] (default 0.5-20 m),
  near = bright: ``v = round(255 * (far - clip(d, near, far)) / (far - near))`` in all three
  channels; pixels with no surface (inf/nan depth) encode as 0 (= far). Decoding takes the channel
  mean: ``d = far - mean/255 * (far - near)``; 8-bit quantisation error <= (far-near)/510 m
  (0.038 m for the default range) inside the range.
- ``normals``: ``RGB = round(255 * (n + 1) / 2)`` with n a unit vector in the camera frame
  (x right, y up, z toward the camera); pixels with no surface (zero/nan normal) encode as
  (128,128,128). Decoding maps back to [-1,1], normalises to unit length, and returns nan where
  the decoded vector is shorter than 0.5 (no surface).
- ``semseg``:  class id -> ``SEMSEG_PALETTE[id]`` (the 216 colours of the 6-level RGB lattice, any
  two at least 51 apart, id 0 = background black); decoded by the nearest palette colour, exact
  while each channel is off by less than 25 (ids below 8 are at least 180 apart).
- ``overlay``: the input with the object's pixels (``truth["mask"]``) blended 50% with the colour
  named by ``slots["colour"]``; decoded against the input: a pixel is in the mask where the output
  is closer to ``blend(input, colour)`` than to ``input`` by a margin.
- ``mask``:    white (255) object on black; decoded by channel mean > 127.
- ``box``:     the input with each box of ``truth["boxes"]`` (xyxy, pixels, x2/y2 exclusive: a box
  covering columns 0..9 has x1=0, x2=10) drawn as a rectangle outline *inside* the box, thickness
  ``max(2, min(H, W) // 64)``, in the named colour; decoded by finding pixels near the named colour
  that differ from the input and taking the bounding rectangle of each connected component.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pixwizard.data.sample import Sample
from pixwizard.tasks.colours import colour_rgb


@dataclass
class Decoded:
    """Typed result of decoding an output image; only the fields the codec produces are set.

    - ``image``:   HxWx3 uint8 RGB.
    - ``mask``:    HxW bool.
    - ``boxes``:   list of [x1, y1, x2, y2] floats in pixels (x2/y2 exclusive), largest first.
    - ``depth``:   HxW float32 metres, within ``depth_range`` (near, far).
    - ``normals``: HxWx3 float32 unit vectors in the camera frame, nan where there is no surface.
    - ``labels``:  HxW int32 class ids (0 = background).
    """

    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    boxes: list[list[float]] | None = None
    depth: np.ndarray | None = None
    depth_range: tuple[float, float] | None = None
    normals: np.ndarray | None = None
    labels: np.ndarray | None = None


@runtime_checkable
class TargetCodec(Protocol):
    name: str

    def encode(self, sample: Sample) -> np.ndarray: ...

    def decode(self, output: np.ndarray, input: np.ndarray, slots: dict[str, str]) -> Decoded: ...


def _check_rgb(arr: Any, what: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        desc = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ValueError(f"{what} must be an HxWx3 uint8 array, got {desc}")
    return arr


def _check_pair(output: np.ndarray, input: np.ndarray) -> None:
    _check_rgb(output, "output")
    _check_rgb(input, "input")
    if output.shape != input.shape:
        raise ValueError(f"output {output.shape} and input {input.shape} must have the same size")


def _truth(sample: Sample, key: str, codec: str) -> Any:
    if key not in sample.truth:
        raise ValueError(f"codec {codec!r} needs truth[{key!r}] for task {sample.task!r}; "
                         f"the sample has {sorted(sample.truth)}")
    return sample.truth[key]


def _check_hw(arr: np.ndarray, sample: Sample, key: str) -> None:
    if arr.shape[:2] != sample.input.shape[:2]:
        raise ValueError(f"truth[{key!r}] is {arr.shape[:2]} but the input is {sample.input.shape[:2]}")


def _truth_mask(sample: Sample, codec: str) -> np.ndarray:
    """``truth["mask"]``, checked: an HxW bool array of the input's size."""
    mask = np.asarray(_truth(sample, "mask", codec))
    if mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f"truth['mask'] must be an HxW bool array, got {mask.dtype} {mask.shape}")
    _check_hw(mask, sample, "mask")
    return mask


def _slot_colour(slots: dict[str, str], codec: str) -> np.ndarray:
    if "colour" not in slots:
        raise ValueError(f"codec {codec!r} needs the slot 'colour' (the colour the instruction names)")
    return colour_rgb(slots["colour"])


def _grey(values: np.ndarray) -> np.ndarray:
    """HxW uint8 -> HxWx3 uint8 with the value in all channels."""
    return np.repeat(values[..., None], 3, axis=2)


class ImageCodec:
    """The target is ``truth["image"]`` itself; decoding returns the output image."""

    name = "image"

    def encode(self, sample: Sample) -> np.ndarray:
        image = _check_rgb(_truth(sample, "image", self.name), "truth['image']")
        _check_hw(image, sample, "image")
        return image.copy()

    def decode(self, output: np.ndarray, input: np.ndarray, slots: dict[str, str]) -> Decoded:
        _check_pair(output, input)
        return Decoded(image=output.copy())


@dataclass(frozen=True)
class DepthCodec:
    """Grey, linear in metric depth over [near, far] metres, near = bright (see module doc)."""

    near: float = 0.5
    far: float = 20.0
    name: str = "depth"

    def __post_init__(self) -> None:
        if not 0 <= self.near < self.far:
            raise ValueError(f"depth range needs 0 <= near < far, got near={self.near} far={self.far}")

    @property
    def quantisation_error(self) -> float:
        """Largest depth error (metres) that 8-bit rounding causes inside [near, far]."""
        return (self.far - self.near) / 510.0

    def encode(self, sample: Sample) -> np.ndarray:
        depth = np.asarray(_truth(sample, "depth", self.name), dtype=np.float64)
        if depth.ndim != 2:
            raise ValueError(f"truth['depth'] must be HxW, got shape {depth.shape}")
        _check_hw(depth, sample, "depth")
        d = np.where(np.isfinite(depth), depth, self.far)
        d = np.clip(d, self.near, self.far)
        v = np.rint(255.0 * (self.far - d) / (self.far - self.near)).astype(np.uint8)
        return _grey(v)

    def decode(self, output: np.ndarray, input: np.ndarray, slots: dict[str, str]) -> Decoded:
        _check_pair(output, input)
        mean = output.astype(np.float32).mean(axis=2)
        depth = (self.far - mean / 255.0 * (self.far - self.near)).astype(np.float32)
        return Decoded(depth=depth, depth_range=(self.near, self.far))


class NormalsCodec:
    """RGB = (n + 1) / 2 in the camera frame; decoding renormalises (see module doc)."""

    name = "normals"

    def encode(self, sample: Sample) -> np.ndarray:
        n = np.asarray(_truth(sample, "normals", self.name), dtype=np.float64)
        if n.ndim != 3 or n.shape[2] != 3:
            raise ValueError(f"truth['normals'] must be HxWx3, got shape {n.shape}")
        _check_hw(n, sample, "normals")
        n = np.where(np.isfinite(n), n, 0.0)
        return np.rint(255.0 * (np.clip(n, -1.0, 1.0) + 1.0) / 2.0).astype(np.uint8)

    def decode(self, output: np.ndarray, input: np.ndarray, slots: dict[str, str]) -> Decoded:
        _check_pair(output, input)
        n = output.astype(np.float32) / 255.0 * 2.0 - 1.0
        norm = np.linalg.norm(n, axis=2, keepdims=True)
        unit = n / np.maximum(norm, 1e-6)
        unit[norm[..., 0] < 0.5] = np.nan
        return Decoded(normals=unit.astype(np.float32))


def _lattice_palette(levels: int = 4) -> np.ndarray:
    """The ``levels``^3 colours of an even RGB lattice (4 levels: 0, 85, 170, 255 -> 64 colours,
    nearest pair 85 apart), ordered greedily so each next colour is as far as possible (Euclidean)
    from all earlier ones, starting from black; ties go to the lowest lattice index. Low class ids
    therefore get the most distinct colours. Deterministic: a fixed table computed at import."""
    axis = np.linspace(0, 255, levels).round()
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    chosen = [0]  # black
    dist = np.linalg.norm(grid - grid[0], axis=1)
    while len(chosen) < len(grid):
        dist[chosen] = -1.0
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(grid - grid[nxt], axis=1))
    return grid[chosen].astype(np.uint8)


# [216, 3] uint8 (a 6-level lattice, nearest pair 51 apart), id 0 = black background: enough for
# ADE20K's 150 classes; the greedy order keeps the first 8 ids (the world's classes) >= 180 apart.
SEMSEG_PALETTE: np.ndarray = _lattice_palette(6)


class SemsegCodec:
    """Class id -> fixed palette colour; decoded by nearest palette colour (see module doc)."""

    name = "semseg"

    def __init__(self, palette: np.ndarray = SEMSEG_PALETTE) -> None:
        self.palette = palette
        self._kdtree = None

    @property
    def _tree(self):
        """The palette's k-d tree, built on first decode (scipy is imported only then: faster start)."""
        if self._kdtree is None:
            from scipy.spatial import cKDTree

            self._kdtree = cKDTree(self.palette.astype(np.float32))
        return self._kdtree

    def encode(self, sample: Sample) -> np.ndarray:
        labels = np.asarray(_truth(sample, "labels", self.name))
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"truth['labels'] must be an HxW integer array, got {labels.dtype} {labels.shape}")
        _check_hw(labels, sample, "labels")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.palette)):
            raise ValueError(f"class ids must be in [0, {len(self.palette) - 1}], got "
                             f"[{labels.min()}, {labels.max()}]")
        return self.palette[labels]

    def decode(self, output: np.ndarray, input: np.ndarray, slots: dict[str, str]) -> Decoded:
        _check_pair(output, input)
        _, idx = self._tree.query(output.reshape(-1, 3).astype(np.float32))
        return Decoded(labels=idx.reshape(output.shape[:2]).astype(np.int32))


@dataclass(frozen=True)
class OverlayCodec:
    """The input tinted at 50% opacity in the named colour over the object (see module doc).

    Decoding: with ``blend = (input + colour) / 2``, a pixel is in the mask where
    ``|out - input| - |out - blend| > margin * |blend - input|`` (Euclidean RGB distances). Pixels
    where the input already has (almost) the named colour (``|blend - input| < min_separation``)
    cannot show the tint and decode as outside the mask.
    """

    margin: float = 0.2
    min_separation: float = 3.0
    name: str = "overlay"

    def encode(self, sample: Sample) -> np.ndarray:
        mask = _truth_mask(sample, self.name)
        colour = _slot_colour(sample.slots, self.name).astype(np.float32)
        out = sample.input.copy()
        blend = np.rint(0.5 * sample.input.astype(np.float32) + 0.5 * colour).astype(np.uint8)
        out[mask] = blend[mask]
        return out

    def decode(self, output: np.ndarray, input: np.ndarray, slots: dict[str, str]) -> Decoded:
        _check_pair(output, input)
        colour = _slot_colour(slots, self.name).astype(np.float32)
        out, inp = output.astype(np.float32), input.astype(np.float32)
        blend = 0.5 * inp + 0.5 * colour
        d_in = np.linalg.norm(out - inp, axis=2)
        d_blend = np.linalg.norm(out - blend, axis=2)
        sep = np.linalg.norm(blend - inp, axis=2)
        mask = (d_in - d_blend > self.margin * sep) & (sep >= self.min_separation)
        return Decoded(mask=mask)


@dataclass(frozen=True)
class MaskCodec:
    """White (255) object on black; decoded by channel mean > ``threshold``."""

    threshold: float = 127.0
    name: str = "mask"

    def encode(self, sample: Sample) -> np.ndarray:
        mask = _truth_mask(sample, self.name)
        return _grey(np.where(mask, 255, 0).astype(np.uint8))

    def decode(self, output: np.ndarray, input: np.ndarray, slots: dict[str, str]) -> Decoded:
        _check_pair(output, input)
        return Decoded(mask=output.astype(np.float32).mean(axis=2) > self.threshold)


def box_thickness(height: int, width: int) -> int:
    """Outline thickness in pixels used by the box codec: ``max(2, min(H, W) // 64)``."""
    return max(2, min(height, width) // 64)


@dataclass(frozen=True)
class BoxCodec:
    """Rectangle outlines in the named colour, decoded to xyxy (see module doc).

    Decoding: a pixel belongs to an outline when it is within ``colour_tol`` (RGB distance) of the
    named colour and differs from the input by more than ``change_tol``; a 3x3 closing bridges
    small gaps; each 8-connected component of at least ``min_area`` pixels gives one box (its
    bounding rectangle). Known limit: overlapping or touching outlines merge into one box.
    """

    colour_tol: float = 60.0
    change_tol: float = 24.0
    min_area: int = 8
    name: str = "box"

    def encode(self, sample: Sample) -> np.ndarray:
        boxes = np.asarray(_truth(sample, "boxes", self.name), dtype=np.float64).reshape(-1, 4)
        colour = _slot_colour(sample.slots, self.name)
        h, w = sample.input.shape[:2]
        t = box_thickness(h, w)
        out = sample.input.copy()
        for x1f, y1f, x2f, y2f in boxes:
            if not (x2f > x1f and y2f > y1f):
                raise ValueError(f"box {[x1f, y1f, x2f, y2f]} must have x2 > x1 and y2 > y1 (xyxy)")
            x1, y1 = int(np.clip(round(x1f), 0, w - 1)), int(np.clip(round(y1f), 0, h - 1))
            x2, y2 = int(np.clip(round(x2f), x1 + 1, w)), int(np.clip(round(y2f), y1 + 1, h))
            out[y1:min(y1 + t, y2), x1:x2] = colour
            out[max(y2 - t, y1):y2, x1:x2] = colour
            out[y1:y2, x1:min(x1 + t, x2)] = colour
            out[y1:y2, max(x2 - t, x1):x2] = colour
        return out

    def decode(self, output: np.ndarray, input: np.ndarray, slots: dict[str, str]) -> Decoded:
        _check_pair(output, input)
        colour = _slot_colour(slots, self.name).astype(np.float32)
        out, inp = output.astype(np.float32), input.astype(np.float32)
        near = np.linalg.norm(out - colour, axis=2) < self.colour_tol
        changed = np.linalg.norm(out - inp, axis=2) > self.change_tol
        hits = (near & changed).astype(np.uint8)
        import cv2  # imported where used: a run that needs no OpenCV starts faster

        hits = cv2.morphologyEx(hits, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(hits, connectivity=8)
        boxes = [
            [float(x), float(y), float(x + bw), float(y + bh)]
            for x, y, bw, bh, area in stats[1:count]
            if area >= self.min_area
        ]
        boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
        return Decoded(boxes=boxes)


CODECS: dict[str, TargetCodec] = {
    codec.name: codec
    for codec in (ImageCodec(), DepthCodec(), NormalsCodec(), SemsegCodec(), OverlayCodec(), MaskCodec(),
                  BoxCodec())
}


def get_codec(name: str) -> TargetCodec:
    """The codec registered under ``name``; ValueError listing the known codecs otherwise."""
    if name not in CODECS:
        raise ValueError(f"unknown target codec {name!r}; known codecs: {', '.join(CODECS)}")
    return CODECS[name]


def codec_for(task_id: str) -> TargetCodec:
    """The target codec of a task (by its TaskSpec)."""
    from pixwizard.tasks.registry import get_task

    return get_codec(get_task(task_id).codec)


def encode_target(sample: Sample) -> np.ndarray:
    """The target image of ``sample`` with its task's codec."""
    return codec_for(sample.task).encode(sample)

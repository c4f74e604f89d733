"""The record every generator and dataset adapter produces, before its target is encoded.

A ``Sample`` carries the input image, the typed ground truth and the values for the
instruction slots. The task's target codec (``pixwizard.tasks``) turns ``truth`` into the
target image, and the instruction bank turns ``slots`` into an instruction: generators never
write instructions or encode targets themselves.

``truth`` keys (each optional; a task's codec says which it needs):
- ``image``:   HxWx3 uint8, the target picture (restoration, editing, generation, style, inpainting)
- ``mask``:    HxW bool, the referred object's pixels
- ``boxes``:   Nx4 float32, xyxy in pixels, the referred object(s)
- ``depth``:   HxW float32, metric depth in metres (camera z), inf or nan where there is nothing
- ``normals``: HxWx3 float32, unit vectors in the camera frame (x right, y up, z toward the camera)
- ``labels``:  HxW int32 semantic class ids (0 = background); class names in ``meta["classes"]``
- ``instances``: HxW int32 instance ids (0 = none)

``slots`` keys (strings; the instruction templates use only these): object, colour, caption,
scale, new_object, direction, background, material, style.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SLOT_NAMES = ("object", "colour", "caption", "scale", "new_object", "direction", "background",
              "material", "style")


@dataclass
class Sample:
    task: str
    input: np.ndarray  # HxWx3 uint8 RGB
    truth: dict[str, Any] = field(default_factory=dict)
    slots: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # JSON-able: seed, source, generator params

    def __post_init__(self) -> None:
        if self.input.dtype != np.uint8 or self.input.ndim != 3 or self.input.shape[2] != 3:
            raise ValueError(f"Sample.input must be HxWx3 uint8, got {self.input.dtype} {self.input.shape}")
        bad = sorted(set(self.slots) - set(SLOT_NAMES))
        if bad:
            raise ValueError(f"unknown instruction slot(s) {bad}; allowed: {SLOT_NAMES}")

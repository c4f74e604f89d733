"""Building grounding samples (refseg_mask, refseg_overlay, refbox) from a mask and a phrase.

Shared by the COCO (category as the phrase) and RefCOCO-family (referring sentence) adapters.
The colour the instruction names for overlays and boxes is drawn from
``pixwizard.tasks.colours`` with the per-item generator, so it is deterministic per item.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pixwizard.data.sample import Sample
from pixwizard.tasks.colours import colour_names

GROUNDING_TASKS: tuple[str, ...] = ("refseg_mask", "refseg_overlay", "refbox")
# Tasks whose instruction names a colour (the codec draws in it).
COLOURED_TASKS = frozenset({"refseg_overlay", "refbox"})


def check_grounding_tasks(tasks: Sequence[str], dataset: str) -> tuple[str, ...]:
    bad = [t for t in tasks if t not in GROUNDING_TASKS]
    if bad or not tasks:
        raise ValueError(f"{dataset}: grounding tasks must be a non-empty subset of {GROUNDING_TASKS}, "
                         f"got {list(tasks)}")
    return tuple(tasks)


def grounding_sample(task: str, image: np.ndarray, mask: np.ndarray, boxes_xyxy: Sequence[Sequence[float]],
                     phrase: str, rng: np.random.Generator, meta: dict[str, Any],
                     colours: Sequence[str] | None = None) -> Sample:
    """A grounding ``Sample``: ``truth`` holds ``mask`` (HxW bool) and ``boxes`` (Nx4 float32
    xyxy pixels; N = 0 when the phrase refers to nothing); ``slots`` hold ``object`` and, for
    overlay/box tasks, a ``colour`` drawn from ``colours`` (default: every named colour)."""
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")
    slots = {"object": phrase}
    if task in COLOURED_TASKS:
        names = tuple(colours) if colours else colour_names()
        slots["colour"] = names[int(rng.integers(len(names)))]
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    return Sample(task=task, input=image, truth={"mask": mask.astype(bool), "boxes": boxes}, slots=slots,
                  meta=meta)

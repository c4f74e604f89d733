"""Example instructions: a few plain requests per domain (the UI's chips) and per task (the API)."""

from __future__ import annotations

from pixwizard.tasks.instructions import fill_with_fillers, phrasings
from pixwizard.tasks.registry import get_task

# Written the way people ask; shown as clickable chips per domain in the web UI.
DOMAIN_EXAMPLES: dict[str, tuple[str, ...]] = {
    "restoration": ("remove the noise", "remove the rain", "make it brighter", "remove the haze"),
    "grounding": ("make a mask of the red cube", "draw a blue box around the sphere"),
    "dense": ("estimate the depth", "show the surface normals", "segment the scene", "find the edges"),
    "control": ("turn this edge map into a photo of a red cube on a wooden floor",),
    "editing": ("make the red cube blue", "remove the sphere", "make it look like a watercolour"),
    "inpainting": ("fill in the missing region", "extend the image beyond its borders"),
    "t2i": ("a red cube and a blue sphere on a tiled floor",),
}

# The typed outputs each codec's decoding gives, named as in pixwizard.outputs.
CODEC_OUTPUTS: dict[str, tuple[str, ...]] = {
    "image": (), "depth": ("depth", "depth16"), "normals": ("normals",), "semseg": ("labels",),
    "overlay": ("mask",), "mask": ("mask",), "box": ("boxes",),
}


def task_examples(task_id: str, n: int = 2) -> list[str]:
    """The first ``n`` training phrasings of a task, filled with generic slot values."""
    return [fill_with_fillers(p, i) for i, p in enumerate(phrasings(get_task(task_id).id, "train")[:n])]

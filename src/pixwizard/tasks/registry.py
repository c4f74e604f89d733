"""The task registry: every canonical task id mapped to its ``TaskSpec``.

Look tasks up with ``get_task(id)`` (an unknown id raises a ValueError naming the closest ids);
group them with ``tasks_by_domain()``.
"""

from __future__ import annotations

import difflib

from pixwizard.tasks.spec import DOMAINS, TaskSpec

# Metric sets (names understood by pixwizard.eval); the first metric is the headline.
RESTORE = ("psnr", "ssim")
REFSEG = ("ciou", "giou")
REFBOX = ("box_acc50",)
DEPTH = ("absrel", "rmse", "delta1")
NORMALS = ("mean_angle", "median_angle", "pct_11_25")
SEMSEG = ("miou", "pixel_acc")
EDGES = ("edge_f1",)
PHOTO_CONTROL = ("psnr", "ssim", "edge_f1")  # edge_f1: edges of the output vs the control map
WORLD_GEN = ("psnr", "ssim", "faithfulness")  # faithfulness: the condition re-derived from the output
EDIT = ("psnr", "ssim", "preserve_psnr")  # preserve_psnr: PSNR outside the edited region
STYLE = ("psnr", "ssim")
INPAINT = ("psnr", "ssim", "masked_psnr")

_P, _W = "photo", "world"

# (id, domain, title, source, codec, metrics, required slots, optional slots)
_TABLE: tuple[tuple, ...] = (
    ("denoise", "restoration", "Denoising", _P, "image", RESTORE, (), ()),
    ("derain", "restoration", "Rain streak removal", _P, "image", RESTORE, (), ()),
    ("raindrop_removal", "restoration", "Raindrop removal", _P, "image", RESTORE, (), ()),
    ("dehaze", "restoration", "Dehazing", _P, "image", RESTORE, (), ()),
    ("deblur_motion", "restoration", "Motion deblurring", _P, "image", RESTORE, (), ()),
    ("deblur_defocus", "restoration", "Defocus deblurring", _P, "image", RESTORE, (), ()),
    ("deblur_gaussian", "restoration", "Gaussian deblurring", _P, "image", RESTORE, (), ()),
    ("desnow", "restoration", "Snow removal", _P, "image", RESTORE, (), ()),
    ("lowlight", "restoration", "Low-light enhancement", _P, "image", RESTORE, (), ()),
    ("sr_x2", "restoration", "Super-resolution x2", _P, "image", RESTORE, (), ()),
    ("sr_x4", "restoration", "Super-resolution x4", _P, "image", RESTORE, (), ()),
    ("jpeg_artifact", "restoration", "JPEG artifact removal", _P, "image", RESTORE, (), ()),
    ("deshadow", "restoration", "Shadow removal", _P, "image", RESTORE, (), ()),
    ("watermark_removal", "restoration", "Watermark removal", _P, "image", RESTORE, (), ()),
    ("demoire", "restoration", "Moire removal", _P, "image", RESTORE, (), ()),
    ("colorize", "restoration", "Colourisation", _P, "image", RESTORE, (), ()),
    ("refseg_overlay", "grounding", "Referring segmentation (overlay)", _W, "overlay", REFSEG,
     ("object", "colour"), ()),
    ("refseg_mask", "grounding", "Referring segmentation (binary mask)", _W, "mask", REFSEG, ("object",), ()),
    ("refbox", "grounding", "Referring box", _W, "box", REFBOX, ("object", "colour"), ()),
    ("depth", "dense", "Depth estimation", _W, "depth", DEPTH, (), ()),
    ("normals", "dense", "Surface normal estimation", _W, "normals", NORMALS, (), ()),
    ("semseg", "dense", "Semantic segmentation", _W, "semseg", SEMSEG, (), ()),
    ("canny", "dense", "Canny edge detection", _P, "mask", EDGES, (), ()),
    ("sketch", "dense", "Line-art extraction", _P, "image", RESTORE, (), ()),
    ("canny_to_image", "control", "Canny to image", _P, "image", PHOTO_CONTROL, (), ("caption",)),
    ("sketch_to_image", "control", "Sketch to image", _P, "image", PHOTO_CONTROL, (), ("caption",)),
    ("depth_to_image", "control", "Depth to image", _W, "image", WORLD_GEN, ("caption",), ()),
    ("normal_to_image", "control", "Normal map to image", _W, "image", WORLD_GEN, ("caption",), ()),
    ("seg_to_image", "control", "Segmentation to image", _W, "image", WORLD_GEN, ("caption",), ()),
    ("edit_remove", "editing", "Remove an object", _W, "image", EDIT, ("object",), ()),
    ("edit_add", "editing", "Add an object", _W, "image", EDIT, ("new_object",), ()),
    ("edit_replace", "editing", "Replace an object", _W, "image", EDIT, ("object", "new_object"), ()),
    ("edit_recolor", "editing", "Change colour or material", _W, "image", EDIT, ("object",),
     ("colour", "material")),
    ("edit_move", "editing", "Move an object", _W, "image", EDIT, ("object", "direction"), ()),
    ("edit_background", "editing", "Change the background", _W, "image", EDIT, ("background",), ()),
    ("style_sketch", "editing", "Pencil-sketch style", _P, "image", STYLE, (), ()),
    ("style_watercolor", "editing", "Watercolour style", _P, "image", STYLE, (), ()),
    ("style_oil", "editing", "Oil-painting style", _P, "image", STYLE, (), ()),
    ("style_cartoon", "editing", "Cartoon style", _P, "image", STYLE, (), ()),
    ("inpaint_freeform", "inpainting", "Free-form inpainting", _P, "image", INPAINT, (), ()),
    ("inpaint_box", "inpainting", "Box inpainting", _P, "image", INPAINT, (), ()),
    ("inpaint_circle", "inpainting", "Circle inpainting", _P, "image", INPAINT, (), ()),
    ("outpaint", "inpainting", "Outpainting", _P, "image", INPAINT, (), ()),
    ("t2i", "t2i", "Text to image", _W, "image", WORLD_GEN, ("caption",), ()),
)

REGISTRY: dict[str, TaskSpec] = {
    row[0]: TaskSpec(id=row[0], domain=row[1], title=row[2], source=row[3], codec=row[4], metrics=row[5],
                     slots=row[6], optional_slots=row[7])
    for row in _TABLE
}


# Tasks added at run time (fine-tuned adapters, ``pixwizard.finetune.tasks``): id -> phrasings.
CUSTOM_PHRASINGS: dict[str, tuple[str, ...]] = {}


def register_task(spec: TaskSpec, phrasings: tuple[str, ...]) -> None:
    """Add a task defined outside the shipped table, with its own phrasings (re-registering the same
    spec is a no-op; a different spec under a shipped or already registered id is an error)."""
    if spec.id in REGISTRY and (spec.id not in CUSTOM_PHRASINGS or REGISTRY[spec.id] != spec):
        raise ValueError(f"task id {spec.id!r} is already taken by a different task")
    if not phrasings:
        raise ValueError(f"task {spec.id!r} needs at least one phrasing")
    REGISTRY[spec.id] = spec
    CUSTOM_PHRASINGS[spec.id] = tuple(phrasings)


def task_ids() -> tuple[str, ...]:
    """All canonical task ids, in registry order (grouped by domain)."""
    return tuple(REGISTRY)


def get_task(task_id: str) -> TaskSpec:
    """The spec of ``task_id``; an unknown id raises ValueError naming the closest known ids."""
    try:
        return REGISTRY[task_id]
    except KeyError:
        close = difflib.get_close_matches(str(task_id), list(REGISTRY), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known tasks: {', '.join(REGISTRY)}"
        raise ValueError(f"unknown task {task_id!r}{hint}") from None


def tasks_by_domain() -> dict[str, list[TaskSpec]]:
    """Tasks grouped by domain, domains in ``DOMAINS`` order, tasks in registry order."""
    groups: dict[str, list[TaskSpec]] = {d: [] for d in DOMAINS}
    for spec in REGISTRY.values():
        groups[spec.domain].append(spec)
    return groups

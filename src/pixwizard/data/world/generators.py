"""World task generators: seeded pure functions ``(seed, textures, size) -> Sample``.

``WORLD_GENERATORS`` maps each 3D-world task id to its generator. A generator draws everything from
``np.random.default_rng(seed)``: the same seed (and textures) gives the same Sample. ``textures`` is
a list of photo paths for the ground and wall; None or empty uses procedural textures.

Per task (``truth`` keys as in ``pixwizard.data.sample``):
- refseg_overlay / refbox: input = render; truth mask + boxes of the referent; slots object
  ("the <unique referring expression>") and colour (a highlight colour from the shared table,
  never the object's own colour).  refseg_mask: the same without the colour slot.
- depth / normals / semseg: input = render; truth depth (metres) / normals (camera frame) /
  labels (0 background, ``SHAPES.index + 1``; names in ``meta["classes"]``) and instances.
- depth_to_image / normal_to_image / seg_to_image: input = the control map encoded with the
  task codecs of ``pixwizard.tasks.codecs`` (depth grey near = bright over the depth codec's range,
  normals (n + 1) / 2, labels in ``SEMSEG_PALETTE``); truth image = render; slot caption.
- edit_*: input = render of the scene, truth image = render of the edited scene with the same
  camera and light, truth mask = ``edits.changed_region``; slots from the edit.
- t2i: input = blank white or black canvas; truth image = render; slot caption.

``meta`` always holds ``source="world"``, the seed and the scene graph (``scene_to_dict``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pixwizard.data.sample import Sample
from pixwizard.data.world.edits import EDITS, changed_region
from pixwizard.data.world.language import caption, refer
from pixwizard.data.world.render import Render, render_scene
from pixwizard.data.world.scene import SHAPES, Scene, sample_scene, scene_to_dict
from pixwizard.tasks.codecs import get_codec
from pixwizard.tasks.colours import colour_names

Generator = Callable[[int, Sequence[Path] | None, int], Sample]
CLASSES: tuple[str, ...] = ("background",) + SHAPES
MAX_TRIES = 20  # scenes drawn (from the same rng) before a generator gives up
MIN_VISIBLE_FRACTION = 0.002  # of the image area, for an object to be referred to or edited


class GenerationError(RuntimeError):
    """No valid sample after ``MAX_TRIES`` scenes (should not happen with the default sampler)."""


def _visible(render: Render) -> list[bool]:
    threshold = max(12, int(MIN_VISIBLE_FRACTION * render.size ** 2))
    return [int(c) >= threshold for c in render.pixel_counts]


def _meta(task: str, seed: int, scene: Scene, **extra) -> dict:
    return {"source": "world", "task": task, "seed": int(seed), "scene": scene_to_dict(scene), **extra}


def _scene_and_render(rng: np.random.Generator, textures: Sequence[Path] | None, size: int) -> tuple[Scene, Render]:
    scene = sample_scene(rng, textures)
    return scene, render_scene(scene, size)


def _grounding(task: str, with_colour: bool) -> Generator:
    def generate(seed: int, textures: Sequence[Path] | None = None, size: int = 256) -> Sample:
        rng = np.random.default_rng(seed)
        for _ in range(MAX_TRIES):
            scene, render = _scene_and_render(rng, textures, size)
            visible = _visible(render)
            candidates = [i for i in range(len(scene.objects)) if visible[i]]
            rng.shuffle(candidates)
            for i in candidates:
                expr = refer(scene, i, anchors_allowed=visible)
                if expr is None:
                    continue
                slots = {"object": f"the {expr.text}"}
                if with_colour:
                    options = [c for c in colour_names() if c != scene.objects[i].colour]
                    slots["colour"] = options[int(rng.integers(len(options)))]
                truth = {"mask": render.instances == i + 1, "boxes": render.boxes[i:i + 1].copy()}
                return Sample(task=task, input=render.rgb, truth=truth, slots=slots,
                              meta=_meta(task, seed, scene, referent=i, expression=expr.text))
        raise GenerationError(f"{task}: no referable object in {MAX_TRIES} scenes (seed {seed})")

    generate.__name__ = f"generate_{task}"
    return generate


def _dense(task: str) -> Generator:
    def generate(seed: int, textures: Sequence[Path] | None = None, size: int = 256) -> Sample:
        rng = np.random.default_rng(seed)
        scene, render = _scene_and_render(rng, textures, size)
        truth = {"depth": render.depth, "normals": render.normals, "labels": render.labels,
                 "instances": render.instances}
        return Sample(task=task, input=render.rgb, truth=truth,
                      meta=_meta(task, seed, scene, classes=list(CLASSES)))

    generate.__name__ = f"generate_{task}"
    return generate


# Control task -> (codec name, truth key the codec reads).
_CONTROL = {"depth_to_image": ("depth", "depth"), "normal_to_image": ("normals", "normals"),
            "seg_to_image": ("semseg", "labels")}


def _control(task: str) -> Generator:
    codec_name, key = _CONTROL[task]

    def generate(seed: int, textures: Sequence[Path] | None = None, size: int = 256) -> Sample:
        rng = np.random.default_rng(seed)
        scene, render = _scene_and_render(rng, textures, size)
        value = getattr(render, key)
        control = get_codec(codec_name).encode(Sample(task=codec_name, input=render.rgb, truth={key: value}))
        return Sample(task=task, input=control, truth={"image": render.rgb, key: value},
                      slots={"caption": caption(scene)},
                      meta=_meta(task, seed, scene, classes=list(CLASSES), control_codec=codec_name))

    generate.__name__ = f"generate_{task}"
    return generate


def _edit(task: str) -> Generator:
    edit_fn = EDITS[task]

    def generate(seed: int, textures: Sequence[Path] | None = None, size: int = 256) -> Sample:
        rng = np.random.default_rng(seed)
        for _ in range(MAX_TRIES):
            scene, before = _scene_and_render(rng, textures, size)
            kwargs = {"textures": textures} if task == "edit_background" else {}
            edit = edit_fn(scene, rng, visible=_visible(before), **kwargs)
            if edit is None:
                continue
            after = render_scene(edit.after, size)
            if edit.index_after is not None and not _visible(after)[edit.index_after]:
                continue  # the added / changed object would hardly show
            truth = {"image": after.rgb, "mask": changed_region(edit, before, after)}
            return Sample(task=task, input=before.rgb, truth=truth, slots=dict(edit.slots),
                          meta=_meta(task, seed, scene, edit=edit.kind, edited_scene=scene_to_dict(edit.after),
                                     index_before=edit.index_before, index_after=edit.index_after))
        raise GenerationError(f"{task}: no valid edit in {MAX_TRIES} scenes (seed {seed})")

    generate.__name__ = f"generate_{task}"
    return generate


def generate_t2i(seed: int, textures: Sequence[Path] | None = None, size: int = 256) -> Sample:
    rng = np.random.default_rng(seed)
    scene, render = _scene_and_render(rng, textures, size)
    canvas_value = 255 if rng.random() < 0.5 else 0
    canvas = np.full((size, size, 3), canvas_value, dtype=np.uint8)
    return Sample(task="t2i", input=canvas, truth={"image": render.rgb}, slots={"caption": caption(scene)},
                  meta=_meta("t2i", seed, scene, canvas="white" if canvas_value else "black"))


WORLD_GENERATORS: dict[str, Generator] = {
    "refseg_overlay": _grounding("refseg_overlay", with_colour=True),
    "refseg_mask": _grounding("refseg_mask", with_colour=False),
    "refbox": _grounding("refbox", with_colour=True),
    **{t: _dense(t) for t in ("depth", "normals", "semseg")},
    **{t: _control(t) for t in _CONTROL},
    **{t: _edit(t) for t in EDITS},
    "t2i": generate_t2i,
}
"""Task id -> generator ``(seed, textures=None, size=256) -> Sample``."""

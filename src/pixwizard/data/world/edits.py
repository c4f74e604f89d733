"""Counterfactual edits of a scene graph: the edited scene keeps the camera and the light, so
rendering both gives an exact before/after pair.

Each edit returns an ``Edit`` with the scenes before and after, the index of the changed object in
each (None where it does not exist: added / removed objects, background changes) and the
instruction slots (``object`` = "the <referring expression>", ``new_object`` with its article,
e.g. "a small red cube left of the blue sphere"). Edits draw their choices from the ``np.random.Generator`` passed in and return
None when the scene offers no valid edit of that kind (e.g. no free spot to add an object).

Directions for ``move``, judged from the camera: "left"/"right" along the image's horizontal axis
on the ground, "forward" = towards the camera, "back" = away from it. The moved object must stay in
the placement area and clear of all other objects (``scene.fits``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from pixwizard.data.world.language import refer, relation_holds, unique_attribute_expr, view_positions
from pixwizard.data.world.render import Render
from pixwizard.data.world.scene import (MATERIALS, OBJECT_COLOURS, SHAPES, Scene, fits, random_object,
                                        sample_background)

DIRECTIONS: dict[str, tuple[str, float]] = {
    # name -> (axis on the camera's ground frame, sign); phrase templates below
    "left": ("right", -1.0), "right": ("right", 1.0), "forward": ("toward", 1.0), "back": ("toward", -1.0)}
DIRECTION_PHRASES = {"left": "{cm} cm to the left", "right": "{cm} cm to the right",
                     "forward": "{cm} cm towards the camera", "back": "{cm} cm away from the camera"}
MOVE_AMOUNTS_CM = (30, 40, 50, 60, 70)


@dataclass(frozen=True)
class Edit:
    kind: str
    before: Scene
    after: Scene
    index_before: int | None
    index_after: int | None
    slots: dict[str, str]


def changed_region(edit: Edit, before: Render, after: Render) -> np.ndarray:
    """HxW bool: the changed object's pixels before and after (every background pixel for a
    background change), plus every pixel whose colour differs (the object's shadow)."""
    mask = np.any(before.rgb != after.rgb, axis=-1)
    if edit.index_before is not None:
        mask |= before.instances == edit.index_before + 1
    if edit.index_after is not None:
        mask |= after.instances == edit.index_after + 1
    if edit.kind == "background":
        mask |= (before.instances == 0) | (after.instances == 0)
    return mask


def _with_article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def _referable(scene: Scene, visible: Sequence[bool] | None) -> list[tuple[int, str]]:
    out = []
    for i in range(len(scene.objects)):
        if visible is not None and not visible[i]:
            continue
        expr = refer(scene, i, anchors_allowed=visible)
        if expr is not None:
            out.append((i, f"the {expr.text}"))
    return out


def remove(scene: Scene, rng: np.random.Generator, visible: Sequence[bool] | None = None) -> Edit | None:
    choices = _referable(scene, visible)
    if not choices:
        return None
    i, text = choices[int(rng.integers(len(choices)))]
    after = scene.with_objects(scene.objects[:i] + scene.objects[i + 1:])
    return Edit("remove", scene, after, i, None, {"object": text})


def add(scene: Scene, rng: np.random.Generator, visible: Sequence[bool] | None = None) -> Edit | None:
    """Add a random object in a free spot; ``new_object`` names it and, where one exists, its relation
    to an anchor that attributes alone describe uniquely in the edited scene."""
    obj = random_object(rng, scene.objects, scene.camera)
    if obj is None:
        return None
    after = scene.with_objects(scene.objects + (obj,))
    new = len(after.objects) - 1
    words = [obj.size] + (["shiny"] if obj.material == "shiny" else []) + [obj.colour, obj.shape]
    phrase = _with_article(" ".join(words))
    pos = view_positions(after)
    options = []
    for j in range(len(scene.objects)):
        if visible is not None and not visible[j]:
            continue
        anchor = unique_attribute_expr(after, j)
        if anchor is None:
            continue
        for relation in ("left of", "right of", "in front of", "behind"):
            if relation_holds(relation, pos[new], pos[j]):
                options.append(f"{relation} the {anchor.text}")
    if options:
        phrase = f"{phrase} {options[int(rng.integers(len(options)))]}"
    return Edit("add", scene, after, None, new, {"new_object": phrase})


def replace_shape(scene: Scene, rng: np.random.Generator, visible: Sequence[bool] | None = None) -> Edit | None:
    """Replace an object by one of another shape (same colour, size, material, place)."""
    choices = _referable(scene, visible)
    rng.shuffle(choices)
    for i, text in choices:
        old = scene.objects[i]
        shapes = [s for s in SHAPES if s != old.shape]
        rng.shuffle(shapes)
        others = scene.objects[:i] + scene.objects[i + 1:]
        for shape in shapes:
            new = replace(old, shape=shape)
            if fits(new, others, scene.camera):
                after = scene.with_objects(scene.objects[:i] + (new,) + scene.objects[i + 1:])
                return Edit("replace", scene, after, i, i, {"object": text, "new_object": _with_article(f"{new.colour} {shape}")})
    return None


def recolour(scene: Scene, rng: np.random.Generator, visible: Sequence[bool] | None = None,
             material_probability: float = 0.25) -> Edit | None:
    """Change an object's colour (slot ``colour``) or, with ``material_probability``, its material
    (slot ``material``)."""
    choices = _referable(scene, visible)
    if not choices:
        return None
    i, text = choices[int(rng.integers(len(choices)))]
    old = scene.objects[i]
    if rng.random() < material_probability:
        material = next(m for m in MATERIALS if m != old.material)
        new = replace(old, material=material)
        slots = {"object": text, "material": material}
    else:
        colours = [c for c in OBJECT_COLOURS if c != old.colour]
        colour = colours[int(rng.integers(len(colours)))]
        new = replace(old, colour=colour)
        slots = {"object": text, "colour": colour}
    after = scene.with_objects(scene.objects[:i] + (new,) + scene.objects[i + 1:])
    return Edit("recolour", scene, after, i, i, slots)


def move(scene: Scene, rng: np.random.Generator, visible: Sequence[bool] | None = None) -> Edit | None:
    """Move an object by a stated amount in a direction where it stays in view and collides with nothing."""
    choices = _referable(scene, visible)
    rng.shuffle(choices)
    cam = scene.camera
    axes = {"right": cam.right_ground, "toward": cam.toward_ground}
    for i, text in choices:
        old = scene.objects[i]
        others = scene.objects[:i] + scene.objects[i + 1:]
        options = []
        for name, (axis, sign) in DIRECTIONS.items():
            for cm in MOVE_AMOUNTS_CM:
                step = axes[axis] * sign * cm / 100.0
                new = replace(old, x=float(old.x + step[0]), y=float(old.y + step[1]))
                if fits(new, others, cam):
                    options.append((name, cm, new))
        if options:
            name, cm, new = options[int(rng.integers(len(options)))]
            after = scene.with_objects(scene.objects[:i] + (new,) + scene.objects[i + 1:])
            return Edit("move", scene, after, i, i,
                        {"object": text, "direction": DIRECTION_PHRASES[name].format(cm=cm)})
    return None


def change_background(scene: Scene, rng: np.random.Generator, textures: Sequence | None = None,
                      visible: Sequence[bool] | None = None) -> Edit | None:
    """New ground and wall textures, both different from the current ones."""
    for _ in range(20):
        bg = sample_background(rng, textures)
        if bg.ground != scene.background.ground and bg.wall != scene.background.wall:
            after = replace(scene, background=bg)
            return Edit("background", scene, after, None, None, {"background": bg.phrase})
    return None


EDITS: dict[str, Callable[..., Edit | None]] = {
    "edit_remove": remove, "edit_add": add, "edit_replace": replace_shape, "edit_recolor": recolour,
    "edit_move": move, "edit_background": change_background}
"""Task id -> edit function ``(scene, rng, visible=...) -> Edit | None`` (background also takes textures)."""

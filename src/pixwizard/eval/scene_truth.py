"""Truth re-derived from a world item's scene graph (``meta["scene"]``) when the generator did not store it."""

from __future__ import annotations

from typing import Any

import numpy as np

from pixwizard.eval.suites import EvalItem


def scene_from_dict(d: dict[str, Any]):
    """Rebuild a ``pixwizard.data.world.scene.Scene`` from ``scene_to_dict`` output (meta["scene"])."""
    from pixwizard.data.world.scene import Background, Camera, Light, Scene, Texture, WorldObject

    def tup(x: dict[str, Any]) -> dict[str, Any]:
        return {k: tuple(v) if isinstance(v, list) else v for k, v in x.items()}

    bg = d["background"]
    return Scene(objects=tuple(WorldObject(**o) for o in d["objects"]), camera=Camera(**tup(d["camera"])),
                 light=Light(**tup(d["light"])),
                 background=Background(ground=Texture(**bg["ground"]), wall=Texture(**bg["wall"])))


def scene_instances(item: EvalItem) -> np.ndarray:
    """Instance ids of the item's ground-truth render, re-rendered from ``meta["scene"]``; checked
    against the stored render so a mismatch is an error, not a silent wrong score."""
    from pixwizard.data.world.render import render_scene

    if "scene" not in item.sample.meta:
        raise ValueError(f"item {item.ref.key}: no scene graph to derive instance masks from")
    render = render_scene(scene_from_dict(item.sample.meta["scene"]), item.sample.input.shape[0])
    reference = item.sample.truth.get("image")
    if reference is not None and np.abs(render.rgb.astype(int) - reference.astype(int)).mean() > 1.0:
        raise RuntimeError(f"item {item.ref.key}: re-rendering the scene does not reproduce its image")
    return render.instances

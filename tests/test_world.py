"""Tests of the procedural 3D world: renderer geometry, language, edits and the task generators.

Renders are 64-96 px to keep the suite fast on 2 cores.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from pixwizard.data.sample import SLOT_NAMES, Sample
from pixwizard.data.world import edits as E
from pixwizard.data.world.generators import CLASSES, WORLD_GENERATORS
from pixwizard.data.world.language import RefExpr, caption, evaluate, parse, refer
from pixwizard.data.world.render import backproject, get_renderer
from pixwizard.data.world.scene import (WALL_DISTANCE, Background, Camera, Light, Scene, Texture, WorldObject,
                                        fits, sample_scene)
from pixwizard.tasks.codecs import encode_target

WORLD_TASKS = {"refseg_overlay", "refseg_mask", "refbox", "depth", "normals", "semseg", "depth_to_image",
               "normal_to_image", "seg_to_image", "edit_remove", "edit_add", "edit_replace", "edit_recolor",
               "edit_move", "edit_background", "t2i"}


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PIXWIZARD_CACHE", str(tmp_path_factory.mktemp("pwcache")))
    yield
    mp.undo()


def _bg() -> Background:
    return Background(ground=Texture("tiled", "tiled", 0), wall=Texture("brick", "brick", 0))


def _scene(objects, azimuth=0.0, elevation=35.0, light=(0.3, 0.2, 0.93)) -> Scene:
    cam = Camera(azimuth=azimuth, elevation=elevation, distance=5.0, fov=45.0)
    return Scene(objects=tuple(objects), camera=cam, light=Light(direction=light), background=_bg())


def _world_points(render) -> np.ndarray:
    pts = backproject(np.where(np.isfinite(render.depth), render.depth, 1.0), render.focal).astype(np.float64)
    inv = np.linalg.inv(render.view)
    return pts @ inv[:3, :3].T + inv[:3, 3]


def test_depth_matches_geometry():
    s = 0.38
    cube = WorldObject("cube", "red", "large", "matte", x=0.2, y=-0.3, yaw=0.0)
    r = get_renderer().render(_scene([cube]), 96)
    world = _world_points(r)
    background = r.instances == 0
    ground = background & (world[..., 0] > -WALL_DISTANCE + 0.05)  # camera on +x: the wall is the plane x = -3.2
    wall = background & ~ground
    assert ground.sum() > 1000 and wall.sum() > 300
    assert np.abs(world[ground][:, 2]).max() < 1e-3  # every ground pixel lies on z = 0
    assert np.abs(world[wall][:, 0] + WALL_DISTANCE).max() < 1e-3
    on_cube = r.instances == 1
    assert on_cube.sum() > 100
    p = world[on_cube] - np.array([0.2, -0.3, s])
    # Every cube pixel lies on the cube's surface: max(|dx|, |dy|, |dz|) == half-size.
    assert np.abs(np.abs(p).max(axis=1) - s).max() < 1e-3
    # Depth is the camera z distance: the target point's depth equals the camera distance.
    centre = r.depth[48, 48]
    assert 2.5 < centre < 5.0


def test_normals_unit_and_ground_up():
    cube = WorldObject("cube", "blue", "large", "matte", x=0.0, y=0.0)
    sphere = WorldObject("sphere", "green", "large", "shiny", x=0.0, y=1.2)
    r = get_renderer().render(_scene([cube, sphere], azimuth=20.0), 96)
    hit = np.isfinite(r.depth)
    lengths = np.linalg.norm(r.normals[hit], axis=1)
    assert np.allclose(lengths, 1.0, atol=1e-4)
    n_world = r.normals.astype(np.float64) @ r.view[:3, :3]  # camera -> world
    world = _world_points(r)
    ground = (r.instances == 0) & (np.abs(world[..., 2]) < 1e-3)
    ground = ndimage.binary_erosion(ground, iterations=1)
    cos = n_world[ground] @ np.array([0.0, 0.0, 1.0])
    assert np.median(cos) > 0.9999 and (cos > 0.999).mean() > 0.98
    # The cube's top face (pixels at the top height) points up too.
    top = (r.instances == 1) & (np.abs(world[..., 2] - 0.76) < 0.01)
    top = ndimage.binary_erosion(top)
    assert top.sum() > 10 and (n_world[top] @ np.array([0.0, 0.0, 1.0])).min() > 0.99
    # Normals face the camera (positive z in the camera frame).
    assert (r.normals[hit][:, 2] > -1e-3).all()


def test_boxes_tight_and_labels():
    scene = sample_scene(np.random.default_rng(3))
    r = get_renderer().render(scene, 80)
    for i, obj in enumerate(scene.objects):
        m = r.instances == i + 1
        if not m.any():
            assert np.isnan(r.boxes[i]).all()
            continue
        x0, y0, x1, y1 = r.boxes[i].astype(int)
        assert m[:, :x0].sum() == 0 and m[:, x1:].sum() == 0 and m[:y0].sum() == 0 and m[y1:].sum() == 0
        assert m[:, x0].any() and m[:, x1 - 1].any() and m[y0].any() and m[y1 - 1].any()
        assert (r.labels[m] == CLASSES.index(obj.shape)).all()
        assert r.pixel_counts[i] == m.sum()
    assert (r.labels[r.instances == 0] == 0).all()


def test_referring_expressions_unique_and_parse_back():
    checked = 0
    for seed in range(12):
        scene = sample_scene(np.random.default_rng(seed), n_objects=(4, 6))
        for i in range(len(scene.objects)):
            expr = refer(scene, i)
            if expr is None:
                continue
            assert evaluate(expr, scene) == [i]
            assert evaluate(parse("the " + expr.text), scene) == [i]
            assert parse(expr.text) == expr
            checked += 1
    assert checked > 30


def test_twins_need_a_relation():
    c = WorldObject("sphere", "blue", "large", "matte", x=0.0, y=0.0)
    # Camera on -y looking along +y: +x is the image's right. Two identical red cubes.
    scene = _scene([WorldObject("cube", "red", "small", "matte", x=-1.0, y=0.0),
                    WorldObject("cube", "red", "small", "matte", x=1.0, y=0.0), c], azimuth=-90.0)
    left = refer(scene, 0)
    assert left is not None and left.relation == "left of" and left.anchor == RefExpr(shape="sphere")
    assert left.text == "cube left of the sphere"
    assert evaluate(RefExpr(shape="cube", colour="red"), scene) == [0, 1]  # attributes alone are ambiguous
    assert refer(scene, 1).text == "cube right of the sphere"
    with pytest.raises(ValueError):
        parse("the fluffy cube")


def test_remove_changes_only_object_and_its_shadow():
    # Camera on -y looking along +y (+x is the image's right); light from the right and the front,
    # so the removed cube's shadow falls on the ground to its left, away from the cylinder.
    left = WorldObject("cube", "red", "large", "matte", x=-1.0, y=0.0)
    right = WorldObject("cylinder", "yellow", "large", "matte", x=1.0, y=0.0)
    scene = _scene([left, right], azimuth=-90.0, light=(0.6, -0.3, 0.74))
    after = scene.with_objects([right])
    rend = get_renderer()
    # Shadows off: the change is exactly inside the removed object's pixels.
    b0, a0 = rend.render(scene, 80, shadows=False), rend.render(after, 80, shadows=False)
    diff0 = np.any(b0.rgb != a0.rgb, axis=-1)
    obj = b0.instances == 1
    assert diff0.any() and not (diff0 & ~obj).any()
    # Shadows on: the change lies inside the object plus its own cast shadow, taken from a render of
    # the object alone (1 px dilation for shadow-map rasterisation at the boundary).
    b1, a1 = rend.render(scene, 80), rend.render(after, 80)
    alone = rend.render(scene.with_objects([left]), 80)
    assert alone.shadow.sum() > 20
    allowed = ndimage.binary_dilation(obj | alone.shadow, iterations=1)
    diff1 = np.any(b1.rgb != a1.rgb, axis=-1)
    assert diff1.sum() > diff0.sum() and not (diff1 & ~allowed).any()
    edit = E.Edit("remove", scene, after, 0, None, {"object": "the cube"})
    region = E.changed_region(edit, b1, a1)
    assert (region >= diff1).all() and (region >= obj).all()


@pytest.mark.parametrize("kind", ["edit_add", "edit_replace", "edit_recolor", "edit_move", "edit_background"])
def test_edits_keep_scene_valid(kind):
    for seed in range(4):
        rng = np.random.default_rng(seed)
        scene = sample_scene(rng)
        edit = E.EDITS[kind](scene, rng)
        assert edit is not None
        assert edit.after.camera == scene.camera and edit.after.light == scene.light
        objs = edit.after.objects
        for i, o in enumerate(objs):  # nothing collides or leaves the view
            if kind in ("edit_move", "edit_add", "edit_replace") and i == (edit.index_after or 0):
                assert fits(o, objs[:i] + objs[i + 1:], scene.camera)
        if kind == "edit_move":
            old, new = scene.objects[edit.index_before], objs[edit.index_after]
            cm = int(edit.slots["direction"].split()[0])
            assert math.isclose(math.hypot(new.x - old.x, new.y - old.y), cm / 100, abs_tol=1e-6)
        if kind == "edit_background":
            assert edit.after.background != scene.background and objs == scene.objects
        if kind in ("edit_replace", "edit_recolor", "edit_move"):
            assert evaluate(parse(edit.slots["object"]), scene) == [edit.index_before]


def test_generators_cover_world_tasks_and_return_valid_samples():
    assert set(WORLD_GENERATORS) == WORLD_TASKS
    for task, gen in WORLD_GENERATORS.items():
        s = gen(7, None, 64)
        assert isinstance(s, Sample) and s.task == task
        assert s.input.shape == (64, 64, 3) and set(s.slots) <= set(SLOT_NAMES)
        target = encode_target(s)  # the task codec accepts the truth
        assert target.shape == (64, 64, 3) and target.dtype == np.uint8
        json.dumps(s.meta)
        assert s.meta["source"] == "world" and s.meta["seed"] == 7
        if task.startswith("edit_"):
            m = s.truth["mask"]
            assert m.dtype == bool and m.any() and not m.all() or task == "edit_background"
            diff = np.any(s.input != s.truth["image"], axis=-1)
            assert diff.any() and not (diff & ~m).any()  # every changed pixel is inside the mask
        if task in ("refseg_overlay", "refseg_mask", "refbox"):
            scene_objs = s.meta["scene"]["objects"]
            i = s.meta["referent"]
            assert s.truth["mask"].sum() > 0 and s.truth["boxes"].shape == (1, 4)
            assert s.slots["object"].startswith("the ")
            if "colour" in s.slots:
                assert s.slots["colour"] != scene_objs[i]["colour"]
        if task == "semseg":
            assert s.meta["classes"][0] == "background" and s.truth["labels"].max() < len(CLASSES)
        if task == "t2i":
            assert len(np.unique(s.input)) == 1 and s.slots["caption"]


def test_generators_deterministic_per_seed():
    for task in ("refbox", "edit_move", "depth_to_image"):
        a, b = WORLD_GENERATORS[task](11, None, 64), WORLD_GENERATORS[task](11, None, 64)
        c = WORLD_GENERATORS[task](12, None, 64)
        assert np.array_equal(a.input, b.input) and a.slots == b.slots
        for k in a.truth:
            assert np.array_equal(a.truth[k], b.truth[k])
        assert not np.array_equal(a.input, c.input)


def test_photo_textures_and_caption(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name in ("red_bricks", "lawn"):
        arr = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"{name}.jpg")
        paths.append(tmp_path / f"{name}.jpg")
    s = WORLD_GENERATORS["t2i"](3, paths, 64)
    assert "patterned floor" in s.slots["caption"] and "patterned wall" in s.slots["caption"]
    assert any(w in s.slots["caption"] for w in ("red bricks", "lawn"))
    scene = sample_scene(np.random.default_rng(1))
    text = caption(scene)
    assert text.count(" and ") >= 1 and text.endswith("wall")
    with pytest.raises(FileNotFoundError):
        WORLD_GENERATORS["depth"](0, [tmp_path / "missing.png"], 64)


def test_an_object_hidden_from_the_camera_renders_without_error():
    """A body id above every visible segmentation id (an object out of view) must not break the
    instance lookup table."""
    import dataclasses

    from pixwizard.data.world.render import render_scene
    from pixwizard.data.world.scene import sample_scene

    scene = sample_scene(np.random.default_rng(3), n_objects=(4, 4))
    away = tuple(dataclasses.replace(o, x=o.x + 500.0 + 10 * i) for i, o in enumerate(scene.objects[1:]))
    hidden = dataclasses.replace(scene, objects=scene.objects[:1] + away)
    r = render_scene(hidden, size=32)
    assert r.instances.max() <= len(hidden.objects) - 1

"""Photo generators: determinism, shapes, ground-truth consistency and degradation strength."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from pixwizard.data.photo import DETERMINISTIC_TASKS, PHOTO_GENERATORS, PHOTO_TASKS, RESTORATION_TASKS, prepare_photo
from pixwizard.data.photo.artifacts import bicubic_round_trip
from pixwizard.data.degenerate import MAX_DRAWS, DegenerateItemError, is_degenerate
from pixwizard.data.photo import blur
from pixwizard.data.photo.blur import disk_kernel, motion_kernel
from pixwizard.data.photo.noise import camera_noise
from pixwizard.data.photo.registry import INPAINT_TASKS, STYLE_TASKS, redrawing
from pixwizard.data.sample import Sample

cv2.setNumThreads(1)
SIZE = 64
SEEDS = (0, 1, 2, 3, 4, 5)


def _photo(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A colourful, textured stand-in photo: smooth colour field + shapes + fine texture."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, (4, 4, 3)).astype(np.float32)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    cv2.rectangle(img, (size // 8, size // 6), (size // 2, size // 2), (240, 60, 30), -1)
    cv2.circle(img, (2 * size // 3, 2 * size // 3), size // 5, (20, 90, 220), -1)
    img += rng.normal(0, 12, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


CLEAN = _photo()


def test_registry_covers_exactly_the_photo_tasks():
    expected = {"denoise", "derain", "raindrop_removal", "dehaze", "deblur_motion", "deblur_defocus",
                "deblur_gaussian", "desnow", "lowlight", "sr_x2", "sr_x4", "jpeg_artifact", "deshadow",
                "watermark_removal", "demoire", "colorize", "canny", "sketch", "canny_to_image",
                "sketch_to_image", "style_sketch", "style_watercolor", "style_oil", "style_cartoon",
                "inpaint_freeform", "inpaint_box", "inpaint_circle", "outpaint"}
    assert set(PHOTO_GENERATORS) == expected
    assert tuple(PHOTO_GENERATORS) == PHOTO_TASKS
    assert len(RESTORATION_TASKS) == 16


@pytest.mark.parametrize("task", PHOTO_TASKS)
def test_generator_contract(task):
    gen = PHOTO_GENERATORS[task]
    before = CLEAN.copy()
    a = gen(CLEAN, np.random.default_rng(7))
    b = gen(CLEAN, np.random.default_rng(7))
    c = gen(CLEAN, np.random.default_rng(8))
    assert np.array_equal(CLEAN, before), "generator modified its input"
    assert a.task == task
    for s in (a, c):
        assert s.input.shape == CLEAN.shape and s.input.dtype == np.uint8
        assert s.truth["image"].shape == CLEAN.shape and s.truth["image"].dtype == np.uint8
        json.dumps(s.meta)
        assert "params" in s.meta
    assert np.array_equal(a.input, b.input) and np.array_equal(a.truth["image"], b.truth["image"])
    assert a.meta == b.meta
    differs = not (np.array_equal(a.input, c.input) and np.array_equal(a.truth["image"], c.truth["image"]))
    assert differs == (task not in DETERMINISTIC_TASKS)


@pytest.mark.parametrize("task", RESTORATION_TASKS)
def test_restoration_target_is_clean_and_input_is_degraded(task):
    for seed in SEEDS:
        s = PHOTO_GENERATORS[task](CLEAN, np.random.default_rng(seed))
        assert np.array_equal(s.truth["image"], CLEAN)
        p = _psnr(s.input, CLEAN)
        assert 5.0 < p < 40.0, f"{task} seed {seed}: PSNR {p:.1f} dB"


@pytest.mark.parametrize("task", PHOTO_TASKS)
def test_rejects_bad_input(task):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        PHOTO_GENERATORS[task](CLEAN.astype(np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        PHOTO_GENERATORS[task](CLEAN[..., 0], np.random.default_rng(0))


def test_generators_work_on_non_square_images():
    img = _photo(3, 96)[:80]
    for task, gen in PHOTO_GENERATORS.items():
        s = gen(img, np.random.default_rng(0))
        assert s.input.shape == img.shape and s.truth["image"].shape == img.shape, task


def test_super_resolution_is_the_bicubic_round_trip():
    s2 = PHOTO_GENERATORS["sr_x2"](CLEAN, np.random.default_rng(0))
    s4 = PHOTO_GENERATORS["sr_x4"](CLEAN, np.random.default_rng(0))
    assert s2.slots == {"scale": "2x"} and s4.slots == {"scale": "4x"}
    assert np.array_equal(s4.input, bicubic_round_trip(CLEAN, 4))
    p2, p4 = _psnr(s2.input, CLEAN), _psnr(s4.input, CLEAN)
    assert 15.0 < p4 < p2 < 40.0
    # A smooth image survives the round trip almost unchanged: the input is aligned, not shifted.
    smooth = cv2.GaussianBlur(CLEAN, (0, 0), 4)
    assert _psnr(PHOTO_GENERATORS["sr_x4"](smooth, np.random.default_rng(0)).input, smooth) > 30.0


def test_colorize_input_is_grey_luma():
    s = PHOTO_GENERATORS["colorize"](CLEAN, np.random.default_rng(0))
    assert np.array_equal(s.input[..., 0], s.input[..., 1]) and np.array_equal(s.input[..., 1], s.input[..., 2])
    assert np.array_equal(s.input[..., 0], cv2.cvtColor(CLEAN, cv2.COLOR_RGB2GRAY))


def test_gaussian_noise_has_the_drawn_sigma():
    grey = np.full((128, 128, 3), 128, np.uint8)
    found = 0
    for seed in range(20):
        s = PHOTO_GENERATORS["denoise"](grey, np.random.default_rng(seed))
        p = s.meta["params"]
        if p["model"] == "gaussian":
            found += 1
            assert 15.0 <= p["sigma"] <= 50.0
            measured = float((s.input.astype(np.float64) - 128).std())
            assert abs(measured - p["sigma"]) < 0.08 * p["sigma"] + 1.0
    assert found >= 3


@pytest.mark.parametrize("mode", ["bayer", "channels"])
def test_camera_noise_is_signal_dependent(mode):
    linear = np.full((128, 128, 3), 0.05, np.float32)
    linear[:, 64:] = 0.8
    shot, read = 0.01, 1e-4
    n = camera_noise(linear, shot, read, mode, 0.5, np.random.default_rng(0))
    dark, bright = n[:, 8:56].var(), n[:, 72:120].var()
    assert bright > 5 * dark
    if mode == "channels":
        assert bright == pytest.approx(0.8 * shot + read, rel=0.1)
        assert np.corrcoef(n[..., 0].ravel(), n[..., 1].ravel())[0, 1] == pytest.approx(0.5, abs=0.05)
    else:  # demosaicing spreads each sensor sample to its neighbours: spatial correlation
        g = n[:, 72:120, 1]
        assert np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1] > 0.2


def test_haze_is_thicker_far_away():
    black = np.zeros((64, 64, 3), np.uint8)
    for seed in SEEDS:
        s = PHOTO_GENERATORS["dehaze"](black, np.random.default_rng(seed))
        p = s.meta["params"]
        assert s.input.max() <= 255 * p["light"] + 1  # I = A (1 - t) <= A
        if p["gradient_weight"] > 0.6:
            assert s.input[:8].mean() > s.input[-8:].mean()  # top = far = hazier


def test_lowlight_darkens_and_shadows_only_darken():
    for seed in SEEDS:
        dark = PHOTO_GENERATORS["lowlight"](CLEAN, np.random.default_rng(seed))
        assert dark.input.mean() < 0.6 * CLEAN.mean()
        shadow = PHOTO_GENERATORS["deshadow"](CLEAN, np.random.default_rng(seed))
        assert (shadow.input.astype(int) <= CLEAN.astype(int) + 1).all()
        assert (shadow.input.astype(int).sum(-1) < 0.8 * CLEAN.astype(int).sum(-1)).mean() > 0.01


def test_jpeg_matches_opencv_at_the_drawn_quality():
    s = PHOTO_GENERATORS["jpeg_artifact"](CLEAN, np.random.default_rng(0))
    q = s.meta["params"]["quality"]
    assert 10 <= q <= 40
    ok, buf = cv2.imencode(".jpg", CLEAN[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    assert np.array_equal(s.input, cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def test_blur_kernels_are_normalised():
    for seed in SEEDS:
        k = motion_kernel(15.0, 0.3, 0.05, 1.0, np.random.default_rng(seed))
        assert k.min() >= 0 and k.sum() == pytest.approx(1.0, abs=1e-5) and k.shape[0] % 2 == 1
        assert (k > 0).sum() >= 10  # a trajectory, not a dot
    d = disk_kernel(3.0)
    assert d.sum() == pytest.approx(1.0, abs=1e-5) and np.allclose(d, d.T) and np.allclose(d, d[::-1])
    flat = np.full((32, 32, 3), 90, np.uint8)  # blurring it changes nothing: call the raw generators
    for task in ("deblur_motion", "deblur_defocus", "deblur_gaussian"):
        assert np.abs(getattr(blur, task)(flat, np.random.default_rng(0)).input.astype(int) - 90).max() <= 1


def test_overlays_change_part_of_the_image():
    for seed in SEEDS:
        wm = PHOTO_GENERATORS["watermark_removal"](CLEAN, np.random.default_rng(seed))
        changed = (np.abs(wm.input.astype(int) - CLEAN).max(-1) > 8).mean()
        assert 0.005 < changed < 0.7
        drops = PHOTO_GENERATORS["raindrop_removal"](CLEAN, np.random.default_rng(seed))
        assert 0.01 < (np.abs(drops.input.astype(int) - CLEAN).max(-1) > 8).mean() < 0.95
        moire = PHOTO_GENERATORS["demoire"](CLEAN, np.random.default_rng(seed))
        assert (np.abs(moire.input.astype(int) - CLEAN).max(-1) > 2).mean() > 0.5


@pytest.mark.parametrize("task", INPAINT_TASKS)
def test_inpainting_hole_is_filled_and_rest_is_exact(task):
    for seed in SEEDS:
        s = PHOTO_GENERATORS[task](CLEAN, np.random.default_rng(seed))
        mask = s.truth["mask"]
        assert mask.dtype == bool and mask.shape == CLEAN.shape[:2]
        assert 0.0 < mask.mean() < 1.0
        fill = {"black": 0, "white": 255}[s.slots["colour"]]
        assert (s.input[mask] == fill).all()
        assert np.array_equal(s.input[~mask], CLEAN[~mask])
        assert np.array_equal(s.truth["image"], CLEAN)


def test_outpaint_keeps_a_centred_crop():
    layouts = set()
    for seed in range(12):
        s = PHOTO_GENERATORS["outpaint"](CLEAN, np.random.default_rng(seed))
        x0, y0, x1, y1 = s.meta["params"]["keep"]
        layouts.add(s.meta["params"]["layout"])
        assert abs(x0 - (SIZE - x1)) <= 1 and abs(y0 - (SIZE - y1)) <= 1
        expected = np.ones((SIZE, SIZE), bool)
        expected[y0:y1, x0:x1] = False
        assert np.array_equal(s.truth["mask"], expected)
        assert np.array_equal(s.input[y0:y1, x0:x1], CLEAN[y0:y1, x0:x1])
    assert len(layouts) >= 2


def test_edge_maps_and_their_inverse_tasks():
    for seed in SEEDS:
        c = PHOTO_GENERATORS["canny"](CLEAN, np.random.default_rng(seed))
        edges = c.truth["image"]
        assert set(np.unique(edges)) <= {0, 255} and (edges[..., 0] == edges[..., 2]).all()
        assert 0.005 < (edges[..., 0] > 0).mean() < 0.5
        back = PHOTO_GENERATORS["canny_to_image"](CLEAN, np.random.default_rng(seed))
        assert np.array_equal(back.input, edges) and np.array_equal(back.truth["image"], CLEAN)
        sk = PHOTO_GENERATORS["sketch"](CLEAN, np.random.default_rng(seed))
        assert np.median(sk.truth["image"]) > 180 and sk.truth["image"].min() < 120  # dark lines on white
        sk_back = PHOTO_GENERATORS["sketch_to_image"](CLEAN, np.random.default_rng(seed))
        assert np.array_equal(sk_back.input, sk.truth["image"])


@pytest.mark.parametrize("task", STYLE_TASKS)
def test_styles_keep_the_photo_as_input(task):
    s = PHOTO_GENERATORS[task](CLEAN, np.random.default_rng(0))
    assert np.array_equal(s.input, CLEAN)
    assert s.slots["style"] in {"sketch", "watercolor", "oil painting", "cartoon"}
    assert _psnr(s.truth["image"], CLEAN) < 35.0


def test_prepare_photo_crops_aligned_squares():
    src = _photo(5, 200)[:, :160]  # 200 x 160
    a = prepare_photo(src, 64, np.random.default_rng(1))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and a.flags.c_contiguous
    assert np.array_equal(a, prepare_photo(src, 64, np.random.default_rng(1)))
    # Short side == size: no resize, so the result is an exact (maybe mirrored) window of the source.
    src2 = _photo(6, 100)[:64]
    for seed in range(6):
        out = prepare_photo(src2, 64, np.random.default_rng(seed))
        windows = [src2[:, x:x + 64] for x in range(100 - 64 + 1)]
        assert any(np.array_equal(out, w) or np.array_equal(out, w[:, ::-1]) for w in windows)
    with pytest.raises(ValueError):
        prepare_photo(src.astype(np.float32), 64, np.random.default_rng(0))
    with pytest.raises(ValueError):
        prepare_photo(src, 4, np.random.default_rng(0))


# ---------------------------------------------------------------- degenerate triplets (issue 10, item 6a)


def _real_crops() -> list[np.ndarray]:
    import skimage.data

    return [prepare_photo(getattr(skimage.data, name)(), SIZE, np.random.default_rng(i))
            for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket"))]


@pytest.mark.parametrize("task", PHOTO_TASKS)
def test_no_generator_returns_its_target_as_input(task):
    """On real photos every draw changes the picture; on a crop that cannot (flat, white, grey)
    the generator refuses with DegenerateItemError instead of an input equal to its target."""
    for k, clean in enumerate([CLEAN, *_real_crops()]):
        for seed in range(4):
            s = PHOTO_GENERATORS[task](clean, np.random.default_rng(100 * k + seed))
            assert not is_degenerate(s.input, s.truth["image"]), (task, k, seed)
            assert not np.array_equal(s.input, s.truth["image"])
    grey = np.repeat(CLEAN[..., :1], 3, axis=2)
    for hard in (np.full((SIZE, SIZE, 3), 255, np.uint8), np.full((SIZE, SIZE, 3), 90, np.uint8), grey):
        for seed in range(3):
            try:
                s = PHOTO_GENERATORS[task](hard, np.random.default_rng(seed))
            except DegenerateItemError as e:
                assert task in str(e)
                continue
            assert not is_degenerate(s.input, s.truth["image"]), (task, seed)


def test_a_degenerate_draw_is_drawn_again_with_the_same_rng():
    calls = []

    def flaky(clean, rng):
        calls.append(float(rng.random()))
        out = clean.copy()
        if len(calls) >= 3:
            out[:8] = 255 - out[:8]
        return Sample("deshadow", out, truth={"image": clean.copy()})

    s = redrawing("deshadow", flaky)(CLEAN, np.random.default_rng(0))
    assert len(calls) == 3 and len(set(calls)) == 3 and not np.array_equal(s.input, CLEAN)
    assert calls == list(np.random.default_rng(0).random(3))  # reproducible: one stream, drawn on
    calls.clear()
    with pytest.raises(DegenerateItemError, match="colorize"):
        redrawing("colorize", lambda c, r: Sample("colorize", c, truth={"image": c}))(CLEAN, np.random.default_rng(0))
    never = redrawing("deshadow", lambda c, r: (calls.append(1), Sample("deshadow", c.copy(), truth={"image": c}))[1])
    with pytest.raises(DegenerateItemError):
        never(CLEAN, np.random.default_rng(0))
    assert len(calls) == MAX_DRAWS  # deterministic tasks get one draw, the others MAX_DRAWS


def test_the_data_builder_takes_another_photo_for_a_degenerate_item(tmp_path):
    import skimage.data

    from pixwizard.data.builder import ItemContext, default_toolkit, make_item
    from pixwizard.data.recipe import Recipe

    grey = np.repeat(skimage.data.camera()[:160, :160, None], 3, axis=2)
    paths = []
    for name, img in (("a_grey.png", grey), ("b_colour.png", skimage.data.astronaut()[:160, :160])):
        cv2.imwrite(str(tmp_path / name), img[..., ::-1])
        paths.append(str(tmp_path / name))
    recipe = Recipe(name="degenerate", tasks={"colorize": 1.0}, size=32, seed=0)
    ctx = ItemContext(recipe, default_toolkit(), paths, None)
    items = [make_item(i, "colorize", ctx) for i in range(6)]
    assert all(it.record["photo"] == paths[1] for it in items)
    assert any(it.record.get("degenerate_redraws") == 1 for it in items)  # the grey photo came up first
    assert all(not is_degenerate(it.sample.input, it.target) for it in items)
    with pytest.raises(DegenerateItemError, match="no source photo"):
        make_item(0, "colorize", ItemContext(recipe, default_toolkit(), paths[:1], None))

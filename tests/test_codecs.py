"""Target codecs: exact round trips and robustness on ground truth."""

import cv2
import numpy as np
import pytest

from pixwizard.data.sample import Sample
from pixwizard.tasks.codecs import (CODECS, SEMSEG_PALETTE, BoxCodec, DepthCodec, box_thickness, codec_for,
                                    encode_target, get_codec)
from pixwizard.tasks.colours import NAMED_COLOURS, colour_rgb
from pixwizard.tasks.registry import REGISTRY


def _image(h=96, w=128, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_every_task_has_a_codec():
    for task, spec in REGISTRY.items():
        assert codec_for(task) is CODECS[spec.codec]
    with pytest.raises(ValueError, match="known codecs"):
        get_codec("jpeg")


def test_image_codec_round_trip_and_size_check():
    inp, tgt = _image(seed=1), _image(seed=2)
    s = Sample(task="denoise", input=inp, truth={"image": tgt})
    enc = encode_target(s)
    assert np.array_equal(enc, tgt)
    assert np.array_equal(get_codec("image").decode(enc, inp, {}).image, tgt)
    with pytest.raises(ValueError, match="truth\\['image'\\]"):
        encode_target(Sample(task="denoise", input=inp, truth={"image": tgt[:50]}))
    with pytest.raises(ValueError, match="needs truth"):
        encode_target(Sample(task="denoise", input=inp))
    with pytest.raises(ValueError, match="same size"):
        get_codec("image").decode(tgt[:50], inp, {})


def test_depth_round_trip_within_quantisation_bound():
    rng = np.random.default_rng(0)
    inp = _image()
    depth = rng.uniform(0.5, 20.0, inp.shape[:2]).astype(np.float32)
    depth[:5] = np.inf  # sky: nothing there
    codec = get_codec("depth")
    enc = encode_target(Sample(task="depth", input=inp, truth={"depth": depth}))
    assert enc.dtype == np.uint8 and (enc[..., 0] == enc[..., 1]).all() and (enc[..., 1] == enc[..., 2]).all()
    assert (enc[:5] == 0).all()
    dec = codec.decode(enc, inp, {})
    assert dec.depth.dtype == np.float32 and dec.depth_range == (0.5, 20.0)
    err = np.abs(dec.depth[5:] - depth[5:])
    assert err.max() <= codec.quantisation_error + 1e-4
    assert codec.quantisation_error == pytest.approx(19.5 / 510)
    assert err.max() > 0.5 * codec.quantisation_error  # the bound is tight, not vacuous
    # near is bright; out-of-range depths clip to the range
    near_far = np.array([[0.2, 0.5, 5.0, 20.0, 50.0]], dtype=np.float32)
    s = Sample(task="depth", input=np.zeros((1, 5, 3), np.uint8), truth={"depth": near_far})
    assert encode_target(s)[0, :, 0].tolist() == [255, 255, 196, 0, 0]
    with pytest.raises(ValueError, match="near < far"):
        DepthCodec(near=3.0, far=1.0)


def test_normals_round_trip_angle_error_below_one_degree():
    rng = np.random.default_rng(0)
    inp = _image()
    n = rng.normal(size=inp.shape).astype(np.float32)
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    n[0, :10] = 0.0  # no surface
    enc = encode_target(Sample(task="normals", input=inp, truth={"normals": n}))
    assert (enc[0, :10] == 128).all()
    dec = get_codec("normals").decode(enc, inp, {}).normals
    assert np.isnan(dec[0, :10]).all()
    valid = np.isfinite(dec).all(axis=2)
    assert valid.sum() == n.shape[0] * n.shape[1] - 10
    assert np.allclose(np.linalg.norm(dec[valid], axis=1), 1.0, atol=1e-5)
    cos = np.clip((dec[valid] * n[valid]).sum(axis=1), -1, 1)
    assert np.degrees(np.arccos(cos)).max() < 1.0
    # the convention: a surface facing the camera (+z) is the familiar light blue
    face = np.zeros((1, 1, 3), np.float32)
    face[..., 2] = 1
    s = Sample(task="normals", input=np.zeros((1, 1, 3), np.uint8), truth={"normals": face})
    assert encode_target(s)[0, 0].tolist() == [128, 128, 255]


def test_semseg_palette_and_exact_round_trip_under_noise():
    n = len(SEMSEG_PALETTE)
    assert n >= 151 and SEMSEG_PALETTE[0].tolist() == [0, 0, 0]  # ADE20K: 150 classes + "other"
    d = np.linalg.norm(SEMSEG_PALETTE[:, None].astype(float) - SEMSEG_PALETTE[None].astype(float), axis=2)
    assert d[~np.eye(n, dtype=bool)].min() >= 51
    assert d[:8, :8][~np.eye(8, dtype=bool)].min() >= 180  # the first ids (the world's classes) stay far apart
    rng = np.random.default_rng(0)
    inp = _image()
    labels = rng.integers(0, n, inp.shape[:2]).astype(np.int32)
    enc = encode_target(Sample(task="semseg", input=inp, truth={"labels": labels}))
    codec = get_codec("semseg")
    assert np.array_equal(codec.decode(enc, inp, {}).labels, labels)
    noisy = np.clip(enc.astype(int) + rng.integers(-14, 15, enc.shape), 0, 255).astype(np.uint8)
    dec = codec.decode(noisy, inp, {}).labels
    assert dec.dtype == np.int32 and np.array_equal(dec, labels)
    with pytest.raises(ValueError, match="class ids"):
        encode_target(Sample(task="semseg", input=inp, truth={"labels": labels + 1}))


@pytest.mark.parametrize("colour", ["red", "blue", "white", "black", "cyan"])
def test_overlay_round_trip(colour):
    inp = _image(seed=3)
    mask = _disk(96, 128, 40, 70, 25)
    slots = {"object": "the cube", "colour": colour}
    enc = encode_target(Sample(task="refseg_overlay", input=inp, truth={"mask": mask}, slots=slots))
    assert np.array_equal(enc[~mask], inp[~mask])
    expect = np.rint(0.5 * inp[mask] + 0.5 * colour_rgb(colour)).astype(np.uint8)
    assert np.array_equal(enc[mask], expect)
    codec = get_codec("overlay")
    dec = codec.decode(enc, inp, slots).mask
    # only pixels whose input is already (almost) the named colour cannot show the tint
    assert _iou(dec, mask) >= 0.99
    noisy = np.clip(enc.astype(int) + np.random.default_rng(1).integers(-6, 7, enc.shape), 0, 255).astype(np.uint8)
    assert _iou(codec.decode(noisy, inp, slots).mask, mask) >= 0.95
    # the wrong colour does not decode as this mask
    other = "green" if colour != "green" else "red"
    assert _iou(codec.decode(enc, inp, {"colour": other}).mask, mask) < 0.9


def test_overlay_needs_a_known_colour():
    inp, mask = _image(), np.zeros((96, 128), bool)
    with pytest.raises(ValueError, match="colour"):
        encode_target(Sample(task="refseg_overlay", input=inp, truth={"mask": mask}, slots={"object": "x"}))
    with pytest.raises(ValueError, match="known colours"):
        get_codec("overlay").decode(inp, inp, {"colour": "teal-ish"})
    assert colour_rgb("Gray").tolist() == list(NAMED_COLOURS["grey"])
    assert len(NAMED_COLOURS) >= 12


def test_mask_round_trip():
    inp = _image()
    mask = _disk(96, 128, 50, 50, 30)
    enc = encode_target(Sample(task="refseg_mask", input=inp, truth={"mask": mask}))
    assert set(np.unique(enc).tolist()) == {0, 255}
    assert np.array_equal(get_codec("mask").decode(enc, inp, {}).mask, mask)
    with pytest.raises(ValueError, match="bool"):
        encode_target(Sample(task="refseg_mask", input=inp, truth={"mask": mask.astype(np.uint8)}))


def _smooth_image(h=96, w=128, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, (6, 8, 3)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.uint8)


@pytest.mark.parametrize("colour", ["red", "yellow", "blue"])
def test_box_round_trip_within_a_pixel(colour):
    inp = _smooth_image()
    boxes = np.array([[10, 12, 60, 50], [70.4, 30.6, 120.2, 90.3]], dtype=np.float32)
    slots = {"object": "the cube", "colour": colour}
    enc = encode_target(Sample(task="refbox", input=inp, truth={"boxes": boxes}, slots=slots))
    t = box_thickness(96, 128)
    assert t == 2
    assert (enc[12:12 + t, 10:60] == colour_rgb(colour)).all()  # outline inside the box, top edge
    assert np.array_equal(enc[20:40, 20:50], inp[20:40, 20:50])  # interior untouched
    dec = get_codec("box").decode(enc, inp, slots).boxes
    assert len(dec) == 2
    big, small = np.array(dec[0]), np.array(dec[1])
    assert np.abs(big - boxes[1]).max() <= 1.0 and np.abs(small - boxes[0]).max() <= 1.0
    noisy = np.clip(enc.astype(int) + np.random.default_rng(2).integers(-10, 11, enc.shape), 0, 255)
    dec2 = get_codec("box").decode(noisy.astype(np.uint8), inp, slots).boxes
    assert len(dec2) == 2 and np.abs(np.array(dec2) - np.array(dec)).max() <= 2.0


def test_box_thickness_scales_and_bad_boxes_fail():
    assert box_thickness(64, 64) == 2 and box_thickness(512, 1024) == 8
    inp = _smooth_image()
    with pytest.raises(ValueError, match="x2 > x1"):
        BoxCodec().encode(Sample(task="refbox", input=inp, truth={"boxes": [[50, 10, 20, 40]]},
                                 slots={"colour": "red"}))
    # no box drawn -> nothing decoded
    assert get_codec("box").decode(inp, inp, {"colour": "red"}).boxes == []

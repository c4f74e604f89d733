"""Bad-input and conversion cases for pixwizard.imageio, one file per case built in tmp_path."""

from __future__ import annotations

import io
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pixwizard.imageio import (
    ImageError,
    ImageNotFoundError,
    crop_back,
    load_image,
    pad_to_multiple,
    save_array_npy,
    save_image,
)

LIMIT = 4096 * 4096


def _gradient(h=24, w=32):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) % 256], -1).astype(np.uint8)


# ----------------------------------------------------------------------------- good inputs


def test_rgb_png_round_trip_from_path_bytes_stream_and_pil(tmp_path):
    arr = _gradient()
    p = save_image(tmp_path / "a.png", arr)
    out = load_image(p, max_pixels=LIMIT)
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    np.testing.assert_array_equal(out, arr)
    np.testing.assert_array_equal(load_image(p.read_bytes(), max_pixels=LIMIT), arr)
    with open(p, "rb") as f:
        np.testing.assert_array_equal(load_image(f, max_pixels=LIMIT), arr)
    np.testing.assert_array_equal(load_image(Image.fromarray(arr), max_pixels=LIMIT), arr)
    np.testing.assert_array_equal(load_image(str(p), max_pixels=LIMIT), arr)


def test_16bit_grey_png_is_scaled_to_8bit(tmp_path):
    v = np.array([[0, 257, 32768, 65535], [1000, 2000, 40000, 65000]], dtype=np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(v).save(p)
    assert Image.open(p).mode.startswith("I")
    out = load_image(p, max_pixels=LIMIT)
    expect = np.round(v.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert out.shape == (2, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], expect)


def test_48bit_png_is_scaled_with_rounding_and_rgb_order(tmp_path):
    rgb16 = np.zeros((3, 5, 3), np.uint16)
    rgb16[..., 0] = 65535  # red full
    rgb16[..., 1] = 128  # green: high byte 0, but rounds to 0.5 -> 0
    rgb16[..., 2] = 32896  # blue: exactly 128 * 257
    rgb16[0, 0] = (200, 65535 // 2, 255)
    p = tmp_path / "c48.png"
    assert cv2.imwrite(str(p), rgb16[..., ::-1])  # OpenCV writes BGR
    out = load_image(p, max_pixels=LIMIT)
    expect = np.round(rgb16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(out, expect)
    assert out[1, 1].tolist() == [255, 0, 128]


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 8), (0, 255, 255, 0)).save(p, quality=95)  # cyan 0, magenta+yellow = red
    out = load_image(p, max_pixels=LIMIT)
    assert out.shape == (8, 16, 3)
    r, g, b = out.reshape(-1, 3).mean(0)
    assert r > 220 and g < 40 and b < 40


def test_rgba_is_composited_on_white(tmp_path):
    a = np.zeros((4, 6, 4), np.uint8)
    a[..., 0] = 255
    a[:, :3, 3] = 255  # left half opaque red
    a[:, 3:, 3] = 128  # right half half-transparent red
    a[0, 0, 3] = 0  # one fully transparent pixel
    p = tmp_path / "rgba.png"
    Image.fromarray(a, "RGBA").save(p)
    out = load_image(p, max_pixels=LIMIT)
    assert out[1, 1].tolist() == [255, 0, 0]
    assert out[1, 4].tolist() == [255, 127, 127]
    assert out[0, 0].tolist() == [255, 255, 255]


def test_grey_alpha_is_composited_on_white(tmp_path):
    la = Image.new("LA", (4, 4), (0, 0))  # black, fully transparent
    p = tmp_path / "la.png"
    la.save(p)
    assert (load_image(p, max_pixels=LIMIT) == 255).all()


def test_palette_with_and_without_transparency(tmp_path):
    pal = Image.new("P", (4, 2))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    pal.putpixel((1, 0), 1)
    p = tmp_path / "pal.png"
    pal.save(p)
    out = load_image(p, max_pixels=LIMIT)
    assert out[0, 0].tolist() == [10, 20, 30] and out[0, 1].tolist() == [200, 100, 50]
    p2 = tmp_path / "pal_t.png"
    pal.save(p2, transparency=0)  # index 0 transparent
    out2 = load_image(p2, max_pixels=LIMIT)
    assert out2[0, 0].tolist() == [255, 255, 255] and out2[0, 1].tolist() == [200, 100, 50]


def test_grey_becomes_three_equal_channels(tmp_path):
    g = np.arange(30, dtype=np.uint8).reshape(5, 6) * 8
    p = tmp_path / "grey.jpg"
    Image.fromarray(g, "L").save(p, quality=100)
    out = load_image(p, max_pixels=LIMIT)
    assert out.shape == (5, 6, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_exif_orientation_is_honoured(tmp_path):
    arr = np.zeros((4, 8, 3), np.uint8)  # stored 8 wide, 4 high; a white column on the left
    arr[:, :2] = 255
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif, quality=100)
    out = load_image(p, max_pixels=LIMIT)
    assert out.shape == (8, 4, 3)  # upright: 4 wide, 8 high
    # rotating 90 degrees clockwise moves the stored left column to the top rows
    assert out[:2].mean() > 200 and out[3:].mean() < 40


def test_float_tiff_is_scaled(tmp_path):
    unit = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    p = tmp_path / "f.tif"
    Image.fromarray(unit, "F").save(p)
    out = load_image(p, max_pixels=LIMIT)
    np.testing.assert_array_equal(out[..., 0], np.round(unit * 255).astype(np.uint8))
    metres = unit * 10 + 2  # e.g. a depth map in metres: min-max scaled
    Image.fromarray(metres, "F").save(p)
    out = load_image(p, max_pixels=LIMIT)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    bad = unit.copy()
    bad[0, 0] = np.nan
    Image.fromarray(bad, "F").save(p)
    with pytest.raises(ImageError, match="NaN"):
        load_image(p, max_pixels=LIMIT)


# ----------------------------------------------------------------------------- bad inputs


def test_missing_file_names_the_path(tmp_path):
    p = tmp_path / "nope.png"
    with pytest.raises(ImageNotFoundError, match="nope.png") as e:
        load_image(p, max_pixels=LIMIT)
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ValueError)
    assert "\n" not in str(e.value)


def test_directory_is_refused(tmp_path):
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path, max_pixels=LIMIT)


def test_unreadable_file(tmp_path, monkeypatch):
    p = save_image(tmp_path / "locked.png", _gradient(4, 4))
    if os.name == "posix" and os.geteuid() != 0:
        p.chmod(0)
    else:  # root reads anything: simulate the OS refusal
        import pixwizard.imageio as imageio_module

        def refuse(path, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))
        monkeypatch.setattr(imageio_module, "open", refuse, raising=False)  # the reader's open()
    try:
        with pytest.raises(ImageError, match="locked.png: permission denied"):
            load_image(p, max_pixels=LIMIT)
    finally:
        p.chmod(0o644)


def test_text_file_named_png(tmp_path):
    p = tmp_path / "fake.png"
    p.write_text("this is not an image\n")
    with pytest.raises(ImageError, match="not an image"):
        load_image(p, max_pixels=LIMIT)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(p, max_pixels=LIMIT)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_image(tmp_path, ext):
    full = tmp_path / f"full.{ext}"
    rng = np.random.default_rng(0)
    save_image(full, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = full.read_bytes()
    p = tmp_path / f"cut.{ext}"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt") as e:
        load_image(p, max_pixels=LIMIT)
    assert "\n" not in str(e.value)


def _png_with_header_size(tmp_path, w, h):
    """A tiny real PNG whose IHDR is patched to claim w x h (CRC fixed, so the header is valid)."""
    bio = io.BytesIO()
    Image.new("RGB", (1, 1)).save(bio, format="PNG")
    data = bytearray(bio.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    p = tmp_path / f"claims_{w}x{h}.png"
    p.write_bytes(bytes(data))
    return p


def test_huge_header_is_refused_before_decoding(tmp_path):
    p = _png_with_header_size(tmp_path, 100000, 100000)
    assert p.stat().st_size < 100
    with pytest.raises(ImageError, match="over the limit"):
        load_image(p, max_pixels=LIMIT)
    # A caller limit above Pillow's own: its decompression-bomb guard answers with the same error type.
    with pytest.raises(ImageError, match="decompression-bomb"):
        load_image(p, max_pixels=10**11)
    # Between the caller's limit and Pillow's: refused by ours, from the header alone.
    p = _png_with_header_size(tmp_path, 20000, 5000)
    with pytest.raises(ImageError, match="20000x5000 = 100000000 pixels, over the limit"):
        load_image(p, max_pixels=LIMIT)


def test_limit_is_exact(tmp_path):
    p = save_image(tmp_path / "a.png", _gradient(10, 10))
    assert load_image(p, max_pixels=100).shape == (10, 10, 3)
    with pytest.raises(ImageError, match="10x10 = 100 pixels, over the limit of 99"):
        load_image(p, max_pixels=99)


def test_zero_size_header(tmp_path):
    p = _png_with_header_size(tmp_path, 0, 5)
    with pytest.raises(ImageError):
        load_image(p, max_pixels=LIMIT)
    with pytest.raises(ImageError, match="zero size"):
        load_image(Image.new("RGB", (0, 0)), max_pixels=LIMIT)


def test_wrong_source_type():
    with pytest.raises(TypeError, match="cannot read a int"):
        load_image(3, max_pixels=LIMIT)


# ----------------------------------------------------------------------------- saving


def test_save_image_is_atomic_and_creates_parents(tmp_path, monkeypatch):
    target = tmp_path / "deep" / "er" / "out.png"
    save_image(target, _gradient())
    assert sorted(os.listdir(target.parent)) == ["out.png"]
    before = target.read_bytes()

    def boom(self, fp, format=None, **kw):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_image(target, np.zeros((4, 4, 3), np.uint8))
    assert target.read_bytes() == before  # old file intact
    assert sorted(os.listdir(target.parent)) == ["out.png"]  # no temp file left


def test_save_image_formats_and_errors(tmp_path):
    arr = _gradient()
    jpg = load_image(save_image(tmp_path / "x.jpg", arr), max_pixels=LIMIT)
    assert jpg.shape == arr.shape and np.abs(jpg.astype(int) - arr).mean() < 6
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:4] = True
    m = np.asarray(Image.open(save_image(tmp_path / "m.png", mask)))
    np.testing.assert_array_equal(m, mask.astype(np.uint8) * 255)
    with pytest.raises(ValueError, match="unknown image extension"):
        save_image(tmp_path / "x.xyz", arr)
    with pytest.raises(ValueError, match="uint8"):
        save_image(tmp_path / "x.png", arr.astype(np.float32))
    with pytest.raises(ValueError, match="alpha"):
        save_image(tmp_path / "x.jpg", np.zeros((4, 4, 4), np.uint8))


def test_save_array_npy_round_trip(tmp_path):
    a = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    p = save_array_npy(tmp_path / "d" / "depth.npy", a)
    np.testing.assert_array_equal(np.load(p), a)
    assert sorted(os.listdir(p.parent)) == ["depth.npy"]


# ----------------------------------------------------------------------------- pad / crop


@pytest.mark.parametrize("h,w", [(13, 22), (16, 16), (1, 1), (2, 3), (5, 1)])
def test_pad_and_crop_back_numpy(h, w):
    img = np.random.default_rng(h * 100 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    padded, size = pad_to_multiple(img, 8)
    assert size == (h, w)
    assert padded.shape[0] % 8 == 0 and padded.shape[1] % 8 == 0
    assert padded.shape[0] - h < 8 and padded.shape[1] - w < 8
    np.testing.assert_array_equal(padded[:h, :w], img)
    ph, pw = padded.shape[0] - h, padded.shape[1] - w
    if ph < h and pw < w:  # where numpy's reflect is defined, match it exactly
        np.testing.assert_array_equal(padded, np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="reflect"))
    np.testing.assert_array_equal(crop_back(padded, size), img)


def test_pad_and_crop_back_torch_matches_numpy():
    x = torch.randn(2, 3, 11, 14)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (2, 3, 12, 16) and size == (11, 14)
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, 1), (0, 2)), mode="reflect")
    np.testing.assert_array_equal(padded.numpy(), ref)
    assert torch.equal(crop_back(padded, size), x)
    same, _ = pad_to_multiple(x[..., :8, :8], 4)
    assert same.shape[-2:] == (8, 8)
    with pytest.raises(ValueError, match="smaller"):
        crop_back(x, (12, 14))

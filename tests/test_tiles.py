"""Tiled inference: the tile grid and its blending (pixwizard.tiles) and `tile=` in the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_pipeline import live_model

from pixwizard.checkpoint import save_model
from pixwizard.cli import main
from pixwizard.model.encoders import build_codec, build_text_encoder
from pixwizard.pipeline import PixWizardPipeline
from pixwizard.tiles import blend_tiles, default_overlap, feather, tile_boxes, tile_starts


@pytest.mark.parametrize("length,tile,overlap", [(512, 256, 32), (300, 128, 16), (100, 64, 0), (129, 128, 8),
                                                 (50, 64, 16)])
def test_tiles_cover_the_image_with_at_least_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(b > a for a, b in zip(starts, starts[1:]))
    assert all(a + size - b >= overlap for a, b in zip(starts, starts[1:]))
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + size] = True
    assert covered.all()
    with pytest.raises(ValueError, match="overlap < tile"):
        tile_starts(length, tile, tile)


def test_blending_is_exact_for_a_pointwise_function_and_smooth_between_tiles():
    img = np.random.default_rng(0).normal(size=(70, 90, 3))
    out, n = blend_tiles(img, lambda t: 2 * t + 1, tile=32, overlap=8)
    assert n == len(tile_boxes(70, 90, 32, 8)) > 1
    np.testing.assert_allclose(out, 2 * img + 1, atol=1e-12)
    # every tile answers a different constant: the result moves monotonically across an overlap
    count = iter(range(1000))
    flat, _ = blend_tiles(np.zeros((32, 80, 1)), lambda t: np.full(t.shape, float(next(count))), tile=32, overlap=8)
    row = flat[16, :, 0]
    assert row[0] == 0 and row[-1] == len(tile_starts(80, 32, 8)) - 1
    assert np.all(np.diff(row) >= -1e-12)
    assert np.abs(np.diff(row)).max() < 0.2  # no seam: at most a ramp step (1 / (overlap + 1))
    assert feather(4, 4, 0).min() == 1.0 and feather(10, 10, 4).min() > 0
    assert default_overlap(512) == 32 and default_overlap(64) == 16


def _live_pipe():
    m = live_model()
    return PixWizardPipeline(m, build_text_encoder(m.config.text), build_codec(m.config.codec),
                             device="cpu", precision="fp32")


def test_pipeline_tiles_run_at_full_resolution_and_one_tile_is_the_plain_run():
    pipe = _live_pipe()
    img = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    plain = pipe(img, "remove the noise", steps=2, seed=3, task="denoise")
    one = pipe(img, "remove the noise", steps=2, seed=3, task="denoise", tile=64)
    assert one.tiles == 1 and np.array_equal(one.image, plain.image)
    tiled = pipe(img, "remove the noise", steps=2, seed=3, task="denoise", tile=32, tile_overlap=8)
    assert tiled.tiles == 4 and tiled.image.shape == img.shape and tiled.working_size == (40, 56)
    assert not np.array_equal(tiled.image, plain.image)
    # over the working-size limit: the plain run downscales, tiles keep the image's resolution
    pipe.work_max_pixels = 24 * 24
    assert pipe(img, "remove the noise", steps=1, task="denoise").working_size != (40, 56)
    assert pipe(img, "remove the noise", steps=1, task="denoise", tile=32).working_size == (40, 56)
    for bad, match in (({"tile": 4}, "tile must be at least"), ({"tile": 32, "tile_overlap": 16}, "tile overlap")):
        with pytest.raises(ValueError, match=match):
            pipe(img, "remove the noise", steps=1, task="denoise", **bad)


def test_cli_run_with_tiles_records_them(tmp_path, capsys, monkeypatch):
    pipe = _live_pipe()
    ckpt = tmp_path / "debug.safetensors"
    save_model(pipe.model, ckpt, trained_samples=0)
    from PIL import Image

    Image.fromarray(np.random.default_rng(2).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert main(["run", str(tmp_path / "in.png"), "remove the noise", "-o", str(out), "--checkpoint", str(ckpt),
                 "--steps", "1", "--task", "denoise", "--tile", "32", "--tile-overlap", "8", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tiles"] == 4 and doc["working_size"] == [56, 40]
    assert Image.open(out).size == (56, 40)
    assert main(["run", str(tmp_path / "in.png"), "remove the noise", "-o", str(out), "--checkpoint", str(ckpt),
                 "--tile", "2"]) != 0
    assert "tile must be at least" in capsys.readouterr().err
    from pixwizard.eval.harness import make_predictor

    assert make_predictor(str(ckpt), steps=1, tile=32).tag == "model-debug-steps1-tile32"
    from pixwizard.pipeline import PixWizardPipeline

    def no_load(*args, **kw):
        raise AssertionError("a bad tile is refused before the model loads")

    monkeypatch.setattr(PixWizardPipeline, "from_pretrained", no_load)
    with pytest.raises(ValueError, match="tile must be at least"):
        make_predictor(str(ckpt), tile=4)

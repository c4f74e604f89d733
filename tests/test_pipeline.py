"""PixWizardPipeline and `pixwizard run` on a tiny debug checkpoint."""

import numpy as np
import pytest
import torch

from pixwizard.checkpoint import read_info, save_model
from pixwizard.cli import main
from pixwizard.config import preset
from pixwizard.flow import euler, get_sampler, item_generators, noise_like, sampling_velocity, time_grid
from pixwizard.model.encoders import build_codec, build_text_encoder
from pixwizard.model.pixwizard import PixWizard
from pixwizard.pipeline import PixWizardPipeline, to_model_tensor
from pixwizard.runtime import autocast


def live_model(seed=0):
    torch.manual_seed(seed)
    m = PixWizard(preset("debug"))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # open the zero-initialised paths so the output depends on everything
        for p in m.parameters():
            if p.abs().sum() == 0:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return m.eval()


class NoRouting(PixWizardPipeline):
    """Tests of generation give the task, so that they do not fit the instruction router."""

    def __call__(self, *args, **kw):
        kw.setdefault("task", "denoise")
        return super().__call__(*args, **kw)


@pytest.fixture(scope="module")
def pipe():
    """fp32 explicitly: ``auto`` is bf16 on CPUs with native bf16 and fp32 elsewhere."""
    m = live_model()
    return NoRouting(m, build_text_encoder(m.config.text), build_codec(m.config.codec), device="cpu",
                     precision="fp32")


def at_precision(pipe, precision):
    return NoRouting(pipe.model, pipe.text_encoder, pipe.codec, device="cpu", precision=precision)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "debug.safetensors"
    save_model(live_model(), path, trained_samples=0)
    return path


def image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("h,w", [(37, 53), (64, 17), (5, 3), (48, 48)])
def test_output_has_the_input_size(pipe, h, w):
    out = pipe(image(h, w), "remove the noise", steps=2)
    assert out.image.shape == (h, w, 3) and out.image.dtype == np.uint8
    assert out.working_size == (h, w)


def test_large_images_run_downscaled_and_come_back_at_full_size(pipe):
    small = NoRouting(pipe.model, pipe.text_encoder, pipe.codec, work_max_pixels=24 * 24)
    out = small(image(90, 60), "denoise", steps=1)
    assert out.image.shape == (90, 60, 3) and out.working_size == (29, 20)
    out = pipe(image(90, 60), "denoise", steps=1, size=32)
    assert out.image.shape == (90, 60, 3) and out.working_size == (32, 21)


def test_same_seed_same_output_and_different_seeds_differ(pipe):
    img = image(24, 32)
    a = pipe(img, "make it brighter", steps=2, seed=3).image
    b = pipe(img, "make it brighter", steps=2, seed=3).image
    c = pipe(img, "make it brighter", steps=2, seed=4).image
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def plain_conditional_sampler(pipe, img, instruction, steps, seed, precision):
    """The pipeline's computation written out by hand: one conditional branch, Euler, x-prediction."""
    m, flow = pipe.model, pipe.config.flow
    cond = to_model_tensor(img, "cpu")
    text = pipe.text_encoder.encode([instruction])
    sem = m.encode_semantic(cond)
    with torch.no_grad():
        def v(x, t):
            with autocast(torch.device("cpu"), precision):
                o = m.dit(x, t, cond=cond, text_tokens=text.tokens, text_mask=text.mask, text_pooled=text.pooled,
                          semantic=sem)
            return sampling_velocity(flow.prediction, o.float(), x, t)
        x1 = euler(v, noise_like((1, 3, *img.shape[:2]), item_generators([seed])), time_grid(steps))
    return ((x1[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def test_unit_guidance_equals_the_plain_conditional_sampler(pipe, precision):
    img = image(16, 24)
    p = at_precision(pipe, precision)
    out = p(img, "estimate the depth", steps=3, seed=5, text_guidance=1.0, image_guidance=1.0).image
    ref = plain_conditional_sampler(pipe, img, "estimate the depth", 3, 5, precision)
    if precision == "fp32":
        assert np.array_equal(out, ref)
    else:  # bf16 kernels may round differently with the batch layout: within one level of the same computation
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
        # and close to fp32 (measured on an AMX CPU: at most 1 level, 20% of the pixels)
        diff = np.abs(out.astype(int) - plain_conditional_sampler(pipe, img, "estimate the depth", 3, 5, "fp32"))
        assert diff.max() <= 4 and diff.mean() <= 1.0


@pytest.mark.parametrize("sampler", ["euler", "heun"])
@pytest.mark.parametrize("steps", [4, 21, 30, 50])
def test_x_prediction_sampler_lands_on_an_oracle_prediction(pipe, sampler, steps):
    """A network that always predicts the same clean image x1 must be sampled onto it, at any number
    of steps (with the training t_eps = 0.05 in the conversion, 21+ steps stopped short of it)."""
    m = live_model()
    assert m.config.flow.prediction == "x"
    img = image(16, 24)
    cond_pixels = to_model_tensor(img, "cpu")
    target = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(2)) * 2 - 1
    m.predict = lambda x, t, *args, **kw: target.expand(x.shape[0], -1, -1, -1)
    p = NoRouting(m, pipe.text_encoder, pipe.codec, device="cpu", precision="fp32")
    v = p.velocity_fn(p.codec.encode(cond_pixels), cond_pixels, p.encode_text(["denoise"]), 1.0, 1.0)
    x0 = noise_like((1, 3, 16, 24), item_generators([0]))
    x1 = get_sampler(sampler)(v, x0, time_grid(steps))
    assert (x1 - target).abs().max() < 1e-4


def test_guidance_runs_only_the_needed_branches(pipe):
    batches = []
    hook = pipe.model.dit.register_forward_hook(lambda mod, args, out: batches.append(args[0].shape[0]))
    try:
        pipe(image(16, 16), "sharpen", steps=1)
        pipe(image(16, 16), "sharpen", steps=1, text_guidance=3.0)  # image scale 1: null branch skipped
        pipe(image(16, 16), "sharpen", steps=1, text_guidance=3.0, image_guidance=1.5)
    finally:
        hook.remove()
    assert batches == [1, 2, 3]
    a = pipe(image(16, 16), "sharpen", steps=2, text_guidance=3.0).image
    b = pipe(image(16, 16), "sharpen", steps=2, text_guidance=1.0).image
    assert not np.array_equal(a, b)


def test_bad_instruction_and_image(pipe):
    with pytest.raises(ValueError, match="instruction is empty"):
        pipe(image(8, 8), "   ")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        pipe(np.zeros((8, 8), np.float32), "denoise")


def test_checkpoint_roundtrip_and_untrained_flag(ckpt):
    info = read_info(ckpt)
    assert info.config.name == "debug" and info.trained_samples == 0
    p = PixWizardPipeline.from_pretrained(ckpt)
    assert p.untrained
    ref = live_model()
    for (k, a), b in zip(p.model.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k


def test_cli_run_writes_the_output_and_warns_untrained(ckpt, tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(image(21, 34)).save(src)
    out = tmp_path / "sub" / "out.png"
    rc = main(["run", str(src), "remove the rain", "-o", str(out), "--checkpoint", str(ckpt), "--steps", "1",
               "--task", "derain"])
    assert rc == 0 and out.is_file()
    assert Image.open(out).size == (34, 21)
    assert "untrained" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing", "corrupt", "empty_instruction", "bad_steps", "bad_checkpoint",
                                  "unknown_task"])
def test_cli_bad_input_is_one_line(case, ckpt, tmp_path, capsys):
    from PIL import Image

    good = tmp_path / "ok.png"
    Image.fromarray(image(8, 8)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    args = {
        "missing": [str(tmp_path / "nope.png"), "denoise"],
        "corrupt": [str(bad), "denoise"],
        "empty_instruction": [str(good), "  "],
        "bad_steps": [str(good), "denoise", "--steps", "0"],
        "bad_checkpoint": [str(good), "denoise"],
        "unknown_task": [str(good), "denoise", "--task", "denoize"],
    }[case]
    ck = str(bad) if case == "bad_checkpoint" else str(ckpt)
    task = [] if "--task" in args else ["--task", "denoise"]
    rc = main(["run", *args, "--checkpoint", ck, "-o", str(tmp_path / "o.png"), *task])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err and len(err.splitlines()) == 1 and "error" in err
    assert not (tmp_path / "o.png").exists()


def test_routing_and_typed_outputs_written_beside_the_image(ckpt, tmp_path, capsys):
    """The instruction is routed to a task, the output decoded by its codec and the typed results
    written next to the image: depth as float metres (.npy) and 16-bit millimetres (.png)."""
    from PIL import Image

    from pixwizard.tasks.codecs import DepthCodec

    src = tmp_path / "in.png"
    Image.fromarray(image(16, 24)).save(src)
    out = tmp_path / "o.png"
    assert main(["run", str(src), "estimate the depth of this scene", "-o", str(out), "--checkpoint", str(ckpt),
                 "--steps", "1"]) == 0
    printed = capsys.readouterr().out
    assert "task: depth" in printed
    depth = np.load(tmp_path / "o.depth.npy")
    png16 = np.array(Image.open(tmp_path / "o.depth16.png"))
    assert depth.shape == (16, 24) and depth.dtype == np.float32 and png16.dtype == np.uint16
    codec = DepthCodec()
    assert np.all((depth >= codec.near - 1e-6) & (depth <= codec.far + 1e-6))
    assert np.abs(png16 / 1000.0 - depth).max() <= 0.0005 + 1e-6
    # the decoded depth is the codec's reading of the written output image
    grey = np.array(Image.open(out)).astype(np.float32).mean(axis=2)
    assert np.allclose(codec.decode(np.array(Image.open(out)), image(16, 24), {}).depth, depth)
    assert grey.shape == depth.shape


def test_overlay_output_is_decoded_with_the_named_colour(pipe):
    from pixwizard.tasks.colours import colour_in_text, colour_rgb

    assert colour_in_text("tint the red cube blue") == "blue" and colour_in_text("denoise") is None
    assert colour_in_text("make the GRAY sphere purple") == "purple"
    img = image(16, 16)
    tinted = ((img.astype(int) + colour_rgb("blue").astype(int)) // 2).astype(np.uint8)
    res = pipe(img, "tint the red cube blue", steps=1, task="refseg_overlay")
    assert res.task == "refseg_overlay" and res.decoded is not None and res.decoded.mask.shape == (16, 16)
    from pixwizard.pipeline import decode_output

    decoded, note = decode_output("refseg_overlay", tinted, img, "tint the red cube blue")
    assert note is None and decoded.mask.mean() > 0.9
    decoded, note = decode_output("refbox", img, img, "draw a box around the cube")
    assert decoded is None and "no colour" in note


def test_condition_skip_model_starts_by_returning_its_input(precision):
    """A new condition-skip model (zero final layer) gives back the input image through the whole
    sampler, whatever the steps; the skip goes through the same path in training and inference."""
    import dataclasses

    cfg = preset("debug")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, condition_skip=True))
    torch.manual_seed(0)
    m = PixWizard(cfg).eval()
    p = NoRouting(m, build_text_encoder(cfg.text), build_codec(cfg.codec), device="cpu", precision=precision)
    img = image(20, 28, seed=3)
    for steps in (1, 3):
        out = p(img, "remove the noise", steps=steps, seed=1).image
        assert np.abs(out.astype(int) - img.astype(int)).max() <= 1


def test_shift_offsets_and_image():
    from pixwizard.pipeline import shift_image, shift_offsets

    assert shift_offsets(1, 8) == [(0, 0)] and shift_offsets(2, 8) == [(0, 0), (4, 4)]
    assert shift_offsets(4, 8) == [(0, 0), (4, 4), (0, 4), (4, 0)] and shift_offsets(4, 1) == [(0, 0)]
    with pytest.raises(ValueError, match="shifts must be 1, 2 or 4"):
        shift_offsets(3, 8)
    img = image(6, 5)
    moved = shift_image(img, 2, 3)
    assert moved.shape == (8, 8, 3) and np.array_equal(moved[2:, 3:], img)
    assert np.array_equal(moved[1, 3:], img[0]) and np.array_equal(moved[:, 2], moved[:, 3])  # mirrored borders
    assert shift_image(image(1, 1), 2, 2).shape == (3, 3, 3)  # smaller than the shift: edge copies


def test_shift_windows_sum_to_one_and_hide_each_pass_s_borders():
    from pixwizard.eval.metrics.blockiness import blockiness
    from pixwizard.pipeline import shift_offsets
    from pixwizard.tiles import shift_windows

    assert np.array_equal(shift_windows([(0, 0)], 5, 7, 8), np.ones((1, 5, 7)))
    for n in (2, 4):
        offsets = shift_offsets(n, 8)
        w = shift_windows(offsets, 37, 45, 8)
        assert w.shape == (n, 37, 45) and np.allclose(w.sum(0), 1) and w.min() > 0
        for k, (dy, dx) in enumerate(offsets):  # a pass's weight on its own border columns is small
            border_cols = [x for x in range(45) if (x + dx) % 8 in (0, 7)]
            centre_cols = [x for x in range(45) if (x + dx) % 8 in (3, 4)]
            assert w[k][:, border_cols].mean() < 0.2 < 0.4 < w[k][:, centre_cols].mean()
    # passes that are flat inside each of their own patches (the worst patch grid): the windowed blend
    # shows much less of it than the plain mean, and a smooth image stays exactly itself
    rng, h, wd = np.random.default_rng(0), 64, 64
    offsets = shift_offsets(2, 8)
    passes = []
    for dy, dx in offsets:
        cells = rng.uniform(0, 1, ((h + dy) // 8 + 1, (wd + dx) // 8 + 1, 3))
        passes.append(np.repeat(np.repeat(cells, 8, 0), 8, 1)[dy:dy + h, dx:dx + wd])
    w = shift_windows(offsets, h, wd, 8)
    mean, windowed = sum(passes) / 2, sum(wk[..., None] * p for wk, p in zip(w, passes))
    assert blockiness(windowed) < 0.6 * blockiness(mean)
    smooth = np.linspace(0, 1, h * wd * 3).reshape(h, wd, 3)
    assert np.allclose(sum(wk[..., None] * smooth for wk in w), smooth)
    half = shift_windows(offsets, h, wd, 8, 0.5)
    assert np.allclose(half, 0.25 + w / 2) and np.allclose(shift_windows(offsets, h, wd, 8, 0.0), 0.5)
    with pytest.raises(ValueError, match="strength must be in"):
        shift_windows(offsets, h, wd, 8, 1.5)


def test_window_shift_blend_weights_the_same_passes(pipe):
    """flow.shift_blend 0.5: the same two passes as the mean, combined with shift_windows."""
    from pixwizard.pipeline import shift_image, shift_offsets
    from pixwizard.tiles import shift_windows

    img, half = image(20, 28, seed=5), pipe.config.model.patch_size * pipe.config.codec.downsample // 2
    g = torch.Generator().manual_seed(7)
    a = pipe(img, "remove the noise", steps=2, generator=g).image.astype(np.float64)
    b = pipe(shift_image(img, half, half), "remove the noise", steps=2, generator=g).image[half:, half:]
    mean = pipe(img, "remove the noise", steps=2, generator=torch.Generator().manual_seed(7), shifts=2).image
    pipe.config.flow.shift_blend = 0.5
    try:
        both = pipe(img, "remove the noise", steps=2, generator=torch.Generator().manual_seed(7), shifts=2).image
        one = pipe(img, "remove the noise", steps=2, seed=3, shifts=1).image
    finally:
        pipe.config.flow.shift_blend = 0.0
    w = shift_windows(shift_offsets(2, 2 * half), 20, 28, 2 * half, 0.5)
    assert np.abs(both - (w[0][..., None] * a + w[1][..., None] * b)).max() <= 1.0
    assert not np.array_equal(both, mean)
    assert np.array_equal(one, pipe(img, "remove the noise", steps=2, seed=3, shifts=1).image)  # one pass: unchanged


def test_shift_ensemble_averages_a_pass_on_the_shifted_image(pipe):
    """shifts=2 = mean of the plain pass and a pass on the image shifted by half a patch (cropped
    back), each with the next noise draw of one generator; 1 level of rounding allowed."""
    from pixwizard.pipeline import shift_image

    img, half = image(20, 28, seed=5), pipe.config.model.patch_size * pipe.config.codec.downsample // 2
    assert half >= 1
    both = pipe(img, "remove the noise", steps=2, generator=torch.Generator().manual_seed(7), shifts=2).image
    g = torch.Generator().manual_seed(7)
    a = pipe(img, "remove the noise", steps=2, generator=g).image.astype(np.float64)
    b = pipe(shift_image(img, half, half), "remove the noise", steps=2, generator=g).image[half:, half:]
    assert both.shape == img.shape
    assert np.abs(both - (a + b) / 2).max() <= 1.0
    assert not np.array_equal(both, a.astype(np.uint8))
    assert np.array_equal(pipe(img, "remove the noise", steps=2, seed=3).image,
                          pipe(img, "remove the noise", steps=2, seed=3, shifts=1).image)

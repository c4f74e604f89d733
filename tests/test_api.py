"""The Python API's conventions (issue 13 item 5): the top-level import, diffusers-style argument
names, PIL output, .to(device) and from_pretrained of a file or a folder."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import pixwizard
from pixwizard.checkpoint import save_model
from pixwizard.config import preset
from pixwizard.model.pixwizard import PixWizard

torch.set_num_threads(1)


def live_model(seed=0):
    torch.manual_seed(seed)
    m = PixWizard(preset("debug"))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # open the zero-initialised paths so the output depends on the noise
        for p in m.parameters():
            if p.abs().sum() == 0:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return m.eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    save_model(live_model(), folder / "debug.safetensors", trained_samples=10)
    return folder / "debug.safetensors"


@pytest.fixture(scope="module")
def pipe(ckpt):
    from pixwizard import PixWizardPipeline

    return PixWizardPipeline.from_pretrained(ckpt.parent, device="cpu", precision="fp32")  # a folder


IMG = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)


def test_top_level_import_is_lazy():
    from pixwizard import PixWizardPipeline
    from pixwizard.pipeline import PixWizardPipeline as direct

    assert PixWizardPipeline is direct and "PixWizardPipeline" in dir(pixwizard)
    with pytest.raises(AttributeError):
        pixwizard.NoSuchThing  # noqa: B018
    code = "import sys, pixwizard; print('torch' in sys.modules, 'pixwizard.pipeline' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_diffusers_names_match_the_native_ones(pipe):
    native = pipe(IMG, "remove the noise", steps=2, text_guidance=1.5, image_guidance=1.2, seed=3, task="denoise")
    alias = pipe(IMG, "remove the noise", num_inference_steps=2, guidance_scale=1.5, image_guidance_scale=1.2,
                 seed=3, task="denoise")
    assert alias.steps == 2 and np.array_equal(native.image, alias.image)
    with pytest.raises(ValueError, match="disagree"):
        pipe(IMG, "remove the noise", steps=2, num_inference_steps=3, task="denoise")


def test_generator_draws_the_noise_and_advances(pipe):
    g = torch.Generator().manual_seed(3)
    first = pipe(IMG, "remove the noise", num_inference_steps=2, generator=g, task="denoise")
    second = pipe(IMG, "remove the noise", num_inference_steps=2, generator=g, task="denoise")
    seeded = pipe(IMG, "remove the noise", num_inference_steps=2, seed=3, task="denoise")
    assert first.seed is None and np.array_equal(first.image, seeded.image)  # same seed, same noise
    assert not np.array_equal(first.image, second.image)  # the generator moved on, as in diffusers
    with pytest.raises(ValueError, match="torch.Generator"):
        pipe(IMG, "remove the noise", generator=3, task="denoise")


def test_pil_in_and_out(pipe):
    out = pipe(Image.fromarray(IMG), "remove the noise", num_inference_steps=1, output_type="pil", task="denoise")
    assert isinstance(out.image, Image.Image) and out.image.size == (40, 24) and out.images == [out.image]
    ref = pipe(IMG, "remove the noise", num_inference_steps=1, task="denoise")
    assert np.array_equal(np.asarray(out.image), ref.image)
    with pytest.raises(ValueError, match="output_type"):
        pipe(IMG, "remove the noise", output_type="latent", task="denoise")


def test_to_device_and_from_pretrained_paths(pipe, ckpt, tmp_path):
    from pixwizard import PixWizardPipeline

    assert pipe.to("cpu") is pipe and pipe.device.type == "cpu"
    assert next(pipe.model.parameters()).device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pipe.to("cuda")
    from_file = PixWizardPipeline.from_pretrained(ckpt, device="cpu", precision="fp32")
    a = from_file(IMG, "x", num_inference_steps=1, task="denoise")
    b = pipe(IMG, "x", num_inference_steps=1, task="denoise")
    assert np.array_equal(a.image, b.image)
    (tmp_path / "a.safetensors").write_bytes(b"")
    (tmp_path / "b.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="exactly one model file"):
        PixWizardPipeline.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        PixWizardPipeline.from_pretrained(tmp_path / "missing.safetensors")


def test_an_instruction_matching_no_task_is_told_not_guessed(pipe, monkeypatch):
    from pixwizard.tasks.routing import Route

    route = Route("t2i", 0.7, [("edit_add", 0.1), ("sr_x2", 0.05)], low_confidence=True, similarity=0.2, no_match=True)
    monkeypatch.setattr(pipe, "route", lambda text: route)
    out = pipe(IMG, "tell me a joke", num_inference_steps=1)
    assert out.route is route and out.task is None and out.decoded is None
    assert any("no task matches" in n and "t2i 0.70" in n and "edit_add" in n for n in out.notes), out.notes

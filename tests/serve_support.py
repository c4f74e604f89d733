"""Shared pieces of the serve tests: a tiny live debug pipeline, a keyword router, a PNG."""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest
import torch
from PIL import Image

from pixwizard.config import preset
from pixwizard.model.encoders import build_codec, build_text_encoder
from pixwizard.model.pixwizard import PixWizard
from pixwizard.pipeline import PixWizardPipeline
from pixwizard.tasks.routing import Route

# keyword -> task; anything else routes to denoise with low confidence
KEYWORDS = {"mask": "refseg_mask", "depth": "depth", "noise": "denoise", "box": "refbox", "edge": "canny"}


def keyword_route(instruction: str) -> Route:
    """A stand-in for the fitted router (tests must not spend seconds fitting it)."""
    if "xyzzy" in instruction.lower():  # fits no task
        return Route("denoise", 0.2, [("derain", 0.1)], True, similarity=0.1, no_match=True)
    for word, task in KEYWORDS.items():
        if word in instruction.lower():
            return Route(task, 0.9, [("denoise", 0.05)], False)
    return Route("denoise", 0.3, [("derain", 0.2), ("dehaze", 0.1)], True)


@functools.lru_cache(maxsize=None)
def debug_pipeline(seed: int = 0) -> PixWizardPipeline:
    """The debug preset with its zero-initialised paths opened, so outputs depend on the input.
    Built once per process and shared by the serve test modules (engines only wrap it)."""
    torch.manual_seed(seed)
    model = PixWizard(preset("debug"))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    model.eval()
    return PixWizardPipeline(model, build_text_encoder(model.config.text), build_codec(model.config.codec),
                             device="cpu", precision="fp32")


def png_bytes(h: int = 24, w: int = 32, seed: int = 0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The engine runs the model in a worker thread: with two intra-op threads on a busy 2-core
    machine the tiny model's steps slow down tenfold (threads spinning), so these tests use one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

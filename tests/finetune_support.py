"""Shared by the fine-tuning tests: registry isolation, tiny pairs and a debug base model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pixwizard.checkpoint import save_model
from pixwizard.config import preset
from pixwizard.imageio import save_image
from pixwizard.model.pixwizard import PixWizard
from pixwizard.tasks import registry


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch, tmp_path):
    """Run-time tasks (a fine-tune registers its task in-process) leave the registry as it was;
    routers cache under tmp. Autouse in every module that imports it."""
    monkeypatch.setenv("PIXWIZARD_CACHE", str(tmp_path / "cache"))
    before = dict(registry.REGISTRY)
    yield
    for tid in set(registry.REGISTRY) - set(before):
        del registry.REGISTRY[tid]
        registry.CUSTOM_PHRASINGS.pop(tid, None)


def make_pairs(folder: Path, n: int = 8, size: int = 32, seed: int = 0) -> Path:
    """``n`` random targets with their negatives as inputs, and an instruction.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        target = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        save_image(folder / f"p{i:02d}_input.png", 255 - target)
        save_image(folder / f"p{i:02d}_target.png", target)
    (folder / "instruction.txt").write_text("invert the tint\n")
    return folder


def save_debug_base(path: Path) -> Path:
    """A debug model standing in for a trained one: its zero-initialised gates (adaLN, text and semantic
    paths) are opened, else no gradient reaches the attention and FFN projections."""
    torch.manual_seed(0)
    model = PixWizard(preset("debug"))
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, 0.3)
    save_model(model, path, trained_samples=100)
    return path

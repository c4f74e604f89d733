"""Diffusers-style conventions for :class:`~pixwizard.pipeline.PixWizardPipeline`.

- ``num_inference_steps``, ``guidance_scale`` (text) and ``image_guidance_scale`` are accepted as
  the diffusers names of ``steps``, ``text_guidance`` and ``image_guidance``; giving both names of
  one setting with different values is an error.
- ``generator`` (a ``torch.Generator``) draws the starting noise instead of ``seed``, and advances
  as in diffusers: two calls with one generator give two different samples.
- ``output_type``: ``"np"`` (HxWx3 uint8, the default) or ``"pil"`` (a ``PIL.Image.Image``).
- ``from_pretrained`` takes a model file or a folder holding one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_TYPES = ("np", "pil")


def merge_alias(name: str, value: Any, alias: str, alias_value: Any) -> Any:
    """One setting given under its own name and/or its diffusers alias."""
    if alias_value is None:
        return value
    if value is not None and value != alias_value:
        raise ValueError(f"{name}={value!r} and {alias}={alias_value!r} disagree: give one of them")
    return alias_value


def check_output_type(output_type: str) -> str:
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
    return output_type


def as_output(image: np.ndarray, output_type: str):
    """The result image as ``output_type`` asks: the array itself or a PIL image of it."""
    if output_type == "pil":
        from PIL import Image

        return Image.fromarray(image)
    return image


def checkpoint_file(path: str | Path) -> Path:
    """A model file, or the one model file in a folder (``*.safetensors``; ``model.safetensors`` or
    ``pixwizard*.safetensors`` first when there are several)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        return path
    files = sorted(path.glob("*.safetensors"))
    preferred = [f for f in files if f.name == "model.safetensors"] or [f for f in files if f.name.startswith("pixwizard")]
    pick = preferred if preferred else files
    if len(pick) != 1:
        found = ", ".join(f.name for f in files) or "none"
        raise ValueError(f"{path} must hold exactly one model file (*.safetensors, or model.safetensors "
                         f"among several); found: {found}")
    return pick[0]

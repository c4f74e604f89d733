"""``make demo`` / ``pixwizard demo``: instructions from several domains on example images.

Examples come from what ships with the installed packages, so the demo runs offline: photos
bundled with scikit-image (``skimage.data``), degraded by the project's own generators, and scenes
of the procedural 3D world at held-out seeds. Each job writes input, output and target PNGs and one
side-by-side sheet (input | output | target, the instruction beneath).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixwizard.data.contact import SheetStyle, render_row, tile
from pixwizard.data.sample import Sample
from pixwizard.imageio import save_image
from pixwizard.pipeline import PixWizardPipeline
from pixwizard.tasks.codecs import encode_target
from pixwizard.tasks.instructions import make_instruction

HELDOUT_WORLD_SEED = 1_000_000_007  # outside the training seed range [0, 1e6)


@dataclass(frozen=True)
class DemoJob:
    name: str
    task: str
    source: str  # "photo:<skimage image>" or "world"
    seed: int


JOBS = (
    DemoJob("denoise", "denoise", "photo:chelsea", 1),
    DemoJob("lowlight", "lowlight", "photo:coffee", 2),
    DemoJob("refseg", "refseg_overlay", "world", HELDOUT_WORLD_SEED),
    DemoJob("depth", "depth", "world", HELDOUT_WORLD_SEED + 1),
)


def make_sample(job: DemoJob, size: int) -> Sample:
    if job.source == "world":
        from pixwizard.data.world.generators import WORLD_GENERATORS

        return WORLD_GENERATORS[job.task](job.seed, None, size)
    import skimage.data

    from pixwizard.data.photo.registry import PHOTO_GENERATORS, prepare_photo

    photo = getattr(skimage.data, job.source.split(":", 1)[1])()
    rng = np.random.default_rng(job.seed)
    return PHOTO_GENERATORS[job.task](prepare_photo(photo, size, rng), rng)


def run_demo(out: Path, checkpoint: str | None = None, size: int = 128, device: str | None = None) -> dict:
    out = Path(out)
    pipe = PixWizardPipeline.from_pretrained(checkpoint, device=device)
    style = SheetStyle(cell=size)
    rows, written = [], {}
    for job in JOBS:
        sample = make_sample(job, size)
        target = encode_target(sample)
        instruction = make_instruction(job.task, sample.slots, np.random.default_rng(job.seed), split="heldout")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = pipe(sample.input, instruction, seed=job.seed)
        for kind, img in (("input", sample.input), ("output", result.image), ("target", target)):
            written[f"{job.name}_{kind}"] = str(save_image(out / f"{job.name}_{kind}.png", img))
        rows.append(render_row((sample.input, result.image, target), f"[{job.task}] {instruction}", style))
    sheet = save_image(out / "demo.png", tile(rows, SheetStyle(cell=size, columns=1)))
    return {"sheet": str(sheet), "files": written, "untrained": pipe.untrained, "notice": pipe.notice}

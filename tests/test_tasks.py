"""Task registry and instruction bank."""

import os
import subprocess
import sys

import numpy as np
import pytest

from pixwizard.data.sample import SLOT_NAMES
from pixwizard.tasks import instructions as ins
from pixwizard.tasks.codecs import CODECS
from pixwizard.tasks.registry import REGISTRY, get_task, tasks_by_domain
from pixwizard.tasks.spec import DOMAIN_PAPER_SHARE, DOMAINS, TaskSpec

CANONICAL = {
    "restoration": ["denoise", "derain", "raindrop_removal", "dehaze", "deblur_motion", "deblur_defocus",
                    "deblur_gaussian", "desnow", "lowlight", "sr_x2", "sr_x4", "jpeg_artifact", "deshadow",
                    "watermark_removal", "demoire", "colorize"],
    "grounding": ["refseg_overlay", "refseg_mask", "refbox"],
    "dense": ["depth", "normals", "semseg", "canny", "sketch"],
    "control": ["canny_to_image", "sketch_to_image", "depth_to_image", "normal_to_image", "seg_to_image"],
    "editing": ["edit_remove", "edit_add", "edit_replace", "edit_recolor", "edit_move", "edit_background",
                "style_sketch", "style_watercolor", "style_oil", "style_cartoon"],
    "inpainting": ["inpaint_freeform", "inpaint_box", "inpaint_circle", "outpaint"],
    "t2i": ["t2i"],
}
WORLD = {"refseg_overlay", "refseg_mask", "refbox", "depth", "normals", "semseg", "depth_to_image",
         "normal_to_image", "seg_to_image", "edit_remove", "edit_add", "edit_replace", "edit_recolor", "edit_move",
         "edit_background", "t2i"}


def test_registry_has_exactly_the_canonical_tasks_by_domain():
    groups = tasks_by_domain()
    assert list(groups) == list(DOMAINS)
    assert {d: [s.id for s in specs] for d, specs in groups.items()} == CANONICAL
    assert len(REGISTRY) == 44
    for spec in REGISTRY.values():
        assert spec.source == ("world" if spec.id in WORLD else "photo"), spec.id
        assert spec.codec in CODECS, spec.id
        assert spec.bank_key == spec.id
        assert spec.paper_share == DOMAIN_PAPER_SHARE[spec.domain]
    assert sum(DOMAIN_PAPER_SHARE.values()) == pytest.approx(0.99)


def test_codecs_and_metrics_follow_the_conventions():
    expect = {"refseg_overlay": ("overlay", ("ciou", "giou")), "refseg_mask": ("mask", ("ciou", "giou")),
              "refbox": ("box", ("box_acc50",)), "depth": ("depth", ("absrel", "rmse", "delta1")),
              "normals": ("normals", ("mean_angle", "median_angle", "pct_11_25")),
              "semseg": ("semseg", ("miou", "pixel_acc")), "canny": ("mask", ("edge_f1",)),
              "denoise": ("image", ("psnr", "ssim")), "edit_move": ("image", ("psnr", "ssim", "preserve_psnr")),
              "depth_to_image": ("image", ("psnr", "ssim", "faithfulness")),
              "outpaint": ("image", ("psnr", "ssim", "masked_psnr"))}
    for task, (codec, metrics) in expect.items():
        assert (get_task(task).codec, get_task(task).metrics) == (codec, metrics)


def test_unknown_task_error_names_close_ids():
    with pytest.raises(ValueError, match="deblur_motion"):
        get_task("deblur_motoin")
    with pytest.raises(ValueError, match="unknown task"):
        get_task("zzzz")


def test_taskspec_validates():
    with pytest.raises(ValueError, match="domain"):
        TaskSpec(id="x", domain="nope", title="x", source="photo", codec="image", metrics=("psnr",))
    with pytest.raises(ValueError, match="slot"):
        TaskSpec(id="x", domain="dense", title="x", source="photo", codec="image", metrics=("psnr",),
                 slots=("thing",))
    with pytest.raises(ValueError, match="source"):
        TaskSpec(id="x", domain="dense", title="x", source="web", codec="image", metrics=("psnr",))


def test_bank_size_slots_and_split():
    bank = ins.load_bank()
    assert set(bank) == set(REGISTRY)
    for task, spec in REGISTRY.items():
        all_ = ins.phrasings(task, "all")
        train, held = ins.phrasings(task, "train"), ins.phrasings(task, "heldout")
        assert len(set(all_)) >= 40, task
        assert len(held) >= 0.2 * len(all_), task
        assert set(train).isdisjoint(held) and sorted(train + held) == sorted(all_)
        for t in all_:
            used = ins.template_slots(t)
            assert set(spec.slots) <= used <= set(spec.all_slots) <= set(SLOT_NAMES), (task, t)
        # varied forms: some questions, some polite requests, some terse commands
        assert any(t.rstrip().endswith("?") for t in all_), task
        assert any("please" in t.lower() for t in all_), task
        assert min(len(t.split()) for t in all_) <= 4, task


def test_split_is_stable_across_processes():
    code = ("from pixwizard.tasks.instructions import phrasings;"
            "print(repr([phrasings(t, 'heldout') for t in ('derain', 'refbox', 't2i')]))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1
    assert outs.pop().strip() == repr([ins.phrasings(t, "heldout") for t in ("derain", "refbox", "t2i")])


def test_check_bank_reports_problems():
    bank = dict(ins.load_bank())
    bank["refbox"] = bank["refbox"][:-1] + ("Draw a box around {object} in {style}.",)
    bank["denoise"] = bank["denoise"][:10]
    bank.pop("t2i")
    bank["nonsense"] = ("x",)
    with pytest.raises(ValueError) as err:
        ins.check_bank(bank)
    msg = str(err.value)
    for part in ("'refbox'", "{style}", "lacks required slot", "'denoise' has 10", "'t2i' has no phrasings",
                 "'nonsense' belongs to no task"):
        assert part.replace("{style}", "style") in msg, part


def test_make_instruction_fills_slots_deterministically():
    slots = {"object": "the red cube", "colour": "blue"}
    draw = [ins.make_instruction("refbox", slots, np.random.default_rng(3)) for _ in range(2)]
    assert draw[0] == draw[1]
    rng = np.random.default_rng(0)
    texts = {ins.make_instruction("refbox", slots, rng, split="heldout") for _ in range(200)}
    assert len(texts) == len(ins.phrasings("refbox", "heldout"))
    for t in texts:
        assert "the red cube" in t and "blue" in t and "{" not in t


def test_make_instruction_errors_and_optional_slots():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="colour"):
        ins.make_instruction("refseg_overlay", {"object": "the cube"}, rng)
    with pytest.raises(ValueError, match="optional"):
        ins.make_instruction("edit_recolor", {"object": "the cube"}, rng)
    with pytest.raises(ValueError, match="split"):
        ins.phrasings("denoise", "test")
    for _ in range(30):
        text = ins.make_instruction("edit_recolor", {"object": "the cube", "material": "polished wood"}, rng)
        assert "polished wood" in text and "{" not in text
    # slots a task does not use are ignored
    assert "{" not in ins.make_instruction("denoise", {"object": "the cube"}, rng)


def test_fillers_fill_every_template():
    for task in REGISTRY:
        for i, t in enumerate(ins.phrasings(task, "all")):
            for which in ("train", "heldout"):
                text = ins.fill_with_fillers(t, i, which)
                assert "{" not in text and "}" not in text
    with pytest.raises(ValueError, match="fillers"):
        ins.fill_with_fillers("x", 0, "test")

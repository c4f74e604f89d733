"""`pixwizard finetune` under torchrun: two processes on gloo (CPU), DDP and FSDP2, LoRA and full.

Every rank draws the same global batch and trains on its slice; rank 0 exports the result from the
last checkpoint's full tensors and writes the report. A resumed distributed run ends bitwise where
the straight one does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dist_support import free_port
from finetune_support import isolated_registry, make_pairs, save_debug_base  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ftdist")
    save_debug_base(root / "base.safetensors")
    pairs = make_pairs(root / "pairs")
    task = root / "task.json"
    task.write_text(json.dumps({"name": "invert_tint_dist", "phrasings": ["invert the tint", "undo the negative"]}))
    return {"root": root, "base": root / "base.safetensors", "pairs": pairs, "task": task}


def _finetune(setup, out: Path, *extra: str, nproc: int = 2) -> subprocess.CompletedProcess:
    args = ["finetune", str(setup["pairs"]), "--task-config", str(setup["task"]), "--base", str(setup["base"]),
            "--out", str(out), "--rank", "2", "--alpha", "4", "--steps", "4", "--batch-size", "4", "--size", "32",
            "--lr", "1e-2", "--checkpoint-every", "2", "--precision", "fp32", "--holdout", "2", "--no-eval", *extra]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr",
           "127.0.0.1", "--master-port", str(free_port()), "-m", "pixwizard.cli", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PIXWIZARD_CACHE=str(setup["root"] / "cache"))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_process_lora_exports_an_adapter_and_resumes_exactly(setup, tmp_path, parallel):
    straight = _finetune(setup, tmp_path / "a", "--parallel", parallel)
    assert straight.returncode == 0, straight.stderr[-3000:]
    adapter = tmp_path / "a" / "invert_tint_dist.safetensors"
    t = load_file(str(adapter))
    assert t and all(".lora_A." in k or ".lora_B." in k for k in t)
    assert any(float(v.abs().max()) > 0 for k, v in t.items() if ".lora_B." in k)  # it trained
    state = json.loads((tmp_path / "a" / "checkpoints" / "step-000000004" / "state.json").read_text())
    assert (state["world_size"], state["strategy"], state["samples"]) == (2, parallel, 16)
    ranks = sorted(p.name for p in (tmp_path / "a" / "checkpoints" / "step-000000004").glob("rank-*.pt"))
    assert ranks == ["rank-00000.pt", "rank-00001.pt"]
    assert straight.stdout.count("trained 4/4 steps") == 1  # rank 0 alone reports

    first = _finetune(setup, tmp_path / "b", "--parallel", parallel, "--max-steps", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = _finetune(setup, tmp_path / "b", "--parallel", parallel, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = load_file(str(tmp_path / "b" / "invert_tint_dist.safetensors"))
    assert all(torch.equal(t[k], again[k]) for k in t)

    from pixwizard.pipeline import PixWizardPipeline  # the adapter loads on the base model in one process

    pipe = PixWizardPipeline.from_pretrained(setup["base"], device="cpu", precision="fp32")
    assert pipe.load_adapter(adapter) == "invert_tint_dist"


def test_two_process_full_finetune_writes_a_model_and_refuses_another_launch_on_resume(setup, tmp_path):
    run = _finetune(setup, tmp_path / "full", "--mode", "full", "--parallel", "fsdp", "--max-steps", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    from pixwizard.checkpoint import load_model

    model, info = load_model(tmp_path / "full" / "invert_tint_dist.model.safetensors")
    assert info.trained_samples == 100 + 8
    other = _finetune(setup, tmp_path / "full", "--mode", "full", "--parallel", "ddp", "--resume")
    assert other.returncode != 0 and "differs in config" in other.stderr  # the run record names the strategy


def test_lora_from_a_converted_official_checkpoint(tmp_path):
    """The released checkpoint's layout (here the official-tiny fixture, converted) fine-tunes like
    ours: its own conventions come with its config; its frozen parts are tiny stand-ins (a diffusers
    AutoencoderKL, a transformers CLIP vision tower) written in the test."""
    from diffusers import AutoencoderKL
    from safetensors import safe_open
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from pixwizard.checkpoint import write_metadata
    from pixwizard.cli import main
    from pixwizard.finetune.config import FinetuneConfig, NewTaskConfig
    from pixwizard.finetune.loop import finetune
    from pixwizard.finetune.pairs import load_and_check
    from pixwizard.pipeline import PixWizardPipeline

    fixture = Path(__file__).resolve().parents[2] / "shared" / "reference" / "official-tiny"
    assert main(["convert", str(fixture), "-o", str(tmp_path / "off.safetensors")]) == 0
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
                  latent_channels=4, norm_num_groups=4, sample_size=32).save_pretrained(tmp_path / "vae")
    with safe_open(str(tmp_path / "off.safetensors"), "pt") as f:
        meta = dict(f.metadata())
    cfg = json.loads(meta["pixwizard_config"])
    cfg["codec"]["name_or_path"] = str(tmp_path / "vae")
    sem = cfg["semantic"]
    CLIPVisionModel(CLIPVisionConfig(hidden_size=sem["dim"], intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=4, image_size=sem["image_size"], patch_size=16)
                    ).save_pretrained(tmp_path / "clip")
    sem.update(kind="clip", name_or_path=str(tmp_path / "clip"))
    meta["pixwizard_config"] = json.dumps(cfg)
    write_metadata(tmp_path / "off.safetensors", tmp_path / "base.safetensors", meta)

    pairs = make_pairs(tmp_path / "pairs", n=4, seed=1)
    task = NewTaskConfig("invert_tint_official", phrasings=("invert the tint",))
    ft = FinetuneConfig(task=task, rank=2, alpha=4, steps=2, batch_size=2, size=32, lr=1e-2, warmup_steps=0,
                        checkpoint_every=2, precision="fp32", holdout=0)
    result = finetune(ft, tmp_path / "base.safetensors", load_and_check(pairs).pairs, tmp_path / "run")
    t = load_file(str(result.output))
    assert result.step == 2 and any(float(v.abs().max()) > 0 for k, v in t.items() if ".lora_B." in k)
    pipe = PixWizardPipeline.from_pretrained(tmp_path / "base.safetensors", device="cpu", precision="fp32")
    assert pipe.load_adapter(result.output) == "invert_tint_official"
    out = pipe(np.zeros((32, 32, 3), np.uint8), "invert the tint", steps=1, task="invert_tint_official")
    assert out.image.shape == (32, 32, 3)

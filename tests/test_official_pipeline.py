"""The ``official`` inference preset with tiny random parts of the real classes (AutoencoderKL,
GemmaModel + tokenizer, CLIPTextModelWithProjection, CLIPVisionModel) saved to folders here:
buckets, the three branches as the original builds them, exact-compat quirks, offload, and
one-line errors for missing parts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixwizard.checkpoint import save_model
from pixwizard.config import (CodecConfig, FlowConfig, ModelConfig, PixWizardConfig, SemanticEncoderConfig,
                              TextEncoderConfig)
from pixwizard.model.encoders.semantic import CLIP_MEAN, CLIP_STD
from pixwizard.official.buckets import buckets, nearest_bucket
from pixwizard.official.pipeline import OfficialPipeline, OfficialSettings

from test_encoders import _word_tokenizer

torch.set_num_threads(1)  # tiny models: thread hand-offs cost more than they save (as in test_encoders)

WORDS = "remove the rain from this photo please make it brighter".split()


def _tokenizer(folder, with_pad=True) -> int:
    return _word_tokenizer(folder, with_pad=with_pad, words=WORDS)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from diffusers import AutoencoderKL
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig, GemmaConfig, GemmaModel

    root = tmp_path_factory.mktemp("parts")
    torch.manual_seed(0)
    v = _tokenizer(root / "gemma", with_pad=False)
    GemmaModel(GemmaConfig(vocab_size=v, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
                           pad_token_id=0, bos_token_id=4, eos_token_id=3)).save_pretrained(root / "gemma")
    v = _tokenizer(root / "clip")  # one CLIPModel folder holds both towers, like the hub's CLIP-L/14-336
    text_cfg = CLIPTextConfig(vocab_size=v, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, max_position_embeddings=16, pad_token_id=0, bos_token_id=4,
                              eos_token_id=3, projection_dim=16)
    vision_cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  image_size=32, patch_size=8, projection_dim=16)
    CLIPModel(CLIPConfig(text_config=text_cfg.to_dict(), vision_config=vision_cfg.to_dict(),
                         projection_dim=16)).save_pretrained(root / "clip")
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
                  latent_channels=4, norm_num_groups=4, sample_size=64).save_pretrained(root / "vae")
    return root


@pytest.fixture(scope="module")
def checkpoint(parts, tmp_path_factory):
    from pixwizard.model.pixwizard import PixWizard

    cfg = PixWizardConfig(
        name="official-test",
        model=ModelConfig(patch_size=2, in_channels=4, dim=32, depth=2, heads=4, kv_heads=2, multiple_of=8,
                          adaln_dim=32, train_tokens=16, text_dim=32, task_dim=16, semantic_dim=32, sampler_keep=8,
                          timestep_scale=1.0, cross_attn_rope_query=True, sampler_score_before_norm=True,
                          rope_ntk=False),
        text=TextEncoderConfig(kind="gemma", name_or_path=str(parts / "gemma"), max_length=256, token_dim=32,
                               pooled_dim=16, layer=-2, pooled_kind="clip", pooled_name_or_path=str(parts / "clip")),
        semantic=SemanticEncoderConfig(kind="clip", name_or_path=str(parts / "clip"), dim=32, image_size=32,
                                       resize="bicubic-align-corners"),
        codec=CodecConfig(kind="vae", name_or_path=str(parts / "vae"), latent_channels=4, downsample=8,
                          scaling_factor=0.13025),
        flow=FlowConfig(prediction="velocity", steps=59))
    torch.manual_seed(1)
    model = PixWizard(cfg)
    with torch.no_grad():  # open the zero-initialised paths
        for p in model.dit.parameters():
            p.add_(0.2 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("ckpt") / "official-test.safetensors"
    save_model(model, path)
    return path


def _image(h=40, w=56, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


SMALL = OfficialSettings(resolution=64, points=4)


def test_buckets_follow_the_original_staircase():
    b = buckets(768)
    assert b[:6] == ((1536, 384), (1520, 384), (1504, 384), (1488, 384), (1472, 384), (1472, 400))
    assert b[-1] == (384, 1536) and (768, 768) in b and len(b) == 145
    assert all(w % 16 == 0 and h % 16 == 0 and w * h <= 768 * 768 for w, h in b)
    assert nearest_bucket(1000, 1000) == (768, 768)
    assert nearest_bucket(640, 480) == (880, 656)  # 4:3 -> the bucket nearest 1.333 (1.341)


def test_pipeline_runs_the_three_branches_like_the_original(checkpoint, parts):
    pipe = OfficialPipeline.from_pretrained(checkpoint, device="cpu", precision="fp32", settings=SMALL)
    calls = []
    real = pipe.model.dit.forward

    def spy(x, t, **kw):
        calls.append(dict(x=x, t=t, gumbel=[layer.sampler.eval_gumbel for layer in pipe.model.dit.layers], **kw))
        return real(x, t, **kw)

    pipe.model.dit.forward = spy
    res = pipe(_image(), "remove the rain", seed=3, exact_compat=True, image_scale=1.5)
    assert res.bucket == (64, 48) and res.image.shape == (48, 64, 3)  # bucket size in exact-compat mode
    assert len(calls) == SMALL.points - 1
    first = calls[0]
    z1 = first["x"][0]
    assert first["x"].shape[0] == 3 and torch.equal(first["t"], torch.zeros(3))
    torch.testing.assert_close(first["cond"][2], z1, rtol=0, atol=0)  # null branch: initial noise as condition
    assert torch.equal(first["cond"][0], first["cond"][1]) and not torch.equal(first["cond"][0], z1)
    assert first["semantic"][2].abs().sum() == 0 and first["semantic"][0].abs().sum() > 0
    mask = first["text_mask"]
    assert mask[0].sum() == 5 and mask[1].sum() == mask[2].sum() == 2  # [BOS] remove the rain [EOS]; [BOS] [EOS]
    assert torch.equal(first["text_tokens"][1], first["text_tokens"][2])
    assert first["attn_base_tokens"] == (64 // 16) ** 2 and all(first["gumbel"])
    assert not any(layer.sampler.eval_gumbel for layer in pipe.model.dit.layers)  # reset after the call

    calls.clear()
    ours = pipe(_image(), "remove the rain", seed=3)
    assert ours.image.shape == (40, 56, 3)  # default: the input's exact size
    assert calls[0]["x"].shape[0] == 2 and not any(calls[0]["gumbel"])  # wI = 1: null branch skipped
    again = pipe(_image(), "remove the rain", seed=3)
    other = pipe(_image(), "remove the rain", seed=4)
    assert np.array_equal(ours.image, again.image) and not torch.equal(ours.latent, other.latent)
    # with wI = 1 the null branch cancels: 2 and 3 evaluated branches agree up to rounding
    three = pipe(_image(), "remove the rain", seed=3, settings=dataclasses.replace(SMALL, image_scale=1.0 + 1e-7))
    torch.testing.assert_close(three.latent, ours.latent, atol=1e-4, rtol=0)


def test_semantic_tokens_use_bicubic_align_corners_without_cls(checkpoint, parts):
    from transformers import CLIPVisionModel

    pipe = OfficialPipeline.from_pretrained(checkpoint, device="cpu", precision="fp32", settings=SMALL)
    x = torch.rand(1, 3, 48, 80) * 2 - 1
    got = pipe.model.encode_semantic(x)
    ref_model = CLIPVisionModel.from_pretrained(parts / "clip").eval()
    y = F.interpolate((x + 1) / 2, size=(32, 32), mode="bicubic", align_corners=True, antialias=False)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = ref_model(pixel_values=(y - mean) / std).last_hidden_state[:, 1:]
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)


def test_offload_gives_the_same_result(checkpoint):
    a = OfficialPipeline.from_pretrained(checkpoint, device="cpu", precision="fp32", settings=SMALL)
    b = OfficialPipeline.from_pretrained(checkpoint, device="cpu", precision="fp32", settings=SMALL, offload=True)
    ra, rb = a(_image(), "make it brighter", seed=1), b(_image(), "make it brighter", seed=1)
    assert np.array_equal(ra.image, rb.image)


def test_missing_parts_are_one_line_errors_naming_the_model(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="VAE folder not found: /nowhere/vae"):
        OfficialPipeline.from_pretrained(checkpoint, vae="/nowhere/vae")
    with pytest.raises(ValueError, match="pixwizard-test/no-such-vae") as e:
        OfficialPipeline.from_pretrained(checkpoint, vae="pixwizard-test/no-such-vae")
    assert "\n" not in str(e.value)


def test_bench_reports_step_time_and_memory(checkpoint):
    from pixwizard.benchmarks.official import bench_official
    from pixwizard.checkpoint import read_info

    cfg = read_info(checkpoint).config.model
    dit = bench_official("cpu", [64, 96], repeats=1, model_cfg=cfg)
    assert set(dit["sizes"]) == {"64", "96"} and dit["branches"] == 2 and "DiT only" in dit["what"]
    for size, row in dit["sizes"].items():
        assert row["step_s"] > 0 and row["s_per_image"] == pytest.approx(row["step_s"] * 59, rel=0.01, abs=0.01)  # both rounded
        assert row["peak_mb"] > 0 and row["image_tokens"] == (int(size) // 16) ** 2
    whole = bench_official("cpu", [64], repeats=1, exact=True, checkpoint=str(checkpoint), steps=2)
    assert whole["branches"] == 3 and whole["sizes"]["64"]["s_per_image"] > 0


def test_the_ordinary_pipeline_runs_a_converted_checkpoint_near_768(checkpoint):
    from pixwizard.pipeline import PixWizardPipeline

    pipe = PixWizardPipeline.from_pretrained(checkpoint, device="cpu", precision="fp32")
    assert pipe.work_max_pixels == 768 * 768
    res = pipe(_image(), "remove the rain", steps=2, decode=False)
    assert res.image.shape == (40, 56, 3) and res.working_size == (40, 56)

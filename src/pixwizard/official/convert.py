"""Convert the released PixWizard checkpoint into a PixWizard safetensors model.

``convert(src, out, dtype=...)`` reads an official checkpoint (see :mod:`.source` for the layouts),
derives the model's sizes from the tensor shapes (the arguments file only adds what shapes cannot
say: the kept semantic tokens ``sample_tokens`` and the proportional-attention base), maps every
tensor (:mod:`.keymap`) and writes them one at a time (:mod:`.safetensors_stream`) with the
resolved config in the metadata, so :func:`pixwizard.checkpoint.load_model` loads the result and
its ``.dit`` computes the official forward pass (t in [0, 1]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from pixwizard import __version__
from pixwizard.checkpoint import FORMAT
from pixwizard.config import (CodecConfig, FlowConfig, ModelConfig, PixWizardConfig, SemanticEncoderConfig,
                              TextEncoderConfig)
from pixwizard.model.layers import swiglu_hidden
from pixwizard.official.keymap import plan
from pixwizard.official.safetensors_stream import TensorSpec, write_streaming
from pixwizard.official.source import OfficialSource, open_official

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
OFFICIAL_VAE = "stabilityai/sdxl-vae"
OFFICIAL_GEMMA = "google/gemma-2b"
OFFICIAL_CLIP = "openai/clip-vit-large-patch14-336"
DEFAULT_RESOLUTION = 768  # the official inference's bucket resolution; base = (768 // 16)^2 = 2304


@dataclass
class Parts:
    """Where the pretrained parts come from: hub ids or local folders (``from_pretrained``)."""

    vae: str = OFFICIAL_VAE
    text: str = OFFICIAL_GEMMA
    clip: str = OFFICIAL_CLIP


def attn_base(resolution: int, downsample: int = 8, patch: int = 2) -> int:
    """The official proportional-attention base of a bucket resolution: (resolution // 16)^2."""
    return (resolution // (downsample * patch)) ** 2


def _ffn(dim: int, hidden: int, args: dict[str, Any]) -> tuple[float, int]:
    """(ffn_mult, multiple_of) that give ``hidden`` in our SwiGLU sizing."""
    mult = 8 / 3 * float(args.get("ffn_dim_multiplier") or 1.0)
    for m in (int(args.get("multiple_of") or 256), 256, 128, 64, 32, 16, 8):
        if swiglu_hidden(dim, mult, m) == hidden:
            return mult, m
    for m in (256, 128, 64, 32, 16, 8, 4, 2):
        if hidden % m == 0 and swiglu_hidden(dim, hidden / dim, m) == hidden:
            return hidden / dim, m
    raise ValueError(f"cannot express the SwiGLU width {hidden} of a {dim}-wide block")


def official_config(shapes: dict[str, tuple[int, ...]], args: dict[str, Any], *,
                    resolution: int = DEFAULT_RESOLUTION, parts: Parts | None = None) -> PixWizardConfig:
    """The PixWizard config of an official state dict (sizes from ``shapes``).

    The forward-pass switches take the official values (t unscaled, rotated query in the
    cross-attentions, scoring before the norm, no NTK RoPE, no learn-sigma half). The
    proportional-attention base ``train_tokens`` is ``args["base_seqlen"]`` when given, else
    (resolution // 16)^2. Pretrained parts are the official ones when the widths match them
    (Gemma-2B 2048, CLIP-L/14-336 768 and 1024, 4 latent channels), else placeholders that fail
    with a clear error if a pipeline tries to load them."""
    def need(k: str) -> tuple[int, ...]:
        if k not in shapes:
            raise ValueError(f"not an official PixWizard state dict: no {k}")
        return shapes[k]

    dim, x_in = need("x_embedder.weight")
    channels = int(args.get("in_channels", 4))
    patch = math.isqrt(x_in // (2 * channels))
    if patch * patch * 2 * channels != x_in:
        raise ValueError(f"x_embedder takes {x_in} features: not p*p*2*{channels} for any patch size p")
    heads = need("layers.0.attention.gate")[0]
    head_dim = dim // heads
    kv_heads = need("layers.0.attention.wk.weight")[0] // head_dim
    adaln = need("t_embedder.mlp.0.weight")[0]
    text_dim = need("layers.0.attention.wk_y.weight")[1]
    task_dim = need("task_embedder.1.weight")[1]
    semantic_dim = need("global_semantic_embedder.1.weight")[1]
    hidden = need("layers.0.feed_forward.w1.weight")[0]
    depth = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("layers."))
    ffn_mult, multiple_of = _ffn(dim, hidden, args)
    base = int(args["base_seqlen"]) if args.get("base_seqlen") else attn_base(resolution, 8, patch)
    model = ModelConfig(
        patch_size=patch, in_channels=channels, dim=dim, depth=depth, heads=heads, kv_heads=kv_heads,
        ffn_mult=ffn_mult, multiple_of=multiple_of, adaln_dim=adaln, norm_eps=float(args.get("norm_eps", 1e-5)),
        rope_theta=10000.0, train_tokens=base, text_dim=text_dim, task_dim=task_dim, semantic_dim=semantic_dim,
        use_structural=True, use_semantic=True, use_text=True, sampler_enabled=True,
        sampler_keep=int(args.get("sample_tokens", 256)), sampler_tau=5.0, learn_sigma=False,
        qk_norm="layers.0.attention.q_norm.weight" in shapes, condition_skip=False,
        timestep_scale=1.0, cross_attn_rope_query=True, sampler_score_before_norm=True,
        sampler_eval_gumbel=False, rope_ntk=False,
    )
    official_widths = (text_dim, task_dim, semantic_dim, channels) == (2048, 768, 1024, 4)
    if official_widths:
        p = parts or Parts()
        text = TextEncoderConfig(kind="gemma", name_or_path=p.text, max_length=256, token_dim=text_dim,
                                 pooled_dim=task_dim, layer=-2, pooled_kind="clip", pooled_name_or_path=p.clip)
        semantic = SemanticEncoderConfig(kind="clip", name_or_path=p.clip, dim=semantic_dim, image_size=336,
                                         resize="bicubic-align-corners")
        codec = CodecConfig(kind="vae", name_or_path=p.vae, latent_channels=channels, downsample=8,
                            scaling_factor=0.13025)
    else:
        if parts is not None:
            raise ValueError(f"the checkpoint's widths (text {text_dim}, task {task_dim}, semantic {semantic_dim}, "
                             f"{channels} channels) do not fit the official parts (2048, 768, 1024, 4)")
        text = TextEncoderConfig(kind="random", max_length=256, token_dim=text_dim, pooled_dim=task_dim)
        semantic = SemanticEncoderConfig(kind="none", dim=semantic_dim)
        codec = CodecConfig(kind="vae", name_or_path=None, latent_channels=channels, downsample=8,
                            scaling_factor=0.13025)
    flow = FlowConfig(prediction="velocity", time_sampling="uniform", steps=59, sample_shift=1.0,
                      text_guidance=4.0, image_guidance=1.0, drop_text=0.05, drop_image=0.05, drop_both=0.05)
    return PixWizardConfig(name="official-2b" if official_widths else "official", model=model, text=text,
                           semantic=semantic, codec=codec, flow=flow, max_pixels=2048 * 2048)


def convert(src: str | Path, out: str | Path, *, dtype: str = "auto", resolution: int = DEFAULT_RESOLUTION,
            parts: Parts | None = None, progress: Callable[[int, int], None] | None = None,
            read_args: bool = True) -> PixWizardConfig:
    """Convert the official checkpoint at ``src`` into ``out`` (safetensors). ``dtype``: ``auto``
    (the source's own), ``fp32``, ``bf16`` or ``fp16``; ``read_args=False`` ignores
    ``model_args.*``. Returns the written config."""
    if dtype != "auto" and dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto, {', '.join(DTYPES)}")
    with open_official(src, read_args=read_args) as source:
        return _convert(source, Path(out), dtype, resolution, parts, progress)


def _convert(source: OfficialSource, out: Path, dtype: str, resolution: int, parts: Parts | None,
             progress) -> PixWizardConfig:
    cfg = official_config(source.shapes, source.args, resolution=resolution, parts=parts)
    m = cfg.model
    entries = plan(source.shapes, head_dim=m.dim // m.heads, patch=m.patch_size, channels=m.in_channels)
    src_dtypes = {source.dtypes[s] for e in entries for s in e.sources}
    if dtype == "auto":
        if len(src_dtypes) != 1:
            raise ValueError(f"the checkpoint mixes dtypes ({', '.join(sorted(map(str, src_dtypes)))}); pass a dtype")
        target = src_dtypes.pop()
    else:
        target = DTYPES[dtype]
    by_name = {e.name: e for e in entries}
    specs = [TensorSpec("dit." + e.name, e.shape, target) for e in entries]

    def produce(spec: TensorSpec) -> torch.Tensor:
        e = by_name[spec.name[len("dit."):]]
        t = e.build([source.tensor(s) for s in e.sources])
        return t.to(target)

    meta = {"format": FORMAT, "pixwizard_config": cfg.to_json(), "pixwizard_version": __version__,
            "trained_samples": "-1", "converted_from": "PixWizard official release (AFeng-x/PixWizard)",
            "source_file": source.path.name}
    write_streaming(out, specs, produce, meta, progress)
    return cfg

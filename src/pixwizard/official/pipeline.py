"""Inference with the released PixWizard checkpoint, as the original does it (``official`` preset).

The original's steps (DESIGN section 11): the image goes to the nearest aspect bucket at about
768^2 (LANCZOS); the SDXL VAE encodes it (posterior sample, scale 0.13025); CLIP-L/14-336 vision
gives 576 semantic tokens (bicubic, ``align_corners=True``, no antialias, no CLS); Gemma-2B
``hidden_states[-2]`` (right-padded, <= 256 tokens) the instruction tokens and CLIP-L/14-336
``text_embeds`` the task embedding; three guidance branches (see :mod:`.sampling`); Euler on 60
time points, text scale 4, image scale 1; proportional attention with base (bucket // 16)^2.

``exact_compat=True`` also reproduces the original's quirks: guidance on latent channels 0-2
only, Gumbel noise in the token sampler at inference, all three branches evaluated, the VAE and
CLIP under the same autocast as the DiT, the output left at the bucket size and quantised by
truncation. By default we guide every channel, select
tokens deterministically, skip the null branch when the image scale is 1 (it cancels), and
return the image at the input's exact size (docs/official-checkpoint.md).

Parts load with ``from_pretrained`` from local folders or hub ids (``HF_HUB_OFFLINE=1`` is
honoured; a missing model is a one-line error naming it). ``offload=True`` keeps the text
encoders, CLIP and the VAE on the CPU and moves each to the device only while it runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from pixwizard.checkpoint import check_state, read_info
from pixwizard.config import PixWizardConfig
from pixwizard.model.encoders import build_codec, build_text_encoder
from pixwizard.official.buckets import nearest_bucket
from pixwizard.official.sampling import official_time_grid, sample
from pixwizard.runtime import Precision, autocast, resolve_device


@dataclass
class OfficialSettings:
    resolution: int = 768  # bucket resolution (512, 768 or 1024 in the original)
    points: int = 60  # time points (points - 1 Euler steps)
    time_shift: float = 1.0
    text_scale: float = 4.0
    image_scale: float = 1.0
    exact_compat: bool = False
    posterior: Literal["sample", "mean"] = "sample"  # how the VAE encodes the condition


@dataclass
class OfficialResult:
    image: np.ndarray  # HxWx3 uint8: the input's size, or the bucket's with exact_compat
    latent: torch.Tensor  # [1, 4, h, w] the final latent (t = 1)
    bucket: tuple[int, int]  # (W, H) the model ran at
    seed: int
    settings: OfficialSettings


def load_official_model(checkpoint: str | Path, *, clip: str | None = None, dtype: torch.dtype | None = None):
    """The converted model with its CLIP vision part (from ``clip`` if given, else the config's)."""
    from safetensors.torch import load_file

    from pixwizard.model.pixwizard import PixWizard

    info = read_info(checkpoint)
    cfg = info.config
    if clip is not None:
        cfg = dataclasses.replace(cfg, semantic=dataclasses.replace(cfg.semantic, name_or_path=clip))
    model = PixWizard(cfg)
    state = load_file(str(checkpoint))
    check_state(state, model.trainable_state_dict(), checkpoint)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if dtype is not None:
        model.dit.to(dtype)
    return model.eval(), info


class OfficialPipeline:
    def __init__(self, model, text_encoder, codec, *, device=None, precision: Precision = "auto",
                 settings: OfficialSettings | None = None, offload: bool = False):
        self.device = resolve_device(str(device) if device is not None else None)
        self.model = model.eval()
        self.config: PixWizardConfig = model.config
        self.text_encoder, self.codec = text_encoder, codec
        self.precision = precision
        self.settings = settings or OfficialSettings()
        self.offload = offload
        self.model.dit.to(self.device)
        parts_device = "cpu" if offload else self.device
        for part in (self.text_encoder, self.codec, self.model.semantic):
            if part is not None:
                part.to(parts_device)

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path, *, vae: str | None = None, text_encoder: str | None = None,
                        clip: str | None = None, device: str | None = None, precision: Precision = "auto",
                        settings: OfficialSettings | None = None, offload: bool = False,
                        parts_dtype: torch.dtype | None = None,
                        dit_dtype: torch.dtype | None = None) -> "OfficialPipeline":
        """Load a converted checkpoint (``pixwizard convert``) and its pretrained parts; ``vae``,
        ``text_encoder`` (Gemma) and ``clip`` override the folders/hub ids in its config.
        ``dit_dtype``: the DiT's weights (default bf16 on CUDA unless ``precision="fp32"``, else
        float32); ``parts_dtype``: Gemma's and CLIP's (default: their checkpoints'); the VAE stays
        float32 (the SDXL VAE overflows in float16)."""
        if dit_dtype is None and resolve_device(device).type == "cuda" and precision != "fp32":
            dit_dtype = torch.bfloat16
        model, info = load_official_model(checkpoint, clip=clip, dtype=dit_dtype)
        if parts_dtype is not None and model.semantic is not None:
            model.semantic.to(parts_dtype)
        cfg = model.config
        text_cfg = dataclasses.replace(cfg.text, name_or_path=text_encoder or cfg.text.name_or_path,
                                       pooled_name_or_path=clip or cfg.text.pooled_name_or_path)
        codec_cfg = dataclasses.replace(cfg.codec, name_or_path=vae or cfg.codec.name_or_path)
        text = build_text_encoder(text_cfg, dtype=parts_dtype)
        codec = build_codec(codec_cfg)
        return cls(model, text, codec, device=device, precision=precision, settings=settings, offload=offload)

    @contextlib.contextmanager
    def _on_device(self, part):
        """Run ``part`` on the device (moved there and back with ``offload``)."""
        if part is None or not self.offload:
            yield part
            return
        part.to(self.device)
        try:
            yield part
        finally:
            part.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _gumbel(self, on: bool) -> None:
        for layer in self.model.dit.layers:
            if getattr(layer, "sampler", None) is not None:
                layer.sampler.eval_gumbel = on

    @torch.inference_mode()
    def __call__(self, image, instruction: str, *, seed: int = 0, settings: OfficialSettings | None = None,
                 **overrides) -> OfficialResult:
        """Run one instruction on ``image`` (HxWx3 uint8 array, a PIL image or a path)."""
        s = dataclasses.replace(settings or self.settings, **overrides)
        if not isinstance(instruction, str):
            raise ValueError("the instruction must be a string")
        pil = image if isinstance(image, Image.Image) else (
            Image.fromarray(image) if isinstance(image, np.ndarray) else Image.open(image))
        pil = pil.convert("RGB")
        w0, h0 = pil.size
        bw, bh = nearest_bucket(w0, h0, s.resolution)
        f = self.config.pixel_multiple
        if bw % f or bh % f:
            raise ValueError(f"bucket {bw}x{bh} is not a multiple of {f}")
        pixels = torch.from_numpy(np.array(pil.resize((bw, bh), resample=Image.LANCZOS))).permute(2, 0, 1)[None]
        pixels = (pixels.float() / 127.5 - 1.0).to(self.device)
        gen = torch.Generator().manual_seed(int(seed))
        # the original runs everything (VAE and CLIP too) under its bf16 autocast; we keep the parts in fp32
        parts_cast = autocast(self.device, self.precision) if s.exact_compat else contextlib.nullcontext()
        with self._on_device(self.codec) as codec, parts_cast:
            if s.posterior == "sample":
                dgen = torch.Generator(device=self.device).manual_seed(int(seed) + 1)
                cond = codec.encode(pixels, generator=dgen)
            else:
                cond = codec.encode(pixels)
        with self._on_device(self.model.semantic), parts_cast:
            sem = self.model.encode_semantic(pixels).float()
        with self._on_device(self.text_encoder) as te:
            text = te.encode([instruction, "", ""]).to(self.device)
        z1 = torch.randn(cond.shape, generator=gen).to(self.device)
        n_branches = 3 if (s.exact_compat or s.image_scale != 1.0) else 2
        cond_b = torch.cat([cond, cond, z1])[:n_branches]
        sem_b = torch.cat([sem, sem, torch.zeros_like(sem)])[:n_branches]
        text_b = text.index(slice(0, n_branches))
        base = (s.resolution // f) ** 2
        noise_gen = torch.Generator(device=self.device).manual_seed(int(seed) + 2)
        dit = self.model.dit

        def branches(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, self.precision):
                out = dit(x[:n_branches], t[:n_branches], cond=cond_b, text_tokens=text_b.tokens,
                          text_mask=text_b.mask, text_pooled=text_b.pooled, semantic=sem_b,
                          attn_base_tokens=base, generator=noise_gen)
            out = out.float()
            return out if n_branches == 3 else torch.cat([out, out[1:2]])  # v_null := v_image (cancels at wI=1)

        self._gumbel(s.exact_compat)
        try:
            times = official_time_grid(s.points, s.time_shift, device=self.device)
            latent = sample(branches, z1, times, text_scale=s.text_scale, image_scale=s.image_scale,
                            guided_channels=3 if s.exact_compat else None)
        finally:
            self._gumbel(False)
        with self._on_device(self.codec) as codec, parts_cast:
            decoded = codec.decode(latent)
        x = ((decoded[0].float() + 1.0) / 2.0).clamp(0.0, 1.0)
        if s.exact_compat:  # torchvision's to_pil_image: x * 255 truncated to uint8, bucket size
            out = (x * 255).byte().permute(1, 2, 0).cpu().numpy()
        else:
            out = (x * 255).round().byte().permute(1, 2, 0).cpu().numpy()
            if (bw, bh) != (w0, h0):
                out = np.asarray(Image.fromarray(out).resize((w0, h0), resample=Image.LANCZOS))
        return OfficialResult(np.ascontiguousarray(out), latent.cpu(), (bw, bh), int(seed), s)

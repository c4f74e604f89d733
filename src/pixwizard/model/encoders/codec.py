"""Latent codecs behind :class:`~pixwizard.model.encoders.base.LatentCodec`.

Images are ``[B, 3, H, W]`` in ``[-1, 1]``; latents are ``[B, channels, H/downsample, W/downsample]``.

- :class:`PixelCodec`: the identity (``channels=3``, ``downsample=1``): the embedded default.
- :class:`VAECodec`: a frozen diffusers ``AutoencoderKL`` (the paper: SDXL-VAE, scale 0.13025).
  ``encode``: the posterior mean (or a sample drawn with the given generator), then
  ``(z - shift_factor) * scaling_factor``; ``decode`` inverts that and runs the decoder. H and W
  must be multiples of ``downsample`` (pad with :func:`pixwizard.imageio.pad_to_multiple`).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from pixwizard.config import CodecConfig


class PixelCodec(nn.Module):
    """Pixel space: latents are the images themselves."""

    channels = 3
    downsample = 1

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return images

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents


class VAECodec(nn.Module):
    """A frozen KL autoencoder with the latent normalisation ``(z - shift) * scale``."""

    def __init__(self, vae: nn.Module, *, scaling_factor: float, shift_factor: float = 0.0):
        super().__init__()
        self.vae = vae
        self.channels = int(vae.config.latent_channels)
        self.downsample = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scaling_factor = float(scaling_factor)
        self.shift_factor = float(shift_factor)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VAECodec":
        """Frozen: stays in eval mode."""
        return super().train(False)

    def _dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> [B, C, H/f, W/f]; the posterior mean unless a generator is given."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"VAECodec.encode takes images [B, 3, H, W], got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % self.downsample or w % self.downsample:
            raise ValueError(f"image size {h}x{w} is not a multiple of the VAE downsample "
                             f"{self.downsample}; pad it first (pixwizard.imageio.pad_to_multiple)")
        dist = self.vae.encode(images.to(self._dtype())).latent_dist
        z = dist.mean if generator is None else dist.sample(generator=generator)
        return (z.float() - self.shift_factor) * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, C, h, w] -> [B, 3, h*f, w*f] in about [-1, 1] (not clamped)."""
        if latents.ndim != 4 or latents.shape[1] != self.channels:
            raise ValueError(f"VAECodec.decode takes latents [B, {self.channels}, h, w], got "
                             f"{tuple(latents.shape)}")
        z = latents / self.scaling_factor + self.shift_factor
        return self.vae.decode(z.to(self._dtype())).sample.float()


def _build_vae(cfg: CodecConfig, dtype: torch.dtype | None) -> nn.Module:
    from diffusers import AutoencoderKL

    from pixwizard.model.encoders.text import load_pretrained

    if not cfg.name_or_path:
        raise ValueError("codec kind 'vae' needs name_or_path (a diffusers AutoencoderKL folder or hub id)")
    codec = VAECodec(load_pretrained(AutoencoderKL, cfg.name_or_path, "VAE", torch_dtype=dtype),
                     scaling_factor=cfg.scaling_factor, shift_factor=cfg.shift_factor)
    if codec.channels != cfg.latent_channels or codec.downsample != cfg.downsample:
        raise ValueError(f"VAE {cfg.name_or_path!r} has {codec.channels} latent channels and downsample "
                         f"{codec.downsample}, but the config says latent_channels={cfg.latent_channels}, "
                         f"downsample={cfg.downsample}")
    return codec


def _build_pixel(cfg: CodecConfig, dtype: torch.dtype | None) -> nn.Module:
    if cfg.latent_channels != 3 or cfg.downsample != 1:
        raise ValueError(f"the pixel codec has 3 channels and downsample 1, but the config says "
                         f"latent_channels={cfg.latent_channels}, downsample={cfg.downsample}")
    return PixelCodec()


_BUILDERS: dict[str, Callable[[CodecConfig, torch.dtype | None], nn.Module]] = {
    "pixel": _build_pixel,
    "vae": _build_vae,
}


def build_codec(cfg: CodecConfig, *, dtype: torch.dtype | None = None) -> nn.Module:
    """Build the latent codec ``cfg`` describes. The VAE's scaling/shift come from ``cfg``.

    ``dtype`` is the VAE weights' dtype (default: diffusers' float32; the SDXL VAE overflows in
    float16). Latents and decoded images are float32 either way.
    """
    builder = _BUILDERS.get(cfg.kind)
    if builder is None:
        raise ValueError(f"unknown codec kind {cfg.kind!r}; choose one of: {', '.join(_BUILDERS)}")
    return builder(cfg, dtype)

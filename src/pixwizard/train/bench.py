"""Training throughput: samples per second of full optimiser steps at one resolution.

A step here is what the trainer does per batch minus shard reading: codec, condition dropout,
instruction encoding (through the training cache), forward, backward, clipping, AdamW and EMA.
Inputs are random images; instructions are 8 repeating phrasings (a warm cache, as in training
with templated instructions). Separately timed: encoding a batch of never-seen instructions (cache
misses, each encoded alone, as training does) and the same batch from the cache.

MFU (model FLOPs utilisation): the FLOPs of one step (forward + backward, torch's FLOP counter on
the eager model) per second of a timed step, divided by the rate of a large matrix product in the
same precision on the same device and threads (``gemm_tflops``, measured here: what this machine
can actually do, not a datasheet number, so MFU compares across CPU kinds).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from pixwizard.config import PixWizardConfig, preset as model_preset
from pixwizard.model.encoders import build_codec, build_text_encoder
from pixwizard.runtime import resolve_device, use_bf16
from pixwizard.train.data import Batch
from pixwizard.train.ema import EMA
from pixwizard.train.text import InstructionCache
from pixwizard.train.trainer import batch_losses, build_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_tflops(device: torch.device, dtype: torch.dtype, n: int = 2048, seconds: float = 1.0) -> float:
    """TFLOP/s of an ``n`` x ``n`` x ``n`` matrix product in ``dtype`` (best of repeated timings)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    torch.mm(a, b)
    _sync(device)
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end or best == float("inf"):
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e12


def bench_training(preset: str = "tiny", size: int = 64, batch: int = 32, steps: int = 5, device: str | None = None,
                   warmup: int = 2, precision: str = "auto", seed: int = 0,
                   config: PixWizardConfig | None = None, count_flops: bool = True,
                   compile: bool = False) -> dict[str, Any]:
    """Time ``steps`` training steps (after ``warmup``) of model preset ``preset`` (or ``config``)
    on ``batch`` random ``size``-px crops. Returns samples/s, seconds per step and the text-encoding
    costs; with ``count_flops`` also the FLOPs of one step (forward + backward, torch's counter),
    the matrix-product peak and the MFU (module docstring).
    With ``compile`` the model is ``torch.compile``d; the warm-up steps (at least 2) include the
    compile, whose seconds are reported as ``warmup_s``."""
    dev = resolve_device(device)
    cfg = config if config is not None else model_preset(preset)
    multiple = cfg.pixel_multiple
    if size % multiple:
        raise ValueError(f"size {size} is not a multiple of {multiple} for preset {preset!r}")
    if steps < 1 or batch < 1:
        raise ValueError("steps and batch must be >= 1")
    raw = build_model(cfg, seed).to(dev).train()
    model = torch.compile(raw) if compile else raw
    warmup = max(warmup, 2) if compile else warmup
    params = [p for p in raw.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    ema = EMA(raw, 0.999)
    codec = build_codec(cfg.codec).to(dev)
    text = InstructionCache(build_text_encoder(cfg.text, device=str(dev), cache_size=0), capacity=4096)
    gen = torch.Generator().manual_seed(seed)
    dev_gen = torch.Generator(device=dev).manual_seed(seed)
    images = torch.rand(2, batch, 3, size, size, generator=gen) * 2 - 1
    phrasings = [f"remove the noise from this photo, variant {i}" for i in range(8)]
    data = Batch(images[0], images[1], [phrasings[i % 8] for i in range(batch)], ["denoise"] * batch)

    def step(net: torch.nn.Module = model) -> None:
        opt.zero_grad(set_to_none=True)
        losses = batch_losses(net, codec, text, data, cfg.flow, device=dev, precision=precision,
                              generator=gen, device_generator=dev_gen)
        losses.mean().backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        opt.step()
        ema.update(raw)

    t_warm = time.perf_counter()
    for _ in range(warmup):
        step()
    warmup_s = time.perf_counter() - t_warm
    flops = None
    if count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step(raw)  # eager: the counter sees every operator
        flops = int(counter.get_total_flops())
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    seconds = (time.perf_counter() - t0) / steps

    fresh = [f"new instruction number {i} for the benchmark" for i in range(batch)]
    t0 = time.perf_counter()
    text.encode(fresh)
    miss = time.perf_counter() - t0
    t0 = time.perf_counter()
    text.encode(fresh)
    hit = time.perf_counter() - t0
    bf16 = use_bf16(dev, precision)
    peak = gemm_tflops(dev, torch.bfloat16 if bf16 else torch.float32) if count_flops else None
    model_tflops = flops / seconds / 1e12 if flops else None
    return {
        "preset": preset, "device": str(dev), "precision": "bf16" if bf16 else "fp32",
        "size": size, "batch": batch, "steps": steps, "params": sum(p.numel() for p in params),
        "seconds_per_step": seconds, "samples_per_s": batch / seconds,
        "text_encode_miss_ms_per_batch": 1000 * miss, "text_encode_hit_ms_per_batch": 1000 * hit,
        "threads": torch.get_num_threads(), "flops_per_step": flops, "compiled": compile,
        "warmup_s": warmup_s, "model_tflops": model_tflops, "gemm_tflops": peak,
        "mfu": model_tflops / peak if model_tflops and peak else None,
    }

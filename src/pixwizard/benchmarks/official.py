"""``pixwizard bench model --preset official``: the released 2B's sampling cost on this machine.

Without a converted checkpoint the DiT is built with random weights (bf16 where the device runs it
natively, else fp32): speed and memory do not depend on the values. Per size R (a square R x R
bucket, latent R/8, (R/16)^2 image tokens) it times one sampling step (the guidance branches as
one batch: 2 with image scale 1, 3 with ``exact``), after a warm-up, and reports seconds per
image = step time x Euler steps (59), the DiT alone. With ``checkpoint`` it times the whole
official pipeline instead (VAE, Gemma, CLIP included; ``offload`` keeps those on the CPU between
uses). Peak memory: the device's peak allocation on CUDA, the process's peak RSS on the CPU.
On a CPU only ``cpu_size`` is measured (a 2B step takes about a minute there).
"""

from __future__ import annotations

import resource
import statistics
import time

import torch

from pixwizard.config import preset
from pixwizard.runtime import resolve_device, use_bf16


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dit(device: torch.device, dtype: torch.dtype, cfg=None):
    from pixwizard.model.dit import PixWizardDiT

    cfg = cfg or preset("official-2b").model
    with torch.device("meta"):
        dit = PixWizardDiT(cfg)
    dit = dit.to(dtype).to_empty(device=device).eval()  # the dtype on meta first: no fp32 copy
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for p in dit.parameters():
            p.normal_(0.0, 0.02, generator=g)
    return dit, cfg


def _step_inputs(cfg, size: int, branches: int, device, dtype, text_len: int = 32):
    g = torch.Generator(device=device).manual_seed(0)
    lat = size // 8
    x = torch.randn(branches, cfg.in_channels, lat, lat, generator=g, device=device, dtype=dtype)
    return dict(x=x, t=torch.full((branches,), 0.5, device=device), cond=torch.randn_like(x),
                text_tokens=torch.randn(branches, text_len, cfg.text_dim, generator=g, device=device, dtype=dtype),
                text_mask=torch.ones(branches, text_len, dtype=torch.bool, device=device),
                text_pooled=torch.randn(branches, cfg.task_dim, generator=g, device=device, dtype=dtype),
                semantic=torch.randn(branches, 576 if cfg.semantic_dim == 1024 else 16, cfg.semantic_dim,
                                     generator=g, device=device, dtype=dtype))


def bench_official(device: str | None = None, sizes: list[int] | None = None, repeats: int = 3,
                   exact: bool = False, checkpoint: str | None = None, offload: bool = False,
                   cpu_size: int = 256, steps: int = 59, model_cfg=None) -> dict:
    """See the module docstring; ``model_cfg`` replaces the 2B's DiT config (tests)."""
    dev = resolve_device(device)
    if sizes is None:
        sizes = [512, 768, 1024] if dev.type == "cuda" else [cpu_size]
    bf16 = use_bf16(dev, "auto")
    dtype = torch.bfloat16 if bf16 else torch.float32
    report: dict = {"device": str(dev), "dtype": str(dtype).replace("torch.", ""), "steps": steps,
                    "branches": 3 if exact else 2, "threads": torch.get_num_threads(), "sizes": {}}
    if dev.type == "cuda":
        report["device_name"] = torch.cuda.get_device_name(dev)
    if checkpoint is not None:
        return _bench_pipeline(report, dev, checkpoint, sizes, repeats, exact, offload, steps)
    t0 = time.perf_counter()
    dit, cfg = _dit(dev, dtype, model_cfg)
    report["build_s"] = round(time.perf_counter() - t0, 1)
    report["what"] = "DiT only (random weights); VAE/Gemma/CLIP not included"
    for size in sizes:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        inp = _step_inputs(cfg, size, report["branches"], dev, dtype)
        times, cpu_times = [], []
        with torch.inference_mode():
            for i in range(repeats + 1):
                _sync(dev)
                t1, c1 = time.perf_counter(), time.process_time()
                dit(inp["x"], inp["t"], cond=inp["cond"], text_tokens=inp["text_tokens"], text_mask=inp["text_mask"],
                    text_pooled=inp["text_pooled"], semantic=inp["semantic"], attn_base_tokens=2304)
                _sync(dev)
                if i:  # the first call is the warm-up
                    times.append(time.perf_counter() - t1)
                    cpu_times.append(time.process_time() - c1)
        step = statistics.median(times)
        report["sizes"][str(size)] = {"step_s": round(step, 4), "s_per_image": round(step * steps, 2),
                                      "step_cpu_s": round(statistics.median(cpu_times), 2),  # all threads
                                      "peak_mb": round(_peak_mb(dev)), "image_tokens": (size // 16) ** 2}
    return report


def _bench_pipeline(report, dev, checkpoint, sizes, repeats, exact, offload, steps) -> dict:
    import numpy as np

    from pixwizard.official.pipeline import OfficialPipeline, OfficialSettings

    t0 = time.perf_counter()
    pipe = OfficialPipeline.from_pretrained(checkpoint, device=str(dev), offload=offload,
                                            parts_dtype=torch.bfloat16 if dev.type == "cuda" else None)
    report["build_s"] = round(time.perf_counter() - t0, 1)
    report["what"] = f"whole official pipeline (VAE, Gemma, CLIP included), offload={offload}"
    img = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    for size in sizes:
        settings = OfficialSettings(resolution=size, points=steps + 1, exact_compat=exact)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        times = []
        for i in range(repeats + 1):
            _sync(dev)
            t1 = time.perf_counter()
            pipe(img, "remove the noise", seed=i, settings=settings)
            _sync(dev)
            if i:
                times.append(time.perf_counter() - t1)
        report["sizes"][str(size)] = {"s_per_image": round(statistics.median(times), 2),
                                      "peak_mb": round(_peak_mb(dev))}
    return report

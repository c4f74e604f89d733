"""``pixwizard bench model``: forward latency and memory of ``tiny``, end-to-end ``run`` latency,
the dynamic sampler on vs off, and our DiT against diffusers' LuminaNextDiT2DModel at matched
width, depth, heads and token count (our semantic path off), in one process with the same threads.
"""

from __future__ import annotations

import dataclasses
import gc
import multiprocessing as mp
import resource
import statistics
import time
import warnings

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pixwizard.config import ModelConfig, PixWizardConfig, preset
from pixwizard.model.dit import PixWizardDiT
from pixwizard.runtime import autocast, resolve_device, use_bf16


def _timeit(fn, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _inputs(cfg: ModelConfig, size: int, text_len: int = 16, batch: int = 1, semantic_tokens: int = 64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cfg.in_channels, size, size, generator=g)
    return dict(
        x=x, t=torch.rand(batch, generator=g), cond=torch.randn_like(x),
        text_tokens=torch.randn(batch, text_len, cfg.text_dim, generator=g),
        text_mask=torch.ones(batch, text_len, dtype=torch.bool),
        text_pooled=torch.randn(batch, cfg.task_dim, generator=g),
        semantic=torch.randn(batch, semantic_tokens, cfg.semantic_dim, generator=g) if cfg.use_semantic else None,
    )


def _forward_fn(model, inputs, device, precision):
    def run():
        with torch.inference_mode(), autocast(device, precision):
            model(inputs["x"], inputs["t"], cond=inputs["cond"], text_tokens=inputs["text_tokens"],
                  text_mask=inputs["text_mask"], text_pooled=inputs["text_pooled"], semantic=inputs["semantic"])
    return run


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _memory_probe(cfg_dict: dict, size: int, threads: int, q) -> None:
    """Child process: peak resident memory added by one forward pass (CPU), in MiB. The peak
    (VmHWM) is reset to the current RSS first through /proc/self/clear_refs (Linux)."""
    torch.set_num_threads(threads)
    cfg = PixWizardConfig.from_dict(cfg_dict).model
    model = PixWizardDiT(cfg).eval()
    inputs = _inputs(cfg, size)
    fn = _forward_fn(model, inputs, torch.device("cpu"), "auto")
    gc.collect()  # measure the first call: later calls reuse memory the allocator kept
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kib("VmRSS")
        fn()
        q.put((_status_kib("VmHWM") - before) / 1024.0)
    except OSError:  # not Linux: the lifetime peak is all that is known
        q.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)


def peak_memory_mb(cfg: PixWizardConfig, size: int, device: torch.device, threads: int) -> float:
    if device.type == "cuda":
        model = PixWizardDiT(cfg.model).to(device).eval()
        inputs = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in _inputs(cfg.model, size).items()}
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        _forward_fn(model, inputs, device, "auto")()
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_memory_probe, args=(cfg.to_dict(), size, threads, q))
    p.start()
    p.join()
    return round(q.get(timeout=5), 1) if p.exitcode == 0 else float("nan")


def forward_latency(cfg: PixWizardConfig, sizes, device, repeats: int, threads: int) -> dict:
    torch.manual_seed(0)
    model = PixWizardDiT(cfg.model).to(device).eval()
    out = {}
    for s in sizes:
        inputs = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in _inputs(cfg.model, s).items()}
        fn = _forward_fn(model, inputs, device, "auto")
        out[f"{s}px"] = {
            "tokens": (s // cfg.model.patch_size) ** 2,
            "forward_ms": round(1000 * _timeit(fn, repeats), 2),
            "gflops": round(_flops(fn) / 1e9, 3),
            "peak_memory_mb": peak_memory_mb(cfg, s, device, threads),
        }
    return out


def run_latency(size: int, device: str | None, repeats: int) -> dict:
    """Seconds for a full ``pixwizard run`` at size x size with default settings (pipeline call:
    instruction encoding with a cold cache, semantic encoding, all sampling steps, decoding)."""
    from pixwizard.pipeline import PixWizardPipeline

    pipe = PixWizardPipeline.from_pretrained(device=device)
    img = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)
    counter = iter(range(10**6))

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe(img, f"remove the noise from this photo, please ({next(counter)})", seed=0)

    sec = _timeit(run, repeats, warmup=1)
    return {"size": size, "seconds": round(sec, 3), "steps": pipe.config.flow.steps,
            "text_guidance": pipe.config.flow.text_guidance, "image_guidance": pipe.config.flow.image_guidance,
            "untrained_weights": pipe.untrained, "target_seconds": 1.0, "meets_target": sec <= 1.0}


def semantic_attention_flops(cfg: ModelConfig, image_tokens: int, semantic_tokens: int) -> dict:
    """Analytic FLOPs of the semantic path per forward (all blocks): K/V projection of the attended
    tokens, the attention itself, and (sampler on) the scorer over all tokens."""
    hd = cfg.dim // cfg.heads
    kv = cfg.kv_heads * hd
    k = min(cfg.sampler_keep, semantic_tokens) if cfg.sampler_enabled else semantic_tokens
    proj = 2 * semantic_tokens * cfg.semantic_dim * cfg.dim  # input_image_proj over all tokens
    kv_proj = 2 * k * cfg.dim * 2 * kv
    attn = 2 * 2 * image_tokens * k * hd * cfg.heads  # QK^T and AV
    scorer = 0
    if cfg.sampler_enabled:
        d = cfg.dim
        scorer = 2 * semantic_tokens * (d * d + d * d // 2 + (d // 2) * (d // 4) + d // 4) + 2 * cfg.adaln_dim * d
    per_block = proj + kv_proj + attn + scorer
    return {"kept_tokens": k, "semantic_flops_per_forward": per_block * cfg.depth,
            "attention_flops_per_forward": (kv_proj + attn) * cfg.depth}


def sampler_on_off(cfg: PixWizardConfig, size: int, device, repeats: int, semantic_tokens: int | None = None) -> dict:
    n_sem = semantic_tokens or 64
    res = {}
    for name, enabled in (("on", True), ("off", False)):
        mcfg = dataclasses.replace(cfg.model, sampler_enabled=enabled)
        torch.manual_seed(0)
        model = PixWizardDiT(mcfg).to(device).eval()
        inputs = {k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                  for k, v in _inputs(mcfg, size, semantic_tokens=n_sem).items()}
        fn = _forward_fn(model, inputs, device, "auto")
        tokens = (size // mcfg.patch_size) ** 2
        res[name] = {"step_ms": round(1000 * _timeit(fn, repeats), 2), "step_gflops": round(_flops(fn) / 1e9, 4),
                     **semantic_attention_flops(mcfg, tokens, n_sem)}
    on, off = res["on"], res["off"]
    res["semantic_tokens"] = n_sem
    res["step_time_saving"] = round(1 - on["step_ms"] / off["step_ms"], 4)
    res["step_flops_saving"] = round(1 - on["step_gflops"] / off["step_gflops"], 4)
    res["semantic_attention_flops_saving"] = round(
        1 - on["attention_flops_per_forward"] / off["attention_flops_per_forward"], 4)
    return res


def versus_diffusers(cfg: PixWizardConfig, size: int, device, repeats: int, text_len: int = 16) -> dict:
    """Our DiT (semantic path off) against diffusers' LuminaNextDiT2DModel at matched width, depth,
    heads, KV heads, FFN, text width and token count. diffusers uses patch 2: its latent has the
    channels that give the same patch-embedding width as ours (p*p*C_in_total)."""
    from diffusers import LuminaNextDiT2DModel
    from diffusers.models.embeddings import get_2d_rotary_pos_embed_lumina

    m = dataclasses.replace(cfg.model, use_semantic=False)
    torch.manual_seed(0)
    ours = PixWizardDiT(m).to(device).eval()
    grid = size // m.patch_size
    in_feats = m.patch_size ** 2 * m.in_channels * (2 if m.use_structural else 1)
    their_channels = in_feats // 4
    theirs = LuminaNextDiT2DModel(
        sample_size=grid * 2, patch_size=2, in_channels=their_channels, hidden_size=m.dim, num_layers=m.depth,
        num_attention_heads=m.heads, num_kv_heads=m.kv_heads, multiple_of=m.multiple_of,
        ffn_dim_multiplier=None, norm_eps=m.norm_eps, learn_sigma=False, qk_norm=True,
        cross_attention_dim=m.text_dim).to(device).eval()
    ours_inputs = {k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                   for k, v in _inputs(m, size, text_len=text_len).items()}
    ours_fn = _forward_fn(ours, ours_inputs, device, "auto")
    g = torch.Generator().manual_seed(0)
    hs = torch.randn(1, their_channels, grid * 2, grid * 2, generator=g).to(device)
    enc = ours_inputs["text_tokens"]
    mask = ours_inputs["text_mask"].long()
    rope = get_2d_rotary_pos_embed_lumina(m.dim // m.heads, 384, 384).to(device)
    t = ours_inputs["t"]

    def theirs_fn():
        with torch.inference_mode(), autocast(device, "auto"):
            theirs(hs, t, enc, mask, rope, cross_attention_kwargs={}, return_dict=False)

    # interleave repeats so that both see the same machine load
    a, b = [], []
    for _ in range(repeats):
        a.append(_timeit(ours_fn, 1, warmup=1))
        b.append(_timeit(theirs_fn, 1, warmup=1))
    ta, tb = statistics.median(a), statistics.median(b)
    return {
        "size": size, "tokens": grid * grid, "width": m.dim, "depth": m.depth, "heads": m.heads,
        "kv_heads": m.kv_heads,
        "ours_params_m": round(sum(p.numel() for p in ours.parameters()) / 1e6, 3),
        "diffusers_params_m": round(sum(p.numel() for p in theirs.parameters()) / 1e6, 3),
        "ours_ms": round(1000 * ta, 2), "diffusers_ms": round(1000 * tb, 2), "ratio_ours_over_diffusers": round(ta / tb, 3),
        "target_ratio": 0.8,
    }


def bench_model(preset_name: str = "tiny", device: str | None = None, repeats: int = 5,
                sizes=(128, 256, 512), quick: bool = False) -> dict:
    dev = resolve_device(device)
    cfg = preset(preset_name)
    threads = torch.get_num_threads()
    if quick:
        sizes, repeats = (64, 128), 2
    result = {
        "preset": preset_name, "device": str(dev), "threads": threads, "bf16": use_bf16(dev),
        "torch": torch.__version__,
        "params_m": round(sum(p.numel() for p in PixWizardDiT(cfg.model).parameters()) / 1e6, 3),
        "forward": forward_latency(cfg, sizes, dev, repeats, threads),
        "sampler": sampler_on_off(cfg, sizes[1] if quick else 256, dev, repeats),
        "vs_diffusers_lumina_next": versus_diffusers(cfg, sizes[1] if quick else 256, dev, repeats),
    }
    if not quick:
        result["run_256"] = run_latency(256, device, repeats)
    return result

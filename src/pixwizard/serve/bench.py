"""``pixwizard bench serve``: a bounded load test of the REST API over loopback only.

``clients`` concurrent clients send ``requests`` ``POST /v1/run`` requests in all (one random
``size`` x ``size`` PNG, seeds 0..N-1) while a separate client polls ``/healthz``. Every answer
is checked: 200, a unique id and an image of the input's size; anything else counts as failed,
a request without an answer (connection error or client timeout) as lost. Figures: latency
p50/p95/max, throughput, and the ``/healthz`` latency while the server was busy.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections import Counter
from contextlib import nullcontext
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from pixwizard.serve.config import LOOPBACK


def _png(size: int, seed: int = 0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _quantiles(values: list[float], scale: float = 1.0) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    a = np.asarray(values) * scale
    return {"p50": round(float(np.percentile(a, 50)), 4), "p95": round(float(np.percentile(a, 95)), 4),
            "max": round(float(a.max()), 4)}


def check_loopback(url: str) -> str:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise ValueError(f"bench serve only sends loopback traffic; {url!r} is not on 127.0.0.1/localhost/::1")
    return url.rstrip("/")


async def _load(url: str, *, clients: int, requests: int, size: int, instruction: str, task: str | None,
                steps: int | None, timeout: float, health_interval: float) -> dict:
    import httpx

    from pixwizard.serve.api import options_json

    png = _png(size)
    ids: set[str] = set()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    failed = lost = 0
    next_index = iter(range(requests))
    health_ms: list[float] = []
    health_failed = 0
    done = asyncio.Event()

    async def client(http) -> None:
        nonlocal failed, lost
        for i in next_index:  # shared: each request is sent once
            options = options_json(instruction=instruction, task=task, steps=steps, seed=i)
            t0 = time.perf_counter()
            try:
                r = await http.post("/v1/run", files={"image": ("bench.png", png, "image/png")},
                                    data={"options": options})
            except httpx.HTTPError as e:
                lost += 1
                statuses[type(e).__name__] += 1
                continue
            dt = time.perf_counter() - t0
            statuses[str(r.status_code)] += 1
            if r.status_code != 200:
                failed += 1
                continue
            body = r.json()
            image = Image.open(io.BytesIO(base64.b64decode(body["image"]["data_base64"])))
            if body["id"] in ids or image.size != (size, size):
                failed += 1
                continue
            ids.add(body["id"])
            latencies.append(dt)

    async def prober(http) -> None:
        nonlocal health_failed
        while not done.is_set():
            t0 = time.perf_counter()
            try:
                r = await http.get("/healthz")
                ok = r.status_code == 200
                busy = ok and (r.json()["queue"]["busy"] or r.json()["queue"]["waiting"] > 0)
            except httpx.HTTPError:
                ok, busy = False, True
            if not ok:
                health_failed += 1
            elif busy:
                health_ms.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(health_interval)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http, \
            httpx.AsyncClient(base_url=url, timeout=timeout) as health_http:
        probe = asyncio.create_task(prober(health_http))
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - t0
        done.set()
        await probe
    ok = len(latencies)
    return {
        "url": url, "clients": clients, "requests": requests, "image": f"{size}x{size}", "instruction": instruction,
        "task": task, "steps": steps, "ok": ok, "failed": failed, "lost": lost, "statuses": dict(statuses),
        "wall_s": round(wall, 3), "throughput_rps": round(ok / wall, 3) if wall > 0 else None,
        "latency_s": _quantiles(latencies),
        "healthz_while_busy_ms": {"n": len(health_ms), **_quantiles(health_ms), "failed": health_failed},
    }


def bench_serve(url: str | None = None, *, checkpoint: str | None = None, device: str | None = None,
                clients: int = 8, requests: int = 200, size: int = 64, instruction: str = "remove the noise",
                task: str | None = None, steps: int | None = None, timeout: float = 600.0,
                health_interval: float = 0.05, pipe=None, route_fn=None) -> dict:
    """Run the load test against ``url`` (a running loopback server) or, by default, against a
    server started here on 127.0.0.1 with ``checkpoint`` (or the given ``pipe``)."""
    if clients < 1 or requests < 1 or size < 8:
        raise ValueError("bench serve needs clients >= 1, requests >= 1 and size >= 8")
    if url is not None:
        server = nullcontext(check_loopback(url))
        engine = None
    else:
        from pixwizard.pipeline import PixWizardPipeline
        from pixwizard.serve.api import create_app
        from pixwizard.serve.config import ServeConfig
        from pixwizard.serve.engine import Engine
        from pixwizard.serve.server import serve_in_thread

        pipe = pipe or PixWizardPipeline.from_pretrained(checkpoint, device=device)
        config = ServeConfig(queue_size=max(16, clients), timeout_s=timeout)
        engine = Engine(pipe, route_fn=route_fn, queue_size=config.queue_size).start()
        engine.route(instruction)  # the router is ready before the clock starts
        server = serve_in_thread(create_app(engine, config, ui=False), "127.0.0.1", 0)
    try:
        with server as base:
            report = asyncio.run(_load(base, clients=clients, requests=requests, size=size, instruction=instruction,
                                       task=task, steps=steps, timeout=timeout, health_interval=health_interval))
    finally:
        if engine is not None:
            engine.close()
    if engine is not None:
        report["server"] = {"in_process": True, "device": str(pipe.device), "completed": engine.completed,
                            "failed": engine.failed}
    return report

"""Fit the instruction router over the packaged MiniLM and write the file shipped in the package.

``python -m pixwizard.tasks.ship_router`` refits (deterministic: L-BFGS from zero weights) and writes
``pixwizard/tasks/router.safetensors``; ``--check`` only says whether the shipped file matches the
current instruction bank, router phrasings, settings and MiniLM (``tests/test_routing_everyday.py``
checks the same). Run it after changing the bank or ``tasks/router_phrasings.json``; without a
matching shipped file routing still works, it fits once and caches the fit per user.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time

from safetensors import safe_open

from pixwizard.tasks.registry import REGISTRY
from pixwizard.tasks.routing import (SHIPPED_ROUTER, TaskRouter, default_embed_fn, minilm_identity, portable_key,
                                     router_bank)


def shipped_key() -> str | None:
    """The ``key`` in the shipped file's metadata (None when there is no readable file)."""
    try:
        with safe_open(str(SHIPPED_ROUTER), framework="pt") as f:
            return (f.metadata() or {}).get("key")
    except Exception:
        return None


def current_key() -> str:
    """The key a fit of the current bank, settings and MiniLM gets (computed without fitting)."""
    defaults = {k: v.default for k, v in inspect.signature(TaskRouter.__init__).parameters.items()}
    tasks = tuple(REGISTRY)
    texts, labels = router_bank(tasks, "train")
    settings = (defaults["embed_scale"], defaults["lexical_scale"], defaults["weight_decay"], defaults["max_iter"])
    return portable_key(texts, labels, tasks, minilm_identity(), settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixwizard.tasks.ship_router", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the shipped file is current")
    args = parser.parse_args(argv)
    if args.check:
        ok = current_key() == shipped_key()
        print("the shipped router is current" if ok else "the shipped router is stale: refit it")
        return 0 if ok else 1
    t0 = time.perf_counter()
    router = TaskRouter(default_embed_fn(), embed_id=minilm_identity())
    router.save_shipped(SHIPPED_ROUTER)
    print(f"wrote {SHIPPED_ROUTER} ({SHIPPED_ROUTER.stat().st_size // 1024} KiB, {len(router.bank_texts)} phrasings, "
          f"key {router.shipped_key}, {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

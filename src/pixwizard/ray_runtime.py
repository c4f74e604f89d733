"""Connecting to Ray (an optional extra: ``pip install 'pixwizard[ray]'``) for the Ray engines.

``pixwizard data build --engine ray`` and ``pixwizard eval --engine ray`` run their shards/chunks
as Ray tasks. Ray is imported only here and only when an engine asks for it, so the default
install, ``pixwizard run`` and ``make demo`` never need it.

``ray_runtime(address)``: joins the cluster at ``address`` (``HOST:6379``, or ``ray://HOST:10001``
through Ray Client), else the one named by ``RAY_ADDRESS``, else starts a private runtime on this
machine (stopped afterwards); an already initialised Ray (tests, notebooks) is used as it is and
left running.
``check_paths_on_every_node``: shards and item folders are written by workers straight into the
output folder, so every node must see the same paths (shared storage); this checks that up front
with one tiny task pinned to each alive node, instead of failing shard by shard.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

INSTALL_HINT = "the Ray engine needs Ray: pip install 'pixwizard[ray]' (or pip install ray)"


def import_ray() -> Any:
    """The ``ray`` module, or ValueError with the install hint (a one-line CLI error)."""
    try:
        import ray
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_runtime(address: str | None = None) -> Iterator[Any]:
    """Yield the ``ray`` module connected to a runtime (see the module doc); shuts down only a
    runtime it started or joined itself."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except ConnectionError as e:
        raise ValueError(f"cannot reach a Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: {e}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _missing_paths(paths: Sequence[str]) -> tuple[str, list[str]]:
    import socket

    return socket.gethostname(), [p for p in paths if not Path(p).exists()]


def check_paths_on_every_node(ray: Any, paths: Sequence[str | Path]) -> None:
    """ValueError naming the first node that cannot see one of ``paths`` (absolute paths are
    checked as they are; relative ones against the driver's working directory, as workers may
    start elsewhere)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    wanted = [str(Path(p).expanduser().resolve()) for p in paths if p is not None]
    if not wanted:
        return
    probe = ray.remote(_missing_paths)
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
            .remote(wanted) for node in nodes]
    for host, missing in ray.get(refs):
        if missing:
            raise ValueError(f"Ray node {host} cannot see {missing[0]}: the output and source folders must be on "
                             "storage shared by every node, at the same path (see docs/ray.md)")

"""Task mixtures: how many items of each task a build makes, and in which order.

- Stage 1 (``balanced``): every task exactly ``per_task`` items (the paper balances all tasks
  to the same number of samples before mixing).
- Stage 2 (``weighted``): ``total`` items; text-to-image (``t2i``) gets ``total * t2i_share`` rounded
  half up (0.5 = mixed 1:1 with the rest) and the remainder is split among the other tasks in proportion
  to their weights with the largest-remainder method, so the counts sum exactly to ``total``.
- ``counts``: the weights are exact counts.

``plan_items`` turns counts into a per-item task list, shuffled deterministically by the seed so
that every shard holds a mix of tasks. Item ``i`` of the plan is always the same task for a
given recipe, whatever the number of workers.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from pixwizard.data.recipe import T2I_TASK, MixtureSpec

# Entropy tag for the plan shuffle: keeps it independent of the per-item seed streams,
# which are SeedSequence(seed, spawn_key=(i,)).
_PLAN_TAG = 0x504C414E


def largest_remainder(weights: Mapping[str, float], total: int) -> dict[str, int]:
    """Split ``total`` in proportion to ``weights``, exactly (Hamilton's method, ties by name)."""
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    wsum = float(sum(weights.values()))
    if total and wsum <= 0:
        raise ValueError("cannot split items among tasks whose weights are all zero")
    if not total:
        return {k: 0 for k in weights}
    quotas = {k: total * w / wsum for k, w in weights.items()}
    counts = {k: math.floor(q) for k, q in quotas.items()}
    left = total - sum(counts.values())
    order = sorted(weights, key=lambda k: (-(quotas[k] - counts[k]), k))
    for k in order[:left]:
        counts[k] += 1
    return counts


def task_counts(tasks: Mapping[str, float], mixture: MixtureSpec) -> dict[str, int]:
    """Items per task for one mixture (insertion order of ``tasks`` kept)."""
    if mixture.stage == "balanced":
        return {t: int(mixture.per_task) for t in tasks}
    if mixture.stage == "counts":
        return {t: int(v) for t, v in tasks.items()}
    # weighted (stage 2)
    total = int(mixture.total)
    rest = {t: w for t, w in tasks.items() if t != T2I_TASK}
    if T2I_TASK in tasks:
        if not rest:
            return {T2I_TASK: total}
        n_t2i = math.floor(total * mixture.t2i_share + 0.5)  # half up: odd totals give t2i the extra item
    else:
        if mixture.t2i_share > 0:
            raise ValueError(f"weighted mixture has t2i_share={mixture.t2i_share} but no {T2I_TASK!r} task")
        n_t2i = 0
    counts = largest_remainder(rest, total - n_t2i)
    if T2I_TASK in tasks:
        counts[T2I_TASK] = n_t2i
    return {t: counts[t] for t in tasks}


def plan_items(counts: Mapping[str, int], seed: int) -> list[str]:
    """The task id of every item, in build order: a seeded permutation of the multiset ``counts``."""
    items = [t for t, n in counts.items() for _ in range(n)]
    rng = np.random.default_rng([_PLAN_TAG, seed])
    order = rng.permutation(len(items))
    return [items[i] for i in order]

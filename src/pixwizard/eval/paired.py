"""Is one evaluated model better than another beyond item noise? A paired comparison of two
``pixwizard eval`` runs of the same suite.

Both runs score the same items (same suite, limit, size and photos give the same item keys), so
the difference is taken item by item: for every task, the mean over the items both runs scored of
``new - ref`` on the task's headline metric (the first of its ``metric_order``; items where either
value is not finite, e.g. an infinite PSNR, are left out and counted). Tasks are grouped by
(domain, metric) like the ledger's summaries (``pixwizard.train.curve``): the group's difference is
the mean over its tasks of the per-task mean differences, and its 95 % interval comes from a
stratified paired bootstrap (items resampled with replacement within each task, ``n_boot``
times, seeded). ``better`` counts the tasks whose mean moved in the metric's better direction.

This is the campaign's shipping test: new weights replace the shipped file only when the
restoration interval against the shipped file lies above zero.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TaskDiff:
    task: str
    domain: str
    metric: str
    higher_is_better: bool
    n: int  # items scored by both runs with finite values
    n_dropped: int  # items of both runs left out (a non-finite value)
    new: float  # mean over the n items
    ref: float
    new_values: tuple[float, ...]
    ref_values: tuple[float, ...]

    @property
    def diff(self) -> float:
        return self.new - self.ref

    @property
    def better(self) -> bool:
        return self.diff > 0 if self.higher_is_better else self.diff < 0


@dataclass(frozen=True)
class GroupDiff:
    domain: str
    metric: str
    higher_is_better: bool
    tasks: tuple[str, ...]
    new: float  # mean over the tasks of the task means
    ref: float
    ci_low: float  # 95 % paired bootstrap interval of new - ref
    ci_high: float
    better: int  # tasks that moved in the better direction

    @property
    def diff(self) -> float:
        return self.new - self.ref

    @property
    def beyond_noise(self) -> bool:
        """The whole interval lies on the better side of zero."""
        return self.ci_low > 0 if self.higher_is_better else self.ci_high < 0


def _read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    metrics, items = run_dir / "metrics.json", run_dir / "item_scores.json"
    for path in (metrics, items):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: pass scored `pixwizard eval` run folders (OUT/<suite>/<model>)")
    return json.loads(metrics.read_text()), json.loads(items.read_text())


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(float(x))


def paired_tasks(new_dir: str | Path, ref_dir: str | Path) -> list[TaskDiff]:
    """Per task, the headline metric of both runs on the items both scored (suite order)."""
    new_m, new_items = _read_run(Path(new_dir))
    ref_m, ref_items = _read_run(Path(ref_dir))
    if new_m.get("suite") != ref_m.get("suite"):
        raise ValueError(f"runs of different suites: {new_m.get('suite')!r} and {ref_m.get('suite')!r}")
    out = []
    for task, entry in new_m.get("tasks", {}).items():
        ref_entry = ref_m.get("tasks", {}).get(task)
        if ref_entry is None or not entry.get("metric_order"):
            continue
        metric = entry["metric_order"][0]
        keys = sorted(k for k in new_items if k.startswith(task + "/") and k in ref_items
                      and metric in new_items[k] and metric in ref_items[k])
        pairs = [(new_items[k][metric], ref_items[k][metric]) for k in keys]
        kept = [(float(a), float(b)) for a, b in pairs if _finite(a) and _finite(b)]
        if not kept:
            continue
        a, b = zip(*kept)
        out.append(TaskDiff(task=task, domain=entry.get("domain", "other"), metric=metric,
                            higher_is_better=bool(entry.get("higher_is_better", {}).get(metric, True)),
                            n=len(kept), n_dropped=len(pairs) - len(kept), new=float(np.mean(a)),
                            ref=float(np.mean(b)), new_values=a, ref_values=b))
    if not out:
        raise ValueError(f"{new_dir} and {ref_dir} share no scored items: were they run with the same "
                         "suite, --limit, --size and --photos?")
    return out


def group_diffs(tasks: list[TaskDiff], *, n_boot: int = 2000, seed: int = 0) -> list[GroupDiff]:
    """One row per (domain, metric): the mean of the task means and its bootstrap interval."""
    if n_boot < 100:
        raise ValueError(f"n_boot must be >= 100 for a 95 % interval, got {n_boot}")
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list[TaskDiff]] = {}
    for t in tasks:
        groups.setdefault((t.domain, t.metric), []).append(t)
    out = []
    for (domain, metric), members in groups.items():
        boot = np.zeros(n_boot)
        for t in members:
            d = np.asarray(t.new_values) - np.asarray(t.ref_values)
            idx = rng.integers(0, t.n, size=(n_boot, t.n))
            boot += d[idx].mean(axis=1)
        boot /= len(members)
        low, high = np.percentile(boot, [2.5, 97.5])
        out.append(GroupDiff(domain=domain, metric=metric, higher_is_better=members[0].higher_is_better,
                             tasks=tuple(t.task for t in members), new=float(np.mean([t.new for t in members])),
                             ref=float(np.mean([t.ref for t in members])), ci_low=float(low), ci_high=float(high),
                             better=sum(t.better for t in members)))
    return out


def compare_runs(new_dir: str | Path, ref_dir: str | Path, *, n_boot: int = 2000,
                 seed: int = 0) -> tuple[list[TaskDiff], list[GroupDiff]]:
    tasks = paired_tasks(new_dir, ref_dir)
    return tasks, group_diffs(tasks, n_boot=n_boot, seed=seed)


def format_comparison(tasks: list[TaskDiff], groups: list[GroupDiff], new_label: str, ref_label: str) -> str:
    """A markdown table per task, then one line per (domain, metric) group."""
    lines = [f"| task | metric | n | {new_label} | {ref_label} | diff |", "|---|---|---|---|---|---|"]
    for t in tasks:
        dropped = f" ({t.n_dropped} non-finite left out)" if t.n_dropped else ""
        lines.append(f"| {t.task} | {t.metric} | {t.n}{dropped} | {t.new:.3f} | {t.ref:.3f} | {t.diff:+.3f} |")
    lines.append("")
    for g in groups:
        verdict = "better beyond noise" if g.beyond_noise else "not better beyond noise"
        lines.append(f"{g.domain}/{g.metric}: {g.new:.3f} vs {g.ref:.3f}, diff {g.diff:+.3f} "
                     f"(95 % CI {g.ci_low:+.3f} .. {g.ci_high:+.3f}), better on {g.better} of {len(g.tasks)} tasks: "
                     f"{verdict}")
    return "\n".join(lines) + "\n"

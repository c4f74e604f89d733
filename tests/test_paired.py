"""Paired comparison of two eval runs (pixwizard.eval.paired, `pixwizard curve compare`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pixwizard.cli import main
from pixwizard.eval.paired import compare_runs, paired_tasks


def _run(folder: Path, suite: str, scores: dict[str, dict[str, list[float]]], domains: dict[str, str]) -> Path:
    """A scored run folder: scores[task][metric] = per-item values (items task/0000, task/0001, ...)."""
    folder.mkdir(parents=True)
    tasks, items = {}, {}
    for task, by_metric in scores.items():
        order = list(by_metric)
        tasks[task] = {"domain": domains[task], "metric_order": order, "metrics": {},
                       "higher_is_better": {m: m != "absrel" for m in order}}
        for metric, values in by_metric.items():
            for k, v in enumerate(values):
                items.setdefault(f"{task}/{k:04d}", {})[metric] = v
    (folder / "metrics.json").write_text(json.dumps({"suite": suite, "tasks": tasks}))
    (folder / "item_scores.json").write_text(json.dumps(items))
    return folder


DOMAINS = {"denoise": "restoration", "dehaze": "restoration", "canny": "dense"}


def test_a_consistent_gain_is_beyond_noise_and_a_mixed_one_is_not(tmp_path):
    rng = np.random.default_rng(0)
    base = {t: rng.normal(25, 3, size=10) for t in ("denoise", "dehaze")}
    ref = _run(tmp_path / "ref", "s", {t: {"psnr": list(v)} for t, v in base.items()} |
               {"canny": {"edge_f1": [0.5] * 10}}, DOMAINS)
    up = _run(tmp_path / "up", "s", {t: {"psnr": list(v + 1.0 + rng.normal(0, 0.2, 10))} for t, v in base.items()} |
              {"canny": {"edge_f1": [0.6] * 10}}, DOMAINS)
    tasks, groups = compare_runs(up, ref, n_boot=500)
    by = {(g.domain, g.metric): g for g in groups}
    rest = by[("restoration", "psnr")]
    assert rest.tasks == ("denoise", "dehaze") and rest.better == 2 and rest.beyond_noise
    assert rest.ci_low < rest.diff < rest.ci_high and rest.diff == pytest.approx(1.0, abs=0.2)
    assert by[("dense", "edge_f1")].diff == pytest.approx(0.1)
    # a change that helps one task and hurts the other as much: the interval straddles zero
    mixed = _run(tmp_path / "mixed", "s", {"denoise": {"psnr": list(base["denoise"] + 1.0)},
                                           "dehaze": {"psnr": list(base["dehaze"] - 1.0 + np.tile([2.0, -2.0], 5))}},
                 DOMAINS)
    (g,) = [g for g in compare_runs(mixed, ref, n_boot=500)[1] if g.domain == "restoration"]
    assert not g.beyond_noise and g.ci_low < 0 < g.ci_high and g.better == 1
    # same seed, same interval
    assert compare_runs(up, ref, n_boot=500, seed=3)[1] == compare_runs(up, ref, n_boot=500, seed=3)[1]


def test_only_shared_finite_items_are_paired(tmp_path):
    ref = _run(tmp_path / "ref", "s", {"denoise": {"psnr": [20.0, 21.0, math.inf, 23.0]}}, DOMAINS)
    new = _run(tmp_path / "new", "s", {"denoise": {"psnr": [21.0, 22.0, 30.0]}}, DOMAINS)
    (t,) = paired_tasks(new, ref)
    assert (t.n, t.n_dropped, t.new, t.ref, t.diff) == (2, 1, 21.5, 20.5, 1.0)


def test_lower_is_better_metrics_count_a_drop_as_better(tmp_path):
    ref = _run(tmp_path / "ref", "s", {"depth": {"absrel": [0.5] * 5}}, {"depth": "dense"})
    new = _run(tmp_path / "new", "s", {"depth": {"absrel": [0.4, 0.41, 0.39, 0.4, 0.4]}}, {"depth": "dense"})
    (g,) = compare_runs(new, ref, n_boot=200)[1]
    assert g.better == 1 and g.diff < 0 and g.beyond_noise


def test_mismatched_runs_are_refused_with_the_reason(tmp_path):
    a = _run(tmp_path / "a", "photo-restoration", {"denoise": {"psnr": [1.0]}}, DOMAINS)
    b = _run(tmp_path / "b", "world-heldout", {"denoise": {"psnr": [1.0]}}, DOMAINS)
    with pytest.raises(ValueError, match="different suites"):
        paired_tasks(a, b)
    c = _run(tmp_path / "c", "photo-restoration", {"dehaze": {"psnr": [1.0]}}, DOMAINS)
    with pytest.raises(ValueError, match="share no scored items"):
        paired_tasks(a, c)
    with pytest.raises(FileNotFoundError, match="metrics.json not found"):
        paired_tasks(a, tmp_path)


def test_cli_prints_the_table_and_the_verdict(tmp_path, capsys):
    ref = _run(tmp_path / "shipped", "s", {"denoise": {"psnr": [20.0, 21.0, 22.0]}}, DOMAINS)
    new = _run(tmp_path / "cand", "s", {"denoise": {"psnr": [21.0, 22.2, 22.9]}}, DOMAINS)
    assert main(["curve", "compare", str(new), str(ref), "--boot", "200"]) == 0
    out = capsys.readouterr().out
    assert "| denoise | psnr | 3 | 22.033 | 21.000 | +1.033 |" in out
    assert "restoration/psnr: 22.033 vs 21.000, diff +1.033" in out and "better beyond noise" in out
    assert main(["curve", "compare", str(new), str(ref), "--boot", "200", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["groups"][0]["beyond_noise"] is True and data["tasks"][0]["n"] == 3

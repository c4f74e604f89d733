"""pixwizard ablate: the variants' configs, a tiny end-to-end run that resumes, and the noise rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from pixwizard.ablation import COLUMNS, VARIANTS, AblationConfig, render_markdown, run_ablation, summarise, train_config
from pixwizard.checkpoint import read_info
from test_train import make_dataset


def test_variants_change_only_what_they_name(tmp_path):
    cfg = AblationConfig(stage1_data="a", stage2_data="b", out=str(tmp_path), budget=100, model="tiny")
    full = train_config(cfg, "full", 0)
    assert [s.data for s in full.stages] == ["a", "b"] and [s.steps for s in full.stages] == [75, 25]
    base = full.model_config()
    for name in ("structure-only", "semantic-only", "no-sampler", "no-condition-skip"):
        tc = train_config(cfg, name, 0)
        assert tc.stages == full.stages and tc.batch_size == full.batch_size and tc.seed == full.seed
        m = tc.model_config().model
        changed = {f for f in vars(m) if getattr(m, f) != getattr(base.model, f)}
        assert changed == set(VARIANTS[name].overrides["model"]) - {f for f, v in VARIANTS[name].overrides["model"].items()
                                                                     if getattr(base.model, f) == v}
    one = train_config(cfg, "no-two-stage", 0)
    assert len(one.stages) == 1 and one.stages[0].data == "b" and one.total_steps == full.total_steps
    assert one.model_config() == base
    with pytest.raises(ValueError, match="unknown ablation variant"):
        AblationConfig(stage1_data="a", stage2_data="b", out="x", variants=("full", "nope"))
    with pytest.raises(ValueError, match="needs the 'full' variant"):
        AblationConfig(stage1_data="a", stage2_data="b", out="x", variants=("no-sampler",))


def test_noise_rule_marks_only_differences_beyond_the_seed_spread():
    def cols(d):
        return {c.key: d for c in COLUMNS}

    results = {"config": {"seeds": [0, 1]}, "runs": {
        "full-s0": {"variant": "full", "seed": 0, "columns": cols(20.0)},
        "full-s1": {"variant": "full", "seed": 1, "columns": cols(21.0)},
        "no-sampler-s0": {"variant": "no-sampler", "seed": 0, "columns": cols(20.8)},
        "semantic-only-s0": {"variant": "semantic-only", "seed": 0, "columns": cols(15.0)}}}
    s = summarise(results)
    assert s["noise"]["derain"] == {"mean": 20.5, "spread": 1.0, "n": 2}
    assert not s["effects"]["no-sampler-s0"]["derain"]["exceeds_noise"]
    e = s["effects"]["semantic-only-s0"]
    assert e["derain"]["exceeds_noise"] and not e["derain"]["better"]  # PSNR: higher is better
    assert e["depth"]["exceeds_noise"] and e["depth"]["better"]  # RMSE: lower is better


def test_tiny_ablation_runs_end_to_end_and_resumes(tmp_path):
    d1 = make_dataset(tmp_path / "d1", n_shards=2, per_shard=6, size=32)
    d2 = make_dataset(tmp_path / "d2", n_shards=2, per_shard=6, size=32)
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "abl-test", "kind": "generated", "tasks": ["derain", "depth", "edit_recolor"],
                                 "items_per_task": 1, "size": 32, "seed": 1, "split": "heldout", "photos": "builtin"}))
    cfg = AblationConfig(stage1_data=str(d1), stage2_data=str(d2), out=str(tmp_path / "abl"), budget=3, batch_size=2,
                         resolution=32, model="debug", seeds=(0, 1), variants=("full", "no-sampler", "no-two-stage"),
                         suite=str(suite), check_mixture=False, cost_size=32)
    res = run_ablation(cfg, progress=False, log=lambda *_: None)
    assert list(res["runs"]) == ["full-s0", "full-s1", "no-sampler-s0", "no-two-stage-s0"] and not res["unfinished"]
    for r in res["runs"].values():
        assert r["train"]["stopped_by"] == "done" and r["train"]["samples"] == 6
        assert r["columns"]["derain"] is not None and r["columns"]["depth"] is not None
        assert r["costs"]["train_step_gflops"] > 0 and r["costs"]["infer_step_ms"] > 0
    # the sampler really is off in that run: its checkpoint says so and holds no sampler weights, and
    # it attends all semantic tokens (more FLOPs per step, counted, not timed)
    runs = tmp_path / "abl" / "runs"
    on, off = (read_info(runs / n / "model.safetensors").config.model for n in ("full-s0", "no-sampler-s0"))
    assert on.sampler_enabled and not off.sampler_enabled
    for cost in ("train_step_gflops", "infer_step_gflops"):
        assert res["runs"]["no-sampler-s0"]["costs"][cost] > res["runs"]["full-s0"]["costs"][cost]
    w_on, w_off = (load_file(runs / n / "model.safetensors") for n in ("full-s0", "no-sampler-s0"))
    assert any(".sampler." in k for k in w_on) and not any(".sampler." in k for k in w_off)
    table = (tmp_path / "abl" / "ablations.md").read_text()
    assert table.count("\n| full |") == 2 and "| no-two-stage | 0 |" in table and "30.24" in table
    model = tmp_path / "abl" / "runs" / "full-s0" / "model.safetensors"
    before = model.stat().st_mtime_ns
    again = run_ablation(cfg, progress=False, log=lambda *_: None)  # resumes: nothing retrained
    assert model.stat().st_mtime_ns == before
    assert again["runs"]["full-s1"]["columns"] == res["runs"]["full-s1"]["columns"]
    assert render_markdown(again) == table

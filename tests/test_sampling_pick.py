"""Choosing per-task sampling from eval runs (pixwizard.eval.sampling_pick, `pixwizard model pick-sampling`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixwizard.cli import main
from pixwizard.eval.sampling_pick import parse_candidate, pick_sampling
from test_paired import _run

DOMAINS = {"denoise": "restoration", "lowlight": "restoration", "depth": "dense", "derain": "restoration"}


def _runs(tmp_path):
    rng = np.random.default_rng(1)
    base = {t: rng.normal(25, 3, size=20) for t in ("denoise", "lowlight", "derain")}
    depth = rng.uniform(0.3, 0.6, size=20)

    def run(name, shift, depth_shift, noisy=0.0):
        return _run(tmp_path / name, "s", {
            "denoise": {"psnr": list(base["denoise"] + shift["denoise"] + rng.normal(0, 0.05, 20))},
            "lowlight": {"psnr": list(base["lowlight"] + shift["lowlight"] + rng.normal(0, 0.05, 20))},
            "derain": {"psnr": list(base["derain"] + rng.normal(0.1, 2.0 + noisy, 20))},  # a gain lost in noise
            "depth": {"absrel": list(depth + depth_shift + rng.normal(0, 0.005, 20))}}, DOMAINS)

    ref = run("ref", {"denoise": 0.0, "lowlight": 0.0}, 0.0)
    wide = run("wide", {"denoise": 0.4, "lowlight": -0.5}, -0.05)  # 2x4: better denoise, better (lower) depth error
    deep = run("deep", {"denoise": 0.2, "lowlight": 0.3}, 0.02)  # 8x1: better low light, worse depth
    return ref, wide, deep


def test_each_task_takes_its_clearly_better_candidate(tmp_path):
    ref, wide, deep = _runs(tmp_path)
    table, choices = pick_sampling(ref, [(2, 4, wide), (8, 1, deep)])
    assert table == {"denoise": [2, 4], "lowlight": [8, 1], "depth": [2, 4]}  # lower absrel is better
    by = {c.task: c for c in choices}
    assert by["denoise"].gain == pytest.approx(0.4, abs=0.05) and by["derain"].task not in table
    assert pick_sampling(ref, [(2, 4, wide)], z=1e6)[0] == {}  # nothing passes an impossible bar


def test_candidate_parsing_and_bad_input(tmp_path):
    assert parse_candidate("2x4=EV/a/b") == (2, 4, "EV/a/b")
    for bad in ("2x4", "x4=a", "2x3=a", "0x2=a", "2-4=a", "2x4="):
        with pytest.raises(ValueError):
            parse_candidate(bad)
    with pytest.raises(ValueError, match="at least one"):
        pick_sampling(tmp_path, [])


def test_cli_writes_a_table_that_model_set_takes(tmp_path, capsys):
    ref, wide, deep = _runs(tmp_path)
    out = tmp_path / "table.json"
    assert main(["model", "pick-sampling", "--ref", str(ref), f"2x4={wide}", f"8x1={deep}", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == {"denoise": [2, 4], "lowlight": [8, 1], "depth": [2, 4]}
    assert "3 of 4 tasks get their own sampling" in capsys.readouterr().out
    assert main(["model", "pick-sampling", "--ref", str(ref), f"2x4={tmp_path / 'missing'}"]) == 2
    assert "no candidate run of the suite" in capsys.readouterr().err

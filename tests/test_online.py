"""Online photo items: a pure function of the index, the same with or without worker processes,
mixed into shard batches with exact resume, and a training run that resumes exactly with them."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixwizard.train.config import preset
from pixwizard.train.data import BatchStream
from pixwizard.train.online import MixedStream, OnlineRecipe, OnlineSource
from pixwizard.train.trainer import RunOptions, train

from test_build_robustness import _alive, _children, _survivors_of_sigkill
from test_train import make_dataset

torch.set_num_threads(1)
PHOTO_TASKS = {"denoise": 1.0, "sr_x2": 1.0, "inpaint_box": 2.0}


def _recipe(tmp: Path, tasks=PHOTO_TASKS, size: int = 48) -> Path:
    photos = tmp / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        rng = np.random.default_rng(i)
        base = rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)
        Image.fromarray(base).resize((200, 160), Image.BICUBIC).save(photos / f"p{i}.png")
    path = tmp / "online.json"
    path.write_text(json.dumps({"name": "online-test", "size": size, "seed": 3, "split": "train",
                                "items_per_shard": 4, "photo_dirs": [str(photos)],
                                "mixture": {"stage": "balanced", "per_task": 1}, "tasks": tasks}))
    return path


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    return _recipe(tmp_path_factory.mktemp("online"))


def _same(a: dict, b: dict) -> bool:
    return (a["task"] == b["task"] and a["instruction"] == b["instruction"]
            and np.array_equal(a["input"], b["input"]) and np.array_equal(a["target"], b["target"]))


def test_items_are_a_function_of_the_index_and_never_repeat(recipe):
    src = OnlineSource(recipe, workers=0)
    items = [src.next_item() for _ in range(24)]
    assert {it["task"] for it in items} == set(PHOTO_TASKS)
    assert all(it["input"].shape == (48, 48, 3) and it["target"].dtype == np.uint8 for it in items)
    # no two items share an input (new crop and degradation every index)
    keys = {it["input"].tobytes() for it in items}
    assert len(keys) == len(items)
    again = OnlineSource(recipe, workers=0)
    again.seek(17)
    assert _same(again.next_item(), items[17])
    assert not _same(items[17], items[18])
    other_rank = OnlineRecipe(recipe, part=1)
    assert not _same(other_rank.item(0), items[0])


def test_worker_processes_give_the_same_items(recipe):
    local = OnlineSource(recipe, workers=0)
    pooled = OnlineSource(recipe, workers=1, chunk=5, ahead=2)
    try:
        pooled.seek(3)
        local.seek(3)
        for _ in range(12):
            assert _same(pooled.next_item(), local.next_item())
    finally:
        pooled.close()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_online_workers_die_with_a_killed_trainer(recipe):
    # a trainer killed with SIGKILL (out of memory, kill -9) must not leave its item workers running
    script = textwrap.dedent(f"""
        import os, sys, time
        from pixwizard.train.online import OnlineSource
        src = OnlineSource({str(recipe)!r}, workers=1, chunk=2, ahead=2)
        src.next_item()
        print("ready", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    family: set[int] = set()
    try:
        assert proc.stdout.readline().strip() == "ready"
        family = set(_children(proc.pid))  # the item worker and the resource tracker
        assert family and all(_alive(p) for p in family)
        assert not _survivors_of_sigkill(proc, family), "workers outlived the killed trainer"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in family:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_non_photo_tasks_and_missing_photos_are_refused(tmp_path):
    with pytest.raises(ValueError, match="only photo tasks"):
        OnlineRecipe(_recipe(tmp_path / "a", tasks={"denoise": 1.0, "depth": 1.0}))
    path = _recipe(tmp_path / "b")
    for p in (tmp_path / "b" / "photos").iterdir():
        p.unlink()
    with pytest.raises(ValueError, match="no usable photos"):
        OnlineRecipe(path)


def test_mixed_stream_shares_skips_and_resumes_exactly(tmp_path, recipe):
    shards = make_dataset(tmp_path / "ds", tasks=("denoise", "depth", "t2i"))

    def stream() -> MixedStream:
        return MixedStream(BatchStream(shards, 8, (32, 48), seed=5), OnlineSource(recipe, workers=0), 0.5)

    a = stream()
    first = [a.next_batch() for _ in range(3)]
    state = a.state_dict()
    rest = [a.next_batch() for _ in range(3)]
    tasks = [t for b in first + rest for t in b.tasks]
    online = [t for t in tasks if t in PHOTO_TASKS]
    assert 0.25 < len(online) / len(tasks) < 0.75
    # shard items of tasks made online ("denoise") are skipped: every denoise comes from the online source
    assert tasks.count("denoise") <= state["online_index"] + 24
    assert set(tasks) - set(PHOTO_TASKS) <= {"depth", "t2i"}
    b = stream()
    b.load_state_dict(json.loads(json.dumps(state)))
    for want in rest:
        got = b.next_batch()
        assert got.tasks == want.tasks and got.instructions == want.instructions
        assert torch.equal(got.inputs, want.inputs) and torch.equal(got.targets, want.targets)


def test_training_with_online_photos_resumes_exactly(tmp_path, recipe):
    data = make_dataset(tmp_path / "ds", size=48, tasks=("denoise", "depth", "t2i"))
    cfg = dataclasses.replace(preset("debug"), online_recipe=str(recipe), online_share=0.5)
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(cfg, RunOptions(out=straight, data=[str(data)], max_steps=4, online_workers=0))
    train(cfg, RunOptions(out=split, data=[str(data)], max_steps=2, online_workers=0))
    train(cfg, RunOptions(out=split, data=[str(data)], max_steps=4, resume=True, online_workers=0))
    from safetensors.torch import load_file

    a = load_file(straight / "checkpoints/step-000000004/model.safetensors")
    b = load_file(split / "checkpoints/step-000000004/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    seen = {k.split("/", 1)[1] for line in lines for k in line if k.startswith("loss/")}
    assert seen & set(PHOTO_TASKS) - {"denoise"}, seen  # tasks only the online source makes were trained on

"""Trainer: configs and schedule, aligned crops and resumable batching, exact resume, stopping,
metrics, export, and 2-process DDP / FSDP2 runs on CPU with gloo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dist_support import free_port
from pixwizard.data.shards import (MANIFEST, atomic_write_json, encode_sample, item_key, shard_name, sidecar_path,
                                   write_shard)
from pixwizard.train.config import PRESETS, StageConfig, TrainConfig, preset
from pixwizard.train.data import BatchStream, check_mixture, random_crop_pair
from pixwizard.train.ema import EMA
from pixwizard.train.schedule import learning_rate
from pixwizard.train.trainer import RunOptions, train

torch.set_num_threads(1)
TASKS = ("denoise", "depth", "t2i")


def make_dataset(folder: Path, n_shards: int = 4, per_shard: int = 6, size: int = 48, tasks=TASKS) -> Path:
    """A tiny built dataset: target random, input = target + noise, instructions repeating."""
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for s in range(n_shards):
        samples = []
        for j in range(per_shard):
            i = s * per_shard + j
            rng = np.random.default_rng(i)
            tgt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            inp = np.clip(tgt.astype(int) + rng.integers(-40, 40, tgt.shape), 0, 255).astype(np.uint8)
            task = tasks[i % len(tasks)]
            counts[task] = counts.get(task, 0) + 1
            rec = {"task": task, "domain": "x", "instruction": f"please do {task} number {i % 5}", "index": i}
            samples.append(encode_sample(item_key(i), inp, tgt, rec, {}))
        path = folder / shard_name(s)
        info = write_shard(path, samples)
        atomic_write_json(sidecar_path(path), {"items": info.items})
    atomic_write_json(folder / MANIFEST, {"size": size, "counts": {"items": sum(counts.values()), "tasks": counts}})
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds"))


def _weights(run: Path, step: int, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step-{step:09d}" / f"{name}.safetensors"))


# ----------------------------------------------------------------------------- config and schedule


def test_presets_build_and_round_trip():
    for name in PRESETS:
        cfg = preset(name)
        assert cfg.total_steps > 0 and cfg.grad_clip == 2.0
        assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg
    tiny = preset("cpu-tiny")
    assert tiny.batch_size == 32 and tiny.decay_fraction == 0.2 and tiny.stages[0].resolutions == (64,)
    assert max(tiny.stages[1].resolutions) == 128 and tiny.stages[1].mixture == "weighted"
    p1, p2 = preset("paper-stage1"), preset("paper-stage2")
    assert (p1.stages[0].lr, p2.stages[0].lr, p1.ema_decay, p1.batch_size) == (1e-4, 5e-5, 0.9999, 1024)
    with pytest.raises(ValueError, match="unknown training preset"):
        preset("nope")
    with pytest.raises(ValueError, match="unknown TrainConfig option"):
        TrainConfig.from_dict({"name": "x", "stages": [], "bogus": 1})


def test_anneal_preset_warms_up_then_decays_to_zero_over_any_length():
    cfg = preset("cpu-tiny-anneal").with_total_steps(400)
    (stage,) = cfg.stages
    assert stage.resolutions == (64, 96, 128) and stage.mixture == "any" and cfg.total_steps == 400
    lrs = [learning_rate(cfg, s) for s in range(400)]
    peak = max(lrs)
    assert lrs.index(peak) < stage.warmup_steps and peak < stage.lr  # the decay starts at step 0
    assert all(a < b for a, b in zip(lrs[:stage.warmup_steps - 1], lrs[1:stage.warmup_steps]))
    assert all(a > b for a, b in zip(lrs[stage.warmup_steps:], lrs[stage.warmup_steps + 1:]))
    assert 0 < lrs[-1] < stage.lr * 0.01


def test_stage_lookup_and_rescale():
    cfg = preset("debug")  # 4 + 4 steps
    assert cfg.stage_at(0) == (0, 0) and cfg.stage_at(3) == (0, 3) and cfg.stage_at(4) == (1, 0)
    with pytest.raises(ValueError, match="past the end"):
        cfg.stage_at(8)
    big = preset("cpu-tiny").with_total_steps(1200)
    assert big.total_steps == 1200 and [s.steps for s in big.stages] == [900, 300]


def test_learning_rate_schedule():
    cfg = TrainConfig(name="s", decay_fraction=0.2, stages=[
        StageConfig("a", steps=50, lr=1e-3, warmup_steps=10), StageConfig("b", steps=50, lr=5e-4)])
    lrs = [learning_rate(cfg, s) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3) and lrs[30] == 1e-3
    assert lrs[60] == 5e-4 and lrs[79] == 5e-4  # constant until the last 20%
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:])) and 0 < lrs[99] < 5e-4 * 0.06


# ----------------------------------------------------------------------------- data


def test_crop_pair_uses_one_offset():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 200, (40, 50, 3), dtype=np.uint8)
    a, b = random_crop_pair(base, base + 7, 16, rng)
    assert a.shape == (16, 16, 3) and np.array_equal(b, a + 7)
    with pytest.raises(ValueError, match="smaller than"):
        random_crop_pair(base, base, 48, rng)
    with pytest.raises(ValueError, match="not aligned"):
        random_crop_pair(base, base[:30], 16, rng)


def test_batch_stream_buckets_and_exact_resume(dataset):
    stream = BatchStream(dataset, 5, (16, 32), seed=3)
    for _ in range(3):
        stream.next_batch()
    state = json.loads(json.dumps(stream.state_dict()))  # survives JSON
    ahead = [stream.next_batch() for _ in range(6)]  # crosses an epoch (24 items)
    restored = BatchStream(dataset, 5, (16, 32), seed=3)
    restored.load_state_dict(state)
    again = [restored.next_batch() for _ in range(6)]
    for x, y in zip(ahead, again):
        assert torch.equal(x.inputs, y.inputs) and torch.equal(x.targets, y.targets) and x.tasks == y.tasks
    assert {b.size for b in ahead} <= {16, 32} and ahead[0].inputs.shape[0] == 5
    assert float(ahead[0].inputs.min()) >= -1 and float(ahead[0].inputs.max()) <= 1
    with pytest.raises(ValueError, match="same number of processes"):
        BatchStream(dataset, 5, (16,), seed=3, part=(0, 2)).load_state_dict(state)


def test_check_mixture(tmp_path, dataset):
    assert check_mixture(dataset, StageConfig("s", 1, resolutions=(32,), mixture="balanced")) == {"denoise": 8, "depth": 8, "t2i": 8}
    with pytest.raises(ValueError, match="text-to-image"):
        check_mixture(dataset, StageConfig("s", 1, resolutions=(32,), mixture="weighted"))
    with pytest.raises(ValueError, match="built at 48 px"):
        check_mixture(dataset, StageConfig("s", 1, resolutions=(64,)))
    skew = make_dataset(tmp_path / "skew", n_shards=1, per_shard=4, tasks=("t2i", "t2i", "denoise", "depth"))
    with pytest.raises(ValueError, match="balanced"):
        check_mixture(skew, StageConfig("s", 1, resolutions=(32,), mixture="balanced"))
    assert check_mixture(skew, StageConfig("s", 1, resolutions=(32,), mixture="weighted"))["t2i"] == 2


def test_instruction_cache_is_batch_independent():
    from pixwizard.config import preset as model_preset
    from pixwizard.model.encoders import build_text_encoder
    from pixwizard.train.text import InstructionCache

    enc = build_text_encoder(model_preset("debug").text, cache_size=0)
    cache = InstructionCache(enc, capacity=2)
    long = "a much longer instruction with many more words in it"
    both = cache.encode(["short one", long])
    alone = InstructionCache(enc).encode(["short one"])
    n = int(alone.mask.sum())
    assert torch.equal(both.tokens[0, :n], alone.tokens[0, :n]) and torch.equal(both.pooled[0], alone.pooled[0])
    assert not both.mask[0, n:].any() and both.mask[1].all()
    cache.encode(["third"])  # capacity 2: "short one" is evicted, recomputed bitwise equal
    again = cache.encode(["short one"])
    assert torch.equal(again.pooled[0], alone.pooled[0]) and cache.stats()["misses"] == 4


def test_ema_update_rule():
    lin = torch.nn.Linear(2, 1)
    ema = EMA(lin, decay=0.5, warmup=False)
    before = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(2.0)
    ema.update(lin)
    assert torch.allclose(ema.shadow["weight"], before + 1.0)
    warm = EMA(lin, decay=0.999)
    assert warm.current_decay() == pytest.approx(0.1)


# ----------------------------------------------------------------------------- trainer


def test_resume_is_exact_and_export_loads(tmp_path, dataset):
    cfg = preset("debug")  # stage boundary at step 4, checkpoints every 2 steps
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(cfg, RunOptions(out=straight, data=[str(dataset)], max_steps=6))
    first = train(cfg, RunOptions(out=split, data=[str(dataset)], max_steps=3))
    assert first.stopped_by == "max_steps" and first.step == 3
    second = train(cfg, RunOptions(out=split, data=[str(dataset)], max_steps=6, resume=True))
    assert second.step == 6 and second.samples == 24
    for name in ("model", "ema"):
        a, b = _weights(straight, 6, name), _weights(split, 6, name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], _weights(split, 4, "model")[k]) for k in a)  # it did train
    oa = torch.load(straight / "checkpoints/step-000000006/optim.pt", weights_only=True)
    ob = torch.load(split / "checkpoints/step-000000006/optim.pt", weights_only=True)
    assert all(torch.equal(oa["state"][i][k], ob["state"][i][k]) for i in oa["state"] for k in oa["state"][i])
    assert len(list((split / "checkpoints").iterdir())) == cfg.keep_last

    from pixwizard.checkpoint import load_model

    model, info = load_model(split / "model.safetensors")
    assert info.trained_samples == 24 and info.config.name == "debug"
    ema = _weights(split, 6, "ema")
    assert all(torch.equal(v, ema[k]) for k, v in model.trainable_state_dict().items())

    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(cfg, RunOptions(out=split, data=[str(dataset)]))
    changed = preset("debug")
    changed.seed = 1
    with pytest.raises(ValueError, match="differs in seed"):
        train(changed, RunOptions(out=split, data=[str(dataset)], resume=True))


def test_resume_reads_a_config_written_before_an_option_existed(tmp_path, dataset):
    """A run begun by an older version (its train_config.json lacks options added since, which default
    to the old behaviour) resumes; a changed value is still named; an unreadable file is said so."""
    cfg = preset("debug")
    run = tmp_path / "old"
    train(cfg, RunOptions(out=run, data=[str(dataset)], max_steps=2))
    path = run / "train_config.json"
    saved = json.loads(path.read_text())
    for key in ("loss_weights", "online_recipe", "online_share"):  # at their defaults in the debug preset
        del saved[key]
    path.write_text(json.dumps(saved))
    assert train(cfg, RunOptions(out=run, data=[str(dataset)], max_steps=4, resume=True)).step == 4
    path.write_text(json.dumps({**saved, "ema_decay": 0.5}))
    with pytest.raises(ValueError, match="differs in ema_decay"):
        train(cfg, RunOptions(out=run, data=[str(dataset)], resume=True))
    path.write_text(json.dumps({**saved, "from_the_future": 1}))
    with pytest.raises(ValueError, match="not a training config this version reads.*from_the_future"):
        train(cfg, RunOptions(out=run, data=[str(dataset)], resume=True))


def test_init_continues_the_loaded_average(tmp_path, dataset):
    """--init loads an exported model (itself an EMA) and the EMA goes on from it at the full decay
    (debug decay 0.9 from the first update), not with the warm-up's 0.1, 0.17, ... that forgets it."""
    cfg = preset("debug")
    first = train(cfg, RunOptions(out=tmp_path / "first", data=[str(dataset)], max_steps=2))
    from pixwizard.checkpoint import load_model

    init = load_model(first.export)[0].trainable_state_dict()
    run = tmp_path / "continued"
    train(cfg, RunOptions(out=run, data=[str(dataset)], max_steps=2, init=str(first.export)))
    model1, ema1 = _weights(run, 2, "model"), _weights(run, 2, "ema")
    assert ema1.keys() == init.keys()
    # two updates at decay 0.9 from init: ema2 = 0.81 init + 0.09 w1 + 0.1 w2; w1 is not kept, so check
    # that the loaded average still carries most of the weight: |ema - init| < |w2 - init| / 4
    moved = sum(float((ema1[k] - init[k].float()).abs().sum()) for k in init)
    trained = sum(float((model1[k].float() - init[k].float()).abs().sum()) for k in init)
    assert 0 < moved < trained / 4
    state = json.loads((run / "checkpoints/step-000000002/state.json").read_text())
    assert state["ema"]["updates"] >= 81  # warm-up skipped: (1 + n) / (10 + n) >= 0.9 from n = 81


def build_model_weights(cfg) -> dict[str, torch.Tensor]:
    from pixwizard.train.trainer import build_model

    return build_model(cfg.model_config(), cfg.seed).trainable_state_dict()


def test_compiled_training_matches_eager(tmp_path, dataset):
    """--compile trains the same model: the same losses to float rounding, text lengths varying per
    batch included (a recompile, then a dynamic-length graph), and a checkpoint that resumes eagerly."""
    cfg = preset("debug")
    eager = train(cfg, RunOptions(out=tmp_path / "eager", data=[str(dataset)], max_steps=3))
    compiled = train(cfg, RunOptions(out=tmp_path / "compiled", data=[str(dataset)], max_steps=3, compile=True))
    rows = {name: [json.loads(x)["loss"] for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("eager", "compiled")}
    assert len(rows["eager"]) == 3 and rows["eager"] == pytest.approx(rows["compiled"], rel=1e-3, abs=1e-5)
    a, b = _weights(tmp_path / "eager", 3, "model"), _weights(tmp_path / "compiled", 3, "model")
    init = build_model_weights(cfg)
    # Adam's sign-like first steps amplify rounding where a gradient is ~0, so compare the whole update
    moved = sum(float((a[k] - init[k]).norm() ** 2) for k in a) ** 0.5
    apart = sum(float((a[k] - b[k]).norm() ** 2) for k in a) ** 0.5
    assert a.keys() == b.keys() and apart < 0.05 * moved, (apart, moved)
    assert eager.step == compiled.step == 3
    resumed = train(cfg, RunOptions(out=tmp_path / "compiled", data=[str(dataset)], max_steps=4, resume=True))
    assert resumed.step == 4


def test_metrics_curve_and_zero_loss_weights(tmp_path, dataset):
    cfg = preset("debug")
    cfg.loss_weights = {t: 0.0 for t in TASKS}
    run = tmp_path / "run"
    train(cfg, RunOptions(out=run, data=[str(dataset)], max_steps=2))
    init = _weights(run, 2, "model")
    from pixwizard.train.trainer import build_model
    from pixwizard.config import preset as model_preset

    fresh = build_model(model_preset("debug"), cfg.seed).trainable_state_dict()
    assert all(torch.equal(init[k], fresh[k]) for k in init)  # zero weights: zero gradients, no update
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["loss"] == 0.0
    assert any(k.startswith("loss/") and v > 0 for k, v in rows[0].items())  # per-task loss stays unweighted
    assert {"lr", "grad_norm", "samples_per_s", "stage"} <= rows[0].keys()
    from PIL import Image

    with pytest.raises(ValueError, match="no loss values"):
        from pixwizard.train.log import draw_loss_curve
        draw_loss_curve(run / "metrics.jsonl", tmp_path / "x.png")
    cfg2 = preset("debug")
    run2 = tmp_path / "run2"
    train(cfg2, RunOptions(out=run2, data=[str(dataset)], max_steps=3))
    assert Image.open(run2 / "loss.png").size == (800, 480)


def test_time_limit_and_sigterm_save_then_resume(tmp_path, dataset):
    cfg = preset("debug").with_total_steps(400)
    run = tmp_path / "timed"
    res = train(cfg, RunOptions(out=run, data=[str(dataset)], minutes=1e-6))
    assert res.stopped_by == "minutes" and res.step == 1 and res.checkpoint.name == "step-000000001"

    def kill_soon():
        while not (run / "metrics.jsonl").is_file() or len((run / "metrics.jsonl").read_text().splitlines()) < 3:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)  # another library (ray.init) may have installed its own
    threading.Thread(target=kill_soon, daemon=True).start()
    res = train(cfg, RunOptions(out=run, data=[str(dataset)], resume=True))
    assert res.stopped_by == "signal" and 2 < res.step < 400
    assert json.loads((res.checkpoint / "state.json").read_text())["step"] == res.step
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    assert (run / "model.safetensors").is_file()


def test_keep_every_keeps_those_steps_and_resume_ignores_it(tmp_path, dataset):
    from pixwizard.checkpoint import load_model
    from pixwizard.train.checkpoint import checkpoint_step, list_checkpoints

    cfg = preset("debug")  # 8 steps, a checkpoint every 2, keep_last 2
    run = tmp_path / "kept"
    train(cfg, RunOptions(out=run, data=[str(dataset)], max_steps=6, keep_every=4))
    assert [checkpoint_step(p) for p in list_checkpoints(run)] == [4, 6]  # 2 went, 4 stays
    res = train(cfg, RunOptions(out=run, data=[str(dataset)], resume=True))  # without it: the same run resumes
    assert res.step == 8 and [checkpoint_step(p) for p in list_checkpoints(run)] == [4, 6, 8]
    train(cfg, RunOptions(out=tmp_path / "plain", data=[str(dataset)], max_steps=6))
    assert [checkpoint_step(p) for p in list_checkpoints(tmp_path / "plain")] == [4, 6]  # keep_last alone
    with pytest.raises(ValueError, match="pick a multiple of 2"):  # the Python API refuses it too
        train(cfg, RunOptions(out=tmp_path / "odd", data=[str(dataset)], keep_every=3))
    assert not (tmp_path / "odd").exists()
    train(cfg, RunOptions(out=tmp_path / "plain", data=[str(dataset)], max_steps=8, resume=True))
    assert [checkpoint_step(p) for p in list_checkpoints(tmp_path / "plain")] == [6, 8]
    _, info = load_model(run / "checkpoints/step-000000004/ema.safetensors")  # a kept EMA is a model file
    assert info.trained_samples == 16


def test_cli_errors(tmp_path, dataset, capsys):
    from pixwizard.cli import main

    assert main(["train", "--preset", "nope", "--data", str(dataset), "--out", str(tmp_path / "r")]) == 2
    assert "unknown training preset" in capsys.readouterr().err
    assert main(["train", "--preset", "debug", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--preset", "debug", "--data", str(dataset), "--out", str(tmp_path / "r"),
                 "--loss-weights", "[1]"]) == 2
    assert main(["train", "--preset", "debug", "--data", str(dataset), "--out", str(tmp_path / "r"),
                 "--keep-every", "-1"]) == 2
    assert "--keep-every must be >= 0" in capsys.readouterr().err
    assert main(["train", "--preset", "debug", "--data", str(dataset), "--out", str(tmp_path / "r2"),
                 "--checkpoint-every", "100", "--keep-every", "350"]) == 2
    assert "pick a multiple of 100" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()  # refused before anything is written


# ----------------------------------------------------------------------------- 2 processes on gloo


def _torchrun(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), "-m", "pixwizard.train", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_ddp_two_processes_end_identical(tmp_path, dataset):
    out = tmp_path / "ddp"
    proc = _torchrun(["--preset", "debug", "--data", str(dataset), "--out", str(out), "--max-steps", "3"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] == "ddp" and summary["samples"] == 12
    fp = summary["fingerprints"]
    assert len(fp) == 2 and fp[0] == fp[1]  # both ranks hold bitwise the same weights
    assert sorted(p.name for p in (out / "checkpoints/step-000000003").glob("rank-*.pt")) == \
        ["rank-00000.pt", "rank-00001.pt"]


def test_fsdp2_two_processes_on_gloo(tmp_path, dataset):
    """FSDP2 (fully_shard per block) runs on CPU with gloo at debug size; its full-state export
    loads as a normal model."""
    out = tmp_path / "fsdp"
    proc = _torchrun(["--preset", "debug", "--data", str(dataset), "--out", str(out), "--max-steps", "2",
                      "--parallel", "fsdp"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["strategy"] == "fsdp"
    from pixwizard.checkpoint import load_model

    model, info = load_model(out / "model.safetensors")
    assert info.trained_samples == 8
    fresh = _weights(out, 2, "model")
    assert any(not torch.equal(v, fresh[k]) for k, v in model.trainable_state_dict().items())  # EMA != raw


def test_model_overrides_reach_the_model_and_checkpoint(tmp_path, dataset):
    import dataclasses

    cfg = dataclasses.replace(preset("debug"), model_overrides={"model": {"use_semantic": False, "condition_skip": True}})
    mcfg = cfg.model_config()
    assert mcfg.model.use_semantic is False and mcfg.model.condition_skip is True
    assert mcfg.model.dim == preset("debug").model_config().model.dim  # the rest of the preset is kept
    train(cfg, RunOptions(out=tmp_path / "run", data=[str(dataset)], max_steps=2))
    from pixwizard.checkpoint import load_model

    model, info = load_model(tmp_path / "run" / "model.safetensors")
    assert info.config.model.condition_skip and model.semantic is None
    bad = dataclasses.replace(preset("debug"), model_overrides={"model": {"no_such_field": 1}})
    with pytest.raises(ValueError, match="no_such_field"):
        bad.model_config()


def test_cli_learning_rate_and_warmup_options():
    import argparse

    from pixwizard.train.run import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--out", "x", "--lr", "3e-4", "--warmup-steps", "100"]))
    assert [s.lr for s in cfg.stages] == [3e-4, 3e-4]
    assert [s.warmup_steps for s in cfg.stages] == [100, preset("cpu-tiny").stages[1].warmup_steps]
    assert learning_rate(cfg, 0) == pytest.approx(3e-6) and learning_rate(cfg, 99) == pytest.approx(3e-4)
    for bad in (["--lr", "0"], ["--warmup-steps", "-1"]):
        with pytest.raises(ValueError):
            config_from_args(parser.parse_args(["--out", "x", *bad]))


def test_cli_resolutions_set_every_stages_crop_sides():
    import argparse

    from pixwizard.train.run import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--out", "x", "--resolutions", "96, 128,192"]))
    assert [s.resolutions for s in cfg.stages] == [(96, 128, 192), (96, 128, 192)]
    assert [s.steps for s in cfg.stages] == [s.steps for s in preset("cpu-tiny").stages]  # nothing else moves
    for bad, said in ((["--resolutions", "96,big"], "whole pixel sides"), (["--resolutions", ","], "no crop side"),
                      (["--resolutions", "4"], "resolutions must be sides >= 8")):
        with pytest.raises(ValueError, match=said):
            config_from_args(parser.parse_args(["--out", "x", *bad]))


def test_change_weight_option_reaches_the_loss(tmp_path, dataset):
    """--change-weight sets the config (checked), and a run with it takes other steps than a plain one
    (the test data's noise leaves some pixels under the threshold, so the weights are not uniform)."""
    import argparse

    from pixwizard.train.run import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--out", "x", "--change-weight", "4", "--change-threshold", "0.2"]))
    assert (cfg.change_weight, cfg.change_threshold, cfg.change_tasks) == (4.0, 0.2, [])
    assert preset("cpu-tiny").change_weight == 0.0  # off unless asked
    cfg = config_from_args(parser.parse_args(["--out", "x", "--change-weight", "4", "--change-tasks", "refbox, edit_add"]))
    assert cfg.change_tasks == ["refbox", "edit_add"]
    for bad, said in ((["--change-weight", "-1"], "change_weight and change_threshold must be >= 0"),
                      (["--change-threshold", "-0.1"], "change_weight and change_threshold must be >= 0"),
                      (["--change-weight", "nan"], "change_weight and change_threshold must be >= 0"),
                      (["--change-tasks", "refbox,boxes"], "unknown task.*boxes"), (["--change-tasks", ","], "no task")):
        with pytest.raises(ValueError, match=said):
            config_from_args(parser.parse_args(["--out", "x", *bad]))
    runs = {}
    for name, w, tasks in (("plain", 0.0, []), ("all", 4.0, []), ("t2i", 4.0, ["t2i"]), ("other", 4.0, ["refbox"])):
        cfg = preset("debug")
        cfg.change_weight, cfg.change_tasks = w, tasks
        train(cfg, RunOptions(out=tmp_path / name, data=[str(dataset)], max_steps=2))
        runs[name] = _weights(tmp_path / name, 2, "model")
    differ = {name: any(not torch.equal(runs["plain"][k], runs[name][k]) for k in runs["plain"]) for name in runs}
    # weighting every task or the t2i items of the data moves the weights; a task not in the data does not
    assert differ == {"plain": False, "all": True, "t2i": True, "other": False}


def test_cli_model_overrides_merge_into_the_presets_own():
    import argparse

    from pixwizard.train.run import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = config_from_args(parser.parse_args(["--out", "x", "--preset", "cpu-tiny-anneal"]))
    assert base.model_config().flow.grid_share == 0.8  # the anneal preset draws 80 % of its times on the grid
    assert preset("cpu-tiny").model_config().flow.grid_share == 0.0
    cfg = config_from_args(parser.parse_args(["--out", "x", "--preset", "cpu-tiny-anneal",
                                              "--model-overrides", '{"model": {"refine": 32}}']))
    mcfg = cfg.model_config()
    assert mcfg.model.refine == 32 and mcfg.flow.grid_share == 0.8  # added to the preset's, not instead
    off = config_from_args(parser.parse_args(["--out", "x", "--preset", "cpu-tiny-anneal",
                                              "--model-overrides", '{"flow": {"grid_share": 0}}']))
    assert off.model_config().flow.grid_share == 0.0


def test_bench_training_reports_flops_and_mfu():
    from pixwizard.train.bench import bench_training

    r = bench_training(preset="debug", size=16, batch=2, steps=1, warmup=0, precision="fp32")
    assert r["flops_per_step"] > 0 and r["gemm_tflops"] > 0 and r["samples_per_s"] > 0
    assert r["model_tflops"] == pytest.approx(r["flops_per_step"] / r["seconds_per_step"] / 1e12)
    assert 0 < r["mfu"] < 1  # a debug model's small operators are far below a large matrix product's rate

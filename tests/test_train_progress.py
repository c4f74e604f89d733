"""Training feedback (issue 13 item 4): a progress bar with loss, samples/s and ETA, and TensorBoard."""

import io
import json

import pytest
import torch

from pixwizard.train.config import preset
from pixwizard.train.progress import TrainProgress
from pixwizard.train.trainer import RunOptions, train

torch.set_num_threads(1)


def scalars(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_bar_shows_loss_rate_and_eta(monkeypatch, tmp_path):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    p = TrainProgress(10, initial=2, bar=True, tensorboard=tmp_path / "tb")
    p.step()
    p.log({"step": 3, "stage": "s1", "loss": 0.25, "samples_per_s": 12.5, "lr": 1e-3, "loss/denoise": 0.5})
    p.step()
    p.close()
    text = err.getvalue()
    assert "4/10" in text and "loss=0.2500" in text and "samples/s=12.5" in text and "<" in text  # tqdm's ETA
    got = scalars(tmp_path / "tb")
    assert got["loss"] == [(3, 0.25)] and got["loss/denoise"] == [(3, 0.5)] and "stage" not in got
    off = TrainProgress(10, enabled=False)
    off.step()
    off.log({"step": 1, "loss": 1.0})
    off.close()


def test_training_run_logs_to_tensorboard(tmp_path):
    from tests.test_train import make_dataset

    data = make_dataset(tmp_path / "ds", n_shards=2, per_shard=4)
    cfg = preset("debug")
    run = tmp_path / "run"
    train(cfg, RunOptions(out=run, data=[str(data)], max_steps=2, tensorboard=tmp_path / "tb"))
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    got = scalars(tmp_path / "tb")
    assert [s for s, _ in got["loss"]] == [r["step"] for r in rows] == [1, 2]
    assert got["loss"][1][1] == pytest.approx(rows[1]["loss"]) and "samples_per_s" in got


def test_missing_tensorboard_is_one_line(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_tb(name, *a, **k):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("no tensorboard")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    from pixwizard.train.progress import tensorboard_writer

    with pytest.raises(ValueError, match=r"pip install 'pixwizard\[train\]'"):
        tensorboard_writer("x")

"""`train --resume` with a damaged newest checkpoint (issue 10, item 15): a truncated optimiser file
or a planted pickle falls back to the previous checkpoint (kept for that) with a one-line warning;
nothing readable at all is a one-line error, and no pickled code ever runs."""

from __future__ import annotations

import pickle

import pytest
import torch

from pixwizard.cli import main
from pixwizard.train.config import preset
from pixwizard.train.trainer import RunOptions, train
from test_train import _weights, make_dataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ds"), n_shards=2)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, dataset):
    run = tmp_path_factory.mktemp("straight")
    train(preset("debug"), RunOptions(out=run, data=[str(dataset)], max_steps=6))
    return run


class Planted:
    def __reduce__(self):
        return (exec, ("open('PLANTED_RAN', 'w').close()",))


def _damage(run, how):
    ckpt = run / "checkpoints" / "step-000000004"
    if how == "truncated_optim":
        data = (ckpt / "optim.pt").read_bytes()
        (ckpt / "optim.pt").write_bytes(data[: len(data) // 3])
    else:
        (ckpt / "rank-00000.pt").write_bytes(pickle.dumps({"rng": Planted()}))


@pytest.mark.parametrize("how", ["truncated_optim", "planted_pickle"])
def test_resume_falls_back_to_the_previous_checkpoint(how, tmp_path, dataset, straight, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    train(preset("debug"), RunOptions(out=run, data=[str(dataset)], max_steps=4))  # checkpoints at 2 and 4
    _damage(run, how)
    capsys.readouterr()
    res = train(preset("debug"), RunOptions(out=run, data=[str(dataset)], max_steps=6, resume=True))
    err = capsys.readouterr().err
    assert res.step == 6 and "skipping checkpoint step-000000004" in err
    if how == "planted_pickle":
        assert "refused" in err
    assert not (tmp_path / "PLANTED_RAN").exists()
    for name in ("model", "ema"):  # exact resume from step 2 ends where the straight run ends
        a, b = _weights(straight, 6, name), _weights(run, 6, name)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_no_readable_checkpoint_is_one_line(tmp_path, dataset, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    train(preset("debug"), RunOptions(out=run, data=[str(dataset)], max_steps=4))
    for ckpt in (run / "checkpoints").iterdir():
        (ckpt / "optim.pt").write_bytes(b"")
    capsys.readouterr()
    rc = main(["train", "--preset", "debug", "--data", str(dataset), "--out", str(run), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "Traceback" not in "\n".join(err)
    assert err[-1].startswith("pixwizard train: error: cannot resume") and "no readable checkpoint" in err[-1]

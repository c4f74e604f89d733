"""The convolutional refinement head (model.refine): starts as the identity, grows from a file
without it (train --init), trains, and round-trips through a model file."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from test_train import make_dataset

from pixwizard.checkpoint import load_model
from pixwizard.config import PixWizardConfig, preset as model_preset
from pixwizard.model.encoders.base import TextEncoding
from pixwizard.model.pixwizard import PixWizard
from pixwizard.train.config import preset
from pixwizard.train.trainer import RunOptions, train

REFINE = {"model": {"refine": 8}}


def _with_refine(width: int) -> PixWizardConfig:
    d = model_preset("debug").to_dict()
    d["model"]["refine"] = width
    return PixWizardConfig.from_dict(d)


def _inputs(cfg: PixWizardConfig, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    m = cfg.model
    x = torch.randn(2, m.in_channels, 16, 24, generator=g)
    cond = torch.randn(2, m.in_channels, 16, 24, generator=g)
    text = TextEncoding(torch.randn(2, 5, m.text_dim, generator=g), torch.ones(2, 5, dtype=torch.bool),
                        torch.randn(2, m.task_dim, generator=g))
    return x, torch.tensor([0.3, 0.8]), cond, text


def test_a_grown_model_starts_as_the_model_without_the_head():
    torch.manual_seed(0)
    plain = PixWizard(model_preset("debug")).eval()
    grown = PixWizard(_with_refine(8)).eval()
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("refine.") for k in missing)
    x, t, cond, text = _inputs(plain.config)
    with torch.no_grad():
        assert torch.equal(plain(x, t, cond, text), grown(x, t, cond, text))
        grown.refine.conv2.weight.normal_(0, 0.1)  # once trained, a pixel sees across the patch border
        c2 = cond.clone()
        c2[:, :, :, 4] += 1.0  # first column of the second patch (debug patch 4)
        d = (grown(x, t, c2, text) - grown(x, t, cond, text))[:, :, :, 3]  # last column of the first
    assert d.abs().max() > 0


def test_bad_widths_are_refused():
    with pytest.raises(ValueError, match="model.refine"):
        _with_refine(-1)


def test_init_from_a_file_without_the_head_grows_it_and_trains_it(tmp_path):
    data = make_dataset(tmp_path / "ds", n_shards=2, per_shard=6)
    cfg = preset("debug")
    base = train(cfg, RunOptions(out=tmp_path / "base", data=[str(data)], max_steps=1))
    runs = {}
    for name, overrides in (("plain", {}), ("grown", REFINE)):
        c = dataclasses.replace(cfg, model_overrides=overrides)
        runs[name] = train(c, RunOptions(out=tmp_path / name, data=[str(data)], max_steps=3, init=str(base.export)))
    losses = {n: [json.loads(x)["loss"] for x in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
              for n in runs}
    assert losses["grown"][0] == pytest.approx(losses["plain"][0], rel=1e-6)  # identity at the start
    model, info = load_model(runs["grown"].export)  # the export holds the head and loads strictly
    assert info.config.model.refine == 8 and model.refine is not None
    assert float(model.refine.conv2.weight.detach().abs().sum()) > 0  # and it trained

"""Per-task sampling defaults (``flow.task_sampling``): a task listed there runs with its own steps
and shifts unless the caller says otherwise; other tasks, and old model files, keep the model-wide
defaults; ``pixwizard model set --task-sampling`` writes the table without touching the tensors."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from pixwizard.checkpoint import load_model, read_info, save_model, tensors_digest
from pixwizard.cli import main
from pixwizard.config import FlowConfig, PixWizardConfig, preset
from pixwizard.model.encoders import build_codec, build_text_encoder
from pixwizard.pipeline import PixWizardPipeline
from test_pipeline import image, live_model

TABLE = {"denoise": [1, 4], "depth": [3, 1]}


def test_flow_config_table_is_checked_and_round_trips():
    flow = FlowConfig(steps=4, shifts=2, task_sampling=TABLE)
    assert flow.sampling_for("denoise") == (1, 4) and flow.sampling_for("depth") == (3, 1)
    assert flow.sampling_for("derain") == (4, 2) and flow.sampling_for(None) == (4, 2)
    cfg = dataclasses.replace(preset("debug"), flow=flow)
    assert PixWizardConfig.from_json(cfg.to_json()).flow.task_sampling == TABLE
    old = json.loads(preset("debug").to_json())
    del old["flow"]["task_sampling"]  # a file written before the table existed
    assert PixWizardConfig.from_dict(old).flow.task_sampling == {}
    for bad in ({"denoise": [0, 2]}, {"denoise": [2, 3]}, {"denoise": [2]}, {"denoise": [2.0, 2]}, {"": [1, 1]},
                {"denoise": [True, 2]}, ["denoise"]):
        with pytest.raises(ValueError, match="task_sampling"):
            FlowConfig(task_sampling=bad)


@pytest.fixture(scope="module")
def table_pipe():
    m = live_model()
    m.config = dataclasses.replace(m.config, flow=dataclasses.replace(m.config.flow, task_sampling=TABLE))
    return PixWizardPipeline(m, build_text_encoder(m.config.text), build_codec(m.config.codec), device="cpu",
                             precision="fp32")


def test_a_listed_task_runs_with_its_own_steps_and_shifts(table_pipe):
    img = image(16, 24, seed=2)
    own = table_pipe(img, "remove the noise", task="denoise", seed=4)
    assert (own.steps, own.shifts) == (1, 4)
    explicit = table_pipe(img, "remove the noise", task="denoise", seed=4, steps=1, shifts=4)
    assert np.array_equal(own.image, explicit.image)  # the same run as asking for it
    assert (table_pipe(img, "x", task="denoise", steps=2).steps, table_pipe(img, "x", task="denoise", steps=2).shifts) \
        == (2, 4)  # what the caller gives wins, the rest comes from the table
    assert table_pipe(img, "x", task="denoise", shifts=1).shifts == 1
    other = table_pipe(img, "remove the rain", task="derain", seed=4)
    assert (other.steps, other.shifts) == (table_pipe.config.flow.steps, table_pipe.config.flow.shifts)


def test_a_routed_instruction_picks_its_task_defaults(table_pipe):
    img = image(16, 16, seed=3)
    res = table_pipe(img, "estimate the depth of this scene", seed=1)
    assert res.task == "depth" and res.route is not None and res.route.task == "depth"
    assert (res.steps, res.shifts) == (3, 1)
    assert np.array_equal(res.image, table_pipe(img, "estimate the depth of this scene", task="depth", seed=1).image)


def test_model_set_writes_and_clears_the_table(tmp_path, capsys):
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_model(live_model(), path, trained_samples=5)
    digest = tensors_digest(path)
    table = tmp_path / "table.json"
    table.write_text(json.dumps(TABLE))
    assert main(["model", "set", str(path), "--task-sampling", str(table)]) == 0
    assert read_info(path).config.flow.task_sampling == TABLE and tensors_digest(path) == digest
    capsys.readouterr()
    assert main(["model", "info", str(path)]) == 0
    assert "per task (steps x shifts): denoise 1x4, depth 3x1" in capsys.readouterr().out
    model, _ = load_model(path)
    assert model.config.flow.task_sampling == TABLE
    assert main(["model", "set", str(path), "--task-sampling", "{}"]) == 0
    assert read_info(path).config.flow.task_sampling == {} and tensors_digest(path) == digest
    before = path.read_bytes()
    for bad, words in (('{"denoize": [1, 4]}', "unknown task 'denoize'"), ('{"denoise": [1, 3]}', "shifts 1|2|4"),
                       ("[1, 4]", "JSON object"), ("{denoise", "JSON object")):
        capsys.readouterr()
        assert main(["model", "set", str(path), "--task-sampling", bad]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
    assert path.read_bytes() == before

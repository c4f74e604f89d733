"""`pixwizard model info|set`: a model file's sampling defaults change, its tensors do not."""

import json

import pytest
import torch

from pixwizard.checkpoint import load_model, read_info, save_model, tensors_digest
from pixwizard.cli import main
from pixwizard.config import preset
from pixwizard.model.pixwizard import PixWizard


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_model(PixWizard(preset("debug")), path, trained_samples=123, extra={"notice": "an early one"})
    return path


def test_set_changes_the_defaults_and_keeps_the_tensors(model_file, tmp_path, capsys):
    digest, before = tensors_digest(model_file), model_file.read_bytes()
    out = tmp_path / "out" / "m2.safetensors"
    assert main(["model", "set", str(model_file), "--out", str(out), "--shifts", "2", "--steps", "3",
                 "--sampler", "heun", "--shift-blend", "0.5", "--notice", "a  better\none", "--trained-samples", "456"]) == 0
    assert model_file.read_bytes() == before  # --out leaves the source alone
    assert tensors_digest(out) == digest
    model, info = load_model(out)  # strict load: the same tensors under the same names
    flow = model.config.flow
    assert (flow.shifts, flow.steps, flow.sampler, flow.shift_blend) == (2, 3, "heun", 0.5)
    assert (info.trained_samples, info.extra["notice"]) == (456, "a better one")
    ref, _ = load_model(model_file)
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), model.state_dict().values()))
    assert main(["model", "set", str(out), "--no-notice", "--text-guidance", "1.5"]) == 0  # in place
    info = read_info(out)
    assert "notice" not in info.extra and info.config.flow.text_guidance == 1.5 and info.config.flow.shifts == 2
    assert tensors_digest(out) == digest
    capsys.readouterr()
    assert main(["model", "info", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["tensors_sha256"] == digest and shown["sampling"]["steps"] == 3 and shown["trained_samples"] == 456


@pytest.mark.parametrize("args,words", [
    ([], "nothing to set"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--image-guidance", "nan"], "finite"),
    (["--trained-samples", "-1"], "trained-samples"),
    (["--shift-blend", "2"], "shift_blend must be a number in [0, 1]"),
])
def test_set_refuses_bad_values_in_one_line_and_writes_nothing(model_file, capsys, args, words):
    before = model_file.read_bytes()
    assert main(["model", "set", str(model_file), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert model_file.read_bytes() == before


def test_a_file_that_is_not_a_model_is_refused(tmp_path, capsys):
    bad = tmp_path / "notes.safetensors"
    bad.write_text("hello")
    assert main(["model", "info", str(bad)]) == 2
    assert "not a readable safetensors checkpoint" in capsys.readouterr().err
    assert main(["model", "set", str(tmp_path / "missing.safetensors"), "--shifts", "2"]) == 2
    assert "not found" in capsys.readouterr().err

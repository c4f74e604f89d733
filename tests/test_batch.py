"""Batch mode of `pixwizard run` (issue 13 item 3): folder, glob and JSONL manifest into an output
folder, resumable, per-item seeds, provenance sidecars; `--json` for single runs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixwizard.checkpoint import save_model
from pixwizard.cli import main
from pixwizard.config import preset
from pixwizard.model.pixwizard import PixWizard
from pixwizard.pipeline import PixWizardPipeline

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    m = PixWizard(preset("debug"))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # open the zero-initialised paths so the output depends on the seed
        for p in m.parameters():
            if p.abs().sum() == 0:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    path = tmp_path_factory.mktemp("ckpt") / "debug.safetensors"
    save_model(m, path, trained_samples=10)
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (24, 32), "b.jpg": (16, 16), "c.png": (20, 12)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return folder


def run(*argv):
    return main(["run", *map(str, argv)])


def sidecars(out):
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.provenance.json"))}


def test_folder_batch_writes_outputs_and_provenance_and_resumes(ckpt, photos, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert run(photos, "remove the noise", "-o", out, "--checkpoint", ckpt, "--task", "denoise", "--steps", "2",
               "--seed", "5") == 0
    assert "3 written, 0 already done, 0 failed" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png", "c.png"]
    docs = sidecars(out)
    assert set(docs) == {"a.provenance.json", "b.provenance.json", "c.provenance.json"}
    a = docs["a.provenance.json"]
    import hashlib

    assert a["model"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert a["model"]["trained_samples"] == 10 and a["model"]["version"]
    assert (a["instruction"], a["task"], a["seed"], a["steps"]) == ("remove the noise", "denoise", 5, 2)
    assert a["input"]["size"] == [32, 24] == a["output"]["size"] and a["text_guidance"] is not None
    assert set(a["timings_s"]) >= {"read", "run", "write", "model_load"}
    assert Image.open(out / "c.png").size == (12, 20)

    # a second run skips everything; a lost sidecar (killed before it was written) reruns that item
    (out / "b.provenance.json").unlink()
    calls = []
    original = PixWizardPipeline.__call__
    monkeypatch.setattr(PixWizardPipeline, "__call__", lambda self, *a, **k: calls.append(a[1]) or original(self, *a, **k))
    assert run(photos, "remove the noise", "-o", out, "--checkpoint", ckpt, "--task", "denoise", "--steps", "2",
               "--seed", "5") == 0
    assert len(calls) == 1 and "1 written, 2 already done" in capsys.readouterr().out
    assert sidecars(out)["a.provenance.json"]["created"] == a["created"]
    # other settings are another request: everything runs again
    assert run(photos, "remove the noise", "-o", out, "--checkpoint", ckpt, "--task", "denoise", "--steps", "1",
               "--seed", "5") == 0
    assert len(calls) == 4 and all(d["steps"] == 1 for d in sidecars(out).values())


def test_a_killed_run_loses_nothing(ckpt, photos, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    original = PixWizardPipeline.__call__
    seen = []

    def dies_on_second(self, *a, **k):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(PixWizardPipeline, "__call__", dies_on_second)
    assert run(photos, "denoise", "-o", out, "--checkpoint", ckpt, "--task", "denoise", "--steps", "1") == 130
    assert set(sidecars(out)) == {"a.provenance.json"} and not (out / "b.png").exists()
    monkeypatch.setattr(PixWizardPipeline, "__call__", original)
    assert run(photos, "denoise", "-o", out, "--checkpoint", ckpt, "--task", "denoise", "--steps", "1") == 0
    assert "2 written, 1 already done" in capsys.readouterr().out and len(sidecars(out)) == 3


def test_manifest_per_item_settings_and_glob(ckpt, photos, tmp_path, capsys):
    manifest = tmp_path / "jobs.jsonl"
    lines = [{"image": "in/a.png", "instruction": "remove the noise", "seed": 1, "task": "denoise"},
             {"image": "in/a.png", "seed": 2, "steps": 1, "task": "denoise", "output": "a-seed2.png"},
             {"image": str(photos / "c.png"), "instruction": "remove the rain", "task": "derain"}]
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    out = tmp_path / "out"
    assert run(manifest, "denoise this", "-o", out, "--checkpoint", ckpt, "--steps", "2", "--json") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ran"] == 3 and summary["failed"] == 0
    docs = sidecars(out)  # lines 1 and 2 share a.png: line 1 gets its line number, line 2 names its output
    assert set(docs) == {"a-line1.provenance.json", "a-seed2.provenance.json", "c.provenance.json"}
    assert (docs["a-line1.provenance.json"]["seed"], docs["a-seed2.provenance.json"]["seed"]) == (1, 2)
    assert docs["a-seed2.provenance.json"]["steps"] == 1 and docs["a-seed2.provenance.json"]["instruction"] == "denoise this"
    assert docs["c.provenance.json"]["task"] == "derain" and docs["c.provenance.json"]["steps"] == 2
    assert not np.array_equal(np.asarray(Image.open(out / "a-line1.png")), np.asarray(Image.open(out / "a-seed2.png")))

    glob_out = tmp_path / "glob"
    assert run(str(photos / "*.png"), "denoise", "-o", glob_out, "--checkpoint", ckpt, "--task", "denoise",
               "--steps", "1") == 0
    assert sorted(p.name for p in glob_out.glob("*.png")) == ["a.png", "c.png"]
    # an output folder under the pattern: its results are never taken as inputs on the next run
    inner = photos / "out"
    for _ in range(2):
        assert run(str(photos / "**" / "*.png"), "denoise", "-o", inner, "--checkpoint", ckpt, "--task", "denoise",
                   "--steps", "1") == 0
    assert sorted(p.name for p in inner.glob("*.png")) == ["a.png", "c.png"]
    assert "0 written, 2 already done" in capsys.readouterr().out.splitlines()[-1]


def test_bad_batches_fail_in_one_line_before_the_model_loads(ckpt, photos, tmp_path, capsys, monkeypatch):
    def no_load(*a, **k):
        raise AssertionError("the model must not load for a bad batch")

    monkeypatch.setattr(PixWizardPipeline, "from_pretrained", no_load)
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text(json.dumps({"image": "in/a.png", "instruction": "x", "task": "denoise"}) + "\n"
                        + json.dumps({"image": "in/missing.png", "instruction": "x", "task": "denoise"}) + "\n")
    cases = [([manifest, "-o", tmp_path / "o"], "line 2: image file not found"),
             ([photos, "-o", tmp_path / "o"], "give the instruction"),
             ([photos, "x"], "batch mode needs -o"),
             ([photos, "x", "-o", tmp_path / "o", "--steps", "0"], "--steps must be at least 1"),
             ([str(tmp_path / "none" / "*.png"), "x", "-o", tmp_path / "o"], "no image files")]
    manifest2 = tmp_path / "bad2.jsonl"
    manifest2.write_text('{"image": "in/a.png"}\nnot json\n')
    cases.append(([manifest2, "x", "-o", tmp_path / "o"], "bad2.jsonl:2: not a JSON object"))
    for argv, message in cases:
        assert run(*argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_single_run_json(ckpt, photos, tmp_path, capsys):
    out = tmp_path / "one.png"
    assert run(photos / "a.png", "remove the noise", "-o", out, "--checkpoint", ckpt, "--task", "denoise",
               "--steps", "1", "--seed", "3", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["output"]["path"] == str(out) and out.is_file()
    assert (doc["task"], doc["seed"], doc["steps"]) == ("denoise", 3, 1) and doc["routing"] is None
    assert len(doc["model"]["sha256"]) == 64 and doc["timings_s"]["run"] > 0

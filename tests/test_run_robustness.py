"""`pixwizard run` robustness (issue 10, items 12-20): bad input gets one line before anything
heavy runs, outputs are written as one set, checkpoints are checked and written reproducibly."""

import errno
import json
import os
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from pixwizard import outputs
from pixwizard.checkpoint import load_model, save_model
from pixwizard.cli import main
from pixwizard.config import preset
from pixwizard.model.pixwizard import PixWizard
from pixwizard.pipeline import PixWizardPipeline
from pixwizard.tasks.codecs import Decoded


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return PixWizard(preset("debug")).eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "debug.safetensors"
    save_model(tiny_model(), path, trained_samples=1)
    return path


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)).save(path)
    return path


def run(capsys, *args):
    rc = main(["run", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err.strip()


def one_line_error(rc, err):
    return rc == 2 and "Traceback" not in err and len(err.splitlines()) == 1 and "error" in err


def no_model_load(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the model must not load before the paths are checked")

    monkeypatch.setattr(PixWizardPipeline, "from_pretrained", refuse)


# ----------------------------------------------------------------------------- 18: early checks


@pytest.mark.parametrize("case", ["extension", "directory", "parent_is_file", "missing_input"])
def test_paths_are_checked_before_the_model_loads(case, ckpt, src, tmp_path, capsys, monkeypatch):
    no_model_load(monkeypatch)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    out = {"extension": tmp_path / "o.xyz", "directory": tmp_path / "adir",
           "parent_is_file": tmp_path / "afile" / "o.png", "missing_input": tmp_path / "o.png"}[case]
    image = tmp_path / "nope.png" if case == "missing_input" else src
    rc, _, err = run(capsys, image, "remove the noise", "-o", out, "--checkpoint", ckpt, "--task", "denoise")
    assert one_line_error(rc, err), err


def test_a_missing_output_folder_is_made(ckpt, src, tmp_path, capsys):
    out = tmp_path / "new" / "sub" / "o.png"
    rc, _, err = run(capsys, src, "remove the noise", "-o", out, "--checkpoint", ckpt, "--task", "denoise",
                     "--steps", "1")
    assert rc == 0 and out.is_file(), err


# ----------------------------------------------------------------------------- 13, 14, 15: options


@pytest.mark.parametrize("option", [["--text-guidance", "nan"], ["--image-guidance", "inf"],
                                    ["--text-guidance=-inf"], ["--seed", str(2 ** 70)], ["--seed", "-1"],
                                    ["--size", "100000"], ["--size", "8000"]])
def test_bad_numbers_are_one_line_errors(option, ckpt, src, tmp_path, capsys):
    out = tmp_path / "o.png"
    rc, _, err = run(capsys, src, "remove the noise", "-o", out, "--checkpoint", ckpt, "--task", "denoise",
                     "--steps", "1", *option)
    assert one_line_error(rc, err), err
    assert not out.exists()


def test_size_limit_names_the_largest_size_that_runs(ckpt, src, tmp_path, capsys):
    rc, _, err = run(capsys, src, "remove the noise", "-o", tmp_path / "o.png", "--checkpoint", ckpt,
                     "--task", "denoise", "--steps", "1", "--size", "5000")
    side = int(err.split("use --size ")[1].split()[0])
    rc, _, err = run(capsys, src, "remove the noise", "-o", tmp_path / "o.png", "--checkpoint", ckpt,
                     "--task", "denoise", "--steps", "1", "--size", str(side))
    assert rc == 0, err


# ----------------------------------------------------------------------------- 13: bounded reads


def test_endless_and_huge_inputs_are_refused_without_reading_them(tmp_path):
    from pixwizard.imageio import ImageError, load_image, max_file_bytes

    with pytest.raises(ImageError, match="larger than"):
        load_image("/dev/zero", max_pixels=64 * 64)
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:  # sparse: no disk space used
        f.truncate(max_file_bytes(64 * 64) + 1)
    with pytest.raises(ImageError, match="larger than"):
        load_image(huge, max_pixels=64 * 64)
    with open("/dev/zero", "rb") as f, pytest.raises(ImageError, match="larger than"):
        load_image(f, max_pixels=64 * 64)


def test_run_on_dev_zero_is_one_line(ckpt, tmp_path, capsys):
    rc, _, err = run(capsys, "/dev/zero", "x", "-o", tmp_path / "o.png", "--checkpoint", ckpt, "--task", "denoise")
    assert one_line_error(rc, err) and "larger than" in err, err


# ----------------------------------------------------------------------------- 14, 15: checkpoints


def _rewrite(ckpt, tmp_path, change_state=None, change_meta=None):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(ckpt), framework="pt") as f:
        meta = dict(f.metadata())
    state = load_file(str(ckpt))
    if change_state:
        change_state(state)
    if change_meta:
        change_meta(meta)
    path = tmp_path / "changed.safetensors"
    save_file(state, str(path), metadata=meta)
    return path


def _nan_weight(state):
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")


def _wrong_shape(state):
    name = next(k for k, v in state.items() if v.ndim == 2)
    state[name] = torch.zeros(state[name].shape[0] + 1, state[name].shape[1])


def _wrong_type(meta):
    cfg = json.loads(meta["pixwizard_config"])
    cfg["model"]["hidden_size" if "hidden_size" in cfg["model"] else next(iter(cfg["model"]))] = "wide"
    meta["pixwizard_config"] = json.dumps(cfg)


def _broken_json(meta):
    meta["pixwizard_config"] = meta["pixwizard_config"][:-7]


@pytest.mark.parametrize("case", ["nan_weights", "wrong_shape", "wrong_type", "broken_json"])
def test_broken_checkpoints_are_one_line_errors(case, ckpt, src, tmp_path, capsys):
    bad = _rewrite(ckpt, tmp_path, change_state={"nan_weights": _nan_weight, "wrong_shape": _wrong_shape}.get(case),
                   change_meta={"wrong_type": _wrong_type, "broken_json": _broken_json}.get(case))
    with pytest.raises(ValueError, match=str(bad.name)):
        load_model(bad)
    out = tmp_path / "o.png"
    rc, _, err = run(capsys, src, "remove the noise", "-o", out, "--checkpoint", bad, "--task", "denoise",
                     "--steps", "1")
    assert one_line_error(rc, err) and bad.name in err, err
    assert not out.exists()


def test_eval_with_a_broken_checkpoint_is_one_line(ckpt, tmp_path, capsys):
    bad = _rewrite(ckpt, tmp_path, change_state=_wrong_shape)
    rc = main(["eval", "--suite", "quick", "--model", str(bad), "--out", str(tmp_path / "ev"), "--limit", "1"])
    err = capsys.readouterr().err.strip()
    assert one_line_error(rc, err), err


# ----------------------------------------------------------------------------- 20: reproducible files


def test_identical_models_write_identical_bytes(tmp_path):
    model = tiny_model()
    extra = {f"key{i}": str(i) for i in range(12)}  # many metadata keys: hash order would show
    for name in ("a", "b", "c"):
        save_model(model, tmp_path / f"{name}.safetensors", trained_samples=5, extra=extra)
    blobs = {(tmp_path / f"{n}.safetensors").read_bytes() for n in ("a", "b", "c")}
    assert len(blobs) == 1
    n = int.from_bytes(next(iter(blobs))[:8], "little")
    header = json.loads(next(iter(blobs))[8:8 + n])
    assert list(header) == sorted(header) and list(header["__metadata__"]) == sorted(header["__metadata__"])
    loaded, info = load_model(tmp_path / "a.safetensors")
    assert info.trained_samples == 5 and info.extra["key7"] == "7"
    for (k, a), b in zip(model.trainable_state_dict().items(), loaded.trainable_state_dict().values()):
        assert torch.equal(a, b), k


# ----------------------------------------------------------------------------- 17: one set


def test_a_new_run_removes_the_old_typed_outputs(ckpt, src, tmp_path, capsys):
    out = tmp_path / "s.png"
    rc, _, err = run(capsys, src, "estimate the depth", "-o", out, "--checkpoint", ckpt, "--task", "depth",
                     "--steps", "1")
    assert rc == 0 and (tmp_path / "s.depth.npy").is_file() and (tmp_path / "s.depth16.png").is_file(), err
    rc, _, err = run(capsys, src, "remove the noise", "-o", out, "--checkpoint", ckpt, "--task", "denoise",
                     "--steps", "1")
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("s.")) == ["s.png"]


def test_a_failed_write_leaves_the_previous_set(tmp_path, monkeypatch, capsys):
    out = tmp_path / "s.png"
    img = np.zeros((4, 5, 3), np.uint8)
    depth = Decoded(depth=np.ones((4, 5), np.float32))
    outputs.write_output_set(out, img, depth, "depth")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = []
    real = outputs._write_temp

    def full_disk(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(outputs, "_write_temp", full_disk)
    with pytest.raises(OSError, match="disk is full"):
        outputs.write_output_set(out, img + 7, Decoded(depth=np.full((4, 5), 2, np.float32)), "depth")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file left either


def test_disk_full_in_run_is_one_line(ckpt, src, tmp_path, monkeypatch, capsys):
    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "_write_temp", full_disk)
    rc, _, err = run(capsys, src, "estimate the depth", "-o", tmp_path / "s.png", "--checkpoint", ckpt,
                     "--task", "depth", "--steps", "1")
    assert one_line_error(rc, err) and "disk is full" in err, err
    assert list(tmp_path.glob("s.*")) == []


def test_written_normals_are_unit_vectors_or_zero(tmp_path):
    n = np.zeros((3, 4, 3), np.float32)
    n[..., 2] = 2.0
    n[0, 0] = np.nan
    n[1, 1] = 0.0
    paths = outputs.write_output_set(tmp_path / "o.png", np.zeros((3, 4, 3), np.uint8), Decoded(normals=n), "normals")
    saved = np.load(paths["normals"])
    norms = np.linalg.norm(saved, axis=2)
    assert np.isfinite(saved).all()
    assert np.allclose(norms[norms > 0], 1.0) and norms[0, 0] == 0 and norms[1, 1] == 0
    assert (norms > 0).sum() == 10


# ----------------------------------------------------------------------------- 12: router cache in run


def hashed_words(texts, dim=64):
    out = torch.zeros(len(texts), dim)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.encode()) % dim] += 1.0
    return out


def test_run_with_an_unwritable_router_cache_still_writes_and_says_so_once(ckpt, src, tmp_path, capsys,
                                                                          monkeypatch):
    from pixwizard.tasks.routing import TaskRouter

    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(PixWizardPipeline, "_build_router",
                        lambda self: TaskRouter(hashed_words, cache_dir=blocker / "pixwizard", max_iter=5))
    out = tmp_path / "o.png"
    rc, printed, err = run(capsys, src, "estimate the depth", "-o", out, "--checkpoint", ckpt, "--steps", "1")
    assert rc == 0 and out.is_file() and "task:" in printed, err
    assert err.count("router cache") == 1 and "cannot be written" in err

"""``pixwizard convert`` against the reference fixture made by the original PixWizard code
(../shared/reference/official-tiny: random tiny weights, one forward case, one sampler case;
its README gives the tolerances used here), plus the layouts and errors of the converter."""

from __future__ import annotations

import argparse
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pixwizard.checkpoint import load_model, read_info
from pixwizard.cli import main
from pixwizard.official.convert import convert
from pixwizard.official.safetensors_stream import TensorSpec, write_streaming
from pixwizard.official.sampling import official_time_grid, sample

FIXTURE = Path(__file__).parents[2] / "shared" / "reference" / "official-tiny"
FORWARD_ATOL, SAMPLE_ATOL = 2e-5, 1e-4  # the fixture README's suggested tolerances


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    assert (FIXTURE / "official_state_dict.safetensors").is_file(), f"reference fixture missing: {FIXTURE}"
    return FIXTURE


@pytest.fixture(scope="module")
def converted(fixture_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("conv") / "official-tiny.safetensors"
    assert main(["convert", str(fixture_dir), "-o", str(out)]) == 0
    return out


def _forward(model, c, **kw):
    with torch.no_grad():
        return model.dit(c["x"], c["t"], cond=c["cond"], text_tokens=c["cap_feats"], text_mask=c["cap_mask"].bool(),
                         text_pooled=c["cap_pooled_feats"], semantic=c["clip_tokens"], **kw)


def test_fixture_forward_case_matches_the_official_forward(converted, fixture_dir):
    model, info = load_model(converted)
    model = model.float()
    m = model.config.model
    assert (m.timestep_scale, m.cross_attn_rope_query, m.sampler_score_before_norm, m.rope_ntk, m.learn_sigma,
            m.train_tokens, m.sampler_keep, m.kv_heads) == (1.0, True, True, False, False, 100, 4, 2)
    c = load_file(fixture_dir / "forward_case.safetensors")
    kept = []
    hooks = [layer.sampler.register_forward_hook(lambda mod, args, sel: kept.append(sel)) for layer in model.dit.layers]
    out = _forward(model, c)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(out, c["out"], atol=FORWARD_ATOL, rtol=0)
    # the same semantic tokens kept in every block (items 0, 1; item 2 is a null image) and the same scores
    # up to the dead constant bias the converter drops
    for block, sel in enumerate(kept):
        want = c["debug.sampler_keep_idx"][block]
        assert torch.equal(sel.index[:2].sort(dim=-1).values, want[:2]), block
        shift = c["debug.sampler_scores"][block, :2] - sel.logits[:2]
        torch.testing.assert_close(shift, shift[:1, :1].expand_as(shift), atol=1e-4, rtol=0)
    # each official-behaviour switch is needed (the README's sensitivities: 1.76, 0.74, 3.84, 0.17)
    for layer in model.dit.layers:
        layer.attention.cross_rope_query = False
    assert (_forward(model, c) - c["out"]).abs().max() > 0.5
    for layer in model.dit.layers:
        layer.attention.cross_rope_query, layer.score_before_norm = True, False
    assert (_forward(model, c) - c["out"]).abs().max() > 0.2
    for layer in model.dit.layers:
        layer.score_before_norm = True
    model.dit.t_embedder.scale = 1000.0
    assert (_forward(model, c) - c["out"]).abs().max() > 0.5
    model.dit.t_embedder.scale = 1.0
    assert (_forward(model, c, attn_base_tokens=64) - c["out"]).abs().max() > 0.05
    torch.testing.assert_close(_forward(model, c), c["out"], atol=FORWARD_ATOL, rtol=0)


def test_fixture_sample_case_matches_the_official_sampler(converted, fixture_dir):
    model, _ = load_model(converted)
    model = model.float()
    c = load_file(fixture_dir / "sample_case.safetensors")
    meta = safe_open(str(fixture_dir / "sample_case.safetensors"), "pt").metadata()
    times = official_time_grid(int(meta["num_time_points"]), float(meta["time_shift"]))
    torch.testing.assert_close(times, c["t_grid"], atol=1e-7, rtol=0)

    def branches(x, t):
        return model.dit(x, t, cond=c["input_x"], text_tokens=c["cap_feats"], text_mask=c["cap_mask"].bool(),
                         text_pooled=c["cap_pooled_feats"], semantic=c["input_clip_x"],
                         attn_base_tokens=int(meta["base_seqlen"]))

    traj: list[torch.Tensor] = []
    with torch.no_grad():
        first = branches(c["z1"].repeat(3, 1, 1, 1), times[:1].expand(3))
        out = sample(branches, c["z1"], times, text_scale=float(meta["text_cfg_scale"]),
                     image_scale=float(meta["image_cfg_scale"]), guided_channels=3, trajectory=traj)
        all_channels = sample(branches, c["z1"], times, text_scale=4.0, image_scale=1.5)
    torch.testing.assert_close(first, c["debug.branch_out_first_step"], atol=FORWARD_ATOL, rtol=0)
    torch.testing.assert_close(torch.stack(traj), c["trajectory"], atol=SAMPLE_ATOL, rtol=0)
    torch.testing.assert_close(out, c["sample"], atol=SAMPLE_ATOL, rtol=0)
    assert (all_channels - c["sample"]).abs().max() > 1.0  # the exact-compat 3-channel guidance matters


def _release_folder(fixture_dir: Path, folder: Path, dtype=torch.float32, args: dict | None = None) -> Path:
    """The release layout (model_args.pth + consolidated_ema.00-of-01.pth) made from the fixture."""
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.to(dtype) for k, v in load_file(fixture_dir / "official_state_dict.safetensors").items()}
    torch.save(sd, folder / "consolidated_ema.00-of-01.pth")
    constructor = json.loads((fixture_dir / "model_args.json").read_text())["constructor"]
    ns = argparse.Namespace(model="PixWizard_tiny", vae="sdxl", **(args or constructor), base_seqlen=100)
    torch.save(ns, folder / "model_args.pth")
    return folder


@pytest.mark.parametrize("layout", ["release", "export"])
def test_release_and_export_layouts_convert_to_the_same_file(fixture_dir, converted, tmp_path, layout):
    folder = _release_folder(fixture_dir, tmp_path / "release")
    if layout == "export":
        state = torch.load(folder / "consolidated_ema.00-of-01.pth", weights_only=True)
        save_file(state, tmp_path / "release" / "sd.safetensors")
        (folder / "consolidated_ema.00-of-01.pth").unlink()
    out = tmp_path / "out.safetensors"
    convert(folder, out)
    a, b = load_file(out), load_file(converted)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("src_dtype,out_dtype,want", [(torch.float32, "bf16", torch.bfloat16),
                                                     (torch.bfloat16, "auto", torch.bfloat16),
                                                     (torch.float16, "fp32", torch.float32),
                                                     (torch.bfloat16, "fp16", torch.float16)])
def test_dtypes(fixture_dir, converted, tmp_path, src_dtype, out_dtype, want):
    folder = _release_folder(fixture_dir, tmp_path / "rel", dtype=src_dtype)
    out = tmp_path / "out.safetensors"
    convert(folder, out, dtype=out_dtype)
    got, ref = load_file(out), load_file(converted)
    assert {v.dtype for v in got.values()} == {want}
    for k in ref:  # the same tensors up to the rounding of the narrowest dtype on the way
        torch.testing.assert_close(got[k].float(), ref[k], atol=0.02 * ref[k].abs().max().item() + 1e-3, rtol=0.02)
    model, _ = load_model(out)  # loads (strict) whatever the dtype
    assert next(model.dit.parameters()).dtype == torch.float32


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_errors_are_one_line_and_nothing_else_is_unpickled(fixture_dir, tmp_path, capfd):
    out = tmp_path / "o.safetensors"

    def run(src) -> str:
        assert main(["convert", str(src), "-o", str(out)]) == 2
        err = capfd.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("pixwizard convert: error:"), err
        assert not out.exists()
        assert "pwned" not in capfd.readouterr().out
        return err

    partial = tmp_path / "partial"
    partial.mkdir()
    torch.save(argparse.Namespace(model="x"), partial / "model_args.pth")
    assert "no consolidated_ema.00-of-01.pth" in run(partial)

    evil = _release_folder(fixture_dir, tmp_path / "evil")
    with open(evil / "model_args.pth", "wb") as f:
        pickle.dump(Boom(), f)
    assert "refusing to unpickle" in run(evil)
    assert main(["convert", str(evil), "-o", str(out), "--ignore-args"]) == 0  # sizes from the tensors
    assert read_info(out).config.model.sampler_keep == 256 and "pwned" not in capfd.readouterr().out
    out.unlink()
    torch.save(argparse.Namespace(model="x"), evil / "model_args.pth")
    torch.save({"w": Boom()}, evil / "consolidated_ema.00-of-01.pth")
    assert "refusing to unpickle" in run(evil)

    trunc = _release_folder(fixture_dir, tmp_path / "trunc")
    data = (trunc / "consolidated_ema.00-of-01.pth").read_bytes()
    (trunc / "consolidated_ema.00-of-01.pth").write_bytes(data[: len(data) // 2])
    assert "not a readable torch file" in run(trunc)

    sd = load_file(fixture_dir / "official_state_dict.safetensors")
    for name, change in (("missing", lambda d: d.pop("layers.1.attention.wk.weight")),
                         ("unexpected", lambda d: d.__setitem__("layers.0.attention.extra", torch.zeros(2)))):
        bad = tmp_path / name
        bad.mkdir()
        d = dict(sd)
        change(d)
        save_file(d, bad / "official_state_dict.safetensors")
        (bad / "model_args.json").write_text((fixture_dir / "model_args.json").read_text())
        assert name in run(bad)

    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "consolidated_ema.00-of-02.pth").write_bytes(b"x")
    assert "model-parallel shards" in run(shards)


def test_streaming_writer_writes_what_save_file_writes(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {"b": torch.randn(3, 5, generator=g), "a": torch.randn(7, generator=g).bfloat16(),
               "c.d": torch.randn(2, 2, 2, generator=g).half()}
    specs = [TensorSpec(k, tuple(v.shape), v.dtype) for k, v in tensors.items()]
    produced = []

    def produce(spec):
        produced.append(spec.name)
        return tensors[spec.name].clone()

    write_streaming(tmp_path / "s.safetensors", specs, produce, {"k": "v"})
    assert produced == list(tensors)  # one at a time, in order
    back = load_file(tmp_path / "s.safetensors")
    assert all(torch.equal(back[k], v) for k, v in tensors.items()) and back.keys() == tensors.keys()
    assert safe_open(str(tmp_path / "s.safetensors"), "pt").metadata() == {"k": "v"}
    with pytest.raises(ValueError, match="declared"):
        write_streaming(tmp_path / "t.safetensors", specs, lambda s: torch.zeros(1), {})
    assert not (tmp_path / "t.safetensors").exists() and list(tmp_path.glob("*.tmp")) == []

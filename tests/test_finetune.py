"""pixwizard finetune: data checker, new-task registration, LoRA/full training, exact resume,
adapter files (load, select by name, merge), evaluation and the CLI, on the debug model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from finetune_support import isolated_registry, make_pairs, save_debug_base  # noqa: F401 (fixture)
from safetensors.torch import load_file

from pixwizard.checkpoint import load_model, save_model
from pixwizard.config import preset
from pixwizard.finetune import adapters
from pixwizard.finetune.config import FinetuneConfig, NewTaskConfig
from pixwizard.finetune.pairs import find_pairs, load_and_check, split_pairs
from pixwizard.imageio import save_image
from pixwizard.model.pixwizard import PixWizard
from pixwizard.tasks import registry

torch.set_num_threads(1)
TASK = NewTaskConfig("invert_tint", phrasings=("invert the tint", "undo the inverted tint", "make it a negative",
                                               "turn the negative back", "flip the colours back"))


@pytest.fixture
def base(tmp_path) -> Path:
    return save_debug_base(tmp_path / "base.safetensors")


def cfg(**kw) -> FinetuneConfig:
    opts = dict(task=TASK, rank=2, alpha=4, steps=4, batch_size=2, size=32, lr=1e-2, warmup_steps=0,
                checkpoint_every=2, precision="fp32", holdout=2)
    opts.update(kw)
    return FinetuneConfig(**opts)


# ----------------------------------------------------------------------------- data


def test_checker_reports_every_problem_and_refuses_a_broken_set(tmp_path):
    d = make_pairs(tmp_path / "pairs", n=3)
    save_image(d / "big_input.png", np.zeros((40, 40, 3), np.uint8))
    save_image(d / "big_target.png", np.zeros((32, 40, 3), np.uint8))
    (d / "bad_input.png").write_bytes(b"not an image")
    save_image(d / "bad_target.png", np.zeros((8, 8, 3), np.uint8))
    save_image(d / "lonely_input.png", np.zeros((8, 8, 3), np.uint8))
    for suffix in ("input", "target"):
        (d / f"zcopy_{suffix}.png").write_bytes((d / f"p00_{suffix}.png").read_bytes())
    (d / "p01.txt").write_text("a caption of its own\n")
    rep = load_and_check(d)
    assert sorted(p.name for p in rep.pairs) == ["p00", "p01", "p02"]
    assert [s.split(" ")[0] for s in rep.mismatched] == ["big"]
    assert [s.split(" ")[0] for s in rep.unreadable] == ["bad"]
    assert rep.missing_target == ["lonely"]
    assert [s.split(" ")[0] for s in rep.duplicates] == ["zcopy"]
    assert rep.instructions == ("invert the tint",)
    assert {p.name: p.instruction for p in rep.pairs}["p01"] == "a caption of its own"
    with pytest.raises(ValueError, match="--skip-bad"):
        rep.require_usable()
    rep.require_usable(skip_bad=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no usable pairs"):
        load_and_check(tmp_path / "empty").require_usable()


def test_manifest_and_split(tmp_path):
    d = make_pairs(tmp_path / "pairs", n=5)
    lines = [json.dumps({"input": f"pairs/p{i:02d}_input.png", "target": f"pairs/p{i:02d}_target.png",
                         "instruction": "invert"}) for i in range(5)]
    save_image(tmp_path / "mask.png", np.zeros((16, 16), np.uint8))
    lines.append(json.dumps({"input": "pairs/p00_input.png", "target": "pairs/p01_target.png", "mask": "mask.png"}))
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    refs, _ = find_pairs(tmp_path / "m.jsonl")
    assert len(refs) == 6 and refs[0].instruction == "invert" and refs[5].mask == tmp_path / "mask.png"
    rep = load_and_check(tmp_path / "m.jsonl")
    assert len(rep.mismatched) == 1 and "mask" in rep.mismatched[0]
    pairs = rep.pairs
    train, held = split_pairs(pairs, 0.4, seed=3)
    assert len(held) == 2 and len(train) == 3
    assert not {p.name for p in train} & {p.name for p in held}
    assert [p.name for p in split_pairs(pairs, 0.4, seed=3)[1]] == [p.name for p in held]
    for p, name in zip(pairs, ("a__1", "a__2", "b__1", "b__2", "c")):  # two crops of a, two of b, one of c
        p.name = name
    for seed in range(6):
        train, held = split_pairs(pairs, 2, seed)
        sources = lambda ps: {p.name.split("__")[0] for p in ps}  # noqa: E731
        assert not sources(train) & sources(held) and len(held) >= 2
    (tmp_path / "bad.jsonl").write_text('{"input": "x.png"}\n')
    with pytest.raises(ValueError, match="line 1"):
        find_pairs(tmp_path / "bad.jsonl")


# ----------------------------------------------------------------------------- tasks


def test_new_task_is_registered_for_phrasings_codec_and_routing():
    from pixwizard.finetune.tasks import register
    from pixwizard.tasks.codecs import codec_for
    from pixwizard.tasks.instructions import phrasings
    from pixwizard.tasks.routing import TaskRouter

    with pytest.raises(ValueError, match="shipped task"):
        register(NewTaskConfig("denoise", phrasings=("x",)))
    with pytest.raises(ValueError, match="codec"):
        NewTaskConfig("x_task", codec="nope", phrasings=("x",))
    spec = register(TASK)
    assert registry.get_task("invert_tint") == spec and codec_for("invert_tint").name == "image"
    assert set(phrasings("invert_tint", "all")) == set(TASK.phrasings)

    def embed(texts):  # a cheap deterministic sentence embedding: the lexical part does the work here
        return torch.ones(len(texts), 4)

    router = TaskRouter(embed, max_iter=30)
    assert "invert_tint" in router.tasks
    assert router.route("please make it a negative").task == "invert_tint"


# ----------------------------------------------------------------------------- training


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_lora_trains_only_the_adapter_and_resume_is_exact(tmp_path, base):
    from pixwizard.finetune.loop import finetune

    pairs = load_and_check(make_pairs(tmp_path / "pairs")).pairs
    straight = finetune(cfg(), base, pairs, tmp_path / "a")
    t = _tensors(straight.output)
    assert t and all(".lora_A." in k or ".lora_B." in k for k in t)
    assert any(float(v.abs().max()) > 0 for k, v in t.items() if ".lora_B." in k)  # B starts at 0: it trained
    assert straight.output.stat().st_size < 200_000
    meta = adapters.read_adapter_meta(straight.output)
    assert json.loads(meta["pixwizard_task"])["name"] == "invert_tint"
    assert json.loads(meta["lora"])["rank"] == 2
    # the base weights are untouched: the run's checkpoint holds only the adapter
    assert set(_tensors(straight.checkpoint / "model.safetensors")) == {
        k.replace(".weight", ".invert_tint.weight") for k in t}

    first = finetune(cfg(), base, pairs, tmp_path / "b", max_steps=2)
    assert first.step == 2 and first.stopped_by == "max_steps"
    with pytest.raises(ValueError, match="--resume"):
        finetune(cfg(), base, pairs, tmp_path / "b")
    with pytest.raises(ValueError, match="differs"):
        finetune(cfg(lr=5e-3), base, pairs, tmp_path / "b", resume=True)
    resumed = finetune(cfg(), base, pairs, tmp_path / "b", resume=True)
    assert resumed.step == 4
    again = _tensors(resumed.output)
    assert all(torch.equal(t[k], again[k]) for k in t)
    rows = [json.loads(ln) for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and rows[1]["cpu_s"] > rows[0]["cpu_s"] > 0  # CPU time adds up


def test_adapters_in_the_pipeline_select_by_name_and_merge(tmp_path, base):
    from pixwizard.finetune.loop import finetune
    from pixwizard.pipeline import PixWizardPipeline

    pairs = load_and_check(make_pairs(tmp_path / "pairs")).pairs
    one = finetune(cfg(), base, pairs, tmp_path / "a").output
    other = finetune(cfg(seed=1, adapter_name="second", lr=2e-2), base, pairs, tmp_path / "b").output
    img = load_and_check(tmp_path / "pairs").pairs[0].input
    pipe = PixWizardPipeline.from_pretrained(base, precision="fp32")

    def run(p):
        return p(img, "invert the tint", seed=0, task="invert_tint", decode=False).image.astype(int)

    registry.REGISTRY.pop("invert_tint", None)
    registry.CUSTOM_PHRASINGS.pop("invert_tint", None)
    assert pipe.load_adapter(one) == "invert_tint"
    assert "invert_tint" in registry.REGISTRY  # loading the adapter registered its task
    assert pipe.load_adapter(other) == "second"
    with_second = run(pipe)
    pipe.set_adapter("invert_tint")
    with_first = run(pipe)
    pipe.set_adapter(None)
    plain = run(pipe)
    fresh = PixWizardPipeline.from_pretrained(base, precision="fp32")
    assert np.array_equal(plain, run(fresh))  # adapters off = the base model exactly
    assert not np.array_equal(with_first, plain) and not np.array_equal(with_first, with_second)
    with pytest.raises(ValueError, match="no adapter named"):
        pipe.set_adapter("third")
    pipe.set_adapter("invert_tint")
    pipe.merge_adapter("invert_tint")
    assert not any(".lora_" in n for n, _ in pipe.model.named_parameters())
    assert np.abs(run(pipe) - with_first).max() <= 2  # merged weights: equal up to float rounding
    merged_path = tmp_path / "merged.safetensors"
    save_model(pipe.model, merged_path)
    load_model(merged_path)  # a plain PixWizard checkpoint again


def test_adapter_refuses_another_model_shape(tmp_path, base):
    from pixwizard.finetune.loop import finetune

    pairs = load_and_check(make_pairs(tmp_path / "pairs")).pairs
    out = finetune(cfg(steps=1), base, pairs, tmp_path / "a").output
    other = preset("debug")
    other.model.depth = 1
    with pytest.raises(ValueError, match="different model shape"):
        adapters.load_adapter(PixWizard(other), out)


def test_full_finetune_writes_a_model_that_carries_its_task(tmp_path, base):
    from pixwizard.finetune.loop import finetune
    from pixwizard.pipeline import PixWizardPipeline

    pairs = load_and_check(make_pairs(tmp_path / "pairs")).pairs
    res = finetune(cfg(mode="full", lr=1e-3), base, pairs, tmp_path / "full")
    assert res.output.name == "invert_tint.model.safetensors"
    model, info = load_model(res.output)
    base_model, _ = load_model(base)
    assert info.trained_samples == 100 + res.samples
    changed = [k for k, v in model.trainable_state_dict().items()
               if not torch.equal(v, base_model.trainable_state_dict()[k])]
    assert changed
    registry.REGISTRY.pop("invert_tint", None)
    registry.CUSTOM_PHRASINGS.pop("invert_tint", None)
    PixWizardPipeline.from_pretrained(res.output)
    assert "invert_tint" in registry.REGISTRY


# ----------------------------------------------------------------------------- evaluation and CLI


def test_heldout_scores_have_the_input_baseline(tmp_path, base):
    from pixwizard.finetune.evaluate import score_heldout
    from pixwizard.finetune.loop import finetune
    from pixwizard.finetune.report import write_report
    from pixwizard.pipeline import PixWizardPipeline

    pairs = load_and_check(make_pairs(tmp_path / "pairs")).pairs
    train, held = split_pairs(pairs, 2, 0)
    out = finetune(cfg(), base, train, tmp_path / "a").output
    pipe = PixWizardPipeline.from_pretrained(base, precision="fp32")
    name = pipe.load_adapter(out)
    s = score_heldout(pipe, held, "invert_tint", name, ("invert the tint",), seed=0)
    from pixwizard.eval.metrics.image import psnr
    assert s.means["input"]["psnr"] == pytest.approx(np.mean([psnr(p.input, p.target) for p in held]))
    assert set(s.means) == {"input", "before", "after"} and len(s.per_pair) == 2
    assert s.means["before"] != s.means["after"]
    report = write_report(tmp_path / "a", {"task": "invert_tint"}, s, None)
    assert "fine-tuned" in report.read_text() and (tmp_path / "a" / "before_after.png").is_file()


def test_the_curve_scores_what_the_export_holds_with_an_ema(tmp_path, base):
    from pixwizard.finetune.evaluate import score_checkpoints, score_heldout
    from pixwizard.finetune.loop import finetune
    from pixwizard.pipeline import PixWizardPipeline

    pairs = load_and_check(make_pairs(tmp_path / "pairs")).pairs
    train, held = split_pairs(pairs, 2, 0)
    out = finetune(cfg(ema_decay=0.5), base, train, tmp_path / "a").output
    pipe = PixWizardPipeline.from_pretrained(base, precision="fp32")
    name = pipe.load_adapter(out)
    texts = ("invert the tint",)
    exported = score_heldout(pipe, held, "invert_tint", name, texts, seed=0, before=False).means["after"]["psnr"]
    rows = score_checkpoints(pipe, name, tmp_path / "a", held, "invert_tint", texts, seed=0)
    assert rows[-1]["step"] == 4 and rows[-1]["psnr"] == pytest.approx(exported)  # the EMA, not the raw weights


def test_forgetting_on_a_small_suite(tmp_path, base):
    from pixwizard.finetune.evaluate import quick_suite_without, score_forgetting
    from pixwizard.finetune.loop import finetune
    from pixwizard.pipeline import PixWizardPipeline

    suite = {"name": "tiny", "kind": "generated", "tasks": ["denoise", "invert_tint"], "items_per_task": 1,
             "size": 32, "seed": 0, "split": "heldout", "photos": "builtin"}
    pairs = load_and_check(make_pairs(tmp_path / "pairs")).pairs
    out = finetune(cfg(), base, pairs, tmp_path / "a").output
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    assert quick_suite_without({"invert_tint"}, str(tmp_path / "suite.json")).tasks == ("denoise",)
    pipe = PixWizardPipeline.from_pretrained(base, precision="fp32")
    name = pipe.load_adapter(out)
    f = score_forgetting(pipe, name, tmp_path / "eval", limit=1, custom={"invert_tint"},
                         suite_name=str(tmp_path / "suite.json"))
    assert list(f.tasks) == ["denoise"] and f.tasks["denoise"]["metric"] == "psnr"
    assert f.tasks["denoise"]["before"] != f.tasks["denoise"]["after"]


def test_cli_check_train_report_and_run_with_the_adapter(tmp_path, base, capsys):
    from pixwizard.cli import main

    d = make_pairs(tmp_path / "pairs", n=6)
    save_image(d / "odd_input.png", np.zeros((40, 40, 3), np.uint8))
    save_image(d / "odd_target.png", np.zeros((32, 32, 3), np.uint8))
    args = ["finetune", str(d), "--task", "invert_tint", "--phrasing", "invert the tint", "--base", str(base),
            "--out", str(tmp_path / "run"), "--steps", "3", "--batch-size", "2", "--size", "32", "--rank", "2",
            "--precision", "fp32", "--holdout", "2", "--quick-limit", "0"]
    assert main(args) == 2
    assert "sizes differ" in capsys.readouterr().err
    assert main(["finetune", str(d), "--check-only"]) == 2
    assert main(args + ["--skip-bad", "--curve", "--checkpoint-every", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 training pair(s), 2 held out" in out and "| fine-tuned |" in out
    run = tmp_path / "run"
    assert (run / "invert_tint.safetensors").is_file() and (run / "before_after.png").is_file()
    report = json.loads((run / "report.json").read_text())
    assert set(report["heldout"]["means"]) == {"input", "before", "after"}
    curve = report["curve"]  # the kept checkpoints (keep_last 2); the last one is the exported adapter
    assert [r["step"] for r in curve] == [2, 3] and curve[1]["cpu_s"] > 0
    assert curve[1]["psnr"] == pytest.approx(report["heldout"]["means"]["after"]["psnr"])
    assert "Learning curve" in (run / "report.md").read_text()
    registry.REGISTRY.pop("invert_tint", None)
    registry.CUSTOM_PHRASINGS.pop("invert_tint", None)
    img = tmp_path / "in.png"
    save_image(img, np.full((32, 32, 3), 90, np.uint8))
    assert main(["run", str(img), "invert the tint", "-o", str(tmp_path / "o.png"), "--checkpoint", str(base),
                 "--adapter", str(run / "invert_tint.safetensors"), "--task", "invert_tint",
                 "--precision", "fp32"]) == 0
    assert "adapter: invert_tint" in capsys.readouterr().out and (tmp_path / "o.png").is_file()
    assert main(["run", str(img), "x", "--checkpoint", str(base), "--adapter-name", "nope"]) == 2


# ----------------------------------------------------------------------------- the worked example's data


def _photos(folder: Path, n: int = 3) -> Path:
    """Small colourful stand-ins for fetched photos (list_photos takes sides of 128 px and more)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:140, 0:160] / 160.0
    for i in range(n):
        a, b, c = rng.uniform(0.2, 1.0, 3)
        img = np.stack([a * xx + 0.1, b * yy + 0.2, c * (1 - xx) * (1 - yy) + 0.1], -1)
        save_image(folder / f"photo{i}.png", np.clip(img * 255, 0, 255).astype(np.uint8))
    return folder


def test_example_cast_look_is_deterministic_recoverable_and_its_task_loads(tmp_path):
    from pixwizard.finetune.example import colour_cast, main, make_example
    from pixwizard.data.photos import load_photo
    from pixwizard.finetune.tasks import register

    photos = _photos(tmp_path / "photos")
    outs = {}
    for name, look, seed in (("a", "cast", 0), ("b", "cast", 0), ("c", "cast", 1), ("s", "sepia", 0)):
        pairs = make_example(photos, tmp_path / name, n=3, size=32, seed=seed, crops=2, look=look)
        outs[name] = {p.name: load_photo(p) for p in sorted(pairs.glob("*.png"))}
    assert len(outs["a"]) == 12 and all(k.startswith("cast") for k in outs["a"])
    assert all(k.startswith("old") for k in outs["s"])
    assert outs["a"].keys() == outs["b"].keys()
    assert all(np.array_equal(outs["a"][k], outs["b"][k]) for k in outs["a"])  # deterministic per seed
    assert any(not np.array_equal(outs["a"][k], outs["c"][k]) for k in outs["a"] if k.endswith("input.png"))
    for k, x in outs["a"].items():
        if k.endswith("input.png"):
            t = outs["a"][k.replace("input", "target")]
            assert x.shape == t.shape and np.abs(x.astype(int) - t).mean() > 3  # the look changes the crop
    # the cast keeps the chroma (unlike sepia): nothing clips and every channel is only scaled and faded
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for seed in range(8):
        out = colour_cast(img, np.random.default_rng(seed)).astype(float)
        assert out.min() > 0 and out.max() < 255
        assert all(np.corrcoef(out[..., ch].ravel(), img[..., ch].ravel())[0, 1] > 0.9 for ch in range(3))

    task = NewTaskConfig.from_file(tmp_path / "a" / "task.json")
    assert task.name == "colour_cast_fix" and task.domain == "restoration" and task.codec == "image"
    assert len(task.phrasings) >= 8
    assert register(task) == registry.get_task("colour_cast_fix")
    assert NewTaskConfig.from_file(tmp_path / "s" / "task.json").name == "old_photo_restore"
    lines = (tmp_path / "a" / "pairs" / "instruction.txt").read_text().split("\n")
    assert set(filter(None, lines)) <= set(task.phrasings)
    with pytest.raises(ValueError, match="look"):
        make_example(photos, tmp_path / "x", n=3, size=32, look="nope")
    with pytest.raises(ValueError, match="fewer than"):
        make_example(photos, tmp_path / "x", n=4, size=32)
    assert main([str(photos), str(tmp_path / "cli"), "--n", "2", "--crops", "1", "--size", "32"]) == 0
    assert len(list((tmp_path / "cli" / "pairs").glob("cast*_input.png"))) == 2

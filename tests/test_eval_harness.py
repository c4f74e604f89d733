"""Evaluation harness: suites, predict + score + resume, reports, the `pixwizard eval` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pixwizard.cli import main as cli_main
from pixwizard.eval.harness import (BaselinePredictor, METRIC_ARGS, colour_position_accuracy, evaluate, metric_spec,
                                    prepare_run, read_png, score_run)
from pixwizard.eval.paper import paper_numbers
from pixwizard.eval.report import NA_PROTOCOL, render_markdown, write_report
from pixwizard.eval.suites import SuiteConfig, item_refs, item_streams, load_suite, suite_names
from pixwizard.tasks.registry import REGISTRY

torch.set_num_threads(1)

FEW_TASKS = ["denoise", "refseg_mask", "depth", "edit_remove", "inpaint_box", "t2i"]


def write_suite(tmp_path: Path, **overrides) -> Path:
    cfg = {"name": "mini", "kind": "generated", "tasks": FEW_TASKS, "items_per_task": 2, "size": 48, "seed": 3,
           "split": "heldout", "photos": "builtin"}
    cfg.update(overrides)
    path = tmp_path / "mini.json"
    path.write_text(json.dumps(cfg))
    return path


def test_every_task_has_metrics_with_inputs_and_appears_in_a_suite():
    suites = [load_suite(n) for n in suite_names()]
    covered = {t for s in suites for t in s.tasks}
    assert covered >= set(REGISTRY), sorted(set(REGISTRY) - covered)
    for s in suites:
        for task in s.tasks:
            metrics = s.task_metrics(task)
            assert metrics, (s.name, task)
            for m in metrics:
                metric_spec(m)  # known to the metric table or the harness
                assert m in METRIC_ARGS, f"the harness does not know what {m} compares"
    quick = load_suite("quick")
    assert set(quick.tasks) == set(REGISTRY)
    held, select = load_suite("world-heldout").world_seeds, load_suite("world-select").world_seeds
    assert min(held) >= 1_000_000_000 and (select[0] >= held[1] or select[1] <= held[0])  # disjoint scenes


def test_item_seeds_are_per_item_and_independent_of_limit():
    suite = load_suite("quick")
    full, limited = item_refs(suite), item_refs(suite, limit=1)
    by_key = {r.key: r for r in full}
    assert all(by_key[r.key] == r for r in limited)
    assert len({r.seed for r in full}) == len(full)
    assert item_streams(0, 5)[2] == item_streams(0, 5)[2] != item_streams(1, 5)[2]


def test_end_to_end_identity_and_report(tmp_path, capsys):
    suite_file = write_suite(tmp_path)
    out = tmp_path / "out"
    rc = cli_main(["eval", "--suite", str(suite_file), "--model", "baseline:identity", "--out", str(out),
                   "--limit", "1", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    run = out / "mini" / "baseline-identity"
    metrics = json.loads((run / "metrics.json").read_text())
    assert (run / "report.md").is_file() and (run / "grid.png").is_file()
    for task in ("denoise", "refseg_mask", "depth", "inpaint_box", "t2i"):
        r = metrics["tasks"][task]
        assert r["n_items"] == 1 and r["metrics"], task
        assert all(math.isfinite(v) for v in r["metrics"].values()), (task, r["metrics"])
    # identity on restoration scores the degraded input's own PSNR, computed here by hand
    item = run / "items" / "denoise" / "0000"
    inp, tgt = read_png(item / "input.png").astype(np.float64), read_png(item / "target.png").astype(np.float64)
    assert np.array_equal(read_png(item / "output.png"), inp.astype(np.uint8))
    by_hand = 10 * math.log10(255.0 ** 2 / np.mean((inp - tgt) ** 2))
    assert metrics["tasks"]["denoise"]["metrics"]["psnr"] == pytest.approx(by_hand, abs=1e-9)
    # the typed truth is stored; identity finds nothing to segment or depth to read
    assert (run / "items" / "depth" / "0000" / "truth_depth.npy").is_file()
    assert metrics["tasks"]["refseg_mask"]["metrics"]["ciou"] < 0.5
    record = json.loads((item / "item.json").read_text())
    assert record["instruction"] and isinstance(record["seed"], int)
    text = (run / "report.md").read_text()
    assert "## restoration" in text and NA_PROTOCOL in text

    # a second model into the same root shows up beside it in the report
    rc = cli_main(["eval", "--suite", str(suite_file), "--model", "baseline:auto", "--out", str(out),
                   "--limit", "1", "--no-progress"])
    assert rc == 0
    assert "baseline-identity" in (out / "mini" / "baseline-auto" / "report.md").read_text()


class CountingIdentity(BaselinePredictor):
    def __init__(self) -> None:
        super().__init__("identity")
        self.calls: list[str] = []

    def __call__(self, image, instruction, task, slots, seed):
        self.calls.append(task)
        return super().__call__(image, instruction, task, slots, seed)


class MosaicPredictor(BaselinePredictor):
    """Answers with one flat colour per ``block_size`` cell: a model whose patch grid shows."""

    def __init__(self, block: int = 8) -> None:
        super().__init__("identity", block_size=block)

    @property
    def tag(self) -> str:
        return f"mosaic-{self.block_size}"

    def __call__(self, image, instruction, task, slots, seed):
        import cv2

        h, w, b = image.shape[0], image.shape[1], self.block_size
        small = cv2.resize(image, (w // b, h // b), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST))


def test_blockiness_is_reported_for_every_task(tmp_path):
    suite = load_suite(write_suite(tmp_path, tasks=["denoise", "depth", "edit_remove", "canny"]))
    identity, _ = evaluate(suite, BaselinePredictor("identity"), tmp_path / "out" / "mini" / "identity",
                           progress=False)
    mosaic, _ = evaluate(suite, MosaicPredictor(), tmp_path / "out" / "mini" / "mosaic", progress=False)
    assert identity["block_size"] == mosaic["block_size"] == 8
    for task in suite.tasks:
        assert mosaic["tasks"][task]["blockiness"] > 10 * identity["tasks"][task]["blockiness"], task
        assert 0.5 < identity["tasks"][task]["blockiness"] < 2.0, task  # the inputs know no grid
        assert "blockiness" not in identity["tasks"][task]["metrics"]  # kept apart from the task's metrics
        assert mosaic["tasks"][task]["target_blockiness"] == identity["tasks"][task]["target_blockiness"] < 2.0
    per_item = json.loads((tmp_path / "out" / "mini" / "mosaic" / "item_scores.json").read_text())
    assert per_item["depth/0001"]["blockiness"] > 10
    text = write_report(tmp_path / "out" / "mini" / "mosaic").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| depth | blockiness (target "))
    assert f"| {mosaic['tasks']['depth']['blockiness']:.2f} |" in row  # ours, then the identity run beside it
    # a model whose token covers 16 px is measured on its own grid, recorded in run.json
    coarse, _ = evaluate(suite, MosaicPredictor(16), tmp_path / "coarse", progress=False)
    assert coarse["block_size"] == json.loads((tmp_path / "coarse" / "run.json").read_text())["block_size"] == 16
    assert coarse["tasks"]["denoise"]["blockiness"] > 10


def test_resume_regenerates_only_the_missing_output(tmp_path):
    suite = load_suite(write_suite(tmp_path, tasks=["denoise", "depth"]))
    run = tmp_path / "run"
    pred = CountingIdentity()
    first, stats = evaluate(suite, pred, run, progress=False)
    assert stats.predicted == 4 and len(pred.calls) == 4
    deleted = run / "items" / "depth" / "0001" / "output.png"
    stamps = {p: p.stat().st_mtime_ns for p in run.glob("items/*/*/*") if p != deleted}
    deleted.unlink()
    pred.calls.clear()
    again, stats = evaluate(suite, pred, run, progress=False)
    assert pred.calls == ["depth"] and stats.generated == 0 and stats.predicted == 1 and stats.reused == 3
    changed = [p for p, t in stamps.items() if p.stat().st_mtime_ns != t]
    assert changed == [] and deleted.is_file()
    assert again["tasks"] == first["tasks"]
    # a half-written item (no item.json) is generated again, deterministically
    item = run / "items" / "denoise" / "0000"
    before = read_png(item / "input.png")
    (item / "item.json").unlink()
    (item / "output.png").unlink()
    evaluate(suite, pred, run, progress=False)
    assert np.array_equal(read_png(item / "input.png"), before)
    # another suite config in the same folder is refused instead of mixed
    other = load_suite(write_suite(tmp_path, tasks=["denoise", "depth"], seed=4))
    with pytest.raises(ValueError, match="different configuration"):
        evaluate(other, pred, run, progress=False)


def test_degenerate_photo_items_are_redrawn_or_refused(tmp_path):
    """colorize on a grey photo: input == target, identity PSNR inf. The suite draws another photo,
    and with only grey photos the item fails with the reason instead of being scored."""
    import skimage.data

    from pixwizard.imageio import save_image

    colour, grey = tmp_path / "colour", tmp_path / "grey"
    for folder in (colour, grey):
        folder.mkdir()
    for i in range(2):
        save_image(grey / f"g{i}.png", np.repeat(skimage.data.camera()[:256, 200 * i:200 * i + 256, None], 3, axis=2))
    save_image(colour / "c.png", skimage.data.astronaut()[:256, :256])
    suite = load_suite(write_suite(tmp_path, tasks=["colorize"], items_per_task=6, photos="dirs"))
    (tmp_path / "mixed-photos").mkdir()
    for path in (grey / "g0.png", colour / "c.png"):
        (tmp_path / "mixed-photos" / path.name).write_bytes(path.read_bytes())
    metrics, stats = evaluate(suite, BaselinePredictor("identity"), tmp_path / "mixed",
                              photo_dirs=[str(tmp_path / "mixed-photos")], progress=False)
    assert stats.failed == {} and metrics["tasks"]["colorize"]["n_items"] == 6
    assert math.isfinite(metrics["tasks"]["colorize"]["metrics"]["psnr"])
    records = [json.loads(p.read_text()) for p in (tmp_path / "mixed").glob("items/colorize/*/item.json")]
    assert all(r["origin"]["photo"].endswith("c.png") for r in records)
    assert any(r["origin"].get("degenerate_redraws", 0) > 0 for r in records)  # a grey photo was drawn first
    metrics, stats = evaluate(suite, BaselinePredictor("identity"), tmp_path / "grey-only", photo_dirs=[str(grey)],
                              progress=False)
    assert len(stats.failed) == 6 and all("DegenerateItemError" in why for why in stats.failed.values())
    assert metrics["tasks"]["colorize"]["n_items"] == 0 and len(metrics["tasks"]["colorize"]["missing"]) == 6


def test_bad_suite_configs_give_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown task 'denoize'.*denoise"):
        load_suite(write_suite(tmp_path, tasks=["denoize"]))
    with pytest.raises(ValueError, match="unknown metric 'psnr2'"):
        load_suite(write_suite(tmp_path, metrics={"denoise": ["psnr2"]}))
    with pytest.raises(ValueError, match="unknown key"):
        load_suite(write_suite(tmp_path, itmes_per_task=3))
    with pytest.raises(ValueError, match="overlap the training seeds"):
        load_suite(write_suite(tmp_path, world_seeds=[0, 1000]))
    rc = cli_main(["eval", "--suite", str(write_suite(tmp_path, tasks=["denoize"])), "--model", "baseline:identity",
                   "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown task 'denoize'" in err and len(err.strip().splitlines()) == 1
    rc = cli_main(["eval", "--suite", "rain100l", "--model", "baseline:identity", "--out", str(tmp_path / "o")])
    assert rc == 2 and "--data-root" in capsys.readouterr().err
    rc = cli_main(["eval", "--suite", "nope", "--model", "baseline:identity", "--out", str(tmp_path / "o")])
    assert rc == 2 and "no suite 'nope'" in capsys.readouterr().err


def test_benchmark_suite_shows_paper_numbers_only_for_its_protocol(tmp_path):
    rng = np.random.default_rng(0)
    for i in (1, 2):
        clean = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        rainy = np.clip(clean.astype(int) + rng.integers(-30, 30, clean.shape), 0, 255).astype(np.uint8)
        from pixwizard.imageio import save_image

        save_image(tmp_path / "rain" / "test" / "rainy" / f"rain-{i:03d}.png", rainy)
        save_image(tmp_path / "rain" / "test" / "norain" / f"norain-{i:03d}.png", clean)
    suite = load_suite("rain100l")
    run = tmp_path / "out" / "rain100l" / "baseline-identity"
    metrics, _ = evaluate(suite, BaselinePredictor("identity"), run, data_root=tmp_path / "rain", progress=False)
    assert metrics["tasks"]["derain"]["n_items"] == 2
    text = write_report(run).read_text()
    assert "31.43" in text and NA_PROTOCOL not in text  # the paper's Rain100L PSNR, beside ours
    assert paper_numbers("rain100l", "derain")["psnr_y"] == 31.43  # colour space unstated: RGB and Y
    assert paper_numbers(None, "derain") == {}
    md = render_markdown({**metrics, "protocol": None}, {}, [])
    assert "31.43" not in md and NA_PROTOCOL in md


def test_faithfulness_is_one_for_the_truth_and_low_for_a_blank_canvas():
    inst = np.zeros((20, 20), np.int32)
    inst[2:8, 2:8], inst[10:18, 10:18] = 1, 2
    ref = np.full((20, 20, 3), 120, np.uint8)
    ref[inst == 1], ref[inst == 2] = (230, 25, 35), (30, 80, 230)
    assert colour_position_accuracy(ref, ref, inst, ["red", "blue"]) == 1.0
    swapped = ref.copy()
    swapped[inst == 1], swapped[inst == 2] = (30, 80, 230), (230, 25, 35)
    assert colour_position_accuracy(swapped, ref, inst, ["red", "blue"]) == 0.0
    assert colour_position_accuracy(np.full_like(ref, 255), ref, inst, ["red", "blue"]) < 1.0
    with pytest.raises(ValueError):
        colour_position_accuracy(ref, ref, np.zeros_like(inst), ["red", "blue"])


def test_world_control_items_score_faithfulness(tmp_path):
    suite = load_suite(write_suite(tmp_path, tasks=["seg_to_image"], items_per_task=1))
    metrics, _ = evaluate(suite, BaselinePredictor("identity"), tmp_path / "run", progress=False)
    r = metrics["tasks"]["seg_to_image"]
    assert set(r["metrics"]) == {"psnr", "ssim", "faithfulness"} and 0 <= r["metrics"]["faithfulness"] <= 1
    refs, _ = prepare_run(suite)
    item = tmp_path / "run" / "items" / refs[0].key
    target = read_png(item / "target.png")
    record = json.loads((item / "item.json").read_text())
    colours = [o["colour"] for o in record["meta"]["scene"]["objects"]]
    instances = np.load(item / "truth_instances.npy")
    assert colour_position_accuracy(target, target, instances, colours) == 1.0


def test_model_checkpoint_through_the_harness(tmp_path):
    from pixwizard.checkpoint import save_model
    from pixwizard.config import preset
    from pixwizard.model.pixwizard import PixWizard
    from pixwizard.pipeline import PixWizardPipeline

    torch.manual_seed(0)
    model = PixWizard(preset("debug"))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # open the zero-initialised paths: a new model's output ignores the noise
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    ckpt = tmp_path / "debug.safetensors"
    save_model(model, ckpt)
    suite_file = write_suite(tmp_path, tasks=["denoise", "refseg_mask"], items_per_task=2, size=32)
    out = tmp_path / "out"
    args = ["eval", "--suite", str(suite_file), "--model", str(ckpt), "--out", str(out), "--steps", "2",
            "--device", "cpu", "--no-progress"]
    assert cli_main(args) == 0
    run = out / "mini" / "model-debug-steps2"  # sampling options name the folder: runs never mix
    metrics = json.loads((run / "metrics.json").read_text())
    assert json.loads((run / "run.json").read_text())["untrained"] is True
    assert metrics["tasks"]["denoise"]["n_items"] == 2
    assert math.isfinite(metrics["tasks"]["denoise"]["metrics"]["psnr"])
    item = run / "items" / "denoise" / "0000"
    out1, inp = read_png(item / "output.png"), read_png(item / "input.png")
    assert out1.shape == inp.shape
    # the output is the pipeline's at the item's own seed, and another seed gives another output
    record = json.loads((item / "item.json").read_text())
    pipe = PixWizardPipeline.from_pretrained(ckpt, device="cpu")  # auto precision, as the harness
    with pytest.warns(UserWarning, match="untrained"):
        direct = {s: pipe(inp, record["instruction"], steps=2, seed=s, task="denoise", decode=False).image
                  for s in (record["seed"], record["seed"] + 1)}
    assert np.array_equal(direct[record["seed"]], out1)
    assert np.abs(direct[record["seed"] + 1].astype(int) - out1.astype(int)).max() > 2
    # same item seed -> same output, whatever else runs: rerun from scratch into another root with
    # one item per task only
    assert cli_main(args[:6] + [str(tmp_path / "out2")] + args[7:] + ["--limit", "1"]) == 0
    again = tmp_path / "out2" / "mini" / "model-debug-steps2" / "items" / "denoise"
    assert np.array_equal(read_png(again / "0000" / "output.png"), out1)
    assert not (again / "0001").exists()
    # another step count is another run beside it, not a reuse of these outputs
    assert cli_main(args[:8] + ["3"] + args[9:] + ["--limit", "1"]) == 0
    assert (out / "mini" / "model-debug-steps3" / "metrics.json").is_file()


def test_suite_dataclass_validation():
    with pytest.raises(ValueError, match="needs size"):
        SuiteConfig(name="x", kind="generated", tasks=("denoise",), size=None)
    with pytest.raises(ValueError, match="metric_options"):
        SuiteConfig(name="x", kind="generated", tasks=("denoise",), size=32,
                    metric_options={"denoise": {"miou": {}}})
    with pytest.raises(ValueError, match="native size"):
        SuiteConfig(name="x", kind="benchmark", tasks=("derain",), size=64, source="rain100l")


def test_paper_columns_only_where_benchmark_split_and_truth_match():
    """Every benchmark suite states the paper's protocol; one that differs (or that the paper
    leaves open) names no protocol, so no paper number is printed beside it (issue 10 item 5)."""
    from pixwizard.eval.paper import WITHHELD, protocols

    benchmark = [s for s in map(load_suite, suite_names()) if s.kind == "benchmark"]
    assert {s.name for s in benchmark} >= {"sidd", "nyuv2-normals", "magicbrush", "rain100l"}
    for s in benchmark:
        assert "Paper protocol:" in s.description, s.name
        assert s.protocol is None or (s.protocol in protocols() and s.protocol not in WITHHELD), s.name
        if s.protocol is None:
            assert "withheld" in s.description, s.name
    normals = load_suite("nyuv2-normals")
    assert normals.protocol is None and "DERIVED FROM THE DEPTH" in normals.description
    assert load_suite("magicbrush").protocol is None and load_suite("rain100l").protocol == "rain100l"
    metrics = {"suite": "nyuv2-normals", "protocol": None, "tasks": {"normals": {
        "domain": "dense", "n_items": 1, "metrics": {"mean_angle": 30.0}, "metric_order": ["mean_angle"],
        "higher_is_better": {"mean_angle": False}, "skipped": {}, "item_errors": {}, "missing": {}}}}
    md = render_markdown(metrics, {"suite_config": {"description": load_suite("nyuv2-normals").description}}, [])
    row = next(line for line in md.splitlines() if line.startswith("| normals | mean_angle |"))
    assert row.endswith(f"| {NA_PROTOCOL} |") and "19.65" not in row  # the description says why
    assert "DERIVED FROM THE DEPTH" in md and "Protocol: not the paper's" in md


def test_eval_size_option_makes_a_separate_run_at_that_size(tmp_path, capsys):
    from pixwizard.eval.suites import at_size

    suite_file = write_suite(tmp_path, tasks=["denoise", "sr_x4"])
    out = tmp_path / "out"
    assert cli_main(["eval", "--suite", str(suite_file), "--model", "baseline:identity", "--out", str(out),
                     "--limit", "1", "--size", "64", "--no-progress"]) == 0, capsys.readouterr().err
    run = out / "mini-64px" / "baseline-identity"
    assert read_png(run / "items" / "sr_x4" / "0000" / "input.png").shape == (64, 64, 3)
    assert json.loads((run / "metrics.json").read_text())["suite"] == "mini-64px"
    assert at_size(load_suite("quick"), None) == load_suite("quick") == at_size(load_suite("quick"), 96)
    with pytest.raises(ValueError, match="native size"):
        at_size(load_suite("rain100l"), 256)
    assert cli_main(["eval", "--suite", str(suite_file), "--model", "baseline:identity", "--out", str(out),
                     "--size", "100000"]) == 2
    assert "--size must be between 16 and 2048" in capsys.readouterr().err
    # photos too small for the size are left out rather than upscaled into soft targets
    import skimage.data

    from pixwizard.eval.suites import resolve_photos
    from pixwizard.imageio import save_image

    (tmp_path / "photos").mkdir()
    save_image(tmp_path / "photos" / "small.png", skimage.data.astronaut()[:160, :200])
    save_image(tmp_path / "photos" / "large.png", skimage.data.astronaut()[:300, :300])
    dirs = [str(tmp_path / "photos")]
    assert {p.name for p in resolve_photos(at_size(load_suite(suite_file), 128), dirs)} == {"small.png", "large.png"}
    assert [p.name for p in resolve_photos(at_size(load_suite(suite_file), 256), dirs)] == ["large.png"]
    with pytest.raises(FileNotFoundError, match="at least 512 px"):
        resolve_photos(at_size(load_suite(suite_file), 512), dirs)

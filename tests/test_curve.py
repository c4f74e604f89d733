"""Learning-curve ledger: eval summaries per domain, rows replaced by label and ordered by samples,
the markdown table and the plot, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from pixwizard.cli import main
from pixwizard.train.curve import add_row, draw_learning_curve, load_ledger, markdown_table, summarize_eval


def _eval_run(root: Path, suite: str, model: str, psnr: dict[str, float], block: float = 1.0) -> Path:
    run = root / suite / model
    run.mkdir(parents=True)
    tasks = {t: {"domain": "restoration" if t.startswith("de") else "editing", "metrics": {"psnr": v},
                 "blockiness": block} for t, v in psnr.items()}
    (run / "metrics.json").write_text(json.dumps({"suite": suite, "tasks": tasks}))
    return run


def test_summary_means_per_domain_and_leaves_out_infinite(tmp_path):
    run = _eval_run(tmp_path, "photo-restoration", "m", {"denoise": 20.0, "derain": 24.0, "dehaze": math.inf,
                                                         "edit_x": 10.0}, block=1.3)
    suite, s = summarize_eval(run)
    assert suite == "photo-restoration"
    assert s["restoration/psnr"] == pytest.approx(22.0) and s["restoration/psnr/n_inf"] == 1
    assert s["editing/psnr"] == 10.0 and s["blockiness/max"] == pytest.approx(1.3)
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        summarize_eval(tmp_path)


def test_rows_replace_by_label_and_sort_by_samples(tmp_path):
    ledger = {"rows": []}
    add_row(ledger, {"label": "b", "samples": 200, "cpu_hours": 2, "suites": {}})
    add_row(ledger, {"label": "a", "samples": 100, "cpu_hours": 1, "suites": {}})
    add_row(ledger, {"label": "b", "samples": 300, "cpu_hours": 3, "suites": {}})
    assert [(r["label"], r["samples"]) for r in ledger["rows"]] == [("a", 100), ("b", 300)]
    with pytest.raises(ValueError, match="cpu_hours"):
        add_row(ledger, {"label": "c", "samples": 1})


def test_cli_add_show_and_plot(tmp_path, capsys):
    ledger, png = tmp_path / "lc.json", tmp_path / "lc.png"
    for label, n, v in (("first", 1000, 18.0), ("second", 4000, 21.5)):
        run = _eval_run(tmp_path / label, "photo-restoration", "m", {"denoise": v, "style_x": v - 5})
        assert main(["curve", "add", str(run), "--label", label, "--samples", str(n), "--cpu-hours", "0.5",
                     "--ledger", str(ledger)] + (["--not-shipped"] if label == "second" else [])) == 0
    assert main(["curve", "show", "--ledger", str(ledger), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "| second | 4,000 | 0.50 | 21.50 |" in out
    img = Image.open(png)
    assert img.size == (900, 520) and len(img.getcolors(maxcolors=1 << 16) or ()) > 3  # something was drawn
    assert load_ledger(ledger)["rows"][0]["suites"]["photo-restoration"]["restoration/psnr"] == 18.0
    assert "first" in markdown_table(load_ledger(ledger))
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["curve", "show", "--ledger", str(bad)]) == 2
    with pytest.raises(ValueError, match="no headline"):
        draw_learning_curve({"rows": []}, png)


def test_rows_not_shipped_are_marked(tmp_path):
    ledger = tmp_path / "lc.json"
    run = _eval_run(tmp_path / "r", "photo-restoration", "m", {"denoise": 20.0})
    assert main(["curve", "add", str(run), "--label", "branch", "--samples", "10", "--cpu-hours", "1",
                 "--not-shipped", "--ledger", str(ledger)]) == 0
    assert load_ledger(ledger)["rows"][0]["shipped"] is False
    draw_learning_curve(load_ledger(ledger), tmp_path / "p.png")

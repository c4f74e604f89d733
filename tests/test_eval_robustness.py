"""`pixwizard eval` robustness (issue 10, item 19): temporary files of a killed run are removed by
the rerun, and one corrupt cached item is skipped and counted instead of aborting the eval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import torch

from pixwizard.eval.harness import BaselinePredictor, evaluate
from pixwizard.eval.suites import load_suite
from pixwizard.imageio import remove_dead_writers_temps
from test_eval_harness import write_suite

torch.set_num_threads(1)


def test_temps_of_dead_writers_go_and_live_ones_stay(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    items = tmp_path / "items" / "t" / "0000"
    items.mkdir(parents=True)
    stale = items / f".output.png.{dead.pid}.0a1b2c3d.tmp"
    live = items / f".output.png.{os.getpid()}.0a1b2c3d.tmp"
    other = items / "notes.tmp"  # not a writer's temp name: left alone
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    assert remove_dead_writers_temps(tmp_path) == [stale]
    assert live.exists() and other.exists() and not stale.exists()


def test_rerun_after_kill_removes_the_killed_runs_temp_file(tmp_path):
    suite_file = write_suite(tmp_path, tasks=["denoise"], items_per_task=1)
    run = tmp_path / "run"
    evaluate(load_suite(suite_file), BaselinePredictor("identity"), run, progress=False)
    # a writer killed with SIGKILL mid-file: its temporary file stays behind
    script = textwrap.dedent(f"""
        import os, signal
        from pixwizard.imageio import _atomic_write
        def die(f):
            f.write(b"half")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        _atomic_write({str(run / 'items' / 'denoise' / '0000' / 'output.png')!r}, die)
    """)
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -signal.SIGKILL
    assert len(list(run.rglob("*.tmp"))) == 1
    time.sleep(0.05)
    evaluate(load_suite(suite_file), BaselinePredictor("identity"), run, progress=False)
    assert list(run.rglob("*.tmp")) == []


def test_a_corrupt_cached_item_is_skipped_and_counted(tmp_path, capsys):
    from pixwizard.cli import main

    suite_file = write_suite(tmp_path, tasks=["denoise"], items_per_task=3)
    out = tmp_path / "out"
    assert main(["eval", "--suite", str(suite_file), "--model", "baseline:identity", "--out", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    run = next(out.glob("*/*"))
    item = run / "items" / "denoise" / "0001"
    (item / "output.png").write_bytes((item / "output.png").read_bytes()[:40])  # truncated prediction
    other = run / "items" / "denoise" / "0002"
    (other / "output.png").unlink()  # to be predicted again ...
    (other / "input.png").write_bytes(b"")  # ... from a damaged input
    rc = main(["eval", "--suite", str(suite_file), "--model", "baseline:identity", "--out", str(out),
               "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "1 failed" in captured.out and "corrupt cached item" in captured.err
    metrics = json.loads((run / "metrics.json").read_text())["tasks"]["denoise"]
    assert metrics["n_items"] == 1
    assert sorted(metrics["missing"]) == ["denoise/0001", "denoise/0002"]
    assert "corrupt cached item" in metrics["missing"]["denoise/0001"]

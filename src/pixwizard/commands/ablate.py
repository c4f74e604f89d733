"""``pixwizard ablate``: the paper's ablation at equal compute (train, evaluate, tabulate; resumable).

Example (the run in docs/ablations.md):

    pixwizard ablate --stage1-data D1 --stage2-data D2 --out ABL --budget 400

D1 is a balanced dataset (stage 1), D2 a weighted one with text-to-image 1:1 (stage 2), both from
``pixwizard data build``. Rerun the same command to resume; ``--table-only`` rewrites the table
from ``ABL/results.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pixwizard.commands import int_list_option


def register(sub) -> None:
    from pixwizard.ablation import VARIANTS

    p = sub.add_parser("ablate", help="train and evaluate the ablation variants at equal compute",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage1-data", help="balanced dataset directory (stage 1)")
    p.add_argument("--stage2-data", help="weighted dataset directory, text-to-image 1:1 (stage 2)")
    p.add_argument("--out", required=True, help="ablation folder (runs, evaluations, results.json, ablations.md)")
    p.add_argument("--budget", type=int, default=400, help="optimiser steps per variant (default 400)")
    p.add_argument("--batch-size", type=int, default=16, help="global batch per optimiser step (default 16)")
    p.add_argument("--resolution", type=int, default=64, help="training crop side in pixels (default 64)")
    p.add_argument("--model", default="tiny", help="model preset the variants change (default tiny)")
    p.add_argument("--seeds", default="0,1", help="seeds of the full model, comma-separated (default 0,1)")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated subset of: {', '.join(VARIANTS)} (full is required)")
    p.add_argument("--suite", default="ablation", help="evaluation suite (default: ablation)")
    p.add_argument("--limit", type=int, help="at most N evaluation items per task")
    p.add_argument("--minutes-per-run", type=float, help="stop each training run after this long (resume later)")
    p.add_argument("--any-mixture", action="store_true",
                   help="do not check that the stage datasets are balanced / weighted")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA when present)")
    p.add_argument("--table-only", action="store_true", help="only rewrite ablations.md from results.json")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pixwizard.ablation import AblationConfig, render_markdown, run_ablation
    from pixwizard.eval.harness import atomic_write_bytes

    out = Path(args.out)
    if args.table_only:
        path = out / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no results yet; run pixwizard ablate without --table-only first")
        atomic_write_bytes(out / "ablations.md", render_markdown(json.loads(path.read_text())).encode())
        print(f"wrote {out / 'ablations.md'}")
        return 0
    if not args.stage1_data or not args.stage2_data:
        raise ValueError("give --stage1-data and --stage2-data (datasets from pixwizard data build)")
    for d in (args.stage1_data, args.stage2_data):
        if not Path(d).is_dir():
            raise FileNotFoundError(f"{d}: no such dataset directory")
    seeds = int_list_option(args.seeds, "--seeds", "integers")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    cfg = AblationConfig(stage1_data=args.stage1_data, stage2_data=args.stage2_data, out=str(out),
                         budget=args.budget, batch_size=args.batch_size, resolution=args.resolution,
                         model=args.model, seeds=seeds, variants=tuple(v.strip() for v in args.variants.split(",")),
                         suite=args.suite, eval_limit=args.limit, check_mixture=not args.any_mixture,
                         device=args.device)
    results = run_ablation(cfg, minutes_per_run=args.minutes_per_run)
    if results["unfinished"]:
        print(f"unfinished runs (rerun to resume): {', '.join(results['unfinished'])}")
    print(f"wrote {out / 'results.json'} and {out / 'ablations.md'}")
    return 0

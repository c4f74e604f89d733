"""``pixwizard data``: build datasets from recipes, draw contact sheets, fetch source photos."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path


def _build(args: argparse.Namespace) -> int:
    from pixwizard.data.builder import build_dataset
    from pixwizard.data.recipe import DEFAULT_WORLD_SEEDS, load_recipe

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder (new, or one this recipe built)")
    recipe = load_recipe(args.recipe)
    changes: dict = {}
    if args.photos:
        changes["photo_dirs"] = tuple(args.photos)
    if args.textures is not None:
        changes["texture_dir"] = args.textures
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.split is not None and args.split != recipe.split:
        # a recipe pins its split's seed range; switching split switches to the other range
        changes.update(split=args.split, world_seeds=DEFAULT_WORLD_SEEDS[args.split])
    if changes:
        recipe = recipe.replace(**changes)
    t0 = time.perf_counter()
    if args.engine == "ray":
        if args.workers != 1:
            raise ValueError("--workers is for the local engine; Ray runs one shard per CPU of the cluster")
        from pixwizard.data.engine_ray import build_dataset_ray

        manifest = build_dataset_ray(recipe, Path(args.out), address=args.address, progress=not args.quiet)
    elif args.address:
        raise ValueError("--address needs --engine ray")
    else:
        manifest = build_dataset(recipe, Path(args.out), workers=args.workers, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    summary = {"out": str(args.out), "items": manifest["counts"]["items"], "shards": len(manifest["shards"]),
               "domains": manifest["counts"]["domains"], "skipped": manifest["skipped"]["events"],
               "engine": args.engine, "seconds": round(seconds, 2)}
    print(json.dumps(summary))
    return 0


def _show(args: argparse.Namespace) -> int:
    from pixwizard.data.contact import SheetStyle, make_contact_sheets

    sheets = make_contact_sheets(Path(args.dataset), Path(args.out), per_domain=args.per_domain,
                                 style=SheetStyle(cell=args.cell))
    for domain, path in sheets.items():
        print(f"{domain}: {path}")
    return 0


def _photos(args: argparse.Namespace) -> int:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise FileNotFoundError("fetching photos needs apt-get and dpkg (Debian/Ubuntu); put your own "
                                "photos in a folder and name it in the recipe's photo_dirs instead")
    from pixwizard.data.photos import fetch_photos, split_photos

    photos = fetch_photos(Path(args.dir))
    print(f"{len(photos)} photos in {args.dir}")
    if args.heldout_every:
        train, heldout = split_photos(photos, Path(args.dir), args.heldout_every)
        print(f"split: {len(train)} in {Path(args.dir) / 'train'}, {len(heldout)} held out in "
              f"{Path(args.dir) / 'heldout'} (every {args.heldout_every}th in sorted path order)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="build training data (recipes -> WebDataset shards)",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    b = sub.add_parser("build", help="build or resume a dataset from a recipe")
    b.add_argument("--recipe", default="smoke", help="recipe JSON file, or a packaged one: default, smoke")
    b.add_argument("--out", required=True, help="output folder (resumes if it holds the same build)")
    b.add_argument("--workers", type=int, default=1, help="worker processes (the output does not depend on it)")
    b.add_argument("--photos", action="append", help="photo folder (repeatable); overrides the recipe's")
    b.add_argument("--textures", help="texture folder for the 3D world; overrides the recipe's")
    b.add_argument("--seed", type=int, help="override the recipe seed")
    b.add_argument("--split", choices=("train", "heldout"), help="override the instruction/scene split")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local process pool, or one Ray task per shard (pip install 'pixwizard[ray]'; docs/ray.md)")
    b.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray runtime)")
    b.set_defaults(func=_build)

    s = sub.add_parser("show", help="contact sheets (one PNG per domain) of a built dataset")
    s.add_argument("dataset", help="a built dataset folder")
    s.add_argument("--out", required=True, help="folder for the sheets")
    s.add_argument("--per-domain", type=int, default=12, help="items per sheet")
    s.add_argument("--cell", type=int, default=128, help="image cell size in pixels")
    s.set_defaults(func=_show)

    p = sub.add_parser("photos", help="fetch real photos from Debian packages into a folder")
    p.add_argument("dir", help="destination folder")
    p.add_argument("--heldout-every", type=int, default=5, metavar="N",
                   help="link every Nth photo (sorted path order) into DIR/heldout and the rest into DIR/train "
                        "(default 5; 0: no split)")
    p.set_defaults(func=_photos)

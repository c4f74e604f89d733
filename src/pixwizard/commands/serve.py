"""``pixwizard serve``: the web UI and the REST API in one process that loads the model once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the web UI and the REST API (loads the model once)",
                       description="Serve the web UI (at /ui) and the REST API (POST /v1/run, GET /v1/tasks, "
                                   "GET /healthz, OpenAPI at /openapi.json) from one process.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--checkpoint", help="model checkpoint (.safetensors); default: the shipped pixwizard-tiny")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--queue", type=int, default=16, help="requests that may wait while one runs (429 beyond)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds a request may wait and run before it is cancelled (503)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body in MiB (413 above)")
    p.add_argument("--max-pixels", type=int, help="largest image in pixels (default: the model's limit)")
    p.add_argument("--results-dir", help="keep results here (default: a temporary folder, removed on exit)")
    p.add_argument("--no-ui", action="store_true", help="serve the REST API only")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pixwizard.serve.config import ServeConfig

    config = ServeConfig(host=args.host, port=args.port, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                         max_pixels=args.max_pixels, queue_size=args.queue, timeout_s=args.timeout,
                         results_dir=Path(args.results_dir) if args.results_dir else None)
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")
    from pixwizard.pipeline import UNTRAINED_WARNING, PixWizardPipeline
    from pixwizard.serve.api import create_app
    from pixwizard.serve.engine import Engine
    from pixwizard.serve.server import serve_forever

    pipe = PixWizardPipeline.from_pretrained(args.checkpoint, device=args.device, precision=args.precision)
    if pipe.untrained:
        print(f"warning: {UNTRAINED_WARNING}", file=sys.stderr)
    if pipe.notice:
        print(f"note: {pipe.notice}", file=sys.stderr)
    name = Path(args.checkpoint).stem if args.checkpoint else "pixwizard-tiny"
    with Engine(pipe, queue_size=config.queue_size, results_dir=config.results_dir, keep=config.keep_results) as engine:
        engine.route("remove the noise")  # fit or load the router now, not on the first request
        app = create_app(engine, config, ui=not args.no_ui, model_name=name)
        if not config.loopback:
            print(f"warning: serving on {config.host}, reachable from other machines; there is no authentication",
                  file=sys.stderr)
        shown = f"[{config.host}]" if ":" in config.host else config.host
        where = "" if args.no_ui else f"web UI http://{shown}:{config.port}/ui/ · "
        print(f"pixwizard serve: {where}API http://{shown}:{config.port}/v1/run (OpenAPI at /openapi.json) · "
              f"model {name} on {pipe.device}",
              file=sys.stderr)
        serve_forever(app, config.host, config.port)
    return 0

"""``pixwizard serve``: one process, one loaded model, a REST API and a web UI on one FastAPI app.

- ``config``:  ``ServeConfig``, the limits and the bind address (127.0.0.1 unless told otherwise).
- ``engine``:  ``Engine``, the single model worker behind a bounded queue (429 when full, 503
  when closed or timed out), step progress and cancellation, results written to a folder.
- ``api``:     the FastAPI app: ``POST /v1/run``, ``GET /v1/tasks``, ``GET /healthz``,
  ``GET /v1/results/{id}/{file}``, OpenAPI at ``/openapi.json``.
- ``ui``:      the Gradio Blocks mounted at ``/ui`` on the same app.
- ``server``:  run the app with uvicorn, in the foreground or in a thread (tests, bench).
- ``bench``:   ``pixwizard bench serve``, a bounded loopback load test.

All inference goes through :class:`pixwizard.pipeline.PixWizardPipeline`.
"""

"""Run the app with uvicorn: in the foreground (``pixwizard serve``) or in a thread (tests, bench)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import uvicorn


def _config(app, host: str, port: int, log_level: str) -> uvicorn.Config:
    # one process: the model is loaded once; keep-alive long enough for load-test clients
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, workers=1, timeout_keep_alive=30,
                          access_log=False)


def serve_forever(app, host: str, port: int, log_level: str = "info") -> None:
    uvicorn.Server(_config(app, host, port, log_level)).run()


@contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                    start_timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` in a daemon thread; yields the base URL (port 0 = a free port)."""
    server = uvicorn.Server(_config(app, host, port, log_level))
    thread = threading.Thread(target=server.run, name="pixwizard-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{host}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(10)

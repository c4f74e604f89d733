"""``ServeConfig``: the server's bind address and its limits, one typed place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeConfig:
    """Limits of ``pixwizard serve``.

    - ``host``/``port``: the bind address; loopback unless the user asks for another.
    - ``max_upload_bytes``: largest request body (413 above).
    - ``max_pixels``: largest image in pixels (413 above); ``None`` = the model's own limit.
    - ``queue_size``: requests that may wait while one runs (429 beyond).
    - ``timeout_s``: a request that has not finished after this long (waiting + running) is
      cancelled and answered 503.
    - ``max_steps``/``max_size``: upper bounds of the ``steps`` and ``size`` options (422 above).
    - ``results_dir``: where results are written (default: a new temporary folder);
      ``keep_results``: how many recent results stay there (older ones are deleted).
    """

    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int | None = None
    queue_size: int = 16
    timeout_s: float = 300.0
    max_steps: int = 100
    max_size: int = 2048
    results_dir: Path | None = None
    keep_results: int = 200

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "queue_size", "max_steps", "max_size", "keep_results"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ValueError(f"max_pixels must be at least 1, got {self.max_pixels}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in 0..65535, got {self.port}")

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK

"""What training shows while it runs: a progress bar (step, loss, samples/s, ETA) on the main
process, and optionally TensorBoard scalars (``pixwizard train --tensorboard DIR``; needs the
``tensorboard`` package, in the ``train`` extra).

The bar goes to stderr and moves every optimiser step; its loss and samples/s are those of the last
logged metrics line (``metrics.jsonl`` stays the record). tqdm turns it off where stderr is not a
terminal unless ``bar=True``. TensorBoard gets every numeric field of every metrics line under its
name (``loss``, ``loss/<task>``, ``lr``, ``grad_norm``, ``samples_per_s``) at the step it was logged.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


class TrainProgress:
    def __init__(self, total: int, initial: int = 0, *, enabled: bool = True, bar: bool | None = None,
                 tensorboard: str | Path | None = None) -> None:
        self.enabled = enabled
        self._bar = None
        self._tb = None
        if not enabled:
            return
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=initial, unit="step", desc="train", file=sys.stderr,
                         disable=None if bar is None else not bar, dynamic_ncols=True)
        if tensorboard is not None:
            self._tb = tensorboard_writer(tensorboard)

    def step(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def log(self, record: dict[str, Any]) -> None:
        """A metrics line: the bar's postfix and the TensorBoard scalars."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix({"stage": record.get("stage"), "loss": f"{record.get('loss', float('nan')):.4f}",
                                   "samples/s": f"{record.get('samples_per_s', 0.0):.1f}"}, refresh=False)
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                    self._tb.add_scalar(key, value, global_step=int(record["step"]))
            self._tb.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()


def tensorboard_writer(logdir: str | Path):
    """A ``SummaryWriter`` for ``logdir``, or a one-line error naming the missing package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("--tensorboard needs the tensorboard package: pip install 'pixwizard[train]' "
                         "(or pip install tensorboard)") from None
    Path(logdir).mkdir(parents=True, exist_ok=True)
    return SummaryWriter(log_dir=str(logdir))

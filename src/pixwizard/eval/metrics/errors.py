"""Errors shared by the metric modules."""

from __future__ import annotations


class MetricUnavailable(RuntimeError):
    """A metric cannot run here: its weights or library are not available locally.

    Harnesses catch this one error to mark a metric "skipped" with its message; every other
    exception is a real failure.
    """

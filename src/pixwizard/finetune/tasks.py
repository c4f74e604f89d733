"""A new task id from its small config, registered so routing, decoding and evaluation know it.

Registration adds a :class:`pixwizard.tasks.spec.TaskSpec` and its phrasings to the registry
(``pixwizard.tasks.registry.register_task``); routers built afterwards include the task (their
on-disk cache key covers the task list and the phrasings). The config travels in an adapter's or
a fine-tuned model's metadata under :data:`TASK_KEY`, so loading the file registers the task.
"""

from __future__ import annotations

import json

from pixwizard.finetune.config import NewTaskConfig
from pixwizard.tasks.registry import CUSTOM_PHRASINGS, REGISTRY, register_task
from pixwizard.tasks.spec import TaskSpec

TASK_KEY = "pixwizard_task"


def task_spec(cfg: NewTaskConfig) -> TaskSpec:
    return TaskSpec(id=cfg.name, domain=cfg.domain, title=cfg.title, source=cfg.source, codec=cfg.codec,
                    metrics=tuple(cfg.metrics))


def register(cfg: NewTaskConfig) -> TaskSpec:
    """Register ``cfg`` as a task (idempotent for the same config); returns its spec."""
    spec = task_spec(cfg)
    if spec.id in REGISTRY and spec.id not in CUSTOM_PHRASINGS:
        raise ValueError(f"task name {spec.id!r} is a shipped task: choose a new name for the fine-tuned task")
    register_task(spec, cfg.phrasings)
    return spec


def is_custom(task_id: str) -> bool:
    return task_id in CUSTOM_PHRASINGS


def task_metadata(cfg: NewTaskConfig) -> dict[str, str]:
    return {TASK_KEY: json.dumps(cfg.to_dict(), sort_keys=True)}


def register_from_metadata(meta: dict[str, str]) -> NewTaskConfig | None:
    """Register the task a file's metadata carries (if any); returns its config."""
    raw = meta.get(TASK_KEY)
    if not raw:
        return None
    cfg = NewTaskConfig.from_dict(json.loads(raw))
    register(cfg)
    return cfg

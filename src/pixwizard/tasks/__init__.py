"""Tasks as data: the TaskSpec registry, the instruction bank, target codecs and instruction routing.

- ``pixwizard.tasks.registry``: ``REGISTRY``, ``get_task``, ``tasks_by_domain`` (re-exported here);
- ``pixwizard.tasks.codecs``: ``CODECS``, ``get_codec``, ``codec_for``, ``Decoded``;
- ``pixwizard.tasks.instructions``: ``phrasings``, ``make_instruction``;
- ``pixwizard.tasks.routing``: ``TaskRouter``, ``Route``, ``default_router``;
- ``pixwizard.tasks.colours``: the named-colour table.
"""

from pixwizard.tasks.registry import REGISTRY, get_task, task_ids, tasks_by_domain
from pixwizard.tasks.spec import DOMAINS, TaskSpec

__all__ = ["DOMAINS", "REGISTRY", "TaskSpec", "get_task", "task_ids", "tasks_by_domain"]

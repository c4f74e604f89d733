"""``TaskSpec``: one task described as data (DESIGN section 5).

A task is never a code branch. Its spec says which domain it belongs to, which generator family
produces its triplets (``source``), which target codec turns the typed ground truth into the
target image and an output image back into typed results (``codec``, a key of
``pixwizard.tasks.codecs.CODECS``), which metrics score it (names understood by the evaluation
code), which instruction slots its phrasings use, and where its phrasings live in the
instruction bank (``bank_key``).

Slots: ``slots`` are required, every phrasing of the task uses all of them; ``optional_slots``
may appear in some phrasings (for example ``edit_recolor`` phrasings name a ``colour`` or a
``material``). Slot names are those of ``pixwizard.data.sample.SLOT_NAMES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pixwizard.data.sample import SLOT_NAMES

Domain = Literal["restoration", "grounding", "dense", "control", "editing", "inpainting", "t2i"]
Source = Literal["photo", "world"]

DOMAINS: tuple[str, ...] = ("restoration", "grounding", "dense", "control", "editing", "inpainting", "t2i")

# Share of the paper's 30M triplets per domain (DESIGN section 5); they sum to 0.99 as in the paper.
DOMAIN_PAPER_SHARE: dict[str, float] = {
    "restoration": 0.08,
    "grounding": 0.06,
    "dense": 0.15,
    "control": 0.14,
    "editing": 0.19,
    "inpainting": 0.09,
    "t2i": 0.28,
}


@dataclass(frozen=True)
class TaskSpec:
    """Everything the data, training, evaluation and inference code needs to know about one task.

    Fields:
    - ``id``: canonical task id (e.g. ``"deblur_motion"``).
    - ``domain``: one of ``DOMAINS``.
    - ``title``: short human-readable name.
    - ``source``: ``"photo"`` (real photos + synthetic degradations/edits) or ``"world"``
      (the procedural pybullet world).
    - ``codec``: name of the target codec in ``pixwizard.tasks.codecs.CODECS``.
    - ``metrics``: metric names, first one is the headline metric.
    - ``slots`` / ``optional_slots``: instruction slots (see module doc).
    - ``bank_key``: key of the task's phrasings in the instruction bank (the task id by default).
    - ``paper_share``: the share of the paper's training triplets of the task's *domain*.
    """

    id: str
    domain: Domain
    title: str
    source: Source
    codec: str
    metrics: tuple[str, ...]
    slots: tuple[str, ...] = ()
    optional_slots: tuple[str, ...] = ()
    bank_key: str = ""
    paper_share: float = 0.0

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"task {self.id!r}: unknown domain {self.domain!r}; expected one of {DOMAINS}")
        if self.source not in ("photo", "world"):
            raise ValueError(f"task {self.id!r}: source must be 'photo' or 'world', got {self.source!r}")
        bad = sorted(set(self.slots + self.optional_slots) - set(SLOT_NAMES))
        if bad:
            raise ValueError(f"task {self.id!r}: unknown slot(s) {bad}; allowed: {SLOT_NAMES}")
        both = sorted(set(self.slots) & set(self.optional_slots))
        if both:
            raise ValueError(f"task {self.id!r}: slot(s) {both} are both required and optional")
        if not self.metrics:
            raise ValueError(f"task {self.id!r}: at least one metric is needed")
        if not self.bank_key:
            object.__setattr__(self, "bank_key", self.id)
        if not self.paper_share:
            object.__setattr__(self, "paper_share", DOMAIN_PAPER_SHARE[self.domain])

    @property
    def all_slots(self) -> tuple[str, ...]:
        """Required slots followed by optional ones."""
        return self.slots + self.optional_slots

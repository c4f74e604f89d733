"""Referring expressions with a guaranteed unique referent, their evaluator and parser, and captions.

Grammar of an expression (``RefExpr.text``)::

    [size] [material] [colour] (shape | "object") [relation "the" <anchor expression>]
    relation = "left of" | "right of" | "in front of" | "behind"

Relations are judged from the camera's view: "left of" / "right of" compare the objects' projected
image columns (normalised to [0, 1], margin ``LATERAL_MARGIN``); "in front of" / "behind" compare
their camera depths (margin ``DEPTH_MARGIN`` metres; in front = closer to the camera). An expression
with a relation means "an object matching the attributes that stands in the relation to some object
matching the anchor".

``refer`` picks the minimal attribute set (the shape noun is always named; then fewest extra words,
preferring colour, then size, then material) that singles the object out; when attributes cannot,
it adds a relation to an anchor that attributes alone describe uniquely. Every result is verified
with ``evaluate``: it resolves to exactly the referent, or ``refer`` returns None.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pixwizard.data.world.scene import MATERIALS, OBJECT_COLOURS, SHAPES, SIZES, Scene, WorldObject

RELATIONS: tuple[str, ...] = ("left of", "right of", "in front of", "behind")
LATERAL_MARGIN = 0.04  # fraction of the image width
DEPTH_MARGIN = 0.3  # metres
_ATTRIBUTE_ORDER = ("size", "material", "colour")  # word order before the noun
_PREFERENCE = ("colour", "size", "material")  # which extra attribute to try first


@dataclass(frozen=True)
class RefExpr:
    """A referring expression; ``None`` attributes are unspecified (``shape=None`` reads "object")."""

    shape: str | None = None
    colour: str | None = None
    size: str | None = None
    material: str | None = None
    relation: str | None = None
    anchor: "RefExpr | None" = None

    def __post_init__(self) -> None:
        if (self.relation is None) != (self.anchor is None):
            raise ValueError("a relation needs an anchor and vice versa")
        if self.relation is not None and self.relation not in RELATIONS:
            raise ValueError(f"unknown relation {self.relation!r}; known: {RELATIONS}")

    @property
    def text(self) -> str:
        """Without a leading article, e.g. ``"small red cube left of the blue sphere"``."""
        words = [getattr(self, a) for a in _ATTRIBUTE_ORDER if getattr(self, a) is not None]
        words.append(self.shape or "object")
        if self.relation is not None:
            words += [self.relation, "the", self.anchor.text]  # type: ignore[union-attr]
        return " ".join(words)

    @property
    def n_words(self) -> int:
        return len(self.text.split())

    def matches(self, obj: WorldObject) -> bool:
        """Attribute match only (the relation is checked by ``evaluate``)."""
        return all(getattr(self, a) is None or getattr(self, a) == getattr(obj, a)
                   for a in ("shape", "colour", "size", "material"))


def view_positions(scene: Scene) -> np.ndarray:
    """Nx2 (normalised image column in [0, 1] of the object's centre, camera depth in metres)."""
    from pixwizard.data.world.render import project  # local: render imports pybullet

    if not scene.objects:
        return np.zeros((0, 2))
    centres = np.array([[o.x, o.y, o.half_size] for o in scene.objects])
    uvz = project(scene.camera, 1, centres)
    return uvz[:, [0, 2]]


def relation_holds(relation: str, target: np.ndarray, anchor: np.ndarray) -> bool:
    """``target`` and ``anchor`` are rows of ``view_positions``."""
    if relation == "left of":
        return bool(target[0] < anchor[0] - LATERAL_MARGIN)
    if relation == "right of":
        return bool(target[0] > anchor[0] + LATERAL_MARGIN)
    if relation == "in front of":
        return bool(target[1] < anchor[1] - DEPTH_MARGIN)
    if relation == "behind":
        return bool(target[1] > anchor[1] + DEPTH_MARGIN)
    raise ValueError(f"unknown relation {relation!r}; known: {RELATIONS}")


def evaluate(expr: RefExpr, scene: Scene, positions: np.ndarray | None = None) -> list[int]:
    """Indices of the scene objects the expression describes."""
    pos = view_positions(scene) if positions is None else positions
    found = [i for i, o in enumerate(scene.objects) if expr.matches(o)]
    if expr.relation is None:
        return found
    anchors = evaluate(expr.anchor, scene, pos)  # type: ignore[arg-type]
    return [i for i in found if any(a != i and relation_holds(expr.relation, pos[i], pos[a]) for a in anchors)]


def _attribute_exprs(obj: WorldObject) -> list[RefExpr]:
    """Expressions naming ``obj``'s shape plus 0..3 further attributes, fewest attributes first."""
    out = []
    for k in range(len(_PREFERENCE) + 1):
        for combo in itertools.combinations(_PREFERENCE, k):
            out.append(RefExpr(shape=obj.shape, **{a: getattr(obj, a) for a in combo}))
    return out


def unique_attribute_expr(scene: Scene, index: int) -> RefExpr | None:
    """The minimal attribute-only expression that resolves to exactly ``index``; None if none does."""
    for expr in _attribute_exprs(scene.objects[index]):
        if evaluate(expr, scene) == [index]:
            return expr
    return None


def refer(scene: Scene, index: int, anchors_allowed: Sequence[bool] | None = None) -> RefExpr | None:
    """A referring expression that resolves to exactly object ``index`` (see the module docstring).

    ``anchors_allowed[j]`` False excludes object j as an anchor (e.g. when it is hardly visible).
    """
    if not 0 <= index < len(scene.objects):
        raise ValueError(f"object index {index} out of range for {len(scene.objects)} objects")
    direct = unique_attribute_expr(scene, index)
    if direct is not None:
        return direct
    pos = view_positions(scene)
    best: RefExpr | None = None
    for j in range(len(scene.objects)):
        if j == index or (anchors_allowed is not None and not anchors_allowed[j]):
            continue
        anchor = unique_attribute_expr(scene, j)
        if anchor is None:
            continue
        for relation in RELATIONS:
            if not relation_holds(relation, pos[index], pos[j]):
                continue
            for base in _attribute_exprs(scene.objects[index]):
                expr = RefExpr(shape=base.shape, colour=base.colour, size=base.size, material=base.material,
                               relation=relation, anchor=anchor)
                if evaluate(expr, scene, pos) == [index]:
                    if best is None or expr.n_words < best.n_words:
                        best = expr
                    break
    return best


def parse(text: str) -> RefExpr:
    """Inverse of ``RefExpr.text`` (a leading "the" is allowed). Raises ValueError on other wording."""
    words = text.strip().lower().split()
    if words[:1] == ["the"]:
        words = words[1:]
    for k in range(len(words)):
        for relation in RELATIONS:
            rel = relation.split()
            if words[k:k + len(rel)] == rel and words[k + len(rel):k + len(rel) + 1] == ["the"]:
                head = _parse_simple(words[:k], text)
                anchor = parse(" ".join(words[k + len(rel) + 1:]))
                return RefExpr(shape=head.shape, colour=head.colour, size=head.size, material=head.material,
                               relation=relation, anchor=anchor)
    return _parse_simple(words, text)


def _parse_simple(words: list[str], text: str) -> RefExpr:
    if not words:
        raise ValueError(f"cannot parse referring expression {text!r}: no noun")
    noun, adjectives = words[-1], words[:-1]
    if noun not in SHAPES and noun != "object":
        raise ValueError(f"cannot parse referring expression {text!r}: unknown noun {noun!r}")
    fields: dict[str, str] = {}
    vocab = {"size": tuple(SIZES), "material": MATERIALS, "colour": OBJECT_COLOURS}
    for w in adjectives:
        kind = next((k for k, values in vocab.items() if w in values), None)
        if kind is None or kind in fields:
            raise ValueError(f"cannot parse referring expression {text!r}: unexpected word {w!r}")
        fields[kind] = w
    return RefExpr(shape=None if noun == "object" else noun, **fields)


def object_phrase(obj: WorldObject) -> str:
    """``"a large shiny green sphere"`` (matte is left unsaid)."""
    words = [obj.size] + (["shiny"] if obj.material == "shiny" else []) + [obj.colour, obj.shape]
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def caption(scene: Scene) -> str:
    """``"a large green sphere and a small red cube on a wooden floor in front of a brick wall"``;
    objects listed left to right as seen from the camera."""
    pos = view_positions(scene)
    order = np.argsort(pos[:, 0], kind="stable") if len(scene.objects) else []
    phrases = [object_phrase(scene.objects[i]) for i in order]
    if not phrases:
        things = "nothing"
    elif len(phrases) == 1:
        things = phrases[0]
    else:
        things = ", ".join(phrases[:-1]) + " and " + phrases[-1]
    g, w = scene.background.ground.name, scene.background.wall.name
    return f"{things} on {_a(g)} {g} floor in front of {_a(w)} {w} wall"


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


"""Scene graph of the procedural 3D world, and its seeded sampler.

Conventions (used by every module of ``pixwizard.data.world``):
- World frame: metres, right-handed, ``z`` up; the ground is the plane ``z = 0``.
- Every object stands on the ground; ``(x, y)`` is the centre of its footprint and ``yaw`` its
  rotation about ``z`` in radians.
- The camera orbits ``target``: ``azimuth`` and ``elevation`` in degrees give the direction from the
  target to the eye (azimuth 0 = +x, counter-clockwise seen from above; elevation above the ground);
  ``fov`` is the vertical field of view in degrees; images are square.
- ``Light.direction`` is a unit vector in the world frame pointing *towards* the light (a directional
  light, like the sun); ``colour`` is linear RGB in [0, 1]; ``ambient`` and ``diffuse`` are the
  shading coefficients; ``shadow`` switches cast shadows on.
- The back wall stands ``WALL_DISTANCE`` metres behind the target, facing the camera, so the
  background is always the textured ground and wall.

All dataclasses are frozen: edits build new scenes with ``dataclasses.replace``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from pixwizard.tasks.colours import colour_names

SHAPES: tuple[str, ...] = ("cube", "sphere", "cylinder", "capsule", "cone", "torus", "pyramid")
"""Shape classes; semantic class id of a shape = its index + 1 (0 = ground, wall and sky)."""

OBJECT_COLOURS: tuple[str, ...] = tuple(c for c in colour_names() if c != "pink")
"""Colour names objects may take (the shared table in ``pixwizard.tasks.colours``)."""

SIZES: dict[str, float] = {"small": 0.22, "large": 0.38}
"""Size word -> characteristic half-size ``s`` in metres (a cube of size ``s`` has half-extent ``s``)."""

MATERIALS: tuple[str, ...] = ("matte", "shiny")

# Footprint radius of each shape in units of the half-size ``s`` (used for collision-free placement).
FOOTPRINT: dict[str, float] = {"cube": math.sqrt(2.0), "sphere": 1.0, "cylinder": 0.85, "capsule": 0.6,
                               "cone": 1.0, "torus": 1.05, "pyramid": math.sqrt(2.0)}

PROCEDURAL_TEXTURES: tuple[str, ...] = ("checkered", "wooden", "brick", "tiled", "speckled", "stone")
"""Procedural texture kinds (``pixwizard.data.world.textures``); the kind is also the caption word."""

TEXTURE_VARIANTS = 8  # procedural variants per kind (bounded, so the texture cache stays small)
WALL_DISTANCE = 3.2  # metres from the target to the back wall
OBJECT_GAP = 0.08  # minimum clearance between object footprints, metres


@dataclass(frozen=True)
class WorldObject:
    """One object standing on the ground."""

    shape: str
    colour: str
    size: Literal["small", "large"]
    material: Literal["matte", "shiny"]
    x: float
    y: float
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; known: {SHAPES}")
        if self.colour not in OBJECT_COLOURS:
            raise ValueError(f"unknown object colour {self.colour!r}; known: {OBJECT_COLOURS}")
        if self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; known: {tuple(SIZES)}")
        if self.material not in MATERIALS:
            raise ValueError(f"unknown material {self.material!r}; known: {MATERIALS}")

    @property
    def half_size(self) -> float:
        return SIZES[self.size]

    @property
    def radius(self) -> float:
        """Footprint radius in metres."""
        return FOOTPRINT[self.shape] * self.half_size

    @property
    def noun_phrase(self) -> str:
        """Full description, e.g. ``"large shiny red cube"``."""
        return f"{self.size} {self.material} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Camera:
    azimuth: float  # degrees
    elevation: float  # degrees, > 0
    distance: float  # metres from target to eye
    fov: float  # vertical field of view, degrees
    target: tuple[float, float, float] = (0.0, 0.0, 0.25)
    near: float = 0.1
    far: float = 30.0

    @property
    def eye(self) -> np.ndarray:
        az, el = math.radians(self.azimuth), math.radians(self.elevation)
        offset = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        return np.asarray(self.target, dtype=np.float64) + self.distance * offset

    @property
    def right_ground(self) -> np.ndarray:
        """Unit vector on the ground pointing to the image's right."""
        az = math.radians(self.azimuth)
        return np.array([-math.sin(az), math.cos(az), 0.0])

    @property
    def toward_ground(self) -> np.ndarray:
        """Unit vector on the ground pointing from the target towards the camera (the image's front)."""
        az = math.radians(self.azimuth)
        return np.array([math.cos(az), math.sin(az), 0.0])


@dataclass(frozen=True)
class Light:
    direction: tuple[float, float, float]  # unit, world frame, towards the light
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 0.5
    diffuse: float = 0.55
    shadow: bool = True


@dataclass(frozen=True)
class Texture:
    """A ground or wall texture: a photo (``path``) or a procedural kind with a variant number."""

    name: str  # the caption word(s), e.g. "wooden" or "aloe-patterned"
    kind: str  # a PROCEDURAL_TEXTURES entry, or "photo"
    variant: int = 0
    path: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "photo":
            if self.path is None:
                raise ValueError("a photo texture needs a path")
        elif self.kind not in PROCEDURAL_TEXTURES:
            raise ValueError(f"unknown texture kind {self.kind!r}; known: {PROCEDURAL_TEXTURES + ('photo',)}")


@dataclass(frozen=True)
class Background:
    ground: Texture
    wall: Texture

    @property
    def phrase(self) -> str:
        """``"a wooden floor and a brick wall"``."""
        return f"{_article(self.ground.name)} {self.ground.name} floor and {_article(self.wall.name)} {self.wall.name} wall"


@dataclass(frozen=True)
class Scene:
    objects: tuple[WorldObject, ...]
    camera: Camera
    light: Light
    background: Background

    def with_objects(self, objects: Sequence[WorldObject]) -> "Scene":
        return replace(self, objects=tuple(objects))


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def photo_texture(path: Path | str) -> Texture:
    """A texture from an image file; its caption name comes from the file stem."""
    p = Path(path)
    words = " ".join(p.stem.replace("_", " ").replace("-", " ").split()) or "photo"
    return Texture(name=f"{words}-patterned", kind="photo", path=str(p))


def sample_texture(rng: np.random.Generator, textures: Sequence[Path] | None) -> Texture:
    """A photo texture from ``textures`` when given (non-empty), else a procedural one."""
    if textures:
        return photo_texture(textures[int(rng.integers(len(textures)))])
    kind = PROCEDURAL_TEXTURES[int(rng.integers(len(PROCEDURAL_TEXTURES)))]
    return Texture(name=kind, kind=kind, variant=int(rng.integers(TEXTURE_VARIANTS)))


def sample_background(rng: np.random.Generator, textures: Sequence[Path] | None) -> Background:
    ground = sample_texture(rng, textures)
    wall = sample_texture(rng, textures)
    return Background(ground=ground, wall=wall)


def sample_camera(rng: np.random.Generator) -> Camera:
    return Camera(azimuth=float(rng.uniform(0.0, 360.0)), elevation=float(rng.uniform(18.0, 45.0)),
                  distance=float(rng.uniform(4.0, 5.5)), fov=float(rng.uniform(40.0, 55.0)))


def sample_light(rng: np.random.Generator, camera: Camera) -> Light:
    """A light from the camera's side of the scene (so the visible faces are lit), varied colour."""
    az = math.radians(camera.azimuth + rng.uniform(-80.0, 80.0))
    el = math.radians(rng.uniform(35.0, 70.0))
    direction = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
    warmth = float(rng.uniform(-0.15, 0.15))
    colour = (min(1.0, 1.0 + warmth), 1.0, min(1.0, 1.0 - warmth))
    return Light(direction=direction, colour=colour, ambient=float(rng.uniform(0.4, 0.6)),
                 diffuse=float(rng.uniform(0.45, 0.65)), shadow=True)


def placement_bounds(camera: Camera) -> tuple[float, float, float]:
    """(lateral half-width, depth min, depth max) of the area where objects may stand, in the camera's
    ground frame (lateral along ``right_ground``, depth along ``toward_ground``), so that they are in view."""
    half_view = camera.distance * math.tan(math.radians(camera.fov) / 2.0)
    lateral = min(1.6, 0.72 * half_view)
    return lateral, -1.3, 1.3


def to_ground(camera: Camera, lateral: float, depth: float) -> tuple[float, float]:
    """World (x, y) of a point given in the camera's ground frame."""
    p = lateral * camera.right_ground + depth * camera.toward_ground
    return float(p[0] + camera.target[0]), float(p[1] + camera.target[1])


def from_ground(camera: Camera, x: float, y: float) -> tuple[float, float]:
    """Camera ground frame (lateral, depth) of a world point (x, y); inverse of ``to_ground``."""
    d = np.array([x - camera.target[0], y - camera.target[1], 0.0])
    return float(d @ camera.right_ground), float(d @ camera.toward_ground)


def fits(obj: WorldObject, others: Sequence[WorldObject], camera: Camera) -> bool:
    """True when ``obj`` stands inside the placement area and clear of every object in ``others``."""
    lat_max, d_min, d_max = placement_bounds(camera)
    lat, dep = from_ground(camera, obj.x, obj.y)
    if abs(lat) > lat_max or not d_min <= dep <= d_max:
        return False
    return all(math.hypot(obj.x - o.x, obj.y - o.y) >= obj.radius + o.radius + OBJECT_GAP for o in others)


def random_object(rng: np.random.Generator, others: Sequence[WorldObject], camera: Camera,
                  tries: int = 60) -> WorldObject | None:
    """A random object placed clear of ``others`` inside the view; None when no free spot was found."""
    lat_max, d_min, d_max = placement_bounds(camera)
    for _ in range(tries):
        x, y = to_ground(camera, float(rng.uniform(-lat_max, lat_max)), float(rng.uniform(d_min, d_max)))
        obj = WorldObject(shape=SHAPES[int(rng.integers(len(SHAPES)))],
                          colour=OBJECT_COLOURS[int(rng.integers(len(OBJECT_COLOURS)))],
                          size=("small", "large")[int(rng.integers(2))],
                          material=MATERIALS[int(rng.integers(len(MATERIALS)))],
                          x=x, y=y, yaw=float(rng.uniform(0.0, 2.0 * math.pi)))
        if fits(obj, others, camera):
            return obj
    return None


def sample_scene(rng: np.random.Generator, textures: Sequence[Path] | None = None,
                 n_objects: tuple[int, int] = (2, 6)) -> Scene:
    """A random scene with ``n_objects[0]..n_objects[1]`` (inclusive) non-overlapping objects.

    Raises ValueError for an empty or inverted range. Fewer objects are placed only when the area is
    full (the lower bound is always met for the default sizes).
    """
    lo, hi = n_objects
    if lo < 1 or hi < lo:
        raise ValueError(f"n_objects must be 1 <= lo <= hi, got {n_objects}")
    camera = sample_camera(rng)
    light = sample_light(rng, camera)
    background = sample_background(rng, textures)
    objects: list[WorldObject] = []
    for _ in range(int(rng.integers(lo, hi + 1))):
        obj = random_object(rng, objects, camera)
        if obj is not None:
            objects.append(obj)
    if len(objects) < lo:
        raise ValueError(f"could not place {lo} objects in the view")
    return Scene(objects=tuple(objects), camera=camera, light=light, background=background)


def scene_to_dict(scene: Scene) -> dict:
    """JSON-able description of a scene (for ``Sample.meta``)."""
    from dataclasses import asdict

    return asdict(scene)

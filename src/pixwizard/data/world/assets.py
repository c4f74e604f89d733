"""Files the renderer loads: generated meshes (.obj) and texture images (.png), cached on disk.

- Meshes are written once per cache folder: unit sphere, cylinder, capsule, cone, torus and pyramid with their base on
  ``z = 0`` (scaled per object with pybullet's ``meshScale``), and a unit quad with UVs for the
  ground and the wall.
- Procedural textures are 256x256 RGB images generated deterministically from ``(kind, variant)``.
- Photo textures are re-encoded as 256x256 PNG (centre crop) so big wallpapers decode fast.

Writes are atomic (temp file + rename), so several worker processes may share a cache folder.
The default folder is ``$PIXWIZARD_CACHE/world`` or ``~/.cache/pixwizard/world``.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pixwizard.data.world.scene import Texture

TEXTURE_SIZE = 256


def default_cache_dir() -> Path:
    root = os.environ.get("PIXWIZARD_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "pixwizard") / "world"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_write_png(path: Path, rgb: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    Image.fromarray(rgb).save(tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------- meshes

def _obj_text(vertices: np.ndarray, normals: np.ndarray, uvs: np.ndarray, faces: list[tuple[int, int, int]]) -> str:
    """OBJ with per-vertex position, normal and uv (all sharing one index); faces 0-based, CCW from outside."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"vn {x:.6f} {y:.6f} {z:.6f}" for x, y, z in normals]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uvs]
    lines += ["f " + " ".join(f"{i + 1}/{i + 1}/{i + 1}" for i in f) for f in faces]
    return "\n".join(lines) + "\n"


def _flat_faces(tris: list[np.ndarray]) -> str:
    """OBJ of flat-shaded triangles (each given as a 3x3 array, CCW seen from outside)."""
    verts, norms, faces = [], [], []
    for tri in tris:
        n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
        n = n / np.linalg.norm(n)
        base = len(verts)
        verts += list(tri)
        norms += [n, n, n]
        faces.append((base, base + 1, base + 2))
    uvs = np.zeros((len(verts), 2))
    return _obj_text(np.array(verts), np.array(norms), uvs, faces)


def torus_obj(major: float = 1.0, minor: float = 0.35, n_major: int = 32, n_minor: int = 12) -> str:
    """A torus lying on the ground: axis along z, centre at height ``minor`` (so it touches z = 0)."""
    verts, norms, faces = [], [], []
    for i in range(n_major):
        a = 2 * math.pi * i / n_major
        for j in range(n_minor):
            b = 2 * math.pi * j / n_minor
            n = np.array([math.cos(b) * math.cos(a), math.cos(b) * math.sin(a), math.sin(b)])
            c = np.array([major * math.cos(a), major * math.sin(a), minor])
            verts.append(c + minor * n)
            norms.append(n)
    for i in range(n_major):
        for j in range(n_minor):
            a = i * n_minor + j
            b = ((i + 1) % n_major) * n_minor + j
            c = ((i + 1) % n_major) * n_minor + (j + 1) % n_minor
            d = i * n_minor + (j + 1) % n_minor
            faces += [(a, b, c), (a, c, d)]
    return _obj_text(np.array(verts), np.array(norms), np.zeros((len(verts), 2)), faces)


def lathe_obj(profile: list[tuple[float, float, float, float]], n: int = 32) -> str:
    """A surface of revolution about z. ``profile`` lists (radius, z, normal_r, normal_z) from bottom to
    top; repeat a point with a new normal to make a sharp rim. Smooth-shaded, CCW from outside."""
    verts, norms, faces = [], [], []
    for r, z, nr, nz in profile:
        length = math.hypot(nr, nz)
        for i in range(n):
            a = 2 * math.pi * i / n
            verts.append((r * math.cos(a), r * math.sin(a), z))
            norms.append((nr / length * math.cos(a), nr / length * math.sin(a), nz / length))
    for k in range(len(profile) - 1):
        for i in range(n):
            a, b = k * n + i, k * n + (i + 1) % n
            c, d = (k + 1) * n + (i + 1) % n, (k + 1) * n + i
            faces += [(a, b, c), (a, c, d)]
    return _obj_text(np.array(verts), np.array(norms), np.zeros((len(verts), 2)), faces)


def _arc(cx: float, cz: float, radius: float, t0: float, t1: float, steps: int) -> list[tuple[float, float, float, float]]:
    out = []
    for k in range(steps + 1):
        t = math.radians(t0 + (t1 - t0) * k / steps)
        out.append((cx + radius * math.cos(t), cz + radius * math.sin(t), math.cos(t), math.sin(t)))
    return out


def sphere_obj() -> str:
    """Unit sphere resting on z = 0 (centre at z = 1)."""
    return lathe_obj(_arc(0.0, 1.0, 1.0, -90.0, 90.0, 16))


def cylinder_obj() -> str:
    """Cylinder of radius 1 from z = 0 to z = 2 with flat caps."""
    return lathe_obj([(0, 0, 0, -1), (1, 0, 0, -1), (1, 0, 1, 0), (1, 2, 1, 0), (1, 2, 0, 1), (0, 2, 0, 1)])


def capsule_obj(radius: float = 0.6, length: float = 1.6) -> str:
    """Capsule standing on z = 0: hemispheres of ``radius`` around a cylinder of ``length``."""
    return lathe_obj(_arc(0.0, radius, radius, -90.0, 0.0, 8) + _arc(0.0, radius + length, radius, 0.0, 90.0, 8))


def cone_obj() -> str:
    """A cone of base radius 1 on z = 0 and apex at z = 2; smooth side normals, flat base."""
    return lathe_obj([(0, 0, 0, -1), (1, 0, 0, -1), (1, 0, 1, 0.5), (0, 2, 1, 0.5)])


def pyramid_obj(height: float = 1.6) -> str:
    """A square pyramid: base [-1, 1]^2 on z = 0, apex at (0, 0, height); flat-shaded."""
    c = [np.array(p, dtype=float) for p in ((-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0))]
    apex = np.array([0.0, 0.0, height])
    tris = [np.array([c[i], c[(i + 1) % 4], apex]) for i in range(4)]
    tris += [np.array([c[0], c[2], c[1]]), np.array([c[0], c[3], c[2]])]
    return _flat_faces(tris)


def quad_obj() -> str:
    """A unit square in the xy plane, [-0.5, 0.5]^2, normal +z, uv (0,0)..(1,1)."""
    verts = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], dtype=float)
    norms = np.tile([0.0, 0.0, 1.0], (4, 1))
    uvs = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    return _obj_text(verts, norms, uvs, [(0, 1, 2), (0, 2, 3)])


MESHES = {"sphere": sphere_obj, "cylinder": cylinder_obj, "capsule": capsule_obj, "cone": cone_obj,
          "torus": torus_obj, "pyramid": pyramid_obj, "quad": quad_obj}


def mesh_path(name: str, cache_dir: Path) -> Path:
    """Path of a generated mesh, written on first use."""
    if name not in MESHES:
        raise ValueError(f"unknown mesh {name!r}; known: {tuple(MESHES)}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{name}.obj"
    if not path.exists():
        _atomic_write_text(path, MESHES[name]())
    return path


# --------------------------------------------------------------------------------------- textures

def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a random cells x cells grid upsampled bicubically."""
    grid = rng.random((cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _fractal_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    n = sum(_smooth_noise(rng, size, c) * w for c, w in ((4, 0.5), (8, 0.25), (16, 0.15), (48, 0.1)))
    return (n - n.min()) / max(float(n.max() - n.min()), 1e-6)


def _tint(rng: np.random.Generator, base: tuple[int, int, int], jitter: float = 25.0) -> np.ndarray:
    return np.clip(np.asarray(base, dtype=np.float32) + rng.uniform(-jitter, jitter, 3), 0, 255)


def _checkered(rng: np.random.Generator, s: int) -> np.ndarray:
    n = int(rng.choice([6, 8, 10, 12]))
    a, b = _tint(rng, (200, 200, 190), 40), _tint(rng, (70, 80, 100), 40)
    yy, xx = np.mgrid[0:s, 0:s] * n // s
    return np.where(((yy + xx) % 2 == 0)[..., None], a, b)


def _wooden(rng: np.random.Generator, s: int) -> np.ndarray:
    boards = int(rng.choice([5, 6, 8]))
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    board = (yy * boards // s).astype(np.int32)
    offsets = rng.uniform(0, 100, boards).astype(np.float32)
    wobble = _smooth_noise(rng, s, 6) * 6.0
    grain = 0.5 + 0.5 * np.sin((yy + wobble * 3.0) * 0.9 + offsets[board] + np.sin(xx * 0.03 + offsets[board]) * 2)
    shade = rng.uniform(0.8, 1.1, boards).astype(np.float32)[board]
    base = _tint(rng, (150, 100, 55), 20)
    img = base * (0.75 + 0.25 * grain[..., None]) * shade[..., None]
    seam = (yy * boards % s) < 2
    img[seam] *= 0.5
    return img


def _brick(rng: np.random.Generator, s: int) -> np.ndarray:
    rows = int(rng.choice([8, 10, 12]))
    bh = s / rows
    bw = 2 * bh
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    row = (yy // bh).astype(np.int32)
    shifted = xx + (row % 2) * bw / 2
    col = (shifted // bw).astype(np.int32)
    base = _tint(rng, (160, 70, 50), 25)
    jitter = rng.uniform(0.8, 1.15, (rows + 1, int(s / bw) + 3)).astype(np.float32)
    img = base * jitter[row, col][..., None]
    mortar = ((yy % bh) < 2) | ((shifted % bw) < 2)
    img[mortar] = _tint(rng, (200, 195, 185), 15)
    return img * (0.9 + 0.2 * _smooth_noise(rng, s, 32))[..., None]


def _tiled(rng: np.random.Generator, s: int) -> np.ndarray:
    n = int(rng.choice([4, 6, 8]))
    yy, xx = np.mgrid[0:s, 0:s]
    t = s // n
    base = _tint(rng, (180, 185, 190), 50)
    img = base * rng.uniform(0.92, 1.05, (n + 1, n + 1)).astype(np.float32)[yy // t, xx // t][..., None]
    grout = ((yy % t) < 2) | ((xx % t) < 2)
    img[grout] = base * 0.45
    return img


def _speckled(rng: np.random.Generator, s: int) -> np.ndarray:
    base = _tint(rng, (170, 160, 140), 45)
    speck = rng.random((s, s)).astype(np.float32)
    img = base * (0.85 + 0.15 * _smooth_noise(rng, s, 16))[..., None]
    img[speck > 0.93] *= 0.55
    img[speck < 0.04] = np.minimum(img[speck < 0.04] * 1.35, 255)
    return img


def _stone(rng: np.random.Generator, s: int) -> np.ndarray:
    base = _tint(rng, (130, 130, 125), 20)
    return base * (0.55 + 0.8 * _fractal_noise(rng, s))[..., None]


PROCEDURAL = {"checkered": _checkered, "wooden": _wooden, "brick": _brick, "tiled": _tiled,
              "speckled": _speckled, "stone": _stone}


def procedural_texture(kind: str, variant: int, size: int = TEXTURE_SIZE) -> np.ndarray:
    """HxWx3 uint8 texture of ``kind``, deterministic in ``(kind, variant)``."""
    if kind not in PROCEDURAL:
        raise ValueError(f"unknown procedural texture {kind!r}; known: {tuple(PROCEDURAL)}")
    seed = int.from_bytes(hashlib.sha256(f"{kind}:{variant}".encode()).digest()[:8], "little")
    img = PROCEDURAL[kind](np.random.default_rng(seed), size)
    return np.clip(img, 0, 255).astype(np.uint8)


def texture_path(texture: Texture, cache_dir: Path) -> Path:
    """A 256x256 PNG for ``texture`` in the cache folder, written on first use.

    Raises FileNotFoundError for a photo texture whose file is missing, ValueError for one that
    cannot be decoded.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    if texture.kind != "photo":
        path = cache_dir / f"tex_{texture.kind}_{texture.variant}.png"
        if not path.exists():
            _atomic_write_png(path, procedural_texture(texture.kind, texture.variant))
        return path
    src = Path(texture.path)  # type: ignore[arg-type]
    if not src.is_file():
        raise FileNotFoundError(f"texture image not found: {src}")
    st = src.stat()
    key = hashlib.sha256(f"{src.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:20]
    path = cache_dir / f"photo_{key}.png"
    if not path.exists():
        try:
            with Image.open(src) as im:
                rgb = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise ValueError(f"cannot decode texture image {src}: {exc}") from exc
        h, w = rgb.shape[:2]
        side = min(h, w)
        crop = rgb[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        _atomic_write_png(path, cv2.resize(crop, (TEXTURE_SIZE, TEXTURE_SIZE), interpolation=cv2.INTER_AREA))
    return path

"""Render a ``Scene`` with pybullet's CPU TinyRenderer: RGB, metric depth, normals, instance and
semantic ids, and boxes.

Outputs (``Render``), for an ``size`` x ``size`` image:
- ``rgb``: HxWx3 uint8.
- ``depth``: HxW float32, camera-space z distance in metres (positive, along the optical axis),
  exact up to float precision: pybullet's non-linear depth buffer ``d`` is linearised with
  ``z = far * near / (far - (far - near) * d)``; ``inf`` where no surface was hit.
- ``normals``: HxWx3 float32 unit vectors in the camera frame (x right, y up, z toward the camera),
  from finite differences of the back-projected depth: per pixel the one-sided difference that
  stays on the same body with the smaller depth jump is used, so silhouettes do not smear.
  Zero where there is no surface.
- ``instances``: HxW int32, object index + 1 (0 = ground, wall, nothing).
- ``labels``: HxW int32 semantic class ids: 0 = background, ``SHAPES.index(shape) + 1`` for objects.
- ``boxes``: Nx4 float32 per scene object, xyxy in pixel-edge coordinates (``x0`` = leftmost
  covered column, ``x1`` = rightmost covered column + 1); NaN rows for objects not in view.
- ``pixel_counts``: N int64, visible pixels per object.

Pixel ``(row v, column u)`` looks along camera direction
``((u + PIXEL_OFFSET[0] - c) / f, -(v + PIXEL_OFFSET[1] - c) / f, -1)`` with ``c = size / 2`` and
``f = c / tan(fov / 2)``. TinyRenderer samples at ``PIXEL_OFFSET = (0, 1)`` rather than at pixel centres
(measured: with it, back-projected ground pixels lie on z = 0 to 1e-5 m; with (0.5, 0.5) they are off
by up to 3 cm); ``tests/test_world.py`` checks this.

Lighting: TinyRenderer shades with ambient + diffuse terms. Its own shadow map does not produce
usable cast shadows, so shadows are computed here by shadow mapping: a depth render from the
light placed far along the light direction (narrow perspective view), tested against each pixel's world point (offset along its
normal). A shadowed pixel keeps only the ambient share of its shading. Shiny objects get a
Blinn-Phong highlight from the computed normals (TinyRenderer's specular term is global, not
per object).

One pybullet client is kept per process (``get_renderer``); each render resets the simulation and
rebuilds the bodies, with meshes and textures read from the on-disk cache (``assets``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as pb
from scipy.spatial.transform import Rotation

from pixwizard.data.world.assets import default_cache_dir, mesh_path, texture_path
from pixwizard.data.world.scene import SHAPES, WALL_DISTANCE, Camera, Scene, WorldObject
from pixwizard.tasks.colours import colour_rgb

GROUND_SIZE = 16.0  # metres, the ground quad's side
WALL_SIZE = (16.0, 8.0)  # metres, width and height of the back wall
SHADOW_EXTENT = 4.5  # half-size of the light's view at the target, metres
SHADOW_DISTANCE = 25.0  # the shadow-casting light sits this far from the target (nearly parallel rays)
SHADOW_BIAS = 0.02  # metres
PIXEL_OFFSET = (0.0, 1.0)  # where TinyRenderer samples pixel (u, v), in pixels (x, y)
SHINY_STRENGTH = 0.75
SHINY_EXPONENT = 40.0


@dataclass
class Render:
    rgb: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    instances: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    pixel_counts: np.ndarray
    view: np.ndarray  # 4x4 world -> camera (OpenGL convention: camera looks along -z)
    focal: float  # pixels
    shadow: np.ndarray  # HxW bool, pixels in cast shadow

    @property
    def size(self) -> int:
        return int(self.rgb.shape[0])


def view_matrix(camera: Camera) -> np.ndarray:
    """4x4 world -> camera matrix (x right, y up, z toward the viewer)."""
    return np.array(pb.computeViewMatrix(camera.eye.tolist(), list(camera.target), [0, 0, 1]),
                    dtype=np.float64).reshape(4, 4).T


def focal_length(camera: Camera, size: int) -> float:
    return (size / 2.0) / math.tan(math.radians(camera.fov) / 2.0)


def project(camera: Camera, size: int, points: np.ndarray) -> np.ndarray:
    """Continuous image coordinates (u = c + f x / z, v = c - f y / z; (0, 0) = top-left corner, ``size``
    = far edge) and camera depth z of world points (Nx3) -> Nx3 (u, v, z)."""
    view = view_matrix(camera)
    pc = (view[:3, :3] @ np.asarray(points, dtype=np.float64).T).T + view[:3, 3]
    f = focal_length(camera, size)
    z = -pc[:, 2]
    u = size / 2.0 + f * pc[:, 0] / z
    v = size / 2.0 - f * pc[:, 1] / z
    return np.stack([u, v, z], axis=1)


def pixel_points(rows: np.ndarray, cols: np.ndarray, z: np.ndarray, size: int, focal: float) -> np.ndarray:
    """Nx3 float32 camera-frame points of pixels ``(rows, cols)`` at camera z depth ``z``."""
    x = (cols + PIXEL_OFFSET[0] - size / 2.0) / focal * z
    y = -(rows + PIXEL_OFFSET[1] - size / 2.0) / focal * z
    return np.stack([x, y, -z], axis=-1).astype(np.float32)


def backproject(depth: np.ndarray, focal: float) -> np.ndarray:
    """HxWx3 float32 camera-frame points from camera z depth (see the module docstring for the pixel model)."""
    h, w = depth.shape
    if h != w:
        raise ValueError(f"renders are square, got {h}x{w}")
    rows, cols = np.mgrid[0:h, 0:w]
    return pixel_points(rows, cols, depth.astype(np.float32), h, focal)


def _one_sided(pts: np.ndarray, bodies: np.ndarray, finite: np.ndarray, axis: int) -> np.ndarray:
    """Per pixel, the forward or backward difference of ``pts`` along ``axis``: the one that stays on
    the same body (and a finite depth) if only one does, else the one with the smaller depth jump."""
    lo = [slice(None)] * 2
    hi = [slice(None)] * 2
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    lo, hi = tuple(lo), tuple(hi)
    diff = pts[hi] - pts[lo]
    same = (bodies[hi] == bodies[lo]) & finite[hi] & finite[lo]
    jump = np.abs(diff[..., 2])
    shape = bodies.shape
    fwd = np.zeros(shape + (3,), np.float32)
    bwd = np.zeros(shape + (3,), np.float32)
    same_f = np.zeros(shape, bool)
    same_b = np.zeros(shape, bool)
    jump_f = np.full(shape, np.inf, np.float32)
    jump_b = np.full(shape, np.inf, np.float32)
    fwd[lo], same_f[lo], jump_f[lo] = diff, same, jump
    bwd[hi], same_b[hi], jump_b[hi] = diff, same, jump
    use_f = np.where(same_f != same_b, same_f, jump_f <= jump_b)
    return np.where(use_f[..., None], fwd, bwd)


def normals_from_depth(depth: np.ndarray, focal: float, bodies: np.ndarray) -> np.ndarray:
    """Camera-frame unit normals (float32) from depth; one-sided differences chosen per pixel (same body
    first, then the smaller depth jump). Zero where the depth is not finite."""
    finite = np.isfinite(depth)
    pts = backproject(np.where(finite, depth, 0.0), focal)
    du, dv = _one_sided(pts, bodies, finite, 1), _one_sided(pts, bodies, finite, 0)
    n = np.cross(dv, du)  # du points right (+x), dv points down (-y): dv x du points to +z
    norm = np.sqrt(np.einsum("hwc,hwc->hw", n, n))[..., None]
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), 0.0).astype(np.float32)
    facing = np.einsum("hwc,hwc->hw", n, pts) > 0  # normal pointing away from the camera: flip
    n[facing] *= -1
    n[~finite] = 0.0
    return n


def boxes_from_instances(instances: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(Nx4 float32 xyxy boxes in pixel-edge coordinates, N pixel counts) for instance ids 1..n."""
    boxes = np.full((n, 4), np.nan, dtype=np.float32)
    counts = np.bincount(instances.ravel(), minlength=n + 1)[1:n + 1].astype(np.int64)
    for i in range(n):
        if counts[i] == 0:
            continue
        rows = np.flatnonzero((instances == i + 1).any(axis=1))
        cols = np.flatnonzero((instances == i + 1).any(axis=0))
        boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes, counts


def _rotate(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``rotation @ p`` for each row p of Nx3 ``points`` (float32; einsum, no BLAS threads)."""
    return np.einsum("nc,dc->nd", points.astype(np.float32), rotation.astype(np.float32))


def _quat_from_axes(x_axis: np.ndarray, y_axis: np.ndarray, z_axis: np.ndarray) -> list[float]:
    return Rotation.from_matrix(np.stack([x_axis, y_axis, z_axis], axis=1)).as_quat().tolist()


# Per shape: (geometry, createVisualShape kwargs from half-size s, centre height from s). Everything but
# the cube is a generated mesh with its base on z = 0 (finely tessellated, so normals stay smooth).
_SHAPE_BUILD = {
    "cube": ("box", lambda s: {"halfExtents": [s, s, s]}, lambda s: s),
    "sphere": ("mesh:sphere", lambda s: {"meshScale": [s, s, s]}, lambda s: 0.0),
    "cylinder": ("mesh:cylinder", lambda s: {"meshScale": [0.85 * s, 0.85 * s, s]}, lambda s: 0.0),
    "capsule": ("mesh:capsule", lambda s: {"meshScale": [s, s, s]}, lambda s: 0.0),
    "cone": ("mesh:cone", lambda s: {"meshScale": [s, s, s]}, lambda s: 0.0),
    "torus": ("mesh:torus", lambda s: {"meshScale": [0.78 * s] * 3}, lambda s: 0.0),
    "pyramid": ("mesh:pyramid", lambda s: {"meshScale": [s, s, s]}, lambda s: 0.0),
}
_GEOM = {"box": pb.GEOM_BOX}
assert set(_SHAPE_BUILD) == set(SHAPES)


class WorldRenderer:
    """Owns one pybullet DIRECT client; ``render(scene, size)`` is the only entry point."""

    def __init__(self, cache_dir: Path | None = None, shadow_map_size: int = 256) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.shadow_map_size = shadow_map_size
        self._pid = -1
        self._client = -1

    def _connect(self) -> int:
        if self._pid != os.getpid():  # a forked worker needs its own client
            self._client = pb.connect(pb.DIRECT)
            self._pid = os.getpid()
        return self._client

    def close(self) -> None:
        if self._pid == os.getpid() and self._client >= 0:
            pb.disconnect(physicsClientId=self._client)
        self._pid, self._client = -1, -1

    # ---------------------------------------------------------------------------------- building
    def _textured_quad(self, c: int, texture_file: Path, scale: tuple[float, float], position: np.ndarray,
                       quat: list[float]) -> int:
        vis = pb.createVisualShape(pb.GEOM_MESH, fileName=str(mesh_path("quad", self.cache_dir)),
                                   meshScale=[scale[0], scale[1], 1.0], rgbaColor=[1, 1, 1, 1], physicsClientId=c)
        body = pb.createMultiBody(0, -1, vis, position.tolist(), quat, physicsClientId=c)
        tex = pb.loadTexture(str(texture_file), physicsClientId=c)
        pb.changeVisualShape(body, -1, textureUniqueId=tex, rgbaColor=[1, 1, 1, 1], physicsClientId=c)
        return body

    def _object_body(self, c: int, obj: WorldObject) -> int:
        kind, kwargs, height = _SHAPE_BUILD[obj.shape]
        s = obj.half_size
        rgba = (colour_rgb(obj.colour).astype(float) / 255.0).tolist() + [1.0]
        if kind.startswith("mesh:"):
            vis = pb.createVisualShape(pb.GEOM_MESH, fileName=str(mesh_path(kind[5:], self.cache_dir)),
                                       rgbaColor=rgba, physicsClientId=c, **kwargs(s))
        else:
            vis = pb.createVisualShape(_GEOM[kind], rgbaColor=rgba, physicsClientId=c, **kwargs(s))
        quat = pb.getQuaternionFromEuler([0.0, 0.0, obj.yaw])
        return pb.createMultiBody(0, -1, vis, [obj.x, obj.y, height(s)], quat, physicsClientId=c)

    def _build(self, scene: Scene) -> tuple[int, dict[int, int], tuple[int, int]]:
        """(client, body id -> object index, (ground body, wall body))."""
        c = self._connect()
        pb.resetSimulation(physicsClientId=c)
        cam = scene.camera
        right, toward, up = cam.right_ground, cam.toward_ground, np.array([0.0, 0.0, 1.0])
        target = np.array([cam.target[0], cam.target[1], 0.0])
        ground = self._textured_quad(c, texture_path(scene.background.ground, self.cache_dir), (GROUND_SIZE, GROUND_SIZE),
                            target + toward * (GROUND_SIZE / 2 - WALL_DISTANCE), _quat_from_axes(right, -toward, up))
        wall_centre = target - toward * WALL_DISTANCE + up * (WALL_SIZE[1] / 2)
        wall = self._textured_quad(c, texture_path(scene.background.wall, self.cache_dir), WALL_SIZE, wall_centre,
                            _quat_from_axes(right, up, toward))
        body_to_index = {self._object_body(c, o): i for i, o in enumerate(scene.objects)}
        return c, body_to_index, (ground, wall)

    # --------------------------------------------------------------------------------- rendering
    def render(self, scene: Scene, size: int = 256, shadows: bool | None = None) -> Render:
        """Render ``scene`` at ``size`` x ``size``; ``shadows`` overrides ``scene.light.shadow``."""
        if size < 8:
            raise ValueError(f"render size must be >= 8, got {size}")
        c, body_to_index, background_bodies = self._build(scene)
        cam, light = scene.camera, scene.light
        view = view_matrix(cam)
        proj = pb.computeProjectionMatrixFOV(cam.fov, 1.0, cam.near, cam.far)
        _, _, rgba, zbuf, seg = pb.getCameraImage(
            size, size, view.T.ravel().tolist(), proj, renderer=pb.ER_TINY_RENDERER, shadow=0,
            lightDirection=list(light.direction), lightColor=list(light.colour), lightDistance=SHADOW_DISTANCE,
            lightAmbientCoeff=light.ambient, lightDiffuseCoeff=light.diffuse, lightSpecularCoeff=0.0,
            physicsClientId=c)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(size, size, 4)[..., :3].astype(np.float32)
        zbuf = np.asarray(zbuf, dtype=np.float64).reshape(size, size)
        seg = np.asarray(seg, dtype=np.int64).reshape(size, size)
        hit = seg >= 0
        depth = np.where(hit, cam.far * cam.near / (cam.far - (cam.far - cam.near) * zbuf), np.inf).astype(np.float32)
        focal = focal_length(cam, size)
        normals = normals_from_depth(depth, focal, seg)

        # sized for every body: an object hidden from the camera has an id above seg.max()
        lut = np.zeros(max(int(seg.max()), max(body_to_index, default=0)) + 2, dtype=np.int32)
        for body, index in body_to_index.items():
            lut[body] = index + 1
        instances = lut[np.where(hit, seg, -1)]
        instances[~hit] = 0
        class_of = np.array([0] + [SHAPES.index(o.shape) + 1 for o in scene.objects], dtype=np.int32)
        labels = class_of[instances]

        # Lighting terms in the camera frame.
        l_cam = (view[:3, :3] @ np.asarray(light.direction, dtype=np.float64)).astype(np.float32)
        ndl = np.clip(np.einsum("hwc,c->hw", normals, l_cam), 0.0, None)
        use_shadows = light.shadow if shadows is None else shadows
        in_shadow = np.zeros((size, size), dtype=bool)
        lc = np.asarray(light.colour, dtype=np.float32)
        if use_shadows:
            for body in background_bodies:  # only objects cast shadows (the light is on the camera's side)
                pb.removeBody(body, physicsClientId=c)
            in_shadow = self._shadow_mask(c, scene, view, depth, normals) & hit & (ndl > 0)
            lit = light.ambient + light.diffuse * ndl[in_shadow][:, None] * lc
            rgb[in_shadow] *= light.ambient / np.maximum(lit, 1e-6)
        shiny_obj = np.array([False] + [o.material == "shiny" for o in scene.objects])
        shiny = shiny_obj[instances] & ~in_shadow & (ndl > 0)
        if shiny.any():
            rows, cols = np.nonzero(shiny)
            to_eye = -pixel_points(rows, cols, depth[rows, cols], size, focal)
            to_eye /= np.linalg.norm(to_eye, axis=1, keepdims=True)
            half = to_eye.astype(np.float32) + l_cam
            half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-9)
            ndh = np.clip(np.einsum("nc,nc->n", normals[rows, cols], half), 0.0, None)
            rgb[rows, cols] += (SHINY_STRENGTH * 255.0 * ndh ** SHINY_EXPONENT)[:, None] * lc
        rgb8 = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)

        boxes, counts = boxes_from_instances(instances, len(scene.objects))
        return Render(rgb=rgb8, depth=depth, normals=normals, instances=instances, labels=labels, boxes=boxes,
                      pixel_counts=counts, view=view, focal=focal, shadow=in_shadow)

    def _shadow_mask(self, c: int, scene: Scene, view: np.ndarray, depth: np.ndarray,
                     normals: np.ndarray) -> np.ndarray:
        """Pixels whose surface point is hidden from the light (shadow mapping from the light's view)."""
        cam, light = scene.camera, scene.light
        target = np.asarray(cam.target, dtype=np.float64)
        l = np.asarray(light.direction, dtype=np.float64)
        l = l / np.linalg.norm(l)
        up = np.array([0.0, 0.0, 1.0]) if abs(l[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
        lview = np.array(pb.computeViewMatrix((target + l * SHADOW_DISTANCE).tolist(), target.tolist(), up.tolist()),
                         dtype=np.float64).reshape(4, 4).T
        near, far = SHADOW_DISTANCE - 10.0, SHADOW_DISTANCE + 10.0
        lfov = math.degrees(2.0 * math.atan(SHADOW_EXTENT / SHADOW_DISTANCE))
        lproj = pb.computeProjectionMatrixFOV(lfov, 1.0, near, far)
        n = self.shadow_map_size
        _, _, _, lz, lseg = pb.getCameraImage(n, n, lview.T.ravel().tolist(), lproj,
                                              renderer=pb.ER_TINY_RENDERER, shadow=0,
                                              flags=pb.ER_NO_SEGMENTATION_MASK, physicsClientId=c)
        lz = np.asarray(lz, dtype=np.float64).reshape(n, n)
        light_depth = far * near / (far - (far - near) * lz)  # linear distance along the light's axis

        # World points of the camera pixels (finite depth only), pushed off the surface along the normal.
        finite = np.isfinite(depth)
        inv = np.linalg.inv(view).astype(np.float32)
        rows, cols = np.nonzero(finite)
        pts_cam = pixel_points(rows, cols, depth[rows, cols], depth.shape[0], focal_length(cam, depth.shape[0]))
        n_world = _rotate(normals[rows, cols], view[:3, :3].T)
        pts_world = _rotate(pts_cam, inv[:3, :3]) + inv[:3, 3] + n_world * 0.03
        pl = _rotate(pts_world, lview[:3, :3]) + lview[:3, 3].astype(np.float32)
        scale = SHADOW_DISTANCE / SHADOW_EXTENT / np.maximum(-pl[:, 2], 1e-3)  # perspective divide
        u = np.floor((pl[:, 0] * scale + 1.0) * 0.5 * n).astype(np.int64)
        v = np.floor((1.0 - pl[:, 1] * scale) * 0.5 * n).astype(np.int64)
        inside = (u >= 0) & (u < n) & (v >= 0) & (v < n)
        occluded = np.zeros(inside.shape, dtype=bool)
        occluded[inside] = -pl[inside, 2] > light_depth[v[inside], u[inside]] + SHADOW_BIAS
        mask = np.zeros(depth.shape, dtype=bool)
        mask[rows, cols] = occluded
        return mask


_RENDERERS: dict[Path, WorldRenderer] = {}


def get_renderer(cache_dir: Path | None = None) -> WorldRenderer:
    """The process-wide renderer for ``cache_dir`` (default: ``assets.default_cache_dir()``)."""
    key = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if key not in _RENDERERS:
        _RENDERERS[key] = WorldRenderer(key)
    return _RENDERERS[key]


def render_scene(scene: Scene, size: int = 256, shadows: bool | None = None,
                 cache_dir: Path | None = None) -> Render:
    """Render with the process-wide renderer (see ``WorldRenderer.render``)."""
    return get_renderer(cache_dir).render(scene, size, shadows)

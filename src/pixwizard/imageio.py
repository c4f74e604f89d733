"""Robust image I/O: one loader that turns any reasonable input into ``HxWx3 uint8 RGB`` or fails
with one clear line, atomic writers, and pad/crop helpers for sizes that are not patch multiples.

Conventions of :func:`load_image` (every conversion is stated, none is silent):
- EXIF orientation is honoured (the returned array is upright, as a viewer shows it).
- Transparency (RGBA, LA, PA, palette with a transparent index) is composited over **white**.
- Grey and palette images are expanded to RGB; CMYK and YCbCr are converted by Pillow (no ICC
  colour management).
- 16-bit data (grey ``I;16*`` and 48/64-bit colour) is scaled by ``255/65535`` with rounding (full
  range, no auto-contrast); 16-bit colour is decoded with OpenCV because Pillow keeps only the high
  byte. 32-bit integer ``I`` in ``[0, 65535]`` is treated as 16-bit; outside it, min-max scaled.
- Float images (``F``) in ``[0, 1]`` are scaled by 255; any other finite range is min-max scaled
  to ``[0, 255]``; NaN/inf are refused.
- Multi-frame files (GIF, TIFF, MPO) give their first frame.
- The pixel limit is checked on the header size *before* decoding; Pillow's decompression-bomb
  guard is reported as the same error.
"""

from __future__ import annotations

import io
import os
import uuid
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]


class ImageError(ValueError):
    """A bad input image; the message is one line naming the source and the problem."""


class ImageNotFoundError(ImageError, FileNotFoundError):
    """The image path does not exist (also a FileNotFoundError for callers that catch that)."""


# ----------------------------------------------------------------------------- loading


def load_image(source: ImageSource, *, max_pixels: int) -> np.ndarray:
    """Read an image from a path, bytes, a binary file object or a PIL image.

    Returns an ``HxWx3`` ``uint8`` RGB array (conversions: see the module docstring). Raises
    :class:`ImageError` (a ``ValueError``; :class:`ImageNotFoundError` for a missing path) with a
    one-line message for: a missing path, a directory, an unreadable file, an empty file, data
    that is not an image, a truncated or corrupt image, zero width/height, more than
    ``max_pixels`` pixels, or an unsupported pixel mode.
    """
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if isinstance(source, Image.Image):
        return _decode(source, None, "<PIL image>", max_pixels)
    data, name = _read_bytes(source, max_file_bytes(max_pixels))
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes), not an image")
    try:
        with warnings.catch_warnings():
            # Our own limit (checked on the header below) is the guard that matters; Pillow's
            # warning is redundant, and its hard error only fires above 2 * MAX_IMAGE_PIXELS.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        if max_pixels <= 2 * (Image.MAX_IMAGE_PIXELS or 0):
            raise ImageError(f"{name}: image is over the limit of {max_pixels} pixels "
                             f"({_one_line(e)})") from None
        raise ImageError(f"{name}: refused by Pillow's decompression-bomb guard "
                         f"({_one_line(e)})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised file format)") from None
    except (OSError, SyntaxError, ValueError, zlib.error) as e:
        raise ImageError(f"{name}: corrupt image header ({_one_line(e)})") from None
    with im:
        return _decode(im, data, name, max_pixels)


def max_file_bytes(max_pixels: int) -> int:
    """The most bytes read for an image of at most ``max_pixels`` pixels: 8 bytes a pixel (raw
    16-bit RGBA, the largest uncompressed layout) plus 16 MiB for headers and metadata. Anything
    longer is refused before it is read whole (``/dev/zero``, a multi-GB non-image file)."""
    return 8 * max_pixels + (16 << 20)


def _too_large(name: str, limit: int) -> ImageError:
    return ImageError(f"{name}: file is larger than {limit} bytes, more than any image within the pixel "
                      "limit needs; not read")


def _read_capped(f, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes of a binary stream, read in 1 MiB chunks: ``f.read(n)`` would
    allocate ``n`` bytes up front, and the limit can be far larger than the file."""
    chunks, total = [], 0
    while total <= limit:
        chunk = f.read(min(1 << 20, limit + 1 - total))
        if not chunk:
            break
        if not isinstance(chunk, (bytes, bytearray)):
            raise TypeError("load_image needs a binary file object (opened with 'rb')")
        chunks.append(bytes(chunk))
        total += len(chunk)
    return b"".join(chunks)


def _read_bytes(source, limit: int) -> tuple[bytes, str]:
    """Return the raw bytes of ``source`` (at most ``limit``) and a name for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageNotFoundError(f"image file not found: {path}")
        if path.is_dir():
            raise ImageError(f"{path}: is a directory, not an image file")
        try:
            if path.stat().st_size > limit:
                raise _too_large(str(path), limit)
            with open(path, "rb") as f:  # bounded: a device or a growing file has no useful st_size
                data = _read_capped(f, limit)
        except PermissionError:
            raise ImageError(f"{path}: permission denied") from None
        except OSError as e:
            raise ImageError(f"{path}: cannot be read ({_one_line(e)})") from None
        if len(data) > limit:
            raise _too_large(str(path), limit)
        return data, str(path)
    if hasattr(source, "read"):
        name = getattr(source, "name", "<stream>")
        data = _read_capped(source, limit)
        if len(data) > limit:
            raise _too_large(str(name), limit)
        return bytes(data), name
    raise TypeError(f"load_image cannot read a {type(source).__name__}; pass a path, bytes, "
                    "a binary file object or a PIL image")


def _decode(im: Image.Image, data: bytes | None, name: str, max_pixels: int) -> np.ndarray:
    """Check the header size, fully decode, orient upright and convert to 8-bit RGB."""
    w, h = im.size  # from the header: nothing is decoded yet
    if w <= 0 or h <= 0:
        raise ImageError(f"{name}: image has zero size ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(f"{name}: image is {w}x{h} = {w * h} pixels, over the limit of "
                         f"{max_pixels} pixels")
    if data is not None and _is_16bit_colour(im):
        return _decode_16bit_colour_cv2(im, data, name)
    try:
        im.load()  # forces the full decode so that truncation is caught here
    except (OSError, SyntaxError, ValueError, zlib.error) as e:
        raise ImageError(f"{name}: truncated or corrupt image ({_one_line(e)})") from None
    im = ImageOps.exif_transpose(im)
    convert = _MODE_CONVERTERS.get(im.mode)
    if convert is None:
        raise ImageError(f"{name}: unsupported pixel mode {im.mode!r}")
    out = convert(im, name)
    return np.ascontiguousarray(out, dtype=np.uint8)


def _is_16bit_colour(im: Image.Image) -> bool:
    """True for 48/64-bit colour, which Pillow would decode by dropping the low byte."""
    if im.mode not in ("RGB", "RGBA"):
        return False
    for tile in getattr(im, "tile", None) or []:
        args = tile.args if hasattr(tile, "args") else tile[3]
        rawmode = args if isinstance(args, str) else (args[0] if args else "")
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _decode_16bit_colour_cv2(header: Image.Image, data: bytes, name: str) -> np.ndarray:
    import cv2  # imported where used: a run that needs no OpenCV starts faster

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 3 or arr.dtype != np.uint16:
        raise ImageError(f"{name}: truncated or corrupt 16-bit colour image")
    code = cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
    rgb = _scale_16bit(cv2.cvtColor(arr, code))
    if rgb.shape[2] == 4:
        rgb = _composite_on_white(rgb[..., :3], rgb[..., 3])
    orientation = header.getexif().get(_EXIF_ORIENTATION, 1)
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        rgb = np.asarray(Image.fromarray(rgb).transpose(method))
    return np.ascontiguousarray(rgb)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _scale_16bit(a: np.ndarray) -> np.ndarray:
    """uint16 [0, 65535] -> uint8 [0, 255], rounded: v * 255 / 65535."""
    return np.round(a.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)


def _scale_float(a: np.ndarray, name: str) -> np.ndarray:
    """Floats in [0,1] -> *255; any other finite range -> min-max to [0,255]."""
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ImageError(f"{name}: float image contains NaN or infinity")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.round(a * 255.0).astype(np.uint8)


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha-composite uint8 RGB with uint8 alpha over a white background."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    out = rgb.astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.round(out).astype(np.uint8)


def _grey_to_rgb(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[..., None], 3, axis=2)


def _from_rgba(im: Image.Image, name: str) -> np.ndarray:
    rgba = np.asarray(im.convert("RGBA"))
    return _composite_on_white(rgba[..., :3], rgba[..., 3])


def _from_palette(im: Image.Image, name: str) -> np.ndarray:
    if "transparency" in im.info:
        return _from_rgba(im, name)
    return np.asarray(im.convert("RGB"))


def _from_int32(im: Image.Image, name: str) -> np.ndarray:
    a = np.asarray(im).astype(np.int64)
    if a.min() >= 0 and a.max() <= 65535:
        return _grey_to_rgb(_scale_16bit(a))
    return _grey_to_rgb(_scale_float(a.astype(np.float64), name))  # outside [0,1]: min-max


_Converter = Callable[[Image.Image, str], np.ndarray]

# One entry per Pillow mode; anything else is refused with a clear error.
_MODE_CONVERTERS: dict[str, _Converter] = {
    "RGB": lambda im, name: np.asarray(im),
    "L": lambda im, name: _grey_to_rgb(np.asarray(im)),
    "1": lambda im, name: _grey_to_rgb(np.asarray(im.convert("L"))),
    "P": _from_palette,
    "RGBA": _from_rgba,
    "RGBa": _from_rgba,
    "LA": _from_rgba,
    "La": _from_rgba,
    "PA": _from_rgba,
    "CMYK": lambda im, name: np.asarray(im.convert("RGB")),
    "YCbCr": lambda im, name: np.asarray(im.convert("RGB")),
    "I;16": lambda im, name: _grey_to_rgb(_scale_16bit(np.asarray(im).astype(np.uint16))),
    "I;16L": lambda im, name: _grey_to_rgb(_scale_16bit(np.asarray(im).astype(np.uint16))),
    "I;16B": lambda im, name: _grey_to_rgb(_scale_16bit(np.asarray(im).astype(np.uint16))),
    "I;16N": lambda im, name: _grey_to_rgb(_scale_16bit(np.asarray(im).astype(np.uint16))),
    "I": _from_int32,
    "F": lambda im, name: _grey_to_rgb(_scale_float(np.asarray(im), name)),
}

_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


# ----------------------------------------------------------------------------- saving


def _atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write through a temporary file in the target's folder, then ``os.replace`` it into place.

    Parent folders are created. Readers never see a partial file; on failure the target is left
    untouched and the temporary file is removed. The file gets the usual umask permissions.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; give a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_dead_writers_temps(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete the temporary files that :func:`_atomic_write` left when its process was killed
    (``.NAME.PID.HEX.tmp`` whose PID no longer runs); a live writer's file is kept."""
    removed = []
    pattern = "**/.*.tmp" if recursive else ".*.tmp"
    for p in sorted(Path(folder).glob(pattern)):
        parts = p.name.rsplit(".", 3)  # [".NAME", PID, HEX, "tmp"]
        if len(parts) != 4 or not parts[1].isdigit() or not p.is_file():
            continue
        try:
            os.kill(int(parts[1]), 0)
            continue  # the writer still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's live process
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def save_image(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save a ``uint8`` image (``HxW`` grey, ``HxWx3`` RGB or ``HxWx4`` RGBA) atomically.

    The format comes from the extension (``.png``, ``.jpg``, ``.webp``, ``.tif``, ...). Bool
    arrays are written as 0/255 masks. Returns the path written.
    """
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image extension {path.suffix!r}; use e.g. .png or .jpg")
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        raise ValueError(f"save_image expects uint8 (or bool) pixels, got {arr.dtype}; scale and "
                         "convert first")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))):
        raise ValueError(f"save_image expects HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"save_image got an empty image of shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if fmt == "JPEG" and arr.ndim == 3 and arr.shape[2] == 4:
        raise ValueError(f"{path}: JPEG has no alpha channel; save RGBA as .png or .webp")
    im = Image.fromarray(np.ascontiguousarray(arr))
    return _atomic_write(path, lambda f: im.save(f, format=fmt))


def npy_bytes(arr: np.ndarray) -> bytes:
    """An array as the bytes of a ``.npy`` file (no pickling). ``data.shards`` keeps its own copy:
    build workers import it without torch, which this module imports."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def save_array_npy(path: str | os.PathLike, arr: np.ndarray) -> Path:
    """Save an array as ``.npy`` (no pickling) atomically, at exactly ``path``."""
    a = np.asarray(arr)
    if a.dtype == object:
        raise ValueError("save_array_npy refuses object arrays (they would need pickling)")
    return _atomic_write(path, lambda f: np.save(f, a, allow_pickle=False))


# ----------------------------------------------------------------------------- pad / crop

ArrayLike = Union[np.ndarray, torch.Tensor]


def _reflect_indices(n: int, total: int) -> np.ndarray:
    """Indices 0..total-1 folded into 0..n-1 by mirror reflection (edge pixel not repeated)."""
    i = np.arange(total)
    if n == 1:
        return np.zeros(total, dtype=np.int64)
    period = 2 * (n - 1)
    j = i % period
    return np.where(j < n, j, period - j).astype(np.int64)


def _hw_axes(img: ArrayLike) -> tuple[int, int]:
    """Axes of height and width: numpy is ``HxW[xC]``, torch is ``[..., H, W]``."""
    if isinstance(img, torch.Tensor):
        if img.ndim < 2:
            raise ValueError(f"expected a tensor [..., H, W], got shape {tuple(img.shape)}")
        return img.ndim - 2, img.ndim - 1
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"expected an array HxW or HxWxC, got shape {img.shape}")
        return 0, 1
    raise TypeError(f"expected a numpy array or torch tensor, got {type(img).__name__}")


def pad_to_multiple(img: ArrayLike, multiple: int) -> tuple[ArrayLike, tuple[int, int]]:
    """Pad on the right and bottom by mirror reflection so that H and W are multiples of ``multiple``.

    Layout: numpy arrays are ``HxW`` or ``HxWxC``; torch tensors are ``[..., H, W]``. Nothing is
    resized. Returns ``(padded, (h, w))`` where ``(h, w)`` is the original size for
    :func:`crop_back`. Works for any size, also when the pad exceeds the image (repeated mirror).
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    ah, aw = _hw_axes(img)
    h, w = int(img.shape[ah]), int(img.shape[aw])
    if h == 0 or w == 0:
        raise ValueError(f"cannot pad an empty image of shape {tuple(img.shape)}")
    ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if (ph, pw) == (h, w):
        return img, (h, w)
    rows, cols = _reflect_indices(h, ph), _reflect_indices(w, pw)
    if isinstance(img, torch.Tensor):
        out = img.index_select(ah, torch.as_tensor(rows, device=img.device))
        out = out.index_select(aw, torch.as_tensor(cols, device=img.device))
    else:
        out = img[rows][:, cols]
    return out, (h, w)


def crop_back(img: ArrayLike, size: tuple[int, int]) -> ArrayLike:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size = (h, w)`` exactly (no resizing)."""
    ah, aw = _hw_axes(img)
    h, w = size
    if img.shape[ah] < h or img.shape[aw] < w:
        raise ValueError(f"cannot crop {tuple(img.shape)} back to {h}x{w}: it is smaller")
    if isinstance(img, torch.Tensor):
        return img[..., :h, :w]
    return img[:h, :w]


def save_png16(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save an ``HxW`` uint16 array as a 16-bit grey PNG, atomically."""
    arr = np.asarray(array)
    if arr.dtype != np.uint16 or arr.ndim != 2:
        raise ValueError(f"save_png16 expects an HxW uint16 array, got {arr.dtype} {arr.shape}")
    import cv2

    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode a 16-bit PNG")
    return _atomic_write(path, lambda f: f.write(buf.tobytes()))

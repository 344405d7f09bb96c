"""Image files in and out: one convention for the whole toolkit.

Everything inside restorekit works on **float32 HWC RGB in [0, 1]** (numpy) or CHW tensors of the
same range. Files are decoded with ``cv2.imdecode`` from bytes read by ``np.fromfile`` instead of
``cv2.imread`` because ``imread`` cannot open non-ASCII paths on Windows, and because the same
decoder then serves LMDB values (``imfrombytes``). OpenCV's BGR order is turned into RGB here,
once, so no other module ever has to think about it (a classic source of swapped-channel bugs).

The one exception is the training data path: a dataset that cuts a 96² patch out of a 2K image
reads it with ``read_image_raw`` / ``decode_image_raw`` (samples as decoded: uint8/uint16, OpenCV
order), crops and flips that integer array, and converts only the patch with ``raw_to_tensor`` or
``raw_to_float``, which also do the BGR → RGB swap. The values are bitwise those of converting the
whole image first; the work and the memory are a patch's.

Bad files fail with a one-line ``DataError`` naming the path and what is wrong; unreadable files
raise the subclass ``UnreadableImageError`` so datasets can choose to skip exactly those.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from restorekit.errors import DataError

# Extensions OpenCV decodes out of the box (BasicSR's list plus WEBP); matched case-insensitively.
IMG_EXTENSIONS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)

# Extensions that can hold 16 bits per sample when writing.
_SIXTEEN_BIT_EXTENSIONS = (".png", ".tif", ".tiff")

# OpenCV prints its own warnings for truncated files straight to stderr; we report those files
# ourselves, in one line naming the file, so keep OpenCV to errors only.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

PathLike = str | os.PathLike


class UnreadableImageError(DataError):
    """A file exists but cannot be decoded (empty, truncated, not an image)."""


@dataclass
class ImageInfo:
    """A decoded image with what was learned about the file while decoding it.

    ``img`` is float32 HWC in [0, 1], channels RGB, RGBA, or a single gray channel.
    ``bit_depth`` is 8 or 16 for integer files and 32 for floating-point TIFFs (kept as stored).
    """

    img: np.ndarray
    bit_depth: int
    has_alpha: bool
    is_gray: bool


@dataclass
class RawImage:
    """A decoded image exactly as the decoder gave it: the integer (or float) path's currency.

    ``img`` is HWC (always three axes) with the file's own sample type (uint8, uint16, float32/64)
    and OpenCV's channel order: 1 = gray, 2 = gray + alpha, 3 = BGR, 4 = BGRA. Training crops a
    small patch out of a large image, so datasets crop and flip this array and convert only the
    patch (``raw_to_tensor``); converting the whole image first costs more than the crop saves.
    """

    img: np.ndarray
    bit_depth: int
    has_alpha: bool
    is_gray: bool


def is_image_file(path: PathLike) -> bool:
    """True when the file name ends with one of ``IMG_EXTENSIONS`` (any case)."""
    return os.fspath(path).lower().endswith(IMG_EXTENSIONS)


_BIT_DEPTH = {np.dtype(t): d for t, d in ((np.uint8, 8), (np.uint16, 16), (np.float32, 32), (np.float64, 32))}


def decode_image_raw(buf: bytes | np.ndarray, name: str = "<bytes>", orient: bool = False) -> RawImage:
    """Decode encoded image bytes (PNG, JPEG, TIFF, ...) without converting the samples.

    ``name`` only appears in error messages (a path or an LMDB key). OpenCV decodes a PNG as
    fast as Pillow does and, unlike Pillow, keeps 16-bit colour (see benchmarks/RESULTS.md).
    ``orient``: turn a JPEG upright by its EXIF orientation tag, as a photo viewer shows it (a
    phone portrait is stored sideways with "rotate 90"); ``IMREAD_UNCHANGED`` ignores the tag.
    A JPEG has no alpha, so decoding it with ``ANYCOLOR | ANYDEPTH`` (which honours the tag)
    loses nothing. Off for training data: BasicSR-style sets are stored upright, as PNG.
    """
    data = np.frombuffer(buf, dtype=np.uint8) if isinstance(buf, bytes | bytearray | memoryview) else buf
    if data.size == 0:
        raise UnreadableImageError(f"{name}: is empty (0 bytes)")
    flags = cv2.IMREAD_UNCHANGED
    if orient and data.size > 2 and data[0] == 0xFF and data[1] == 0xD8:  # JPEG's start-of-image
        flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
    try:
        raw = cv2.imdecode(data, flags)
    except cv2.error:
        raw = None
    if raw is None:
        raise UnreadableImageError(
            f"{name}: is not a readable image (truncated, corrupt or not an image format OpenCV decodes)"
        )
    bit_depth = _BIT_DEPTH.get(raw.dtype)
    if bit_depth is None:
        raise UnreadableImageError(f"{name}: has unsupported sample type {raw.dtype} (expected 8/16-bit)")
    if raw.ndim == 2:
        raw = raw[:, :, None]  # a view: no copy
    channels = raw.shape[2]
    if channels not in (1, 2, 3, 4):
        raise UnreadableImageError(f"{name}: has {channels} channels (expected 1, 3 or 4)")
    return RawImage(raw, bit_depth, has_alpha=channels in (2, 4), is_gray=channels <= 2)


def _channels(n: int, keep_alpha: bool) -> slice | list[int]:
    """OpenCV channels → ours: BGR(A) → RGB(A), alpha dropped unless kept. A slice (a view, no
    copy) in every case but BGRA → RGBA: reversing BGRA and dropping A is ``2::-1``."""
    if n <= 2:
        return slice(0, n if keep_alpha else 1)
    if n == 3:
        return slice(None, None, -1)
    return [2, 1, 0, 3] if keep_alpha else slice(2, None, -1)


def _to_unit(src: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Samples → float32 [0, 1] into ``out`` in one pass; the same float32 division as
    ``src.astype(np.float32) / 255.0``, so results are bitwise those of converting first."""
    if src.dtype == np.uint8:
        return np.divide(src, np.float32(255.0), out=out, dtype=np.float32)
    if src.dtype == np.uint16:
        return np.divide(src, np.float32(65535.0), out=out, dtype=np.float32)
    out[...] = src  # float TIFFs: kept as stored (float64 is rounded to float32, like astype)
    return out


def raw_to_float(img: np.ndarray, keep_alpha: bool = False) -> np.ndarray:
    """Raw HWC samples (OpenCV order, any crop or flip of a ``RawImage.img``) → float32 HWC RGB
    (or gray; RGBA with ``keep_alpha``) in [0, 1], contiguous, in one pass over the samples."""
    src = img[:, :, _channels(img.shape[2], keep_alpha)]
    return _to_unit(src, np.empty(src.shape, np.float32))


def raw_to_tensor(img: np.ndarray) -> torch.Tensor:
    """Raw HWC samples (a crop, flip or transpose of ``RawImage.img``) → CHW float32 RGB or gray
    tensor in [0, 1], alpha dropped: channel order, layout and type changed in one pass."""
    src = img[:, :, _channels(img.shape[2], keep_alpha=False)].transpose(2, 0, 1)
    return torch.from_numpy(_to_unit(src, np.empty(src.shape, np.float32)))


def decode_image(buf: bytes | np.ndarray, name: str = "<bytes>") -> ImageInfo:
    """Decode encoded image bytes (PNG, JPEG, TIFF, ...) into an ``ImageInfo``.

    ``name`` only appears in error messages (a path or an LMDB key).
    """
    raw = decode_image_raw(buf, name)
    return ImageInfo(raw_to_float(raw.img, keep_alpha=True), raw.bit_depth, raw.has_alpha, raw.is_gray)


def _read_bytes(path: PathLike) -> np.ndarray:
    p = Path(path)
    if not p.exists():
        raise UnreadableImageError(f"{p}: does not exist")
    if p.is_dir():
        raise UnreadableImageError(f"{p}: is a folder, not an image file")
    try:
        return np.fromfile(p, dtype=np.uint8)  # works for non-ASCII paths, unlike cv2.imread
    except OSError as exc:
        raise UnreadableImageError(f"{p}: cannot be read ({exc.strerror or exc})") from None


def read_bytes(path: PathLike) -> np.ndarray:
    """A file's bytes for ``decode_image_raw``; a missing file or a folder is an UnreadableImageError."""
    return _read_bytes(path)


def read_image_raw(path: PathLike, orient: bool = False) -> RawImage:
    """Read an image file without converting its samples (see ``RawImage``; ``orient``: EXIF)."""
    return decode_image_raw(_read_bytes(path), str(path), orient=orient)


def read_image_full(path: PathLike) -> ImageInfo:
    """Read an image file keeping alpha, bit depth and gray-ness (see ``ImageInfo``)."""
    return decode_image(_read_bytes(path), str(path))


def read_image(path: PathLike) -> np.ndarray:
    """Read an image as float32 HWC in [0, 1]: RGB, or one channel for gray; alpha is dropped."""
    return raw_to_float(read_image_raw(path).img)


def imfrombytes(buf: bytes | np.ndarray, name: str = "<bytes>") -> np.ndarray:
    """Like ``read_image`` for encoded bytes (LMDB values); ``name`` is used in errors."""
    return raw_to_float(decode_image_raw(buf, name).img)


def _quantise(img: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float [0, 1] → integer samples; ``np.round`` rounds half to even, as BasicSR's tensor2img."""
    if np.issubdtype(img.dtype, np.integer):
        maxval = 255.0 if img.dtype == np.uint8 else 65535.0
        img = img.astype(np.float32) / maxval
    top = 255.0 if bit_depth == 8 else 65535.0
    out = np.round(np.clip(img.astype(np.float32), 0.0, 1.0) * top)
    return out.astype(np.uint8 if bit_depth == 8 else np.uint16)


def write_image(path: PathLike, img: np.ndarray, bit_depth: int = 8) -> Path:
    """Write float HWC (or HW) RGB/RGBA/gray in [0, 1] to ``path``; returns the path written.

    Values are clipped to [0, 1] and rounded half-to-even. The parent folder is created, and the
    file is written to a temporary name and renamed so an interrupted run never leaves a half
    file that a later "skip if it exists" check would trust. 16-bit needs PNG or TIFF.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in IMG_EXTENSIONS:
        raise DataError(f"{p}: unknown image extension {p.suffix!r}; use one of {', '.join(IMG_EXTENSIONS)}")
    if bit_depth not in (8, 16):
        raise DataError(f"{p}: bit_depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and ext not in _SIXTEEN_BIT_EXTENSIONS:
        raise DataError(f"{p}: 16-bit output needs .png or .tif, not {ext}")
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise DataError(f"{p}: cannot write an array of shape {arr.shape} (expected HW, HW1, HW3 or HW4)")
    q = _quantise(arr, bit_depth)
    if q.shape[2] == 3:
        q = q[:, :, ::-1]
    elif q.shape[2] == 4:
        q = q[:, :, [2, 1, 0, 3]]
    ok, encoded = cv2.imencode(ext, np.ascontiguousarray(q))
    if not ok:
        raise DataError(f"{p}: OpenCV could not encode the image as {ext}")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    encoded.tofile(tmp)
    os.replace(tmp, p)
    return p


def scan_images(folder: PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` sorted by path; an error names the folder and the extensions.

    Hidden files (``.name``) are ignored: they are editor or OS leftovers, never data.
    """
    root = Path(folder)
    if not root.exists():
        raise DataError(f"{root}: image folder does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: is a file, expected a folder of images")
    pattern = root.rglob("*") if recursive else root.iterdir()
    found = sorted(p for p in pattern if p.is_file() and not p.name.startswith(".") and is_image_file(p))
    if not found:
        raise DataError(f"{root}: no images found (looked for {', '.join(IMG_EXTENSIONS)})")
    return found


def img2tensor(img: np.ndarray) -> torch.Tensor:
    """HWC (or HW) numpy image → CHW float32 tensor sharing nothing with the input."""
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"img2tensor expects an HWC image, got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32))


def tensor2img(t: torch.Tensor) -> np.ndarray:
    """CHW (or 1CHW) tensor → HWC float32 numpy, clamped to [0, 1] as image writers expect."""
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"tensor2img expects one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.ndim != 3:
        raise ValueError(f"tensor2img expects a CHW tensor, got shape {tuple(t.shape)}")
    arr = t.detach().float().clamp(0, 1).cpu().numpy()
    return np.ascontiguousarray(arr.transpose(1, 2, 0))


def check_unit_floats(img: np.ndarray, what: str) -> None:
    """A one-line ``DataError`` for float samples that are not in [0, 1]: a 0-255 float image
    (``cv2.imread(...).astype(float)``) would otherwise come back white, with no face found.
    Up to 2 is let through: resampling overshoots 1 a little."""
    top = float(np.max(img))
    if not np.isfinite(top) or not np.isfinite(float(np.min(img))):
        raise DataError(f"{what}: float samples must be finite, found NaN or inf")
    if top > 2.0:
        raise DataError(
            f"{what}: float samples are expected in [0, 1], got a maximum of {top:g} "
            "(divide a 0-255 image by 255, or pass it as uint8)"
        )

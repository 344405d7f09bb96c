"""``restorekit infer``: image files in, restored files out, nothing the user had overwritten.

Inputs are a file, a folder (its images, not recursive) or a glob pattern (``"photos/*.png"``,
``**`` recursive). Every output path is decided and checked *before* the network is loaded: an
output that would replace its own input, two inputs that map to the same output, or an existing
file without ``--overwrite`` is a one-line error, and nothing has been written.

Formats: ``--ext auto`` keeps each input's extension unless it cannot hold the result (16-bit
samples need PNG/TIFF, alpha needs PNG/TIFF/WebP; then PNG); ``--ext png|jpg`` forces one, and a
forced JPEG gets a note when it drops 16-bit precision or alpha. A gray + alpha PNG stays gray +
alpha (``gray_alpha.py``: OpenCV would make it RGBA). Results are quantised in row
blocks straight into the file's integer type, so a large output never exists as several float
copies at once. Each file is written to a temporary name and renamed; a failed write leaves no
temporary file and is one line naming the output (``PATH: no space left on device``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from restorekit.archs.info import find_arch_info
from restorekit.data.io import IMG_EXTENSIONS, is_image_file, read_image_full, scan_images
from restorekit.errors import DataError, RestorekitError
from restorekit.inference.export import load_any
from restorekit.inference.gray_alpha import encode_gray_alpha_png, is_gray_alpha_png
from restorekit.inference.upscale import AlphaMode, Restored, Upscaler, check_purpose

EXT_CHOICES = ("auto", "png", "jpg")
_SIXTEEN_BIT = (".png", ".tif", ".tiff")
_ALPHA_OK = (".png", ".tif", ".tiff", ".webp")
_GLOB_CHARS = set("*?[")


def _glob_files(spec: str) -> list[Path]:
    """Files matching ``spec``; ``**`` does not descend into symlinked folders, so a link to a
    parent (a loop) cannot make the search run away, as ``glob.glob(recursive=True)`` does."""
    parts = Path(spec).parts
    fixed = next((i for i, part in enumerate(parts) if _GLOB_CHARS & set(part)), len(parts))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    pattern = str(Path(*parts[fixed:])) if fixed < len(parts) else "*"
    out = []
    for p in root.glob(pattern):
        try:
            if p.is_file():
                out.append(p)
        except OSError:  # a symlink loop or an unreadable entry: not an input
            continue
    return out


def collect_inputs(spec: str) -> tuple[list[Path], bool]:
    """``(image files, True when spec named one file)`` for a file, folder or glob pattern."""
    p = Path(spec)
    if p.is_file():
        if not is_image_file(p):
            raise DataError(f"{p}: not an image file (expected one of {', '.join(IMG_EXTENSIONS)})")
        return [p], True
    if p.is_dir():
        return scan_images(p), False
    if _GLOB_CHARS & set(spec):
        found = sorted(p for p in _glob_files(spec) if is_image_file(p))
        if not found:
            raise DataError(f"{spec}: the pattern matches no image files")
        return found, False
    raise DataError(f"{spec}: input does not exist (expected an image file, a folder or a glob pattern)")


def plan_outputs(
    inputs: list[Path], single: bool, output: str, ext: str = "auto", overwrite: bool = False
) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs, refusing self-replacement, collisions and (by default) overwrites."""
    if ext not in EXT_CHOICES:
        raise RestorekitError(f"--ext {ext}: expected one of {', '.join(EXT_CHOICES)}")
    out = Path(output)
    as_file = single and not out.is_dir() and out.suffix != ""
    if as_file:
        if not is_image_file(out):
            raise RestorekitError(f"{out}: output must end in one of {', '.join(IMG_EXTENSIONS)}")
        if ext != "auto" and out.suffix.lower().lstrip(".") not in _aliases(ext):
            raise RestorekitError(f"{out}: --ext {ext} contradicts the output file's extension")
        pairs = [(inputs[0], out)]
    else:
        if out.is_file():
            raise RestorekitError(f"{out}: is a file; the output of a folder or pattern must be a folder")
        pairs = [(p, out / (p.stem + (p.suffix if ext == "auto" else "." + ext))) for p in inputs]
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        key = dst.resolve()
        if key == src.resolve():
            raise RestorekitError(f"{dst}: output would replace its input; choose another -o or --ext")
        if key in seen:
            raise RestorekitError(f"{seen[key]} and {src} would both be written to {dst}")
        seen[key] = src
    existing = [dst for _, dst in pairs if dst.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise RestorekitError(f"{existing[0]}: already exists{more}; pass --overwrite to replace")
    return pairs


def _aliases(ext: str) -> tuple[str, ...]:
    return ("jpg", "jpeg") if ext == "jpg" else (ext,)


def final_path(planned: Path, bit_depth: int, has_alpha: bool, forced: bool) -> tuple[Path, str | None]:
    """The path to write and a note, once the image's depth and alpha are known."""
    suffix = planned.suffix.lower()
    if forced:
        lost = [
            w
            for w, bad in (
                ("16-bit precision", bit_depth > 8 and suffix not in _SIXTEEN_BIT),
                ("alpha", has_alpha and suffix not in _ALPHA_OK),
            )
            if bad
        ]
        return planned, (f"{planned}: {suffix} cannot hold {' or '.join(lost)}; dropped" if lost else None)
    if (bit_depth > 8 and suffix not in _SIXTEEN_BIT) or (has_alpha and suffix not in _ALPHA_OK):
        return planned.with_suffix(".png"), None
    return planned, None


def save_restored(path: Path, result: Restored, bit_depth: int) -> Path:
    """Clip, round (half to even) and write ``result``; written to a temporary name, then renamed."""
    ext = path.suffix.lower()
    sixteen = bit_depth > 8 and ext in _SIXTEEN_BIT
    top, dtype = (65535.0, np.uint16) if sixteen else (255.0, np.uint8)
    color = result.color
    alpha = result.alpha if ext in _ALPHA_OK else None
    gray_alpha = alpha is not None and color.shape[2] == 1 and ext == ".png"
    if alpha is not None and color.shape[2] == 1 and not gray_alpha:
        color = np.repeat(color, 3, axis=2)  # TIFF/WebP through OpenCV: RGBA, not two channels
    order = [2, 1, 0] if color.shape[2] == 3 else [0]  # OpenCV writes BGR
    h, w = color.shape[:2]
    q = np.empty((h, w, len(order) + (alpha is not None)), dtype=dtype)
    rows = max(1, (1 << 22) // max(1, w * q.shape[2]))
    for r0 in range(0, h, rows):
        block = color[r0 : r0 + rows][..., order]  # a fresh block-sized copy
        q[r0 : r0 + rows, :, : len(order)] = _quantise(block, top)
        if alpha is not None:
            q[r0 : r0 + rows, :, -1:] = _quantise(alpha[r0 : r0 + rows].copy(), top)
    if gray_alpha:
        encoded: bytes | np.ndarray = encode_gray_alpha_png(q)
    else:
        ok, encoded = cv2.imencode(ext, q if q.shape[2] > 1 else q[..., 0])
        if not ok:
            raise DataError(f"{path}: OpenCV could not encode the image as {ext}")
    write_atomic(path, memoryview(encoded).cast("B"))
    return path


def write_atomic(path: Path, data: memoryview | bytes) -> None:
    """Write ``data`` to a temporary name beside ``path``, then rename it over ``path``.

    A failed write (a folder made read-only, a full disk) removes the temporary file, so no
    0-byte or truncated ``.name.tmpPID`` is left behind, and is one line naming ``path``:
    ``PATH: no space left on device``.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_bytes(tmp, data)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        why = exc.strerror or str(exc) or type(exc).__name__
        raise DataError(f"{path}: {why[:1].lower()}{why[1:]}") from None
    except BaseException:  # Ctrl-C mid-write: still no temporary file left behind
        _discard(tmp)
        raise


def _write_bytes(path: Path, data: memoryview | bytes) -> None:
    """The one place output bytes reach the disk (tests replace it to simulate failures)."""
    with open(path, "wb") as fh:
        fh.write(data)


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):  # the folder itself became unwritable: nothing more to do
        tmp.unlink(missing_ok=True)


def _quantise(block: np.ndarray, top: float) -> np.ndarray:
    np.clip(block, 0.0, 1.0, out=block)
    block *= top
    return np.round(block, out=block)


def upscale_files(
    weights: str,
    inputs: str,
    output: str,
    *,
    scale: float | None = None,
    tile: int = 512,
    tile_overlap: int = 32,
    precision: str = "auto",
    batch: int = 1,
    ext: str = "auto",
    alpha: AlphaMode = "bicubic",
    device: str = "auto",
    overwrite: bool = False,
    quiet: bool = False,
    raw: bool = False,
    note: Callable[[str], None] | None = None,
    arch_opts: dict[str, Any] | None = None,
) -> list[Path]:
    """Restore every input image and write it; returns the paths written (see the module doc)."""
    from tqdm import tqdm

    files, single = collect_inputs(inputs)
    pairs = plan_outputs(files, single, output, ext, overwrite)
    forced = ext != "auto" or (single and Path(output).suffix != "" and not Path(output).is_dir())
    net, notes = load_any(weights, raw=raw, overrides=arch_opts)
    info = find_arch_info(net)
    if info is not None:  # `restorekit infer` runs whole photos: face models go to `restorekit faces`
        check_purpose(net, info, allow_face=False)
    upscaler = Upscaler(
        net, device=device, precision=precision, tile=tile, tile_overlap=tile_overlap,
        batch=batch, alpha=alpha, outscale=scale,
    )  # fmt: skip
    show = not quiet and sys.stderr.isatty()
    say = note or (lambda line: tqdm.write(line, file=sys.stderr))
    for line in notes:
        if not quiet:
            say(line)
    inputs_set = {p.resolve() for p in files}
    written: list[Path] = []
    with (
        tqdm(total=len(pairs), unit="img", disable=not show, desc="images") as bar_files,
        tqdm(total=0, unit="tile", disable=not show, leave=False, desc="tiles") as bar_tiles,
    ):
        for src, planned in pairs:
            info = read_image_full(src)
            img = info.img
            if img.shape[2] == 4 and is_gray_alpha_png(src):
                img = np.ascontiguousarray(img[..., [0, 3]])  # OpenCV decodes gray + alpha as RGBA
            dst, line = final_path(planned, info.bit_depth, info.has_alpha, forced)
            if dst != planned and ((dst.exists() and not overwrite) or dst.resolve() in inputs_set):
                raise RestorekitError(f"{dst}: already exists; pass --overwrite to replace")
            if line and not quiet:
                say(line)
            bar_tiles.reset(total=upscaler.count_tiles(img))
            result = upscaler.restore(img, progress=bar_tiles.update)
            written.append(save_restored(dst, result, info.bit_depth))
            bar_files.update(1)
    return written

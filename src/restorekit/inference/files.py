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

Host memory: a PNG output of an image that spans more than one tile row (and needs no final
``--scale`` resize) is streamed: the upscaler hands out one tile row of output at a time
(``Upscaler.restore_bands``), which is quantised and PNG-encoded as it comes
(``data.png_rows.PngRowWriter``), so the output exists whole only on disk, with the same pixels
as the whole-image path (the file's bytes differ: another encoder). The input is still decoded
whole, but kept in its integer samples (3 or 6 bytes per RGB pixel; each tile is converted to
float32 as it goes), so for a ×s network the peak is about the input plus one tile row of
output instead of the input as float32 plus ~3 copies of the s²× larger output. Other formats,
and images of one tile row, take the whole-image path.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from restorekit.archs.info import find_arch_info
from restorekit.data.io import IMG_EXTENSIONS, is_image_file, raw_to_float, read_image_raw, scan_images
from restorekit.data.png_rows import PngRowWriter
from restorekit.errors import DISK_ERRORS, DataError, RestorekitError, write_error
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
    color, alpha = result.color, result.alpha if ext in _ALPHA_OK else None
    gray_alpha = alpha is not None and color.shape[2] == 1 and ext == ".png"
    if alpha is not None and color.shape[2] == 1 and not gray_alpha:
        color = np.repeat(color, 3, axis=2)  # TIFF/WebP through OpenCV: RGBA, not two channels
    top, dtype = _sample_type(bit_depth, ext)
    h, w = color.shape[:2]
    q = np.empty((h, w, color.shape[2] + (alpha is not None)), dtype=dtype)
    bgr = not gray_alpha  # OpenCV writes BGR; encode_gray_alpha_png takes gray, alpha
    for r0, block in _quantised(color, alpha, top, dtype, bgr):
        q[r0 : r0 + len(block)] = block
    if gray_alpha:
        encoded: bytes | np.ndarray = encode_gray_alpha_png(q)
    else:
        ok, encoded = cv2.imencode(ext, q if q.shape[2] > 1 else q[..., 0])
        if not ok:
            raise DataError(f"{path}: OpenCV could not encode the image as {ext}")
    write_atomic(path, memoryview(encoded).cast("B"))
    return path


def save_png_bands(path: Path, bands: Iterable[Restored], input_hw: tuple[int, ...], bit_depth: int) -> Path:
    """``save_restored`` for a PNG whose result comes in bands of rows (``Upscaler.restore_bands``).

    Each band is quantised in row blocks, as ``save_restored`` does, and encoded as it comes
    (``PngRowWriter``), so neither the float result nor its integer copy nor the encoded file is
    ever held whole: the same pixels as ``save_restored``, for host memory of about one band.
    ``input_hw`` is the input's size: the header needs the output height before the last band
    (the scale is read off the first band's width).
    """
    top, dtype = _sample_type(bit_depth, ".png")
    raw_size: list[int] = []  # the uncompressed size: what a full disk's message estimates

    def produce(fh: BinaryIO) -> None:
        writer: PngRowWriter | None = None
        for band in bands:
            channels = band.color.shape[2] + (band.alpha is not None)
            if writer is None:
                width = band.color.shape[1]
                height = input_hw[0] * (width // input_hw[1])
                raw_size.append(width * height * channels * np.dtype(dtype).itemsize)
                writer = PngRowWriter(fh, width, height, channels, dtype)
            for _, block in _quantised(band.color, band.alpha, top, dtype, bgr=False):
                writer.write(block)
        if writer is None:
            raise RestorekitError(f"{path}: the network gave no output rows")
        writer.close()

    write_atomic(path, produce, lambda: raw_size[0] if raw_size else None)
    return path


def _sample_type(bit_depth: int, ext: str) -> tuple[float, type]:
    return (65535.0, np.uint16) if bit_depth > 8 and ext in _SIXTEEN_BIT else (255.0, np.uint8)


def _quantised(
    color: np.ndarray, alpha: np.ndarray | None, top: float, dtype: type, bgr: bool
) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, block)``: ``color`` (+ ``alpha``) clipped, scaled and rounded in row blocks of
    ~4 M samples, so a large result never exists as several float copies at once."""
    order = [2, 1, 0] if bgr and color.shape[2] == 3 else list(range(color.shape[2]))
    h, w = color.shape[:2]
    channels = len(order) + (alpha is not None)
    rows = max(1, (1 << 22) // max(1, w * channels))
    for r0 in range(0, h, rows):
        block = color[r0 : r0 + rows][..., order]  # a fresh block-sized copy
        q = np.empty((len(block), w, channels), dtype=dtype)
        q[..., : len(order)] = _quantise(block, top)
        if alpha is not None:
            q[..., -1:] = _quantise(alpha[r0 : r0 + rows].copy(), top)
        yield r0, q


def write_atomic(
    path: Path,
    data: memoryview | bytes | Callable[[BinaryIO], None],
    needed: int | Callable[[], int | None] | None = None,
) -> None:
    """Write ``data`` to a temporary name beside ``path``, then rename it over ``path``.

    ``data`` is the file's bytes, or a function that writes them into the open file as they are
    made (``save_png_bands``). A failed write (a folder made read-only, a full disk, an error
    while the bytes are being made) removes the temporary file, so no 0-byte or truncated
    ``.name.tmpPID`` is left behind, and an OS error is one line naming ``path``:
    ``PATH: no space left on device (needed ~N MB)``, N from ``needed`` (the bytes, or a
    function giving them once known; default: the size of ``data``). Temporary files of killed
    earlier runs (a streamed output keeps its file open for the whole inference) go first.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        if callable(data):
            _write_stream(tmp, data)
        else:
            _write_bytes(tmp, data)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        size = needed() if callable(needed) else needed
        if size is None and not callable(data):
            size = len(data)
        if exc.errno in DISK_ERRORS:
            raise write_error(exc, path, size, DataError) from None
        why = exc.strerror or str(exc) or type(exc).__name__
        raise DataError(f"{path}: {why[:1].lower()}{why[1:]}") from None
    except BaseException:  # Ctrl-C mid-write: still no temporary file left behind
        _discard(tmp)
        raise


def _write_bytes(path: Path, data: memoryview | bytes) -> None:
    """The one place output bytes reach the disk (tests replace it to simulate failures)."""
    with open(path, "wb") as fh:
        fh.write(data)


def _write_stream(path: Path, produce: Callable[[BinaryIO], None]) -> None:
    """The one place streamed output reaches the disk (tests replace it to simulate failures)."""
    with open(path, "wb") as fh:
        produce(fh)


def _remove_stale_temps(path: Path) -> None:
    """Remove ``.name.tmpPID`` beside ``path`` left by processes that no longer run."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.tmp*"):
        pid = tmp.name.rpartition(".tmp")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            _discard(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):  # the folder itself became unwritable: nothing more to do
        tmp.unlink(missing_ok=True)


def _quantise(block: np.ndarray, top: float) -> np.ndarray:
    np.clip(block, 0.0, 1.0, out=block)
    block *= top
    return np.round(block, out=block)


def _samples(raw: np.ndarray, gray_alpha: bool) -> np.ndarray:
    """Decoded samples (OpenCV's order) → what ``Upscaler`` takes: RGB(A), gray, or gray + alpha.

    Integer samples stay integer (the upscaler converts each tile to float32 as it goes, the
    same division as ``raw_to_float``), so a large input costs 1-2 bytes per sample, not 4.
    """
    if raw.dtype not in (np.uint8, np.uint16):  # float TIFFs
        img = raw_to_float(raw, keep_alpha=True)
        return np.ascontiguousarray(img[..., [0, 3]]) if gray_alpha else img
    if gray_alpha:  # OpenCV decodes gray + alpha as BGRA
        return np.ascontiguousarray(raw[..., [2, 3]])
    if raw.shape[2] <= 2:  # gray (+ alpha): OpenCV's order is ours
        return raw
    return raw[..., [2, 1, 0] if raw.shape[2] == 3 else [2, 1, 0, 3]]  # a copy in RGB(A) order


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
            raw = read_image_raw(src, orient=True)  # a phone photo upright, as a viewer shows it
            img = _samples(raw.img, gray_alpha=raw.img.shape[2] == 4 and is_gray_alpha_png(src))
            bit_depth, has_alpha = raw.bit_depth, raw.has_alpha
            del raw  # OpenCV's BGR samples: the RGB copy is what is tiled
            dst, line = final_path(planned, bit_depth, has_alpha, forced)
            if dst != planned and ((dst.exists() and not overwrite) or dst.resolve() in inputs_set):
                raise RestorekitError(f"{dst}: already exists; pass --overwrite to replace")
            if line and not quiet:
                say(line)
            bar_tiles.reset(total=upscaler.count_tiles(img))
            if dst.suffix.lower() == ".png" and upscaler.streams(img):  # host memory: about a tile row
                bands = upscaler.restore_bands(img, progress=bar_tiles.update)
                written.append(save_png_bands(dst, bands, img.shape[:2], bit_depth))
            else:
                result = upscaler.restore(img, progress=bar_tiles.update)
                written.append(save_restored(dst, result, bit_depth))
            bar_files.update(1)
    return written

"""Decode only the rows a crop needs: the top of a PNG, bit-identical to decoding all of it.

A PNG stores its rows top to bottom in one zlib stream, each row unfiltered from the one above,
so the rows above a crop must be decoded but the rows below it need not be. A training crop of
96 rows from a 512-row image needs on average the first ~60% of the rows (the crop's top is
uniform), which saves a third of the decode time — and decoding is most of a data loader's work.
OpenCV cannot stop early; Pillow's PNG decoder can, by giving its one decoding tile fewer rows.
The rows are the same bytes either decoder produces (both inflate and unfilter losslessly); a
self-check at first use compares the two and disables this path if they ever disagree.

It applies only where nothing else differs: 8-bit gray or RGB, not interlaced, no ``tRNS``
(OpenCV would add an alpha channel), and a complete file (ending in ``IEND``; a truncated file
goes to OpenCV, which reports it exactly as before). Everything else, and every machine without
Pillow, decodes the whole image with OpenCV (``io.decode_image_raw``). Unlike a full decode,
a flipped bit below the crop goes unnoticed: the rows it would damage are not used.

Writing works the same way round: ``PngRowWriter`` encodes a PNG band of rows by band of rows
into an open file, so ``restorekit infer`` never holds a large output whole (neither OpenCV nor
Pillow can encode part of an image). It writes gray, gray + alpha, RGB and RGBA, 8 or 16 bits,
choosing each row's filter as libpng does (the smallest sum of absolute signed bytes over the
five filter types) and deflating at OpenCV's defaults (level 1, run-length strategy), so files
come out near the size ``cv2.imwrite`` gives. The pixels are the ones given (PNG is lossless);
the bytes are not libpng's.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache
from typing import Any, BinaryIO

import cv2
import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels → PNG colour type: gray, gray+alpha, RGB, RGBA
_FILTER_BLOCK = 1 << 21  # bytes of rows filtered at once: the temporaries stay a few MB
_SAMPLE_STEP = 7  # score a row's filters on every 7th byte (prime to 3 and 4: all channels count)


def png_rows_shape(buf: np.ndarray | bytes) -> tuple[int, int, int] | None:
    """(height, width, channels) when ``buf`` is a PNG whose top rows can be decoded alone, else
    None. Reads the header chunks only (IHDR up to the first IDAT) and the last 12 bytes."""
    data = memoryview(buf).cast("B") if not isinstance(buf, bytes) else memoryview(buf)
    if len(data) < 45 or data[:8] != _SIGNATURE or data[-12:] != _IEND or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 8 or colour not in (0, 2) or interlace != 0 or not _pillow_rows_ok():
        return None
    pos = 33  # after IHDR: walk the chunk headers up to the image data
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            return height, width, 1 if colour == 0 else 3
        if kind == b"tRNS":
            return None
        pos += 12 + length
    return None


def worth_stopping_early(shape: tuple[int, ...], rows: int) -> bool:
    """Whether decoding ``rows`` of an image of ``shape`` with Pillow beats OpenCV decoding all.

    Measured on 48²–512² RGB PNGs (benchmarks/RESULTS.md, dataloader): Pillow costs ~0.1 ms more
    per call and ~1.1× OpenCV per row, so stopping early pays from about 128² pixels on, when at
    least a fifth of the rows are skipped.
    """
    return shape[0] * shape[1] >= 128 * 128 and rows * 5 <= shape[0] * 4


def decode_png_rows(buf: np.ndarray | bytes, rows: int) -> np.ndarray:
    """The first ``rows`` rows of a PNG accepted by ``png_rows_shape``, as ``(rows, w, c)`` in
    OpenCV's layout (gray, or BGR as a reversed view of Pillow's RGB)."""
    from PIL import Image

    with Image.open(io.BytesIO(buf)) as im:  # type: ignore[arg-type]  (any bytes-like buffer)
        width, height = im.size
        rows = min(max(rows, 1), height)
        if rows < height:
            (tile,) = im.tile
            im._size = (width, rows)  # the decoder fills (and Pillow allocates) only these rows
            im.tile = [tile._replace(extents=(0, 0, width, rows))]
            im.load_end = lambda: None  # the chunks after the rows read are not needed
        im.load()
        arr = np.asarray(im)
    if arr.ndim == 2:
        return arr[:, :, None]
    return arr[:, :, ::-1]


@cache
def _pillow_rows_ok() -> bool:
    """Once per process: Pillow importable and its top rows equal to OpenCV's, gray and RGB."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    rng = np.random.default_rng(0)
    for shape in ((37, 23), (37, 23, 3)):
        img = rng.integers(0, 256, size=shape, dtype=np.uint8)
        img[10:20] = img[9]  # make every PNG filter type likely
        ok, enc = cv2.imencode(".png", img)
        want = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED).reshape(shape[0], shape[1], -1)
        try:
            got: Any = [decode_png_rows(enc.tobytes(), n) for n in (1, 17, 37)]
        except Exception:  # any change in Pillow's internals: fall back to OpenCV everywhere
            return False
        same = [g.shape == want[:n].shape and np.array_equal(g, want[:n]) for g, n in zip(got, (1, 17, 37))]
        if not ok or not all(same):
            return False
    return True


def _chunk(kind: bytes, data: bytes | memoryview) -> bytes:
    head = struct.pack(">I", len(data)) + kind
    return head + bytes(data) + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def filter_rows(raw: np.ndarray, above: np.ndarray, bpp: int) -> np.ndarray:
    """PNG-filter ``raw`` ``(rows, bytes)`` uint8 whose previous row is ``above``; ``(rows, 1 + bytes)``.

    Each row gets the filter type (0-4) with the smallest sum of ``min(v, 256 - v)`` over its
    filtered bytes, ties to the lower type — libpng's heuristic, which keeps files small for
    photographs (Average, Paeth) and flat art (None, Sub, Up) alike — scored on every
    ``_SAMPLE_STEP``-th byte only: the choice needs no more, and scoring every byte of all five
    candidates cost three times the filtering itself.
    """
    up = np.empty_like(raw)
    up[0], up[1:] = above, raw[:-1]
    cols = np.arange(min(bpp, raw.shape[1] - 1), raw.shape[1], _SAMPLE_STEP)
    score = np.stack([_filtered(k, raw, up, bpp, cols) for k in range(5)])
    cost = np.abs(score.view(np.int8)).view(np.uint8).sum(axis=2, dtype=np.int64)  # |-128| wraps to 128
    kind = cost.argmin(axis=0).astype(np.uint8)
    out = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
    out[:, 0] = kind
    for k in np.unique(kind):
        rows = kind == k
        out[rows, 1:] = _filtered(int(k), raw[rows], up[rows], bpp)
    return out


def _filtered(
    kind: int, raw: np.ndarray, up: np.ndarray, bpp: int, cols: np.ndarray | None = None
) -> np.ndarray:
    """Filter type ``kind`` of ``raw`` given the rows above it (``up``), at byte columns ``cols``
    (all of them when None); uint8, modulo 256 as PNG defines it."""

    def left_of(v: np.ndarray) -> np.ndarray:  # the byte one pixel to the left (0 before the row)
        if cols is not None:
            return np.where(cols >= bpp, v[:, np.maximum(cols - bpp, 0)], 0).astype(np.uint8)
        out = np.zeros_like(v)
        out[:, bpp:] = v[:, :-bpp]
        return out

    x = raw if cols is None else raw[:, cols]
    if kind == 0:
        return x
    if kind == 2:
        return x - (up if cols is None else up[:, cols])
    a = left_of(raw)
    if kind == 1:
        return x - a
    b = up if cols is None else up[:, cols]
    if kind == 3:
        return x - ((a.astype(np.int16) + b) >> 1).astype(np.uint8)
    c = left_of(up)
    a16, b16, c16 = a.astype(np.int16), b.astype(np.int16), c.astype(np.int16)
    pa, pb = np.abs(b16 - c16), np.abs(a16 - c16)
    pc = np.abs(a16 + b16 - 2 * c16)
    return x - np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


class PngRowWriter:
    """Encode a ``height`` × ``width`` PNG into ``fh`` from bands of rows, top to bottom.

    ``write(rows)`` takes ``(h, width, channels)`` uint8 or uint16 in PNG's channel order (gray,
    gray + alpha, RGB or RGBA — not OpenCV's BGR); ``close()`` checks that all ``height`` rows
    came and ends the file. Memory is one band plus a few MB, whatever the image size.
    """

    def __init__(self, fh: BinaryIO, width: int, height: int, channels: int, dtype: Any) -> None:
        dtype = np.dtype(dtype)
        if channels not in _COLOUR_TYPES or dtype not in (np.uint8, np.uint16) or width < 1 or height < 1:
            raise ValueError(f"cannot write a {width}×{height}×{channels} {dtype} image as PNG")
        self.fh, self.width, self.height, self.channels, self.dtype = fh, width, height, channels, dtype
        self.bpp = channels * dtype.itemsize
        self.rows_left = height
        self._above = np.zeros(width * self.bpp, np.uint8)  # PNG's row above the first: zeros
        self._z = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)  # OpenCV's defaults
        ihdr = struct.pack(">IIBBBBB", width, height, 8 * dtype.itemsize, _COLOUR_TYPES[channels], 0, 0, 0)
        fh.write(_SIGNATURE + _chunk(b"IHDR", ihdr))

    def write(self, rows: np.ndarray) -> None:
        if rows.ndim != 3 or rows.shape[1:] != (self.width, self.channels) or rows.dtype != self.dtype:
            want = f"(h, {self.width}, {self.channels}) {self.dtype}"
            raise ValueError(f"expected {want} rows, got {rows.shape} {rows.dtype}")
        if rows.shape[0] > self.rows_left:
            raise ValueError(f"{rows.shape[0]} rows given, only {self.rows_left} of {self.height} left")
        raw = np.ascontiguousarray(rows, dtype=self.dtype.newbyteorder(">")).view(np.uint8)
        raw = raw.reshape(rows.shape[0], -1)
        step = max(1, _FILTER_BLOCK // raw.shape[1])
        for r0 in range(0, raw.shape[0], step):
            block = raw[r0 : r0 + step]
            self._idat(self._z.compress(filter_rows(block, self._above, self.bpp)))
            self._above = block[-1].copy()
        self.rows_left -= rows.shape[0]

    def close(self) -> None:
        if self.rows_left:
            raise ValueError(f"{self.rows_left} of {self.height} PNG rows were never written")
        self._idat(self._z.flush())
        self.fh.write(_chunk(b"IEND", b""))

    def _idat(self, data: bytes) -> None:
        if data:
            self.fh.write(_chunk(b"IDAT", data))

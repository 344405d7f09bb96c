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
"""

from __future__ import annotations

import io
import struct
from functools import cache
from typing import Any

import cv2
import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


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

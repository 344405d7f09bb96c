"""Gray + alpha PNGs, which OpenCV can neither keep when decoding nor write.

OpenCV decodes a PNG of colour type 4 (gray + alpha) to four BGRA channels, and its encoder
takes 1, 3 or 4 channels, never 2; so ``restorekit infer`` turned a gray + alpha file into RGBA.
``is_gray_alpha_png`` reads the file's IHDR (25 bytes) to know what the file was, and
``encode_gray_alpha_png`` writes colour type 4 itself: the format is simple (rows with a filter
byte, deflated), and the "Up" filter on every row keeps files close to libpng's size for
photographs and line art alike. 8- and 16-bit samples (big-endian, as PNG stores them).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GRAY_ALPHA = 4


def is_gray_alpha_png(path: str | Path) -> bool:
    """True when ``path`` is a PNG whose header says gray + alpha (colour type 4)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return False
    return len(head) == 26 and head[:8] == _SIGNATURE and head[12:16] == b"IHDR" and head[25] == _GRAY_ALPHA


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_gray_alpha_png(q: np.ndarray, level: int = 6) -> bytes:
    """A PNG of ``q`` ``(H, W, 2)`` uint8 or uint16: gray then alpha, colour type 4."""
    if q.ndim != 3 or q.shape[2] != 2 or q.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected (H, W, 2) uint8 or uint16, got {q.shape} {q.dtype}")
    h, w = q.shape[:2]
    depth = 8 * q.dtype.itemsize
    rows = np.ascontiguousarray(q, dtype=q.dtype.newbyteorder(">")).view(np.uint8).reshape(h, -1)
    up = rows.copy()
    up[1:] -= rows[:-1]  # filter 2 ("Up"): difference to the row above, modulo 256
    framed = np.empty((h, rows.shape[1] + 1), np.uint8)
    framed[:, 0] = 2
    framed[:, 1:] = up
    ihdr = struct.pack(">IIBBBBB", w, h, depth, _GRAY_ALPHA, 0, 0, 0)
    idat = zlib.compress(framed.tobytes(), level)
    return _SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")

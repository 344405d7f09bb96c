"""A procedurally drawn image set for generation toys: ``restorekit data make-shapes``.

Unconditional GANs need hundreds of images of *one kind* to learn anything, and no such set
ships in a wheel. Drawn shapes are one kind with learnable structure — a filled disc, square or
triangle of a random colour and size on a smooth two-colour background — cheap to make on any
machine, identical for the same seed, and easy to judge by eye in a sample grid.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from restorekit.errors import DataError


def draw_shape(rng: np.random.Generator, size: int) -> np.ndarray:
    """One ``size``² BGR uint8 image: a gradient background and one filled shape."""
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    img = np.ascontiguousarray(((1 - ramp) * top + ramp * bottom).repeat(size, axis=1).astype(np.uint8))
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    cx, cy = (int(v) for v in rng.integers(size // 4, 3 * size // 4 + 1, 2))
    r = int(rng.integers(size // 8, size // 3 + 1))
    kind = int(rng.integers(0, 3))
    if kind == 0:
        cv2.circle(img, (cx, cy), r, colour, -1, lineType=cv2.LINE_AA)
    elif kind == 1:
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), colour, -1, lineType=cv2.LINE_AA)
    else:
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], dtype=np.int32)
        cv2.fillPoly(img, [pts], colour, lineType=cv2.LINE_AA)
    return img


def make_shapes(root: Path, num: int = 256, size: int = 32, seed: int = 0) -> int:
    """Write ``num`` shape images to ``root`` (PNG); returns how many were written (0 if complete)."""
    if num < 1 or size < 8:
        raise DataError(f"make-shapes: expected at least 1 image of at least 8 pixels, got {num} of {size}")
    root.mkdir(parents=True, exist_ok=True)
    names = [root / f"shape_{i:05d}.png" for i in range(num)]
    if all(p.is_file() for p in names):
        return 0
    rng = np.random.default_rng(seed)
    for path in names:
        img = draw_shape(rng, size)  # drawn in order, so the set is the same for the same seed
        if not cv2.imwrite(str(path), img):
            raise DataError(f"{path}: cannot be written")
    return num

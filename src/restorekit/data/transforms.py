"""Paired geometric transforms for super-resolution training (HWC numpy images).

The conventions are BasicSR's, so patch statistics match published training recipes: the crop
position is drawn on the LQ grid and multiplied by the scale for the GT (so the two patches cover
exactly the same scene area), and the eight dihedral augmentations are produced by a horizontal
flip, a vertical flip and a transpose, each with probability 1/2. Every random choice comes from
an explicit ``numpy.random.Generator`` so a sample is a pure function of its seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from restorekit.errors import DataError


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right edges so height and width are multiples of ``scale``.

    Benchmark LR images are made from GT cropped this way, which is why evaluation crops too.
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"mod_crop expects an HW or HWC image, got shape {img.shape}")
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]


def check_pair_sizes(gt: np.ndarray, lq: np.ndarray, scale: int, gt_path: str = "") -> None:
    """Raise a DataError naming the file unless GT height/width are exactly ``scale``× the LQ's."""
    h_gt, w_gt = gt.shape[:2]
    h_lq, w_lq = lq.shape[:2]
    if (h_gt, w_gt) != (h_lq * scale, w_lq * scale):
        raise DataError(
            f"{gt_path or 'GT image'}: GT size {h_gt}x{w_gt} (HxW) is not {scale}x the LQ size "
            f"{h_lq}x{w_lq}; expected LQ {h_gt // scale}x{w_gt // scale} (wrong scale or wrong LQ file?)"
        )


def paired_random_crop(
    gt: np.ndarray,
    lq: np.ndarray,
    gt_size: int,
    scale: int,
    rng: np.random.Generator,
    gt_path: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Crop aligned patches: ``gt_size``² from GT and ``(gt_size // scale)``² from LQ.

    The LQ corner is drawn uniformly on the LQ grid; the GT corner is that times ``scale``.
    """
    if gt_size % scale:
        raise ValueError(f"gt_size {gt_size} is not a multiple of scale {scale}")
    check_pair_sizes(gt, lq, scale, gt_path)
    lq_size = gt_size // scale
    h_lq, w_lq = lq.shape[:2]
    if h_lq < lq_size or w_lq < lq_size:
        raise DataError(
            f"{gt_path or 'GT image'}: GT size {gt.shape[0]}x{gt.shape[1]} is smaller than the "
            f"training patch gt_size={gt_size}; remove the image or lower gt_size"
        )
    top = int(rng.integers(0, h_lq - lq_size + 1))
    left = int(rng.integers(0, w_lq - lq_size + 1))
    lq_patch = lq[top : top + lq_size, left : left + lq_size, ...]
    t, l = top * scale, left * scale  # noqa: E741 - t/l read as top/left
    gt_patch = gt[t : t + gt_size, l : l + gt_size, ...]
    return gt_patch, lq_patch


def random_crop(img: np.ndarray, size: int, rng: np.random.Generator, path: str = "") -> np.ndarray:
    """Crop one ``size``² patch at a uniform position (GT-only datasets)."""
    h, w = img.shape[:2]
    if h < size or w < size:
        raise DataError(
            f"{path or 'image'}: size {h}x{w} is smaller than the training patch gt_size={size}; "
            "remove the image or lower gt_size"
        )
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return img[top : top + size, left : left + size, ...]


def apply_dihedral(img: np.ndarray, hflip: bool, vflip: bool, transpose: bool) -> np.ndarray:
    """Apply the flips then the transpose, in BasicSR's order (result is a view, not a copy)."""
    if hflip:
        img = img[:, ::-1, ...]
    if vflip:
        img = img[::-1, :, ...]
    if transpose:
        img = img.swapaxes(0, 1)
    return img


def draw_augment(hflip: bool, rot: bool, rng: np.random.Generator) -> tuple[bool, bool, bool]:
    """Draw (hflip, vflip, transpose); three numbers are always drawn so the stream position
    after augmentation does not depend on which augmentations are switched on."""
    u = rng.random(3)
    return bool(hflip and u[0] < 0.5), bool(rot and u[1] < 0.5), bool(rot and u[2] < 0.5)


def augment(imgs: Sequence[np.ndarray], hflip: bool, rot: bool, rng: np.random.Generator) -> list[np.ndarray]:
    """Apply one random flip/rotation, identical for every image in ``imgs``.

    ``hflip`` enables the horizontal flip; ``rot`` the vertical flip and the transpose, which
    together with ``hflip`` give all 90° rotations. Returns contiguous copies.
    """
    ops = draw_augment(hflip, rot, rng)
    return [np.ascontiguousarray(apply_dihedral(img, *ops)) for img in imgs]

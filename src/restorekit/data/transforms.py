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


def _hw(img: np.ndarray | tuple[int, ...]) -> tuple[int, int]:
    shape = img if isinstance(img, tuple) else img.shape
    return shape[0], shape[1]


def check_pair_sizes(
    gt: np.ndarray | tuple[int, ...], lq: np.ndarray | tuple[int, ...], scale: int, gt_path: str = ""
) -> None:
    """Raise a DataError naming the file unless GT height/width are exactly ``scale``× the LQ's.

    ``gt`` and ``lq`` are images or their shapes (a dataset may know a shape before decoding).
    """
    h_gt, w_gt = _hw(gt)
    h_lq, w_lq = _hw(lq)
    if (h_gt, w_gt) != (h_lq * scale, w_lq * scale):
        raise DataError(
            f"{gt_path or 'GT image'}: GT size {h_gt}x{w_gt} (HxW) is not {scale}x the LQ size "
            f"{h_lq}x{w_lq}; expected LQ {h_gt // scale}x{w_gt // scale} (wrong scale or wrong LQ file?)"
        )


def draw_paired_crop(
    gt_hw: tuple[int, ...], lq_hw: tuple[int, ...], gt_size: int, scale: int, rng: np.random.Generator,
    gt_path: str = "",
) -> tuple[int, int]:  # fmt: skip
    """The LQ corner ``(top, left)`` of ``paired_random_crop``, drawn from the shapes alone."""
    if gt_size % scale:
        raise ValueError(f"gt_size {gt_size} is not a multiple of scale {scale}")
    check_pair_sizes(gt_hw, lq_hw, scale, gt_path)
    lq_size = gt_size // scale
    h_lq, w_lq = _hw(lq_hw)
    if h_lq < lq_size or w_lq < lq_size:
        raise DataError(
            f"{gt_path or 'GT image'}: GT size {gt_hw[0]}x{gt_hw[1]} is smaller than the "
            f"training patch gt_size={gt_size}; remove the image or lower gt_size"
        )
    top = int(rng.integers(0, h_lq - lq_size + 1))
    left = int(rng.integers(0, w_lq - lq_size + 1))
    return top, left


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
    top, left = draw_paired_crop(gt.shape, lq.shape, gt_size, scale, rng, gt_path)
    lq_size = gt_size // scale
    lq_patch = lq[top : top + lq_size, left : left + lq_size, ...]
    t, l = top * scale, left * scale  # noqa: E741 - t/l read as top/left
    gt_patch = gt[t : t + gt_size, l : l + gt_size, ...]
    return gt_patch, lq_patch


def draw_crop(hw: tuple[int, ...], size: int, rng: np.random.Generator, path: str = "") -> tuple[int, int]:
    """The corner ``(top, left)`` of ``random_crop``, drawn from the shape alone."""
    h, w = _hw(hw)
    if h < size or w < size:
        raise DataError(
            f"{path or 'image'}: size {h}x{w} is smaller than the training patch gt_size={size}; "
            "remove the image or lower gt_size"
        )
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return top, left


def random_crop(img: np.ndarray, size: int, rng: np.random.Generator, path: str = "") -> np.ndarray:
    """Crop one ``size``² patch at a uniform position (GT-only datasets)."""
    top, left = draw_crop(img.shape, size, rng, path)
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


def augment_views(
    imgs: Sequence[np.ndarray], hflip: bool, rot: bool, rng: np.random.Generator
) -> list[np.ndarray]:
    """``augment`` without the copies: the same draws and the same result, as strided views.

    For the crop-first data path, where the conversion of the patch to float (``io.raw_to_tensor``)
    makes the one copy anyway; copying here first would only add a pass over the patch.
    """
    ops = draw_augment(hflip, rot, rng)
    return [apply_dihedral(img, *ops) for img in imgs]

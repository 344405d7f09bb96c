"""Unpaired images from a folder, for unconditional generation (lightweight-gan's ``ImageDataset``).

Every image becomes one ``image_size``² training sample the way lightweight-gan prepares it:
converted to RGB, gray or RGBA; resized so that its *shorter* side is ``image_size`` (aspect
kept, area interpolation when shrinking, bicubic when enlarging); centre-cropped. With
``dataset_aug_prob`` a random-resized crop (scale 0.5–1, aspect 0.98–1.02, lightweight-gan's
values) replaces the centre crop for that draw. Folders are searched recursively (png, jpg,
webp, bmp, tif; 8- or 16-bit). Every random choice comes from the key's seed (``KeyedDataset``),
so resume stays exact. With ``cache_images`` the prepared uint8 arrays are kept in memory, so a
few hundred images are decoded and resized once, not once per draw.

Errors are one line: an empty folder, or an image smaller than ``min_size`` (naming the file and
its size), which is usually a thumbnail that would train the generator on upscaling blur.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from restorekit.data.datasets.base import KeyedDataset
from restorekit.data.io import raw_to_float, read_image_raw, scan_images
from restorekit.errors import ConfigError, DataError
from restorekit.registry import DATASETS

log = logging.getLogger("restorekit.data.datasets")

Mode = Literal["rgb", "gray", "rgba"]
CHANNELS = {"rgb": 3, "gray": 1, "rgba": 4}


def to_mode(img: np.ndarray, mode: Mode) -> np.ndarray:
    """A float HWC image (RGB/RGBA/gray, as ``raw_to_float`` gives) in ``mode``'s channels."""
    c = img.shape[2]
    if mode == "gray":
        if c == 1:
            return img
        rgb = img[:, :, :3]
        # ITU-R BT.601 luma, as PIL's convert("L")
        return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    rgb = np.repeat(img[:, :, :1], 3, axis=2) if c in (1, 2) else img[:, :, :3]
    if mode == "rgb":
        return rgb
    alpha = img[:, :, -1:] if c in (2, 4) else np.ones_like(img[:, :, :1])
    return np.concatenate([rgb, alpha], axis=2)


def resize_short_side(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    scale = size / min(h, w)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    out = cv2.resize(img, new, interpolation=interp)
    return out[:, :, None] if out.ndim == 2 else out


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def random_resized_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """torchvision's RandomResizedCrop(scale=(0.5, 1), ratio=(0.98, 1.02)), drawn from ``rng``."""
    h, w = img.shape[:2]
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(0.5, 1.0)
        ratio = float(np.exp(rng.uniform(np.log(0.98), np.log(1.02))))
        cw, ch = round((target * ratio) ** 0.5), round((target / ratio) ** 0.5)
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            crop = img[top : top + ch, left : left + cw]
            out = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC)
            return out[:, :, None] if out.ndim == 2 else out
    return center_crop(img, size)


@DATASETS.register("ImageFolderDataset")
class ImageFolderDataset(KeyedDataset):
    """``image_size``² samples ``{"gt": CHW float in [0, 1], "gt_path": str}`` from a folder of images."""

    def __init__(
        self,
        dataroot: str,
        image_size: int,
        mode: Mode = "rgb",
        dataset_aug_prob: float = 0.0,
        min_size: int | None = None,
        cache_images: bool = False,
        skip_corrupt: bool = False,
    ) -> None:
        super().__init__(skip_corrupt=skip_corrupt)
        if image_size < 4:
            raise ConfigError(f"image_size: expected at least 4 pixels, got {image_size}")
        if not 0.0 <= dataset_aug_prob <= 1.0:
            raise ConfigError(f"dataset_aug_prob: expected a probability in [0, 1], got {dataset_aug_prob}")
        self.root, self.image_size, self.mode = Path(dataroot), image_size, mode
        self.aug_prob, self.min_size = dataset_aug_prob, min_size
        self.paths = scan_images(self.root, recursive=True)
        self._cache: list[np.ndarray] | None = None
        if cache_images:
            self._cache = [self._prepared(i) for i in range(len(self.paths))]
            self.cache_bytes = sum(a.nbytes for a in self._cache)
            log.info(
                "%s: %d images cached as uint8 (%.1f MiB)",
                self.root,
                len(self._cache),
                self.cache_bytes / 2**20,
            )

    def __len__(self) -> int:
        return len(self.paths)

    def _prepared(self, index: int) -> np.ndarray:
        """The image resized (short side = image_size) in the dataset's mode, as uint8 HWC."""
        path = self.paths[index]
        raw = read_image_raw(path)
        h, w = raw.img.shape[:2]
        if self.min_size is not None and min(h, w) < self.min_size:
            raise DataError(f"{path}: {w}x{h} is smaller than min_size {self.min_size}")
        img = to_mode(raw_to_float(raw.img, keep_alpha=True), self.mode)
        img = resize_short_side(img, self.image_size)
        return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        img = self._cache[index] if self._cache is not None else self._prepared(index)
        augment = self.aug_prob > 0 and rng.random() < self.aug_prob
        patch = (
            random_resized_crop(img, self.image_size, rng) if augment else center_crop(img, self.image_size)
        )
        tensor = torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1))).float().div_(255.0)
        return {"gt": tensor, "gt_path": str(self.paths[index])}

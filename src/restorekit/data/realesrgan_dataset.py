"""Real-ESRGAN's training data set: GT images plus the blur kernels of its degradation model.

The degradation itself runs batched on the training device
(``restorekit.data.degradations.realesrgan.RealESRGANDegradation``); a worker only decodes a GT
image, flips/rotates it, crops or pads it to ``crop_pad_size`` (400, Real-ESRGAN's hard-coded
size; the task later crops ``gt_size`` patches) and draws three kernels, because kernels are
cheap numpy arrays and drawing them here spreads that work over the loader workers. A sample is
``{"gt": (3, S, S), "kernel1": (K1, K1), "kernel2": (K2, K2), "sinc_kernel": (21, 21),
"gt_path": str}`` with ``S = crop_pad_size`` and ``K = blur_kernel_size`` (21 by default).

Option names and defaults are those of ``train_realesrgan_x4plus.yml``, so its ``datasets.train``
section maps onto the constructor key for key; ``gt_size`` there is accepted and only checked
(the crop to ``gt_size`` happens in the degradation, after it). Disk folders are scanned when no
``meta_info`` is given (Real-ESRGAN requires one); LMDB stores use their keys.

Randomness follows ``data/datasets/base.py``: ``dataset[(index, seed)]`` draws the crop, the flips and
all three kernels from ``np.random.default_rng(seed)`` in that order, so a sample is a pure
function of its key — whichever worker makes it. Gray images are repeated to three channels
(the JPEG step works on RGB), as OpenCV's colour decoding does for Real-ESRGAN.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from restorekit.data.datasets import Backend, ImageStore, SRDataset, gt_refs
from restorekit.data.degradations.kernels import (
    KERNEL_TYPES,
    BlurKernelOptions,
    check_probability,
    sample_final_sinc,
)
from restorekit.data.io import img2tensor
from restorekit.data.transforms import augment
from restorekit.errors import ConfigError
from restorekit.registry import DATASETS

_PROBS = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


def crop_or_pad(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Pad bottom/right by reflection (``BORDER_REFLECT_101``) up to ``size``, then crop a
    random ``size`` × ``size`` window — Real-ESRGAN's fixed-size GT."""
    h, w = img.shape[:2]
    if h < size or w < size:
        img = cv2.copyMakeBorder(img, 0, max(0, size - h), 0, max(0, size - w), cv2.BORDER_REFLECT_101)
        if img.ndim == 2:
            img = img[:, :, None]
    h, w = img.shape[:2]
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return img[top : top + size, left : left + size, ...]


@DATASETS.register("RealESRGANDataset")
class RealESRGANDataset(SRDataset):
    """GT patches and per-sample blur kernels for Real-ESRGAN training (see the module doc)."""

    def __init__(
        self,
        dataroot_gt: str,
        meta_info: str | None = None,
        io_backend: Backend = "disk",
        use_hflip: bool = True,
        use_rot: bool = False,
        crop_pad_size: int = 400,
        gt_size: int | None = None,
        scale: int = 4,
        blur_kernel_size: int = 21,
        kernel_list: tuple[str, ...] = KERNEL_TYPES,
        kernel_prob: tuple[float, ...] = _PROBS,
        blur_sigma: tuple[float, float] = (0.2, 3.0),
        betag_range: tuple[float, float] = (0.5, 4.0),
        betap_range: tuple[float, float] = (1.0, 2.0),
        sinc_prob: float = 0.1,
        blur_kernel_size2: int = 21,
        kernel_list2: tuple[str, ...] = KERNEL_TYPES,
        kernel_prob2: tuple[float, ...] = _PROBS,
        blur_sigma2: tuple[float, float] = (0.2, 1.5),
        betag_range2: tuple[float, float] = (0.5, 4.0),
        betap_range2: tuple[float, float] = (1.0, 2.0),
        sinc_prob2: float = 0.1,
        final_sinc_prob: float = 0.8,
        skip_corrupt: bool = False,
        cache_images: bool = False,
    ) -> None:
        super().__init__(scale, gt_size, use_hflip, use_rot, skip_corrupt)
        if crop_pad_size < 1 or crop_pad_size % scale:
            raise ConfigError(f"crop_pad_size: {crop_pad_size} must be a positive multiple of scale {scale}")
        if gt_size is not None and gt_size > crop_pad_size:
            raise ConfigError(f"gt_size: {gt_size} is larger than crop_pad_size {crop_pad_size}")
        self.crop_pad_size = crop_pad_size
        self.kernels1 = BlurKernelOptions(
            blur_kernel_size, tuple(kernel_list), tuple(kernel_prob), tuple(blur_sigma),
            tuple(betag_range), tuple(betap_range), sinc_prob,
        )  # fmt: skip
        self.kernels2 = BlurKernelOptions(
            blur_kernel_size2, tuple(kernel_list2), tuple(kernel_prob2), tuple(blur_sigma2),
            tuple(betag_range2), tuple(betap_range2), sinc_prob2,
        )  # fmt: skip
        self.kernels1.check()
        self.kernels2.check("2")
        check_probability("final_sinc_prob", final_sinc_prob)
        self.final_sinc_prob = final_sinc_prob
        self.gt_store = ImageStore(str(dataroot_gt), io_backend, "dataroot_gt", cache_images)
        self.refs = gt_refs(self.gt_store, meta_info, skip_corrupt)

    def __len__(self) -> int:
        return len(self.refs)

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        ref = self.refs[index]
        path = self.gt_store.display(ref)
        img = self.gt_store.read(ref)
        if img.ndim == 2:
            img = img[:, :, None]
        if img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        # Real-ESRGAN flips the whole image and then crops; cropping first gives the same
        # distribution of patches and flips only crop_pad_size² pixels instead of a 2K image
        img = crop_or_pad(img, self.crop_pad_size, rng)
        img = augment([img], self.use_hflip, self.use_rot, rng)[0]
        kernel1 = self.kernels1.sample(rng)
        kernel2 = self.kernels2.sample(rng)
        sinc = sample_final_sinc(rng, self.final_sinc_prob)
        return {
            "gt": img2tensor(img),
            "kernel1": torch.from_numpy(np.ascontiguousarray(kernel1, dtype=np.float32)),
            "kernel2": torch.from_numpy(np.ascontiguousarray(kernel2, dtype=np.float32)),
            "sinc_kernel": torch.from_numpy(np.ascontiguousarray(sinc, dtype=np.float32)),
            "gt_path": path,
        }

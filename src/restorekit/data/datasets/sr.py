"""``SRDataset``: a ``KeyedDataset`` with the options every super-resolution dataset shares.

**Colour.** ``color: y`` (BasicSR's option of the same name, which its ECBSR files use) turns GT
and LQ into one channel each: the Y of MATLAB's ``rgb2ycbcr`` (BT.601 studio swing, so values lie
in [16, 235] / 255), computed as BasicSR's ``bgr2ycbcr(img, y_only=True)`` does on the float32
images, after the crop and flips. A gray source counts as R = G = B, as BasicSR reads it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from restorekit.data.datasets.base import KeyedDataset
from restorekit.errors import ConfigError

Color = Literal["rgb", "y"]


def to_color(img: torch.Tensor, color: Color) -> torch.Tensor:
    """A CHW float32 RGB (or gray) tensor in [0, 1] in the dataset's ``color``: itself for
    ``rgb``, its 1×H×W MATLAB-convention Y for ``y``."""
    if color == "rgb":
        return img
    from restorekit.data.color import rgb2ycbcr  # late: data workers need it only here

    hwc = img.permute(1, 2, 0).numpy()
    if hwc.shape[2] == 1:
        hwc = np.repeat(hwc, 3, axis=2)
    y = rgb2ycbcr(np.ascontiguousarray(hwc[:, :, :3]), y_only=True)
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)[None])


def check_sr_options(scale: int, gt_size: int | None) -> None:
    if scale < 1:
        raise ConfigError(f"scale: expected a positive integer, got {scale}")
    if gt_size is not None and (gt_size < scale or gt_size % scale):
        raise ConfigError(f"gt_size: {gt_size} must be a positive multiple of scale {scale}")


class SRDataset(KeyedDataset):
    """``scale``, the GT patch side ``gt_size`` (None: whole images) and the flips/rotations."""

    def __init__(
        self, scale: int, gt_size: int | None, use_hflip: bool, use_rot: bool, skip_corrupt: bool
    ) -> None:
        super().__init__(skip_corrupt)
        check_sr_options(scale, gt_size)
        self.scale = scale
        self.gt_size = gt_size
        self.use_hflip = use_hflip
        self.use_rot = use_rot

"""``SRDataset``: a ``KeyedDataset`` with the options every super-resolution dataset shares."""

from __future__ import annotations

from restorekit.data.datasets.base import KeyedDataset
from restorekit.errors import ConfigError


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

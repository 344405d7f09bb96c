"""``BicubicDataset``: GT images only, the LQ made on the fly by MATLAB-compatible bicubic."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from restorekit.data.datasets.sr import Color, SRDataset, to_color
from restorekit.data.datasets.store import Backend, ImageStore, fill_cache, gt_refs
from restorekit.data.io import img2tensor, raw_to_float, raw_to_tensor
from restorekit.data.transforms import augment_views, draw_crop
from restorekit.errors import ConfigError
from restorekit.registry import DATASETS


def bicubic_lq(gt: np.ndarray, scale: int) -> np.ndarray:
    """LQ as the benchmark sets make it: MATLAB bicubic ``imresize(gt, 1/scale)``, clipped to
    [0, 1] and rounded to 8 bits (MATLAB writes uint8 PNGs). ``gt`` must be mod-cropped."""
    from restorekit.data.degradations import imresize  # imported late: a sibling package

    lq = np.asarray(imresize(gt, 1.0 / scale), dtype=np.float32)
    if lq.ndim == 2:
        lq = lq[:, :, None]
    want = (gt.shape[0] // scale, gt.shape[1] // scale)
    if lq.shape[:2] != want:  # guards against off-by-one output sizes from float scales
        raise RuntimeError(f"imresize gave {lq.shape[:2]} for {gt.shape[:2]} at 1/{scale}, expected {want}")
    return (np.round(np.clip(lq, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


@DATASETS.register("BicubicDataset")
class BicubicDataset(SRDataset):
    """GT images only; the LQ is made on the fly with MATLAB-compatible bicubic downscaling.

    The GT is mod-cropped to ``scale``, cropped/flipped as decoded (uint8/uint16) when
    ``gt_size`` is set, and only the patch is converted to float and downscaled, which is far
    cheaper than converting and downscaling the whole image. With ``degrade_on="device"``
    (config ``data.degrade_on``) samples carry no ``lq``: the task makes the LQ batch with the
    same MATLAB bicubic on the training device. ``color: y`` (host only) takes the Y of the
    8-bit bicubic LQ and of the GT, as of a benchmark set's LR PNGs (``datasets.sr``).
    """

    def __init__(
        self,
        dataroot_gt: str,
        scale: int,
        gt_size: int | None = None,
        use_hflip: bool = False,
        use_rot: bool = False,
        meta_info: str | None = None,
        io_backend: Backend = "disk",
        skip_corrupt: bool = False,
        cache_images: bool = False,
        degrade_on: Literal["host", "device"] = "host",
        color: Color = "rgb",
    ) -> None:
        super().__init__(scale, gt_size, use_hflip, use_rot, skip_corrupt)
        if color != "rgb" and degrade_on == "device":
            raise ConfigError(f"color: {color!r} needs degrade_on: host (the device path makes RGB LQ)")
        self.degrade_on, self.color = degrade_on, color
        self.gt_store = ImageStore(str(dataroot_gt), io_backend, "dataroot_gt", cache_images)
        self.refs = gt_refs(self.gt_store, meta_info, skip_corrupt)
        self.cache_bytes = fill_cache(type(self).__name__, [(self.gt_store, self.refs)], skip_corrupt)

    def __len__(self) -> int:
        return len(self.refs)

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        ref = self.refs[index]
        path = self.gt_store.display(ref)
        src = self.gt_store.open(ref)
        h, w = src.shape[0] - src.shape[0] % self.scale, src.shape[1] - src.shape[1] % self.scale  # mod crop
        if self.gt_size is None:
            gt = src.rows(h)[:, :w]
        else:  # decode only the rows down to the patch (PNG), crop and flip the integer samples
            top, left = draw_crop((h, w), self.gt_size, rng, path)
            gt = src.rows(top + self.gt_size)[top : top + self.gt_size, left : left + self.gt_size]
            gt = augment_views([gt], self.use_hflip, self.use_rot, rng)[0]
        if self.degrade_on == "device":  # the task makes the LQ batch on the training device
            return {"gt": raw_to_tensor(gt), "lq_path": path, "gt_path": path}
        gt_float = raw_to_float(gt)  # the MATLAB bicubic works on float HWC
        lq = bicubic_lq(gt_float, self.scale)
        lq_t, gt_t = to_color(img2tensor(lq), self.color), to_color(img2tensor(gt_float), self.color)
        return {"lq": lq_t, "gt": gt_t, "lq_path": path, "gt_path": path}

"""``PairedImageDataset``: GT/LQ pairs from two folders or two LMDB stores.

**Pairing (BasicSR style).** An LQ file is found by stem: ``filename_tmpl.format(gt_stem)``
with the GT's extension preferred, else any image extension. When ``filename_tmpl`` is the
default ``'{}'`` and no such file exists, the DIV2K name ``<stem>x<scale>`` (``0001x2.png``) is
tried too, so the official DIV2K LR folders work without renaming. LQ files without a GT partner
are ignored; GT files without an LQ partner are an error listing the first few.

**Sizes.** GT must be ``scale`` × LQ. A GT up to ``scale - 1`` pixels larger is cropped at the
bottom/right (LR made from a mod-cropped GT, as for the benchmark sets); anything else is an
error naming the file and both sizes.

**Crop first, convert after.** The crop is drawn from the image shapes (a PNG's header), then
only the rows down to the patch are decoded where the file allows it (8-bit gray/RGB PNG, see
``data.png_rows``); both images stay as decoded (uint8/uint16, OpenCV channel order) while the
aligned patches are cut and flipped, as views, and only the two patches are converted to
float32 CHW RGB, once each (``io.raw_to_tensor``). The values are bitwise those of decoding and
converting the whole images first, as the loader once did (tests/test_crop_first.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from restorekit.data.datasets.sr import Color, SRDataset, to_color
from restorekit.data.datasets.store import (
    _SHOW,
    Backend,
    ImageStore,
    check_not_empty,
    fill_cache,
    gt_names,
)
from restorekit.data.io import IMG_EXTENSIONS, raw_to_tensor
from restorekit.data.transforms import augment_views, check_pair_sizes, draw_paired_crop
from restorekit.errors import ConfigError, DataError
from restorekit.registry import DATASETS


def _lq_candidates(stem: str, filename_tmpl: str, scale: int) -> list[str]:
    try:
        first = filename_tmpl.format(stem)
    except (IndexError, KeyError, ValueError):
        raise ConfigError(
            f"filename_tmpl: {filename_tmpl!r} must contain one '{{}}' for the GT name"
        ) from None
    return [first, f"{stem}x{scale}"] if filename_tmpl == "{}" else [first]


def pair_refs(
    gt: ImageStore, lq: ImageStore, names: list[str], filename_tmpl: str, scale: int
) -> list[tuple[str, str]]:
    """Match every GT ref with its LQ ref; unmatched GT names are one error listing a few."""
    pairs: list[tuple[str, str]] = []
    unmatched: list[str] = []
    lq_keys = set(lq.reader.keys()) if lq.reader is not None else set()
    for name in names:
        if lq.reader is not None:
            found = next((c for c in _lq_candidates(name, filename_tmpl, scale) if c in lq_keys), None)
            if found is None:
                unmatched.append(name)
            else:
                pairs.append((name, found))
            continue
        rel = Path(name)
        listing = lq.names_in(rel.parent)
        stem = next((c for c in _lq_candidates(rel.stem, filename_tmpl, scale) if c in listing), None)
        if stem is None:
            unmatched.append(name)
            continue
        files = listing[stem]
        same_ext = [f for f in files if Path(f).suffix.lower() == rel.suffix.lower()]
        if len(same_ext) != 1 and len(files) > 1:
            raise DataError(f"{lq.root}: several LQ files match GT {name}: {', '.join(files)}; keep one")
        chosen = (same_ext or files)[0]
        pairs.append((str(Path(gt.root) / rel), str(Path(lq.root) / rel.parent / chosen)))
    lq._listing.clear()  # only needed while pairing; keep pickles to workers small
    if unmatched:
        looked = " or ".join(repr(t) for t in _lq_candidates("<stem>", filename_tmpl, scale))
        raise DataError(
            f"{len(unmatched)} of {len(names)} GT images in {gt.root} have no LQ partner in {lq.root} "
            f"(looked for {looked} with any of {', '.join(IMG_EXTENSIONS)}): "
            f"{', '.join(unmatched[:_SHOW])}{' ...' if len(unmatched) > _SHOW else ''}"
        )
    return pairs


def fit_gt_shape(gt_hw: tuple[int, ...], lq_hw: tuple[int, ...], scale: int, gt_path: str) -> tuple[int, int]:
    """The GT (height, width) to use: exactly ``scale`` × LQ when the GT is at most ``scale - 1``
    pixels too large, else the GT's own, which must then be ``scale`` × LQ (a DataError if not)."""
    h, w = lq_hw[0] * scale, lq_hw[1] * scale
    if not (h <= gt_hw[0] < h + scale and w <= gt_hw[1] < w + scale):
        h, w = gt_hw[0], gt_hw[1]
    check_pair_sizes((h, w), lq_hw, scale, gt_path)
    return h, w


def fit_gt_to_lq(gt: np.ndarray, lq: np.ndarray, scale: int, gt_path: str) -> np.ndarray:
    """Crop GT to exactly ``scale`` × LQ when it is at most ``scale - 1`` pixels too large.

    Works on any HWC array (float or the raw integer samples): it only slices, never copies.
    """
    h, w = fit_gt_shape(gt.shape, lq.shape, scale, gt_path)
    return gt[:h, :w, ...]


@DATASETS.register("PairedImageDataset")
class PairedImageDataset(SRDataset):
    """GT/LQ pairs from two folders or two LMDB stores; random patches when ``gt_size`` is set.

    ``meta_info`` is a BasicSR meta-info file (one GT name per line, optionally followed by its
    shape) selecting which GT images to use; with LMDB the GT store's keys are used otherwise.
    Without ``gt_size`` (validation) whole images are returned, the GT cropped to ``scale`` × LQ.
    ``cache_images`` decodes every image once, at construction, and keeps it as decoded (see
    ``datasets.store``; ``cache_bytes`` says how much memory that is): worth it for small data
    sets, where decoding dominates the step time. ``color: y`` gives 1-channel Y images
    (``datasets.sr``), for BasicSR's Y-channel option files.
    """

    def __init__(
        self,
        dataroot_gt: str,
        dataroot_lq: str,
        scale: int,
        gt_size: int | None = None,
        use_hflip: bool = False,
        use_rot: bool = False,
        meta_info: str | None = None,
        io_backend: Backend = "disk",
        filename_tmpl: str = "{}",
        skip_corrupt: bool = False,
        cache_images: bool = False,
        color: Color = "rgb",
    ) -> None:
        super().__init__(scale, gt_size, use_hflip, use_rot, skip_corrupt)
        self.color = color
        self.gt_store = ImageStore(str(dataroot_gt), io_backend, "dataroot_gt", cache_images)
        self.lq_store = ImageStore(str(dataroot_lq), io_backend, "dataroot_lq", cache_images)
        names = gt_names(self.gt_store, meta_info)
        self.pairs = pair_refs(self.gt_store, self.lq_store, names, filename_tmpl, scale)
        if io_backend == "disk":
            check_not_empty([p for pair in self.pairs for p in pair], skip_corrupt)
        loads = [(self.gt_store, [g for g, _ in self.pairs]), (self.lq_store, [q for _, q in self.pairs])]
        self.cache_bytes = fill_cache(type(self).__name__, loads, skip_corrupt)

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        gt_ref, lq_ref = self.pairs[index]
        gt_path, lq_path = self.gt_store.display(gt_ref), self.lq_store.display(lq_ref)
        gt_src, lq_src = self.gt_store.open(gt_ref), self.lq_store.open(lq_ref)  # headers; unreadable fails
        h, w = fit_gt_shape(gt_src.shape, lq_src.shape, self.scale, gt_path)
        if self.gt_size is None:
            gt, lq = gt_src.rows(h)[:, :w], lq_src.rows(lq_src.shape[0])
        else:  # decode only the rows down to the patch (PNG), crop, flip: all on the integer samples
            top, left = draw_paired_crop((h, w), lq_src.shape, self.gt_size, self.scale, rng, gt_path)
            size, lq_size = self.gt_size, self.gt_size // self.scale
            y, x = top * self.scale, left * self.scale
            gt = gt_src.rows(y + size)[y : y + size, x : x + size]
            lq = lq_src.rows(top + lq_size)[top : top + lq_size, left : left + lq_size]
            gt, lq = augment_views([gt, lq], self.use_hflip, self.use_rot, rng)
        lq_t, gt_t = to_color(raw_to_tensor(lq), self.color), to_color(raw_to_tensor(gt), self.color)
        return {"lq": lq_t, "gt": gt_t, "lq_path": lq_path, "gt_path": gt_path}

"""Super-resolution datasets: paired GT/LQ folders (or LMDB stores) and GT-only with bicubic LQ.

**Keys and randomness.** ``dataset[i]`` draws its crop and augmentation from a fresh,
OS-seeded generator; ``dataset[(i, seed)]`` draws them from ``np.random.default_rng(seed)``, so
the same ``(index, seed)`` always gives the bitwise-same sample, whatever the worker process
or worker count. The trainer's sampler hands out such seeds, which is what makes a resumed run
see exactly the batches the uninterrupted run would have seen.

**Pairing (BasicSR style).** An LQ file is found by stem: ``filename_tmpl.format(gt_stem)``
with the GT's extension preferred, else any image extension. When ``filename_tmpl`` is the
default ``'{}'`` and no such file exists, the DIV2K name ``<stem>x<scale>`` (``0001x2.png``) is
tried too, so the official DIV2K LR folders work without renaming. LQ files without a GT partner
are ignored; GT files without an LQ partner are an error listing the first few.

**Sizes.** GT must be ``scale`` × LQ. A GT up to ``scale - 1`` pixels larger is cropped at the
bottom/right (LR made from a mod-cropped GT, as for the benchmark sets); anything else is an
error naming the file and both sizes.

**Corrupt files.** With ``skip_corrupt`` an unreadable file (empty, truncated, not an image) is
logged once, counted in ``num_skipped`` (per process), and the next index is served instead.
Size mismatches are never skipped: they mean a wrong scale or wrong folder, not a bad file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from restorekit.data.io import (
    IMG_EXTENSIONS,
    UnreadableImageError,
    imfrombytes,
    img2tensor,
    is_image_file,
    read_image,
    scan_images,
)
from restorekit.data.lmdb_io import LmdbReader, read_meta_info
from restorekit.data.transforms import augment, check_pair_sizes, mod_crop, paired_random_crop, random_crop
from restorekit.errors import ConfigError, DataError
from restorekit.registry import DATASETS

log = logging.getLogger(__name__)

Backend = Literal["disk", "lmdb"]
_SHOW = 5  # how many offending names an error lists


def _split_key(key: Any) -> tuple[int, int | None]:
    """``i`` or ``(i, seed)`` → (index, seed or None)."""
    if isinstance(key, tuple | list):
        if len(key) != 2:
            raise TypeError(f"dataset key must be an index or (index, seed), got {key!r}")
        return int(key[0]), int(key[1])
    if isinstance(key, torch.Tensor):
        key = key.item()
    return int(key), None


class _Store:
    """One image root: a folder (refs are file paths) or an LMDB store (refs are keys)."""

    def __init__(self, root: str, backend: Backend, what: str, cache: bool = False) -> None:
        self.root = root
        # Decoded images kept in memory (per process) when asked: for small data sets, decoding a
        # whole PNG to cut one patch costs more than the training step itself on a CPU.
        self.cache: dict[str, np.ndarray] | None = {} if cache else None
        self.backend = backend
        self.reader: LmdbReader | None = None
        if backend == "lmdb":
            self.reader = LmdbReader(root)
        elif backend == "disk":
            p = Path(root)
            if not p.is_dir():
                raise DataError(
                    f"{what}: folder {root} does not exist"
                    if not p.exists()
                    else f"{what}: {root} is a file, expected a folder of images"
                )
        else:
            raise ConfigError(f"io_backend: expected 'disk' or 'lmdb', got {backend!r}")
        self._listing: dict[Path, dict[str, list[str]]] = {}

    def read(self, ref: str) -> np.ndarray:
        if self.cache is not None and ref in self.cache:
            return self.cache[ref].copy()  # callers may modify what they get
        if self.reader is not None:
            img = imfrombytes(self.reader.get(ref), self.display(ref))
        else:
            img = read_image(ref)
        if self.cache is not None:
            self.cache[ref] = img.copy()
        return img

    def display(self, ref: str) -> str:
        """What a sample reports as its path; the stem is always the pairing key."""
        return f"{self.root}/{ref}.png" if self.reader is not None else ref

    def names_in(self, rel_dir: Path) -> dict[str, list[str]]:
        """Disk: {stem: [file names]} of the images in ``root/rel_dir`` (cached per folder)."""
        if rel_dir not in self._listing:
            folder = Path(self.root) / rel_dir
            by_stem: dict[str, list[str]] = {}
            if folder.is_dir():
                for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                    if entry.is_file() and is_image_file(entry.name):
                        by_stem.setdefault(Path(entry.name).stem, []).append(entry.name)
            self._listing[rel_dir] = by_stem
        return self._listing[rel_dir]


def _gt_names(store: _Store, meta_info: str | None) -> list[str]:
    """GT refs: disk paths relative to the root (with extension), or LMDB keys."""
    if meta_info is not None:
        names = [name for name, _ in read_meta_info(meta_info)]
        if store.reader is not None:
            keys = [str(Path(n).with_suffix("")) if is_image_file(n) else n for n in names]
            known = set(store.reader.keys())
            missing = [k for k in keys if k not in known]
            if missing:
                raise DataError(
                    f"{meta_info}: {len(missing)} listed GT keys are not in {store.root}: "
                    f"{', '.join(missing[:_SHOW])}{' ...' if len(missing) > _SHOW else ''}"
                )
            return keys
        missing = [n for n in names if not (Path(store.root) / n).is_file()]
        if missing:
            raise DataError(
                f"{meta_info}: {len(missing)} listed GT images are not in {store.root}: "
                f"{', '.join(missing[:_SHOW])}{' ...' if len(missing) > _SHOW else ''}"
            )
        return names
    if store.reader is not None:
        return store.reader.keys()
    return [p.name for p in scan_images(store.root)]


def _lq_candidates(stem: str, filename_tmpl: str, scale: int) -> list[str]:
    try:
        first = filename_tmpl.format(stem)
    except (IndexError, KeyError, ValueError):
        raise ConfigError(
            f"filename_tmpl: {filename_tmpl!r} must contain one '{{}}' for the GT name"
        ) from None
    return [first, f"{stem}x{scale}"] if filename_tmpl == "{}" else [first]


def _pair(gt: _Store, lq: _Store, names: list[str], filename_tmpl: str, scale: int) -> list[tuple[str, str]]:
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


def gt_refs(store: _Store, meta_info: str | None, skip_corrupt: bool) -> list[str]:
    """What a GT-only dataset reads: file paths (checked for zero-byte files) or LMDB keys."""
    names = _gt_names(store, meta_info)
    if store.backend != "disk":
        return names
    refs = [str(Path(store.root) / n) for n in names]
    _check_not_empty(refs, skip_corrupt)
    return refs


def _check_not_empty(paths: list[str], skip_corrupt: bool) -> None:
    """Report zero-byte files at construction: a cheap stat, not a decode."""
    if skip_corrupt:
        return  # they will be skipped (and counted) when drawn
    for p in paths:
        if os.stat(p).st_size == 0:
            raise DataError(f"{p}: is empty (0 bytes); delete it or set skip_corrupt: true")


def _check_options(scale: int, gt_size: int | None) -> None:
    if scale < 1:
        raise ConfigError(f"scale: expected a positive integer, got {scale}")
    if gt_size is not None and (gt_size < scale or gt_size % scale):
        raise ConfigError(f"gt_size: {gt_size} must be a positive multiple of scale {scale}")


def fit_gt_to_lq(gt: np.ndarray, lq: np.ndarray, scale: int, gt_path: str) -> np.ndarray:
    """Crop GT to exactly ``scale`` × LQ when it is at most ``scale - 1`` pixels too large."""
    h, w = lq.shape[0] * scale, lq.shape[1] * scale
    if h <= gt.shape[0] < h + scale and w <= gt.shape[1] < w + scale:
        gt = gt[:h, :w, ...]
    check_pair_sizes(gt, lq, scale, gt_path)
    return gt


class _SRDataset(Dataset):
    """Shared key handling, seeding and corrupt-file skipping; subclasses implement ``_load``."""

    def __init__(
        self, scale: int, gt_size: int | None, use_hflip: bool, use_rot: bool, skip_corrupt: bool
    ) -> None:
        _check_options(scale, gt_size)
        self.scale = scale
        self.gt_size = gt_size
        self.use_hflip = use_hflip
        self.use_rot = use_rot
        self.skip_corrupt = skip_corrupt
        self.num_skipped = 0  # per process: each DataLoader worker counts its own
        self._warned: set[str] = set()

    def __len__(self) -> int:
        raise NotImplementedError

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = _split_key(key)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} samples")
        for attempt in range(n):
            rng = np.random.default_rng(seed)
            try:
                return self._load((index + attempt) % n, rng)
            except UnreadableImageError as exc:
                if not self.skip_corrupt:
                    raise
                self.num_skipped += 1
                if str(exc) not in self._warned:
                    self._warned.add(str(exc))
                    log.warning("skipping unreadable image: %s", exc)
        raise DataError(f"{type(self).__name__}: all {n} samples are unreadable")


@DATASETS.register("PairedImageDataset")
class PairedImageDataset(_SRDataset):
    """GT/LQ pairs from two folders or two LMDB stores; random patches when ``gt_size`` is set.

    ``meta_info`` is a BasicSR meta-info file (one GT name per line, optionally followed by its
    shape) selecting which GT images to use; with LMDB the GT store's keys are used otherwise.
    Without ``gt_size`` (validation) whole images are returned, the GT cropped to ``scale`` × LQ.
    ``cache_images`` keeps decoded images in memory (each worker process holds its own copy):
    worth it for small data sets, where decoding dominates the step time.
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
    ) -> None:
        super().__init__(scale, gt_size, use_hflip, use_rot, skip_corrupt)
        self.gt_store = _Store(str(dataroot_gt), io_backend, "dataroot_gt", cache_images)
        self.lq_store = _Store(str(dataroot_lq), io_backend, "dataroot_lq", cache_images)
        names = _gt_names(self.gt_store, meta_info)
        self.pairs = _pair(self.gt_store, self.lq_store, names, filename_tmpl, scale)
        if io_backend == "disk":
            _check_not_empty([p for pair in self.pairs for p in pair], skip_corrupt)

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        gt_ref, lq_ref = self.pairs[index]
        gt_path, lq_path = self.gt_store.display(gt_ref), self.lq_store.display(lq_ref)
        gt = self.gt_store.read(gt_ref)
        lq = self.lq_store.read(lq_ref)
        gt = fit_gt_to_lq(gt, lq, self.scale, gt_path)
        if self.gt_size is not None:
            gt, lq = paired_random_crop(gt, lq, self.gt_size, self.scale, rng, gt_path)
            gt, lq = augment([gt, lq], self.use_hflip, self.use_rot, rng)
        return {"lq": img2tensor(lq), "gt": img2tensor(gt), "lq_path": lq_path, "gt_path": gt_path}


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
class BicubicDataset(_SRDataset):
    """GT images only; the LQ is made on the fly with MATLAB-compatible bicubic downscaling.

    The GT is mod-cropped to ``scale``, cropped/augmented first (when ``gt_size`` is set) and
    only the patch is downscaled, which is far cheaper than downscaling the whole image. With
    ``degrade_on="device"`` (config ``data.degrade_on``) samples carry no ``lq``: the task makes
    the LQ batch with the same MATLAB bicubic on the training device.
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
    ) -> None:
        super().__init__(scale, gt_size, use_hflip, use_rot, skip_corrupt)
        self.degrade_on = degrade_on
        self.gt_store = _Store(str(dataroot_gt), io_backend, "dataroot_gt", cache_images)
        self.refs = gt_refs(self.gt_store, meta_info, skip_corrupt)

    def __len__(self) -> int:
        return len(self.refs)

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        ref = self.refs[index]
        path = self.gt_store.display(ref)
        gt = mod_crop(self.gt_store.read(ref), self.scale)
        if self.gt_size is not None:
            gt = random_crop(gt, self.gt_size, rng, path)
            gt = augment([gt], self.use_hflip, self.use_rot, rng)[0]
        if self.degrade_on == "device":  # the task makes the LQ batch on the training device
            return {"gt": img2tensor(gt), "lq_path": path, "gt_path": path}
        lq = bicubic_lq(gt, self.scale)
        return {"lq": img2tensor(lq), "gt": img2tensor(gt), "lq_path": path, "gt_path": path}

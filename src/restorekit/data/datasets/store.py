"""Where a dataset's images come from: a folder or a BasicSR-layout LMDB store, plus the cache.

``ImageStore.open(ref)`` gives a ``Source``: the image's shape first (from a PNG's header, so a
crop can be drawn before anything is decoded), then ``rows(n)``, which decodes only the rows down
to the crop where that is bit-identical and pays (``data.png_rows``), else the whole image once.

**The decoded-image cache** (``cache_images``) holds images as decoded — uint8 for 8-bit files,
uint16 for 16-bit ones — not as float32, so the same memory holds four times as many 8-bit
images; the crop and the float conversion happen per sample (``io.raw_to_tensor``). It is filled
once, in the process that builds the dataset, so its size is known (and logged) at start-up and
``DataLoader`` workers started by ``fork`` (Linux) share its pages instead of each decoding and
holding its own copy: cached arrays are read-only, so nothing ever writes (and copies) a page.
Under ``spawn`` (Windows, macOS) each worker receives a copy with the pickled dataset.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np

from restorekit.data.datasets.base import log
from restorekit.data.io import (
    UnreadableImageError,
    decode_image_raw,
    is_image_file,
    raw_to_float,
    read_bytes,
    read_image_raw,
    scan_images,
)
from restorekit.data.lmdb_io import LmdbReader, read_meta_info
from restorekit.data.png_rows import decode_png_rows, png_rows_shape, worth_stopping_early
from restorekit.errors import ConfigError, DataError

Backend = Literal["disk", "lmdb"]
_SHOW = 5  # how many offending names an error lists


class Source:
    """An image whose shape is known and whose samples are decoded on demand: only the rows a
    crop needs (``rows(n)``) for PNGs that allow it (``data.png_rows``), else all of them once."""

    __slots__ = ("_buf", "_full", "name", "shape")

    def __init__(self, name: str, full: np.ndarray | None = None, buf: np.ndarray | None = None) -> None:
        self.name, self._full, self._buf = name, full, buf
        shape = png_rows_shape(buf) if buf is not None else None
        if shape is None and full is None:
            assert buf is not None
            self._full = full = decode_image_raw(buf, name).img
        self.shape: tuple[int, ...] = full.shape if full is not None else shape  # type: ignore[assignment]

    def rows(self, n: int) -> np.ndarray:
        """Rows ``0 .. n-1`` (HWC, as decoded: ``io.RawImage.img``); read-only when cached."""
        if self._full is None:
            assert self._buf is not None
            if worth_stopping_early(self.shape, n):
                try:
                    return decode_png_rows(self._buf, n)
                except Exception:  # whatever Pillow disliked, OpenCV decides (and names the file)
                    pass
            self._full = decode_image_raw(self._buf, self.name).img
        return self._full[:n]


class ImageStore:
    """One image root: a folder (refs are file paths) or an LMDB store (refs are keys)."""

    def __init__(self, root: str, backend: Backend, what: str, cache: bool = False) -> None:
        self.root = root
        # ref → read-only decoded array, or the message of the UnreadableImageError it gave
        self.cache: dict[str, np.ndarray | str] | None = {} if cache else None
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

    def _decode(self, ref: str) -> np.ndarray:
        if self.reader is not None:
            return decode_image_raw(self.reader.get(ref), self.display(ref)).img
        return read_image_raw(ref).img

    def read_raw(self, ref: str) -> np.ndarray:
        """HWC samples as decoded (``io.RawImage.img``: uint8/uint16, OpenCV channel order).

        May be the cached array itself, which is read-only: crop and flip views of it, convert
        with ``io.raw_to_tensor`` / ``raw_to_float``, never write into it.
        """
        if self.cache is not None and ref in self.cache:
            hit = self.cache[ref]
            if isinstance(hit, str):
                raise UnreadableImageError(hit)
            return hit
        img = self._decode(ref)
        if self.cache is not None:  # a store whose dataset did not preload: fill as drawn
            img.flags.writeable = False
            self.cache[ref] = img
        return img

    def open(self, ref: str) -> Source:
        """The image at ``ref`` with its shape known and its rows decoded on demand (cached
        images: the cached array). Unreadable files raise here, as ``read_raw`` would."""
        if self.cache is not None:
            return Source(self.display(ref), full=self.read_raw(ref))
        buf = self.reader.get(ref) if self.reader is not None else read_bytes(ref)
        return Source(self.display(ref), buf=np.frombuffer(buf, np.uint8) if isinstance(buf, bytes) else buf)

    def read(self, ref: str) -> np.ndarray:
        """The whole image as float32 HWC RGB (or gray) in [0, 1], alpha dropped; a new array."""
        return raw_to_float(self.read_raw(ref))

    def preload(self, refs: list[str], skip_corrupt: bool) -> None:
        """Decode ``refs`` into the cache now; unreadable ones fail here unless ``skip_corrupt``,
        when they are remembered and fail (to be skipped and counted) whenever drawn."""
        assert self.cache is not None
        for ref in refs:
            if ref in self.cache:
                continue
            try:
                img = self._decode(ref)
            except UnreadableImageError as exc:
                if not skip_corrupt:
                    raise
                self.cache[ref] = str(exc)
                continue
            img.flags.writeable = False
            self.cache[ref] = img

    def cached_arrays(self) -> list[np.ndarray]:
        return [v for v in (self.cache or {}).values() if isinstance(v, np.ndarray)]

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
                    if _is_file(entry) and is_image_file(entry.name):
                        by_stem.setdefault(Path(entry.name).stem, []).append(entry.name)
            self._listing[rel_dir] = by_stem
        return self._listing[rel_dir]


def _is_file(entry: os.DirEntry[str]) -> bool:
    """A regular file (or a link to one); a dangling link or a symlink loop is no file, not an error."""
    try:
        return entry.is_file()
    except OSError:  # ELOOP from a link to itself, EACCES...
        return False


def fill_cache(owner: str, loads: list[tuple[ImageStore, list[str]]], skip_corrupt: bool) -> int:
    """Preload every ``(store, refs)`` whose store caches; log and return the bytes held."""
    stores = [(store, refs) for store, refs in loads if store.cache is not None]
    if not stores:
        return 0
    for store, refs in stores:
        store.preload(refs, skip_corrupt)
    arrays = [a for store, _ in stores for a in store.cached_arrays()]
    nbytes = sum(a.nbytes for a in arrays)
    kinds = ", ".join(f"{n} {dt}" for dt, n in sorted(Counter(str(a.dtype) for a in arrays).items()))
    log.info(
        "%s: cache_images holds %d decoded images (%s), %.1f MiB; loader workers started by fork share it",
        owner, len(arrays), kinds or "none readable", nbytes / 2**20,
    )  # fmt: skip
    return nbytes


def gt_names(store: ImageStore, meta_info: str | None) -> list[str]:
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


def gt_refs(store: ImageStore, meta_info: str | None, skip_corrupt: bool) -> list[str]:
    """What a GT-only dataset reads: file paths (checked for zero-byte files) or LMDB keys."""
    names = gt_names(store, meta_info)
    if store.backend != "disk":
        return names
    refs = [str(Path(store.root) / n) for n in names]
    check_not_empty(refs, skip_corrupt)
    return refs


def check_not_empty(paths: list[str], skip_corrupt: bool) -> None:
    """Report zero-byte files at construction: a cheap stat, not a decode."""
    if skip_corrupt:
        return  # they will be skipped (and counted) when drawn
    for p in paths:
        if os.stat(p).st_size == 0:
            raise DataError(f"{p}: is empty (0 bytes); delete it or set skip_corrupt: true")

"""LMDB image stores in BasicSR's layout, so existing ``.lmdb`` folders keep working.

Layout (``basicsr/utils/lmdb_util.py``)::

    name.lmdb/
      data.mdb        the key/value store: key = file stem, value = PNG-encoded image bytes
      lock.mdb        LMDB's lock file
      meta_info.txt   one line per image: ``<stem>.png (h,w,c) <compress_level>``

Why LMDB at all: thousands of small random reads from one memory-mapped file are much faster
than opening thousands of files (BasicSR #219). Why a lazily opened environment: an open LMDB
environment cannot be pickled, which breaks ``DataLoader`` workers under the ``spawn`` start
method (Windows, macOS; BasicSR #49), and a handle inherited through ``fork`` must not be reused.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

import cv2
import lmdb
import numpy as np

from restorekit.data.io import PathLike, UnreadableImageError, scan_images
from restorekit.errors import DataError

META_INFO = "meta_info.txt"
_META_LINE = re.compile(r"^(\S+)\s+\((\d+),\s*(\d+),\s*(\d+)\)")


def _encode_png(path: Path, compress_level: int) -> tuple[bytes, tuple[int, int, int]]:
    """Decode any supported file and re-encode it as PNG, as BasicSR stores it (BGR, lossless)."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise UnreadableImageError(f"{path}: is empty (0 bytes)")
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise UnreadableImageError(f"{path}: is not a readable image (truncated, corrupt or not an image)")
    ok, buf = cv2.imencode(".png", raw, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise DataError(f"{path}: could not be encoded as PNG (dtype {raw.dtype}, shape {raw.shape})")
    h, w = raw.shape[:2]
    c = 1 if raw.ndim == 2 else raw.shape[2]
    return buf.tobytes(), (h, w, c)


def make_lmdb(
    folder: PathLike,
    lmdb_path: PathLike,
    compress_level: int = 1,
    batch: int = 5000,
    map_size: int | None = None,
    overwrite: bool = False,
) -> int:
    """Pack every image of ``folder`` into ``lmdb_path`` (must end in ``.lmdb``); returns the count.

    The store is built in a temporary folder next to the target and renamed into place, so an
    interrupted run never leaves a half-written store that looks complete. When ``map_size`` is
    None it starts from an estimate and doubles whenever LMDB reports the map full.
    """
    src = Path(folder)
    dst = Path(lmdb_path)
    if dst.suffix != ".lmdb":
        raise DataError(f"{dst}: an LMDB store path must end with '.lmdb'")
    if dst.exists() and not overwrite:
        raise DataError(f"{dst}: already exists; pass overwrite=True to replace it")
    if not 0 <= compress_level <= 9:
        raise DataError(f"compress_level must be 0..9 (PNG compression), got {compress_level}")
    paths = scan_images(src)
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems:
            raise DataError(f"{src}: {stems[p.stem].name} and {p.name} share the key {p.stem!r}")
        stems[p.stem] = p

    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    first, _ = _encode_png(paths[0], compress_level)
    size = map_size or max(len(first) * len(paths) * 10, 1 << 20)
    env = lmdb.open(str(tmp), map_size=size)
    lines: list[str] = []
    pending: list[tuple[bytes, bytes]] = []

    def commit() -> None:
        nonlocal size
        while True:
            try:
                with env.begin(write=True) as txn:
                    for k, v in pending:
                        txn.put(k, v)
                break
            except lmdb.MapFullError:
                if map_size is not None:
                    raise DataError(f"{dst}: map_size={map_size} bytes is too small for the images") from None
                size *= 2
                env.set_mapsize(size)
        pending.clear()

    try:
        for key, path in stems.items():
            value, (h, w, c) = _encode_png(path, compress_level)
            pending.append((key.encode("utf-8"), value))
            lines.append(f"{key}.png ({h},{w},{c}) {compress_level}\n")
            if len(pending) >= batch:
                commit()
        commit()
    finally:
        env.close()
    (tmp / META_INFO).write_text("".join(lines), encoding="utf-8")
    if dst.exists():
        _forget_env(dst)
        shutil.rmtree(dst)
    os.replace(tmp, dst)
    return len(lines)


def read_meta_info(path: PathLike) -> list[tuple[str, tuple[int, int, int] | None]]:
    """Parse a BasicSR meta-info file: ``name [(h,w,c) [level]]`` per line → (name, shape or None).

    Blank lines and lines starting with ``#`` are ignored.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: meta-info file does not exist")
    out: list[tuple[str, tuple[int, int, int] | None]] = []
    for line in p.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _META_LINE.match(line)
        if m:
            out.append((m.group(1), (int(m.group(2)), int(m.group(3)), int(m.group(4)))))
        else:
            out.append((line.split()[0], None))
    if not out:
        raise DataError(f"{p}: meta-info file lists no images")
    return out


# One read-only environment per store and process. py-lmdb refuses to open the same store twice
# in one process (LMDB's fcntl locks are per process and file), so readers of the same store —
# the GT store of two datasets, say — must share it. An entry inherited through fork() belongs
# to the parent: the child closes its copy of the handle and opens its own.
_ENVS: dict[str, tuple[int, Any]] = {}


def _shared_env(path: Path) -> Any:
    key = os.path.realpath(path)
    entry = _ENVS.get(key)
    if entry is not None and entry[0] == os.getpid():
        return entry[1]
    if entry is not None:
        with contextlib.suppress(lmdb.Error):
            entry[1].close()  # the inherited handle; closing it here does not affect the parent
    # lock=False: readers never write the lock file, so any number of worker processes can read;
    # readahead=False helps random access on stores larger than RAM.
    env = lmdb.open(key, readonly=True, lock=False, readahead=False, meminit=False)
    _ENVS[key] = (os.getpid(), env)
    return env


def _forget_env(path: Path) -> None:
    """Close this process's handle on a store (before it is replaced or deleted)."""
    entry = _ENVS.pop(os.path.realpath(path), None)
    if entry is not None and entry[0] == os.getpid():
        entry[1].close()


class LmdbReader:
    """Read-only access to a BasicSR-layout LMDB store, safe to pickle into DataLoader workers.

    The reader holds only a path: the environment is opened on first use in each process and
    shared by every reader of the same store in that process (see ``_shared_env``).
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"{self.path}: LMDB folder does not exist")
        if not (self.path / "data.mdb").is_file():
            raise DataError(f"{self.path}: is not an LMDB store (no data.mdb inside)")
        meta = self.path / META_INFO
        self._meta: dict[str, tuple[int, int, int] | None] = {}
        if meta.is_file():
            for name, shape in read_meta_info(meta):
                self._meta[Path(name).stem] = shape

    def keys(self) -> list[str]:
        """Keys in meta-info order (the store's own order when there is no meta_info.txt)."""
        if self._meta:
            return list(self._meta)
        with _shared_env(self.path).begin(write=False) as txn:
            return [k.decode("utf-8") for k in txn.cursor().iternext(keys=True, values=False)]

    def shape(self, key: str) -> tuple[int, int, int] | None:
        """(h, w, c) recorded in meta_info.txt, or None when unknown."""
        return self._meta.get(key)

    def get(self, key: str) -> bytes:
        """The encoded bytes stored under ``key``; a missing key is a DataError naming both."""
        with _shared_env(self.path).begin(write=False) as txn:
            value = txn.get(key.encode("utf-8"))
        if value is None:
            raise DataError(f"{self.path}: key {key!r} is not in the LMDB store")
        return bytes(value)

    def close(self) -> None:
        """Close this process's environment for the store (other readers reopen it on use)."""
        _forget_env(self.path)

    def __enter__(self) -> LmdbReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

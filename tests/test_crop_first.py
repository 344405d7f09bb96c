"""Crop first, convert after: the integer data path gives bitwise the tensors of the float one.

``reference_*`` below is the loader's algorithm before issue 15, written out here (decode, whole
image → float32, BGR → RGB, drop alpha, crop, flip, CHW), so the comparison does not lean on
any code it checks. Also: the uint8 decoded-image cache, the ``KeyedDataset`` contract outside
SR, and the import paths of the old single-module ``datasets.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from restorekit.data import BicubicDataset, PairedImageDataset, imresize, make_lmdb
from restorekit.data.datasets import KeyedDataset
from restorekit.data.io import UnreadableImageError, raw_to_float, raw_to_tensor, read_image, read_image_raw
from restorekit.errors import DataError

SCALE = 2
KINDS = {  # name: (sample type, channels as written by OpenCV)
    "u8": (np.uint8, 3),
    "u16": (np.uint16, 3),
    "gray": (np.uint8, 1),
    "gray16": (np.uint16, 1),
    "rgba": (np.uint8, 4),
    "rgba16": (np.uint16, 4),
}


def rand_img(rng: np.random.Generator, hw: tuple[int, int], dtype: type, channels: int) -> np.ndarray:
    top = np.iinfo(dtype).max
    shape = hw if channels == 1 else (*hw, channels)
    return rng.integers(0, top + 1, size=shape, dtype=dtype)


def make_set(root: Path, kind: str, n: int = 3, ext: str = ".png", lq_tmpl: str = "{}") -> tuple[Path, Path]:
    """GT and LQ of unrelated random content (alignment is tested elsewhere; identity here),
    odd sizes, and every other GT one pixel too large (trimmed like BasicSR)."""
    dtype, channels = KINDS.get(kind, (np.uint8, 3))
    rng = np.random.default_rng(len(kind))
    gt_dir, lq_dir = root / kind / "GT", root / kind / "LQ"
    gt_dir.mkdir(parents=True)
    lq_dir.mkdir(parents=True)
    for i in range(n):
        h, w = 23 + i, 29 + 2 * i
        extra = i % 2
        gt = rand_img(rng, (h * SCALE + extra, w * SCALE + extra), dtype, channels)
        cv2.imwrite(str(gt_dir / f"{i:04d}{ext}"), gt)
        lq = rand_img(rng, (h, w), dtype, channels)
        cv2.imwrite(str(lq_dir / f"{lq_tmpl.format(f'{i:04d}')}{ext}"), lq)
    return gt_dir, lq_dir


# ---------------------------------------------------------------- the pre-issue-15 algorithm


def reference_read(buf: bytes) -> np.ndarray:
    raw = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}[raw.dtype]
    img = raw.astype(np.float32) / top
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 3:
        img = np.ascontiguousarray(img[:, :, ::-1])
    elif img.shape[2] == 4:
        img = np.ascontiguousarray(img[:, :, [2, 1, 0, 3]])[:, :, :-1]
    return np.ascontiguousarray(img)


def reference_dihedral(imgs: list[np.ndarray], hflip: bool, rot: bool, rng: np.random.Generator) -> list:
    u = rng.random(3)
    h, v, t = hflip and u[0] < 0.5, rot and u[1] < 0.5, rot and u[2] < 0.5
    out = []
    for img in imgs:
        if h:
            img = img[:, ::-1]
        if v:
            img = img[::-1]
        if t:
            img = img.swapaxes(0, 1)
        out.append(np.ascontiguousarray(img))
    return out


def chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


def reference_paired(
    gt_buf: bytes, lq_buf: bytes, key: tuple[int, int] | None, gt_size: int | None, aug: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    gt, lq = reference_read(gt_buf), reference_read(lq_buf)
    gt = gt[: lq.shape[0] * SCALE, : lq.shape[1] * SCALE]
    if gt_size is not None:
        assert key is not None
        rng = np.random.default_rng(key[1])
        ls = gt_size // SCALE
        top = int(rng.integers(0, lq.shape[0] - ls + 1))
        left = int(rng.integers(0, lq.shape[1] - ls + 1))
        lq = lq[top : top + ls, left : left + ls]
        gt = gt[top * SCALE : top * SCALE + gt_size, left * SCALE : left * SCALE + gt_size]
        gt, lq = reference_dihedral([gt, lq], aug, aug, rng)
    return chw(gt), chw(lq)


def reference_bicubic(gt_buf: bytes, seed: int, gt_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    gt = reference_read(gt_buf)
    gt = gt[: gt.shape[0] - gt.shape[0] % SCALE, : gt.shape[1] - gt.shape[1] % SCALE]
    rng = np.random.default_rng(seed)
    top = int(rng.integers(0, gt.shape[0] - gt_size + 1))
    left = int(rng.integers(0, gt.shape[1] - gt_size + 1))
    (gt,) = reference_dihedral([gt[top : top + gt_size, left : left + gt_size]], True, True, rng)
    lq = np.asarray(imresize(gt, 1.0 / SCALE), dtype=np.float32)
    lq = lq[:, :, None] if lq.ndim == 2 else lq
    return chw(gt), chw((np.round(np.clip(lq, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32))


KEYS = [(i % 3, seed) for i, seed in enumerate(range(100, 124))]


def assert_same(sample: dict, gt: torch.Tensor, lq: torch.Tensor) -> None:
    assert sample["gt"].dtype == torch.float32 and sample["gt"].is_contiguous()
    assert torch.equal(sample["gt"], gt) and torch.equal(sample["lq"], lq)


@pytest.mark.parametrize("kind", [*KINDS, "jpg"])
@pytest.mark.parametrize("cache", [False, True])
def test_paired_tensors_are_bitwise_those_of_converting_first(tmp_path: Path, kind: str, cache: bool) -> None:
    ext = ".jpg" if kind == "jpg" else ".png"
    # u8 LQ files carry DIV2K names (0001x2.png)
    gt_dir, lq_dir = make_set(tmp_path, kind, ext=ext, lq_tmpl="{}x2" if kind == "u8" else "{}")
    pairs = [(p.read_bytes(), next(lq_dir.glob(f"{p.stem}*")).read_bytes()) for p in sorted(gt_dir.iterdir())]
    for aug in (False, True):
        ds = PairedImageDataset(
            str(gt_dir), str(lq_dir), SCALE, gt_size=16, use_hflip=aug, use_rot=aug, cache_images=cache
        )
        for key in KEYS:
            assert_same(ds[key], *reference_paired(*pairs[key[0]], key, 16, aug))
    whole = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, cache_images=cache)
    for i in range(3):
        assert_same(whole[i], *reference_paired(*pairs[i], None, None, False))


def test_all_eight_dihedral_transforms_are_covered(tmp_path: Path) -> None:
    """The keys above must exercise every flip/transpose combination, or the test proves less."""
    seen = set()
    for _, seed in KEYS:
        rng = np.random.default_rng(seed)
        rng.integers(0, 2), rng.integers(0, 2)
        seen.add(tuple(bool(x < 0.5) for x in rng.random(3)))
    assert len(seen) == 8


@pytest.mark.parametrize("kind", ["u8", "u16", "gray", "rgba16"])
def test_lmdb_backend_is_bitwise_the_same(tmp_path: Path, kind: str) -> None:
    gt_dir, lq_dir = make_set(tmp_path, kind)
    make_lmdb(gt_dir, tmp_path / "gt.lmdb")
    make_lmdb(lq_dir, tmp_path / "lq.lmdb")
    pairs = [(p.read_bytes(), (lq_dir / p.name).read_bytes()) for p in sorted(gt_dir.iterdir())]
    for cache in (False, True):
        ds = PairedImageDataset(
            str(tmp_path / "gt.lmdb"), str(tmp_path / "lq.lmdb"), SCALE, gt_size=16,
            use_hflip=True, use_rot=True, io_backend="lmdb", cache_images=cache,
        )  # fmt: skip
        for key in KEYS[:12]:
            assert_same(ds[key], *reference_paired(*pairs[key[0]], key, 16, True))


@pytest.mark.parametrize("kind", ["u8", "u16", "gray", "rgba"])
def test_bicubic_dataset_is_bitwise_the_same(tmp_path: Path, kind: str) -> None:
    gt_dir, _ = make_set(tmp_path, kind)
    bufs = [p.read_bytes() for p in sorted(gt_dir.iterdir())]
    host = BicubicDataset(str(gt_dir), SCALE, gt_size=16, use_hflip=True, use_rot=True, cache_images=True)
    device = BicubicDataset(str(gt_dir), SCALE, gt_size=16, use_hflip=True, use_rot=True, degrade_on="device")
    for key in KEYS[:10]:
        gt, lq = reference_bicubic(bufs[key[0]], key[1], 16)
        assert_same(host[key], gt, lq)
        assert "lq" not in device[key] and torch.equal(device[key]["gt"], gt)


def test_raw_conversion_equals_astype_then_divide() -> None:
    rng = np.random.default_rng(0)
    pick = {1: [0], 2: [0], 3: [2, 1, 0], 4: [2, 1, 0]}  # gray, gray+alpha, BGR, BGRA → ours
    for dtype, top in ((np.uint8, 255.0), (np.uint16, 65535.0)):
        for c in (1, 2, 3, 4):
            raw = rng.integers(0, int(top) + 1, size=(9, 7, c), dtype=dtype)
            for view in (raw, raw[::-1, ::2], raw.swapaxes(0, 1)[:, ::-1]):  # crops, flips, transposes
                want = (view.astype(np.float32) / top)[:, :, pick[c]]
                got = raw_to_float(view)
                assert got.dtype == np.float32 and got.flags.c_contiguous
                np.testing.assert_array_equal(got, want)
                t = raw_to_tensor(view)
                assert t.dtype == torch.float32 and t.is_contiguous()
                assert torch.equal(t, torch.from_numpy(want.transpose(2, 0, 1).copy()))
    f64 = rng.random((5, 4, 3))
    np.testing.assert_array_equal(raw_to_float(f64), f64.astype(np.float32)[:, :, ::-1])


# ---------------------------------------------------------------- the decoded-image cache


def test_cache_holds_decoded_samples_read_only_and_states_its_size(tmp_path: Path, caplog) -> None:
    gt_dir, lq_dir = make_set(tmp_path, "u8")
    with caplog.at_level(logging.INFO, logger="restorekit.data.datasets"):
        ds = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, gt_size=16, cache_images=True)
    cached = [*ds.gt_store.cache.values(), *ds.lq_store.cache.values()]
    assert len(cached) == 6 and all(a.dtype == np.uint8 and not a.flags.writeable for a in cached)
    want = sum(read_image_raw(p).img.nbytes for d in (gt_dir, lq_dir) for p in d.iterdir())
    assert ds.cache_bytes == want  # uint8 as decoded: a quarter of the float32 images
    assert want * 4 == sum(read_image(p).nbytes for d in (gt_dir, lq_dir) for p in d.iterdir())
    line = " ".join(r.getMessage() for r in caplog.records)
    assert "cache_images holds 6 decoded images (6 uint8)" in line and f"{want / 2**20:.1f} MiB" in line
    assert PairedImageDataset(str(gt_dir), str(lq_dir), SCALE).cache_bytes == 0
    for d in (gt_dir, lq_dir):  # served from memory: the files are no longer needed
        for p in d.iterdir():
            p.write_bytes(b"gone")
    assert ds[(1, 3)]["gt"].shape == (3, 16, 16)


def test_cache_and_workers_give_the_main_process_samples(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_set(tmp_path, "u16")
    ds = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, gt_size=16, use_rot=True, cache_images=True)
    keys = KEYS[:8]
    batches = list(DataLoader(ds, batch_size=4, sampler=keys, num_workers=2))
    assert torch.equal(batches[1]["lq"], torch.stack([ds[k]["lq"] for k in keys[4:]]))


def test_cache_with_a_corrupt_file(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_set(tmp_path, "gray")
    data = (gt_dir / "0001.png").read_bytes()
    (gt_dir / "0001.png").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match=r"0001\.png: is not a readable image"):
        PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, cache_images=True)
    ds = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, gt_size=16, cache_images=True, skip_corrupt=True)
    assert Path(ds[(1, 7)]["gt_path"]).name == "0002.png" and ds.num_skipped == 1
    assert torch.equal(ds[(1, 7)]["gt"], ds[(2, 7)]["gt"]) and ds.num_skipped == 2


# ---------------------------------------------------------------- KeyedDataset and import paths


class Noise(KeyedDataset):
    """A dataset with nothing of SR in it: what the face and unpaired datasets will look like."""

    def __init__(self, n: int, bad: set[int], skip_corrupt: bool = False) -> None:
        super().__init__(skip_corrupt)
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def _load(self, index: int, rng: np.random.Generator) -> dict:
        if index in self.bad:
            raise UnreadableImageError(f"item{index}: is not a readable image")
        return {"index": index, "x": torch.from_numpy(rng.random(4))}


def test_keyed_dataset_contract_outside_sr(caplog) -> None:
    ds = Noise(4, bad={1})
    assert not hasattr(ds, "scale") and ds.cache_bytes == 0
    assert torch.equal(ds[(2, 5)]["x"], ds[(2, 5)]["x"]) and not torch.equal(ds[(2, 5)]["x"], ds[(2, 6)]["x"])
    assert not torch.equal(ds[2]["x"], ds[2]["x"])  # no seed: fresh randomness
    assert ds[(-1, 0)]["index"] == 3 and ds[(torch.tensor(0), 1)]["index"] == 0
    with pytest.raises(IndexError, match="index 4 out of range for a dataset of 4"):
        ds[4]
    with pytest.raises(UnreadableImageError, match="item1"):
        ds[(1, 0)]
    lenient = Noise(4, bad={1, 2}, skip_corrupt=True)
    with caplog.at_level(logging.WARNING, logger="restorekit.data.datasets"):
        s = lenient[(1, 9)]
        lenient[(1, 9)]
    assert s["index"] == 3 and torch.equal(s["x"], lenient[(3, 9)]["x"]) and lenient.num_skipped == 4
    assert sum("item1" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(DataError, match="Noise: all 2 samples are unreadable"):
        Noise(2, bad={0, 1}, skip_corrupt=True)[0]


def test_old_import_paths_still_work() -> None:
    from restorekit.data import datasets
    from restorekit.data.datasets import (  # noqa: F401
        Backend,
        BicubicDataset,
        PairedImageDataset,
        _split_key,
        _SRDataset,
        _Store,
        bicubic_lq,
        fit_gt_to_lq,
        gt_refs,
    )

    assert issubclass(_SRDataset, KeyedDataset) and datasets.PairedImageDataset is PairedImageDataset
    assert _split_key((3, 4)) == (3, 4) and _split_key(5) == (5, None)

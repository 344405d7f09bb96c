"""LMDB stores in BasicSR's layout and the LMDB backend of the datasets."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from restorekit.data import (
    BicubicDataset,
    LmdbReader,
    PairedImageDataset,
    imfrombytes,
    make_lmdb,
    read_image,
    write_image,
)
from restorekit.errors import DataError


def make_folder(folder: Path, names: list[str], hw: tuple[int, int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name in names:
        write_image(folder / f"{name}.png", rng.random((*hw, 3)))


def test_round_trip_and_basicsr_layout(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs", ["0002", "0001"], (12, 10))
    gray = np.random.default_rng(1).random((7, 9))
    write_image(tmp_path / "imgs" / "0003.png", gray, bit_depth=16)
    n = make_lmdb(tmp_path / "imgs", tmp_path / "db.lmdb", compress_level=3)
    assert n == 3
    assert {p.name for p in (tmp_path / "db.lmdb").iterdir()} == {"data.mdb", "lock.mdb", "meta_info.txt"}
    lines = (tmp_path / "db.lmdb" / "meta_info.txt").read_text().splitlines()
    assert lines == ["0001.png (12,10,3) 3", "0002.png (12,10,3) 3", "0003.png (7,9,1) 3"]
    reader = LmdbReader(tmp_path / "db.lmdb")
    keys = reader.keys()
    assert keys == ["0001", "0002", "0003"]
    assert reader.shape("0003") == (7, 9, 1)
    for key in keys:
        raw = reader.get(key)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"  # stored PNG-encoded, as BasicSR does
        np.testing.assert_array_equal(imfrombytes(raw, key), read_image(tmp_path / "imgs" / f"{key}.png"))
    decoded = cv2.imdecode(np.frombuffer(reader.get("0003"), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16  # 16-bit survives
    with pytest.raises(DataError, match=r"key '0009' is not in the LMDB store"):
        reader.get("0009")
    reader.close()


def test_refuses_overwrite_and_bad_paths(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs", ["a"], (4, 4))
    make_lmdb(tmp_path / "imgs", tmp_path / "db.lmdb")
    with pytest.raises(DataError, match=r"db\.lmdb: already exists; pass overwrite=True"):
        make_lmdb(tmp_path / "imgs", tmp_path / "db.lmdb")
    make_folder(tmp_path / "imgs", ["b"], (4, 4), seed=1)
    assert make_lmdb(tmp_path / "imgs", tmp_path / "db.lmdb", overwrite=True) == 2
    assert LmdbReader(tmp_path / "db.lmdb").keys() == ["a", "b"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folders
    with pytest.raises(DataError, match=r"must end with '\.lmdb'"):
        make_lmdb(tmp_path / "imgs", tmp_path / "db")
    with pytest.raises(DataError, match="LMDB folder does not exist"):
        LmdbReader(tmp_path / "none.lmdb")
    with pytest.raises(DataError, match=r"no data\.mdb"):
        LmdbReader(tmp_path / "imgs")
    write_image(tmp_path / "dup" / "x.png", np.zeros((2, 2, 3)))
    write_image(tmp_path / "dup" / "x.bmp", np.zeros((2, 2, 3)))
    with pytest.raises(DataError, match="share the key 'x'"):
        make_lmdb(tmp_path / "dup", tmp_path / "dup.lmdb")


def test_map_size_grows_when_estimate_is_too_small(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    write_image(folder / "000_tiny.png", np.zeros((4, 4, 3)))  # the estimate comes from this one
    make_folder(folder, [f"big{i}" for i in range(6)], (256, 256))  # ~200 kB of noise each
    assert make_lmdb(folder, tmp_path / "db.lmdb") == 7
    reader = LmdbReader(tmp_path / "db.lmdb")
    np.testing.assert_array_equal(imfrombytes(reader.get("big5")), read_image(folder / "big5.png"))
    with pytest.raises(DataError, match="map_size=100000 bytes is too small"):
        make_lmdb(folder, tmp_path / "small.lmdb", map_size=100_000)
    assert not (tmp_path / "small.lmdb").exists()


def test_jpeg_is_stored_losslessly_as_decoded(tmp_path: Path) -> None:
    write_image(tmp_path / "imgs" / "j.jpg", np.random.default_rng(0).random((16, 16, 3)))
    make_lmdb(tmp_path / "imgs", tmp_path / "db.lmdb")
    assert re.fullmatch(r"j\.png \(16,16,3\) 1\n", (tmp_path / "db.lmdb" / "meta_info.txt").read_text())
    got = imfrombytes(LmdbReader(tmp_path / "db.lmdb").get("j"))
    np.testing.assert_array_equal(got, read_image(tmp_path / "imgs" / "j.jpg"))


@pytest.fixture
def paired_stores(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    for name in ("0001", "0002", "0003"):
        lq = rng.random((12, 14, 3))
        write_image(tmp_path / "GT" / f"{name}.png", lq.repeat(2, 0).repeat(2, 1))
        write_image(tmp_path / "LQ" / f"{name}x2.png", lq)
    make_lmdb(tmp_path / "GT", tmp_path / "gt.lmdb")
    make_lmdb(tmp_path / "LQ", tmp_path / "lq.lmdb")
    return {
        k: tmp_path / v for k, v in (("gt", "GT"), ("lq", "LQ"), ("gt_db", "gt.lmdb"), ("lq_db", "lq.lmdb"))
    }


def test_lmdb_dataset_equals_disk_dataset(paired_stores: dict[str, Path]) -> None:
    p = paired_stores
    opts = dict(scale=2, gt_size=8, use_hflip=True, use_rot=True)
    disk = PairedImageDataset(str(p["gt"]), str(p["lq"]), **opts)
    db = PairedImageDataset(str(p["gt_db"]), str(p["lq_db"]), io_backend="lmdb", **opts)
    assert len(db) == len(disk) == 3
    for key in [(0, 1), (1, 2), (2, 3), (2, 4)]:
        a, b = disk[key], db[key]
        assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["lq"], b["lq"])
        assert Path(a["gt_path"]).stem == Path(b["gt_path"]).stem
        assert Path(b["lq_path"]).stem == Path(a["lq_path"]).stem  # DIV2K 'x2' names pair too
    bic_disk = BicubicDataset(str(p["gt"]), 2, gt_size=8)
    bic_db = BicubicDataset(str(p["gt_db"]), 2, gt_size=8, io_backend="lmdb")
    assert torch.equal(bic_disk[(1, 7)]["lq"], bic_db[(1, 7)]["lq"])


def test_lmdb_meta_info_and_unpaired(paired_stores: dict[str, Path], tmp_path: Path) -> None:
    p = paired_stores
    meta = tmp_path / "sub.txt"
    meta.write_text("0003.png (24,28,3) 1\n")
    ds = PairedImageDataset(str(p["gt_db"]), str(p["lq_db"]), 2, meta_info=str(meta), io_backend="lmdb")
    assert len(ds) == 1 and Path(ds[0]["gt_path"]).stem == "0003"
    meta.write_text("0007.png\n")
    with pytest.raises(DataError, match="0007"):
        PairedImageDataset(str(p["gt_db"]), str(p["lq_db"]), 2, meta_info=str(meta), io_backend="lmdb")
    with pytest.raises(DataError, match="no LQ partner"):
        PairedImageDataset(str(p["gt_db"]), str(p["lq_db"]), 2, filename_tmpl="{}_lr", io_backend="lmdb")


def test_lmdb_dataset_pickles_after_use_and_feeds_workers(paired_stores: dict[str, Path]) -> None:
    p = paired_stores
    ds = PairedImageDataset(str(p["gt_db"]), str(p["lq_db"]), 2, gt_size=8, io_backend="lmdb")
    first = ds[(0, 5)]  # opens the environment in this process
    clone = pickle.loads(pickle.dumps(ds))  # an open lmdb.Environment would not pickle
    assert torch.equal(clone[(0, 5)]["gt"], first["gt"])
    keys = [(i % 3, i) for i in range(6)]
    batches = list(DataLoader(ds, batch_size=3, sampler=keys, num_workers=2))
    assert torch.equal(torch.cat([b["lq"] for b in batches]), torch.stack([ds[k]["lq"] for k in keys]))

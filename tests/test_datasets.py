"""Paired and bicubic SR datasets, and the bundled sample dataset (restorekit.data)."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from restorekit.data import BicubicDataset, PairedImageDataset, imresize, read_image, write_image
from restorekit.data import sample as sample_mod
from restorekit.errors import ConfigError, DataError, RestorekitError
from restorekit.registry import DATASETS

SCALE = 2


def make_pairs(
    root: Path,
    names: list[str],
    scale: int = SCALE,
    lq_hw: tuple[int, int] = (20, 24),
    lq_name: str = "{}",
    channels: int = 3,
) -> tuple[Path, Path]:
    """GT = LQ upsampled by pixel replication, so any aligned crop/flip keeps GT ↔ LQ exact."""
    gt_dir, lq_dir = root / "GT", root / "LQ"
    for i, name in enumerate(names):
        rng = np.random.default_rng(i)
        lq = rng.integers(0, 256, size=(*lq_hw, channels)).astype(np.float32) / 255
        gt = lq.repeat(scale, axis=0).repeat(scale, axis=1)
        write_image(gt_dir / f"{name}.png", gt)
        write_image(lq_dir / f"{lq_name.format(name)}.png", lq)
    return gt_dir, lq_dir


def area_down(t: torch.Tensor, s: int) -> torch.Tensor:
    c, h, w = t.shape
    return t.reshape(c, h // s, s, w // s, s).mean(dim=(2, 4))


def find(patch: torch.Tensor, full: torch.Tensor) -> list[tuple[int, int]]:
    """All positions where ``patch`` occurs in ``full`` (both CHW)."""
    _, ph, pw = patch.shape
    _, h, w = full.shape
    return [
        (y, x)
        for y in range(h - ph + 1)
        for x in range(w - pw + 1)
        if torch.equal(full[:, y : y + ph, x : x + pw], patch)
    ]


def test_validation_sample_is_whole_aligned_pair(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_pairs(tmp_path, ["0001", "0002"])
    ds = PairedImageDataset(str(gt_dir), str(lq_dir), scale=SCALE)
    assert len(ds) == 2
    s = ds[1]
    assert s["lq"].shape == (3, 20, 24) and s["gt"].shape == (3, 40, 48)
    assert s["gt"].dtype == torch.float32 and s["gt"].min() >= 0 and s["gt"].max() <= 1
    assert Path(s["gt_path"]).name == "0002.png" and Path(s["lq_path"]).parent == lq_dir
    assert (area_down(s["gt"], SCALE) - s["lq"]).abs().max() <= 1e-6


def test_training_crops_are_aligned_and_seeded(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_pairs(tmp_path, ["a", "b", "c"])
    full_gt = torch.from_numpy(read_image(gt_dir / "b.png")).permute(2, 0, 1)
    full_lq = torch.from_numpy(read_image(lq_dir / "b.png")).permute(2, 0, 1)
    plain = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, gt_size=8)
    for seed in range(5):
        s = plain[(1, seed)]
        assert s["gt"].shape == (3, 8, 8) and s["lq"].shape == (3, 4, 4)
        (y, x), *_ = find(s["lq"], full_lq)
        assert (y * SCALE, x * SCALE) in find(s["gt"], full_gt)

    aug = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, gt_size=8, use_hflip=True, use_rot=True)
    a, b = aug[(1, 123)], aug[(1, 123)]
    assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["lq"], b["lq"])
    crops = {aug[(1, seed)]["gt"].numpy().tobytes() for seed in range(8)}
    assert len(crops) > 1  # different seeds give different samples
    for seed in range(8):
        s = aug[(1, seed)]
        assert (area_down(s["gt"], SCALE) - s["lq"]).abs().max() <= 1e-6
    unseeded = {aug[1]["gt"].numpy().tobytes() for _ in range(8)}
    assert len(unseeded) > 1  # no seed: fresh randomness


def test_gt_is_cropped_to_scale_times_lq_or_rejected(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_image(tmp_path / "GT" / "x.png", rng.random((41, 49, 3)))
    write_image(tmp_path / "LQ" / "x.png", rng.random((20, 24, 3)))
    ds = PairedImageDataset(str(tmp_path / "GT"), str(tmp_path / "LQ"), SCALE)
    assert ds[0]["gt"].shape == (3, 40, 48)  # GT one pixel too large: trimmed like BasicSR
    ds3 = PairedImageDataset(str(tmp_path / "GT"), str(tmp_path / "LQ"), 3)
    with pytest.raises(DataError) as info:
        ds3[0]
    msg = str(info.value)
    assert str(tmp_path / "GT" / "x.png") in msg and "41x49" in msg and "20x24" in msg


def test_unpaired_names_are_listed(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_pairs(tmp_path, ["0001", "0002", "0003"])
    (lq_dir / "0002.png").unlink()
    (lq_dir / "0003.png").unlink()
    with pytest.raises(DataError) as info:
        PairedImageDataset(str(gt_dir), str(lq_dir), SCALE)
    msg = str(info.value)
    assert "2 of 3" in msg and "0002.png" in msg and "0003.png" in msg and "0001.png" not in msg
    assert str(gt_dir) in msg and str(lq_dir) in msg


def test_filename_templates_and_div2k_names(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_pairs(tmp_path / "t", ["0001", "0002"], lq_name="{}_lr")
    assert len(PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, filename_tmpl="{}_lr")) == 2
    with pytest.raises(DataError, match="no LQ partner"):
        PairedImageDataset(str(gt_dir), str(lq_dir), SCALE)
    gt_dir, lq_dir = make_pairs(tmp_path / "d", ["0001", "0002"], lq_name="{}x2")
    ds = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE)
    assert Path(ds[0]["lq_path"]).name == "0001x2.png"


def test_lq_with_other_extension_pairs(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_pairs(tmp_path, ["0001"])
    img = read_image(lq_dir / "0001.png")
    (lq_dir / "0001.png").unlink()
    write_image(lq_dir / "0001.bmp", img)
    ds = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE)
    assert ds[0]["lq_path"].endswith("0001.bmp")


def test_meta_info_selects_images(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_pairs(tmp_path, ["0001", "0002", "0003"])
    meta = tmp_path / "meta.txt"
    meta.write_text("0003.png (40,48,3)\n\n0001.png (40,48,3) 1\n")
    ds = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, meta_info=str(meta))
    assert [Path(ds[i]["gt_path"]).name for i in range(len(ds))] == ["0003.png", "0001.png"]
    meta.write_text("0001.png\n0009.png\n")
    with pytest.raises(DataError, match=r"not in .*0009\.png"):
        PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, meta_info=str(meta))
    with pytest.raises(DataError, match="meta-info file does not exist"):
        PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, meta_info=str(tmp_path / "none.txt"))


def test_construction_errors(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_pairs(tmp_path, ["0001"])
    with pytest.raises(DataError, match=r"dataroot_lq: folder .* does not exist"):
        PairedImageDataset(str(gt_dir), str(tmp_path / "nope"), SCALE)
    with pytest.raises(ConfigError, match="gt_size: 7 must be a positive multiple of scale 2"):
        PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, gt_size=7)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        BicubicDataset(str(tmp_path / "empty"), SCALE)
    (gt_dir / "0001.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"0001\.png: is empty \(0 bytes\)"):
        PairedImageDataset(str(gt_dir), str(lq_dir), SCALE)
    assert len(PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, skip_corrupt=True)) == 1


def test_skip_corrupt_counts_warns_once_and_serves_next(tmp_path: Path, caplog) -> None:
    gt_dir, lq_dir = make_pairs(tmp_path, ["0001", "0002", "0003"])
    data = (gt_dir / "0002.png").read_bytes()
    (gt_dir / "0002.png").write_bytes(data[: len(data) // 3])
    strict = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE)
    with pytest.raises(DataError, match=r"0002\.png: is not a readable image"):
        strict[1]
    lenient = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, gt_size=8, skip_corrupt=True)
    with caplog.at_level(logging.WARNING, logger="restorekit.data.datasets"):
        a = lenient[(1, 5)]
        b = lenient[(1, 5)]
    assert Path(a["gt_path"]).name == "0003.png"
    assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["gt"], lenient[(2, 5)]["gt"])
    assert lenient.num_skipped == 2
    assert sum("0002.png" in r.getMessage() for r in caplog.records) == 1
    for name in ("0001", "0003"):
        (gt_dir / f"{name}.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="all 3 samples are unreadable"):
        lenient[0]


def test_bicubic_dataset(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_image(tmp_path / "GT" / "a.png", rng.random((50, 45, 3)))
    ds = BicubicDataset(str(tmp_path / "GT"), scale=4)
    s = ds[0]
    assert s["gt"].shape == (3, 48, 44) and s["lq"].shape == (3, 12, 11)
    lq = s["lq"].numpy()
    np.testing.assert_array_equal(np.round(lq * 255) / 255, lq)  # quantised to 8 bits
    gt_img = s["gt"].permute(1, 2, 0).numpy()
    want = np.round(np.clip(imresize(gt_img, 0.25), 0, 1) * 255) / 255
    np.testing.assert_allclose(s["lq"].permute(1, 2, 0).numpy(), want, atol=1e-7)

    train = BicubicDataset(str(tmp_path / "GT"), 4, gt_size=16, use_hflip=True, use_rot=True)
    t1, t2 = train[(0, 9)], train[(0, 9)]
    assert t1["gt"].shape == (3, 16, 16) and t1["lq"].shape == (3, 4, 4)
    assert torch.equal(t1["lq"], t2["lq"])
    patch = t1["gt"].permute(1, 2, 0).numpy()
    want = np.round(np.clip(imresize(patch, 0.25), 0, 1) * 255) / 255
    np.testing.assert_allclose(t1["lq"].permute(1, 2, 0).numpy(), want, atol=1e-7)


def test_registry_build_and_gray_kept(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_pairs(tmp_path, ["g"], channels=1)
    ds = DATASETS.build(
        {"type": "PairedImageDataset", "dataroot_gt": str(gt_dir), "dataroot_lq": str(lq_dir)},
        scale=SCALE,
    )
    assert isinstance(ds, PairedImageDataset)
    assert ds[0]["gt"].shape == (1, 40, 48)
    with pytest.raises(ConfigError, match="io_backend"):
        DATASETS.build({"type": "BicubicDataset", "dataroot_gt": str(gt_dir), "io_backend": "s3"}, scale=2)


def test_pickles_and_loads_in_workers(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_pairs(tmp_path, ["a", "b", "c", "d"])
    ds = PairedImageDataset(str(gt_dir), str(lq_dir), SCALE, gt_size=8, use_hflip=True, use_rot=True)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[(2, 4)]["gt"], ds[(2, 4)]["gt"])
    keys = [(i % 4, 100 + i) for i in range(8)]
    loader = DataLoader(ds, batch_size=4, sampler=keys, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["gt"].shape == (4, 3, 8, 8)
    expected = torch.stack([ds[k]["gt"] for k in keys[4:]])
    assert torch.equal(batches[1]["gt"], expected)  # worker output == main-process output
    assert batches[1]["gt_path"] == [ds[k]["gt_path"] for k in keys[4:]]


# ---------------------------------------------------------------- sample dataset


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("sample")
    return root, sample_mod.make_sample_dataset(root)


def test_sample_dataset_layout(sample_root: tuple[Path, dict]) -> None:
    root, info = sample_root
    assert info["created"] and info["num_train"] == 6 and info["num_val"] == 3
    train = sorted(p.stem for p in (root / "train" / "GT").iterdir())
    val = sorted(p.stem for p in (root / "val" / "GT").iterdir())
    assert train == sorted(sample_mod.TRAIN_IMAGES.values())
    assert val == sorted(sample_mod.VAL_IMAGES.values()) == ["astronaut", "chelsea", "coffee"]
    assert not set(train) & set(val)
    for split, names in (("train", train), ("val", val)):
        for name in names:
            gt = read_image(root / split / "GT" / f"{name}.png")
            h, w, c = gt.shape
            assert c == 3 and h % 12 == 0 and w % 12 == 0 and max(h, w) <= 512
            for s in (2, 3, 4):
                lq = read_image(info[f"{split}_lq"][s] / f"{name}.png")
                assert lq.shape == (h // s, w // s, 3)
    assert "CC0" in (root / "README.txt").read_text()


def test_sample_lq_is_matlab_bicubic(sample_root: tuple[Path, dict]) -> None:
    _, info = sample_root
    paired = PairedImageDataset(str(info["val_gt"]), str(info["val_lq"][3]), 3)
    bicubic = BicubicDataset(str(info["val_gt"]), 3)
    for i in range(len(paired)):
        assert torch.equal(paired[i]["lq"], bicubic[i]["lq"])
        assert torch.equal(paired[i]["gt"], bicubic[i]["gt"])


def test_sample_dataset_is_idempotent(sample_root: tuple[Path, dict]) -> None:
    root, _ = sample_root
    gt = root / "train" / "GT" / "rocket.png"
    stamp = gt.stat().st_mtime_ns
    assert sample_mod.make_sample_dataset(root)["created"] is False
    lq = root / "val" / "LQ_x4" / "coffee.png"
    before = lq.read_bytes()
    lq.unlink()
    assert sample_mod.make_sample_dataset(root)["created"] is True
    assert lq.read_bytes() == before and gt.stat().st_mtime_ns == stamp


def test_sample_needs_scikit_image(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sample_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RestorekitError, match="pip install scikit-image"):
        sample_mod.make_sample_dataset(tmp_path)

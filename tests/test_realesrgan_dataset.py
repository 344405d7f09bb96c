"""RealESRGANDataset: GT patches and kernels per (index, seed), folders / meta_info / LMDB."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import smooth_image
from restorekit.data import RealESRGANDataset, RealESRGANDegradation, make_lmdb
from restorekit.errors import ConfigError
from restorekit.registry import DATASETS

# The datasets.train section of Real-ESRGAN's train_realesrgan_x4plus.yml, minus loader keys.
X4PLUS = {
    "blur_kernel_size": 21,
    "kernel_list": ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"],
    "kernel_prob": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob": 0.1,
    "blur_sigma": [0.2, 3],
    "betag_range": [0.5, 4],
    "betap_range": [1, 2],
    "blur_kernel_size2": 21,
    "kernel_list2": ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"],
    "kernel_prob2": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob2": 0.1,
    "blur_sigma2": [0.2, 1.5],
    "betag_range2": [0.5, 4],
    "betap_range2": [1, 2],
    "final_sinc_prob": 0.8,
    "gt_size": 32,
    "use_hflip": True,
    "use_rot": False,
}


@pytest.fixture
def gt_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "GT"
    root.mkdir()
    for name, (h, w) in {"a": (80, 96), "b": (50, 70), "c": (64, 64)}.items():
        cv2.imwrite(str(root / f"{name}.png"), smooth_image(rng, h, w))
    cv2.imwrite(str(root / "gray.png"), smooth_image(rng, 72, 72)[:, :, 0])
    return root


def _build(root: Path, **changes: object) -> RealESRGANDataset:
    cfg = {"type": "RealESRGANDataset", "dataroot_gt": str(root), "crop_pad_size": 64, **X4PLUS, **changes}
    return DATASETS.build(cfg, "data.train.dataset", scale=4, skip_corrupt=False)


def test_samples_have_the_real_esrgan_layout(gt_folder: Path) -> None:
    ds = _build(gt_folder)
    assert len(ds) == 4
    for i in range(len(ds)):
        s = ds[(i, 123)]
        assert set(s) == {"gt", "kernel1", "kernel2", "sinc_kernel", "gt_path"}
        assert s["gt"].shape == (3, 64, 64) and s["gt"].dtype == torch.float32  # gray → 3 channels
        assert s["gt"].min() >= 0 and s["gt"].max() <= 1
        for key in ("kernel1", "kernel2", "sinc_kernel"):
            assert s[key].shape == (21, 21) and s[key].dtype == torch.float32
            assert s[key].sum().item() == pytest.approx(1.0, abs=1e-4)
    small = ds[(1, 0)]  # b.png is 50x70: padded by reflection to 64, never blank
    assert small["gt_path"].endswith("b.png")
    assert (small["gt"].amax(dim=(0, 2)) > 0).all() and (small["gt"].amax(dim=(0, 1)) > 0).all()


def test_samples_are_pure_functions_of_index_and_seed(gt_folder: Path) -> None:
    ds = _build(gt_folder)
    a, b, c = ds[(0, 7)], ds[(0, 7)], ds[(0, 8)]
    for key in ("gt", "kernel1", "kernel2", "sinc_kernel"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["kernel1"], c["kernel1"]) or not torch.equal(a["gt"], c["gt"])
    # final_sinc_prob is honoured: 0 always gives the identity pulse
    pulse = _build(gt_folder, final_sinc_prob=0.0)[(0, 7)]["sinc_kernel"]
    assert pulse[10, 10] == 1 and pulse.sum() == 1


def test_meta_info_and_lmdb_backends(gt_folder: Path, tmp_path: Path) -> None:
    meta = tmp_path / "meta.txt"
    meta.write_text("a.png (80,96,3)\nc.png (64,64,3)\n")
    ds = _build(gt_folder, meta_info=str(meta))
    assert len(ds) == 2 and ds[(1, 0)]["gt_path"].endswith("c.png")
    assert make_lmdb(gt_folder, tmp_path / "gt.lmdb") == 4
    lm = _build(tmp_path / "gt.lmdb", io_backend="lmdb")
    assert len(lm) == 4
    disk_sample, lmdb_sample = ds[(0, 3)], lm[(0, 3)]
    assert torch.equal(disk_sample["gt"], lmdb_sample["gt"])  # a.png first in both, same seed


def test_options_are_checked_by_key(gt_folder: Path) -> None:
    with pytest.raises(ConfigError, match=r"kernel_prob2: the probabilities must sum to 1"):
        _build(gt_folder, kernel_prob2=[0.5, 0.5, 0, 0, 0, 0.5])
    with pytest.raises(ConfigError, match=r"kernel_list: unknown kernel type 'isotropic'"):
        _build(gt_folder, kernel_list=["isotropic"], kernel_prob=[1.0])
    with pytest.raises(ConfigError, match=r"gt_size: 96 is larger than crop_pad_size 64"):
        _build(gt_folder, gt_size=96)
    with pytest.raises(ConfigError, match=r"final_sinc_prob: expected a probability"):
        _build(gt_folder, final_sinc_prob=2)
    with pytest.raises(ConfigError, match=r"betap_range2: expected low <= high"):
        _build(gt_folder, betap_range2=[2, 1])


def test_loader_batches_feed_the_device_pipeline(gt_folder: Path) -> None:
    """DataLoader (2 workers) → batch → synthesize: the training path of a Real-ESRGAN task."""
    ds = _build(gt_folder)
    keys = [(i % len(ds), 100 + i) for i in range(4)]
    loader = DataLoader(ds, batch_size=2, sampler=keys, num_workers=2)
    deg = RealESRGANDegradation(scale=4, gt_size=32, queue_size=4)
    pool, gen = deg.make_pool(), torch.Generator().manual_seed(0)
    batches = list(loader)
    assert batches[0]["kernel1"].shape == (2, 21, 21) and len(batches[0]["gt_path"]) == 2
    assert torch.equal(batches[1]["gt"][0], ds[keys[2]]["gt"])  # workers give the same samples
    for batch in batches:
        out = deg.synthesize(batch, gen, pool)
        assert out["lq"].shape == (2, 3, 8, 8) and out["gt"].shape == (2, 3, 32, 32)

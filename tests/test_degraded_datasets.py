"""Scale-1 datasets (``NoisyImageDataset``, ``JPEGDataset``): noise statistics, keyed draws,
gray handling, the quality range, and the JPEG LQ against the project's own JPEG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from restorekit.data import write_image
from restorekit.data.datasets import JPEGDataset, NoisyImageDataset, jpeg_roundtrip
from restorekit.errors import ConfigError
from restorekit.registry import DATASETS


def flat_folder(root: Path, level: float = 0.5, hw: tuple[int, int] = (64, 64), n: int = 1) -> Path:
    """Flat mid-grey images: with σ well inside the headroom, clipping never touches the noise."""
    folder = root / "flat"
    for i in range(n):
        write_image(folder / f"f{i}.png", np.full((*hw, 3), level, np.float32))
    return folder


def textured_folder(root: Path, n: int = 3, hw: tuple[int, int] = (40, 48)) -> Path:
    folder = root / "tex"
    for i in range(n):
        rng = np.random.default_rng(i)
        write_image(folder / f"t{i}.png", rng.random((*hw, 3)).astype(np.float32))
    return folder


def test_noise_std_is_sigma_over_255_on_a_flat_image(tmp_path: Path) -> None:
    ds = NoisyImageDataset(str(flat_folder(tmp_path, hw=(128, 128))), sigma=25)
    s = ds[(0, 3)]
    diff = (s["lq"] - s["gt"]).numpy()
    assert s["lq"].shape == s["gt"].shape == (3, 128, 128)
    assert abs(diff.std() - 25 / 255) < 0.03 * 25 / 255  # 49k samples: std error ~0.3 %
    assert abs(diff.mean()) < 0.01 * 25 / 255 * 10
    assert float(s["sigma"]) == 25.0
    # not rounded to the 8-bit grid unless asked
    assert not np.allclose(s["lq"].numpy() * 255, np.round(s["lq"].numpy() * 255), atol=1e-3)


def test_sigma_range_draws_inside_and_std_follows(tmp_path: Path) -> None:
    ds = NoisyImageDataset(str(flat_folder(tmp_path, hw=(96, 96))), sigma_range=[5, 50], gt_size=96)
    sigmas = []
    for seed in range(12):
        s = ds[(0, seed)]
        sigma = float(s["sigma"])
        assert 5 <= sigma <= 50
        std = (s["lq"] - s["gt"]).std().item()
        assert abs(std - sigma / 255) < 0.05 * sigma / 255
        sigmas.append(sigma)
    assert len(set(sigmas)) == 12 and max(sigmas) - min(sigmas) > 10


def test_same_key_same_sample_different_key_different(tmp_path: Path) -> None:
    folder = str(textured_folder(tmp_path))
    for ds in (
        NoisyImageDataset(folder, sigma_range=[0, 50], gt_size=16, use_hflip=True, use_rot=True),
        JPEGDataset(folder, quality_range=[10, 90], gt_size=16, use_hflip=True, use_rot=True),
    ):
        a, b, c = ds[(1, 7)], ds[(1, 7)], ds[(1, 8)]
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
        assert not torch.equal(a["lq"], c["lq"])


def test_validation_noise_is_fixed_per_index_whatever_the_key(tmp_path: Path) -> None:
    ds = NoisyImageDataset(str(textured_folder(tmp_path)), sigma=15)
    a, b = ds[0], ds[(0, 123)]  # an OS-seeded and a keyed draw: the same validation image
    assert a["lq"].shape == (3, 40, 48)  # whole image, no crop
    assert torch.equal(a["lq"], b["lq"])
    other = NoisyImageDataset(str(textured_folder(tmp_path)), sigma=15, val_seed=1)[0]
    assert not torch.equal(a["lq"], other["lq"])
    # two images do not share a noise field
    n0, n1 = (ds[i]["lq"] - ds[i]["gt"] for i in (0, 1))
    assert not torch.allclose(n0, n1, atol=1e-3)


def test_clip_and_quantize(tmp_path: Path) -> None:
    folder = str(flat_folder(tmp_path, level=0.02))
    clipped = NoisyImageDataset(folder, sigma=50)[0]["lq"]
    assert clipped.min() >= 0 and clipped.max() <= 1
    raw = NoisyImageDataset(folder, sigma=50, clip=False)[0]["lq"]
    assert raw.min() < 0
    q = NoisyImageDataset(folder, sigma=50, quantize=True)[0]["lq"].numpy()
    assert np.allclose(q * 255, np.round(q * 255), atol=1e-4)


def test_gray_gives_one_channel_luma(tmp_path: Path) -> None:
    folder = tmp_path / "rgb"
    img = np.zeros((32, 32, 3), np.float32)
    img[..., 0] = 1.0  # pure red: luma 0.299
    write_image(folder / "red.png", img)
    s = NoisyImageDataset(str(folder), sigma=0, gray=True)[0]
    assert s["gt"].shape == s["lq"].shape == (1, 32, 32)
    assert torch.allclose(s["gt"], torch.full_like(s["gt"], round(0.299 * 255) / 255))
    j = JPEGDataset(str(folder), quality=50, gray=True)[0]
    assert j["gt"].shape == j["lq"].shape == (1, 32, 32)
    assert torch.allclose(j["lq"], j["gt"], atol=1.5 / 255)  # a flat block survives JPEG


def test_quality_range_respected_and_integer(tmp_path: Path) -> None:
    ds = JPEGDataset(str(textured_folder(tmp_path)), quality_range=[20, 24], gt_size=16)
    qs = {float(ds[(0, seed)]["quality"]) for seed in range(60)}
    assert qs == {20.0, 21.0, 22.0, 23.0, 24.0}


@pytest.mark.parametrize("gray", [False, True])
def test_jpeg_lq_is_the_projects_jpeg_of_the_gt_crop(tmp_path: Path, gray: bool) -> None:
    ds = JPEGDataset(str(textured_folder(tmp_path)), quality_range=[5, 60], gt_size=24, gray=gray)
    s = ds[(2, 11)]
    gt = s["gt"].numpy().transpose(1, 2, 0)
    want = jpeg_roundtrip(gt, float(s["quality"]))
    assert np.array_equal(s["lq"].numpy().transpose(1, 2, 0), want)
    err = (s["lq"] - s["gt"]).abs().mean().item()
    assert err > 1 / 255  # really compressed (random texture at q <= 60)
    lq = s["lq"].numpy()
    assert np.allclose(lq * 255, np.round(lq * 255), atol=1e-4)  # decoded JPEG: 8-bit


def test_jpeg_lower_quality_loses_more(tmp_path: Path) -> None:
    folder = str(textured_folder(tmp_path))
    err = {q: (lambda s: (s["lq"] - s["gt"]).abs().mean().item())(JPEGDataset(folder, quality=q)[0])
           for q in (10, 40, 90)}  # fmt: skip
    assert err[10] > err[40] > err[90]


def test_bad_options_give_one_line_errors(tmp_path: Path) -> None:
    folder = str(textured_folder(tmp_path))
    cases = [
        (lambda: NoisyImageDataset(folder), "give exactly one"),
        (lambda: NoisyImageDataset(folder, sigma=25, sigma_range=[0, 50]), "give exactly one"),
        (lambda: NoisyImageDataset(folder, sigma_range=[50, 5]), "sigma_range"),
        (lambda: NoisyImageDataset(folder, sigma=25, scale=2), "top-level scale must be 1"),
        (lambda: JPEGDataset(folder, quality=0), "quality: expected 1..100"),
        (lambda: JPEGDataset(folder, quality_range=[10]), "quality_range: expected [low, high]"),
    ]
    for make, text in cases:
        with pytest.raises(ConfigError) as info:
            make()
        assert text in str(info.value) and "\n" not in str(info.value)


def test_registered_and_built_from_a_config(tmp_path: Path) -> None:
    folder = str(textured_folder(tmp_path))
    ds = DATASETS.build({"type": "NoisyImageDataset", "dataroot_gt": folder, "sigma": 25}, scale=1)
    assert isinstance(ds, NoisyImageDataset) and len(ds) == 3
    ds = DATASETS.build({"type": "JPEGDataset", "dataroot_gt": folder, "quality": 10, "gt_size": 16}, scale=1)
    assert isinstance(ds, JPEGDataset) and ds[(0, 0)]["lq"].shape == (3, 16, 16)

"""``RealESRGANPairsDataset``: the Real-ESRGAN-degraded validation pairs are fixed by (seed, index),
made by the training degradation itself, and follow its options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from restorekit.data import write_image
from restorekit.data.datasets import RealESRGANPairsDataset
from restorekit.data.datasets.realesrgan_pairs import pair_seed
from restorekit.data.degradations import RealESRGANDegradation, imresize
from restorekit.data.degradations.kernels import BlurKernelOptions, sample_final_sinc
from restorekit.errors import ConfigError
from restorekit.registry import DATASETS

pytestmark = pytest.mark.usefixtures("one_thread")

# everything the degradation draws turned (almost) off: a near-identity blur, no resize in the
# first stage, no noise, quality 100, no second blur, no final sinc
MILD = {
    "resize_prob": [0, 0, 1],
    "noise_range": [0, 0],
    "poisson_scale_range": [0, 0],
    "jpeg_range": [100, 100],
    "second_blur_prob": 0,
    "resize_prob2": [0, 0, 1],
    "noise_range2": [0, 0],
    "poisson_scale_range2": [0, 0],
    "jpeg_range2": [100, 100],
}
MILD_KERNELS = {"blur_sigma": [0.1, 0.1], "sinc_prob": 0, "final_sinc_prob": 0}


def _folder(
    root: Path, sizes: tuple[tuple[int, int], ...] = ((50, 46), (36, 40), (45, 33)), texture: float = 0.1
) -> str:
    """Smooth images with texture (odd sizes: the GT is mod-cropped); the last one gray."""
    folder = root / "gt"
    for i, (h, w) in enumerate(sizes):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rng = np.random.default_rng(i)
        waves = 0.5 + 0.4 * np.sin(xx / 6 + yy / 9 + i)
        img = np.stack([xx / w, yy / h, waves], -1) + texture * rng.random((h, w, 3))
        img = np.clip(img, 0, 1).astype(np.float32)
        write_image(folder / f"im{i}.png", img[:, :, :1] if i == len(sizes) - 1 else img)
    return str(folder)


def test_the_lq_is_fixed_by_seed_and_index(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    ds = RealESRGANPairsDataset(folder, scale=4)
    again = RealESRGANPairsDataset(folder, scale=4, cache_lq=False)
    other_seed = RealESRGANPairsDataset(folder, scale=4, seed=1)
    for i, (h, w) in enumerate(((48, 44), (36, 40), (44, 32))):  # mod-cropped to 4
        s = ds[i]
        assert s["gt"].shape == (3, h, w) and s["lq"].shape == (3, h // 4, w // 4)  # gray -> RGB
        assert torch.equal(s["lq"], torch.round(s["lq"] * 255) / 255)  # 8-bit grid
        # any key, any instance, cached or not: the same pair; another seed: another LQ
        for key in (i, (i, 7), (i, 12345)):
            assert torch.equal(ds[key]["lq"], s["lq"]) and torch.equal(again[key]["lq"], s["lq"])
        assert torch.equal(ds[i]["gt"], s["gt"])
        assert not torch.equal(other_seed[i]["lq"], s["lq"])
        assert s["gt_path"].endswith(f"im{i}.png") and s["lq_path"] == s["gt_path"]
    assert not torch.equal(ds[0]["lq"][:, :9, :8], ds[1]["lq"][:, :9, :8])  # per-image draws
    gray = ds[2]["gt"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_it_is_the_training_degradation_with_the_kernels_of_realesrgan_dataset(tmp_path: Path) -> None:
    """The sample equals RealESRGANDegradation applied to the GT with RealESRGANDataset's kernel
    draws, all from np.random.default_rng([seed, index]) (kernel 1, kernel 2, sinc, torch seed)."""
    folder = _folder(tmp_path)
    options = {"noise_range": [5, 10], "jpeg_range": [40, 60], "second_blur_prob": 1.0}
    ds = RealESRGANPairsDataset(folder, scale=2, degradation=options, seed=5, blur_sigma=[0.5, 2.0])
    index = 1
    gt = ds[index]["gt"]
    rng = pair_seed(5, index)
    k1 = BlurKernelOptions(blur_sigma=(0.5, 2.0)).sample(rng)
    k2 = BlurKernelOptions(blur_sigma=(0.2, 1.5)).sample(rng)
    sinc = sample_final_sinc(rng, 0.8)
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    deg = RealESRGANDegradation(scale=2, noise_range=(5, 10), jpeg_range=(40, 60), second_blur_prob=1.0)

    def t(k: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(k.astype(np.float32))[None]

    want, _ = deg(gt[None], t(k1), t(k2), t(sinc), gen)
    assert torch.equal(ds[index]["lq"], want[0])


def test_degradation_options_are_used(tmp_path: Path) -> None:
    """Near-identity settings give an LQ close to a plain downscale; the default (x4plus) ones
    degrade far more, so bicubic upscaling of their LQ is much further from the GT."""
    folder = _folder(tmp_path, sizes=((64, 64), (64, 64), (64, 64)), texture=0.0)
    mild = RealESRGANPairsDataset(folder, scale=4, degradation=MILD, **MILD_KERNELS)
    heavy = RealESRGANPairsDataset(folder, scale=4)

    def err(ds: RealESRGANPairsDataset, i: int) -> float:
        s = ds[i]
        return float((imresize(s["lq"][None], 4).clamp(0, 1)[0] - s["gt"]).abs().mean())

    for i in range(3):
        s = mild[i]
        plain = torch.nn.functional.interpolate(s["gt"][None], size=(16, 16), mode="area")[0]
        # the final resize mode is drawn (area / bilinear / bicubic): on smooth images all are
        # close to an area downscale (the GT is unsharp-masked first, as in Real-ESRGAN)
        assert float((s["lq"] - plain).abs().mean()) < 0.03
        assert err(mild, i) < 0.3 * err(heavy, i)


def test_training_keys_are_accepted_and_bad_options_name_the_key(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    spec = {
        "type": "RealESRGANPairsDataset",
        "dataroot_gt": folder,
        "degradation": {"gt_size": 64, "queue_size": 16},
    }
    ds = DATASETS.build(spec, "data.val.v.dataset", scale=4)  # scale from the top of the config
    assert isinstance(ds, RealESRGANPairsDataset) and ds[0]["lq"].shape == (3, 12, 11)
    with pytest.raises(ConfigError, match=r"degradation\.noise_rnage: unknown argument"):
        RealESRGANPairsDataset(folder, scale=4, degradation={"noise_rnage": [1, 2]})
    with pytest.raises(ConfigError, match=r"degradation\.jpeg_range"):
        RealESRGANPairsDataset(folder, scale=4, degradation={"jpeg_range": [0, 200]})
    with pytest.raises(ConfigError, match="degradation: expected a mapping"):
        RealESRGANPairsDataset(folder, scale=4, degradation=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="kernel_list2"):
        RealESRGANPairsDataset(folder, scale=4, kernel_list2=("isotropic",), kernel_prob2=(1.0,))


def test_draws_give_several_fixed_lq_per_image_and_keep_the_first_set(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    one = RealESRGANPairsDataset(folder, scale=4, seed=3)
    three = RealESRGANPairsDataset(folder, scale=4, seed=3, draws=3)
    assert len(one) == 3 and len(three) == 9
    for j in range(9):
        s = three[j]
        assert torch.equal(s["gt"], one[j % 3]["gt"])  # pair j: draw j // 3 of image j % 3
        assert s["gt_path"].endswith(f"im{j % 3}_d{j // 3}.png")
        if j < 3:  # draw 0 is the one-draw set
            assert torch.equal(s["lq"], one[j]["lq"])
    lqs = [three[j]["lq"] for j in (0, 3, 6)]  # one image, three draws: three different LQ
    assert not torch.equal(lqs[0], lqs[1]) and not torch.equal(lqs[1], lqs[2])
    assert torch.equal(RealESRGANPairsDataset(folder, scale=4, seed=3, draws=3)[7]["lq"], three[7]["lq"])
    with pytest.raises(ConfigError, match="draws: expected"):
        RealESRGANPairsDataset(folder, scale=4, draws=0)

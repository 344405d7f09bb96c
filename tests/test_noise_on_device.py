"""``NoisyImageDataset`` with ``data.degrade_on: device``: the noise is added to the whole batch on
the training device, seeded per draw, so it is reproducible and has the stated statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_scale1_config, write_config
from restorekit.cli import main
from restorekit.config import validate_config
from restorekit.data import write_image
from restorekit.data.datasets import NoisyImageDataset
from restorekit.data.datasets.degraded import noisy_lq_batch
from restorekit.engine.trainer import Trainer


def _folder(root: Path, n: int = 3, hw: tuple[int, int] = (40, 48)) -> Path:
    folder = root / "tex"
    for i in range(n):
        write_image(folder / f"t{i}.png", np.random.default_rng(i).random((*hw, 3)).astype(np.float32))
    return folder


def test_device_samples_carry_sigma_and_seed_not_lq(tmp_path: Path) -> None:
    ds = NoisyImageDataset(str(_folder(tmp_path)), sigma_range=[5, 50], gt_size=16, degrade_on="device")
    a, b, other = ds[(1, 7)], ds[(1, 7)], ds[(1, 8)]
    assert "lq" not in a and a["gt"].shape == (3, 16, 16)
    assert 5 <= float(a["sigma"]) <= 50 and a["noise_seed"].dtype == torch.int64
    assert torch.equal(a["gt"], b["gt"]) and int(a["noise_seed"]) == int(b["noise_seed"])
    assert int(other["noise_seed"]) != int(a["noise_seed"])
    val = NoisyImageDataset(str(_folder(tmp_path)), sigma=25, degrade_on="device")  # no gt_size
    assert "lq" in val[0]  # validation images always carry their fixed noisy input


def test_noisy_lq_batch_statistics_and_seeding() -> None:
    gt = torch.full((4, 3, 64, 64), 0.5)
    sigma = torch.tensor([5.0, 15.0, 25.0, 25.0])
    seeds = torch.tensor([1, 2, 3, 3])
    lq = noisy_lq_batch(gt, sigma, seeds, clip=False, quantize=False)
    for i in range(4):
        std = float((lq[i] - gt[i]).std())
        assert abs(std - float(sigma[i]) / 255) < 0.03 * float(sigma[i]) / 255  # 12k samples
    assert torch.equal(lq[2], lq[3])  # same seed, same noise
    again = noisy_lq_batch(gt, sigma, seeds, clip=False, quantize=False)
    assert torch.equal(lq, again)
    clipped = noisy_lq_batch(torch.ones(1, 3, 8, 8), torch.tensor([50.0]), torch.tensor([4]), True, True)
    assert clipped.max() <= 1.0 and torch.equal(clipped, torch.round(clipped * 255) / 255)


def _noisy_config(tmp_path: Path) -> dict:
    cfg = tiny_scale1_config(tmp_path)
    gt = cfg["data"]["train"]["dataset"]["dataroot_gt"]
    cfg["data"]["train"]["dataset"] = {
        "type": "NoisyImageDataset",
        "dataroot_gt": gt,
        "sigma": 25,
        "gt_size": 16,
    }
    cfg["data"]["degrade_on"] = "device"
    vgt = cfg["data"]["val"]["tinyval"]["dataset"]["dataroot_gt"]
    cfg["data"]["val"]["tinyval"]["dataset"] = {"type": "NoisyImageDataset", "dataroot_gt": vgt, "sigma": 25}
    cfg["data"]["val"]["tinyval"]["metrics"] = {"psnr": {"crop_border": 0}}
    cfg["train"]["total_iter"] = 4
    cfg["logger"] = {**cfg.get("logger", {}), "save_checkpoint_freq": 4}
    return cfg


def test_device_noise_trains_reproducibly(tmp_path: Path, one_thread: None) -> None:
    raw = _noisy_config(tmp_path)
    cfg = validate_config(raw)
    weights = []
    for name in ("a", "b"):
        run = tmp_path / name
        run.mkdir()
        trainer = Trainer(cfg, run)
        trainer.fit()
        samples = [trainer.train_set[(i, i + 1)] for i in range(2)]
        assert all("lq" not in sample for sample in samples)
        batch = {k: torch.stack([sample[k] for sample in samples]) for k in ("gt", "sigma", "noise_seed")}
        lq = trainer.task._lq(batch).float()
        # clipping at 0 and 1 trims some noise on these uniform-random images
        assert 0.5 * 25 / 255 < float((lq - batch["gt"]).std()) < 1.05 * 25 / 255
        weights.append(load_file(str(run / "checkpoints" / "iter_4" / "net_g.safetensors")))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_device_lq_with_a_paired_set_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A set that reads its LQ from disk cannot leave it to the device: one line naming the sets that can."""
    raw = _noisy_config(tmp_path)
    ds = raw["data"]["train"]["dataset"]
    raw["data"]["train"]["dataset"] = {
        "type": "PairedImageDataset",
        "dataroot_gt": ds["dataroot_gt"],
        "dataroot_lq": ds["dataroot_gt"],
        "gt_size": ds.get("gt_size", 16),
    }
    path = write_config(tmp_path / "c.yml", raw)
    assert main(["train", "-c", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "data.degrade_on: 'device' needs a dataset that makes its LQ on the fly" in err
    assert "JPEGDataset" in err and "not PairedImageDataset" in err


def test_noise_seeds_stay_on_the_host_when_a_batch_moves() -> None:
    """Reading the seeds each step must not cost a device-to-host sync: they never leave the host."""
    from restorekit.data import move_to

    batch = {"gt": torch.zeros(2, 3, 4, 4), "sigma": torch.ones(2), "noise_seed": torch.tensor([1, 2])}
    moved = move_to(batch, "meta")
    assert moved["gt"].is_meta and moved["sigma"].is_meta and moved["noise_seed"].device.type == "cpu"

"""``JPEGDataset`` with ``data.degrade_on: device``: samples carry their drawn quality, the task codes
the batch with the host path's codec, and the result is the host's LQ for the same key."""

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
from restorekit.data.datasets import JPEGDataset
from restorekit.data.datasets.degraded import jpeg_code, jpeg_lq_batch
from restorekit.engine.trainer import Trainer


def _folder(root: Path, n: int = 3, hw: tuple[int, int] = (40, 52)) -> str:
    """Smooth gradients plus texture: JPEG rounds many coefficients of such images near a half."""
    folder = root / "tex"
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float32)
    for i in range(n):
        rng = np.random.default_rng(i)
        base = np.stack([(xx / hw[1]), (yy / hw[0]), 0.5 + 0.3 * np.sin(xx / 3 + i)], axis=-1)
        img = np.clip(base + 0.15 * rng.random((*hw, 3)), 0, 1).astype(np.float32)
        write_image(folder / f"t{i}.png", img)
    return str(folder)


def _pair(folder: str, **kw: object) -> tuple[JPEGDataset, JPEGDataset]:
    host = JPEGDataset(folder, gt_size=24, use_hflip=True, use_rot=True, **kw)  # type: ignore[arg-type]
    dev = JPEGDataset(folder, gt_size=24, use_hflip=True, use_rot=True, degrade_on="device", **kw)  # type: ignore[arg-type]
    return host, dev


def test_device_samples_carry_the_host_draw_not_lq(tmp_path: Path) -> None:
    host, dev = _pair(_folder(tmp_path), quality_range=[10, 90])
    a, again, other, h = dev[(1, 7)], dev[(1, 7)], dev[(1, 8)], host[(1, 7)]
    assert "lq" not in a and a["gt"].shape == (3, 24, 24) and a["quality"].dtype == torch.float32
    assert torch.equal(a["gt"], again["gt"]) and float(a["quality"]) == float(again["quality"])
    assert not (torch.equal(other["gt"], a["gt"]) and float(other["quality"]) == float(a["quality"]))
    # the same key draws the same crop, flips and quality on both paths
    assert torch.equal(a["gt"], h["gt"]) and float(a["quality"]) == float(h["quality"])
    val = JPEGDataset(_folder(tmp_path), quality=10, degrade_on="device")  # no gt_size: validation
    assert "lq" in val[0]  # validation images always carry their fixed JPEG input


def test_quality_statistics_and_seeding(tmp_path: Path) -> None:
    _, dev = _pair(_folder(tmp_path), quality_range=[10, 40])
    q = np.array([float(dev[(i % 3, 100 + i)]["quality"]) for i in range(400)])
    assert np.all(q == np.round(q)) and q.min() == 10 and q.max() == 40  # integers, both ends drawn
    assert abs(q.mean() - 25.0) < 1.5  # uniform on 31 values: std of the mean ~0.45
    assert len(np.unique(q)) == 31
    again = np.array([float(dev[(i % 3, 100 + i)]["quality"]) for i in range(400)])
    assert np.array_equal(q, again)
    _, fixed = _pair(_folder(tmp_path), quality=17)
    assert {float(fixed[(0, s)]["quality"]) for s in range(20)} == {17.0}


@pytest.mark.parametrize("gray", [False, True])
def test_device_batch_equals_the_host_lq_on_cpu(tmp_path: Path, gray: bool) -> None:
    """Same codec, same float32 arithmetic: bitwise the host's LQ, for any batch split."""
    host, dev = _pair(_folder(tmp_path), quality_range=[5, 95], gray=gray)
    keys = [(i % 3, 50 + i) for i in range(12)]
    want = torch.stack([host[k]["lq"] for k in keys])
    samples = [dev[k] for k in keys]
    gt = torch.stack([s["gt"] for s in samples])
    quality = torch.stack([s["quality"] for s in samples])
    assert len(set(quality.tolist())) > 6  # many qualities in one batch
    whole = jpeg_lq_batch(gt, quality)
    split = torch.cat([jpeg_lq_batch(gt[i : i + 5], quality[i : i + 5]) for i in range(0, 12, 5)])
    assert whole.shape == want.shape == (12, 1 if gray else 3, 24, 24)
    assert torch.equal(whole, want) and torch.equal(split, want)
    assert not torch.equal(whole, gt)  # the codec did something
    assert torch.equal(whole, torch.round(whole * 255) / 255)  # 8-bit output


def test_the_codec_runs_full_fp32_and_restores_the_matmul_precision() -> None:
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        out = jpeg_code(x, torch.tensor([20.0, 80.0]))
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)
    torch.set_float32_matmul_precision("highest")
    try:
        assert torch.equal(out, jpeg_code(x, torch.tensor([20.0, 80.0])))
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_matches_the_host_lq(tmp_path: Path) -> None:
    """On a GPU the GEMMs sum in another order: a coefficient within float error of a rounding
    boundary may round the other way. Tolerance (docs/design.md): <= 1e-3 of the pixels."""
    host, dev = _pair(_folder(tmp_path), quality_range=[5, 95])
    keys = [(i % 3, 50 + i) for i in range(32)]
    want = torch.stack([host[k]["lq"] for k in keys])
    samples = [dev[k] for k in keys]
    gt = torch.stack([s["gt"] for s in samples]).cuda()
    got = jpeg_lq_batch(gt, torch.stack([s["quality"] for s in samples]).cuda()).cpu()
    assert float((got != want).float().mean()) <= 1e-3


def _jpeg_config(tmp_path: Path) -> dict:
    cfg = tiny_scale1_config(tmp_path)
    gt = cfg["data"]["train"]["dataset"]["dataroot_gt"]
    cfg["data"]["train"]["dataset"] = {
        "type": "JPEGDataset",
        "dataroot_gt": gt,
        "quality_range": [10, 40],
        "gt_size": 16,
    }
    cfg["data"]["degrade_on"] = "device"
    vgt = cfg["data"]["val"]["tinyval"]["dataset"]["dataroot_gt"]
    cfg["data"]["val"]["tinyval"]["dataset"] = {"type": "JPEGDataset", "dataroot_gt": vgt, "quality": 10}
    cfg["data"]["val"]["tinyval"]["metrics"] = {"psnr": {"crop_border": 0}}
    cfg["train"]["total_iter"] = 4
    cfg["logger"] = {**cfg.get("logger", {}), "save_checkpoint_freq": 4}
    return cfg


def test_device_jpeg_trains_reproducibly_on_the_host_lq(tmp_path: Path, one_thread: None) -> None:
    cfg = validate_config(_jpeg_config(tmp_path))
    weights = []
    for name in ("a", "b"):
        run = tmp_path / name
        run.mkdir()
        trainer = Trainer(cfg, run)
        trainer.fit()
        keys = [(i, i + 1) for i in range(3)]
        samples = [trainer.train_set[k] for k in keys]
        assert all("lq" not in s for s in samples)
        batch = {k: torch.stack([s[k] for s in samples]) for k in ("gt", "quality")}
        lq = trainer.task._lq(batch).float()
        host = JPEGDataset(cfg.data.train.dataset["dataroot_gt"], quality_range=[10, 40], gt_size=16)
        assert torch.equal(lq, torch.stack([host[k]["lq"] for k in keys]))
        weights.append(load_file(str(run / "checkpoints" / "iter_4" / "net_g.safetensors")))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_device_jpeg_config_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_config(tmp_path / "c.yml", _jpeg_config(tmp_path))
    assert main(["train", "-c", str(path), "--dry-run"]) == 0, capsys.readouterr().err

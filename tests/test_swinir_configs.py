"""The SwinIR recipes in configs/: each passes the `train --dry-run` checks with the settings it
claims, and the scale-1 toys (denoising, JPEG) train a few iterations on tiny generated images
with finite losses and a validation beside the input-as-baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import make_pairs
from restorekit.cli import main
from restorekit.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TOYS = ["swinir_denoise_color_s25_toy", "swinir_jpeg_q10_toy"]
SHORT = [
    "train.total_iter=4",
    "logger.print_freq=2",
    "logger.save_checkpoint_freq=4",
    "logger.progress_bar=false",
    "logger.tensorboard=false",
    "data.train.batch_size=2",
    "data.train.num_workers=0",
]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small nets run faster on one thread


@pytest.mark.parametrize("name", [*TOYS, "swinir_classical_x2"])
def test_every_swinir_recipe_passes_the_config_checks(name: str, capsys: pytest.CaptureFixture) -> None:
    path = CONFIGS / f"{name}.yml"
    assert main(["train", "-c", str(path), "--dry-run"]) == 0, capsys.readouterr().err
    cfg = load_config(path)
    assert cfg.name == name and cfg.task == "restoration" and cfg.network_g["type"] == "SwinIR"
    assert cfg.val.baseline == "bicubic"
    if name in TOYS:
        net = cfg.network_g
        assert cfg.scale == 1 and net["upsampler"] == "" and net["window_size"] == 4
        assert net["embed_dim"] == 16 and net["depths"] == [2] and net["num_heads"] == [2]
        for vset in cfg.data.val.values():
            assert all(m["crop_border"] == 0 for m in vset.metrics.values())
            assert "gt_size" not in vset.dataset  # whole images, a fixed degradation per image
        kind = "NoisyImageDataset" if "denoise" in name else "JPEGDataset"
        assert cfg.data.train.dataset["type"] == kind
        return
    net, train = cfg.network_g, cfg.train
    assert cfg.scale == 2 and net["upsampler"] == "pixelshuffle" and net["img_size"] == 64
    assert net["embed_dim"] == 180 and net["depths"] == [6] * 6 and net["num_heads"] == [6] * 6
    assert net["window_size"] == 8 and cfg.data.train.dataset["gt_size"] == 128
    assert train.total_iter == 500_000 and train.optim_g["lr"] == 2e-4
    assert train.scheduler["milestones"] == [250_000, 400_000, 450_000, 475_000]


@pytest.mark.slow
@pytest.mark.parametrize("name", TOYS)
def test_toy_recipes_train(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    train_gt, _ = make_pairs(tmp_path / "train", 4, 48, 2, seed=1)
    val_gt, _ = make_pairs(tmp_path / "val", 2, 36, 2, seed=2)  # 36: not a multiple of the window
    monkeypatch.chdir(tmp_path)
    paths = [
        f"data.train.dataset.dataroot_gt={train_gt}",
        f"data.val.sample_val.dataset.dataroot_gt={val_gt}",
    ]
    assert main(["train", "-c", str(CONFIGS / f"{name}.yml"), *SHORT, *paths]) == 0, capsys.readouterr().err
    rows = [
        json.loads(line)
        for line in (tmp_path / "experiments" / name / "stats.jsonl").read_text().splitlines()
    ]
    losses = [r["l_pixel"] for r in rows if r["kind"] == "train"]
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses)
    val = [r for r in rows if r["kind"] == "val/sample_val"]
    assert len(val) == 1 and math.isfinite(val[0]["psnr"]) and 0 < val[0]["ssim"] <= 1
    # the baseline (reported in the log's table only): at scale 1 the degraded input itself,
    # well below a clean image and far from perfect
    log = (tmp_path / "experiments" / name / "log.txt").read_text().splitlines()
    base = [line.split() for line in log if line.startswith("sample_val/bicubic ")]
    assert len(base) == 1
    psnr, ssim = float(base[0][1]), float(base[0][2])
    assert 10 < psnr < 40 and 0 < ssim < 1

"""The issue-13 recipes in configs/ (SwinIR lightweight, real-world, denoising and JPEG; RCAN;
RIDNet) and their toys: each passes the `train --dry-run` checks, the full ones build exactly the
official networks (parameter counts of the official definitions) with the official training
settings, the toys build and run on odd-sized inputs, and one toy trains end to end through the
CLI and writes a checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import make_pairs
from restorekit.cli import main
from restorekit.config import load_config
from restorekit.registry import ARCHS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FULL = [
    "swinir_lightweight_x4",
    "swinir_real_x4",
    "swinir_denoise_color_s25",
    "swinir_jpeg_q10",
    "rcan_x4",
    "ridnet_denoise",
]
TOYS = [
    "swinir_classical_x2_toy",
    "swinir_lightweight_x4_toy",
    "swinir_real_x4_psnr_toy",
    "swinir_real_x4_toy",
    "rcan_x4_toy",
    "ridnet_denoise_toy",
]

# Every count equals the official definition's (SwinIR's network_swinir.py, BasicSR's rcan_arch /
# ridnet_arch) for these arguments. SwinIR-S x4 is the paper's 897K once the relative-position
# bias tables (4 x 6 blocks x 15² x 6 heads = 32,400) are left out; RCAN x4 is the paper's 15.59M.
PARAMS = {
    "swinir_lightweight_x4": 929_628,
    "swinir_real_x4": 11_715_559,
    "swinir_denoise_color_s25": 11_504_163,
    "swinir_jpeg_q10": 11_485_585,
    "rcan_x4": 15_592_355,
    "ridnet_denoise": 1_499_371,
}
# (network arguments, training settings) each full recipe must carry
OFFICIAL: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "swinir_lightweight_x4": (
        {"embed_dim": 60, "depths": [6] * 4, "num_heads": [6] * 4, "window_size": 8, "img_size": 64,
         "upsampler": "pixelshuffledirect", "mlp_ratio": 2, "resi_connection": "1conv", "upscale": 4},
        {"lr": 2e-4, "total_iter": 500_000, "milestones": [250_000, 400_000, 450_000, 475_000],
         "batch_total": 64, "gt_size": 256, "loss": "L1Loss"},
    ),
    "swinir_real_x4": (
        {"embed_dim": 180, "depths": [6] * 6, "num_heads": [6] * 6, "window_size": 8, "img_size": 64,
         "upsampler": "nearest+conv", "mlp_ratio": 2, "resi_connection": "1conv", "upscale": 4},
        {"lr": 1e-4, "total_iter": 600_000, "milestones": [400_000, 500_000, 550_000, 575_000],
         "batch_total": 32, "gt_size": 256, "loss": "L1Loss"},
    ),
    "swinir_denoise_color_s25": (
        {"embed_dim": 180, "depths": [6] * 6, "num_heads": [6] * 6, "window_size": 8, "img_size": 128,
         "upsampler": "", "in_chans": 3, "img_range": 1.0, "upscale": 1},
        {"lr": 2e-4, "total_iter": 1_600_000, "milestones": [800_000, 1_200_000, 1_400_000, 1_500_000],
         "batch_total": 8, "gt_size": 128, "loss": "CharbonnierLoss"},
    ),
    "swinir_jpeg_q10": (
        {"embed_dim": 180, "depths": [6] * 6, "num_heads": [6] * 6, "window_size": 7, "img_size": 126,
         "upsampler": "", "in_chans": 1, "img_range": 255.0, "upscale": 1},
        {"lr": 2e-4, "total_iter": 1_600_000, "milestones": [800_000, 1_200_000, 1_400_000, 1_500_000],
         "batch_total": 8, "gt_size": 126, "loss": "CharbonnierLoss"},
    ),
    "rcan_x4": (
        {"num_feat": 64, "num_group": 10, "num_block": 20, "squeeze_factor": 16, "res_scale": 1,
         "upscale": 4, "img_range": 255.0},
        {"lr": 1e-4, "total_iter": 300_000, "milestones": [200_000], "batch_total": 16, "gt_size": 192,
         "loss": "L1Loss"},
    ),
    "ridnet_denoise": (
        {"in_channels": 3, "mid_channels": 64, "out_channels": 3, "num_block": 4, "img_range": 255.0},
        {"lr": 1e-4, "total_iter": 400_000, "milestones": [100_000, 200_000, 300_000], "batch_total": 32,
         "gt_size": 80, "loss": "L1Loss"},
    ),
}  # fmt: skip
GPUS = {"swinir_lightweight_x4": 8, "swinir_real_x4": 8, "swinir_denoise_color_s25": 8, "swinir_jpeg_q10": 8}

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small nets run faster on one thread


@pytest.mark.parametrize("name", FULL + TOYS)
def test_every_recipe_passes_the_config_checks(name: str, capsys: pytest.CaptureFixture) -> None:
    path = CONFIGS / f"{name}.yml"
    assert main(["train", "-c", str(path), "--dry-run"]) == 0, capsys.readouterr().err
    cfg = load_config(path)
    assert cfg.name == name and cfg.train is not None
    real = name.startswith("swinir_real")
    assert cfg.task == ("adversarial" if real else "restoration")
    if real:  # the Real-ESRGAN degradation on the device, a U-Net D, L1 + GAN (+ VGG in the full one)
        assert cfg.degradation is not None and cfg.data.train.dataset["type"] == "RealESRGANDataset"
        assert cfg.network_g["upsampler"] == "nearest+conv"
        losses = {spec["type"] for spec in cfg.train.losses.values()}
        if "psnr" in name:  # the PSNR stage: L1 alone, no discriminator (a RealESRNet-style run)
            assert losses == {"L1Loss"} and cfg.network_d is None and cfg.pretrained is None
        else:  # the GAN stage fine-tunes a PSNR model: the official one, or the toy's export
            assert cfg.network_d["type"] == "UNetDiscriminatorSN" and {"L1Loss", "GANLoss"} <= losses
            assert ("PerceptualLoss" in losses) == (not name.endswith("_toy"))
            assert cfg.pretrained is not None and "PSNR" in cfg.pretrained.upper()
    assert cfg.val.baseline == "bicubic" and cfg.data.val
    if real:  # scored first on the training degradation, fixed per image (RealESRGANPairsDataset)
        first = next(iter(cfg.data.val.values())).dataset
        assert first["type"] == "RealESRGANPairsDataset" and first["degradation"] == cfg.degradation
        assert isinstance(first.get("seed", 0), int) and "gt_size" not in first
    for vset in cfg.data.val.values():
        crops = {m.get("crop_border") for k, m in vset.metrics.items() if k in ("psnr", "ssim")}
        if cfg.scale == 1:  # whole images, a fixed degradation per image, nothing cropped
            assert crops == {0} and "gt_size" not in vset.dataset
        else:
            assert crops == {"${scale}"} or crops == {cfg.scale}


@pytest.mark.parametrize("name", FULL)
def test_full_recipes_build_the_official_networks_and_settings(name: str) -> None:
    cfg = load_config(CONFIGS / f"{name}.yml")
    net_args, train = OFFICIAL[name]
    assert {k: cfg.network_g[k] for k in net_args} == net_args
    with torch.device("meta"):
        net = ARCHS.build(cfg.network_g)
    assert sum(p.numel() for p in net.parameters()) == PARAMS[name]
    if name == "swinir_lightweight_x4":
        tables = sum(p.numel() for k, p in net.named_parameters() if "relative_position_bias_table" in k)
        assert PARAMS[name] - tables == 897_228  # the paper's "897K"
    assert cfg.train is not None and cfg.data.train is not None
    assert cfg.train.optim_g["type"] == "Adam" and cfg.train.optim_g["lr"] == train["lr"]
    assert cfg.train.total_iter == train["total_iter"]
    assert cfg.train.scheduler is not None and cfg.train.scheduler["milestones"] == train["milestones"]
    assert cfg.train.scheduler["gamma"] == 0.5
    assert cfg.data.train.batch_size * GPUS.get(name, 1) == train["batch_total"]
    degradation = getattr(cfg, "degradation", None)
    size = degradation["gt_size"] if degradation else cfg.data.train.dataset["gt_size"]
    assert size == train["gt_size"]
    assert cfg.train.losses["pixel"]["type"] == train["loss"]
    if name.startswith("swinir") and not name.startswith("swinir_real"):
        assert cfg.train.optim_g["betas"] == [0.9, 0.999]  # KAIR's Adam
    if "denoise" in name or "jpeg" in name:
        data = cfg.data.train.dataset
        assert data["type"] == ("JPEGDataset" if "jpeg" in name else "NoisyImageDataset")
        assert data.get("sigma", data.get("quality")) in (25, 10)
        if name == "swinir_denoise_color_s25":
            assert data["clip"] is False  # KAIR and main_test_swinir.py add the noise unclipped
        if name == "swinir_jpeg_q10":
            assert data["gray"] is True


@pytest.mark.parametrize("name", TOYS)
def test_toys_build_and_run_on_odd_sizes(name: str) -> None:
    """Toy sized (under 200K parameters: SwinIR's nearest+conv head alone has 122K, its 64
    channels fixed upstream), and any input size works: 13x11 is no multiple of the SwinIR
    window, nor of the discriminator's downsampling."""
    cfg = load_config(CONFIGS / f"{name}.yml")
    torch.manual_seed(0)
    net = ARCHS.build(cfg.network_g).eval()
    assert sum(p.numel() for p in net.parameters()) < 200_000
    channels = cfg.network_g.get("in_chans", cfg.network_g.get("num_in_ch", cfg.network_g.get("in_channels")))
    with torch.no_grad():
        out = net(torch.rand(1, channels, 13, 11))
    assert out.shape == (1, channels, 13 * cfg.scale, 11 * cfg.scale) and torch.isfinite(out).all()
    if cfg.task == "adversarial" and cfg.network_d is not None:
        d = ARCHS.build(cfg.network_d).eval()
        with torch.no_grad():
            score = d(torch.rand(1, 3, 64, 64))
        assert score.shape == (1, 1, 64, 64) and torch.isfinite(score).all()


@pytest.mark.slow
def test_ridnet_toy_trains_and_writes_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    train_gt, _ = make_pairs(tmp_path / "train", 4, 48, 2, seed=1)
    val_gt, _ = make_pairs(tmp_path / "val", 2, 36, 2, seed=2)
    monkeypatch.chdir(tmp_path)
    args = [
        "train.total_iter=4",
        "logger.print_freq=2",
        "logger.save_checkpoint_freq=4",
        "logger.progress_bar=false",
        "logger.tensorboard=false",
        "data.train.batch_size=2",
        "data.train.num_workers=0",
        f"data.train.dataset.dataroot_gt={train_gt}",
        f"data.val.sample_val.dataset.dataroot_gt={val_gt}",
    ]
    assert main(["train", "-c", str(CONFIGS / "ridnet_denoise_toy.yml"), *args]) == 0, capsys.readouterr().err
    run = tmp_path / "experiments" / "ridnet_denoise_toy"
    ckpt = run / "checkpoints" / "iter_4"
    for part in ("training_state.pt", "net_g.safetensors", "net_g_ema.safetensors", "manifest.json"):
        assert (ckpt / part).is_file(), part
    assert (run / "model.safetensors").is_file()
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    losses = [r["l_pixel"] for r in rows if r["kind"] == "train"]
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses)
    val = [r for r in rows if r["kind"] == "val/sample_val"]
    assert len(val) == 1 and math.isfinite(val[0]["psnr"]) and 0 < val[0]["ssim"] <= 1


@pytest.mark.slow
def test_swinir_real_two_stage_toy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Stage 2 (the GAN fine-tune) refuses to start without stage 1's export, naming the config
    key; after stage 1 (L1, no discriminator) it starts from that export: with D warming up for
    the whole short run, G's export is stage 1's, tensor for tensor."""
    from safetensors.torch import load_file

    from restorekit.data.sample import make_sample_dataset

    make_sample_dataset(tmp_path / "datasets" / "sample")
    monkeypatch.chdir(tmp_path)
    short = [
        "train.total_iter=2",
        "logger.save_checkpoint_freq=2",
        "logger.progress_bar=false",
        "logger.tensorboard=false",
        "data.train.batch_size=2",
        "data.train.num_workers=0",
        "data.val={}",
        "val.baseline=null",
    ]
    stage2 = ["train", "-c", str(CONFIGS / "swinir_real_x4_toy.yml"), *short, "train.net_d_init_iters=2"]
    assert main(stage2) != 0
    err = capsys.readouterr().err.strip().splitlines()
    stage1 = "experiments/swinir_real_x4_psnr_toy/model.safetensors"
    assert err == [f"error: pretrained: {stage1}: weights file not found"]
    assert not Path("experiments/swinir_real_x4_toy").exists()
    assert main(["train", "-c", str(CONFIGS / "swinir_real_x4_psnr_toy.yml"), *short]) == 0
    first = load_file(stage1)
    state = torch.load(
        "experiments/swinir_real_x4_psnr_toy/checkpoints/iter_2/training_state.pt", weights_only=True
    )
    assert set(state["task"]["optimizers"]) == {"g"}  # no discriminator in the PSNR stage
    assert main(stage2) == 0
    second = load_file("experiments/swinir_real_x4_toy/model.safetensors")
    assert second.keys() == first.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert Path("experiments/swinir_real_x4_toy/checkpoints/iter_2/net_d.safetensors").is_file()

"""``color: y`` (BasicSR's Y-channel training, as its ECBSR files use) in the datasets and in
``restorekit config import-basicsr``.

``ECBSR_X2`` is BasicSR's ``options/train/ECBSR/train_ECBSR_x2_m4c16_prelu.yml`` at 8d56e3a,
verbatim (read when this test was written; tests never use the network).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import make_pairs
from restorekit.archs.export import load_network
from restorekit.cli import main
from restorekit.compat.basicsr import convert_basicsr
from restorekit.config import load_config
from restorekit.config.loader import read_yaml
from restorekit.data.datasets import BicubicDataset, PairedImageDataset
from restorekit.errors import ConfigError
from restorekit.metrics.psnr_ssim import bgr2ycbcr
from restorekit.registry import DATASETS

pytestmark = pytest.mark.usefixtures("one_thread")

ECBSR_X2 = """\
# general settings
name: 101_train_ECBSR_x2_m4c16_prelu
model_type: SRModel
scale: 2
num_gpu: 1  # set num_gpu: 0 for cpu mode
manual_seed: 0

# dataset and data loader settings
datasets:
  train:
    name: DIV2K
    type: PairedImageDataset
    # It is strongly recommended to use lmdb for faster IO speed, especially for small networks
    dataroot_gt: datasets/DF2K/DIV2K_train_HR_sub
    dataroot_lq: datasets/DF2K/DIV2K_train_LR_bicubic_X2_sub
    meta_info_file: basicsr/data/meta_info/meta_info_DIV2K800sub_GT.txt
    filename_tmpl: '{}'
    io_backend:
      type: disk

    gt_size: 128
    use_hflip: true
    use_rot: true
    color: y

    # data loader
    num_worker_per_gpu: 12
    batch_size_per_gpu: 32
    dataset_enlarge_ratio: 10
    prefetch_mode: ~

  # we use multiple validation datasets. The SR benchmark datasets can be download from: https://cv.snu.ac.kr/research/EDSR/benchmark.tar
  val:
    name: Set5
    type: PairedImageDataset
    dataroot_gt: datasets/benchmark/Set5/HR
    dataroot_lq: datasets/benchmark/Set5/LR_bicubic/X2
    filename_tmpl: '{}x2'
    color: y
    io_backend:
      type: disk

  val_2:
    name: Set14
    type: PairedImageDataset
    dataroot_gt: datasets/benchmark/Set14/HR
    dataroot_lq: datasets/benchmark/Set14/LR_bicubic/X2
    filename_tmpl: '{}x2'
    color: y
    io_backend:
      type: disk

  val_3:
    name: B100
    type: PairedImageDataset
    dataroot_gt: datasets/benchmark/B100/HR
    dataroot_lq: datasets/benchmark/B100/LR_bicubic/X2
    filename_tmpl: '{}x2'
    color: y
    io_backend:
      type: disk

  val_4:
    name: Urban100
    type: PairedImageDataset
    dataroot_gt: datasets/benchmark/Urban100/HR
    dataroot_lq: datasets/benchmark/Urban100/LR_bicubic/X2
    filename_tmpl: '{}x2'
    color: y
    io_backend:
      type: disk

# network structures
network_g:
  type: ECBSR
  num_in_ch: 1
  num_out_ch: 1
  num_block: 4
  num_channel: 16
  with_idt: False
  act_type: prelu
  scale: 2

# path
path:
  pretrain_network_g: ~
  strict_load_g: true
  resume_state: ~

# training settings
train:
  ema_decay: 0
  optim_g:
    type: Adam
    lr: !!float 5e-4
    weight_decay: 0
    betas: [0.9, 0.99]

  scheduler:
    type: MultiStepLR
    milestones: [1600000]
    gamma: 1

  total_iter: 1600000
  warmup_iter: -1  # no warm up

  # losses
  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean

# validation settings
val:
  val_freq: !!float 1600  # the same as the original setting. # TODO: Can be larger
  save_img: false
  pbar: False

  metrics:
    psnr:
      type: calculate_psnr
      crop_border: 2
      test_y_channel: true
      better: higher  # the higher, the better. Default: higher
    ssim:
      type: calculate_ssim
      crop_border: 2
      test_y_channel: true
      better: higher  # the higher, the better. Default: higher

# logging settings
logger:
  print_freq: 100
  save_checkpoint_freq: !!float 1600
  use_tb_logger: true
  wandb:
    project: ~
    resume_id: ~

# dist training settings
dist_params:
  backend: nccl
  port: 29500
"""

VAL_SETS = ("Set5", "Set14", "B100", "Urban100")


def _basicsr_y(path: Path) -> np.ndarray:
    """What BasicSR's PairedImageDataset gives for ``color: y``: Y of the float32 BGR image, HW."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR).astype(np.float32) / 255.0
    return bgr2ycbcr(img, y_only=True)


def test_paired_color_y_is_basicsrs_y_channel(tmp_path: Path) -> None:
    gt_dir, lq_dir = make_pairs(tmp_path, 2, 24, 2)
    cv2.imwrite(str(gt_dir / "img001.png"), cv2.imread(str(gt_dir / "img001.png"), cv2.IMREAD_GRAYSCALE))
    rgb = PairedImageDataset(str(gt_dir), str(lq_dir), 2)
    y = PairedImageDataset(str(gt_dir), str(lq_dir), 2, color="y")
    assert rgb[0]["gt"].shape == (3, 24, 24)  # the default is unchanged
    for i in range(2):
        sample = y[i]
        assert sample["gt"].shape == (1, 24, 24) and sample["lq"].shape == (1, 12, 12)
        assert sample["gt"].dtype == torch.float32
        assert np.array_equal(sample["gt"][0].numpy(), _basicsr_y(gt_dir / f"img{i:03d}.png"))
        assert np.array_equal(sample["lq"][0].numpy(), _basicsr_y(lq_dir / f"img{i:03d}.png"))
    gray = y[1]["gt"][0].numpy()  # a gray PNG counts as R = G = B: Y = (219 g + 16) / 255
    g = cv2.imread(str(gt_dir / "img001.png"), cv2.IMREAD_GRAYSCALE).astype(np.float64)
    assert np.allclose(gray, (219.0 * g / 255.0 + 16.0) / 255.0, atol=1e-6)
    assert float(y[0]["gt"].min()) >= 16 / 255 - 1e-6 and float(y[0]["gt"].max()) <= 235 / 255 + 1e-6
    # patches: the same crop and flips as RGB for the same key, then Y
    a = PairedImageDataset(str(gt_dir), str(lq_dir), 2, gt_size=8, use_hflip=True, use_rot=True)
    b = PairedImageDataset(str(gt_dir), str(lq_dir), 2, gt_size=8, use_hflip=True, use_rot=True, color="y")
    rgb_patch, y_patch = a[(0, 5)]["gt"], b[(0, 5)]["gt"]
    expected = bgr2ycbcr(rgb_patch.flip(0).permute(1, 2, 0).numpy().copy(), y_only=True)
    assert y_patch.shape == (1, 8, 8) and np.array_equal(y_patch[0].numpy(), expected)


def test_bicubic_color_y_and_bad_values(tmp_path: Path) -> None:
    gt_dir, _ = make_pairs(tmp_path, 1, 24, 2)
    rgb, y = BicubicDataset(str(gt_dir), 2)[0], BicubicDataset(str(gt_dir), 2, color="y")[0]
    assert y["gt"].shape == (1, 24, 24) and y["lq"].shape == (1, 12, 12)
    lq_bgr = rgb["lq"].flip(0).permute(1, 2, 0).numpy().copy()  # Y of the 8-bit bicubic RGB LQ
    assert np.array_equal(y["lq"][0].numpy(), bgr2ycbcr(lq_bgr, y_only=True))
    with pytest.raises(ConfigError, match="color: 'y' needs degrade_on: host"):
        BicubicDataset(str(gt_dir), 2, color="y", degrade_on="device")
    spec = {"type": "PairedImageDataset", "dataroot_gt": "a", "dataroot_lq": "b", "scale": 2}
    with pytest.raises(ConfigError, match="color: expected one of 'rgb', 'y'"):
        DATASETS.check({**spec, "color": "ycbcr"})


def test_import_converts_color_y(tmp_path: Path) -> None:
    src = tmp_path / "train_ECBSR_x2_m4c16_prelu.yml"
    src.write_text(ECBSR_X2, encoding="utf-8")
    cfg, _ = convert_basicsr(read_yaml(src), str(src))
    assert cfg["data"]["train"]["dataset"]["color"] == "y"
    assert all(cfg["data"]["val"][s]["dataset"]["color"] == "y" for s in VAL_SETS)
    assert cfg["network_g"]["type"] == "ECBSR" and cfg["network_g"]["num_in_ch"] == 1
    assert cfg["data"]["val"]["Set5"]["metrics"]["psnr"] == {"crop_border": 2, "test_y_channel": True}
    option = read_yaml(src)
    option["datasets"]["val"]["color"] = "rgb"  # BasicSR knows only 'y'
    with pytest.raises(
        ConfigError, match=r"datasets\.val\.color: 'rgb' cannot be converted; supported colours: y"
    ):
        convert_basicsr(option, str(src))


def test_ecbsr_option_file_converts_dry_runs_and_trains_on_y(tmp_path: Path) -> None:
    src, out = tmp_path / "train_ECBSR_x2_m4c16_prelu.yml", tmp_path / "ecbsr_x2.yml"
    src.write_text(ECBSR_X2, encoding="utf-8")
    assert main(["config", "import-basicsr", str(src), "-o", str(out)]) == 0
    train_gt, train_lq = make_pairs(tmp_path / "train", 4, 40, 2, seed=1)
    val_gt, val_lq = make_pairs(tmp_path / "val", 1, 24, 2, seed=2)
    for p in list(val_lq.iterdir()):  # the benchmark sets' names: filename_tmpl '{}x2'
        p.rename(p.with_name(f"{p.stem}x2.png"))
    meta = tmp_path / "meta_info.txt"
    meta.write_text("".join(f"{p.name} (40,40,3)\n" for p in sorted(train_gt.iterdir())), encoding="utf-8")
    paths = [
        f"data.train.dataset.dataroot_gt={train_gt}",
        f"data.train.dataset.dataroot_lq={train_lq}",
        f"data.train.dataset.meta_info={meta}",
    ]
    for s in VAL_SETS:
        paths += [f"data.val.{s}.dataset.dataroot_gt={val_gt}", f"data.val.{s}.dataset.dataroot_lq={val_lq}"]
    assert main(["train", "-c", str(out), "--dry-run", *paths]) == 0

    small = [
        "train.total_iter=2",
        "data.train.dataset.gt_size=16",
        "data.train.batch_size=2",
        "data.train.num_workers=0",
        "logger.tensorboard=false",
        "device=cpu",
        f"experiments_root={tmp_path / 'runs'}",
    ]
    assert main(["train", "-c", str(out), *paths, *small]) == 0
    run = tmp_path / "runs" / "101_train_ECBSR_x2_m4c16_prelu"
    cfg = load_config(run / "config.yaml")
    dataset = DATASETS.build({**cfg.data.train.dataset, "scale": 2})
    assert dataset[(0, 0)]["gt"].shape == (1, 16, 16) and dataset[(0, 0)]["lq"].shape == (1, 8, 8)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["iter"] for s in stats if "l_pixel" in s][-1] == 2
    model = load_network(run / "model.safetensors")
    with torch.no_grad():
        sr = model.eval()(torch.rand(1, 1, 6, 6))
    assert sr.shape == (1, 1, 12, 12)

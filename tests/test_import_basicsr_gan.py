"""`restorekit config import-basicsr` for GAN option files → task adversarial configs.

The option texts are modelled on the official files (BasicSR 8d56e3a
options/train/SRResNet_SRGAN/train_MSRGAN_x4.yml and options/train/ESRGAN/train_ESRGAN_x4.yml;
Real-ESRGAN options/train_realesrgan_x4plus.yml and train_realesrnet_x2plus.yml), with their
``!!float`` values, ``~`` nulls and dataset blocks. Each converted config must pass the same
checks as ``restorekit train --dry-run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from restorekit.cli import main
from restorekit.compat.basicsr import convert_basicsr, import_basicsr_file
from restorekit.config import load_config
from restorekit.config.loader import read_yaml
from restorekit.errors import ConfigError

COMMON_TAIL = """
val:
  val_freq: !!float 5e3
  save_img: true
  metrics:
    psnr:
      type: calculate_psnr
      crop_border: 4
      test_y_channel: false

logger:
  print_freq: 100
  save_checkpoint_freq: !!float 5e3
  use_tb_logger: true
  wandb:
    project: ~
    resume_id: ~

dist_params:
  backend: nccl
  port: 29500
"""

GAN_TRAIN = """
train:
  ema_decay: 0.999
  optim_g:
    type: Adam
    lr: !!float 1e-4
    weight_decay: 0
    betas: [0.9, 0.99]
  optim_d:
    type: Adam
    lr: !!float 1e-4
    weight_decay: 0
    betas: [0.9, 0.99]
  scheduler:
    type: MultiStepLR
    milestones: [50000, 100000, 200000, 300000]
    gamma: 0.5
  total_iter: 400000
  warmup_iter: -1  # no warm up
  pixel_opt:
    type: L1Loss
    loss_weight: !!float 1e-2
    reduction: mean
  perceptual_opt:
    type: PerceptualLoss
    layer_weights:
      'conv5_4': 1  # before relu
    vgg_type: vgg19
    use_input_norm: true
    range_norm: false
    perceptual_weight: 1.0
    style_weight: 0
    criterion: l1
  gan_opt:
    type: GANLoss
    gan_type: vanilla
    real_label_val: 1.0
    fake_label_val: 0.0
    loss_weight: !!float 5e-3
  net_d_iters: 1
  net_d_init_iters: 0
"""


def basicsr_gan(model_type: str, net_g: str) -> str:
    return f"""\
name: 004_GAN_x4_f64b16_DIV2K_400k_B16G1_wandb
model_type: {model_type}
scale: 4
num_gpu: 1  # set num_gpu: 0 for cpu mode
manual_seed: 0

datasets:
  train:
    name: DIV2K
    type: PairedImageDataset
    dataroot_gt: datasets/DIV2K/DIV2K_train_HR_sub
    dataroot_lq: datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub
    filename_tmpl: '{{}}'
    io_backend:
      type: disk
    gt_size: 128
    use_hflip: true
    use_rot: true
    num_worker_per_gpu: 6
    batch_size_per_gpu: 16
    dataset_enlarge_ratio: 100
    prefetch_mode: ~
  val:
    name: Set14
    type: PairedImageDataset
    dataroot_gt: datasets/Set14/GTmod12
    dataroot_lq: datasets/Set14/LRbicx4
    io_backend:
      type: disk

network_g:
{net_g}
network_d:
  type: VGGStyleDiscriminator
  num_in_ch: 3
  num_feat: 64

path:
  pretrain_network_g: experiments/001_pretrained/models/net_g_1000000.pth
  strict_load_g: true
  resume_state: ~
{GAN_TRAIN}{COMMON_TAIL}"""


MSRGAN = basicsr_gan(
    "SRGANModel",
    "  type: MSRResNet\n  num_in_ch: 3\n  num_out_ch: 3\n  num_feat: 64\n  num_block: 16\n  upscale: 4\n",
)
ESRGAN = basicsr_gan(
    "ESRGANModel", "  type: RRDBNet\n  num_in_ch: 3\n  num_out_ch: 3\n  num_feat: 64\n  num_block: 23\n"
)

DEGRADATION = """
# USM the ground-truth
l1_gt_usm: True
percep_gt_usm: True
gan_gt_usm: False

# the first degradation process
resize_prob: [0.2, 0.7, 0.1]  # up, down, keep
resize_range: [0.15, 1.5]
gaussian_noise_prob: 0.5
noise_range: [1, 30]
poisson_scale_range: [0.05, 3]
gray_noise_prob: 0.4
jpeg_range: [30, 95]

# the second degradation process
second_blur_prob: 0.8
resize_prob2: [0.3, 0.4, 0.3]  # up, down, keep
resize_range2: [0.3, 1.2]
gaussian_noise_prob2: 0.5
noise_range2: [1, 25]
poisson_scale_range2: [0.05, 2.5]
gray_noise_prob2: 0.4
jpeg_range2: [30, 95]

gt_size: 256
queue_size: 180

datasets:
  train:
    name: DF2K+OST
    type: RealESRGANDataset
    dataroot_gt: datasets/DF2K
    meta_info: datasets/DF2K/meta_info/meta_info_DF2Kmultiscale+OST_sub.txt
    io_backend:
      type: disk

    blur_kernel_size: 21
    kernel_list: ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
    kernel_prob: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
    sinc_prob: 0.1
    blur_sigma: [0.2, 3]
    betag_range: [0.5, 4]
    betap_range: [1, 2]

    blur_kernel_size2: 21
    kernel_list2: ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
    kernel_prob2: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
    sinc_prob2: 0.1
    blur_sigma2: [0.2, 1.5]
    betag_range2: [0.5, 4]
    betap_range2: [1, 2]

    final_sinc_prob: 0.8

    gt_size: 256
    use_hflip: True
    use_rot: False

    # data loader
    use_shuffle: true
    num_worker_per_gpu: 5
    batch_size_per_gpu: 12
    dataset_enlarge_ratio: 1
    prefetch_mode: ~
"""

REALESRGAN_X4 = f"""\
# general settings
name: train_RealESRGANx4plus_400k_B12G4
model_type: RealESRGANModel
scale: 4
num_gpu: auto  # auto: can infer from your visible devices automatically. official: 4 GPUs
manual_seed: 0
{DEGRADATION}
network_g:
  type: RRDBNet
  num_in_ch: 3
  num_out_ch: 3
  num_feat: 64
  num_block: 23
  num_grow_ch: 32

network_d:
  type: UNetDiscriminatorSN
  num_in_ch: 3
  num_feat: 64
  skip_connection: True

path:
  # use the pre-trained Real-ESRNet model
  pretrain_network_g: experiments/pretrained_models/RealESRNet_x4plus.pth
  param_key_g: params_ema
  strict_load_g: true
  resume_state: ~

train:
  ema_decay: 0.999
  optim_g:
    type: Adam
    lr: !!float 1e-4
    weight_decay: 0
    betas: [0.9, 0.99]
  optim_d:
    type: Adam
    lr: !!float 1e-4
    weight_decay: 0
    betas: [0.9, 0.99]

  scheduler:
    type: MultiStepLR
    milestones: [400000]
    gamma: 0.5

  total_iter: 400000
  warmup_iter: -1  # no warm up

  # losses
  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean
  # perceptual loss (content and style losses)
  perceptual_opt:
    type: PerceptualLoss
    layer_weights:
      # before relu
      'conv1_2': 0.1
      'conv2_2': 0.1
      'conv3_4': 1
      'conv4_4': 1
      'conv5_4': 1
    vgg_type: vgg19
    use_input_norm: true
    perceptual_weight: !!float 1.0
    style_weight: 0
    range_norm: false
    criterion: l1
  # gan loss
  gan_opt:
    type: GANLoss
    gan_type: vanilla
    real_label_val: 1.0
    fake_label_val: 0.0
    loss_weight: !!float 1e-1

  net_d_iters: 1
  net_d_init_iters: 0

logger:
  print_freq: 100
  save_checkpoint_freq: !!float 5e3
  use_tb_logger: true
  wandb:
    project: ~
    resume_id: ~

dist_params:
  backend: nccl
  port: 29500
"""

REALESRNET_X2 = (
    REALESRGAN_X4.replace("train_RealESRGANx4plus_400k_B12G4", "train_RealESRNetx2plus_1000k_B12G4")
    .replace("model_type: RealESRGANModel", "model_type: RealESRNetModel")
    .replace("scale: 4\n", "scale: 2\n", 1)
    .replace(
        "l1_gt_usm: True\npercep_gt_usm: True\ngan_gt_usm: False\n", "gt_usm: True  # USM the ground-truth\n"
    )
    .replace("  num_grow_ch: 32\n", "  num_grow_ch: 32\n  scale: 2\n")
    .replace("RealESRNet_x4plus.pth", "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth")
)
_start, _end = REALESRNET_X2.index("network_d:"), REALESRNET_X2.index("path:")
REALESRNET_X2 = REALESRNET_X2[:_start] + REALESRNET_X2[_end:]
_start, _end = REALESRNET_X2.index("  optim_d:"), REALESRNET_X2.index("\n  scheduler:")
REALESRNET_X2 = REALESRNET_X2[:_start] + REALESRNET_X2[_end + 1 :]
_start, _end = REALESRNET_X2.index("  # perceptual loss"), REALESRNET_X2.index("\nlogger:")
REALESRNET_X2 = REALESRNET_X2[:_start] + REALESRNET_X2[_end:]


def convert(tmp_path: Path, text: str, name: str = "opt.yml") -> tuple[Path, dict[str, Any], list[str]]:
    """Convert like the CLI does and check the result like `restorekit train --dry-run`."""
    src = tmp_path / name
    src.write_text(text, encoding="utf-8")
    out = tmp_path / f"converted_{name}"
    notes = import_basicsr_file(src, out)
    assert main(["train", "-c", str(out), "--dry-run"]) == 0
    return out, yaml.safe_load(out.read_text(encoding="utf-8")), notes


def test_srgan_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, cfg, notes = convert(tmp_path, MSRGAN)
    capsys.readouterr()
    assert cfg["task"] == "adversarial" and cfg["network_g"]["type"] == "MSRResNet"
    assert cfg["network_d"] == {"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 64}
    assert cfg["pretrained"] == "experiments/001_pretrained/models/net_g_1000000.pth"
    assert cfg["pretrained_d"] is None and cfg["pretrained_d_strict"] is True
    train = cfg["train"]
    assert train["optim_d"] == {"type": "Adam", "lr": 1e-4, "weight_decay": 0.0, "betas": [0.9, 0.99]}
    assert train["scheduler"] == {
        "type": "MultiStepRestartLR",
        "milestones": [50000, 100000, 200000, 300000],
        "gamma": 0.5,
    }
    assert train["losses"] == {
        "pixel": {"type": "L1Loss", "loss_weight": 0.01, "reduction": "mean"},
        "perceptual": {
            "type": "PerceptualLoss",
            "layer_weights": {"conv5_4": 1.0},
            "vgg_type": "vgg19",
            "use_input_norm": True,
            "range_norm": False,
            "perceptual_weight": 1.0,
            "style_weight": 0.0,
            "criterion": "l1",
        },
        "gan": {
            "type": "GANLoss",
            "gan_type": "vanilla",
            "real_label_val": 1.0,
            "fake_label_val": 0.0,
            "loss_weight": 0.005,
        },
    }
    assert (train["net_d_iters"], train["net_d_init_iters"], train["ema_decay"], train["usm_gt"]) == (
        1,
        0,
        0.999,
        [],
    )
    assert cfg["data"]["train"]["dataset"]["gt_size"] == 128
    assert any("PerceptualLoss needs torchvision's vgg19" in n for n in notes)
    loaded = load_config(out)
    assert loaded.network_d is not None and loaded.train is not None and loaded.train.optim_d is not None


def test_esrgan_model_is_relativistic(tmp_path: Path) -> None:
    _, cfg, notes = convert(tmp_path, ESRGAN)
    assert cfg["train"]["losses"]["gan"]["gan_type"] == "ragan"
    assert any(
        n.startswith("train.gan_opt.gan_type: vanilla under ESRGANModel is relativistic") for n in notes
    )
    assert cfg["network_g"]["type"] == "RRDBNet"


def test_realesrgan_x4plus(tmp_path: Path) -> None:
    _, cfg, notes = convert(tmp_path, REALESRGAN_X4)
    assert cfg["network_d"] == {
        "type": "UNetDiscriminatorSN",
        "num_in_ch": 3,
        "num_feat": 64,
        "skip_connection": True,
    }
    assert cfg["degradation"] == {
        "resize_prob": [0.2, 0.7, 0.1],
        "resize_range": [0.15, 1.5],
        "noise_range": [1.0, 30.0],
        "resize_prob2": [0.3, 0.4, 0.3],
        "resize_range2": [0.3, 1.2],
        "noise_range2": [1.0, 25.0],
        "poisson_scale_range": [0.05, 3.0],
        "jpeg_range": [30.0, 95.0],
        "poisson_scale_range2": [0.05, 2.5],
        "jpeg_range2": [30.0, 95.0],
        "gaussian_noise_prob": 0.5,
        "gray_noise_prob": 0.4,
        "gaussian_noise_prob2": 0.5,
        "gray_noise_prob2": 0.4,
        "second_blur_prob": 0.8,
        "gt_size": 256,
        "queue_size": 180,
    }
    ds = cfg["data"]["train"]["dataset"]
    assert ds["type"] == "RealESRGANDataset" and ds["meta_info"].endswith(
        "meta_info_DF2Kmultiscale+OST_sub.txt"
    )
    assert (
        ds["kernel_list2"][-1] == "plateau_aniso"
        and ds["blur_sigma2"] == [0.2, 1.5]
        and ds["final_sinc_prob"] == 0.8
    )
    assert ds["use_hflip"] is True and ds["use_rot"] is False and "gt_size" not in ds
    assert cfg["data"]["train"]["batch_size"] == 12 and cfg["data"]["train"]["num_workers"] == 5
    train = cfg["train"]
    assert train["usm_gt"] == ["pixel", "perceptual"]  # l1/percep_gt_usm true, gan_gt_usm false
    assert train["losses"]["gan"] == {
        "type": "GANLoss",
        "gan_type": "vanilla",
        "real_label_val": 1.0,
        "fake_label_val": 0.0,
        "loss_weight": 0.1,
    }
    assert train["losses"]["perceptual"]["layer_weights"] == {
        "conv1_2": 0.1,
        "conv2_2": 0.1,
        "conv3_4": 1.0,
        "conv4_4": 1.0,
        "conv5_4": 1.0,
    }
    assert (
        "datasets.train.gt_size: dropped — Real-ESRGAN crops at the top-level gt_size (degradation.gt_size)"
        in notes
    )


def test_realesrnet_x2plus_has_no_discriminator(tmp_path: Path) -> None:
    _, cfg, notes = convert(tmp_path, REALESRNET_X2)
    assert "network_d" not in cfg and cfg["network_g"]["scale"] == 2 and cfg["scale"] == 2
    assert cfg["train"]["losses"] == {"pixel": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}}
    assert cfg["train"]["usm_gt"] == ["pixel"] and "optim_d" not in cfg["train"]
    assert any(n.startswith("gt_usm: mapped to train.usm_gt") for n in notes)


def _option(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=yaml.SafeLoader)


@pytest.mark.parametrize(
    ("text", "dotted", "value", "key", "needle"),
    [
        (
            ESRGAN,
            "train.gan_opt.gan_type",
            "lsgan",
            "train.gan_opt.gan_type",
            "only the relativistic vanilla",
        ),
        (MSRGAN, "train.gan_opt.gan_type", "smgan", "train.gan_opt.gan_type", "supported GAN types: vanilla"),
        (MSRGAN, "network_d.type", "PatchGANDiscriminator", "network_d.type", "supported discriminators"),
        (MSRGAN, "train.ldl_opt", {"type": "L1Loss"}, "train.ldl_opt", "LDL"),
        (
            MSRGAN,
            "train.perceptual_opt.criterion",
            "l3",
            "train.perceptual_opt.criterion",
            "supported criteria",
        ),
        (MSRGAN, "train.gan_opt", None, "train.gan_opt", "required key is missing"),
        (MSRGAN, "l1_gt_usm", True, "l1_gt_usm", "unknown BasicSR option"),
        (REALESRGAN_X4, "high_order_degradation", False, "high_order_degradation", "RealESRGANPairedDataset"),
        (REALESRGAN_X4, "resize_prob3", [0.1, 0.8, 0.1], "resize_prob3", "did you mean 'resize_prob"),
        (
            REALESRGAN_X4,
            "datasets.train.type",
            "PairedImageDataset",
            "datasets.train.type",
            "RealESRGANDataset",
        ),
        (REALESRGAN_X4, "queue_size", None, "queue_size", "required key is missing"),
        (REALESRGAN_X4, "datasets.train.kernel_list", "iso", "datasets.train.kernel_list", "list of names"),
        (REALESRNET_X2, "network_d", {"type": "UNetDiscriminatorSN"}, "network_d", "no discriminator"),
        (REALESRNET_X2, "train.gan_opt", {"type": "GANLoss"}, "train.gan_opt", "no discriminator"),
    ],
)
def test_unmappable_keys_name_the_key(text: str, dotted: str, value: Any, key: str, needle: str) -> None:
    option = _option(text)
    *parents, last = dotted.split(".")
    node = option
    for p in parents:
        node = node[p]
    if value is None:
        del node[last]
    else:
        node[last] = value
    with pytest.raises(ConfigError) as info:
        convert_basicsr(option, "opts/x.yml")
    msg = str(info.value)
    assert msg.startswith(f"opts/x.yml: {key}: ") and needle in msg and "\n" not in msg, msg


def test_conversion_does_not_touch_the_option_and_cli_reports_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "train_realesrgan_x4plus.yml"
    src.write_text(REALESRGAN_X4, encoding="utf-8")
    option = read_yaml(src)
    before = yaml.safe_dump(option)
    convert_basicsr(option, str(src))
    assert yaml.safe_dump(option) == before
    out = tmp_path / "rk.yml"
    assert main(["config", "import-basicsr", str(src), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: path.resume_state: dropped" in printed and f"wrote {out}" in printed
    assert "param_key_g" not in printed  # mapped, not dropped
    assert load_config(out).degradation is not None
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["pretrained_param_key"] == "params_ema"

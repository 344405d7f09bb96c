"""`restorekit config import-basicsr`: BasicSR SRModel option files → our config.

The option texts below are modelled on BasicSR's own files (options/train/EDSR/train_EDSR_Mx2.yml,
SRResNet_SRGAN/train_MSRResNet_x4.yml, ESRGAN/train_RRDBNet_PSNR_x4.yml at 8d56e3a), with their
``!!float`` values, ``~`` nulls, metric ``type`` fields and ``dist_params``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from restorekit.compat.basicsr import convert_basicsr, import_basicsr, import_basicsr_file
from restorekit.config import load_config, validate_config
from restorekit.config.loader import read_yaml
from restorekit.errors import ConfigError, RestorekitError

EDSR_MX2 = """\
# general settings
name: 201_EDSR_Mx2_f64b16_DIV2K_300k_B16G1_wandb
model_type: SRModel
scale: 2
num_gpu: 1  # set num_gpu: 0 for cpu mode
manual_seed: 10

datasets:
  train:
    name: DIV2K
    type: PairedImageDataset
    dataroot_gt: datasets/DIV2K/DIV2K_train_HR_sub
    dataroot_lq: datasets/DIV2K/DIV2K_train_LR_bicubic/X2_sub
    filename_tmpl: '{}'
    io_backend:
      type: disk
    gt_size: 96
    use_hflip: true
    use_rot: true
    num_worker_per_gpu: 6
    batch_size_per_gpu: 16
    dataset_enlarge_ratio: 100
    prefetch_mode: ~

  val:
    name: Set5
    type: PairedImageDataset
    dataroot_gt: datasets/Set5/GTmod12
    dataroot_lq: datasets/Set5/LRbicx2
    io_backend:
      type: disk

network_g:
  type: EDSR
  num_in_ch: 3
  num_out_ch: 3
  num_feat: 64
  num_block: 16
  upscale: 2
  res_scale: 1
  img_range: 255.
  rgb_mean: [0.4488, 0.4371, 0.4040]

path:
  pretrain_network_g: ~
  strict_load_g: true
  resume_state: ~

train:
  ema_decay: 0.999
  optim_g:
    type: Adam
    lr: !!float 1e-4
    weight_decay: 0
    betas: [0.9, 0.99]
  scheduler:
    type: MultiStepLR
    milestones: [200000]
    gamma: 0.5
  total_iter: 300000
  warmup_iter: -1  # no warm up
  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean

val:
  val_freq: !!float 5e3
  save_img: false
  metrics:
    psnr: # metric name, can be arbitrary
      type: calculate_psnr
      crop_border: 2
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

MSRRESNET_X4 = """\
name: 001_MSRResNet_x4_f64b16_DIV2K_1000k_B16G1_wandb
model_type: SRModel
scale: 4
num_gpu: 1
manual_seed: 0

datasets:
  train:
    name: DIV2K
    type: PairedImageDataset
    dataroot_gt: datasets/DF2K/DIV2K_train_HR_sub
    dataroot_lq: datasets/DF2K/DIV2K_train_LR_bicubic_X4_sub
    meta_info_file: basicsr/data/meta_info/meta_info_DIV2K800sub_GT.txt
    filename_tmpl: '{}'
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
    name: Set5
    type: PairedImageDataset
    dataroot_gt: datasets/Set5/GTmod12
    dataroot_lq: datasets/Set5/LRbicx4
    io_backend:
      type: disk

  val_2:
    name: Set14
    type: PairedImageDataset
    dataroot_gt: datasets/Set14/GTmod12
    dataroot_lq: datasets/Set14/LRbicx4
    io_backend:
      type: disk

network_g:
  type: MSRResNet
  num_in_ch: 3
  num_out_ch: 3
  num_feat: 64
  num_block: 16
  upscale: 4

path:
  pretrain_network_g: ~
  param_key_g: params
  strict_load_g: true
  resume_state: ~

train:
  ema_decay: 0.999
  optim_g:
    type: Adam
    lr: !!float 2e-4
    weight_decay: 0
    betas: [0.9, 0.99]
  scheduler:
    type: CosineAnnealingRestartLR
    periods: [250000, 250000, 250000, 250000]
    restart_weights: [1, 1, 1, 1]
    eta_min: !!float 1e-7
  total_iter: 1000000
  warmup_iter: -1  # no warm up
  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean

val:
  val_freq: !!float 5e3
  save_img: true
  metrics:
    psnr:
      type: calculate_psnr
      crop_border: 4
      test_y_channel: false
      better: higher  # the higher, the better. Default: higher
    ssim:
      type: calculate_ssim
      crop_border: 4
      test_y_channel: true

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

RRDBNET_PSNR_X4 = """\
name: 051_RRDBNet_PSNR_x4_f64b23_DIV2K_1000k_B16G1_wandb
model_type: SRModel
scale: 4
num_gpu: 1
manual_seed: 0

datasets:
  train:
    name: DIV2K
    type: PairedImageDataset
    dataroot_gt: datasets/DIV2K/DIV2K_train_HR_sub.lmdb
    dataroot_lq: datasets/DIV2K/DIV2K_train_LR_bicubic_X4_sub.lmdb
    filename_tmpl: '{}'
    io_backend:
      type: lmdb
    gt_size: 128
    use_hflip: true
    use_rot: true
    use_shuffle: true
    num_worker_per_gpu: 6
    batch_size_per_gpu: 16
    dataset_enlarge_ratio: 100
    prefetch_mode: cuda
    pin_memory: true

  val:
    name: Set5
    type: PairedImageDataset
    dataroot_gt: datasets/Set5/GTmod12
    dataroot_lq: datasets/Set5/LRbicx4
    io_backend:
      type: disk

network_g:
  type: RRDBNet
  num_in_ch: 3
  num_out_ch: 3
  num_feat: 64
  num_block: 23
  num_grow_ch: 32

path:
  pretrain_network_g: experiments/pretrained_models/RRDB_PSNR_x4.pth
  strict_load_g: false
  resume_state: ~

train:
  ema_decay: 0.999
  optim_g:
    type: Adam
    lr: 2e-4
    weight_decay: 0
    betas: [0.9, 0.99]
  scheduler:
    type: CosineAnnealingRestartLR
    periods: [250000, 250000, 250000, 250000]
    restart_weights: [1, 1, 1, 1]
    eta_min: !!float 1e-7
  total_iter: 1000000
  warmup_iter: 2000
  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean

val:
  val_freq: !!float 5e3
  save_img: false
  pbar: true
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
    project: basicsr
    resume_id: ~

dist_params:
  backend: nccl
  port: 29500
"""


def parse(tmp_path: Path, text: str, name: str = "opt.yml") -> dict[str, Any]:
    """Read an option text the way the CLI does (``read_yaml`` handles ``!!float`` and ``2e-4``)."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read_yaml(path)


def test_edsr_mx2(tmp_path: Path) -> None:
    option = parse(tmp_path, EDSR_MX2)
    before = copy.deepcopy(option)
    cfg, notes = convert_basicsr(option, "train_EDSR_Mx2.yml")
    assert option == before  # the input is not modified
    assert cfg["name"] == "201_EDSR_Mx2_f64b16_DIV2K_300k_B16G1_wandb"
    assert (cfg["task"], cfg["scale"], cfg["seed"]) == ("restoration", 2, 10)
    assert cfg["network_g"] == {
        "type": "EDSR",
        "num_in_ch": 3,
        "num_out_ch": 3,
        "num_feat": 64,
        "num_block": 16,
        "upscale": 2,
        "res_scale": 1,
        "img_range": 255.0,
        "rgb_mean": [0.4488, 0.4371, 0.4040],
    }
    assert cfg["pretrained"] is None and cfg["pretrained_strict"] is True
    assert cfg["data"]["train"] == {
        "dataset": {
            "type": "PairedImageDataset",
            "dataroot_gt": "datasets/DIV2K/DIV2K_train_HR_sub",
            "dataroot_lq": "datasets/DIV2K/DIV2K_train_LR_bicubic/X2_sub",
            "io_backend": "disk",
            "filename_tmpl": "{}",
            "gt_size": 96,
            "use_hflip": True,
            "use_rot": True,
        },
        "batch_size": 16,
        "num_workers": 6,
        "prefetch": "auto",
    }
    assert cfg["data"]["val"] == {
        "Set5": {
            "dataset": {
                "type": "PairedImageDataset",
                "dataroot_gt": "datasets/Set5/GTmod12",
                "dataroot_lq": "datasets/Set5/LRbicx2",
                "io_backend": "disk",
            },
            "metrics": {"psnr": {"crop_border": 2, "test_y_channel": False}},
            "save_images": False,
        }
    }
    train = cfg["train"]
    assert train["total_iter"] == 300000
    assert train["optim_g"] == {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]}
    assert train["scheduler"] == {"type": "MultiStepRestartLR", "milestones": [200000], "gamma": 0.5}
    assert train["warmup_iter"] == 0  # BasicSR's -1: no warm-up
    assert train["losses"] == {"pixel": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}}
    assert train["ema_decay"] == 0.999
    assert cfg["val"] == {"freq": 5000} and type(cfg["val"]["freq"]) is int
    assert cfg["logger"] == {
        "print_freq": 100,
        "save_checkpoint_freq": 5000,
        "tensorboard": True,
        "wandb_project": None,
    }
    assert type(cfg["logger"]["save_checkpoint_freq"]) is int

    typed = validate_config(cfg)
    assert typed.train is not None and typed.train.optim_g["lr"] == 1e-4
    assert typed.data.val["Set5"].metrics == {"psnr": {"crop_border": 2, "test_y_channel": False}}

    keys = [n.split(":")[0] for n in notes]
    for dropped in (
        "num_gpu",
        "dist_params",
        "datasets.train.name",
        "datasets.train.dataset_enlarge_ratio",
        "path.resume_state",
        "logger.wandb.resume_id",
        "val.metrics.psnr.type",
    ):
        assert dropped in keys, (dropped, notes)
    assert all(n.count("\n") == 0 and ": " in n for n in notes)
    assert import_basicsr(option, "x.yml") == cfg


def test_msrresnet_x4_cosine_two_val_sets(tmp_path: Path) -> None:
    cfg, notes = convert_basicsr(parse(tmp_path, MSRRESNET_X4), "train_MSRResNet_x4.yml")
    assert cfg["scale"] == 4 and cfg["seed"] == 0
    assert cfg["network_g"] == {
        "type": "MSRResNet",
        "num_in_ch": 3,
        "num_out_ch": 3,
        "num_feat": 64,
        "num_block": 16,
        "upscale": 4,
    }
    ds = cfg["data"]["train"]["dataset"]
    assert ds["meta_info"] == "basicsr/data/meta_info/meta_info_DIV2K800sub_GT.txt"
    assert ds["gt_size"] == 128
    train = cfg["train"]
    assert train["optim_g"]["lr"] == 2e-4 and train["optim_g"]["betas"] == [0.9, 0.99]
    assert train["scheduler"] == {
        "type": "CosineAnnealingRestartLR",
        "periods": [250000] * 4,
        "restart_weights": [1.0] * 4,
        "eta_min": 1e-7,
    }
    assert train["total_iter"] == 1000000
    # BasicSR applies val.metrics (and save_img) to every validation set; the set's name is its key.
    assert list(cfg["data"]["val"]) == ["Set5", "Set14"]
    for vset in cfg["data"]["val"].values():
        assert vset["metrics"] == {
            "psnr": {"crop_border": 4, "test_y_channel": False},
            "ssim": {"crop_border": 4, "test_y_channel": True},
        }
        assert vset["save_images"] is True
    assert cfg["data"]["val"]["Set14"]["dataset"]["dataroot_lq"] == "datasets/Set14/LRbicx4"
    keys = [n.split(":")[0] for n in notes]
    assert {"val.metrics.psnr.better", "val.metrics.ssim.type"} <= set(keys)
    # param_key_g is honoured (mapped, so no note); strict_load_g as before
    assert "path.param_key_g" not in keys
    assert (cfg["pretrained_param_key"], cfg["pretrained_strict"]) == ("params", True)
    validate_config(cfg)


def test_rrdbnet_lmdb_cuda_prefetch_wandb(tmp_path: Path) -> None:
    cfg, notes = convert_basicsr(parse(tmp_path, RRDBNET_PSNR_X4), "train_RRDBNet_PSNR_x4.yml")
    # BasicSR's RRDBNet defaults to scale 4; ours takes the top-level scale, also 4.
    assert "scale" not in cfg["network_g"] and cfg["network_g"]["num_block"] == 23
    assert cfg["pretrained"] == "experiments/pretrained_models/RRDB_PSNR_x4.pth"
    assert cfg["pretrained_strict"] is False
    loader = cfg["data"]["train"]
    assert loader["dataset"]["io_backend"] == "lmdb" and "filename_tmpl" not in loader["dataset"]
    assert (loader["prefetch"], loader["pin_memory"]) == ("cuda", True)
    assert cfg["train"]["optim_g"]["lr"] == 2e-4  # plain 2e-4, without !!float
    assert cfg["train"]["warmup_iter"] == 2000
    assert cfg["logger"]["wandb_project"] == "basicsr" and cfg["logger"]["progress_bar"] is True
    keys = [n.split(":")[0] for n in notes]
    assert {"datasets.train.use_shuffle", "val.pbar"} <= set(keys)
    validate_config(cfg)


def test_lmdb_ignores_meta_info_file_like_basicsr(tmp_path: Path) -> None:
    option = parse(tmp_path, RRDBNET_PSNR_X4)
    option["datasets"]["train"]["meta_info_file"] = "meta_info.txt"
    cfg, notes = convert_basicsr(option, "o.yml")
    assert "meta_info" not in cfg["data"]["train"]["dataset"]
    assert any(n.startswith("datasets.train.meta_info_file: dropped") for n in notes)


def test_matching_dataset_scale_and_null_seed_are_notes(tmp_path: Path) -> None:
    option = parse(tmp_path, EDSR_MX2)
    option["datasets"]["val"]["scale"] = 2
    option["manual_seed"] = None
    option["val"]["pbar"] = False
    cfg, notes = convert_basicsr(option, "o.yml")
    assert "scale" not in cfg["data"]["val"]["Set5"]["dataset"] and cfg["seed"] == 0
    assert cfg["logger"]["progress_bar"] is False
    keys = [n.split(":")[0] for n in notes]
    assert {"datasets.val.scale", "manual_seed"} <= set(keys)


def test_optional_keys_dropped_with_notes_and_near_misses(tmp_path: Path) -> None:
    option = parse(tmp_path, EDSR_MX2)
    option["train"]["scheduler"]["last_epoch"] = -1
    option["val"]["metrics"]["psnr"]["input_order"] = "HWC"
    option["val"]["suffix"] = "sr"
    del option["val"]
    cfg, notes = convert_basicsr(option, "o.yml")
    assert cfg["val"] == {} and cfg["data"]["val"]["Set5"]["metrics"] == {}
    keys = [n.split(":")[0] for n in notes]
    assert {"train.scheduler.last_epoch", "val"} <= set(keys)
    validate_config(cfg)

    option = parse(tmp_path, EDSR_MX2)
    option["val"]["metrics"]["psnr"]["input_order"] = "HWC"
    option["val"]["suffix"] = "sr"
    keys = [n.split(":")[0] for n in convert_basicsr(option, "o.yml")[1]]
    assert {"val.metrics.psnr.input_order", "val.suffix"} <= set(keys)

    option = parse(tmp_path, EDSR_MX2)
    option["num_gpus"] = 1
    with pytest.raises(ConfigError, match=r"^o\.yml: num_gpus: unknown .*did you mean 'num_gpu'"):
        import_basicsr(option, "o.yml")
    option = parse(tmp_path, EDSR_MX2)
    option["train"]["pixel_opts"] = option["train"].pop("pixel_opt")
    with pytest.raises(ConfigError, match=r"^o\.yml: train\.pixel_opt: required key is missing"):
        import_basicsr(option, "o.yml")


def test_scale_from_the_datasets_when_the_top_level_has_none(tmp_path: Path) -> None:
    option = parse(tmp_path, EDSR_MX2)
    del option["scale"]
    option["datasets"]["train"]["scale"] = 2
    assert import_basicsr(option, "o.yml")["scale"] == 2
    del option["datasets"]["train"]["scale"]
    with pytest.raises(ConfigError, match=r"^o\.yml: scale: required key is missing"):
        import_basicsr(option, "o.yml")


def _set(option: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = option
    for p in parents:
        node = node[p]
    node[last] = value


@pytest.mark.parametrize(
    ("dotted", "value", "needle"),
    [
        ("foo", 1, "unknown BasicSR option"),
        ("model_type", "VideoBaseModel", "supported model types: SRModel"),
        ("network_d", {"type": "VGGStyleDiscriminator"}, "SRModel"),
        ("train.optim_g.type", "Lion", "supported optimizers: Adam, AdamW, SGD"),
        ("train.optim_g.momentum_x", 0.9, "unknown BasicSR option"),
        ("train.scheduler.type", "StepLR", "supported schedulers"),
        ("train.scheduler.last_epoch", 10, "only -1"),
        ("train.scheduler.milestones", [200000, "x"], "expected an integer"),
        ("train.pixel_opt.type", "WeightedTVLoss", "supported losses"),
        ("train.perceptual_opt", {"type": "PerceptualLoss"}, "perceptual"),
        ("train.optim_d", {"type": "Adam", "lr": 1e-4}, "GAN"),
        ("train.foo", 1, "unknown BasicSR option"),
        ("datasets.train.type", "SingleImageDataset", "supported dataset types: PairedImageDataset"),
        ("datasets.train.mean", [0.5, 0.5, 0.5], "normalisation"),
        ("datasets.val.std", [0.5, 0.5, 0.5], "normalisation"),
        ("datasets.train.use_shuffle", False, "always shuffles"),
        ("datasets.val.scale", 3, "disagrees with the top-level scale 2"),
        ("datasets.train.io_backend.type", "memcached", "supported io backends: disk, lmdb"),
        ("datasets.train.color", "rgb", "supported colours: y"),
        ("datasets.test_1", {"type": "PairedImageDataset"}, "'train' and 'val*'"),
        ("network_g.upscale", 4, "disagrees with the top-level scale 2"),
        ("val.metrics.lpips", {"type": "calculate_lpips"}, "supported metric types"),
        ("val.metrics.niqe", {"type": "calculate_niqe", "convert_to": "rgb"}, "convert_to values: y, gray"),
        ("val.metrics.niqe", {"type": "calculate_niqe", "input_order": "CHW"}, "only 'HWC'"),
        ("val.metrics.psnr.foo", 1, "unknown BasicSR option"),
        ("logger.use_tb_logger", "yes", "expected true or false"),
        ("train.total_iter", 1.5, "expected an integer"),
        ("path.pretrain_network_d", "d.pth", "SRModel"),
    ],
)
def test_unmappable_keys_are_errors_naming_the_key(
    tmp_path: Path, dotted: str, value: Any, needle: str
) -> None:
    option = parse(tmp_path, EDSR_MX2)
    _set(option, dotted, value)
    with pytest.raises(ConfigError) as info:
        import_basicsr(option, "opts/train_x.yml")
    msg = str(info.value)
    # The error names the innermost key that is wrong.
    key = {
        "val.metrics.lpips": "val.metrics.lpips.type",
        "train.scheduler.milestones": "train.scheduler.milestones.1",
    }.get(dotted, dotted)
    if dotted == "val.metrics.niqe":  # the niqe option that is wrong
        key = f"{dotted}.{next(k for k in value if k != 'type')}"
    assert msg.startswith(f"opts/train_x.yml: {key}: "), msg
    assert needle in msg and "\n" not in msg


def test_missing_required_keys(tmp_path: Path) -> None:
    for dotted in ("model_type", "train.optim_g", "train.pixel_opt", "datasets.train.dataroot_lq"):
        option = parse(tmp_path, EDSR_MX2)
        *parents, last = dotted.split(".")
        node = option
        for p in parents:
            node = node[p]
        del node[last]
        with pytest.raises(ConfigError, match=rf"^o\.yml: {dotted}: .*(required|missing)"):
            import_basicsr(option, "o.yml")


def test_file_conversion_round_trips_and_refuses_to_overwrite(tmp_path: Path) -> None:
    src = tmp_path / "train_MSRResNet_x4.yml"
    src.write_text(MSRRESNET_X4, encoding="utf-8")
    out = tmp_path / "converted" / "msrresnet.yml"
    notes = import_basicsr_file(src, out)
    text = out.read_text(encoding="utf-8")
    assert text.startswith(f"# Converted from {src}")
    assert "param_key_g" not in text  # mapped now, not dropped
    assert "pretrained_strict: true\npretrained_param_key: params\n" in text
    assert "betas: [0.9, 0.99]" in text  # short lists stay readable
    cfg = load_config(out)
    assert cfg == validate_config(import_basicsr(read_yaml(src), str(src)))
    assert cfg.train is not None and cfg.train.scheduler is not None
    assert cfg.train.scheduler["eta_min"] == 1e-7 and cfg.train.total_iter == 1000000
    assert cfg.val.freq == 5000 and cfg.data.val["Set14"].metrics["ssim"]["test_y_channel"] is True
    assert notes == convert_basicsr(read_yaml(src), str(src))[1]

    out.write_text("# my edits\n", encoding="utf-8")
    with pytest.raises(RestorekitError, match=r"msrresnet\.yml: already exists"):
        import_basicsr_file(src, out)
    assert out.read_text(encoding="utf-8") == "# my edits\n"
    assert import_basicsr_file(src, out, overwrite=True) == notes
    assert load_config(out) == cfg


def test_file_conversion_reports_bad_option_files(tmp_path: Path) -> None:
    src = tmp_path / "gan.yml"
    src.write_text(EDSR_MX2.replace("model_type: SRModel", "model_type: VideoBaseModel"), encoding="utf-8")
    out = tmp_path / "out.yml"
    with pytest.raises(ConfigError, match=r"gan\.yml: model_type: 'VideoBaseModel' cannot be converted"):
        import_basicsr_file(src, out)
    assert not out.exists()

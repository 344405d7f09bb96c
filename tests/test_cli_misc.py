"""The smaller CLI commands: data make-lmdb (and training from it), config schema, import-basicsr,
and gradient accumulation through a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_config, write_config
from restorekit.cli import main


def test_make_lmdb_then_train_from_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(tmp_path, **{"train.total_iter": 4, "val.freq": None, "logger.save_checkpoint_freq": 4})
    ds = dict(cfg["data"]["train"]["dataset"])
    gt_lmdb, lq_lmdb = tmp_path / "gt.lmdb", tmp_path / "lq.lmdb"
    assert main(["data", "make-lmdb", ds["dataroot_gt"], str(gt_lmdb)]) == 0
    assert main(["data", "make-lmdb", ds["dataroot_lq"], str(lq_lmdb)]) == 0
    assert "packed 6 images" in capsys.readouterr().out
    assert (gt_lmdb / "data.mdb").is_file() and (gt_lmdb / "meta_info.txt").read_text().count("\n") == 6
    # a second run refuses to overwrite the existing store
    assert main(["data", "make-lmdb", ds["dataroot_gt"], str(gt_lmdb)]) == 2
    assert str(gt_lmdb) in capsys.readouterr().err
    cfg["data"]["train"]["dataset"].update(
        dataroot_gt=str(gt_lmdb), dataroot_lq=str(lq_lmdb), io_backend="lmdb"
    )
    cfg["data"]["train"]["num_workers"] = 1
    disk = {**tiny_config(tmp_path / "d", **{"train.total_iter": 4, "val.freq": None}), "name": "disk"}
    disk["data"]["train"]["dataset"].update(dataroot_gt=ds["dataroot_gt"], dataroot_lq=ds["dataroot_lq"])
    assert main(["train", "-c", str(write_config(tmp_path / "lmdb.yml", cfg))]) == 0
    assert main(["train", "-c", str(write_config(tmp_path / "disk.yml", disk))]) == 0
    a = load_file(str(Path(cfg["experiments_root"]) / "tiny" / "model.safetensors"))
    b = load_file(str(Path(disk["experiments_root"]) / "disk" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same pixels reach the network


def test_config_schema(capsys: pytest.CaptureFixture) -> None:
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    # a union tagged by `task`: one definition per task, each with its own keys
    mapping = schema["discriminator"]["mapping"]
    assert schema["discriminator"]["propertyName"] == "task"
    assert {"restoration", "adversarial"} <= set(mapping)
    assert len(schema["oneOf"]) == len(mapping)
    restoration = schema["$defs"][mapping["restoration"].rsplit("/", 1)[-1]]
    adversarial = schema["$defs"][mapping["adversarial"].rsplit("/", 1)[-1]]
    assert {"name", "scale", "network_g", "train", "data"} <= set(restoration["properties"])
    assert "name" in restoration["required"] and "network_g" in restoration["required"]
    assert "network_d" not in restoration["properties"] and "network_d" in adversarial["properties"]


BASICSR_EDSR = """
name: EDSR_Mx2_f64b16_DIV2K_500k_B16G1_001
model_type: SRModel
scale: 2
num_gpu: 1
manual_seed: 10
datasets:
  train:
    name: DIV2K
    type: PairedImageDataset
    dataroot_gt: datasets/DF2K/DIV2K_train_HR_sub
    dataroot_lq: datasets/DF2K/DIV2K_train_LR_bicubic_X2_sub
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
train:
  ema_decay: 0.999
  optim_g:
    type: Adam
    lr: !!float 1e-4
    weight_decay: 0
    betas: [0.9, 0.99]
  scheduler:
    type: MultiStepLR
    milestones: [250000]
    gamma: 0.5
  total_iter: 300000
  warmup_iter: -1
  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean
logger:
  print_freq: 100
  save_checkpoint_freq: !!float 5e3
  use_tb_logger: true
"""


def test_import_basicsr_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "train_EDSR_Mx2.yml"
    src.write_text(BASICSR_EDSR)
    out = tmp_path / "edsr.yml"
    assert main(["config", "import-basicsr", str(src), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note:" in printed and "dataset_enlarge_ratio" in printed
    assert main(["train", "-c", str(out), "--dry-run"]) == 0
    resolved = capsys.readouterr().out
    assert "lr: 0.0001" in resolved and "total_iter: 300000" in resolved
    assert main(["config", "import-basicsr", str(src), "-o", str(out)]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err


def test_gradient_accumulation_equals_the_larger_batch(tmp_path: Path) -> None:
    common = {"train.total_iter": 4, "val.freq": None, "logger.save_checkpoint_freq": 4}
    accum = tiny_config(tmp_path, **common, **{"train.accum_iter": 2})
    big = tiny_config(tmp_path, **common, **{"data.train.batch_size": 4})
    assert main(["train", "-c", str(write_config(tmp_path / "a.yml", {**accum, "name": "accum"}))]) == 0
    assert main(["train", "-c", str(write_config(tmp_path / "b.yml", {**big, "name": "big"}))]) == 0
    root = Path(accum["experiments_root"])
    a = load_file(str(root / "accum" / "checkpoints" / "iter_4" / "net_g.safetensors"))
    b = load_file(str(root / "big" / "checkpoints" / "iter_4" / "net_g.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)


def test_tensorboard_scalars_and_sample_images(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(tmp_path, **{"logger.tensorboard": True, "train.total_iter": 4, "val.freq": 2})
    assert main(["train", "-c", str(write_config(tmp_path / "tb.yml", cfg))]) == 0
    events = EventAccumulator(str(Path(cfg["experiments_root"]) / "tiny" / "tb"))
    events.Reload()
    assert events.Tags()["images"] == ["val/tinyval/output_gt"]
    assert {"train/l_pixel", "train/lr", "val/tinyval/psnr", "val/tinyval/ssim"} <= set(
        events.Tags()["scalars"]
    )
    assert [e.step for e in events.Scalars("val/tinyval/psnr")] == [2, 4]

"""``restorekit new``: complete, commented configs written from a few facts about the data.

lightweight-gan users start with one line (``lightweight_gan --data ./flowers --image-size 256``);
``restorekit new lightweight-gan --data ./flowers --image-size 256`` gives them that start and a
file in which every option is a visible key with its default, so nothing depends on repeating
flags at resume time. Each template is validated against the schema before it is written.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from restorekit.errors import ConfigError

LIGHTWEIGHT_GAN = """\
# Unconditional generation of images like those in {data} (lightweight-gan's defaults).
# Written by `restorekit new lightweight-gan`; every key is an option, change what you need.
#   restorekit train -c {output}                  # --resume auto continues, --nproc N uses N GPUs
#   restorekit generate --weights experiments/{name} -n 64 --grid -o grid.png
name: {name}
task: generation
seed: 0

network_g:
  type: LightweightGANGenerator
  image_size: {size}          # a power of 2
  latent_dim: 256
  fmap_max: 512
  fmap_inverse_coef: 12
  transparent: false          # RGBA images (and mode: rgba below)
  greyscale: false            # gray images (and mode: gray below)
  attn_res_layers: [32]
  freq_chan_attn: false       # FcaNet gates instead of global context in the skip-layer excitation
  antialias: false            # lightweight-gan's --antialias (blur before strided convs)
  attn_heads: 8               # heads x width of every attention block: lightweight-gan's 8 x 64;
  attn_dim_head: 64           # smaller (e.g. 2 x 16) is far cheaper on a CPU, but not its layout
network_d:
  type: LightweightGANDiscriminator
  image_size: {size}
  fmap_max: 512
  fmap_inverse_coef: 12
  transparent: false
  greyscale: false
  disc_output_size: 1         # 1 or 5
  attn_res_layers: [32]
  antialias: false
  attn_heads: 8               # also sizes the two attention blocks of the 32x32 side discriminator
  attn_dim_head: 64

data:
  train:
    dataset:
      type: ImageFolderDataset
      dataroot: {data}
      mode: rgb               # rgb | gray | rgba
      dataset_aug_prob: 0.0   # random-resized crops instead of the centre crop, with this probability
      cache_images: false     # decode and resize once (small data sets)
    batch_size: 10
    num_workers: 4
  val:
    fid:
      metrics:
        # pytorch-fid's Inception from the cache folder (pt_inception-2015-12-05-6726825d.pth);
        # `weights: random` gives a calibrated random Inception when the file is not available
        fid: {{num_images: 12800, optional: true}}

train:
  total_iter: 150000
  accum_iter: 4               # lightweight-gan's --gradient-accumulate-every
  amp: "off"                  # bf16 | fp16 on a GPU
  optim_g: {{type: Adam, lr: 2.0e-4, betas: [0.5, 0.9]}}
  optim_d: {{type: Adam, lr: 2.0e-4, betas: [0.5, 0.9]}}
  augment: {{types: [cutout, translation], prob: auto, ada_target: null, ada_interval: 4}}
  gp_every: 4
  gp_weight: 10.0
  dual_contrast_loss: false   # needs disc_output_size 1
  ema: {{decay: 0.995, every: 10, start: 20000, reset_every: 1000, reset_until: 25000}}

samples: {{num: 64, seed: 0}}
val: {{freq: 1000}}
logger: {{print_freq: 50, save_checkpoint_freq: 1000}}
"""

SR = """\
# Super-resolution x{scale} (EDSR) on the images in {data}: the LQ is made on the fly with
# MATLAB-bicubic downscaling. Written by `restorekit new sr`; change what you need.
#   restorekit train -c {output}
#   restorekit infer --weights experiments/{name}/model.safetensors -i IN -o OUT
name: {name}
task: restoration
scale: {scale}
seed: 0

network_g: {{type: EDSR, num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_block: 16, res_scale: 1,
            img_range: 255., rgb_mean: [0.4488, 0.4371, 0.4040]}}

data:
  train:
    dataset: {{type: BicubicDataset, dataroot_gt: {data}, gt_size: {gt_size}, use_hflip: true, use_rot: true}}
    batch_size: 16
    num_workers: 4
  # val:
  #   set5:
  #     dataset: {{type: PairedImageDataset, dataroot_gt: ..., dataroot_lq: ...}}
  #     metrics:
  #       psnr: {{crop_border: {scale}, test_y_channel: true}}
  #       ssim: {{crop_border: {scale}, test_y_channel: true}}

train:
  total_iter: 300000
  optim_g: {{type: Adam, lr: 1.0e-4, betas: [0.9, 0.99]}}
  scheduler: {{type: MultiStepRestartLR, milestones: [200000], gamma: 0.5}}
  losses:
    pixel: {{type: L1Loss, loss_weight: 1.0}}
  ema_decay: 0.999

val: {{freq: 5000, baseline: bicubic}}
logger: {{print_freq: 100, save_checkpoint_freq: 5000}}
"""

TEMPLATES = {
    "lightweight-gan": "unconditional generation of a folder of images (--data, --image-size)",
    "sr": "super-resolution with on-the-fly bicubic LQ from a folder of images (--data, --scale)",
}


def render_template(
    kind: str, data: str, output: str, name: str | None = None, image_size: int = 256, scale: int = 2
) -> str:
    """The config text of template ``kind``; validated against the schema before it is returned."""
    from restorekit.config import validate_config

    if kind not in TEMPLATES:
        raise ConfigError(f"new: unknown template {kind!r}; known: {', '.join(TEMPLATES)}")
    stem = name or re.sub(r"[^A-Za-z0-9._-]+", "_", Path(data).resolve().name or "run").strip("._-") or "run"
    if kind == "lightweight-gan":
        if image_size < 16 or image_size & (image_size - 1):
            raise ConfigError(f"--image-size: expected a power of 2 of at least 16, got {image_size}")
        text = LIGHTWEIGHT_GAN.format(data=data, output=output, name=stem, size=image_size)
    else:
        if scale < 1:
            raise ConfigError(f"--scale: expected a positive integer, got {scale}")
        text = SR.format(data=data, output=output, name=stem, scale=scale, gt_size=48 * scale)
    validate_config(yaml.safe_load(text), source=f"template {kind}")
    return text

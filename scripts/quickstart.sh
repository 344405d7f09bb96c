#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, build the sample data set from the images that
# ship inside scikit-image's wheel (nothing is downloaded), train the quickstart EDSR x2 on the CPU
# (a few minutes), then print its PSNR/SSIM next to bicubic upscaling on the held-out images.
# Running it again continues (or, when finished, re-validates) the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-dev.sh
. .venv/bin/activate
restorekit data make-sample --root datasets/sample
resume=()
[ -d experiments/quickstart_sr_x2/checkpoints ] && resume=(--resume auto)
restorekit train -c configs/quickstart_sr_x2.yml "${resume[@]}" "$@"

"""Validation sharded over two processes (torchrun, gloo on CPU) gives exactly the one-process numbers.

Each rank evaluates images ``rank, rank + 2, ...``; the per-image values are gathered, put back
in image order and averaged with ``math.fsum``, so the means are bit-identical to a single
process — compared with ``==`` below, on an odd number of images so the shards differ in size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from conftest import make_pairs, tiny_config, write_config
from restorekit.archs.export import export_network
from restorekit.cli import main
from restorekit.registry import ARCHS

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_two_process_validation_equals_one_process(tmp_path: Path, capsys, one_thread) -> None:  # type: ignore[no-untyped-def]
    # one torch thread here as in the ranks: a reduction split over 2 threads can differ in the
    # last bit (SSIM 0.6709556699917156 vs …155), which is not what this test is about
    cfg = tiny_config(tmp_path)
    gt_dir, lq_dir = make_pairs(tmp_path / "odd", 5, 32, 2, seed=7)
    cfg["data"]["val"] = {
        "odd": {
            "dataset": {"type": "PairedImageDataset", "dataroot_gt": str(gt_dir), "dataroot_lq": str(lq_dir)},
            "metrics": {"psnr": {"crop_border": 2, "test_y_channel": True}, "ssim": {"crop_border": 2}},
        },
        "odd_y": {  # a second set, so the gathering order across sets is exercised too
            "dataset": {"type": "PairedImageDataset", "dataroot_gt": str(gt_dir), "dataroot_lq": str(lq_dir)},
            "metrics": {"ssim": {"test_y_channel": True}},
        },
    }
    cfg_path = write_config(tmp_path / "c.yml", cfg)
    torch.manual_seed(0)
    weights = tmp_path / "w.safetensors"
    export_network(ARCHS.build(cfg["network_g"], upscale=2, scale=2), weights)
    args = ["validate", "-c", str(cfg_path), "--weights", str(weights), "--baseline", "bicubic", "--json"]

    capsys.readouterr()
    assert main(args) == 0
    single = json.loads(capsys.readouterr().out)

    env = {
        **os.environ,
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*cmd, "-m", "restorekit", *args], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout  # only rank 0 prints
    double = json.loads(lines[0])
    assert list(double) == ["odd", "odd/bicubic", "odd_y", "odd_y/bicubic"]
    assert double == single  # exact, not approximately

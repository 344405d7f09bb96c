"""A SwinIR toy trained end to end through the CLI: bit-exact resume after a SIGKILL, and DDP
(``--nproc 2``) equal to one process with the same global batch.

The toy is the denoising recipe shrunk further (embed 8, one RSTB of two blocks — so the shifted
window and its ``attn_mask`` are exercised — heads 2, window 4, scale 1, ``NoisyImageDataset``
at σ 25): the noise is drawn per sample from the sampler key's generator, so a resumed run and a
sharded run must see the very same noisy patches as the reference run, not just the same crops.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from conftest import assert_kill_resume_bitwise, run_restorekit, tiny_config, write_config

pytestmark = pytest.mark.slow  # each test starts several CLI processes that train

SWINIR_TOY: dict[str, Any] = {
    "type": "SwinIR",
    "upscale": 1,
    "in_chans": 3,
    "img_size": 16,
    "window_size": 4,
    "img_range": 1.0,
    "depths": [2],
    "embed_dim": 8,
    "num_heads": [2],
    "mlp_ratio": 2.0,
    "upsampler": "",
    "resi_connection": "1conv",
}


def swinir_config(root: Path, **changes: Any) -> dict[str, Any]:
    """``tiny_config``'s data and cadence with the SwinIR toy denoising at scale 1."""
    train_gt, val_gt = str(root / "train" / "GT"), str(root / "val" / "GT")  # made by tiny_config
    noisy = {"type": "NoisyImageDataset", "sigma": 25}
    crops = {"gt_size": 16, "use_hflip": True, "use_rot": True}
    base = {
        "scale": 1,
        "network_g": dict(SWINIR_TOY),  # a copy: "network_g.KEY" changes edit it in place
        "data.train.dataset": {**noisy, "dataroot_gt": train_gt, **crops},
        "data.val.tinyval": {
            "dataset": {**noisy, "dataroot_gt": val_gt},
            "metrics": {"psnr": {"crop_border": 0}, "ssim": {"crop_border": 0}},
        },
        "train.total_iter": 8,
        "train.scheduler.milestones": [4],
        "logger.save_checkpoint_freq": 4,
        "logger.print_freq": 4,
        "val.freq": 4,
    }
    return tiny_config(root, **{**base, **changes})


def weights(root: Path, run: str, it: int, name: str = "net_g") -> dict[str, torch.Tensor]:
    return load_file(str(root / run / "checkpoints" / f"iter_{it}" / f"{name}.safetensors"))


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def train_losses(root: Path, run: str) -> list[float]:
    rows = [json.loads(x) for x in (root / run / "stats.jsonl").read_text().splitlines()]
    return [r["l_pixel"] for r in rows if r["kind"] == "train"]


def test_swinir_toy_killed_and_resumed_is_bitwise_the_uninterrupted_run(tmp_path: Path) -> None:
    # One loader worker: the noise is drawn in the worker process, from the sample's key. The
    # default stochastic depth (drop_path_rate 0.1) stays on: its per-sample masks come from the
    # process's torch generator, which the checkpoint must restore too.
    raw = swinir_config(tmp_path, **{"data.train.num_workers": 1})
    assert_kill_resume_bitwise(raw, tmp_path, 4, 8, ("net_g", "net_g_ema"), env={})
    root = Path(raw["experiments_root"])
    # the comparison is between trained networks, not two copies of the initialisation
    assert max_diff(weights(root, "straight", 4), weights(root, "straight", 8)) > 1e-4
    assert "attn_mask" in "".join(weights(root, "straight", 8))  # the shifted block took part
    assert train_losses(root, "killed") == train_losses(root, "straight")


def test_swinir_toy_two_processes_equal_one_process_with_double_batch(tmp_path: Path) -> None:
    # Stochastic depth off: SwinIR's default drop_path_rate (0.1, as upstream) drops residual
    # branches per sample with masks drawn from each process's own torch generator, so two ranks
    # of batch 2 draw other masks than one process of batch 4 (the weights then differ by ~1e-3).
    # Everything else — data, noise, gradients, Adam, EMA — must agree to float rounding.
    no_drop = {"network_g.drop_path_rate": 0.0}
    two = write_config(tmp_path / "two.yml", {**swinir_config(tmp_path, **no_drop), "name": "two"})
    one_cfg = swinir_config(tmp_path, **no_drop, **{"data.train.batch_size": 4})  # 2 per rank under --nproc 2
    one = write_config(tmp_path / "one.yml", {**one_cfg, "name": "one"})
    r2 = run_restorekit("train", "-c", str(two), "--nproc", "2", cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    r1 = run_restorekit("train", "-c", str(one), cwd=tmp_path)
    assert r1.returncode == 0, r1.stderr[-3000:]
    root = Path(one_cfg["experiments_root"])
    state = torch.load(root / "two" / "checkpoints" / "iter_8" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2 and state["samples"] == 8 * 4
    for name in ("net_g", "net_g_ema"):
        diff = max_diff(weights(root, "two", 8, name), weights(root, "one", 8, name))
        assert diff < 1e-6, f"{name}: {diff}"  # test_ddp.py's tolerance
    assert max_diff(weights(root, "one", 4), weights(root, "one", 8)) > 1e-4
    loss2, loss1 = train_losses(root, "two"), train_losses(root, "one")
    assert len(loss1) == len(loss2) == 2 and all(abs(a - b) < 1e-6 for a, b in zip(loss1, loss2))

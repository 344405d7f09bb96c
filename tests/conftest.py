"""Shared fixtures: tiny generated paired data sets and configs for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A uint8 RGB image with structure at several scales (learnable, unlike white noise)."""
    base = rng.random((h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    img += 0.15 * rng.standard_normal((h, w, 3)).astype(np.float32)
    return np.clip(img * 255, 0, 255).round().astype(np.uint8)


def make_pairs(root: Path, n: int, size: int, scale: int, seed: int = 0) -> tuple[Path, Path]:
    """``n`` GT images of ``size``² and their area-downscaled LQ images (PNG, BGR on disk)."""
    rng = np.random.default_rng(seed)
    gt_dir, lq_dir = root / "GT", root / f"LQ_x{scale}"
    gt_dir.mkdir(parents=True, exist_ok=True)
    lq_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        gt = smooth_image(rng, size, size)
        lq = cv2.resize(gt, (size // scale, size // scale), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(gt_dir / f"img{i:03d}.png"), gt)
        cv2.imwrite(str(lq_dir / f"img{i:03d}.png"), lq)
    return gt_dir, lq_dir


def tiny_config(root: Path, **changes: Any) -> dict[str, Any]:
    """A config for a 2-second CPU run on data made by ``make_pairs``."""
    train_gt, train_lq = make_pairs(root / "train", 6, 48, 2, seed=1)
    val_gt, val_lq = make_pairs(root / "val", 2, 32, 2, seed=2)
    cfg: dict[str, Any] = {
        "name": "tiny",
        "scale": 2,
        "seed": 3,
        "device": "cpu",
        "experiments_root": str(root / "experiments"),
        "network_g": {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1},
        "data": {
            "train": {
                "dataset": {
                    "type": "PairedImageDataset",
                    "dataroot_gt": str(train_gt),
                    "dataroot_lq": str(train_lq),
                    "gt_size": 16,
                    "use_hflip": True,
                    "use_rot": True,
                },
                "batch_size": 2,
                "num_workers": 0,
            },
            "val": {
                "tinyval": {
                    "dataset": {
                        "type": "PairedImageDataset",
                        "dataroot_gt": str(val_gt),
                        "dataroot_lq": str(val_lq),
                    },
                    "metrics": {"psnr": {"crop_border": 2}, "ssim": {"crop_border": 2}},
                }
            },
        },
        "train": {
            "total_iter": 20,
            "optim_g": {"type": "Adam", "lr": 1e-3},
            "scheduler": {"type": "MultiStepRestartLR", "milestones": [10], "gamma": 0.5},
            "losses": {"pixel": {"type": "L1Loss"}},
            "ema_decay": 0.9,
        },
        "val": {"freq": 10},
        "logger": {"print_freq": 5, "save_checkpoint_freq": 10, "progress_bar": False, "tensorboard": False},
    }
    for key, value in changes.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return cfg



def tiny_scale1_config(root: Path) -> dict[str, Any]:
    """``tiny_config`` at scale 1 with a small RIDNet: the base of the denoising / JPEG tests."""
    cfg = tiny_config(root)
    cfg["scale"] = 1
    cfg["network_g"] = {
        "type": "RIDNet", "in_channels": 3, "mid_channels": 16, "out_channels": 3, "num_block": 1,
    }  # fmt: skip
    return cfg

def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The suite's own cache folder: tests never read or write the user's (FID features of
    real images are cached there across runs). A test that needs another sets its own."""
    folder = tmp_path_factory.mktemp("restorekit-cache")
    old = os.environ.get("RESTOREKIT_CACHE")
    os.environ["RESTOREKIT_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("RESTOREKIT_CACHE", None)
    else:
        os.environ["RESTOREKIT_CACHE"] = old


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread for the test: tiny networks run faster without thread hand-offs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_run(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    cfg = tiny_config(tmp_path)
    return write_config(tmp_path / "tiny.yml", cfg), cfg


def shipped_archs() -> list[str]:
    """Registered architectures that restorekit ships (tests may register their own, e.g. contract_tasks)."""
    from restorekit.registry import ARCHS

    return [name for name in ARCHS.names() if ARCHS.get(name).__module__.startswith("restorekit.")]


def run_restorekit(
    *args: str, cwd: Path, env: dict[str, str] | None = None, nproc: int = 0, timeout: int = 600
) -> Any:
    """``python -m restorekit ARGS`` in a fresh process (under torchrun with ``nproc``), this
    checkout's sources and the tests folder (for plugins) first on the path, one OpenMP thread."""
    here = Path(__file__).resolve().parent
    path = os.pathsep.join([str(here.parent / "src"), str(here), os.environ.get("PYTHONPATH", "")])
    full_env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **(env or {})}
    head = [sys.executable]
    if nproc:
        head += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    cmd = [*head, "-m", "restorekit", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd)


def assert_kill_resume_bitwise(
    raw: dict[str, Any],
    tmp_path: Path,
    kill_at: int,
    final: int,
    networks: tuple[str, ...],
    env: dict[str, str],
) -> None:
    """Train ``raw`` straight; train it again, SIGKILL right after the checkpoint of ``kill_at``,
    ``--resume auto`` to the end; every network of the ``final`` checkpoint must be bitwise equal."""
    import signal

    import torch
    from safetensors.torch import load_file

    for name in ("straight", "killed"):
        (tmp_path / f"{name}.yml").write_text(yaml.safe_dump({**raw, "name": name}))
    assert run_restorekit("train", "-c", "straight.yml", cwd=tmp_path, env=env).returncode == 0
    kill = {**env, "RESTOREKIT_TEST_KILL_AFTER_SAVE": str(kill_at)}
    first = run_restorekit("train", "-c", "killed.yml", cwd=tmp_path, env=kill)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    second = run_restorekit("train", "-c", "killed.yml", "--resume", "auto", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    root = Path(raw["experiments_root"])
    for name in networks:
        a = load_file(str(root / "straight" / "checkpoints" / f"iter_{final}" / f"{name}.safetensors"))
        b = load_file(str(root / "killed" / "checkpoints" / f"iter_{final}" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


#: a GFPGANv1Clean in v1.4's layout (different_w, sft_half, latent input), shrunk to 64 px
TINY_GFPGAN: dict[str, Any] = dict(
    out_size=64, num_style_feat=32, channel_multiplier=1, num_mlp=2, narrow=0.125,
    input_is_latent=True, different_w=True, sft_half=True,
)  # fmt: skip


def tiny_gfpgan_weights(folder: Path, name: str = "toy.pth") -> Path:
    """A seeded random ``TINY_GFPGAN`` saved as a v1.3/v1.4-style ``{'params_ema': ...}`` file."""
    import torch

    from restorekit.archs.gfpgan_clean import GFPGANv1Clean

    torch.manual_seed(0)
    path = folder / name
    torch.save({"params_ema": GFPGANv1Clean(**TINY_GFPGAN).state_dict()}, path)
    return path

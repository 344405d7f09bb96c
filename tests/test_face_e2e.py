"""The face task (GFPGAN) trained end to end through the CLI on 32 px toy faces: bit-exact resume
after a SIGKILL (``--nproc 2`` equality is not reached yet; see the end of the file).

The toy is ``test_face_task``'s tiny GFPGANv1Clean against a global StyleGAN2 D and the three
facial-component Ds, with the random-weight ArcFace and a random VGG19 file, fed by
``FFHQDegradationDataset`` (small kernels, component boxes from a landmarks file) — so every
random choice of the degradation, the crops, the R1 step (``net_d_reg_every: 2``) and, in the
resume test, StyleGAN2's per-forward noise must survive the kill or the sharding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import assert_kill_resume_bitwise, smooth_image
from restorekit.data.face_components import save_components
from test_face_task import ARC, D, G, vgg_file

pytestmark = pytest.mark.slow  # each test starts several CLI processes that train

NETS = ("net_g", "net_g_ema", "net_d", "net_d_left_eye", "net_d_right_eye", "net_d_mouth")
#: centre x, centre y, half side at 32 px (GFPGAN's layout, ``face_components``)
BOXES = {"left_eye": [10.0, 12.0, 3.0], "right_eye": [22.0, 12.0, 3.0], "mouth": [16.0, 23.0, 4.0]}


def make_faces(root: Path) -> dict[str, Path]:
    """6 training faces, their landmarks file, and a 2-image val pair (LQ = blurred GT)."""
    rng = np.random.default_rng(5)
    train, val_gt, val_lq = root / "faces", root / "val" / "GT", root / "val" / "LQ"
    for d in (train, val_gt, val_lq):
        d.mkdir(parents=True, exist_ok=True)
    table = {}
    for i in range(6):
        cv2.imwrite(str(train / f"{i:05d}.png"), smooth_image(rng, 32, 32))
        # a little jitter per face so the boxes are not one constant; keyed by GFPGAN's 8 digits
        table[f"{i:08d}"] = {p: [v[0] + i % 2, v[1] - i % 3, v[2]] for p, v in BOXES.items()}
    marks = save_components(root / "landmarks.pth", table)
    for i in range(2):
        gt = smooth_image(rng, 32, 32)
        cv2.imwrite(str(val_gt / f"v{i}.png"), gt)
        cv2.imwrite(str(val_lq / f"v{i}.png"), cv2.GaussianBlur(gt, (5, 5), 1.2))
    return {"train": train, "marks": marks, "val_gt": val_gt, "val_lq": val_lq}


def face_config(root: Path, **changes: Any) -> dict[str, Any]:
    """A 4-iteration face run: checkpoints, logs and validation every 2 iterations."""
    data = make_faces(root)
    ffhq = {
        "type": "FFHQDegradationDataset", "dataroot_gt": str(data["train"]), "out_size": 32,
        "use_hflip": True, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
        "blur_kernel_size": 5, "kernel_list": ["iso", "aniso"], "kernel_prob": [0.5, 0.5],
        "blur_sigma": [0.2, 2.0], "downsample_range": [1.0, 2.0], "noise_range": [0.0, 10.0],
        "jpeg_range": [60.0, 100.0], "crop_components": True, "component_path": str(data["marks"]),
    }  # fmt: skip
    cfg: dict[str, Any] = {
        "name": "face", "task": "face", "seed": 7, "device": "cpu",
        "experiments_root": str(root / "exp"),
        "network_g": dict(G), "network_d": dict(D),
        "network_d_left_eye": {"type": "FacialComponentDiscriminator"},
        "network_d_right_eye": {"type": "FacialComponentDiscriminator"},
        "network_d_mouth": {"type": "FacialComponentDiscriminator"},
        "network_identity": dict(ARC), "identity_random_weights": True,
        "data": {
            "train": {"dataset": ffhq, "batch_size": 2, "num_workers": 0},
            "val": {"faceval": {
                "dataset": {"type": "PairedImageDataset", "dataroot_gt": str(data["val_gt"]),
                            "dataroot_lq": str(data["val_lq"])},
                "metrics": {"psnr": {"crop_border": 0}, "ssim": {"crop_border": 0}},
            }},
        },
        "train": {
            "total_iter": 4,
            "losses": {
                "pixel": {"type": "L1Loss", "loss_weight": 0.1},
                "perceptual": {"type": "PerceptualLoss", "layer_weights": {"conv1_2": 0.1, "conv2_2": 0.1},
                               "vgg_type": "vgg19", "style_weight": 50, "range_norm": True,
                               "weights_path": str(vgg_file(root))},
                "gan": {"type": "GANLoss", "gan_type": "wgan_softplus", "loss_weight": 0.1},
                "gan_component": {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 1.0},
                "l1": {"type": "L1Loss", "loss_weight": 1.0},
            },
            "remove_pyramid_loss": 3,  # crossed mid-run: the weight switch must resume too
            "net_d_reg_every": 2,  # R1 at iterations 2 and 4
        },
        "val": {"freq": 2},
        "logger": {"print_freq": 1, "save_checkpoint_freq": 2, "progress_bar": False, "tensorboard": False},
    }  # fmt: skip
    for key, value in changes.items():
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def weights(root: Path, run: str, it: int, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(root / run / "checkpoints" / f"iter_{it}" / f"{name}.safetensors"))


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def rows(root: Path, run: str, kind: str) -> list[dict[str, Any]]:
    lines = (root / run / "stats.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_face_killed_and_resumed_is_bitwise_the_uninterrupted_run(tmp_path: Path) -> None:
    # One loader worker: the degradation is drawn in the worker from the sample's key. StyleGAN2's
    # noise stays random (GFPGAN's default): it comes from the process's torch generator, which the
    # checkpoint must restore, as the Ds' and the sampler's state.
    raw = face_config(tmp_path, **{"data.train.num_workers": 1})
    assert raw["train"].get("randomize_noise", True)
    assert_kill_resume_bitwise(raw, tmp_path, 2, 4, NETS, env={})
    root = Path(raw["experiments_root"])
    for name in ("net_g", "net_d", "net_d_mouth"):  # trained networks are compared, not two inits
        assert max_diff(weights(root, "straight", 2, name), weights(root, "straight", 4, name)) > 1e-6, name
    train_s, train_k = rows(root, "straight", "train"), rows(root, "killed", "train")
    assert [r["iter"] for r in train_s] == [1, 2, 3, 4]
    assert any("l_d_r1" in r for r in train_s)  # R1 took part
    strip = ("time", "it_per_s")  # wall-clock values
    assert [{k: v for k, v in r.items() if k not in strip} for r in train_k] == [
        {k: v for k, v in r.items() if k not in strip} for r in train_s
    ]


# --nproc 2 against one process: tests/test_face_ddp.py (equal to 1.2e-7 after the first R1
# iteration with SGD; GFPGAN's Adam and the GAN's feedback amplify rounding beyond that).

"""Run a restoration network over image files, keeping each file's format.

Gray in → gray out, 16-bit in → 16-bit out, RGBA → the RGB part through the network and the
alpha channel upscaled with MATLAB bicubic (a network trained on RGB has no business inventing
alpha). Whole images for now; tiling for images of any size comes with the inference issue.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from restorekit.archs.export import load_network
from restorekit.data.degradations import imresize
from restorekit.data.io import IMG_EXTENSIONS, read_image_full, scan_images, write_image
from restorekit.errors import RestorekitError

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def pick_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise RestorekitError("--device cuda: no CUDA device is available")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.inference_mode()
def restore_array(net: nn.Module, img: np.ndarray, device: torch.device) -> np.ndarray:
    """HWC float32 [0,1] image (1, 3 or 4 channels) → restored HWC float32 [0,1]."""
    channels = img.shape[2]
    rgb = img[..., :3] if channels >= 3 else np.repeat(img, 3, axis=2)
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
    out = net(x).float().clamp_(0, 1)[0].permute(1, 2, 0).cpu().numpy()
    if channels == 1:
        return (out @ _LUMA)[..., None]
    if channels == 4:
        alpha = imresize(img[..., 3:4], out.shape[0] / img.shape[0])
        alpha = _fit(np.clip(alpha, 0, 1), out.shape[:2])
        return np.concatenate([out, alpha], axis=2)
    return out


def _fit(a: np.ndarray, hw: tuple[int, ...]) -> np.ndarray:
    """Crop or edge-pad ``a`` to exactly ``hw`` (ceil rounding in imresize can differ by one)."""
    a = a[: hw[0], : hw[1]]
    pad = ((0, hw[0] - a.shape[0]), (0, hw[1] - a.shape[1]), (0, 0))
    return np.pad(a, pad, mode="edge") if any(p[1] for p in pad) else a


def upscale_paths(weights: str, src: str, dst: str, device: str = "auto") -> list[Path]:
    """Restore one file (``dst`` a file or folder) or every image of a folder (``dst`` a folder)."""
    dev = pick_device(device)
    net = load_network(weights).to(dev)
    src_p, dst_p = Path(src), Path(dst)
    if src_p.is_dir():
        pairs = [(p, dst_p / (p.stem + ".png")) for p in scan_images(src_p)]
    elif src_p.is_file():
        out = dst_p / (src_p.stem + ".png") if dst_p.is_dir() or not dst_p.suffix else dst_p
        pairs = [(src_p, out)]
    else:
        raise RestorekitError(f"{src}: input does not exist (expected an image file or a folder)")
    for _, out in pairs:
        if out.suffix.lower() not in IMG_EXTENSIONS:
            raise RestorekitError(f"{out}: output must end in one of {', '.join(sorted(IMG_EXTENSIONS))}")
    written = []
    for inp, out in pairs:
        info = read_image_full(inp)
        result = restore_array(net, info.img, dev)
        write_image(out, result, bit_depth=info.bit_depth)
        written.append(out)
    return written

"""``restorekit generate``: images, grids and latent walks from a trained generator.

Weights come from an exported ``.safetensors`` (architecture in its metadata), a run or
checkpoint folder (the EMA generator unless ``raw``), or an official lightweight-gan
``model_N.pt`` whose ``.config.json`` beside it gives the architecture (its EMA ``GE``, or ``G``
with ``raw``). Only a network whose ``ArchInfo`` says ``generator`` is accepted: an SR model is
refused in one line naming ``restorekit infer``.

Latents are a pure function of ``(seed, index)``, so ``-n 8 --seed 3`` gives the first 8 images
of ``-n 64 --seed 3``; the interpolation walks a slerp through ``num`` such latents and back
(lightweight-gan's walk), written as a GIF with Pillow and, with ``frames``, as PNG frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

import restorekit.archs  # noqa: F401  (registers the architectures)
from restorekit.archs.info import find_arch_info
from restorekit.archs.lightweight_gan import read_lightweight_gan_checkpoint, read_lightweight_gan_config
from restorekit.ckptdir import CHECKPOINTS_DIR, best_checkpoint
from restorekit.data.io import write_image
from restorekit.data.latents import grid, latent_bank, walk
from restorekit.device import pick_device
from restorekit.errors import RestorekitError, WeightsError
from restorekit.inference.export import load_any
from restorekit.registry import ARCHS, record_spec
from restorekit.weights import load_into


def load_generator(weights: str | Path, raw: bool = False, best: bool = False) -> tuple[nn.Module, list[str]]:
    """(generator in eval mode, notes) from any of the accepted sources; ``best``: a run folder's
    best checkpoint (by its first validation metric, e.g. FID) instead of its newest."""
    p = Path(weights)
    if best:
        if not (p / CHECKPOINTS_DIR).is_dir():
            raise RestorekitError(f"--best: {p} is not a run folder (with {CHECKPOINTS_DIR}/)")
        p = best_checkpoint(p)
    if p.is_file() and p.suffix in (".pt", ".pth") and (p.parent / ".config.json").is_file():
        kwargs = read_lightweight_gan_config(p.parent / ".config.json")["G"]
        parts = read_lightweight_gan_checkpoint(p)
        part = "G" if raw else "GE"
        spec = {"type": "LightweightGANGenerator", **kwargs}
        net = ARCHS.build(spec, str(p))
        load_into(net, parts[part], "strict", f"{p} ({part})")
        record_spec(net, spec)
        return net.eval(), [f"{p}: lightweight-gan checkpoint, {part} with {p.parent / '.config.json'}"]
    net, notes = load_any(p, raw=raw)
    info = find_arch_info(net)
    if info is None or info.purpose != "generator":
        what = info.purpose if info is not None else "an unknown network"
        hint = {"restoration": "restorekit infer", "face": "restorekit faces"}.get(what, "another command")
        raise WeightsError(f"{p}: is a {what} network, not a generator; use {hint}")
    return net.eval(), notes


@torch.no_grad()
def render(net: nn.Module, z: Tensor, device: torch.device, seed: int = 0) -> Tensor:
    """Images in [0, 1], NCHW on the CPU, one latent at a time: G's noise for image ``i`` comes
    from ``(seed, i)``, so an image never depends on which others were generated with it."""
    images = []
    for i in range(len(z)):
        noise = torch.Generator(device).manual_seed(seed * 1_000_003 + i)
        images.append(net(z[i : i + 1].to(device), noise).float().clamp(0, 1).cpu())
    return torch.cat(images)


def to_hwc(img: Tensor) -> np.ndarray:
    return img.permute(1, 2, 0).numpy()


def write_gif(frames: Tensor, path: Path, fps: int = 20) -> None:
    from PIL import Image

    pil = []
    for f in frames:
        arr = (to_hwc(f) * 255).round().clip(0, 255).astype(np.uint8)
        pil.append(Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr[:, :, :3]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pil[0].save(tmp, format="GIF", save_all=True, append_images=pil[1:], duration=1000 // fps, loop=0)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def generate(
    weights: str,
    output: str,
    num: int = 64,
    seed: int = 0,
    as_grid: bool = False,
    raw: bool = False,
    device: str = "auto",
    interpolate: bool = False,
    steps: int = 100,
    points: int = 8,
    frames: bool = False,
    overwrite: bool = False,
    best: bool = False,
) -> list[Path]:
    """Write the images (or the grid, or the walk) and return the paths written."""
    if num < 1 or steps < 2 or points < 2:
        raise RestorekitError(
            f"generate: need -n >= 1, --steps >= 2 and --num >= 2, got {num}, {steps}, {points}"
        )
    dev = pick_device(device)
    net, _ = load_generator(weights, raw, best)
    net.to(dev)
    info = find_arch_info(net)
    assert info is not None and info.latent_dim is not None
    out = Path(output)
    written: list[Path] = []
    if interpolate:
        if out.suffix.lower() != ".gif":
            raise RestorekitError(f"-o {out}: an interpolation is written as a .gif")
        _refuse(out, overwrite)
        images = render(net, walk(latent_bank(points, info.latent_dim, seed), steps), dev, seed=seed)
        write_gif(images, out)
        written.append(out)
        if frames:
            folder = out.with_suffix("")
            written += [write_image(folder / f"{i:04d}.png", to_hwc(f)) for i, f in enumerate(images)]
        return written
    images = render(net, latent_bank(num, info.latent_dim, seed), dev, seed=seed)
    if as_grid:
        target = out if out.suffix.lower() in (".png", ".jpg", ".jpeg") else out / f"grid_seed{seed}.png"
        _refuse(target, overwrite)
        return [write_image(target, grid(images))]
    for i, img in enumerate(images):
        target = out / f"seed{seed}_{i:05d}.png"
        _refuse(target, overwrite)
        written.append(write_image(target, to_hwc(img)))
    return written


def _refuse(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise RestorekitError(f"{path}: already exists; pass --overwrite to replace it")


__all__ = ["generate", "grid", "load_generator"]

"""The Python API: ``restorekit.load_model(path)`` → a callable on numpy images or tensors.

    model = restorekit.load_model("RealESRGAN_x4plus.pth", tile=512)
    out = model(img)            # numpy HWC RGB uint8/uint16/float → the same dtype, 4× larger
    out = model(tensor)         # (C, H, W) or (N, C, H, W) float in [0, 1] → same layout/device

Numpy images follow restorekit's convention (``restorekit.data.io.read_image``): RGB channel order
(not OpenCV's BGR), HW or HWC, gray/RGB/RGBA. Integer images come back in their own type;
float images and tensors come back as float in [0, 1]. Tiling, precision and alpha handling are
those of ``restorekit infer`` (see ``Upscaler``).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor, nn

from restorekit.errors import RestorekitError
from restorekit.inference.export import load_any
from restorekit.inference.upscale import AlphaMode, Upscaler

_INT_TOPS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


class Restorer:
    """A loaded model: call it on an image; ``upscaler`` holds the network and the options."""

    def __init__(self, upscaler: Upscaler) -> None:
        self.upscaler = upscaler

    @property
    def network(self) -> nn.Module:
        return self.upscaler.network

    @property
    def device(self) -> torch.device:
        return self.upscaler.device

    @property
    def dtype(self) -> torch.dtype:
        return self.upscaler.dtype

    @property
    def scale(self) -> float | None:
        """The output/input size ratio: ``outscale`` when set, else the network's scale."""
        return self.upscaler.outscale or self.upscaler.net_scale

    def __call__(self, img: np.ndarray | Tensor) -> np.ndarray | Tensor:
        if isinstance(img, Tensor):
            return self._tensor(img)
        if isinstance(img, np.ndarray):
            return self._numpy(img)
        raise TypeError(f"expected a numpy image or a torch tensor, got {type(img).__name__}")

    def _numpy(self, img: np.ndarray) -> np.ndarray:
        if img.ndim not in (2, 3):
            raise RestorekitError(f"expected an HW or HWC image, got shape {img.shape}")
        top = _INT_TOPS.get(img.dtype)
        if top is None and img.dtype.kind != "f":
            raise RestorekitError(f"expected a uint8, uint16 or float image, got dtype {img.dtype}")
        if not top:
            from restorekit.data.io import check_unit_floats

            check_unit_floats(img, "image")
        x = img.astype(np.float32) / top if top else img.astype(np.float32, copy=False)
        out = self.upscaler.restore(x if x.ndim == 3 else x[..., None]).merged()
        out = np.clip(out, 0.0, 1.0)
        if top:
            out = np.round(out * top).astype(img.dtype)
        return out[..., 0] if img.ndim == 2 else out

    def _tensor(self, t: Tensor) -> Tensor:
        if t.dim() not in (3, 4) or not t.is_floating_point():
            raise RestorekitError(
                f"expected a float (C, H, W) or (N, C, H, W) tensor in [0, 1], got {t.dtype} {tuple(t.shape)}"
            )
        batch = t if t.dim() == 4 else t[None]
        outs = []
        for item in batch:  # each image is tiled on its own; the canvas lives on the host
            hwc = item.detach().float().cpu().permute(1, 2, 0).numpy()
            out = np.clip(self.upscaler.restore(hwc).merged(), 0.0, 1.0)
            outs.append(torch.from_numpy(out).permute(2, 0, 1))
        result = torch.stack(outs).to(device=t.device, dtype=t.dtype)
        return result if t.dim() == 4 else result[0]


def load_model(
    source: str | os.PathLike[str] | nn.Module,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    tile: int = 512,
    tile_overlap: int = 32,
    batch: int = 1,
    alpha: AlphaMode = "bicubic",
    scale: float | None = None,
    raw: bool = False,
) -> Restorer:
    """Load weights (exported ``.safetensors``, official ``.pth``, checkpoint or run folder) for inference.

    ``source`` may also be an ``nn.Module`` (moved and cast in place, as ``Module.to`` does).
    ``scale`` resizes the result to that factor of the
    input when it differs from the network's; ``raw`` picks a checkpoint's non-EMA weights.
    """
    net = source if isinstance(source, nn.Module) else load_any(source, raw=raw)[0]
    upscaler = Upscaler(
        net, device=device, precision=precision, tile=tile, tile_overlap=tile_overlap,
        batch=batch, alpha=alpha, outscale=scale,
    )  # fmt: skip
    return Restorer(upscaler)

"""Restore one image of any size, keeping what it is: gray stays gray, alpha stays alpha.

``Upscaler`` holds a network on its device and precision plus the tiling options, and maps a
float32 HWC image in [0, 1] (1, 2, 3 or 4 channels) to a ``Restored`` (colour planes and an
optional alpha plane, float32, at the requested scale). It knows nothing of files (``files.py``)
or of numpy/tensor conversions for library users (``api.py``).

What the network is comes from its ``ArchInfo`` (``restorekit.archs.info``): channels, scale,
``size_multiple`` (tiles are laid out in steps of it), fp16/channels_last safety, and
``tileable``. Restoration and face networks map images to images; a face network needs the whole
(aligned) input, so it is never tiled. Generators, discriminators and feature networks are
refused with a line naming what to use instead. A module built outside the registry has no
``ArchInfo``; it is treated as an RGB restoration network with no size constraint.

Channel rules:
* the network's input channels (``ArchInfo.in_channels``) decide how colour is fed: a gray
  image through an RGB network is replicated to three channels and the output turned back into
  gray with the BT.601 luma weights; an RGB image through a gray network runs channel by channel;
* alpha never goes through the network with the colour: it is upscaled on its own, with bicubic
  interpolation (default — a network trained on photographs has no business inventing alpha) or
  by the network as a gray image (``alpha="network"``; sharper edges for line art). A constant
  alpha (the common "RGBA but fully opaque" PNG) is simply filled in, with no work.

Final resize (``outscale`` different from the network's scale): OpenCV's INTER_AREA when
shrinking (proper antialiasing) and INTER_LANCZOS4 when enlarging. OpenCV rather than the
MATLAB-exact ``imresize`` of ``restorekit.data.degradations`` because that one builds dense
``out × in`` weight matrices, which for a 4× output of a large image run to gigabytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
from torch import nn

from restorekit.archs.info import ArchInfo, arch_info, find_arch_info
from restorekit.device import pick_device
from restorekit.errors import RestorekitError
from restorekit.inference.precision import DeviceRunner, resolve_precision
from restorekit.inference.tiling import count_tiles, tiled_forward
from restorekit.registry import spec_of

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
AlphaMode = Literal["bicubic", "network"]
ALPHA_MODES = ("bicubic", "network")


@dataclass
class Restored:
    """Colour planes ``(H, W, 1|3)`` and alpha ``(H, W, 1)`` or ``None``; float32, not clipped."""

    color: np.ndarray
    alpha: np.ndarray | None

    def merged(self) -> np.ndarray:
        """One HWC array: colour, or colour + alpha (gray + alpha stays two channels)."""
        if self.alpha is None:
            return self.color
        return np.concatenate([self.color, self.alpha], axis=2)


# The commands that run the networks ``restorekit infer`` does not.
OTHER_COMMANDS = {"face": "restorekit faces", "generator": "restorekit generate"}


def arch_name(net: nn.Module) -> str:
    """The registered architecture name of ``net`` (its class name when it has no spec)."""
    return str((spec_of(net) or {}).get("type", type(net).__name__))


def network_channels(net: nn.Module) -> int:
    """Image channels the network expects (``ArchInfo.in_channels``)."""
    return arch_info(net).in_channels


def check_purpose(net: nn.Module, info: ArchInfo, allow_face: bool = True) -> None:
    """Refuse networks that do not map an image to a restored image, naming what to use instead."""
    if info.purpose == "restoration" or (info.purpose == "face" and allow_face):
        return
    name = arch_name(net)
    if info.purpose in OTHER_COMMANDS:
        what = "face-restoration" if info.purpose == "face" else "generator"
        raise RestorekitError(
            f"{name} is a {what} network, not an image-restoration one; use `{OTHER_COMMANDS[info.purpose]}`"
        )
    raise RestorekitError(
        f"{name} is a {info.purpose} network (it scores or describes images, it does not restore them); "
        "export or infer with the generator instead"
    )


class Upscaler:
    """A network ready for inference with its tiling options; ``restore(img)`` does the work.

    Args:
        net: the restoration network (any ``nn.Module`` mapping ``(N, C, h, w)`` to
            ``(N, C', h·s, w·s)``); moved to ``device`` and cast to the chosen precision.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        precision: ``auto`` | ``fp32`` | ``fp16`` | ``bf16`` (see ``precision.py``).
        tile: tile side in input pixels (rounded down to the network's ``size_multiple``);
            0 runs whole images, as do networks whose ``ArchInfo`` says they are not tileable.
        tile_overlap: pixels shared by neighbouring tiles (see ``tiling.py`` for the blend).
        batch: tiles per forward pass (helps GPUs with small tiles).
        alpha: how an alpha channel is upscaled: ``bicubic`` or ``network``.
        outscale: final scale relative to the input, when it differs from the network's.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int = 512,
        tile_overlap: int = 32,
        batch: int = 1,
        alpha: AlphaMode = "bicubic",
        outscale: float | None = None,
    ) -> None:
        if tile < 0:
            raise RestorekitError(f"--tile must be 0 (whole image) or a positive size, got {tile}")
        if tile_overlap < 0 or (tile > 0 and tile_overlap >= tile):
            raise RestorekitError(
                f"--tile-overlap must be at least 0 and smaller than --tile {tile}, got {tile_overlap}"
            )
        if batch < 1:
            raise RestorekitError(f"--batch must be at least 1, got {batch}")
        if alpha not in ALPHA_MODES:
            raise RestorekitError(f"alpha: expected one of {', '.join(ALPHA_MODES)}, got {alpha!r}")
        if outscale is not None and not (np.isfinite(outscale) and outscale > 0):
            raise RestorekitError(f"--scale must be a positive number, got {outscale}")
        info = find_arch_info(net)
        if info is not None:
            check_purpose(net, info)
        self.info = info
        self.device = pick_device(device)
        self.dtype = resolve_precision(precision, self.device, info)
        self.in_channels = 3 if info is None else info.in_channels
        self.multiple = 1 if info is None else info.size_multiple
        self.net_scale: int | None = None if info is None else info.scale
        # channels_last only where declared safe; a foreign module keeps its layout
        channels_last = info is not None and info.supports_channels_last
        self.runner = DeviceRunner(net, self.device, self.dtype, channels_last=channels_last)
        if info is not None and not info.tileable:
            tile = 0  # e.g. a face restorer: it needs the whole (aligned) input
        self.tile, self.overlap, self.batch = tile, tile_overlap, batch
        self.alpha_mode: AlphaMode = alpha
        self.outscale = outscale

    @property
    def network(self) -> nn.Module:
        return self.runner.net

    # ------------------------------------------------------------------ planning
    def _color_passes(self, channels: int) -> int:
        return channels if self.in_channels == 1 and channels > 1 else 1

    def count_tiles(self, img: np.ndarray) -> int:
        """Tiles ``restore`` will run for ``img`` (for progress bars)."""
        h, w, c = img.shape
        has_alpha = c in (2, 4)
        passes = self._color_passes(c - 1 if has_alpha else c)
        if has_alpha and self.alpha_mode == "network" and not _is_constant(img[..., -1]):
            passes += 1
        return passes * count_tiles(h, w, self.tile, self.overlap, self.multiple)

    # ------------------------------------------------------------------ running
    def forward_planes(
        self, planes: np.ndarray | torch.Tensor, progress: Callable[[int], object] | None = None
    ) -> np.ndarray:
        """The tiled network output for an ``(H, W, in_channels)`` image (or a CHW tensor)."""
        x = planes if isinstance(planes, torch.Tensor) else torch.from_numpy(planes).permute(2, 0, 1)
        return tiled_forward(
            self.runner,
            x,
            tile=self.tile,
            overlap=self.overlap,
            multiple=self.multiple,
            batch=self.batch,
            progress=progress,
        )

    def restore(self, img: np.ndarray, progress: Callable[[int], object] | None = None) -> Restored:
        """Restore a float32 HWC image in [0, 1]: gray, gray+alpha, RGB or RGBA (1-4 channels)."""
        if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
            raise RestorekitError(f"expected an HWC image with 1-4 channels, got shape {tuple(img.shape)}")
        img = np.asarray(img, dtype=np.float32)
        has_alpha = img.shape[2] in (2, 4)
        color_in = img[..., :-1] if has_alpha else img
        color = self._color(color_in, progress)
        alpha = None
        if has_alpha:
            alpha = self._alpha(img[..., -1:], color.shape[:2], progress)
        if self.outscale is not None:
            size = (max(1, round(img.shape[0] * self.outscale)), max(1, round(img.shape[1] * self.outscale)))
            color = resize(color, size)
            alpha = None if alpha is None else resize(alpha, size)
        return Restored(color, alpha)

    def _color(self, color: np.ndarray, progress: Callable[[int], object] | None) -> np.ndarray:
        c, n = color.shape[2], self.in_channels
        x = torch.from_numpy(color).permute(2, 0, 1)
        if c == n:
            out = self.forward_planes(x, progress)
        elif c == 1 and n == 3:
            out = self.forward_planes(x.expand(3, -1, -1), progress)  # a view: tiles copy only themselves
        elif n == 1:
            outs = [self.forward_planes(x[i : i + 1], progress) for i in range(c)]
            out = np.concatenate(outs, axis=2)
        else:
            raise RestorekitError(f"the network takes {n}-channel images; cannot restore a {c}-channel image")
        if c == 1 and out.shape[2] == 3:
            out = to_gray(out)
        return out

    def _alpha(
        self, alpha: np.ndarray, hw: tuple[int, ...], progress: Callable[[int], object] | None
    ) -> np.ndarray:
        if _is_constant(alpha):
            return np.full((hw[0], hw[1], 1), float(alpha.flat[0]), dtype=np.float32)
        if self.alpha_mode == "network":  # as a gray image: one channel back
            return self._color(alpha, progress)[..., :1]
        up = cv2.resize(np.ascontiguousarray(alpha[..., 0]), (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)
        return up[..., None]


def _is_constant(plane: np.ndarray) -> bool:
    return bool(plane.size == 0 or plane.min() == plane.max())


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB → ``(H, W, 1)`` BT.601 luma, float32."""
    return np.tensordot(rgb, LUMA, axes=([2], [0])).astype(np.float32, copy=False)[..., None]


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HWC float32 to ``size`` = (height, width): INTER_AREA to shrink, INTER_LANCZOS4 to enlarge."""
    h, w = img.shape[:2]
    if (h, w) == tuple(size):
        return img
    shrink = size[0] * size[1] < h * w
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4
    out = cv2.resize(np.ascontiguousarray(img), (size[1], size[0]), interpolation=interp)
    return out if out.ndim == 3 else out[..., None]

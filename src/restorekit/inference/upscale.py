"""Restore one image of any size, keeping what it is: gray stays gray, alpha stays alpha.

``Upscaler`` holds a network on its device and precision plus the tiling options, and maps a
float32 HWC image in [0, 1] (1, 2, 3 or 4 channels; uint8/uint16 samples are converted tile by
tile) to a ``Restored`` (colour planes and an optional alpha plane, float32, at the requested
scale): whole (``restore``) or as bands of rows top to bottom (``restore_bands``, one per tile
row, what ``restorekit infer`` streams into a PNG). It knows nothing of files (``files.py``) or
of numpy/tensor conversions for library users (``api.py``).

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

from collections.abc import Callable, Iterator
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
from restorekit.inference.tiling import count_tiles, plan_axis, tiled_bands, tiled_forward
from restorekit.registry import spec_of

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_UNITS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
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

    def streams(self, img: np.ndarray) -> bool:
        """Whether ``restore_bands`` gives ``img``'s result in more than one band: tiled with more
        than one tile row, and no final resize (which needs the whole result)."""
        h, w = img.shape[:2]
        if self.tile <= 0 or len(plan_axis(h, self.tile, self.overlap, self.multiple).starts) < 2:
            return False
        if self.outscale is None:
            return True
        size = (max(1, round(h * self.outscale)), max(1, round(w * self.outscale)))
        return self.net_scale is not None and size == (h * self.net_scale, w * self.net_scale)

    # ------------------------------------------------------------------ running
    def forward_planes(
        self, planes: np.ndarray | torch.Tensor, progress: Callable[[int], object] | None = None
    ) -> np.ndarray:
        """The tiled network output for an ``(H, W, in_channels)`` image (or a CHW tensor)."""
        return tiled_forward(self.runner, _chw(planes), **self._tiling(), progress=progress)

    def _tiling(self) -> dict[str, int]:
        return {"tile": self.tile, "overlap": self.overlap, "multiple": self.multiple, "batch": self.batch}

    def _prepare(self, img: np.ndarray) -> tuple[np.ndarray, float | None]:
        """``(image, unit)``: uint8/uint16 kept as they are (``unit`` 255/65535: converted tile by
        tile, so a large input is not held as float32 too), anything else as float32."""
        if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
            raise RestorekitError(f"expected an HWC image with 1-4 channels, got shape {tuple(img.shape)}")
        unit = _UNITS.get(img.dtype)
        return (img, unit) if unit else (np.asarray(img, dtype=np.float32), None)

    def restore(self, img: np.ndarray, progress: Callable[[int], object] | None = None) -> Restored:
        """Restore a float32 HWC image in [0, 1]: gray, gray+alpha, RGB or RGBA (1-4 channels).

        uint8/uint16 samples are taken as ``img / 255`` (``/ 65535``), converted tile by tile.
        """
        color: np.ndarray | None = None
        alpha: np.ndarray | None = None
        r0 = 0
        for band in self.restore_bands(img, progress):  # gathered: the same numbers as streamed
            rows = band.color.shape[0]
            if color is None:
                out_h = img.shape[0] * (band.color.shape[1] // img.shape[1])
                if rows == out_h:  # one band is the whole result: keep it, no second copy
                    color, alpha = band.color, band.alpha
                    break
                color = np.empty((out_h, *band.color.shape[1:]), np.float32)
                alpha = None if band.alpha is None else np.empty((out_h, *band.alpha.shape[1:]), np.float32)
            color[r0 : r0 + rows] = band.color
            if alpha is not None and band.alpha is not None:
                alpha[r0 : r0 + rows] = band.alpha
            r0 += rows
        assert color is not None
        if self.outscale is not None:
            size = (max(1, round(img.shape[0] * self.outscale)), max(1, round(img.shape[1] * self.outscale)))
            color = resize(color, size)
            alpha = None if alpha is None else resize(alpha, size)
        return Restored(color, alpha)

    def restore_bands(
        self, img: np.ndarray, progress: Callable[[int], object] | None = None
    ) -> Iterator[Restored]:
        """``restore(img)`` before its final resize, as bands of rows top to bottom.

        One band per tile row (``tiled_bands``), so host memory holds the input and about one
        tile row of output, whatever the image height: what ``restorekit infer`` streams into a
        PNG. Each band is valid until the next is asked for. ``restore`` gathers these bands.
        """
        img, unit = self._prepare(img)
        has_alpha = img.shape[2] in (2, 4)
        color_bands = self._color_bands(img[..., :-1] if has_alpha else img, progress, unit)
        alpha_rows = self._alpha_rows(img[..., -1:], progress, unit) if has_alpha else None
        for r0, color in color_bands:
            alpha = None if alpha_rows is None else alpha_rows(r0, color.shape[0], color.shape[1])
            yield Restored(color, alpha)

    def _color_bands(
        self, color: np.ndarray, progress: Callable[[int], object] | None, unit: float | None
    ) -> Iterator[tuple[int, np.ndarray]]:
        c, n = color.shape[2], self.in_channels
        x = _chw(color)
        tiling = self._tiling()
        if c == n:
            yield from tiled_bands(self.runner, x, **tiling, unit=unit, progress=progress)
            return
        if c == 1 and n == 3:  # a view: tiles copy only themselves
            for r0, out in tiled_bands(
                self.runner, x.expand(3, -1, -1), **tiling, unit=unit, progress=progress
            ):
                yield r0, to_gray(out) if out.shape[2] == 3 else out
            return
        if n != 1:
            raise RestorekitError(f"the network takes {n}-channel images; cannot restore a {c}-channel image")
        passes = [
            tiled_bands(self.runner, x[i : i + 1], **tiling, unit=unit, progress=progress) for i in range(c)
        ]
        for parts in zip(*passes, strict=True):  # one plan for every channel: the bands line up
            yield parts[0][0], np.concatenate([out for _, out in parts], axis=2)

    def _alpha_rows(
        self, alpha: np.ndarray, progress: Callable[[int], object] | None, unit: float | None
    ) -> Callable[[int, int, int], np.ndarray]:
        """``rows(r0, n, width)``: output rows ``r0 … r0 + n - 1`` of the alpha plane, asked top to
        bottom in the colour's bands."""
        if _is_constant(alpha):
            value = float(_to_unit(alpha.flat[:1], unit)[0])
            return lambda r0, n, width: np.full((n, width, 1), value, dtype=np.float32)
        if self.alpha_mode == "network":  # as a gray image: one channel back
            bands = self._color_bands(alpha, progress, unit)

            def from_network(r0: int, n: int, width: int) -> np.ndarray:
                start, out = next(bands)
                assert start == r0 and out.shape[0] == n, "alpha and colour bands out of step"
                return out[..., :1]

            return from_network
        plane = np.ascontiguousarray(alpha[..., 0])
        return lambda r0, n, width: bicubic_rows(plane, r0, n, width // plane.shape[1], unit)


def _chw(planes: np.ndarray | torch.Tensor) -> torch.Tensor:
    return planes if isinstance(planes, torch.Tensor) else torch.from_numpy(planes).permute(2, 0, 1)


def _to_unit(samples: np.ndarray, unit: float | None) -> np.ndarray:
    """float32 ``samples / unit`` (``data.io.raw_to_float``'s division), or the samples as float32."""
    if unit is None:
        return np.asarray(samples, dtype=np.float32)
    return np.divide(samples, np.float32(unit), dtype=np.float32)


def bicubic_rows(plane: np.ndarray, r0: int, n: int, scale: int, unit: float | None = None) -> np.ndarray:
    """Rows ``r0 … r0 + n - 1`` of ``plane`` ``(H, W)`` upscaled ``scale``× bicubically, ``(n, W·s, 1)``.

    Equal to the same rows of the whole plane's ``cv2.resize`` (INTER_CUBIC reads two input rows
    either side; three are kept, and an integer scale keeps the sampling phase), at the cost of a
    band, not of the whole upscaled plane.
    """
    h, w = plane.shape
    lo, hi = max(0, r0 // scale - 3), min(h, -(-(r0 + n) // scale) + 3)
    src = _to_unit(plane[lo:hi], unit)  # integer samples: only the rows this band reads
    part = cv2.resize(src, (w * scale, (hi - lo) * scale), interpolation=cv2.INTER_CUBIC)
    return part.reshape((hi - lo) * scale, w * scale)[r0 - lo * scale : r0 - lo * scale + n, :, None]


def _is_constant(plane: np.ndarray) -> bool:
    return bool(plane.size == 0 or plane.min() == plane.max())


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB → ``(H, W, 1)`` BT.601 luma, float32.

    Written out per pixel, not as ``np.tensordot``: BLAS sums differently depending on how many
    rows it is given, and a band of rows must give the same numbers as the whole image.
    """
    gray = rgb[..., 0] * LUMA[0]
    gray += rgb[..., 1] * LUMA[1]
    gray += rgb[..., 2] * LUMA[2]
    return gray[..., None]


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HWC float32 to ``size`` = (height, width): INTER_AREA to shrink, INTER_LANCZOS4 to enlarge."""
    h, w = img.shape[:2]
    if (h, w) == tuple(size):
        return img
    shrink = size[0] * size[1] < h * w
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4
    out = cv2.resize(np.ascontiguousarray(img), (size[1], size[0]), interpolation=interp)
    return out if out.ndim == 3 else out[..., None]

"""MATLAB-compatible bicubic ``imresize``, batched in torch and usable on any device.

Super-resolution benchmarks build their low-resolution images with MATLAB's ``imresize``
(bicubic, antialiased when shrinking), and BasicSR's ``matlab_functions.imresize`` is the usual
Python stand-in. Its maths is reproduced here:

* cubic kernel with a = -0.5; when downscaling with antialiasing the kernel is stretched to
  width ``4 / scale`` and scaled by ``scale``;
* output size ``ceil(in * scale)``; pixel centres map by ``u = x / scale + 0.5 (1 - 1 / scale)``;
* each output pixel's weights are normalised to sum to 1;
* borders are handled by symmetric mirroring that repeats the edge pixel (MATLAB's
  ``[1:n, n:-1:1]`` index table), for any amount of overhang;
* rows (H) are resized before columns (W) — MATLAB resizes the axis with the smaller scale
  first, which for one common scale is H.

How it is made fast: for each ``(in_size, out_size, scale)`` the taps and the mirroring are folded
into one dense ``(out, in)`` matrix, built once in float64 and cached per device and dtype, so a
resize is two batched matrix multiplications. On the CPU this beat a per-tap gather + weighted
sum by ~10× (512² RGB, batch 8, ×1/4: ~480 vs ~45 images/s on 2 cores) and even wins when
upscaling, because the BLAS kernel is so much better than scattered reads.

Results are neither rounded nor clipped. Unlike BasicSR the tables are computed in float64 (as
MATLAB does), and float64 images are resized in float64. On Ampere+ GPUs, enabling TF32 matmuls
(``torch.backends.cuda.matmul.allow_tf32``) would lower float32 precision here too.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

ImageT = TypeVar("ImageT", np.ndarray, Tensor)

_KERNEL_WIDTH = 4.0


def cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), support [-2, 2]."""
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1).to(x.dtype)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)).to(x.dtype)
    return near + far


def contributions(
    in_len: int, out_len: int, scale: float, antialiasing: bool = True
) -> tuple[Tensor, Tensor]:
    """MATLAB's ``contributions``: float64 weights ``(out, P)`` and 0-based input indices ``(out, P)``.

    Indices are already mirrored into ``[0, in_len)``; tap columns that are zero for every output
    pixel are dropped (they are the spare ones the formula always allocates).
    """
    shrink_aa = scale < 1 and antialiasing
    width = _KERNEL_WIDTH / scale if shrink_aa else _KERNEL_WIDTH
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    dist = u[:, None] - idx
    weights = scale * cubic(scale * dist) if shrink_aa else cubic(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric mirroring with period 2n: 1..n, n..1 (1-based), valid for any overhang.
    period = 2 * in_len
    m = torch.remainder(idx.to(torch.int64) - 1, period)
    m = torch.where(m >= in_len, period - 1 - m, m)
    keep = (weights != 0).any(dim=0)
    return weights[:, keep].contiguous(), m[:, keep].contiguous()


@lru_cache(maxsize=64)
def _matrix_cpu(in_len: int, out_len: int, scale: float, antialiasing: bool) -> Tensor:
    """Dense float64 resize matrix ``(out_len, in_len)``; mirrored taps add onto real pixels."""
    weights, idx = contributions(in_len, out_len, scale, antialiasing)
    mat = torch.zeros(out_len, in_len, dtype=torch.float64)
    mat.scatter_add_(1, idx, weights)
    return mat


@lru_cache(maxsize=64)
def _matrix(
    in_len: int, out_len: int, scale: float, antialiasing: bool, device: torch.device, dtype: torch.dtype
) -> Tensor:
    return _matrix_cpu(in_len, out_len, scale, antialiasing).to(device=device, dtype=dtype)


def _check_scale(scale: float, what: str) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what}: expected a number > 0, got {scale!r}")
    value = float(scale)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what}: expected a finite number > 0, got {scale!r}")
    return value


def _plan(
    in_hw: tuple[int, int], scale: float | None, size: tuple[int, int] | None
) -> tuple[tuple[float, float], tuple[int, int]]:
    """Per-axis scales and the output size, following MATLAB's rules for scale vs. size."""
    if scale is None and size is None:
        raise ValueError("imresize: give a scale or an output size")
    if size is not None:
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in size):
            raise ValueError(f"size: expected (height, width) integers, got {size!r}")
        out_hw = (int(size[0]), int(size[1]))
        if min(out_hw) < 1:
            raise ValueError(f"size: expected positive integers, got {size!r}")
    if scale is not None:
        s = _check_scale(scale, "scale")
        scales = (s, s)
        if size is None:
            out_hw = (math.ceil(in_hw[0] * s), math.ceil(in_hw[1] * s))
    else:
        scales = (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1])
    return scales, out_hw


def _resize_tensor(x: Tensor, scale: float | None, size: tuple[int, int] | None, aa: bool) -> Tensor:
    """Resize the last two axes of a floating tensor ``(..., H, W)``."""
    in_h, in_w = int(x.shape[-2]), int(x.shape[-1])
    if in_h < 1 or in_w < 1:
        raise ValueError(f"imresize: empty image of shape {tuple(x.shape)}")
    (sh, sw), (out_h, out_w) = _plan((in_h, in_w), scale, size)
    work = x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)
    mh = _matrix(in_h, out_h, sh, aa, work.device, work.dtype)
    mw = _matrix(in_w, out_w, sw, aa, work.device, work.dtype)
    if sw < sh:  # MATLAB resizes the axis with the smaller scale first
        out = torch.matmul(mh, torch.matmul(work, mw.T))
    else:
        out = torch.matmul(torch.matmul(mh, work), mw.T)
    return out.to(x.dtype)


def imresize(
    img: ImageT,
    scale: float | None = None,
    antialiasing: bool = True,
    *,
    size: tuple[int, int] | None = None,
) -> ImageT:
    """Resize like MATLAB's ``imresize(img, scale, 'bicubic')``; values in [0, 1], not clipped.

    Args:
        img: numpy ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)`` float image, or a tensor
            ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)`` on any device.
        scale: one factor for both axes (> 0); the output is ``ceil(in * scale)``.
        antialiasing: widen the kernel when shrinking (MATLAB's default).
        size: ``(height, width)`` of the output instead of (or, with ``scale``, besides) the
            factor; without ``scale`` each axis uses ``out / in`` as its factor, as in MATLAB.

    Returns:
        The same kind of array in the same layout, dtype and device. float32/float64 are
        computed in their own precision, other float types in float32.
    """
    if isinstance(img, np.ndarray):
        if img.dtype.kind != "f":
            raise TypeError(
                f"imresize expects a float image in [0, 1], got a numpy array of dtype {img.dtype} "
                "(convert with img.astype(np.float32) / 255 first)"
            )
        if img.ndim not in (2, 3, 4):
            raise ValueError(f"imresize expects an (H,W), (H,W,C) or (N,H,W,C) array, got shape {img.shape}")
        arr = np.ascontiguousarray(img)
        if not arr.flags.writeable:  # e.g. np.broadcast_to views; torch wants writeable memory
            arr = arr.copy()
        t = torch.from_numpy(arr)
        if img.ndim == 2:
            return _resize_tensor(t, scale, size, antialiasing).numpy()
        t = t.movedim(-1, -3)  # (..., H, W, C) → (..., C, H, W) as a view
        out = _resize_tensor(t, scale, size, antialiasing).movedim(-3, -1)
        return out.contiguous().numpy()
    if isinstance(img, Tensor):
        if not img.is_floating_point():
            raise TypeError(f"imresize expects a float tensor in [0, 1], got dtype {img.dtype}")
        if img.dim() not in (2, 3, 4):
            raise ValueError(
                f"imresize expects an (H,W), (C,H,W) or (N,C,H,W) tensor, got {tuple(img.shape)}"
            )
        return _resize_tensor(img, scale, size, antialiasing)
    raise TypeError(f"imresize expects a numpy array or a torch tensor, got {type(img).__name__}")

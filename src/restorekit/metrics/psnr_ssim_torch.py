"""Batched PSNR/SSIM on device tensors that reproduce BasicSR's numpy numbers per image.

BasicSR validates one image at a time: ``tensor2img`` turns the network output into a uint8
BGR array (clamp to [0, 1], ``* 255`` in float32, round half to even) and the numpy metrics run
on the CPU. Here the same quantisation and the same arithmetic run on a whole batch on the
tensor's device in float64, so validation needs no host round trip yet reports the numbers
papers report. (BasicSR's own ``*_pt`` metrics are *not* that: they skip the quantisation, add
1e-8 to the MSE and never return ``inf``.)

Tensors are NCHW **RGB** in [0, 1]; the Y channel is computed with the BGR-ordered sum BasicSR
uses, so ``psnr_batch(out, gt)[i] == calculate_psnr(bgr_uint8(out[i]), bgr_uint8(gt[i]), ...)``
up to float64 rounding (the agreement is tested far below 1e-6 dB).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from restorekit.registry import METRICS

_WINDOW_SIZE = 11
_SIGMA = 1.5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def quantize(img: Tensor) -> Tensor:
    """The uint8 round trip of BasicSR's ``tensor2img``, returned as float64 values in 0..255.

    The image is cast to float32 *before* clamping and scaling, exactly like ``tensor2img``
    (``.float()``, ``clamp_(0, 1)``, ``* 255.0``, ``round()``), so half-way values round to
    even the same way numpy does.
    """
    return _quantize32(img).to(torch.float64)


def _quantize32(img: Tensor) -> Tensor:
    """:func:`quantize` kept in float32, which holds the integers 0..255 exactly."""
    return img.detach().to(torch.float32).clamp(0.0, 1.0).mul_(255.0).round_()


def _check_pair(output: Tensor, gt: Tensor, crop_border: int) -> None:
    if output.shape != gt.shape:
        raise ValueError(f"image shapes differ: {tuple(output.shape)} vs {tuple(gt.shape)}")
    if output.dim() != 4:
        raise ValueError(f"expected NCHW tensors, got shape {tuple(output.shape)}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f"crop_border: expected an integer >= 0, got {crop_border!r}")
    if crop_border and 2 * crop_border >= min(output.shape[-2:]):
        raise ValueError(f"crop_border={crop_border} leaves nothing of images of shape {tuple(output.shape)}")


def _y_channel(q: Tensor) -> Tensor:
    """BasicSR's ``to_y_channel`` on quantised RGB values: float32 steps kept, float64 out.

    Gray (or non-3-channel) images only get the float32 ``/ 255 * 255`` round trip, as there.
    """
    x = q.to(torch.float32) / 255.0
    if x.shape[1] == 3:
        x = x.to(torch.float64)
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        # Same coefficients and summation order as numpy's dot over a BGR pixel.
        y = b * 24.966 + g * 128.553 + r * 65.481 + 16.0
        x = (y / 255.0).to(torch.float32)
    return (x * 255.0).to(torch.float64)


def _prepare(output: Tensor, gt: Tensor, crop_border: int, test_y_channel: bool) -> tuple[Tensor, Tensor]:
    """Check, quantise, crop and optionally take Y.

    Without Y the result stays float32: its values are integers in 0..255, so it is exact and
    halves the memory traffic; with Y it is float64 like BasicSR's.
    """
    _check_pair(output, gt, crop_border)
    a, b = _quantize32(output), _quantize32(gt)
    if crop_border:
        c = crop_border
        a, b = a[..., c:-c, c:-c], b[..., c:-c, c:-c]
    if test_y_channel:
        a, b = _y_channel(a), _y_channel(b)
    return a, b


@METRICS.register("psnr")
def psnr_batch(output: Tensor, gt: Tensor, crop_border: int = 0, test_y_channel: bool = False) -> Tensor:
    """Per-image PSNR (dB, float64, shape ``(N,)``) of NCHW RGB tensors in [0, 1]; ``inf`` if equal."""
    a, b = _prepare(output, gt, crop_border, test_y_channel)
    count = math.prod(a.shape[1:])
    # a and b are fresh tensors (or views of them), so in-place ops save allocations. The
    # difference is exact in float32 for integer values; integer squares summed in float64 are
    # exact too, so without Y the MSE equals numpy's bit for bit.
    sq = a.sub_(b).square_()
    mse = sq.sum(dim=(1, 2, 3), dtype=torch.float64) / count
    # 255²/0 = inf and log10(inf) = inf, so identical images give inf without a special case.
    return 10.0 * torch.log10(255.0 * 255.0 / mse)


@lru_cache(maxsize=32)
def _band(n: int, device: torch.device) -> Tensor:
    """``(n - 10, n)`` float64 matrix applying OpenCV's ``getGaussianKernel(11, 1.5)`` 'valid'.

    Filtering by matrix products beat grouped float64 convolutions ~6× on the CPU (BLAS); the
    taps equal OpenCV's to within one ulp.
    """
    half = _WINDOW_SIZE // 2
    taps = [math.exp(-((i - half) ** 2) / (2.0 * _SIGMA**2)) for i in range(_WINDOW_SIZE)]
    total = sum(taps)
    g = torch.tensor([t / total for t in taps], dtype=torch.float64)
    rows = n - _WINDOW_SIZE + 1
    band = torch.zeros(rows, n, dtype=torch.float64)
    idx = torch.arange(rows)[:, None] + torch.arange(_WINDOW_SIZE)[None, :]
    band.scatter_(1, idx, g.expand(rows, -1).contiguous())
    return band.to(device)


def _filter_valid(x: Tensor) -> Tensor:
    """Separable 11×11 Gaussian over the last two axes, 'valid' region only (no padding)."""
    bh = _band(x.shape[-2], x.device)
    bw = _band(x.shape[-1], x.device)
    return torch.matmul(torch.matmul(bh, x), bw.T)


@METRICS.register("ssim")
def ssim_batch(output: Tensor, gt: Tensor, crop_border: int = 0, test_y_channel: bool = False) -> Tensor:
    """Per-image SSIM (float64, shape ``(N,)``) of NCHW RGB tensors in [0, 1], channel-averaged."""
    a, b = _prepare(output, gt, crop_border, test_y_channel)
    if min(a.shape[-2:]) < _WINDOW_SIZE:
        raise ValueError(
            f"SSIM needs images of at least {_WINDOW_SIZE}x{_WINDOW_SIZE} after cropping, "
            f"got {a.shape[-2]}x{a.shape[-1]}"
        )
    a, b = a.to(torch.float64), b.to(torch.float64)
    c = a.shape[1]
    # One batched product filters all five moments of all channels at once.
    moments = _filter_valid(torch.cat([a, b, a * a, b * b, a * b], dim=1))
    mu1, mu2, e11, e22, e12 = moments.split(c, dim=1)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = e11 - mu1_sq
    sigma2_sq = e22 - mu2_sq
    sigma12 = e12 - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + _C1) * (2 * sigma12 + _C2)) / (
        (mu1_sq + mu2_sq + _C1) * (sigma1_sq + sigma2_sq + _C2)
    )
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)

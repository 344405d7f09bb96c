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
# Output rows (columns) per tile of the separable Gaussian; see _filter_valid.
_TILE = 32
# float32 sums of at most this many squared 8-bit differences (each ≤ 255²) stay below 2**24,
# where every integer is exact, so such partial sums are exact in any summation order.
_EXACT_CHUNK = 256


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


@METRICS.register("psnr", higher_is_better=True)
def psnr_batch(output: Tensor, gt: Tensor, crop_border: int = 0, test_y_channel: bool = False) -> Tensor:
    """Per-image PSNR (dB, float64, shape ``(N,)``) of NCHW RGB tensors in [0, 1]; ``inf`` if equal."""
    if output.device.type == "cpu" and output.dim() == 4 and output.shape[0] > 1:
        _check_pair(output, gt, crop_border)
        return torch.cat(
            [psnr_batch(o[None], g[None], crop_border, test_y_channel) for o, g in zip(output, gt)]
        )
    a, b = _prepare(output, gt, crop_border, test_y_channel)
    count = math.prod(a.shape[1:])
    # a and b are fresh tensors (or views of them), so in-place ops save allocations.
    sq = a.sub_(b).square_()
    if sq.dtype == torch.float32:
        # Without Y the squares are integers: float32 partial sums over chunks of a row are
        # exact, and so is their float64 total, so the MSE equals numpy's bit for bit; and a
        # float32 reduction is cheaper than converting every element to float64 on the way.
        w = sq.shape[-1]
        parts = [sq[..., i : i + _EXACT_CHUNK].sum(dim=-1) for i in range(0, w, _EXACT_CHUNK)]
        total = torch.stack(parts, dim=-1).sum(dim=(1, 2, 3), dtype=torch.float64)
    else:
        total = sq.sum(dim=(1, 2, 3))
    mse = total / count
    # 255²/0 = inf and log10(inf) = inf, so identical images give inf without a special case.
    return 10.0 * torch.log10(255.0 * 255.0 / mse)


@lru_cache(maxsize=16)
def _tile_band(device: torch.device) -> Tensor:
    """``(T, T + 10)`` float64 matrix: OpenCV's ``getGaussianKernel(11, 1.5)`` on each row, shifted.

    Multiplying a tile of ``T + 10`` input rows by it gives ``T`` rows of the 'valid' filter;
    the taps equal OpenCV's to within one ulp.
    """
    half = _WINDOW_SIZE // 2
    taps = [math.exp(-((i - half) ** 2) / (2.0 * _SIGMA**2)) for i in range(_WINDOW_SIZE)]
    total = sum(taps)
    g = torch.tensor([t / total for t in taps], dtype=torch.float64)
    band = torch.zeros(_TILE, _TILE + _WINDOW_SIZE - 1, dtype=torch.float64)
    idx = torch.arange(_TILE)[:, None] + torch.arange(_WINDOW_SIZE)[None, :]
    band.scatter_(1, idx, g.expand(_TILE, -1).contiguous())
    return band.to(device)


def _split(n: int) -> tuple[int, int, int]:
    """'Valid' outputs of an axis of length ``n``: (tile size, whole tiles, rows left over)."""
    valid = n - _WINDOW_SIZE + 1
    t = min(_TILE, valid)
    return t, valid // t, valid % t


def _rows_plane(x: Tensor, out: Tensor, band: Tensor) -> None:
    """Filter a contiguous (H, W) plane along H into ``out`` (H - 10, W), tile by tile.

    The tiles are a strided view (no copy): tile j is rows jT .. jT + T + 9, a BLAS matrix with
    leading dimension W. The rows left over use the band's top-left corner.
    """
    w = x.shape[1]
    t, full, rem = _split(x.shape[0])
    tiles = x.as_strided((full, t + _WINDOW_SIZE - 1, w), (t * w, w, 1))
    torch.matmul(band[:t, : t + _WINDOW_SIZE - 1], tiles, out=out[: full * t].view(full, t, w))
    if rem:
        torch.mm(band[:rem, : rem + _WINDOW_SIZE - 1], x[full * t :], out=out[full * t :])


def _cols_plane(x: Tensor, out: Tensor, band: Tensor) -> None:
    """Filter a contiguous (H, W) plane along W into ``out`` (H, W - 10), tile by tile.

    Tile j is the column block jT .. jT + T + 9 of every row: again a BLAS matrix without a copy.
    """
    h, w = x.shape
    t, full, rem = _split(w)
    tiles = x.as_strided((full, h, t + _WINDOW_SIZE - 1), (t, w, 1))
    band_t = band[:t, : t + _WINDOW_SIZE - 1].T
    res = torch.bmm(tiles, band_t.expand(full, -1, -1))  # (full, h, t)
    out[:, : full * t].view(h, full, t).copy_(res.transpose(0, 1))
    if rem:
        out[:, full * t :] = torch.mm(x[:, full * t :], band[:rem, : rem + _WINDOW_SIZE - 1].T)


def _filter_valid(x: Tensor) -> Tensor:
    """Separable 11×11 Gaussian over the last two axes, 'valid' region only (no padding).

    Each axis is filtered by small matrix products on overlapping tiles of ``T + 10`` rows
    (``T = 32``): BLAS speed without the ~H / (T + 10) times wasted multiplications by zero of
    one dense ``(H - 10, H)`` band matrix, and without float64 convolutions, which PyTorch runs
    slowly. On a CPU the planes are filtered one by one (strided views, no copies, cache-sized
    work); on a GPU all planes go at once, with one copy of the tiles, to keep launches few.
    """
    band = _tile_band(x.device)
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    planes = x.reshape(-1, h, w).contiguous()
    if x.device.type == "cpu":
        mid = torch.empty(planes.shape[0], h - _WINDOW_SIZE + 1, w, dtype=x.dtype)
        out = torch.empty(planes.shape[0], h - _WINDOW_SIZE + 1, w - _WINDOW_SIZE + 1, dtype=x.dtype)
        for i in range(planes.shape[0]):
            _rows_plane(planes[i], mid[i], band)
            _cols_plane(mid[i], out[i], band)
        return out.reshape(*lead, *out.shape[-2:])
    return _filter_batched(planes, band).reshape(*lead, h - _WINDOW_SIZE + 1, w - _WINDOW_SIZE + 1)


def _filter_batched(planes: Tensor, band: Tensor) -> Tensor:
    """:func:`_filter_valid` for (P, H, W) planes in few large kernels (zero-padded to whole tiles)."""
    span = _TILE + _WINDOW_SIZE - 1
    for _ in range(2):  # rows, then (after a transpose) columns
        p, h, w = planes.shape
        valid = h - _WINDOW_SIZE + 1
        tiles = -(-valid // _TILE)
        padded = torch.nn.functional.pad(planes, (0, 0, 0, tiles * _TILE + _WINDOW_SIZE - 1 - h))
        view = padded.as_strided((p, tiles, span, w), (padded.stride(0), _TILE * w, w, 1))
        res = torch.matmul(band, view.contiguous()).reshape(p, tiles * _TILE, w)[:, :valid]
        planes = res.transpose(1, 2).contiguous()  # two transposes: back to (P, H', W')
    return planes


@METRICS.register("ssim", higher_is_better=True)
def ssim_batch(output: Tensor, gt: Tensor, crop_border: int = 0, test_y_channel: bool = False) -> Tensor:
    """Per-image SSIM (float64, shape ``(N,)``) of NCHW RGB tensors in [0, 1], channel-averaged."""
    a, b = _prepare(output, gt, crop_border, test_y_channel)
    if min(a.shape[-2:]) < _WINDOW_SIZE:
        raise ValueError(
            f"SSIM needs images of at least {_WINDOW_SIZE}x{_WINDOW_SIZE} after cropping, "
            f"got {a.shape[-2]}x{a.shape[-1]}"
        )
    # On a CPU one image at a time keeps the float64 moments (15 planes per RGB image) near the
    # caches and reuses the allocator's memory instead of page-faulting in fresh buffers (for
    # PSNR this halves the time at 512²); a GPU takes the whole batch at once.
    step = 1 if a.device.type == "cpu" else a.shape[0]
    return torch.cat([_ssim(a[i : i + step], b[i : i + step]) for i in range(0, a.shape[0], step)])


def _ssim(a: Tensor, b: Tensor) -> Tensor:
    """SSIM of quantised (and cropped) NCHW batches; BasicSR's formula, evaluated in place."""
    n, c, h, w = a.shape
    # The five moments written straight into one float64 buffer, filtered by one call.
    moments = torch.empty(n, 5 * c, h, w, dtype=torch.float64, device=a.device)
    x, y, xx, yy, xy = moments.split(c, dim=1)
    x.copy_(a)
    y.copy_(b)
    torch.mul(x, x, out=xx)
    torch.mul(y, y, out=yy)
    torch.mul(x, y, out=xy)
    mu1, mu2, sigma1_sq, sigma2_sq, sigma12 = _filter_valid(moments).split(c, dim=1)
    # The operations and their order are those of the numpy version, so the rounding is too;
    # only the buffers are reused: e.g. (2 * mu1_mu2 + C1) overwrites mu1_mu2.
    mu1_mu2 = mu1 * mu2
    mu1_sq, mu2_sq = mu1.square_(), mu2.square_()
    sigma1_sq.sub_(mu1_sq)
    sigma2_sq.sub_(mu2_sq)
    sigma12.sub_(mu1_mu2)
    num = mu1_mu2.mul_(2).add_(_C1).mul_(sigma12.mul_(2).add_(_C2))
    den = mu1_sq.add_(mu2_sq).add_(_C1).mul_(sigma1_sq.add_(sigma2_sq).add_(_C2))
    return num.div_(den).mean(dim=(2, 3)).mean(dim=1)

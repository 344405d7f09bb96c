"""Gaussian and Poisson (shot) noise for (B, C, H, W) batches in [0, 1], colour or gray.

These follow BasicSR's ``*_noise_pt`` functions, which Real-ESRGAN calls: each image of a batch
gets its own strength (σ in 8-bit levels for Gaussian noise, a ``scale`` for Poisson noise) and
is independently made "gray" with probability ``gray_prob`` — gray noise is one noise field
shared by the three channels, like the luminance noise of a camera sensor.

Poisson noise in BasicSR's form: the image is quantised to 8 bits, the number of distinct levels
``n`` in the image is rounded up to a power of two ``v``, and the noisy image is
``Poisson(img · v) / v``; the noise is that minus the quantised image, times ``scale``. Its mean
is zero (a Poisson variable's mean is its rate) and its variance ``scale² · img / v``. BasicSR
counts the levels with ``torch.unique`` in a Python loop, one host round trip per image; here
the count is a per-image 256-bin presence table filled by one ``scatter_``, so it stays on the
device with no synchronisation.

Randomness comes only from the ``generator`` argument (a ``torch.Generator`` on the images'
device), in a fixed order, so a batch's noise is a pure function of the generator's state.
Gray noise is computed whenever ``gray_prob > 0`` (a host-side constant) rather than only when
some image drew it, because asking the device "did any image draw gray?" would cost a sync.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# ITU-R BT.601 luma weights for RGB, as torchvision's rgb_to_grayscale (BasicSR uses it here).
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def rgb_to_gray(img: Tensor) -> Tensor:
    """(B, 3, H, W) RGB → (B, 1, H, W) luma; other channel counts are averaged."""
    if img.shape[1] == 3:
        w = img.new_tensor(_GRAY_WEIGHTS).view(1, 3, 1, 1)
        return (img * w).sum(dim=1, keepdim=True)
    return img.mean(dim=1, keepdim=True)


def _uniform(n: int, bounds: Sequence[float], like: Tensor, generator: torch.Generator | None) -> Tensor:
    lo, hi = float(bounds[0]), float(bounds[1])
    u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return u * (hi - lo) + lo


def _draw_gray(n: int, gray_prob: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return (u < gray_prob).to(like.dtype)


def finish(out: Tensor, clip: bool = True, rounds: bool = False) -> Tensor:
    """Optionally clip to [0, 1] and/or round to the 8-bit grid (BasicSR's ``clip``/``rounds``)."""
    if rounds:
        out = (out * 255.0).round()
        return torch.clamp(out, 0, 255) / 255.0 if clip else out / 255.0
    return torch.clamp(out, 0, 1) if clip else out


# ----------------------------------------------------------------------------- Gaussian
def gaussian_noise(
    img: Tensor,
    sigma: Tensor,
    gray: Tensor,
    generator: torch.Generator | None = None,
    gray_possible: bool = True,
) -> Tensor:
    """Noise with per-image std ``sigma`` (B,) in 8-bit levels; ``gray`` (B,) is 1 for gray noise.

    ``gray_possible=False`` skips drawing the gray field (then ``gray`` must be all zeros).
    """
    b, _, h, w = img.shape
    sigma = sigma.view(b, 1, 1, 1) / 255.0
    noise = torch.randn(img.shape, generator=generator, device=img.device, dtype=img.dtype) * sigma
    if gray_possible:
        gray = gray.view(b, 1, 1, 1)
        noise_gray = (
            torch.randn((b, 1, h, w), generator=generator, device=img.device, dtype=img.dtype) * sigma
        )
        noise = noise * (1 - gray) + noise_gray * gray
    return noise


def random_add_gaussian_noise(
    img: Tensor,
    sigma_range: Sequence[float],
    gray_prob: float,
    generator: torch.Generator | None = None,
    clip: bool = True,
    rounds: bool = False,
) -> Tensor:
    """Add Gaussian noise, σ uniform in ``sigma_range`` (8-bit levels) per image."""
    b = img.shape[0]
    sigma = _uniform(b, sigma_range, img, generator)
    gray = _draw_gray(b, gray_prob, img, generator)
    return finish(img + gaussian_noise(img, sigma, gray, generator, gray_prob > 0), clip, rounds)


# ----------------------------------------------------------------------------- Poisson
def count_levels(img: Tensor) -> Tensor:
    """Number of distinct 8-bit values in each image of a batch (B,), computed on the device."""
    b = img.shape[0]
    idx = torch.clamp((img * 255.0).round(), 0, 255).long().reshape(b, -1)
    present = torch.zeros((b, 256), device=img.device, dtype=img.dtype)
    present.scatter_(1, idx, 1.0)
    return present.sum(dim=1)


def _shot(img: Tensor, generator: torch.Generator | None) -> Tensor:
    """``Poisson(q · v) / v − q`` with q the 8-bit-quantised image and v its level count
    rounded up to a power of two (per image)."""
    q = torch.clamp((img * 255.0).round(), 0, 255) / 255.0
    vals = torch.exp2(torch.ceil(torch.log2(count_levels(q)))).view(-1, 1, 1, 1)
    return torch.poisson(q * vals, generator=generator) / vals - q


def poisson_noise(
    img: Tensor,
    scale: Tensor,
    gray: Tensor,
    generator: torch.Generator | None = None,
    gray_possible: bool = True,
) -> Tensor:
    """Shot noise times ``scale`` (B,); ``gray`` (B,) is 1 where the noise comes from the luma."""
    b = img.shape[0]
    noise = _shot(img, generator)
    if gray_possible:
        gray = gray.view(b, 1, 1, 1)
        noise_gray = _shot(rgb_to_gray(img), generator).expand_as(img)
        noise = noise * (1 - gray) + noise_gray * gray
    return noise * scale.view(b, 1, 1, 1)


def random_add_poisson_noise(
    img: Tensor,
    scale_range: Sequence[float],
    gray_prob: float,
    generator: torch.Generator | None = None,
    clip: bool = True,
    rounds: bool = False,
) -> Tensor:
    """Add Poisson noise, ``scale`` uniform in ``scale_range`` per image."""
    b = img.shape[0]
    scale = _uniform(b, scale_range, img, generator)
    gray = _draw_gray(b, gray_prob, img, generator)
    return finish(img + poisson_noise(img, scale, gray, generator, gray_prob > 0), clip, rounds)

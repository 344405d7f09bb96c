"""Latent vectors that depend only on (seed, index), slerp walks between them, sample grids.

Training validates on, and ``restorekit generate`` draws, latents from this one rule, so image
``i`` of ``-n 8 --seed 3`` is image ``i`` of ``-n 64 --seed 3`` and a sharded evaluation
generates exactly what one process would.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def latent_bank(num: int, dim: int, seed: int, start: int = 0) -> Tensor:
    """Latents ``start .. start + num`` (CPU, float32); latent ``i`` depends on ``(seed, i)`` only."""
    rows = [
        torch.randn(dim, generator=torch.Generator().manual_seed(seed * 1_000_003 + i))
        for i in range(start, start + num)
    ]
    return torch.stack(rows)


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between two latents (linear when they are parallel)."""
    na, nb = a / a.norm(), b / b.norm()
    omega = torch.arccos((na * nb).sum().clamp(-1, 1))
    if float(omega) < 1e-6:
        return (1 - t) * a + t * b
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def walk(points: Tensor, steps: int) -> Tensor:
    """``steps`` latents on a closed slerp path through ``points`` (back to the first)."""
    k = points.shape[0]
    out = []
    for s in range(steps):
        pos = s * k / steps
        i = int(pos)
        out.append(slerp(points[i % k], points[(i + 1) % k], pos - i))
    return torch.stack(out)


def grid(images: Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """One HWC float image of ``images`` in rows of ``nrow`` (square by default)."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    canvas = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for k in range(n):
        r, q = divmod(k, nrow)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        canvas[:, y : y + h, x : x + w] = images[k]
    return canvas.permute(1, 2, 0).numpy()

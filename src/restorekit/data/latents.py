"""Latent vectors that depend only on (seed, index), and slerp walks between them.

Training validates on, and ``restorekit generate`` draws, latents from this one rule, so image
``i`` of ``-n 8 --seed 3`` is image ``i`` of ``-n 64 --seed 3`` and a sharded evaluation
generates exactly what one process would.
"""

from __future__ import annotations

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

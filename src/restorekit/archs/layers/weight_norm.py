"""Weight-normalised convolution with the pre-parametrization state-dict layout.

WDSR was trained with ``torch.nn.utils.weight_norm``, which stores ``weight_g`` (shape
``[out, 1, 1, 1]``) and ``weight_v`` (the conv weight's shape) instead of ``weight``. The
replacement API (``torch.nn.utils.parametrizations.weight_norm``) renames these to
``parametrizations.weight.original0/1`` and the old one is deprecated, so this small module keeps
the official key names without either: ``weight = g * v / ||v||`` with the norm over every
dimension except the output channels (``dim=0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class WeightNormConv2d(nn.Module):
    """A ``Conv2d`` whose weight is ``weight_g * weight_v / ||weight_v||`` (keys bias, weight_g, weight_v).

    Initialised like ``weight_norm(nn.Conv2d(...))``: ``v`` gets PyTorch's default conv init and
    ``g = ||v||``, so the effective weight starts equal to a plain conv's.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.padding = kernel_size // 2
        # bias first, then g and v: the parameter order torch.nn.utils.weight_norm leaves behind
        self.register_parameter("bias", conv.bias)
        v = conv.weight.detach()
        # on the meta device (layout checks) skip the norm: it has no values and would pull in
        # slow Python decompositions
        g = v.new_empty(out_channels, 1, 1, 1) if v.is_meta else _norm_except_dim0(v)
        self.weight_g = nn.Parameter(g.clone())
        self.weight_v = nn.Parameter(v.clone())

    @property
    def weight(self) -> Tensor:
        """The effective convolution weight."""
        return self.weight_v * (self.weight_g / _norm_except_dim0(self.weight_v))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        out_ch, in_ch, k, _ = self.weight_v.shape
        return f"{in_ch}, {out_ch}, kernel_size={k}, bias={self.bias is not None}"


def _norm_except_dim0(v: Tensor) -> Tensor:
    """L2 norm over all dims but the first, kept as ``[out, 1, 1, 1]`` (what ``weight_g`` stores)."""
    return torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True)

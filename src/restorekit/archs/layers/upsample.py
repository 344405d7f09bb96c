"""Sub-pixel upsampling and its inverse."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.errors import ConfigError


def is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


class Upsample(nn.Sequential):
    """Conv + PixelShuffle stages for a scale of 2^n (n stages of ×2) or 3 (one stage of ×3).

    The children are ``[conv, shuffle, conv, shuffle, ...]``, so conv weights sit at even
    indices (``upsample.0``, ``upsample.2``) as in BasicSR's ``Upsample``.
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale >= 2 and is_power_of_two(scale):
            for _ in range(scale.bit_length() - 1):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ConfigError(f"upscale: {scale} is not supported by this upsampler; expected 2^n or 3")
        super().__init__(*layers)


def pixel_unshuffle(x: Tensor, scale: int) -> Tensor:
    """Space-to-depth: (b, c, h*s, w*s) → (b, c*s*s, h, w).

    Channel order is ``c*s*s + i*s + j`` for the pixel at row offset ``i`` and column offset ``j``,
    the same as BasicSR's view/permute version, so RRDBNet x1/x2 weights see the layout they were
    trained with. Sizes not divisible by ``scale`` are an error (pad first).
    """
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"pixel_unshuffle: input size {h}x{w} is not divisible by {scale}")
    return F.pixel_unshuffle(x, scale)

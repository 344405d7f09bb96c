"""The mean shift EDSR and WDSR apply around the network.

Both subtract a per-channel data-set mean and rescale before the first conv, then undo it on
the output. The mean is a non-persistent buffer: it follows ``.to(device, dtype)`` but is not in
the state dict, exactly like the official checkpoints, which do not store it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from restorekit.errors import ConfigError

DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


def mean_tensor(rgb_mean: tuple[float, ...], num_in_ch: int, num_out_ch: int) -> Tensor:
    """``rgb_mean`` as a ``[1, C, 1, 1]`` tensor, checked against the channel counts.

    One value broadcasts to any channel count; otherwise there must be one per channel and the
    input and output must have the same channels (the same mean is added back to the output).
    """
    n = len(rgb_mean)
    if n != 1 and not (n == num_in_ch == num_out_ch):
        raise ConfigError(
            f"rgb_mean: expected 1 value or one per channel (num_in_ch={num_in_ch}, "
            f"num_out_ch={num_out_ch}), got {tuple(rgb_mean)}"
        )
    return torch.tensor([float(v) for v in rgb_mean], dtype=torch.float32).view(1, n, 1, 1)


def default_mean(num_in_ch: int, num_out_ch: int) -> tuple[float, ...]:
    """The mean a recogniser assumes: DIV2K's RGB mean for RGB models, else its average.

    A checkpoint does not store the mean it was trained with; for non-RGB models we fall back to
    a single value (the DIV2K average, 0.43) so the model at least builds.
    """
    if num_in_ch == num_out_ch == 3:
        return DIV2K_RGB_MEAN
    return (round(sum(DIV2K_RGB_MEAN) / 3, 4),)

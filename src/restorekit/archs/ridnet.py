"""RIDNet (Anwar & Barnes, 2019, "Real Image Denoising with Feature Attention").

Layout follows BasicSR's ``ridnet_arch`` (its ``convert_ridnet.py`` maps the official release onto
it, ``RIDNet(3, 64, 3)``)::

    sub_mean.{weight,bias} / add_mean.{weight,bias}   [C, C, 1, 1] / [C]: the mean shift, as 1×1 convs
    head.{weight,bias}                                [mid, in, 3, 3]
    body.<i>.merge.dilation1.{0,2}                    3×3 convs, dilation 1 and 2
    body.<i>.merge.dilation2.{0,2}                    3×3 convs, dilation 3 and 4
    body.<i>.merge.aggregation.0                      [mid, 2·mid, 3, 3]
    body.<i>.block1.conv{1,2}                         residual block
    body.<i>.block2.body.{0,2,4}                      "enhanced" residual block: 3×3, 3×3, 1×1
    body.<i>.ca.attention.{1,3}                       channel attention, squeeze 16
    tail.{weight,bias}                                [out, mid, 3, 3]

Each enhancement attention module (EAM) widens the receptive field with two dilated branches
(merge-and-run) before the residual blocks and the channel attention; the whole network
predicts the noise residual (``out = x + net(x)``).

Range: the official weights work on [0, 255] pixels (BasicSR's ``inference_ridnet.py`` feeds
``uint8`` values as floats). Inputs here are in [0, 1] like every restorekit network, so
``forward`` multiplies by ``img_range`` (255) and divides the output back. The mean shifts are
stored parameters (their loaded values rule); as in the original RIDNet they are frozen.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers import DIV2K_RGB_MEAN, ResidualBlockNoBN, default_mean, make_layer
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, only_prefixes, shape_of
from restorekit.archs.rcan import ChannelAttention
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

_PREFIXES = ("sub_mean", "add_mean", "head", "body", "tail")


def _info(kw: dict[str, Any]) -> ArchInfo:
    return ArchInfo("restoration", kw["in_channels"], kw["out_channels"])


def _per_channel(values: tuple[float, ...], channels: int) -> Tensor:
    """``values`` as a ``[channels]`` tensor: one per channel, or one (or all equal) for every channel."""
    if len(values) != channels:
        if len(set(values)) != 1:
            raise ConfigError(f"expected 1 or {channels} values (one per channel), got {tuple(values)}")
        values = values[:1]
    return torch.tensor([float(v) for v in values]).expand(channels)


class MeanShift(nn.Conv2d):
    """``x / std + sign · img_range · mean / std`` as a frozen 1×1 conv (the official key layout)."""

    def __init__(
        self, img_range: float, mean: tuple[float, ...], std: tuple[float, ...], channels: int, sign: int
    ) -> None:
        super().__init__(channels, channels, 1)
        with torch.no_grad():
            if not self.weight.is_meta:
                m, s = _per_channel(mean, channels), _per_channel(std, channels)
                self.weight.copy_(torch.diag(1.0 / s).view(channels, channels, 1, 1))
                self.bias.copy_(sign * img_range * m / s)
        self.requires_grad_(False)


class EResidualBlockNoBN(nn.Module):
    """conv3×3 → ReLU → conv3×3 → ReLU → conv1×1, + input, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1, 1, 0),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + x)


class MergeRun(nn.Module):
    """Two dilated branches (dilation 1→2 and 3→4), concatenated, fused by a conv, + input."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()

        def conv(cin: int, d: int) -> nn.Conv2d:
            return nn.Conv2d(cin, out_channels, 3, 1, d, d)

        def relu() -> nn.ReLU:
            return nn.ReLU(inplace=True)

        self.dilation1 = nn.Sequential(conv(in_channels, 1), relu(), conv(out_channels, 2), relu())
        self.dilation2 = nn.Sequential(conv(in_channels, 3), relu(), conv(out_channels, 4), relu())
        self.aggregation = nn.Sequential(conv(2 * out_channels, 1), relu())

    def forward(self, x: Tensor) -> Tensor:
        out = torch.cat([self.dilation1(x), self.dilation2(x)], dim=1)
        return self.aggregation(out) + x


class EAM(nn.Module):
    """Enhancement attention module: merge-and-run → residual block → ReLU → enhanced block → attention."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.merge = MergeRun(in_channels, mid_channels)
        self.block1 = ResidualBlockNoBN(mid_channels)
        self.block2 = EResidualBlockNoBN(mid_channels, out_channels)
        self.ca = ChannelAttention(out_channels, 16)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.ca(self.block2(self.relu(self.block1(self.merge(x)))))


@ARCHS.register("RIDNet", info=_info)
class RIDNet(nn.Module):
    """RIDNet: mean shift → conv → EAMs → conv → mean shift back, added to the input.

    Args (BasicSR's names):
        in_channels / out_channels: image channels (equal: the network predicts a residual).
        mid_channels: feature channels (64).
        num_block: EAM modules (4).
        img_range: the pixel range of the weights (255); inputs in [0, 1] are scaled by it.
        rgb_mean / rgb_std: the mean shift's initial values (one per channel, or one for all).
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        num_block: int = 4,
        img_range: float = 255.0,
        rgb_mean: tuple[float, ...] = DIV2K_RGB_MEAN,
        rgb_std: tuple[float, ...] = (1.0, 1.0, 1.0),
    ) -> None:
        super().__init__()
        if in_channels != out_channels:
            raise ConfigError(
                f"out_channels: RIDNet adds its output to the input, so it must equal in_channels "
                f"{in_channels}, got {out_channels}"
            )
        for name, values in (("rgb_mean", rgb_mean), ("rgb_std", rgb_std)):
            try:
                _per_channel(values, in_channels)
            except ConfigError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        self.scale = 1
        self.img_range = img_range
        self.sub_mean = MeanShift(img_range, rgb_mean, rgb_std, in_channels, -1)
        self.add_mean = MeanShift(img_range, rgb_mean, rgb_std, in_channels, 1)
        self.head = nn.Conv2d(in_channels, mid_channels, 3, 1, 1)
        self.body = make_layer(
            EAM, num_block, in_channels=mid_channels, mid_channels=mid_channels, out_channels=mid_channels
        )
        self.tail = nn.Conv2d(mid_channels, out_channels, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = x * self.img_range
        res = self.tail(self.body(self.relu(self.head(self.sub_mean(x)))))
        return (x + self.add_mean(res)) / self.img_range


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """RIDNet kwargs from a BasicSR-layout state dict, or ``None`` if the keys are not RIDNet's.

    ``img_range``, ``rgb_mean`` and ``rgb_std`` only set initial values of stored tensors (or the
    input scaling, 255 for the official weights), so the defaults are returned.
    """
    sd = state_dict
    head = shape_of(sd, "head.weight", 4)
    tail = shape_of(sd, "tail.weight", 4)
    if not only_prefixes(sd, _PREFIXES) or head is None or tail is None or "sub_mean.weight" not in sd:
        return None
    blocks = child_indices(sd, "body")
    if not is_consecutive(blocks):
        return None
    in_ch, out_ch = head[1], tail[0]
    mean = default_mean(in_ch, out_ch)
    return {
        "in_channels": in_ch,
        "mid_channels": head[0],
        "out_channels": out_ch,
        "num_block": len(blocks),
        "img_range": 255.0,
        "rgb_mean": mean,
        "rgb_std": (1.0,) * len(mean),
    }

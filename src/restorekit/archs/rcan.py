"""RCAN (Zhang et al., 2018, "Image Super-Resolution Using Very Deep Residual Channel Attention Networks").

Layout and argument names follow BasicSR's ``rcan_arch`` (its converted ``RCAN_BIX{2,3,4}-official``
releases use ``num_group=10, num_block=20``)::

    conv_first.{weight,bias}                                        [num_feat, num_in_ch, 3, 3]
    body.<g>.residual_group.<b>.rcab.{0,2}.{weight,bias}            3×3 convs of an RCAB
    body.<g>.residual_group.<b>.rcab.3.attention.1.{weight,bias}    [num_feat // squeeze, num_feat, 1, 1]
    body.<g>.residual_group.<b>.rcab.3.attention.3.{weight,bias}    [num_feat, num_feat // squeeze, 1, 1]
    body.<g>.conv.{weight,bias}                                     closing conv of a residual group
    conv_after_body, upsample.<0,2,…>, conv_last                    as EDSR

Channel attention rescales each feature map by a gate computed from its global average, which
is what lets a 400-conv network spend its capacity on the informative (high-frequency) channels.
Inputs are in [0, 1]; like EDSR the network subtracts ``rgb_mean`` and scales by ``img_range``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers import DIV2K_RGB_MEAN, Upsample, default_mean, make_layer, mean_tensor
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, only_prefixes, shape_of
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

_PREFIXES = ("conv_first", "body", "conv_after_body", "upsample", "conv_last")


def _info(kw: dict[str, Any]) -> ArchInfo:
    return ArchInfo("restoration", kw["num_in_ch"], kw["num_out_ch"], scale=kw["upscale"])


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation gate: global average → 1×1 down → ReLU → 1×1 up → sigmoid → scale."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        squeezed = num_feat // squeeze_factor
        if squeezed < 1:
            raise ConfigError(f"squeeze_factor: {squeeze_factor} leaves no channels of num_feat {num_feat}")
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, squeezed, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, num_feat, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)


class RCAB(nn.Module):
    """Residual channel attention block: conv → ReLU → conv → channel attention, scaled, + input."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.rcab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.rcab(x) * self.res_scale + x


class ResidualGroup(nn.Module):
    """``num_block`` RCABs and a conv, with a skip around them (the "residual in residual")."""

    def __init__(
        self, num_feat: int, num_block: int, squeeze_factor: int = 16, res_scale: float = 1.0
    ) -> None:
        super().__init__()
        self.residual_group = make_layer(
            RCAB, num_block, num_feat=num_feat, squeeze_factor=squeeze_factor, res_scale=res_scale
        )
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.residual_group(x)) + x


@ARCHS.register("RCAN", info=_info)
class RCAN(nn.Module):
    """RCAN: conv → residual groups of RCABs → conv, global skip, sub-pixel upsampler.

    Args:
        num_in_ch / num_out_ch: image channels in and out.
        num_feat: feature channels (64).
        num_group: residual groups (10).
        num_block: RCABs per group (BasicSR's default 16; the official releases use 20).
        squeeze_factor: channel reduction inside the attention gate (16).
        upscale: 2^n or 3.
        res_scale: residual scaling inside each RCAB (1).
        img_range: the pixel range the network was trained on (255 for the official models).
        rgb_mean: per-channel mean subtracted before (and added after) the network, in [0, 1].
    """

    def __init__(
        self,
        num_in_ch: int,
        num_out_ch: int,
        num_feat: int = 64,
        num_group: int = 10,
        num_block: int = 16,
        squeeze_factor: int = 16,
        upscale: int = 4,
        res_scale: float = 1.0,
        img_range: float = 255.0,
        rgb_mean: tuple[float, ...] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        self.scale = upscale
        self.img_range = img_range
        self.register_buffer("mean", mean_tensor(rgb_mean, num_in_ch, num_out_ch), persistent=False)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(
            ResidualGroup,
            num_group,
            num_feat=num_feat,
            num_block=num_block,
            squeeze_factor=squeeze_factor,
            res_scale=res_scale,
        )
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        feat = self.conv_first((x - mean) * self.img_range)
        res = self.conv_after_body(self.body(feat)) + feat
        return self.conv_last(self.upsample(res)) / self.img_range + mean


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """RCAN kwargs from a BasicSR-layout state dict, or ``None`` if the keys are not RCAN's.

    ``squeeze_factor`` is read from the attention's squeezed width ``num_feat // squeeze_factor``
    (16, the official value, whenever it fits). ``res_scale`` (1), ``img_range`` (255) and ``rgb_mean`` are
    not stored and take the defaults of the official models.
    """
    sd = state_dict
    first = shape_of(sd, "conv_first.weight", 4)
    last = shape_of(sd, "conv_last.weight", 4)
    squeeze = shape_of(sd, "body.0.residual_group.0.rcab.3.attention.1.weight", 4)
    if not only_prefixes(sd, _PREFIXES) or first is None or last is None or squeeze is None:
        return None
    num_feat, num_in_ch = first[0], first[1]
    groups = child_indices(sd, "body")
    blocks = child_indices(sd, "body.0.residual_group")
    ups = child_indices(sd, "upsample")
    if not (is_consecutive(groups) and is_consecutive(blocks) and is_consecutive(ups, 0, 2)):
        return None
    # several factors give the same width (64 // 13..16 == 4): prefer the default 16, then an
    # exact divisor, then the smallest that fits
    fits = [s for s in range(1, num_feat + 1) if num_feat // s == squeeze[0]]
    exact = [s for s in fits if num_feat % s == 0]
    factors = [16] if 16 in fits else exact or fits
    widths = [shape_of(sd, f"upsample.{i}.weight", 4) for i in ups]
    if len(widths) == 1 and widths[0] is not None and widths[0][0] == 9 * num_feat:
        upscale = 3
    elif all(w is not None and w[0] == 4 * num_feat for w in widths):
        upscale = 2 ** len(widths)
    else:
        return None
    if not factors:
        return None
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": last[0],
        "num_feat": num_feat,
        "num_group": len(groups),
        "num_block": len(blocks),
        "squeeze_factor": factors[0],
        "upscale": upscale,
        "res_scale": 1.0,
        "img_range": 255.0,
        "rgb_mean": default_mean(num_in_ch, last[0]),
    }

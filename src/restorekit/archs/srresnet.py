"""MSRResNet: BasicSR's modified SRResNet (Ledig et al., 2017) without batch normalisation.

Key layout of BasicSR's ``srresnet_arch`` (release ``MSRResNet_x4``; also x2/x3)::

    conv_first.{weight,bias}               [num_feat, num_in_ch, 3, 3]
    body.<i>.conv{1,2}.{weight,bias}       ResidualBlockNoBN, i < num_block
    upconv1.{weight,bias}                  [num_feat·s², num_feat, 3, 3]  (s = upscale, or 2 for ×4)
    upconv2.{weight,bias}                  ×4 only, [4·num_feat, num_feat, 3, 3]
    conv_hr.{weight,bias}, conv_last.{weight,bias}

The network predicts a residual over the bilinearly upsampled input.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers import ResidualBlockNoBN, default_init_weights, make_layer
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, only_prefixes, shape_of
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

_PREFIXES = ("conv_first", "body", "upconv1", "upconv2", "conv_hr", "conv_last")


def _info(kw: dict[str, Any]) -> ArchInfo:
    return ArchInfo("restoration", kw["num_in_ch"], kw["num_out_ch"], scale=kw["upscale"])


@ARCHS.register("MSRResNet", info=_info)
class MSRResNet(nn.Module):
    """Modified SRResNet: conv → residual blocks → one or two sub-pixel stages → two convs.

    Args:
        num_in_ch / num_out_ch: image channels (the bilinear skip needs them equal).
        num_feat: feature channels.
        num_block: residual blocks in the body.
        upscale: 2, 3 or 4 (×4 is two ×2 stages).
    """


    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        upscale: int = 4,
    ) -> None:
        super().__init__()
        if upscale not in (2, 3, 4):
            raise ConfigError(f"upscale: MSRResNet supports 2, 3 or 4, got {upscale}")
        if num_in_ch != num_out_ch:
            raise ConfigError(
                f"num_out_ch: MSRResNet adds the upsampled input to its output, so it must equal "
                f"num_in_ch={num_in_ch}, got {num_out_ch}"
            )
        self.scale = upscale
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat)
        stage = 2 if upscale == 4 else upscale
        self.upconv1 = nn.Conv2d(num_feat, num_feat * stage * stage, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1) if upscale == 4 else None
        self.pixel_shuffle = nn.PixelShuffle(stage)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        # the 0.1-scaled init keeps the residual stack close to identity at the start
        default_init_weights(
            [
                m
                for m in (self.conv_first, self.upconv1, self.upconv2, self.conv_hr, self.conv_last)
                if m is not None
            ],
            0.1,
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upconv2 is not None:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        base = F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)
        return out + base


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """MSRResNet kwargs from a BasicSR-layout state dict, or ``None`` if the keys are not its."""
    sd = state_dict
    first = shape_of(sd, "conv_first.weight", 4)
    up1 = shape_of(sd, "upconv1.weight", 4)
    last = shape_of(sd, "conv_last.weight", 4)
    if not only_prefixes(sd, _PREFIXES) or first is None or up1 is None or last is None:
        return None
    num_feat, num_in_ch = first[0], first[1]
    blocks = child_indices(sd, "body")
    if blocks and not is_consecutive(blocks):
        return None
    if "upconv2.weight" in sd:
        upscale = 4
    elif up1[0] == 4 * num_feat:
        upscale = 2
    elif up1[0] == 9 * num_feat:
        upscale = 3
    else:
        return None
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": last[0],
        "num_feat": num_feat,
        "num_block": len(blocks),
        "upscale": upscale,
    }

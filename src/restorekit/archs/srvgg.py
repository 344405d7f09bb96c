"""SRVGGNetCompact: Real-ESRGAN's compact VGG-style network (realesr-general-x4v3, animevideov3).

All layers sit in one ``nn.ModuleList`` called ``body``, conv and activation alternating::

    body.0.{weight,bias}          conv [num_feat, num_in_ch, 3, 3]
    body.1.weight                 PReLU [num_feat] (only with act_type 'prelu')
    body.2k.{weight,bias}         conv [num_feat, num_feat, 3, 3], k = 1..num_conv
    body.2k+1.weight              PReLU
    body.2(num_conv+1).{weight,bias}  conv [num_out_ch·upscale², num_feat, 3, 3]

The last conv's output is pixel-shuffled and added to the nearest-upsampled input, so the
network learns a residual. ReLU/LeakyReLU have no weights, so those variants only have convs at
the even indices and the activation cannot be read back from a checkpoint.
"""

from __future__ import annotations

from typing import Any, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers.keys import (
    StateDict,
    child_indices,
    only_prefixes,
    shape_of,
    split_pixel_shuffle,
)
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

ActType = Literal["relu", "prelu", "leakyrelu"]


def _info(kw: dict[str, Any]) -> ArchInfo:
    return ArchInfo("restoration", kw["num_in_ch"], kw["num_out_ch"], scale=kw["upscale"])


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    raise ConfigError(f"act_type: expected 'relu', 'prelu' or 'leakyrelu', got {act_type!r}")


@ARCHS.register("SRVGGNetCompact", info=_info)
class SRVGGNetCompact(nn.Module):
    """Plain conv stack on the LR image, one pixel shuffle at the end, nearest-upsampled skip.

    Args:
        num_in_ch / num_out_ch: image channels (the skip needs them equal).
        num_feat: channels of every body conv.
        num_conv: body convs between the first and the last conv (16 or 32 officially).
        upscale: pixel-shuffle factor of the last layer (any positive integer).
        act_type: 'prelu' (all official releases), 'leakyrelu' (slope 0.1) or 'relu'.
    """


    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: ActType = "prelu",
    ) -> None:
        super().__init__()
        if num_in_ch != num_out_ch:
            raise ConfigError(
                f"num_out_ch: SRVGGNetCompact adds the upsampled input to its output, so it must "
                f"equal num_in_ch={num_in_ch}, got {num_out_ch}"
            )
        self.scale = upscale
        self.upscale = upscale
        self.act_type = act_type
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """SRVGGNetCompact kwargs from a Real-ESRGAN state dict, or ``None`` if the keys are not its.

    ``act_type`` is 'prelu' when PReLU weights (1-D ``body.<odd>.weight``) are present. ReLU and
    LeakyReLU leave no trace in the weights; every official release (general-x4v3,
    animevideov3, the v2 animevideo xsx2/xsx4) is PReLU, so a PReLU-free checkpoint is
    self-trained and we assume 'leakyrelu', the other non-default choice in Real-ESRGAN's code.
    Our own exports carry the real value in their metadata and never need this guess.
    """
    sd = state_dict
    if not only_prefixes(sd, ("body",)):
        return None
    indices = child_indices(sd, "body")
    convs = [i for i in indices if shape_of(sd, f"body.{i}.weight", 4) is not None]
    prelus = [i for i in indices if shape_of(sd, f"body.{i}.weight", 1) is not None]
    if len(convs) < 2 or convs != list(range(0, 2 * len(convs), 2)):
        return None
    if len(convs) + len(prelus) != len(indices):
        return None
    first = shape_of(sd, "body.0.weight", 4)
    last = shape_of(sd, f"body.{convs[-1]}.weight", 4)
    assert first is not None and last is not None  # both are in convs
    num_feat, num_in_ch = first[0], first[1]
    split = split_pixel_shuffle(last[0], num_in_ch)
    if split is None:
        return None
    num_out_ch, upscale = split
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
        "num_feat": num_feat,
        "num_conv": len(convs) - 2,
        "upscale": upscale,
        "act_type": "prelu" if prelus else "leakyrelu",
    }

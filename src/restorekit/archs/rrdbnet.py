"""RRDBNet: the ESRGAN generator (Wang et al., 2018) as in BasicSR's ``rrdbnet_arch``.

Keys (releases ``ESRGAN_SRx4_DF2KOST_official``, ``RealESRGAN_x4plus``, ``RealESRGAN_x2plus``,
``RealESRGAN_x4plus_anime_6B``)::

    conv_first.{weight,bias}                      [num_feat, num_in_ch·k, 3, 3], k = 1, 4, 16
    body.<i>.rdb{1,2,3}.conv{1..5}.{weight,bias}  conv_j: [grow or num_feat, num_feat + (j-1)·grow]
    conv_body, conv_up1, conv_up2, conv_hr        [num_feat, num_feat, 3, 3]
    conv_last.{weight,bias}                       [num_out_ch, num_feat, 3, 3]

The trunk always upsamples ×4 (two nearest-neighbour ×2 stages). Real-ESRGAN's ×2 and ×1 models
first pixel-unshuffle the input by 2 or 4, which is why their ``conv_first`` sees 4× or 16× the
image channels; ``scale`` selects that front end.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers import default_init_weights, make_layer, pixel_unshuffle
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, only_prefixes, shape_of
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

_PREFIXES = ("conv_first", "body", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")
# pixel-unshuffle factor in front of the ×4 trunk, per output scale
_UNSHUFFLE = {4: 1, 2: 2, 1: 4}


def _info(kw: dict[str, Any]) -> ArchInfo:
    # an unsupported scale has no unshuffle factor; the constructor reports it as a ConfigError
    multiple = _UNSHUFFLE.get(kw["scale"], 1)
    return ArchInfo(
        "restoration", kw["num_in_ch"], kw["num_out_ch"], scale=kw["scale"], size_multiple=multiple
    )


class ResidualDenseBlock(nn.Module):
    """Five densely connected convs; the residual is scaled by 0.2 (ESRGAN's stabiliser)."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        default_init_weights([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, outer residual scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


@ARCHS.register("RRDBNet", info=_info)
class RRDBNet(nn.Module):
    """ESRGAN / Real-ESRGAN generator.

    Args:
        num_in_ch / num_out_ch: image channels.
        scale: 4, 2 or 1 (×2/×1 unshuffle the input by 2/4; its sides must be divisible by that).
        num_feat: trunk channels (64).
        num_block: RRDB blocks (23; 6 for the anime model).
        num_grow_ch: growth channels of the dense blocks (32).
    """

    # input sides must be multiples of this (the pixel-unshuffle factor); tiled inference pads
    size_multiple: int = 1

    def __init__(
        self,
        num_in_ch: int,
        num_out_ch: int,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in _UNSHUFFLE:
            raise ConfigError(f"scale: RRDBNet supports 1, 2 or 4, got {scale}")
        self.scale = scale
        self.unshuffle = _UNSHUFFLE[scale]
        self.size_multiple = self.unshuffle
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = make_layer(RRDB, num_block, num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        feat = pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """RRDBNet kwargs from a BasicSR-layout state dict, or ``None`` if the keys are not its.

    ``scale`` comes from how many times more channels ``conv_first`` sees than ``conv_last``
    produces (16 → ×1, 4 → ×2, otherwise ×4), i.e. assuming equal image channels in and out as
    in every official release.
    """
    sd = state_dict
    first = shape_of(sd, "conv_first.weight", 4)
    last = shape_of(sd, "conv_last.weight", 4)
    grow = shape_of(sd, "body.0.rdb1.conv1.weight", 4)
    if not only_prefixes(sd, _PREFIXES) or first is None or last is None or grow is None:
        return None
    if "conv_up1.weight" not in sd or "conv_up2.weight" not in sd:
        return None
    blocks = child_indices(sd, "body")
    if not is_consecutive(blocks):
        return None
    num_feat, first_in = first[0], first[1]
    num_out_ch = last[0]
    scale = 4
    for candidate in (1, 2):
        k = _UNSHUFFLE[candidate] ** 2
        if first_in == num_out_ch * k:
            scale = candidate
            break
    return {
        "num_in_ch": first_in // _UNSHUFFLE[scale] ** 2,
        "num_out_ch": num_out_ch,
        "scale": scale,
        "num_feat": num_feat,
        "num_block": len(blocks),
        "num_grow_ch": grow[0],
    }

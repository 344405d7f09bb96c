"""EDSR (Lim et al., 2017, "Enhanced Deep Residual Networks for Single Image Super-Resolution").

Layout and key names follow BasicSR's ``edsr_arch`` so its converted official releases
(``EDSR_Mx{2,3,4}_f64b16_DIV2K_official``, ``EDSR_Lx{2,3,4}_f256b32_DIV2K_official``) load with
``strict=True``::

    conv_first.{weight,bias}                  [num_feat, num_in_ch, 3, 3]
    body.<i>.conv{1,2}.{weight,bias}          ResidualBlockNoBN, i < num_block
    conv_after_body.{weight,bias}
    upsample.<0,2,…>.{weight,bias}            [4·num_feat] per ×2 stage, or [9·num_feat] for ×3
    conv_last.{weight,bias}                   [num_out_ch, num_feat, 3, 3]

Inputs are in [0, 1]; like BasicSR the network subtracts ``rgb_mean`` and multiplies by
``img_range`` (255: the original was trained on [0, 255] pixels) and undoes both at the end.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers import (
    DIV2K_RGB_MEAN,
    ResidualBlockNoBN,
    Upsample,
    default_mean,
    make_layer,
    mean_tensor,
)
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, only_prefixes, shape_of
from restorekit.registry import ARCHS

_PREFIXES = ("conv_first", "body", "conv_after_body", "upsample", "conv_last")


def _info(kw: dict[str, Any]) -> ArchInfo:
    return ArchInfo("restoration", kw["num_in_ch"], kw["num_out_ch"], scale=kw["upscale"])


@ARCHS.register("EDSR", info=_info)
class EDSR(nn.Module):
    """EDSR: conv → residual blocks (no BN) → conv, global skip, sub-pixel upsampler.

    Args:
        num_in_ch / num_out_ch: image channels in and out.
        num_feat: feature channels (64 for the baseline "M", 256 for the large "L" model).
        num_block: residual blocks (16 for M, 32 for L).
        upscale: 2^n or 3.
        res_scale: residual scaling inside each block (0.1 for L, which is unstable without it).
        img_range: the pixel range the network was trained on (inputs are multiplied by it).
        rgb_mean: per-channel mean subtracted before (and added after) the network, in [0, 1].
    """


    def __init__(
        self,
        num_in_ch: int,
        num_out_ch: int,
        num_feat: int = 64,
        num_block: int = 16,
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
            ResidualBlockNoBN, num_block, num_feat=num_feat, res_scale=res_scale, pytorch_init=True
        )
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        feat = self.conv_first(x)
        res = self.conv_after_body(self.body(feat)) + feat
        out = self.conv_last(self.upsample(res))
        return out / self.img_range + mean


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """EDSR kwargs from a BasicSR-layout state dict, or ``None`` if the keys are not EDSR's.

    ``res_scale`` is not stored in the weights: it is 0.1 for the official large model
    (num_feat 256, num_block 32) and 1 otherwise. ``img_range``/``rgb_mean`` are the defaults.
    """
    sd = state_dict
    first = shape_of(sd, "conv_first.weight", 4)
    last = shape_of(sd, "conv_last.weight", 4)
    if (
        not only_prefixes(sd, _PREFIXES)
        or first is None
        or last is None
        or "conv_after_body.weight" not in sd
    ):
        return None
    num_feat, num_in_ch = first[0], first[1]
    num_out_ch = last[0]
    blocks = child_indices(sd, "body")
    if blocks and not is_consecutive(blocks):
        return None
    num_block = len(blocks)

    ups = child_indices(sd, "upsample")
    if not is_consecutive(ups, 0, 2):
        return None
    widths = [shape_of(sd, f"upsample.{i}.weight", 4) for i in ups]
    if len(widths) == 1 and widths[0] is not None and widths[0][0] == 9 * num_feat:
        upscale = 3
    elif all(w is not None and w[0] == 4 * num_feat for w in widths):
        upscale = 2 ** len(widths)
    else:
        return None
    large = num_feat == 256 and num_block == 32
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
        "num_feat": num_feat,
        "num_block": num_block,
        "upscale": upscale,
        "res_scale": 0.1 if large else 1.0,
        "img_range": 255.0,
        "rgb_mean": default_mean(num_in_ch, num_out_ch),
    }

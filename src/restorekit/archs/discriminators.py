"""Discriminators of SRGAN/ESRGAN (VGG-style) and Real-ESRGAN (U-Net with spectral norm).

Key layouts are BasicSR's ``discriminator_arch`` and Real-ESRGAN's, so their ``net_d``
checkpoints load by key (e.g. ``RealESRGAN_x4plus_netD.pth``)::

    VGGStyleDiscriminator(num_in_ch, num_feat=F, input_size=128|256)
      conv0_0.{weight,bias}                         [F, in, 3, 3]
      conv{i}_{0,1}.weight (no bias), bn{i}_{0,1}.* i = 0..4 (5 with input_size 256; no bn0_0)
      linear1.{weight,bias} [100, 8F·4·4], linear2.{weight,bias} [1, 100]

    UNetDiscriminatorSN(num_in_ch, num_feat=F, skip_connection=True)
      conv0.{weight,bias}, conv9.{weight,bias}      plain convs
      conv1..conv8.{weight_orig, weight_u, weight_v}  spectral-normalised, no bias
      (weight_u: [out], weight_v: [in·k·k]: the power-iteration vectors of torch's spectral_norm)

Spectral normalisation is torch's ``nn.utils.spectral_norm`` (the hook-based one that Real-ESRGAN
uses), because it is what produces exactly those three keys; the power-iteration vectors are
buffers, so they are saved with the network and a resumed run continues the same iteration.

The VGG-style network ends in fully connected layers sized for a 4×4 map, so it only accepts
``input_size`` × ``input_size`` images (the adversarial task checks the training patch size
against it when the config is read); the U-Net accepts any size divisible by 8 and scores every
pixel. Their ``ArchInfo`` (``purpose="discriminator"``, declared at registration) is how generic
code (tests, export, inference) tells them apart from restoration networks.
"""

from __future__ import annotations

from typing import Any, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers.keys import StateDict, shape_of
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS


def _vgg_style_info(kw: dict[str, Any]) -> ArchInfo:
    """One logit per image of exactly ``input_size``², so tiles would be meaningless."""
    return ArchInfo("discriminator", kw["num_in_ch"], 1, input_size=kw["input_size"], tileable=False)


def _unet_info(kw: dict[str, Any]) -> ArchInfo:
    """A logit per pixel at the input's size; sides divisible by 8 (three ×2 stages)."""
    return ArchInfo("discriminator", kw["num_in_ch"], 1, size_multiple=8, tileable=False)


@ARCHS.register("VGGStyleDiscriminator", info=_vgg_style_info)
class VGGStyleDiscriminator(nn.Module):
    """Strided conv + BatchNorm stages down to 4×4, then two linear layers → one logit per image.

    Args:
        num_in_ch: image channels.
        num_feat: channels of the first stage (doubled per stage up to 8×).
        input_size: 128 (five stride-2 stages) or 256 (six).
    """


    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: Literal[128, 256] = 128) -> None:
        super().__init__()
        if input_size not in (128, 256):
            raise ConfigError(f"input_size: VGGStyleDiscriminator supports 128 or 256, got {input_size}")
        self.input_size = input_size
        widths = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8]
        if input_size == 256:
            widths.append(num_feat * 8)
        self.num_stages = len(widths)
        prev = num_in_ch
        for i, width in enumerate(widths):
            # stage i: a 3×3 conv (with bias and no BN only in stage 0), then a 4×4 stride-2 conv
            if i == 0:
                self.conv0_0 = nn.Conv2d(num_in_ch, width, 3, 1, 1, bias=True)
            else:
                setattr(self, f"conv{i}_0", nn.Conv2d(prev, width, 3, 1, 1, bias=False))
                setattr(self, f"bn{i}_0", nn.BatchNorm2d(width, affine=True))
            setattr(self, f"conv{i}_1", nn.Conv2d(width, width, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(width, affine=True))
            prev = width
        self.linear1 = nn.Linear(num_feat * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGStyleDiscriminator(input_size={self.input_size}) needs {self.input_size}×"
                f"{self.input_size} inputs, got {tuple(x.shape[-2:])}; set the training patch size "
                "(gt_size) to match"
            )
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, self.num_stages):
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)


@ARCHS.register("UNetDiscriminatorSN", info=_unet_info)
class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator: per-pixel realness logits, spectral norm on inner convs.

    Args:
        num_in_ch: image channels.
        num_feat: channels of the outer level (2× and 4× and 8× going down).
        skip_connection: add encoder features to the decoder (the released models do).
    """

    size_multiple = 8  # three ×2 down/up stages

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        sn = nn.utils.spectral_norm
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        # encoder: three stride-2 4×4 convs
        self.conv1 = sn(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = sn(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = sn(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        # decoder: bilinear ×2 then a 3×3 conv, three times
        self.conv4 = sn(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = sn(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = sn(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        # two extra convs and the logit map
        self.conv7 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(
                f"UNetDiscriminatorSN needs sides divisible by 8 (three ×2 down/up stages), got "
                f"{tuple(x.shape[-2:])}"
            )

        def act(t: Tensor) -> Tensor:
            return F.leaky_relu(t, negative_slope=0.2, inplace=True)

        def up(t: Tensor) -> Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)


def recognize_vgg_style(state_dict: StateDict) -> dict[str, Any] | None:
    """VGGStyleDiscriminator kwargs from a state dict, or ``None`` if the keys are not its."""
    first = shape_of(state_dict, "conv0_0.weight", 4)
    lin = shape_of(state_dict, "linear1.weight", 2)
    if first is None or lin is None or "linear2.weight" not in state_dict:
        return None
    size = 256 if "conv5_0.weight" in state_dict else 128
    return {"num_in_ch": first[1], "num_feat": first[0], "input_size": size}


def recognize_unet_sn(state_dict: StateDict) -> dict[str, Any] | None:
    """UNetDiscriminatorSN kwargs from a state dict, or ``None`` if the keys are not its.

    ``skip_connection`` changes no key, so the released default (True) is returned.
    """
    first = shape_of(state_dict, "conv0.weight", 4)
    if first is None or "conv1.weight_orig" not in state_dict or "conv9.weight" not in state_dict:
        return None
    return {"num_in_ch": first[1], "num_feat": first[0], "skip_connection": True}

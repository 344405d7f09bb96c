"""GFPGANv1 (Wang et al., 2021, "Towards Real-World Blind Face Restoration with Generative Facial
Prior"), the paper model, and its facial-component discriminator, in GFPGAN's layout.

Arguments, keys and forward semantics are ``gfpgan/archs/gfpganv1_arch.py``; the release
``GFPGANv1.pth`` is ``GFPGANv1(out_size=512, num_style_feat=512, channel_multiplier=1,
decoder_load_path=None, fix_decoder=True, num_mlp=8, input_is_latent=True, different_w=True,
narrow=1, sft_half=True)``. BasicSR's compiled ops are replaced by ``layers.stylegan2_ops``,
so it runs on any device without a CUDA compiler::

    conv_body_first.{0.weight,1.bias}          1×1 from RGB (U-Net widths: StyleGAN2's × narrow/2)
    conv_body_down.{0..L-3}.{conv1,conv2,skip}  ResBlocks ÷2 down to 4×4
    final_conv.{0.weight,1.bias}
    conv_body_up.{0..L-3}.{conv1, conv2.{weight, activation.bias}, skip.weight}  ResUpBlocks ×2
    toRGB.{0..L-3}.{weight,bias}                intermediate RGB (the pyramid loss)
    final_linear.{weight,bias}                  [(2L-2)·F if different_w else F, C(4)·16]
    stylegan_decoder.*                          a StyleGAN2Generator (see archs/stylegan2.py)
    condition_{scale,shift}.{0..L-3}.{0,2}.{weight,bias}  SFT convs (out C or 2C: sft_half)

GFPGAN's ``GFPGANBilinear`` has exactly these keys and shapes (it resamples bilinearly instead
of with the FIR kernel); no weights for it were released, so a file of this layout is read as
GFPGANv1. ``GFPGANv1Clean`` differs (plain convs: ``conv_body_first.weight``) and is rejected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, only_prefixes, shape_of
from restorekit.archs.layers.stylegan2_ops import (
    ConvLayer,
    EqualConv2d,
    EqualLinear,
    FusedLeakyReLU,
    ResBlock,
    ScaledLeakyReLU,
)
from restorekit.archs.stylegan2 import (
    GENERATOR_PREFIXES,
    RESAMPLE_KERNEL,
    StyleGAN2Generator,
    log2_size,
    recognize_generator_layout,
    stylegan2_channels,
)
from restorekit.errors import WeightsError
from restorekit.registry import ARCHS
from restorekit.weights import load_into, read_state_dict


class StyleGAN2GeneratorSFT(StyleGAN2Generator):
    """StyleGAN2 generator whose features are modulated by spatial scale/shift maps (SFT).

    ``sft_half``: modulate only the second half of the channels (the first half stays the
    prior's own features).
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: int = 2,
        resample_kernel: Sequence[int] = RESAMPLE_KERNEL,
        lr_mlp: float = 0.01,
        narrow: float = 1,
        sft_half: bool = False,
    ) -> None:
        super().__init__(
            out_size, num_style_feat, num_mlp, channel_multiplier, resample_kernel, lr_mlp, narrow
        )
        self.sft_half = sft_half

    def forward(  # type: ignore[override]  # GFPGAN's signature: conditions come second
        self,
        styles: Sequence[Tensor],
        conditions: Sequence[Tensor],
        input_is_latent: bool = False,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
        truncation: float = 1,
        truncation_latent: Tensor | None = None,
        inject_index: int | None = None,
        return_latents: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """``conditions``: ``[scale_8, shift_8, scale_16, shift_16, …]``; returns ``(image, latent|None)``."""
        latent = self.style_latents(styles, input_is_latent, truncation, truncation_latent, inject_index)
        image = self.synthesize(latent, self.layer_noise(noise, randomize_noise), conditions, self.sft_half)
        return image, (latent if return_latents else None)


class ConvUpLayer(nn.Module):
    """Bilinear ×2 upsampling, then an equalised conv, then [bias + LReLU | scaled LReLU]."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        bias_init_val: float = 0,
        activate: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding = stride, padding
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias: nn.Parameter | None = None
        if bias and not activate:
            self.bias = nn.Parameter(torch.full((out_channels,), float(bias_init_val)))
        self.activation: nn.Module | None = None
        if activate:
            self.activation = FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        out = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        out = F.conv2d(out, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)
        return out if self.activation is None else self.activation(out)


class ResUpBlock(nn.Module):
    """Decoder residual block: 3×3 conv, bilinear-×2 3×3 conv, bilinear-×2 1×1 skip, sum / √2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, bias=True, activate=True)
        self.conv2 = ConvUpLayer(in_channels, out_channels, 3, stride=1, padding=1, bias=True, activate=True)
        self.skip = ConvUpLayer(in_channels, out_channels, 1, bias=False, activate=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


def _sft_branch(channels: int, out_channels: int, last_bias: float) -> nn.Sequential:
    return nn.Sequential(
        EqualConv2d(channels, channels, 3, stride=1, padding=1, bias=True, bias_init_val=0),
        ScaledLeakyReLU(0.2),
        EqualConv2d(channels, out_channels, 3, stride=1, padding=1, bias=True, bias_init_val=last_bias),
    )


def _gfpgan_info(kw: dict[str, Any]) -> ArchInfo:
    """An aligned ``out_size``² face crop in [-1, 1] to its restoration; a whole face, never tiles.
    Not channels_last as a module: the decoder's 5-D modulated-conv weights refuse that format
    (channels-last *inputs* work)."""
    size = kw["out_size"]
    return ArchInfo(
        "face", 3, 3, input_size=size, value_range=(-1, 1), supports_channels_last=False, tileable=False
    )


@ARCHS.register("GFPGANv1", info=_gfpgan_info)
class GFPGANv1(nn.Module):
    """U-Net encoder → W+ codes and SFT conditions → StyleGAN2 prior with SFT modulation.

    Args:
        out_size: input and output side (a power of two).
        num_style_feat: style code length of the decoder.
        channel_multiplier / narrow: widths as in StyleGAN2 (the U-Net uses half of them).
        resample_kernel: FIR kernel of the StyleGAN2 blurs.
        decoder_load_path: a local StyleGAN2 weights file for the decoder (``params_ema``
            first), loaded strictly at construction; ``None`` keeps the random init.
        fix_decoder: freeze the decoder's parameters (``requires_grad = False``), as GFPGAN
            trains with its prior fixed.
        num_mlp / lr_mlp: the decoder's mapping network (unused with ``input_is_latent``).
        input_is_latent: the encoder's codes are w (skip the mapping MLP); the release: True.
        different_w: one code per decoder layer (W+) instead of one for all.
        sft_half: SFT modulates half of the decoder's channels.
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        channel_multiplier: int = 1,
        resample_kernel: Sequence[int] = RESAMPLE_KERNEL,
        decoder_load_path: str | None = None,
        fix_decoder: bool = True,
        num_mlp: int = 8,
        lr_mlp: float = 0.01,
        input_is_latent: bool = False,
        different_w: bool = False,
        narrow: float = 1,
        sft_half: bool = False,
    ) -> None:
        super().__init__()
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.num_style_feat = num_style_feat
        self.log_size = log2_size(out_size, "GFPGANv1")
        ch = stylegan2_channels(channel_multiplier, narrow * 0.5)  # the U-Net: half the widths
        kern = tuple(resample_kernel)
        self.conv_body_first = ConvLayer(3, ch[out_size], 1, bias=True, activate=True)
        cin = ch[out_size]
        self.conv_body_down = nn.ModuleList()
        for log in range(self.log_size, 2, -1):
            self.conv_body_down.append(ResBlock(cin, ch[2 ** (log - 1)], kern))
            cin = ch[2 ** (log - 1)]
        self.final_conv = ConvLayer(cin, ch[4], 3, bias=True, activate=True)
        cin = ch[4]
        self.conv_body_up = nn.ModuleList()
        for log in range(3, self.log_size + 1):
            self.conv_body_up.append(ResUpBlock(cin, ch[2**log]))
            cin = ch[2**log]
        self.toRGB = nn.ModuleList(
            EqualConv2d(ch[2**log], 3, 1, stride=1, padding=0, bias=True)
            for log in range(3, self.log_size + 1)
        )
        codes = (self.log_size * 2 - 2) * num_style_feat if different_w else num_style_feat
        self.final_linear = EqualLinear(ch[4] * 4 * 4, codes, bias=True, bias_init_val=0, lr_mul=1)
        self.stylegan_decoder = StyleGAN2GeneratorSFT(
            out_size, num_style_feat, num_mlp, channel_multiplier, kern, lr_mlp, narrow, sft_half
        )
        if decoder_load_path:
            self._load_decoder(decoder_load_path)
        if fix_decoder:
            for param in self.stylegan_decoder.parameters():
                param.requires_grad = False
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        for log in range(3, self.log_size + 1):
            c = ch[2**log]
            sft_out = c if sft_half else c * 2
            self.condition_scale.append(_sft_branch(c, sft_out, last_bias=1))
            self.condition_shift.append(_sft_branch(c, sft_out, last_bias=0))

    def _load_decoder(self, path: str) -> None:
        """The StyleGAN2 prior, strictly (GFPGAN loads ``['params_ema']`` with ``strict=True``)."""
        where = "network_g.decoder_load_path"
        try:
            state, _ = read_state_dict(path)
            load_into(self.stylegan_decoder, state, "strict", path)
        except WeightsError as exc:
            raise WeightsError(f"{where}: {exc}") from None

    def forward(
        self,
        x: Tensor,
        return_latents: bool = False,
        return_rgb: bool = True,
        randomize_noise: bool = True,
        **kwargs: Any,
    ) -> tuple[Tensor, list[Tensor]]:
        """``(restored face, intermediate RGB images 8…out_size/2·2 px if return_rgb else [])``.

        Extra keyword arguments are ignored, as in GFPGAN (its inference passes ``weight``).
        """
        conditions: list[Tensor] = []
        skips: list[Tensor] = []
        out_rgbs: list[Tensor] = []
        feat = self.conv_body_first(x)
        for down in self.conv_body_down:
            feat = down(feat)
            skips.insert(0, feat)
        feat = self.final_conv(feat)
        style_code = self.final_linear(feat.reshape(feat.size(0), -1))
        if self.different_w:
            style_code = style_code.reshape(style_code.size(0), -1, self.num_style_feat)
        for i, up in enumerate(self.conv_body_up):
            feat = up(feat + skips[i])
            conditions.append(self.condition_scale[i](feat))
            conditions.append(self.condition_shift[i](feat))
            if return_rgb:
                out_rgbs.append(self.toRGB[i](feat))
        image, _ = self.stylegan_decoder(
            [style_code],
            conditions,
            return_latents=return_latents,
            input_is_latent=self.input_is_latent,
            randomize_noise=randomize_noise,
        )
        return image, out_rgbs


_COMPONENT_CONVS = ((3, 64, False), (64, 128, True), (128, 128, False), (128, 256, True), (256, 256, False))


@ARCHS.register(
    "FacialComponentDiscriminator",
    info=ArchInfo("discriminator", 3, 1, value_range=(-1, 1), tileable=False),
)
class FacialComponentDiscriminator(nn.Module):
    """GFPGAN's VGG-style discriminator for eye and mouth crops (fixed widths, any input size).

    ``forward(x, return_feats)`` → ``(logit map (b, 1, ~h/4, ~w/4), [features after conv3 and
    conv5] if return_feats else None)``; the features feed the component style (Gram) loss.
    """

    def __init__(self) -> None:
        super().__init__()
        for i, (cin, cout, down) in enumerate(_COMPONENT_CONVS, start=1):
            self.add_module(
                f"conv{i}", ConvLayer(cin, cout, 3, down, RESAMPLE_KERNEL, bias=True, activate=True)
            )
        self.final_conv = ConvLayer(256, 1, 3, bias=True, activate=False)

    def forward(
        self, x: Tensor, return_feats: bool = False, **kwargs: Any
    ) -> tuple[Tensor, list[Tensor] | None]:
        feat = self.conv3(self.conv2(self.conv1(x)))
        feats = [feat.clone()] if return_feats else []
        feat = self.conv5(self.conv4(feat))
        if return_feats:
            feats.append(feat.clone())
        return self.final_conv(feat), (feats if return_feats else None)


# ------------------------------------------------------------------ recognition
_PREFIXES = (
    "conv_body_first",
    "conv_body_down",
    "final_conv",
    "conv_body_up",
    "toRGB",
    "final_linear",
    "stylegan_decoder",
    "condition_scale",
    "condition_shift",
)
_DECODER = "stylegan_decoder."


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """``GFPGANv1`` kwargs from a GFPGAN-layout state dict (``GFPGANv1.pth``), else ``None``.

    The decoder's keys give ``out_size``, ``num_style_feat``, ``num_mlp``, ``narrow`` and
    ``channel_multiplier`` (1, GFPGANv1's default, below 64 px where it changes nothing);
    ``final_linear`` gives ``different_w`` and the SFT convs ``sft_half``. Not stored, so the
    release's values are assumed: ``input_is_latent`` True, ``resample_kernel`` (1, 3, 3, 1),
    ``lr_mlp`` 0.01 (unused with latent input), ``fix_decoder`` True (training only).
    """
    sd = state_dict
    if not only_prefixes(sd, _PREFIXES) or shape_of(sd, "conv_body_first.0.weight", 4) is None:
        return None  # GFPGANv1Clean's convs are plain: conv_body_first.weight
    decoder = {k[len(_DECODER) :]: v for k, v in sd.items() if k.startswith(_DECODER)}
    if not only_prefixes(decoder, GENERATOR_PREFIXES):
        return None
    gen = recognize_generator_layout(decoder)
    linear = shape_of(sd, "final_linear.weight", 2)
    scale_in = shape_of(sd, "condition_scale.0.0.weight", 4)
    scale_out = shape_of(sd, "condition_scale.0.2.weight", 4)
    if gen is None or linear is None or scale_in is None or scale_out is None:
        return None
    if not is_consecutive(child_indices(sd, "conv_body_up")):
        return None
    log_size = int(math.log2(gen["out_size"]))
    feat = gen["num_style_feat"]
    if linear[0] not in (feat, (2 * log_size - 2) * feat):
        return None
    return {
        "out_size": gen["out_size"],
        "num_style_feat": feat,
        "channel_multiplier": 1 if gen["channel_multiplier"] is None else gen["channel_multiplier"],
        "resample_kernel": RESAMPLE_KERNEL,
        "decoder_load_path": None,
        "fix_decoder": True,
        "num_mlp": gen["num_mlp"],
        "lr_mlp": 0.01,
        "input_is_latent": True,
        "different_w": linear[0] != feat,
        "narrow": gen["narrow"],
        "sft_half": scale_out[0] == scale_in[0],
    }


def recognize_component_discriminator(state_dict: StateDict) -> dict[str, Any] | None:
    """``FacialComponentDiscriminator`` (no arguments) from its keys, else ``None``."""
    sd = state_dict
    names = [f"conv{i}" for i in range(1, 6)] + ["final_conv"]
    if not only_prefixes(sd, names) or shape_of(sd, "conv1.0.weight", 4) != (64, 3, 3, 3):
        return None
    return {} if shape_of(sd, "final_conv.0.weight", 4) == (1, 256, 3, 3) else None


#: detect.UNSTORED entry: arguments that change the output but are not in the weights.
UNSTORED = ("input_is_latent", "resample_kernel")

"""StyleGAN2 generator and discriminator (Karras et al., 2020) in BasicSR's layout, plain PyTorch.

Arguments, keys and forward semantics are BasicSR's ``stylegan2_arch`` (the GFPGAN prior
``StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth`` = ``StyleGAN2Generator(512, 512, 8,
channel_multiplier=1)`` under ``params_ema``; GFPGAN's global D = ``StyleGAN2Discriminator(512,
channel_multiplier=1)``); the compiled ops are the pure-torch ones of ``layers.stylegan2_ops``::

    StyleGAN2Generator (L = log2(out_size), C(r) = channels at resolution r)
      style_mlp.{1..num_mlp}.{weight,bias}             [F, F]   (index 0: NormStyleCode)
      constant_input.weight                            [1, C(4), 4, 4]
      style_conv1.{weight [1], activate.bias, modulated_conv.{weight, modulation.*}}
      to_rgb1.{bias [1,3,1,1], modulated_conv.*}
      style_convs.{0..2L-5}.*   (even: ×2 upsampling)  to_rgbs.{0..L-3}.*
      noises.noise{0..2L-4}                            [1, 1, r, r] (persistent buffers)
    StyleGAN2Discriminator
      conv_body.0.{0.weight, 1.bias}  (1×1 from RGB), conv_body.{1..L-2}.{conv1, conv2, skip}
      final_conv.{0.weight, 1.bias} [C(4), C(4)+1, 3, 3], final_linear.{0,1}.{weight,bias}

``C(r)`` is ``512·narrow`` up to 32 px and ``(256, 128, 64, 32, 16)·channel_multiplier·narrow``
at 64…1024 px. The FIR kernels are not stored (BasicSR keeps them as plain attributes), so
``resample_kernel`` is never read back from weights.

Two ways to call the generator: BasicSR's ``G([z, ...], input_is_latent, noise, ...)`` →
``(image, latents or None)`` (what GFPGAN and BasicSR's StyleGAN2 model use), and restorekit's
generator contract ``G(z, generator)`` → image, with the layer noise drawn from ``generator``
(what the generation task and ``restorekit generate`` call). Images are in [-1, 1].
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, only_prefixes, shape_of
from restorekit.archs.layers.stylegan2_ops import (
    ConstantInput,
    ConvLayer,
    EqualLinear,
    NormStyleCode,
    ResBlock,
    StyleConv,
    ToRGB,
)
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

RESAMPLE_KERNEL = (1, 3, 3, 1)
# channels per resolution at channel_multiplier = narrow = 1 (from 64 px on, × channel_multiplier)
_BASE = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def stylegan2_channels(channel_multiplier: float, narrow: float) -> dict[int, int]:
    """Channels per resolution, truncated to int as BasicSR does (``int(256 * cm * narrow)``)."""
    return {r: int(c * (channel_multiplier if r >= 64 else 1) * narrow) for r, c in _BASE.items()}


def log2_size(out_size: int, what: str) -> int:
    """``log2(out_size)`` for a power of two in 8…1024, else a ConfigError naming ``what``."""
    log = int(math.log2(out_size)) if out_size > 0 else 0
    if 2**log != out_size or not 3 <= log <= 10:
        raise ConfigError(f"{what}: out_size must be a power of two from 8 to 1024, got {out_size}")
    return log


def _generator_info(kw: dict[str, Any]) -> ArchInfo:
    """Latents in, 3-channel images in [-1, 1] out; one image per latent, nothing to tile.
    Not channels_last: the modulated convs' weights are 5-D (``[1, out, in, k, k]``, BasicSR's
    layout), which ``module.to(memory_format=torch.channels_last)`` refuses."""
    f = kw["num_style_feat"]
    return ArchInfo(
        "generator", f, 3, value_range=(-1, 1), latent_dim=f, supports_channels_last=False, tileable=False
    )


def _discriminator_info(kw: dict[str, Any]) -> ArchInfo:
    """One logit per image of exactly ``out_size``² (the final linear layer fixes the size)."""
    return ArchInfo("discriminator", 3, 1, input_size=kw["out_size"], value_range=(-1, 1), tileable=False)


@ARCHS.register("StyleGAN2Generator", info=_generator_info)
class StyleGAN2Generator(nn.Module):
    """StyleGAN2 generator: mapping MLP, constant 4×4 input, modulated convs, skip ToRGBs.

    Args:
        out_size: output side, a power of two (8…1024).
        num_style_feat: length of z and w.
        num_mlp: layers of the mapping network.
        channel_multiplier: width factor from 64 px on (2 = config F, 1 = GFPGAN's prior).
        resample_kernel: 1-D FIR kernel of the up/down-sampling blurs.
        lr_mlp: learning-rate multiplier of the mapping layers (scales their weights at run time).
        narrow: width factor of every resolution.
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
    ) -> None:
        super().__init__()
        self.log_size = log2_size(out_size, type(self).__name__)
        self.num_style_feat = num_style_feat
        mlp: list[nn.Module] = [NormStyleCode()]
        for _ in range(num_mlp):
            mlp.append(EqualLinear(num_style_feat, num_style_feat, lr_mul=lr_mlp, activation="fused_lrelu"))
        self.style_mlp = nn.Sequential(*mlp)
        ch = self.channels = stylegan2_channels(channel_multiplier, narrow)
        kern = tuple(resample_kernel)
        self.constant_input = ConstantInput(ch[4], size=4)
        self.style_conv1 = StyleConv(ch[4], ch[4], 3, num_style_feat, resample_kernel=kern)
        self.to_rgb1 = ToRGB(ch[4], num_style_feat, upsample=False, resample_kernel=kern)
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            side = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, side, side))
        cin = ch[4]
        for log in range(3, self.log_size + 1):
            cout = ch[2**log]
            self.style_convs.append(StyleConv(cin, cout, 3, num_style_feat, True, "upsample", kern))
            self.style_convs.append(StyleConv(cout, cout, 3, num_style_feat, True, None, kern))
            self.to_rgbs.append(ToRGB(cout, num_style_feat, upsample=True, resample_kernel=kern))
            cin = cout

    def make_noise(self) -> list[Tensor]:
        """Fresh noise maps, one per style conv (BasicSR's helper)."""
        device = self.constant_input.weight.device
        return [
            torch.randn(1, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2), device=device)
            for i in range(self.num_layers)
        ]

    def get_latent(self, x: Tensor) -> Tensor:
        return self.style_mlp(x)

    def mean_latent(self, num_latent: int) -> Tensor:
        """The mean w of ``num_latent`` random z (the truncation centre)."""
        z = torch.randn(num_latent, self.num_style_feat, device=self.constant_input.weight.device)
        return self.style_mlp(z).mean(0, keepdim=True)

    def forward(
        self,
        styles: Sequence[Tensor] | Tensor,
        input_is_latent: bool | torch.Generator | None = False,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
        truncation: float = 1,
        truncation_latent: Tensor | None = None,
        inject_index: int | None = None,
        return_latents: bool = False,
    ) -> Any:
        """BasicSR's forward for a list of style codes; restorekit's ``G(z, generator)`` for a tensor.

        Args (BasicSR): ``styles`` one or two (style mixing at ``inject_index``, random if
        None) codes ``(b, F)``, or one ``(b, num_latent, F)`` W+ code; ``input_is_latent``
        skips the mapping MLP; ``noise`` per-layer maps, else random (``randomize_noise``) or
        the stored ``noises`` buffers; ``truncation`` < 1 pulls w toward ``truncation_latent``.
        Returns ``(image, latent if return_latents else None)``.

        With a tensor ``z`` ``(b, F)`` instead (restorekit's generator contract), the second
        argument is an optional ``torch.Generator`` on ``z``'s device that draws the layer noise,
        and only the image is returned.
        """
        if isinstance(styles, Tensor):
            if input_is_latent is not None and not isinstance(input_is_latent, (bool, torch.Generator)):
                raise TypeError("StyleGAN2Generator(z, generator): generator must be a torch.Generator")
            if input_is_latent is True:
                raise TypeError("StyleGAN2Generator: pass styles as a list to use input_is_latent")
            gen = input_is_latent if isinstance(input_is_latent, torch.Generator) else None
            latent = self.style_latents([styles], False, 1, None, None)
            return self.synthesize(latent, [None] * self.num_layers, generator=gen)
        latent = self.style_latents(
            styles, bool(input_is_latent), truncation, truncation_latent, inject_index
        )
        image = self.synthesize(latent, self.layer_noise(noise, randomize_noise))
        return image, (latent if return_latents else None)

    def style_latents(
        self,
        styles: Sequence[Tensor],
        input_is_latent: bool,
        truncation: float,
        truncation_latent: Tensor | None,
        inject_index: int | None,
    ) -> Tensor:
        """Per-layer latents ``(b, num_latent, F)``: mapping, truncation, style mixing."""
        if not input_is_latent:
            styles = [self.style_mlp(s) for s in styles]
        if truncation < 1:
            if truncation_latent is None:
                raise ValueError("StyleGAN2Generator: truncation < 1 needs truncation_latent")
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        if len(styles) == 1:
            s = styles[0]
            return s if s.ndim >= 3 else s.unsqueeze(1).repeat(1, self.num_latent, 1)
        if len(styles) != 2:
            raise ValueError(f"StyleGAN2Generator: expected 1 or 2 style codes, got {len(styles)}")
        if inject_index is None:
            inject_index = random.randint(1, self.num_latent - 1)
        first = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
        second = styles[1].unsqueeze(1).repeat(1, self.num_latent - inject_index, 1)
        return torch.cat([first, second], 1)

    def layer_noise(self, noise: Sequence[Tensor | None] | None, randomize: bool) -> list[Tensor | None]:
        """The noise of each style conv: given, fresh (``None``), or the stored buffers."""
        if noise is not None:
            return list(noise)
        if randomize:
            return [None] * self.num_layers
        return [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

    def synthesize(
        self,
        latent: Tensor,
        noise: Sequence[Tensor | None],
        conditions: Sequence[Tensor] | None = None,
        sft_half: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The synthesis network. ``conditions`` (GFPGAN's SFT): scale/shift pairs applied after
        the upsampling conv of each resolution, to the second half of the channels if ``sft_half``."""
        out = self.constant_input(latent.shape[0])
        out = self.style_conv1(out, latent[:, 0], noise[0], generator)
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for level, to_rgb in enumerate(self.to_rgbs):
            conv_up, conv = self.style_convs[2 * level], self.style_convs[2 * level + 1]
            out = conv_up(out, latent[:, i], noise[i], generator)
            if conditions is not None and i < len(conditions):  # the conditions may have fewer levels
                scale, shift = conditions[i - 1], conditions[i]
                if sft_half:
                    same, sft = torch.split(out, out.size(1) // 2, dim=1)
                    out = torch.cat([same, sft * scale + shift], dim=1)
                else:
                    out = out * scale + shift
            out = conv(out, latent[:, i + 1], noise[i + 1], generator)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip


@ARCHS.register("StyleGAN2Discriminator", info=_discriminator_info)
class StyleGAN2Discriminator(nn.Module):
    """StyleGAN2 residual discriminator with minibatch-stddev, one logit per image.

    Args:
        out_size: input side, a power of two (8…1024); inputs must have exactly this size.
        channel_multiplier / narrow: widths as in ``StyleGAN2Generator``.
        resample_kernel: 1-D FIR kernel of the downsampling blurs.
        stddev_group: group size of the stddev feature; the batch must be a multiple of it
            (or smaller).
    """

    def __init__(
        self,
        out_size: int,
        channel_multiplier: int = 2,
        resample_kernel: Sequence[int] = RESAMPLE_KERNEL,
        stddev_group: int = 4,
        narrow: float = 1,
    ) -> None:
        super().__init__()
        log_size = log2_size(out_size, type(self).__name__)
        ch = stylegan2_channels(channel_multiplier, narrow)
        kern = tuple(resample_kernel)
        body: list[nn.Module] = [ConvLayer(3, ch[out_size], 1, bias=True, activate=True)]
        cin = ch[out_size]
        for log in range(log_size, 2, -1):
            body.append(ResBlock(cin, ch[2 ** (log - 1)], kern))
            cin = ch[2 ** (log - 1)]
        self.conv_body = nn.Sequential(*body)
        self.final_conv = ConvLayer(cin + 1, ch[4], 3, bias=True, activate=True)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 4 * 4, ch[4], activation="fused_lrelu"),
            EqualLinear(ch[4], 1),
        )
        self.stddev_group = stddev_group
        self.stddev_feat = 1

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_body(x)
        b, c, h, w = out.shape
        group = min(b, self.stddev_group)
        if b % group:
            raise ValueError(f"StyleGAN2Discriminator: batch {b} is not a multiple of stddev_group {group}")
        f = self.stddev_feat
        stddev = out.reshape(group, -1, f, c // f, h, w)
        stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8)
        stddev = stddev.mean([2, 3, 4], keepdim=True).squeeze(2).repeat(group, 1, h, w)
        out = self.final_conv(torch.cat([out, stddev], 1))
        return self.final_linear(out.reshape(b, -1))


# ------------------------------------------------------------------ recognition
GENERATOR_PREFIXES = (
    "style_mlp",
    "constant_input",
    "style_conv1",
    "to_rgb1",
    "style_convs",
    "to_rgbs",
    "noises",
)
_D_PREFIXES = ("conv_body", "final_conv", "final_linear")


def _multiplier(width: int, resolution: int, narrow: float) -> int | None:
    """``channel_multiplier`` from the width at ``resolution`` (≥ 64 px), ``None`` below 64 px
    where it changes nothing. Rounded; ``detect`` verifies the whole layout afterwards."""
    if resolution < 64:
        return None
    return max(1, round(width / (_BASE[resolution] * narrow)))


def recognize_generator_layout(sd: StateDict) -> dict[str, Any] | None:
    """Generator arguments read from BasicSR-layout keys, ``channel_multiplier`` ``None`` when
    the model is too small to show it; ``None`` for other layouts.

    GFPGAN's clean generator (``StyleGAN2GeneratorClean``) is rejected: its mapping layers sit
    at odd ``style_mlp`` indices (LeakyReLU modules between them) and its style convs hold
    their bias directly (``style_conv1.bias``) instead of in ``activate``.
    """
    const = shape_of(sd, "constant_input.weight", 4)
    mod = shape_of(sd, "style_conv1.modulated_conv.modulation.weight", 2)
    rgbs = child_indices(sd, "to_rgbs")
    mlp = child_indices(sd, "style_mlp")
    if not only_prefixes(sd, GENERATOR_PREFIXES) or const is None or mod is None or not is_consecutive(rgbs):
        return None
    if (
        "style_conv1.activate.bias" not in sd
        or "style_conv1.bias" in sd
        or (mlp and not is_consecutive(mlp, 1))
    ):
        return None
    log_size = len(rgbs) + 2
    if log_size > 10:
        return None
    narrow = const[1] / 512
    cm = None
    if log_size >= 6:
        w64 = shape_of(sd, "to_rgbs.3.modulated_conv.weight", 5)  # to_rgbs[j] is at 2**(j+3) px
        if w64 is None:
            return None
        cm = _multiplier(w64[2], 64, narrow)
    return {
        "out_size": 2**log_size,
        "num_style_feat": mod[1],
        "num_mlp": len(mlp),
        "channel_multiplier": cm,
        "resample_kernel": RESAMPLE_KERNEL,
        "lr_mlp": 0.01,
        "narrow": int(narrow) if narrow == int(narrow) else narrow,
    }


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """``StyleGAN2Generator`` kwargs from a BasicSR-layout state dict (e.g. GFPGAN's prior under
    ``params_ema``), else ``None``. ``lr_mlp`` (0.01) and ``resample_kernel`` are not stored; below
    64 px ``channel_multiplier`` changes nothing and BasicSR's default 2 is returned."""
    found = recognize_generator_layout(state_dict)
    if found is not None and found["channel_multiplier"] is None:
        found["channel_multiplier"] = 2
    return found


def recognize_discriminator(state_dict: StateDict) -> dict[str, Any] | None:
    """``StyleGAN2Discriminator`` kwargs, else ``None``; ``stddev_group`` (4) and
    ``resample_kernel`` are not stored."""
    sd = state_dict
    first = shape_of(sd, "conv_body.0.0.weight", 4)
    final = shape_of(sd, "final_conv.0.weight", 4)
    body = child_indices(sd, "conv_body")
    if not only_prefixes(sd, _D_PREFIXES) or first is None or final is None or not is_consecutive(body):
        return None
    if shape_of(sd, "final_linear.1.weight", 2) is None or first[1:] != (3, 1, 1):
        return None
    log_size = len(body) + 1  # conv_body.0 is the 1×1 from-RGB conv, then one ResBlock per octave
    if not 3 <= log_size <= 10:
        return None
    narrow = final[0] / 512
    cm = _multiplier(first[0], 2**log_size, narrow)
    return {
        "out_size": 2**log_size,
        "channel_multiplier": 2 if cm is None else cm,
        "resample_kernel": RESAMPLE_KERNEL,
        "stddev_group": 4,
        "narrow": int(narrow) if narrow == int(narrow) else narrow,
    }


#: detect.UNSTORED entries: arguments that change the output but are not in the weights.
UNSTORED_GENERATOR = ("lr_mlp", "resample_kernel")
UNSTORED_DISCRIMINATOR = ("resample_kernel", "stddev_group")

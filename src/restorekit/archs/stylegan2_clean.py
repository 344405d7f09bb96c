"""GFPGAN's "clean" StyleGAN2 generator: plain PyTorch layers, no compiled ops, no FIR blurs.

GFPGAN v1.2-v1.4 use this generator (``gfpgan/archs/stylegan2_clean_arch.py``) as the decoder
of ``GFPGANv1Clean`` (``archs/gfpgan_clean.py``). It differs from BasicSR's StyleGAN2
(``archs/stylegan2.py``) in ways that change both keys and numbers:

* the mapping network is ``nn.Linear`` + ``nn.LeakyReLU(0.2)`` pairs (no equalised learning
  rate, no ``lr_mul``), so its layers sit at the *odd* ``style_mlp`` indices;
* modulation is an ``nn.Linear`` and resampling is bilinear (``align_corners=False``) instead
  of the (1, 3, 3, 1) FIR kernel; a style conv is ``modconv * sqrt(2) + noise + bias`` then a
  plain LeakyReLU, the bias held by the conv itself (``style_conv1.bias``)::

    style_mlp.{1,3,..,2·num_mlp-1}.{weight,bias}        [F, F]   (0: NormStyleCode)
    constant_input.weight                              [1, C(4), 4, 4]
    style_conv1.{weight [1], bias [1,C,1,1], modulated_conv.{weight [1,C,C,3,3], modulation.*}}
    to_rgb1.{bias [1,3,1,1], modulated_conv.{weight [1,3,C,1,1], modulation.*}}
    style_convs.{0..2L-5}.* (even: ×2 upsampling)  to_rgbs.{0..L-3}.*
    noises.noise{0..2L-4}                              [1, 1, r, r] (persistent buffers)

Every constructor argument is visible in those shapes (``channel_multiplier`` only from 64 px
on, where it first changes anything), so ``recognize`` needs no assumptions.

Two ways to call it, as ``StyleGAN2Generator``: GFPGAN's ``G([z, ...], input_is_latent, noise,
...)`` → ``(image, latents or None)``, and restorekit's generator contract ``G(z, generator)``
→ image with the layer noise drawn from ``generator``. Images are in [-1, 1].

fp16 is declared unsafe: GFPGAN's maintainer reports wrong results with ``.half()`` for the
clean architecture and blames the normalisation in this module (TencentARC/GFPGAN#50);
Spandrel also marks GFPGAN half-unsafe (bf16 safe).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, only_prefixes, shape_of
from restorekit.archs.stylegan2 import GENERATOR_PREFIXES, log2_size, stylegan2_channels
from restorekit.registry import ARCHS

SQRT2 = math.sqrt(2)


@torch.no_grad()
def kaiming_init(linear: nn.Linear, a: float, nonlinearity: str, bias_fill: float) -> None:
    """BasicSR's ``default_init_weights`` for one layer (fan-in Kaiming-normal, bias constant);
    nothing on the meta device, where ``detect`` builds models only to compare shapes."""
    if linear.weight.is_meta:
        return
    nn.init.kaiming_normal_(linear.weight, a=a, mode="fan_in", nonlinearity=nonlinearity)
    if linear.bias is not None:
        linear.bias.fill_(bias_fill)


class NormStyleCode(nn.Module):
    """Scale each style code to unit RMS (the mapping network's input normalisation)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    """Per-sample conv whose input channels are scaled by a style (and rows demodulated).

    No bias here (the style conv adds it). ``sample_mode``: ``"upsample"`` / ``"downsample"``
    resamples the input bilinearly by 2 before the conv, ``None`` keeps its size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.sample_mode, self.eps = demodulate, sample_mode, eps
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        kaiming_init(self.modulation, a=0, nonlinearity="linear", bias_fill=1)  # styles start at 1
        fan_in = in_channels * kernel_size**2
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size) / math.sqrt(fan_in)
        )
        self.padding = kernel_size // 2

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        b, c = x.shape[:2]
        weight = self.weight * self.modulation(style).reshape(b, 1, c, 1, 1)  # (b, out, in, k, k)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps)
            weight = weight * demod.reshape(b, self.out_channels, 1, 1, 1)
        weight = weight.reshape(b * self.out_channels, c, self.kernel_size, self.kernel_size)
        if self.sample_mode == "upsample":
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        elif self.sample_mode == "downsample":
            x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        h, w = x.shape[2:]
        # one grouped conv for the whole batch: sample i uses its own weights (group i);
        # reshape, not view, so channels-last inputs work
        out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=self.padding, groups=b)
        return out.reshape(b, self.out_channels, *out.shape[2:])


class StyleConv(nn.Module):
    """Modulated conv ×√2, plus per-pixel noise scaled by a learned ``weight``, plus ``bias``,
    then LeakyReLU(0.2). ``noise=None`` draws fresh noise (from ``generator`` if given)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
    ) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(
            in_channels, out_channels, kernel_size, num_style_feat, demodulate, sample_mode
        )
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(
        self, x: Tensor, style: Tensor, noise: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        out = self.modulated_conv(x, style) * SQRT2
        if noise is None:
            b, _, h, w = out.shape
            noise = out.new_empty(b, 1, h, w).normal_(generator=generator)
        out = out + self.weight * noise + self.bias
        return F.leaky_relu(out, 0.2)


class ToRGB(nn.Module):
    """1×1 modulated conv (not demodulated) to RGB plus bias, added to the upsampled skip."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample:
                skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + skip
        return out


class ConstantInput(nn.Module):
    """The learned 4×4 input of the synthesis network, repeated over the batch."""

    def __init__(self, num_channel: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, num_channel, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.weight.repeat(batch, 1, 1, 1)


def _generator_info(kw: dict[str, Any]) -> ArchInfo:
    """Latents in, 3-channel images in [-1, 1] out; nothing to tile. Not channels_last as a
    module (5-D modulated-conv weights refuse that format); not fp16 (see the module doc)."""
    f = kw["num_style_feat"]
    flags = dict(supports_fp16=False, supports_channels_last=False, tileable=False)
    return ArchInfo("generator", f, 3, value_range=(-1, 1), latent_dim=f, **flags)


@ARCHS.register("StyleGAN2GeneratorClean", info=_generator_info)
class StyleGAN2GeneratorClean(nn.Module):
    """StyleGAN2 generator without custom ops (GFPGAN's clean version).

    Args:
        out_size: output side, a power of two (8…1024).
        num_style_feat: length of z and w.
        num_mlp: Linear + LeakyReLU layers of the mapping network.
        channel_multiplier: width factor from 64 px on (2 in GFPGAN v1.3/v1.4).
        narrow: width factor of every resolution.
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: int = 2,
        narrow: float = 1,
    ) -> None:
        super().__init__()
        self.num_style_feat = num_style_feat
        mlp: list[nn.Module] = [NormStyleCode()]
        for _ in range(num_mlp):
            mlp += [nn.Linear(num_style_feat, num_style_feat, bias=True), nn.LeakyReLU(0.2)]
        self.style_mlp = nn.Sequential(*mlp)
        # initialised after all are built, as GFPGAN does: the same seed gives the same weights
        for layer in self.style_mlp[1::2]:
            kaiming_init(layer, a=0.2, nonlinearity="leaky_relu", bias_fill=0)
        ch = self.channels = stylegan2_channels(channel_multiplier, narrow)
        self.log_size = log2_size(out_size, type(self).__name__)
        self.num_layers = (self.log_size - 2) * 2 + 1  # style convs, each with its noise map
        self.num_latent = self.log_size * 2 - 2  # w codes consumed (convs + to_rgbs, shared)
        self.constant_input = ConstantInput(ch[4], size=4)
        self.style_conv1 = StyleConv(ch[4], ch[4], 3, num_style_feat)
        self.to_rgb1 = ToRGB(ch[4], num_style_feat, upsample=False)
        self.style_convs = nn.ModuleList()  # (created before ``noises``: GFPGAN's key order)
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            side = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, side, side))
        cin = ch[4]
        for log in range(3, self.log_size + 1):
            cout = ch[2**log]
            self.style_convs.append(StyleConv(cin, cout, 3, num_style_feat, sample_mode="upsample"))
            self.style_convs.append(StyleConv(cout, cout, 3, num_style_feat))
            self.to_rgbs.append(ToRGB(cout, num_style_feat, upsample=True))
            cin = cout

    def make_noise(self) -> list[Tensor]:
        """Fresh noise maps, one per style conv (GFPGAN's helper)."""
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
        """GFPGAN's forward for a list of codes; restorekit's ``G(z, generator)`` for a tensor.

        GFPGAN's: ``styles`` one ``(b, F)`` code, two (style mixing: the first for the first
        ``inject_index`` layers, random if None) or one ``(b, num_latent, F)`` W+ code;
        ``input_is_latent`` skips the mapping MLP; ``noise`` per-layer maps, else fresh ones
        (``randomize_noise``) or the stored ``noises`` buffers; ``truncation`` < 1 pulls w
        toward ``truncation_latent``. Returns ``(image, latent if return_latents else None)``.

        With a tensor ``z`` ``(b, F)`` instead, the second argument is an optional
        ``torch.Generator`` on ``z``'s device that draws the layer noise; returns the image.
        """
        if isinstance(styles, Tensor):
            if input_is_latent is True:
                raise TypeError(f"{type(self).__name__}: pass styles as a list to use input_is_latent")
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
        name = type(self).__name__
        if not input_is_latent:
            styles = [self.style_mlp(s) for s in styles]
        if truncation < 1:
            if truncation_latent is None:
                raise ValueError(f"{name}: truncation < 1 needs truncation_latent")
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        if len(styles) == 1:
            s = styles[0]
            return s if s.ndim >= 3 else s.unsqueeze(1).repeat(1, self.num_latent, 1)
        if len(styles) != 2:
            raise ValueError(f"{name}: expected 1 or 2 style codes, got {len(styles)}")
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
        """The synthesis network. ``conditions`` (GFPGAN's SFT): ``[scale_8, shift_8, scale_16,
        …]`` applied after each upsampling conv, to the second half of the channels if
        ``sft_half``; levels beyond the given conditions are left alone (as GFPGAN does)."""
        out = self.constant_input(latent.shape[0])
        out = self.style_conv1(out, latent[:, 0], noise[0], generator)
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for level, to_rgb in enumerate(self.to_rgbs):
            conv_up, conv = self.style_convs[2 * level], self.style_convs[2 * level + 1]
            out = conv_up(out, latent[:, i], noise[i], generator)
            if conditions is not None and i < len(conditions):
                scale, shift = conditions[i - 1], conditions[i]
                if sft_half:  # the first half keeps the prior's own features
                    same, sft = torch.split(out, out.size(1) // 2, dim=1)
                    out = torch.cat([same, sft * scale + shift], dim=1)
                else:
                    out = out * scale + shift
            out = conv(out, latent[:, i + 1], noise[i + 1], generator)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip


# ------------------------------------------------------------------ recognition
def _narrow_candidates(c4: int) -> list[float]:
    """``narrow`` values giving ``int(512 · narrow) == c4``, the short decimal first
    (``0.3`` rather than ``0.298828125`` for 153 channels), the exact ratio last."""
    exact = c4 / 512
    out = [round(exact, d) for d in (2, 3, 4)] + [exact]
    return [n for i, n in enumerate(out) if n > 0 and int(512 * n) == c4 and n not in out[:i]]


def _fit_widths(seen: dict[int, int], log_size: int) -> tuple[float, int | None]:
    """``(narrow, channel_multiplier or None below 64 px)`` reproducing every width ``seen``
    (resolution → channels); without an exact fit, the best guess, which ``detect``'s
    verification then reports as a near miss."""
    candidates = _narrow_candidates(seen[4]) or [seen[4] / 512]
    guess: tuple[float, int | None] | None = None
    for n in candidates:
        cm = None if log_size < 6 else max(1, round(seen[64] / (256 * n)))
        ch = stylegan2_channels(1 if cm is None else cm, n)
        if all(ch[r] == c for r, c in seen.items()):
            return n, cm
        guess = guess or (n, cm)
    assert guess is not None
    return guess


def recognize_clean_layout(sd: StateDict) -> dict[str, Any] | None:
    """``StyleGAN2GeneratorClean`` arguments from its keys, ``channel_multiplier`` ``None`` when
    the model is too small (< 64 px) to show it; ``None`` for any other layout (BasicSR's
    generator keeps its style-conv bias in ``activate`` and its MLP at consecutive indices)."""
    const = shape_of(sd, "constant_input.weight", 4)
    mod = shape_of(sd, "to_rgb1.modulated_conv.modulation.weight", 2)
    rgbs = child_indices(sd, "to_rgbs")
    mlp = child_indices(sd, "style_mlp")
    if not only_prefixes(sd, GENERATOR_PREFIXES) or const is None or mod is None or not is_consecutive(rgbs):
        return None
    if shape_of(sd, "style_conv1.bias", 4) is None or "style_conv1.activate.bias" in sd:
        return None
    if mlp and not is_consecutive(mlp, 1, 2):
        return None
    log_size = len(rgbs) + 2
    if log_size > 10:
        return None
    # widths at 8, 16, ... px: input channels of each ToRGB's modulated conv
    seen = {4: const[1]}
    for j in rgbs:
        w = shape_of(sd, f"to_rgbs.{j}.modulated_conv.weight", 5)
        if w is None:
            return None
        seen[2 ** (j + 3)] = w[2]
    narrow, cm = _fit_widths(seen, log_size)
    return {
        "out_size": 2**log_size,
        "num_style_feat": mod[1],
        "num_mlp": len(mlp),
        "channel_multiplier": cm,
        "narrow": int(narrow) if narrow == int(narrow) else narrow,
    }


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """``StyleGAN2GeneratorClean`` kwargs from a state dict of its layout, else ``None``. Below
    64 px ``channel_multiplier`` changes nothing and GFPGAN's default 2 is returned."""
    found = recognize_clean_layout(state_dict)
    if found is not None and found["channel_multiplier"] is None:
        found["channel_multiplier"] = 2
    return found

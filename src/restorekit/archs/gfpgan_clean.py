"""GFPGANv1Clean: the GFPGAN v1.2/v1.3/v1.4 face restorer, plain PyTorch (no compiled ops).

Arguments, keys and forward semantics are ``gfpgan/archs/gfpganv1_clean_arch.py``. The v1.3 and
v1.4 releases are ``{'params_ema': ...}`` files of ``GFPGANv1Clean(out_size=512,
num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False, num_mlp=8,
input_is_latent=True, different_w=True, narrow=1, sft_half=True)`` (``GFPGANer``'s ``clean``
arch)::

    conv_body_first.{weight,bias}                 1×1 from RGB; U-Net widths are the decoder's × 1/2
    conv_body_down.{0..L-3}.{conv1, conv2, skip}  bilinear ÷2 ResBlocks down to 4×4 (skip: no bias)
    final_conv.{weight,bias}
    conv_body_up.{0..L-3}.{conv1, conv2, skip}    bilinear ×2 ResBlocks, U-Net skips added first
    toRGB.{0..L-3}.{weight,bias}                  intermediate RGB at 8…out_size (the pyramid loss)
    final_linear.{weight,bias}                    [(2L-2)·F if different_w else F, C(4)/2·16]
    stylegan_decoder.*                            a StyleGAN2GeneratorClean (archs/stylegan2_clean.py)
    condition_{scale,shift}.{0..L-3}.{0,2}.{weight,bias}  SFT convs (out C if sft_half else 2C)

Not stored in the weights: ``input_is_latent`` (whether the encoder's codes skip the decoder's
mapping MLP), so ``recognize`` assumes the releases' True and ``detect`` says so;
``decoder_load_path`` and ``fix_decoder`` only matter for training and are recognised as None /
False (inference). ``different_w`` and ``sft_half`` are read from shapes.

fp16 is declared unsafe (TencentARC/GFPGAN#50: ``.half()`` gives broken faces with the clean
model; Spandrel marks GFPGAN half-unsafe too); bf16 is fine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, only_prefixes, shape_of
from restorekit.archs.stylegan2 import log2_size, stylegan2_channels
from restorekit.archs.stylegan2_clean import StyleGAN2GeneratorClean, recognize_clean_layout
from restorekit.errors import WeightsError
from restorekit.registry import ARCHS
from restorekit.weights import load_into, read_state_dict

#: the config key a bad ``decoder_load_path`` is reported under (GFPGAN's training options)
DECODER_KEY = "network_g.decoder_load_path"


class StyleGAN2GeneratorCSFT(StyleGAN2GeneratorClean):
    """The clean StyleGAN2 generator with spatial feature transform (SFT) from the U-Net.

    ``sft_half``: modulate only the second half of the channels (the first half stays the
    prior's own features).
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: int = 2,
        narrow: float = 1,
        sft_half: bool = False,
    ) -> None:
        super().__init__(out_size, num_style_feat, num_mlp, channel_multiplier, narrow)
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


class ResBlock(nn.Module):
    """3×3 conv + LReLU, bilinear resample (``down`` ÷2, ``up`` ×2), 3×3 conv + LReLU, plus a
    1×1 conv (no bias) of the resampled input. Unlike StyleGAN2's block, no division by √2."""

    def __init__(self, in_channels: int, out_channels: int, mode: str = "down") -> None:
        super().__init__()
        if mode not in ("down", "up"):
            raise ValueError(f"ResBlock: mode must be 'down' or 'up', got {mode!r}")
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.scale_factor = 0.5 if mode == "down" else 2.0

    def forward(self, x: Tensor) -> Tensor:
        out = F.leaky_relu(self.conv1(x), 0.2)
        out = F.interpolate(out, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        out = F.leaky_relu(self.conv2(out), 0.2)
        x = F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        return out + self.skip(x)


def _sft_branch(channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(channels, out_channels, 3, 1, 1),
    )


def _info(kw: dict[str, Any]) -> ArchInfo:
    """An aligned ``out_size``² face crop in [-1, 1] to its restoration. The encoder ends in a
    linear layer over the 4×4 features, so only that size runs (``input_size``), and a face
    is never tiled. Not channels_last as a module (the decoder's 5-D modulated-conv weights
    refuse that format; channels-last inputs work); not fp16 (see the module doc)."""
    return ArchInfo(
        "face",
        3,
        3,
        scale=1,
        input_size=kw["out_size"],
        value_range=(-1, 1),
        supports_fp16=False,
        supports_channels_last=False,
        tileable=False,
    )


@ARCHS.register("GFPGANv1Clean", info=_info)
class GFPGANv1Clean(nn.Module):
    """U-Net encoder → W / W+ codes and SFT conditions → clean StyleGAN2 decoder with SFT.

    Args:
        out_size: input and output side (a power of two, 8…1024).
        num_style_feat: style code length of the decoder.
        channel_multiplier / narrow: widths as in StyleGAN2 (the U-Net uses half of them).
        decoder_load_path: a local StyleGAN2GeneratorClean weights file (``params_ema`` first)
            loaded strictly into the decoder at construction; ``None`` keeps the random init.
        fix_decoder: freeze the decoder's parameters (``requires_grad = False``; its noise
            buffers are no parameters), as GFPGAN trains with the prior fixed.
        num_mlp: the decoder's mapping layers (unused with ``input_is_latent``, and then frozen:
            ``requires_grad`` False, keys kept, so the weights still load and DDP needs no
            ``find_unused_parameters`` for them).
        input_is_latent: the encoder's codes are w (skip the mapping MLP); the releases: True.
        different_w: one code per decoder layer (W+) instead of one for all.
        sft_half: SFT modulates only half of the decoder's channels.
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        channel_multiplier: int = 1,
        decoder_load_path: str | None = None,
        fix_decoder: bool = True,
        num_mlp: int = 8,
        input_is_latent: bool = False,
        different_w: bool = False,
        narrow: float = 1,
        sft_half: bool = False,
    ) -> None:
        super().__init__()
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.num_style_feat = num_style_feat
        self.log_size = log2_size(out_size, type(self).__name__)
        ch = stylegan2_channels(channel_multiplier, narrow * 0.5)  # the U-Net: half the widths
        self.conv_body_first = nn.Conv2d(3, ch[out_size], 1)
        cin = ch[out_size]
        self.conv_body_down = nn.ModuleList()
        for log in range(self.log_size, 2, -1):
            self.conv_body_down.append(ResBlock(cin, ch[2 ** (log - 1)], mode="down"))
            cin = ch[2 ** (log - 1)]
        self.final_conv = nn.Conv2d(cin, ch[4], 3, 1, 1)
        cin = ch[4]
        self.conv_body_up = nn.ModuleList()
        for log in range(3, self.log_size + 1):
            self.conv_body_up.append(ResBlock(cin, ch[2**log], mode="up"))
            cin = ch[2**log]
        self.toRGB = nn.ModuleList(nn.Conv2d(ch[2**log], 3, 1) for log in range(3, self.log_size + 1))
        codes = (self.log_size * 2 - 2) * num_style_feat if different_w else num_style_feat
        self.final_linear = nn.Linear(ch[4] * 4 * 4, codes)
        self.stylegan_decoder = StyleGAN2GeneratorCSFT(
            out_size, num_style_feat, num_mlp, channel_multiplier, narrow, sft_half
        )
        if decoder_load_path:
            self._load_decoder(decoder_load_path)
        if fix_decoder:
            for param in self.stylegan_decoder.parameters():
                param.requires_grad = False
        if input_is_latent:  # the mapping MLP never runs: frozen, so DDP finds no unused parameter
            self.stylegan_decoder.style_mlp.requires_grad_(False)
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        for log in range(3, self.log_size + 1):
            c = ch[2**log]
            sft_out = c if sft_half else c * 2
            self.condition_scale.append(_sft_branch(c, sft_out))
            self.condition_shift.append(_sft_branch(c, sft_out))

    def _load_decoder(self, path: str) -> None:
        """The StyleGAN2 prior, strictly (GFPGAN loads ``['params_ema']`` with ``strict=True``);
        any failure is one line naming the config key and the file."""
        try:
            state, _ = read_state_dict(path)
            load_into(self.stylegan_decoder, state, "strict", path)
        except WeightsError as exc:
            raise WeightsError(f"{DECODER_KEY}: {exc}") from None

    def forward(
        self,
        x: Tensor,
        return_latents: bool = False,
        return_rgb: bool = True,
        randomize_noise: bool = True,
        **kwargs: Any,
    ) -> tuple[Tensor, list[Tensor]]:
        """``(restored face, [intermediate RGB at 8, 16, …, out_size px] if return_rgb else [])``.

        ``return_latents`` is passed to the decoder and its latents dropped, as in GFPGAN.
        Extra keyword arguments are ignored, as in GFPGAN (its inference passes ``weight``).
        """
        conditions: list[Tensor] = []
        skips: list[Tensor] = []
        out_rgbs: list[Tensor] = []
        feat = F.leaky_relu(self.conv_body_first(x), 0.2)
        for down in self.conv_body_down:
            feat = down(feat)
            skips.insert(0, feat)
        feat = F.leaky_relu(self.final_conv(feat), 0.2)
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
    """``GFPGANv1Clean`` kwargs from a state dict of its layout (GFPGANv1.3/v1.4.pth), else None.

    The decoder's keys give ``out_size``, ``num_style_feat``, ``num_mlp``, ``narrow`` and
    ``channel_multiplier`` (1, the default, below 64 px where it changes nothing);
    ``final_linear`` gives ``different_w`` and the SFT convs ``sft_half``. ``input_is_latent``
    is not stored: the releases' True is assumed (``UNSTORED``). ``decoder_load_path`` None and
    ``fix_decoder`` False: inference, no prior to load or freeze.
    """
    sd = state_dict
    first = shape_of(sd, "conv_body_first.weight", 4)
    if not only_prefixes(sd, _PREFIXES) or first is None or first[1:] != (3, 1, 1):
        return None  # GFPGANv1's equalised convs are Sequentials: conv_body_first.0.weight
    decoder = {k[len(_DECODER) :]: v for k, v in sd.items() if k.startswith(_DECODER)}
    gen = recognize_clean_layout(decoder)
    linear = shape_of(sd, "final_linear.weight", 2)
    scale_in = shape_of(sd, "condition_scale.0.0.weight", 4)
    scale_out = shape_of(sd, "condition_scale.0.2.weight", 4)
    if gen is None or linear is None or scale_in is None or scale_out is None:
        return None
    if not is_consecutive(child_indices(sd, "conv_body_up")):
        return None
    feat = gen["num_style_feat"]
    w_plus = (2 * int(math.log2(gen["out_size"])) - 2) * feat
    if linear[0] not in (feat, w_plus):
        return None
    return {
        "out_size": gen["out_size"],
        "num_style_feat": feat,
        "channel_multiplier": 1 if gen["channel_multiplier"] is None else gen["channel_multiplier"],
        "decoder_load_path": None,
        "fix_decoder": False,
        "num_mlp": gen["num_mlp"],
        "input_is_latent": True,
        "different_w": linear[0] == w_plus,
        "narrow": gen["narrow"],
        "sft_half": scale_out[0] == scale_in[0],
    }


#: detect.UNSTORED entry: arguments that change the output but are not in the weights.
UNSTORED = ("input_is_latent",)

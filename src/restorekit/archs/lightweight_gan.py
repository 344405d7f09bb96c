"""lightweight-gan's generator and discriminator (lucidrains' FastGAN, package 1.2.1).

State-dict keys and shapes are those of ``lightweight_gan.Generator`` / ``Discriminator``, so
the ``G``, ``D`` and ``GE`` (EMA generator) of a lightweight-gan ``model_N.pt`` load strictly
(``read_lightweight_gan_checkpoint``); in eval mode, with the noise weights zero, the outputs
equal theirs. Generator keys, with ``c_n = min(2**(fmap_inverse_coef-n), fmap_max)`` for
stage ``n`` (input side ``2**n``; 3 channels from ``n = 8`` on)::

    initial_conv.0 [latent, 2·latent, 4, 4] ConvTranspose2d; initial_conv.1 BatchNorm(2·latent)
    layers.<i>.0.0.net.0   PixelShuffleUpsample 1×1 conv [4·c_in, c_in]
    layers.<i>.0.1.f       blur buffer [3] (absent when trained without ``--antialias``)
    layers.<i>.0.2.1       4×4 "same" conv [2·c_out, c_in]; .0.3.weight noise [1]; .0.4 BatchNorm
    layers.<i>.1.*         skip-layer excitation gate (GlobalContext or FCANet), stages 3..6
    layers.<i>.2.*         PreNorm(LinearAttention) where 2**n is in ``attn_res_layers``
    out_conv               [channels, c_last, 3, 3]

Discriminator keys: ``non_residual_layers.<i>.1`` (stride-2 convs above 256 px),
``residual_layers.<i>.0.branches.{0,1}`` (down to 8×8) and ``.1`` (attention), ``to_logits``,
``to_shape_disc_out`` (the 32×32 side discriminator), ``decoder1`` and, from 512 px,
``decoder2``. Layout facts worth knowing:

* **Blur.** The classes always blur, but the lightweight-gan *trainer* replaces ``Blur`` by
  ``nn.Identity`` unless ``--antialias`` is given (``init_GAN`` rebinds the global), so a run
  with the default flags has no blur and no ``….f`` keys. ``antialias`` here selects either;
  ``recognize`` reads it from the keys. The ``.config.json`` does not record it.
* **Value range.** Real images are fed as ``ToTensor`` output in [0, 1] and samples are
  clamped to [0, 1] at save time, so the generator is declared ``value_range=(0, 1)``; its raw
  output is unbounded (clamp it yourself).
* **Init.** lightweight-gan re-draws every ``Conv2d`` weight Kaiming-normal after building;
  both classes here do the same, so training starts where theirs does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from math import log2
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo, full_kwargs
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, only_prefixes, shape_of
from restorekit.archs.layers.lightweight_gan_blocks import (
    FCANet,
    GlobalContext,
    Noise,
    NoiseSequential,
    PixelShuffleUpsample,
    Residual,
    SimpleDecoder,
    attention,
    conv2d_same,
    kaiming_init_,
    make_blur,
    residual_down,
)
from restorekit.errors import ConfigError, WeightsError
from restorekit.registry import ARCHS
from restorekit.weights import _read_object as read_weights_object  # the one safe torch.load

# skip-layer excitation (stage n, m): the gate computed from stage n's output (side 2**(n+1))
# multiplies the map of side 2**m: 16 px gates 128 px, 32 → 256, 64 → 512, 128 → 1024
_SLE = ((3, 7), (4, 8), (5, 9), (6, 10))


def image_channels(transparent: bool, greyscale: bool) -> int:
    """RGBA (4), gray (1) or RGB (3): lightweight-gan's ``init_channel``."""
    if transparent and greyscale:
        raise ConfigError("transparent and greyscale: choose one (RGBA or gray), not both")
    return 4 if transparent else 1 if greyscale else 3


def _resolution(image_size: int, what: str) -> int:
    if image_size < 8 or not log2(image_size).is_integer():
        raise ConfigError(f"image_size: {what} needs a power of 2 of at least 8, got {image_size}")
    return int(log2(image_size))


def _check_attention(heads: int, dim_head: int) -> None:
    for key, value in (("attn_heads", heads), ("attn_dim_head", dim_head)):
        if not 1 <= value <= 1024:
            raise ConfigError(f"{key}: expected an integer in 1..1024, got {value}")


def _attention_split(sd: StateDict, prefix: str) -> dict[str, int]:
    """``attn_heads``/``attn_dim_head`` from the first attention's width (heads × dim_head).

    The weights store only the product: lightweight-gan's 512 is 8 × 64; another width is
    read as 8 heads when it divides by 8 (our exports store both values in their metadata).
    """
    key = next((k for k in sd if k.startswith(prefix) and k.endswith("to_lin_q.weight")), None)
    inner = int(sd[key].shape[0]) if key is not None else 512
    heads = 8 if inner % 8 == 0 else 1
    return {"attn_heads": heads, "attn_dim_head": inner // heads}


def _channels(n: int, fmap_max: int, coef: int) -> int:
    return min(2 ** (coef - n), fmap_max)


def generator_features(image_size: int, latent_dim: int, fmap_max: int, coef: int) -> list[int]:
    """Channels entering each generator stage plus the last stage's output: ``[latent, c_2, ...]``."""
    res = _resolution(image_size, "LightweightGANGenerator")
    return [latent_dim] + [3 if n >= 8 else _channels(n, fmap_max, coef) for n in range(2, res)]


def _generator_info(kw: dict[str, Any]) -> ArchInfo:
    channels = image_channels(kw["transparent"], kw["greyscale"])
    return ArchInfo("generator", kw["latent_dim"], channels, latent_dim=kw["latent_dim"], tileable=False)


@ARCHS.register("LightweightGANGenerator", info=_generator_info)
class LightweightGANGenerator(nn.Module):
    """FastGAN generator: latent ``(b, latent_dim)`` → image ``(b, channels, image_size, image_size)``.

    A 4×4 start (transposed conv, BatchNorm, GLU, L2-normalised over channels), then one ×2
    stage per octave: pixel-shuffle upsample, blur, 4×4 conv, noise, BatchNorm, GLU; optional
    linear + window attention before a stage; skip-layer excitation: channel gates computed
    from the 16, 32, 64, 128 px maps multiply the 128, 256, 512, 1024 px maps (global context,
    or FcaNet with ``freq_chan_attn``).

    Args:
        image_size: output side, a power of 2 (≥ 8).
        latent_dim: latent length (256; lightweight-gan's CLI never changes it).
        fmap_max: channel cap (512); ``None`` means ``latent_dim``, as in the reference.
        fmap_inverse_coef: stage ``n`` has ``2**(coef - n)`` channels before the cap (12).
        transparent / greyscale: RGBA or gray output instead of RGB.
        attn_res_layers: input sides of the stages that get attention (e.g. ``(32,)``).
        freq_chan_attn: FcaNet gates instead of global-context gates.
        antialias: keep the blur (the class default in lightweight-gan; its trainer's
            default ``--antialias`` off gives ``False``).
        attn_heads / attn_dim_head: heads and width per head of every attention block
            (lightweight-gan fixes 8 × 64; smaller is much cheaper on a CPU).
    """

    def __init__(
        self,
        image_size: int,
        latent_dim: int = 256,
        fmap_max: int | None = 512,
        fmap_inverse_coef: int = 12,
        transparent: bool = False,
        greyscale: bool = False,
        attn_res_layers: tuple[int, ...] = (),
        freq_chan_attn: bool = False,
        antialias: bool = True,
        attn_heads: int = 8,
        attn_dim_head: int = 64,
    ) -> None:
        super().__init__()
        resolution = _resolution(image_size, "LightweightGANGenerator")
        _check_attention(attn_heads, attn_dim_head)
        channels = image_channels(transparent, greyscale)
        fmap_max = latent_dim if fmap_max is None else fmap_max
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.initial_conv = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, latent_dim * 2, 4), nn.BatchNorm2d(latent_dim * 2), nn.GLU(dim=1)
        )
        features = generator_features(image_size, latent_dim, fmap_max, fmap_inverse_coef)
        self.res_layers = tuple(range(2, resolution))
        stage_out = dict(zip(self.res_layers, features[1:]))
        self.sle_map = {src: dst for src, dst in _SLE if dst <= resolution}
        self.layers = nn.ModuleList()
        for res, chan_in, chan_out in zip(self.res_layers, features[:-1], features[1:]):
            sle: nn.Module | None = None
            if res in self.sle_map:
                gated = stage_out[self.sle_map[res] - 1]  # channels of the map the gate multiplies
                if freq_chan_attn:
                    sle = FCANet(chan_in=chan_out, chan_out=gated, width=2 ** (res + 1))
                else:
                    sle = GlobalContext(chan_in=chan_out, chan_out=gated)
            up = NoiseSequential(
                PixelShuffleUpsample(chan_in),
                make_blur(antialias),
                conv2d_same(chan_in, chan_out * 2, 4),
                Noise(),
                nn.BatchNorm2d(chan_out * 2),
                nn.GLU(dim=1),
            )
            attn = attention(chan_in, attn_heads, attn_dim_head) if 2**res in attn_res_layers else None
            self.layers.append(nn.ModuleList([up, sle, attn]))  # None slots keep the indices
        self.out_conv = nn.Conv2d(features[-1], channels, 3, padding=1)
        kaiming_init_(self)

    def forward(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images from latents ``z`` of shape ``(b, latent_dim)``; unbounded, nominally [0, 1].

        ``generator`` (on ``z``'s device) draws the per-stage noise; ``None`` uses torch's
        global RNG. In eval mode with zero noise weights the output does not depend on it.
        """
        if z.dim() != 2:
            raise ValueError(
                f"LightweightGANGenerator expects latents (batch, {self.latent_dim}), got {tuple(z.shape)}"
            )
        x = F.normalize(self.initial_conv(z[:, :, None, None]), dim=1)
        gates: dict[int, Tensor] = {}
        for res, (up, sle, attn) in zip(self.res_layers, self.layers):
            if attn is not None:
                x = attn(x) + x
            x = up(x, generator)
            if sle is not None:
                gates[self.sle_map[res]] = sle(x)
            if res + 1 in gates:
                x = x * gates[res + 1]
        return self.out_conv(x)


class DiscriminatorOutput(NamedTuple):
    """What ``LightweightGANDiscriminator.forward`` returns (a tuple; index or name it).

    Attributes:
        logits: main realness logits, ``(b, 1)`` (``disc_output_size=1``) or ``(b, 25)`` (5×5,
            flattened), as lightweight-gan's ``out``.
        side_logits: the 32×32 side discriminator's logits, ``(b, 1, 1, 1)`` (``out_32x32``).
        recon_whole: the whole image reconstructed from the 8×8 features, ``(b, c, 128, 128)``,
            or ``None`` unless ``reconstruct=True``.
        recon_quadrant: quadrant ``quadrant`` of the image reconstructed from the 16×16
            features, ``(b, c, 128, 128)``; ``None`` below 512 px or without ``reconstruct``.
        quadrant: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right; ``None`` when unused.
    """

    logits: Tensor
    side_logits: Tensor
    recon_whole: Tensor | None = None
    recon_quadrant: Tensor | None = None
    quadrant: int | None = None


def crop_quadrant(images: Tensor, quadrant: int) -> Tensor:
    """Quadrant ``quadrant`` (row-major: 0 TL, 1 TR, 2 BL, 3 BR) of ``(…, H, W)`` maps."""
    h, w = images.shape[-2] // 2, images.shape[-1] // 2
    row, col = divmod(quadrant, 2)
    return images[..., row * h : (row + 1) * h, col * w : (col + 1) * w]


def _discriminator_info(kw: dict[str, Any]) -> ArchInfo:
    channels = image_channels(kw["transparent"], kw["greyscale"])
    return ArchInfo("discriminator", channels, 1, input_size=kw["image_size"], tileable=False)


@ARCHS.register("LightweightGANDiscriminator", info=_discriminator_info)
class LightweightGANDiscriminator(nn.Module):
    """FastGAN discriminator with its self-supervised reconstruction decoders.

    Stride-2 convs bring inputs above 256 px down to 256; residual blocks (SP-conv branch +
    average-pool branch) go down to 8×8, then the logits head (5×5 or 1×1). A small side
    discriminator scores the image resized (nearest) to 32×32. ``decoder1`` rebuilds the whole
    image from the 8×8 features; from 512 px ``decoder2`` rebuilds one quadrant from the
    matching quadrant of the 16×16 features. lightweight-gan adds ``reconstruction_loss`` to
    the D loss on real images only.

    Args:
        image_size: input side, a power of 2 (≥ 16); inputs must have exactly this size.
        fmap_max / fmap_inverse_coef: channel cap and exponent, as for the generator.
        transparent / greyscale: RGBA or gray input.
        disc_output_size: 5 (the classes' default) or 1 (the CLI's default) logits per side.
        attn_res_layers: input sides of the residual blocks that get attention first.
        antialias: keep the blurs (see the module notes).
        attn_heads / attn_dim_head: as for the generator; they also size the two attention
            blocks of the 32×32 side discriminator, which every D has. At 8 × 64 those two
            cost nearly all of a small D's time on a CPU.
    """

    def __init__(
        self,
        image_size: int,
        fmap_max: int = 512,
        fmap_inverse_coef: int = 12,
        transparent: bool = False,
        greyscale: bool = False,
        disc_output_size: Literal[1, 5] = 5,
        attn_res_layers: tuple[int, ...] = (),
        antialias: bool = True,
        attn_heads: int = 8,
        attn_dim_head: int = 64,
    ) -> None:
        super().__init__()
        resolution = _resolution(image_size, "LightweightGANDiscriminator")
        _check_attention(attn_heads, attn_dim_head)
        if resolution < 4:
            raise ConfigError(f"image_size: LightweightGANDiscriminator needs at least 16, got {image_size}")
        if disc_output_size not in (1, 5):
            raise ConfigError(f"disc_output_size: expected 1 or 5, got {disc_output_size}")
        channels = image_channels(transparent, greyscale)
        self.image_size = image_size
        top = min(8, resolution)
        sides = list(range(top, 2, -1))  # log2 of the residual blocks' input sides, then 3 (8×8)
        feats = [_channels(n, fmap_max, fmap_inverse_coef) for n in sides]
        num_plain = max(0, resolution - 8)
        if num_plain == 0:
            feats[0] = channels
        self.non_residual_layers = nn.ModuleList()
        for ind in range(num_plain):
            out = feats[0] if ind == num_plain - 1 else channels
            self.non_residual_layers.append(
                nn.Sequential(
                    make_blur(antialias), nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.1)
                )
            )
        self.residual_layers = nn.ModuleList()
        for res, chan_in, chan_out in zip(sides, feats[:-1], feats[1:]):
            attn = attention(chan_in, attn_heads, attn_dim_head) if 2**res in attn_res_layers else None
            self.residual_layers.append(nn.ModuleList([residual_down(chan_in, chan_out, antialias), attn]))
        last = feats[-1]
        if disc_output_size == 5:
            self.to_logits = nn.Sequential(nn.Conv2d(last, last, 1), nn.LeakyReLU(0.1), nn.Conv2d(last, 1, 4))
        else:
            self.to_logits = nn.Sequential(
                make_blur(antialias),
                nn.Conv2d(last, last, 3, stride=2, padding=1),
                nn.LeakyReLU(0.1),
                nn.Conv2d(last, 1, 4),
            )
        self.to_shape_disc_out = nn.Sequential(
            nn.Conv2d(channels, 64, 3, padding=1),
            Residual(attention(64, attn_heads, attn_dim_head)),
            residual_down(64, 32, antialias),
            Residual(attention(32, attn_heads, attn_dim_head)),
            nn.AdaptiveAvgPool2d((4, 4)),
            nn.Conv2d(32, 1, 4),
        )
        self.decoder1 = SimpleDecoder(chan_in=last, chan_out=channels)
        self.decoder2 = SimpleDecoder(chan_in=feats[-2], chan_out=channels) if resolution >= 9 else None
        kaiming_init_(self)

    def forward(
        self,
        x: Tensor,
        reconstruct: bool = False,
        quadrant: int | None = None,
        generator: torch.Generator | None = None,
    ) -> DiscriminatorOutput:
        """Score images ``x`` ``(b, c, image_size, image_size)``; see ``DiscriminatorOutput``.

        ``reconstruct=True`` (lightweight-gan's ``calc_aux_loss``) also runs the decoders. At
        ≥ 512 px the quadrant for ``decoder2`` is ``quadrant`` when given, else drawn uniformly
        from ``generator`` (which must then be given and sit on ``x``'s device), so every
        random draw stays in a generator the caller checkpoints. One quadrant serves the batch.
        """
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"LightweightGANDiscriminator(image_size={self.image_size}) expects "
                f"{self.image_size}×{self.image_size} inputs, got {tuple(x.shape)}"
            )
        image = x
        for layer in self.non_residual_layers:
            x = layer(x)
        outputs = []
        for down, attn in self.residual_layers:
            if attn is not None:
                x = attn(x) + x
            x = down(x)
            outputs.append(x)
        logits = self.to_logits(x).flatten(1)
        side = self.to_shape_disc_out(F.interpolate(image, size=(32, 32)))
        if not reconstruct:
            return DiscriminatorOutput(logits, side)
        whole = self.decoder1(outputs[-1])
        if self.decoder2 is None:
            return DiscriminatorOutput(logits, side, whole)
        if quadrant is None:
            if generator is None:
                raise ValueError("reconstruct=True at ≥ 512 px needs a quadrant index or a torch.Generator")
            quadrant = int(torch.randint(4, (1,), generator=generator, device=generator.device).item())
        if quadrant not in (0, 1, 2, 3):
            raise ValueError(f"quadrant: expected 0..3, got {quadrant}")
        part = self.decoder2(crop_quadrant(outputs[-2], quadrant))
        return DiscriminatorOutput(logits, side, whole, part, quadrant)

    @staticmethod
    def reconstruction_loss(images: Tensor, out: DiscriminatorOutput) -> Tensor:
        """lightweight-gan's auxiliary loss: MSE of each reconstruction against the (nearest-
        resized) input ``images`` (the tensor given to ``forward``), summed over decoders."""
        if out.recon_whole is None:
            raise ValueError("reconstruction_loss needs the output of forward(..., reconstruct=True)")
        loss = F.mse_loss(out.recon_whole, F.interpolate(images, size=out.recon_whole.shape[2:]))
        if out.recon_quadrant is not None and out.quadrant is not None:
            part = crop_quadrant(images, out.quadrant)
            loss = loss + F.mse_loss(
                out.recon_quadrant, F.interpolate(part, size=out.recon_quadrant.shape[2:])
            )
        return loss


# --- recognising state dicts ------------------------------------------------------------------

_G_PREFIXES = ("initial_conv", "layers", "out_conv")
_D_PREFIXES = (
    "non_residual_layers",
    "residual_layers",
    "to_logits",
    "to_shape_disc_out",
    "decoder1",
    "decoder2",
)


def _solve_fmaps(chans: dict[int, int]) -> tuple[int, int] | None:
    """``(fmap_max, fmap_inverse_coef)`` giving channels ``chans[n] = min(2**(coef-n), fmap_max)``.

    Defaults (512, 12) win when they fit; otherwise the cap is the widest stage and the
    exponent comes from an uncapped stage. ``None`` when no pair reproduces every stage.
    """
    if not chans:
        return 512, 12
    coefs = [12, *sorted({n + int(log2(c)) for n, c in chans.items() if c > 0 and log2(c).is_integer()})]
    for fmap in (512, max(chans.values())):
        for coef in coefs:
            if all(_channels(n, fmap, coef) == c for n, c in chans.items()):
                return fmap, coef
    return None


def _has_child(sd: StateDict, prefix: str) -> bool:
    return any(k.startswith(prefix + ".") for k in sd)


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """``LightweightGANGenerator`` kwargs from a lightweight-gan ``G``/``GE`` state dict, else ``None``.

    Every stage's width comes from its 4×4 conv; ``antialias`` from the blur buffers,
    ``freq_chan_attn`` from the FcaNet DCT buffers (64 px and smaller have no gates, so
    ``False``), ``attn_res_layers`` from the stages holding attention weights. Not in
    ``detect.RECOGNIZERS``: that table is for restoration networks.
    """
    sd = state_dict
    first = shape_of(sd, "initial_conv.0.weight", 4)
    last = shape_of(sd, "out_conv.weight", 4)
    stages = child_indices(sd, "layers")
    if not only_prefixes(sd, _G_PREFIXES) or first is None or last is None or not is_consecutive(stages):
        return None
    if last[0] not in (1, 3, 4):
        return None
    widths: dict[int, int] = {}
    for i in stages:
        conv = shape_of(sd, f"layers.{i}.0.2.1.weight", 4)
        if conv is None:
            return None
        if i + 2 < 8:  # stages from 256 px on have 3 channels whatever the cap
            widths[i + 2] = conv[0] // 2
    solved = _solve_fmaps(widths)
    if solved is None:
        return None
    return {
        "image_size": 2 ** (len(stages) + 2),
        "latent_dim": first[0],
        "fmap_max": solved[0],
        "fmap_inverse_coef": solved[1],
        "transparent": last[0] == 4,
        "greyscale": last[0] == 1,
        "attn_res_layers": tuple(2 ** (i + 2) for i in stages if _has_child(sd, f"layers.{i}.2")),
        "freq_chan_attn": any(f"layers.{i}.1.dct_weights" in sd for i in stages),
        "antialias": "layers.0.0.1.f" in sd,
        **_attention_split(sd, "layers."),
    }


recognize_lightweight_gan = recognize


def recognize_discriminator(state_dict: StateDict) -> dict[str, Any] | None:
    """``LightweightGANDiscriminator`` kwargs from a lightweight-gan ``D`` state dict, else ``None``."""
    sd = state_dict
    side = shape_of(sd, "to_shape_disc_out.0.weight", 4)
    blocks = child_indices(sd, "residual_layers")
    plain = child_indices(sd, "non_residual_layers")
    if not only_prefixes(sd, _D_PREFIXES) or side is None or not is_consecutive(blocks):
        return None
    if plain and (not is_consecutive(plain) or len(blocks) != 5):
        return None
    resolution = 8 + len(plain) if plain else len(blocks) + 3
    top = min(8, resolution)
    widths: dict[int, int] = {}
    for i in blocks:
        conv = shape_of(sd, f"residual_layers.{i}.0.branches.1.2.weight", 4)
        if conv is None:
            return None
        widths[top - 1 - i] = conv[0]
        if i == 0 and plain:
            widths[top] = conv[1]
    solved = _solve_fmaps(widths)
    if solved is None or side[1] not in (1, 3, 4):
        return None
    return {
        "image_size": 2**resolution,
        "fmap_max": solved[0],
        "fmap_inverse_coef": solved[1],
        "transparent": side[1] == 4,
        "greyscale": side[1] == 1,
        "disc_output_size": 1 if "to_logits.3.weight" in sd else 5,
        "attn_res_layers": tuple(2 ** (top - i) for i in blocks if _has_child(sd, f"residual_layers.{i}.1")),
        "antialias": "to_shape_disc_out.2.branches.0.0.f" in sd,
        **_attention_split(sd, "to_shape_disc_out."),
    }


# --- lightweight-gan's files --------------------------------------------------------------------

CHECKPOINT_PARTS = ("G", "D", "GE")


def read_lightweight_gan_checkpoint(path: str | os.PathLike[str]) -> dict[str, dict[str, Tensor]]:
    """``{"G", "D", "GE"}`` state dicts from a lightweight-gan ``model_N.pt``.

    The file is ``{'GAN': {G.*, D.*, GE.*, D_aug.D.*}, 'version', 'G_scaler', 'D_scaler'}``;
    ``D_aug.D.*`` repeats ``D.*`` (the augmentation wrapper holds the same module) and is
    dropped. Read with ``torch.load(weights_only=True)``: a file that pickles code is refused.
    Anything else is a one-line ``WeightsError`` naming the file.
    """
    p = Path(path)
    obj = read_weights_object(p)
    gan = obj.get("GAN") if isinstance(obj, Mapping) else None
    if not isinstance(gan, Mapping):
        found = ", ".join(repr(k) for k in list(obj)[:5]) if isinstance(obj, Mapping) else type(obj).__name__
        raise WeightsError(f"{p}: not a lightweight-gan checkpoint (no 'GAN' state dict; found {found})")
    states: dict[str, dict[str, Tensor]] = {}
    for part in CHECKPOINT_PARTS:
        head = f"{part}."
        sd = {k[len(head) :]: v for k, v in gan.items() if isinstance(k, str) and k.startswith(head)}
        if not sd:
            raise WeightsError(f"{p}: the lightweight-gan checkpoint has no '{head}*' keys in 'GAN'")
        bad = next((k for k, v in sd.items() if not isinstance(v, Tensor)), None)
        if bad is not None:
            raise WeightsError(f"{p}: 'GAN' entry '{head}{bad}' is not a tensor")
        states[part] = sd
    return states


def read_lightweight_gan_config(
    path: str | os.PathLike[str], antialias: bool = False
) -> dict[str, dict[str, Any]]:
    """Constructor kwargs ``{"G", "D", "GE"}`` from the ``.config.json`` beside lightweight-gan's models.

    Keys read as its ``load_config`` does: ``image_size``, ``transparent``,
    ``disc_output_size`` (required), ``greyscale``, ``attn_res_layers``, ``freq_chan_attn``,
    ``fmap_max`` (512), plus ``latent_dim`` (256; its CLI cannot change it); ``syncbatchnorm``
    and ``optimizer`` concern training only. The file does not record ``--antialias``: pass
    ``antialias`` (False is the trainer's default), or read it from the checkpoint with
    ``recognize``. Values are checked as a config would be (``ConfigError`` naming the key).
    """
    p = Path(path)
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: lightweight-gan config not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p}: not a readable JSON file ({exc})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{p}: expected a JSON object, got {type(cfg).__name__}")
    missing = [k for k in ("image_size", "transparent", "disc_output_size") if k not in cfg]
    if missing:
        raise ConfigError(f"{p}: lightweight-gan config has no {missing[0]!r} key")
    common = {
        "image_size": cfg["image_size"],
        "fmap_max": cfg.get("fmap_max", 512),
        "transparent": cfg["transparent"],
        "greyscale": cfg.get("greyscale", False),
        "attn_res_layers": cfg.get("attn_res_layers", []),
        "antialias": antialias,
    }
    g_spec = {"type": "LightweightGANGenerator", **common}
    g_spec.update(latent_dim=cfg.get("latent_dim", 256), freq_chan_attn=cfg.get("freq_chan_attn", False))
    d_spec = {"type": "LightweightGANDiscriminator", **common, "disc_output_size": cfg["disc_output_size"]}
    g_kwargs = full_kwargs("LightweightGANGenerator", ARCHS.check(g_spec, where=str(p))[1])
    d_kwargs = full_kwargs("LightweightGANDiscriminator", ARCHS.check(d_spec, where=str(p))[1])
    try:
        image_channels(g_kwargs["transparent"], g_kwargs["greyscale"])
        _resolution(g_kwargs["image_size"], "lightweight-gan")
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    return {"G": g_kwargs, "D": d_kwargs, "GE": dict(g_kwargs)}

"""RestoreFormer (Wang et al., 2022, "RestoreFormer: High-Quality Blind Face Restoration from
Undegraded Key-Value Pairs") in GFPGAN's layout.

Arguments, keys and forward semantics are ``gfpgan/archs/restoreformer_arch.py`` (modified by
GFPGAN from wzhouxiff/RestoreFormer). The release ``RestoreFormer.pth`` is a plain state dict of
``RestoreFormer()`` with its defaults (``GFPGANer`` builds it so): a VQ-GAN-style encoder →
quantiser → decoder whose attention takes its *queries* from the encoder's features of the
degraded face and its keys/values from the decoder (the "undegraded key-value pairs")::

    encoder.conv_in                                   [ch, in_channels, 3, 3]
    encoder.down.<i>.block.<j>.{norm1, conv1, norm2, conv2, nin_shortcut (width change)}
    encoder.down.<i>.attn.<j>.{norm1, norm2, q, k, v, proj_out}   at attn_resolutions
    encoder.down.<i>.downsample.conv                  (all but the last level)
    encoder.mid.{block_1, attn_1, block_2}, encoder.norm_out, encoder.conv_out [z_channels, ...]
    decoder.conv_in, decoder.mid.*, decoder.up.<i>.{block.<j> (num_res_blocks + 1), attn.<j>,
        upsample.conv (all but level 0)}, decoder.norm_out, decoder.conv_out [out_ch, ch, 3, 3]
    quantize.embedding.weight [n_embed, embed_dim], quant_conv, post_quant_conv

``forward(x, **kwargs)`` returns ``(restored, None)`` exactly as GFPGAN's (the ``None`` stands
where GFPGANv1 returns its RGB pyramid); keyword arguments such as ``return_rgb`` and
``weight``, which GFPGAN's inference passes, are ignored. Inputs and outputs are in [-1, 1]
(``GFPGANer`` normalises with mean 0.5, std 0.5 and reads back with ``min_max=(-1, 1)``).
``encode``/``decode`` and the quantiser's ``(z_q, loss, (perplexity, one-hots, indices,
distances))`` are GFPGAN's too; ``forward`` skips the loss GFPGAN computes and discards.

Two arguments do not fit every value in GFPGAN either, and are refused here when built rather
than failing at the first forward: ``double_z=True`` (the encoder would emit 2·z_channels maps
that ``quant_conv`` cannot take), and attention anywhere but the lowest level (the decoder's
attention there reads ``hs['block_<i>_atten']``, which the encoder writes only for the lowest
level, and only with ``enable_mid``). The network is convolutional, but restorekit declares and
checks the trained side (``resolution``, 512) as its only input size: every face pipeline crops
to it, and the attention and codebook were learned at that scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, shape_of
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

#: not stored in the weights and changes the output: the attention's head count (official: 8)
UNSTORED = ("head_size",)
ATTN_SIDE = 16  # RestoreFormer attends at 16×16 (what recognition assumes)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """GroupNorm → swish → conv, twice (dropout before the second conv), plus a 1×1 skip on width change."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = _norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class MultiHeadAttnBlock(nn.Module):
    """Multi-head attention over all positions, with a residual.

    Alone (``y=None``) it is self-attention. With ``y`` (the decoder's use) the queries come
    from ``norm2(y)`` — the encoder's features of the degraded face — and the keys and values
    from ``norm1(x)``. Heads split the channels head-major (channel = head · size + i), as
    GFPGAN's reshapes do.
    """

    def __init__(self, in_channels: int, head_size: int = 1) -> None:
        super().__init__()
        if in_channels % head_size:
            raise ConfigError(f"head_size: {head_size} does not divide the {in_channels} attention channels")
        self.head_size = head_size
        self.norm1 = _norm(in_channels)
        self.norm2 = _norm(in_channels)
        self.q = nn.Conv2d(in_channels, in_channels, 1)
        self.k = nn.Conv2d(in_channels, in_channels, 1)
        self.v = nn.Conv2d(in_channels, in_channels, 1)
        self.proj_out = nn.Conv2d(in_channels, in_channels, 1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h_ = self.norm1(x)
        y = h_ if y is None else self.norm2(y)
        b, c, hh, ww = x.shape

        def heads(t: Tensor) -> Tensor:  # (b, c, h, w) -> (b, heads, h·w, c / heads)
            return t.reshape(b, self.head_size, c // self.head_size, hh * ww).transpose(-1, -2)

        out = F.scaled_dot_product_attention(heads(self.q(y)), heads(self.k(h_)), heads(self.v(h_)))
        return x + self.proj_out(out.transpose(-1, -2).reshape(b, c, hh, ww))


class _Stage(nn.Module):
    """One resolution level: ``block`` and ``attn`` lists, and the resampling conv (GFPGAN's keys)."""

    def __init__(self, blocks: list[nn.Module], attns: list[nn.Module]) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)


class _Resample(nn.Module):
    """``conv`` after a nearest 2× upsampling, or a stride-2 conv after padding right/bottom by 1."""

    def __init__(self, channels: int, up: bool) -> None:
        super().__init__()
        self.up = up
        self.conv = nn.Conv2d(channels, channels, 3, stride=1 if up else 2, padding=1 if up else 0)

    def forward(self, x: Tensor) -> Tensor:
        if self.up:
            return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class _Mid(nn.Module):
    def __init__(self, channels: int, dropout: float, head_size: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout)
        self.attn_1 = MultiHeadAttnBlock(channels, head_size)
        self.block_2 = ResnetBlock(channels, channels, dropout)


class MultiHeadEncoder(nn.Module):
    """Down path; ``forward`` returns GFPGAN's ``hs`` dict (``'out'`` and the attention sources)."""

    def __init__(
        self, ch: int, ch_mult: Sequence[int], num_res_blocks: int, attn_resolutions: Sequence[int],
        dropout: float, in_channels: int, resolution: int, z_channels: int, double_z: bool,
        enable_mid: bool, head_size: int,
    ) -> None:
        super().__init__()
        self.num_res_blocks = num_res_blocks
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        widths = [ch] + [ch * m for m in ch_mult]
        res = resolution
        self.down = nn.ModuleList()
        for i in range(len(ch_mult)):
            cin, cout = widths[i], widths[i + 1]
            blocks = [ResnetBlock(cin if j == 0 else cout, cout, dropout) for j in range(num_res_blocks)]
            attns = [MultiHeadAttnBlock(cout, head_size) for _ in blocks] if res in attn_resolutions else []
            stage = _Stage(blocks, attns)
            if i != len(ch_mult) - 1:
                stage.downsample = _Resample(cout, up=False)
                res //= 2
            self.down.append(stage)
        self.enable_mid = enable_mid
        if enable_mid:
            self.mid = _Mid(widths[-1], dropout, head_size)
        self.norm_out = _norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], 2 * z_channels if double_z else z_channels, 3, 1, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        hs: dict[str, Tensor] = {}
        h = self.conv_in(x)
        hs["in"] = h
        last = len(self.down) - 1
        for i, stage in enumerate(self.down):
            for j, block in enumerate(stage.block):
                h = block(h)
                if len(stage.attn) > 0:
                    h = stage.attn[j](h)
            if i != last:
                hs[f"block_{i}"] = h
                h = stage.downsample(h)
        if self.enable_mid:
            h = self.mid.block_1(h)
            hs[f"block_{last}_atten"] = h  # queries of the decoder's lowest-level attention
            h = self.mid.block_2(self.mid.attn_1(h))
            hs["mid_atten"] = h  # queries of the decoder's middle attention
        hs["out"] = self.conv_out(F.silu(self.norm_out(h)))
        return hs


class MultiHeadDecoderTransformer(nn.Module):
    """Up path whose attention blocks cross-attend to the encoder's ``hs`` (queries from ``hs``)."""

    def __init__(
        self, ch: int, out_ch: int, ch_mult: Sequence[int], num_res_blocks: int,
        attn_resolutions: Sequence[int], dropout: float, resolution: int, z_channels: int,
        enable_mid: bool, head_size: int,
    ) -> None:
        super().__init__()
        levels = len(ch_mult)
        cin = ch * ch_mult[-1]
        res = resolution // 2 ** (levels - 1)
        self.conv_in = nn.Conv2d(z_channels, cin, 3, 1, 1)
        self.enable_mid = enable_mid
        if enable_mid:
            self.mid = _Mid(cin, dropout, head_size)
        stages: list[nn.Module] = []
        for i in reversed(range(levels)):
            cout = ch * ch_mult[i]
            blocks = [ResnetBlock(cin if j == 0 else cout, cout, dropout) for j in range(num_res_blocks + 1)]
            attns = [MultiHeadAttnBlock(cout, head_size) for _ in blocks] if res in attn_resolutions else []
            if attns and (i != levels - 1 or not enable_mid):
                lowest = resolution // 2 ** (levels - 1)
                raise ConfigError(
                    f"attn_resolutions {tuple(attn_resolutions)}: RestoreFormer's decoder can attend "
                    f"only at its lowest level ({lowest} px for resolution {resolution}) and only "
                    f"with enable_mid; {res} px is level {i} (enable_mid={enable_mid})"
                )
            stage = _Stage(blocks, attns)
            if i != 0:
                stage.upsample = _Resample(cout, up=True)
                res *= 2
            stages.insert(0, stage)
            cin = cout
        self.up = nn.ModuleList(stages)
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, out_ch, 3, 1, 1)

    def forward(self, z: Tensor, hs: dict[str, Tensor]) -> Tensor:
        h = self.conv_in(z)
        if self.enable_mid:
            h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h), hs["mid_atten"]))
        for i in reversed(range(len(self.up))):
            stage = self.up[i]
            for j, block in enumerate(stage.block):
                h = block(h)
                if len(stage.attn) > 0:
                    h = stage.attn[j](h, hs[f"block_{i}_atten"])
            if i != 0:
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Nearest-codebook-entry quantiser (VQ-VAE) with the straight-through gradient."""

    def __init__(self, n_e: int, e_dim: int, beta: float) -> None:
        super().__init__()
        self.n_e, self.e_dim, self.beta = n_e, e_dim, beta
        self.embedding = nn.Embedding(n_e, e_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_e, 1.0 / n_e)

    def nearest(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(z as (B·H·W, C), indices (B·H·W,), distances)`` with GFPGAN's distance formula.

        The choice is discrete, so it is made in float32 even under autocast: half-precision
        distances would pick other codes.
        """
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.e_dim)
        with torch.autocast(z.device.type, enabled=False):
            zf, e = flat.float(), self.embedding.weight.float()
            d = (zf**2).sum(1, keepdim=True) + (e**2).sum(1) - 2 * (zf @ e.t())
        return flat, d.argmin(1), d

    def quantize(self, z: Tensor) -> Tensor:
        """``z_q`` only (what ``forward`` of the whole model needs), straight-through as in GFPGAN."""
        flat, idx, _ = self.nearest(z)
        z_q = self.embedding.weight[idx].to(flat.dtype)
        z_q = flat + (z_q - flat).detach()  # the same rounding as GFPGAN's z + (z_q - z).detach()
        b, _, h, w = z.shape
        return z_q.view(b, h, w, self.e_dim).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor, Tensor]]:
        """GFPGAN's ``(z_q, codebook + β·commitment loss, (perplexity, one-hots, indices, d))``."""
        flat, idx, d = self.nearest(z)
        one_hot = F.one_hot(idx, self.n_e).to(flat.dtype)
        z_q = self.embedding.weight[idx].to(flat.dtype)
        loss = torch.mean((z_q.detach() - flat) ** 2) + self.beta * torch.mean((z_q - flat.detach()) ** 2)
        z_q = flat + (z_q - flat).detach()
        e_mean = one_hot.mean(0)
        perplexity = torch.exp(-torch.sum(e_mean * torch.log(e_mean + 1e-10)))
        b, _, h, w = z.shape
        z_q = z_q.view(b, h, w, self.e_dim).permute(0, 3, 1, 2).contiguous()
        return z_q, loss, (perplexity, one_hot, idx.unsqueeze(1), d)

    def get_codebook_entry(self, indices: Tensor, shape: Sequence[int] | None) -> Tensor:
        """Codebook vectors of ``indices``; with ``shape`` (B, H, W, C), as a (B, C, H, W) map."""
        z_q = self.embedding.weight[indices.flatten()]
        if shape is None:
            return z_q
        return z_q.view(*shape).permute(0, 3, 1, 2).contiguous()


def _info(kw: dict[str, Any]) -> ArchInfo:
    """An aligned ``resolution``² face in [-1, 1] to its restoration; a whole face, never tiled."""
    return ArchInfo(
        "face", kw["in_channels"], kw["out_ch"], input_size=kw["resolution"], value_range=(-1, 1),
        tileable=False,
    )


@ARCHS.register("RestoreFormer", info=_info)
class RestoreFormer(nn.Module):
    """Encoder → codebook → decoder with encoder-query cross-attention (GFPGAN's ``RestoreFormer``).

    Args:
        n_embed / embed_dim: codebook entries and their length.
        ch / ch_mult: base width and per-level multipliers (a level per entry; widths divisible
            by 32 for GroupNorm); the release ``(1, 2, 2, 4, 4, 8)`` at 64.
        out_ch / in_channels: image channels out and in.
        num_res_blocks: ResnetBlocks per encoder level (decoder levels have one more).
        attn_resolutions: feature sides with attention; only the lowest level's is allowed.
        dropout: inside the ResnetBlocks (training only).
        resolution: the input side (512); the lowest level is ``resolution / 2**(levels-1)``.
        z_channels: latent channels around the quantiser.
        double_z: must be False (see the module docstring).
        enable_mid: the middle ResnetBlock-attention-ResnetBlock of encoder and decoder.
        fix_decoder / fix_codebook / fix_encoder: freeze those parameters (``requires_grad``);
            ``fix_decoder`` also freezes ``post_quant_conv`` and the codebook.
        head_size: attention heads (GFPGAN's name; it is the number of heads).
    """

    def __init__(
        self,
        n_embed: int = 1024,
        embed_dim: int = 256,
        ch: int = 64,
        out_ch: int = 3,
        ch_mult: Sequence[int] = (1, 2, 2, 4, 4, 8),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        dropout: float = 0.0,
        in_channels: int = 3,
        resolution: int = 512,
        z_channels: int = 256,
        double_z: bool = False,
        enable_mid: bool = True,
        fix_decoder: bool = False,
        fix_codebook: bool = True,
        fix_encoder: bool = False,
        head_size: int = 8,
    ) -> None:
        super().__init__()
        ch_mult, attn_resolutions = tuple(ch_mult), tuple(attn_resolutions)
        if not ch_mult or any((ch * m) % 32 for m in ch_mult) or ch % 32:
            raise ConfigError(
                f"ch {ch}, ch_mult {ch_mult}: ch and every width ch·m must be multiples of 32 "
                "(GroupNorm with 32 groups)"
            )
        if double_z:
            raise ConfigError(
                "double_z: must be False; with True the encoder emits 2·z_channels maps that "
                "quant_conv (z_channels in) cannot take, so GFPGAN's RestoreFormer fails too"
            )
        self.resolution = resolution
        self.encoder = MultiHeadEncoder(
            ch, ch_mult, num_res_blocks, attn_resolutions, dropout, in_channels, resolution, z_channels,
            double_z, enable_mid, head_size,
        )
        self.decoder = MultiHeadDecoderTransformer(
            ch, out_ch, ch_mult, num_res_blocks, attn_resolutions, dropout, resolution, z_channels,
            enable_mid, head_size,
        )
        self.quantize = VectorQuantizer(n_embed, embed_dim, beta=0.25)
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        frozen: list[nn.Module] = []
        if fix_decoder:
            frozen += [self.decoder, self.post_quant_conv, self.quantize]
        elif fix_codebook:
            frozen.append(self.quantize)
        if fix_encoder:
            frozen.append(self.encoder)
        for module in frozen:
            for param in module.parameters():
                param.requires_grad = False

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...], dict[str, Tensor]]:
        """GFPGAN's ``(quant, emb_loss, info, hs)``."""
        hs = self.encoder(x)
        quant, emb_loss, info = self.quantize(self.quant_conv(hs["out"]))
        return quant, emb_loss, info, hs

    def decode(self, quant: Tensor, hs: dict[str, Tensor]) -> Tensor:
        return self.decoder(self.post_quant_conv(quant), hs)

    def forward(self, x: Tensor, **kwargs: Any) -> tuple[Tensor, None]:
        """``(restored face, None)`` for ``(B, in_channels, resolution, resolution)`` faces in [-1, 1].

        Extra keyword arguments (``return_rgb``, ``weight``, ...) are ignored, as in GFPGAN.
        """
        if x.dim() != 4 or tuple(x.shape[-2:]) != (self.resolution, self.resolution):
            raise ValueError(
                f"RestoreFormer: expected (B, C, {self.resolution}, {self.resolution}) faces "
                f"(its resolution), got {list(x.shape)}"
            )
        hs = self.encoder(x)
        quant = self.quantize.quantize(self.quant_conv(hs["out"]))
        return self.decode(quant, hs), None


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """RestoreFormer kwargs from GFPGAN's layout (``RestoreFormer.pth``), else ``None``.

    Read from the weights: ``n_embed``/``embed_dim`` (codebook), ``ch``/``in_channels``
    (``encoder.conv_in``), ``ch_mult`` (each level's first conv), ``num_res_blocks``,
    ``out_ch``, ``z_channels`` (``quant_conv``), ``enable_mid``, and which level attends. Not
    stored: ``head_size`` (8 assumed, the release's), ``dropout`` and the ``fix_*`` flags (training
    only), and the pixel side: the attending level is taken to be 16 px (RestoreFormer's design),
    so ``resolution = 16 · 2**(levels-1)`` — 512 for the release — and ``attn_resolutions = (16,)``.
    """
    sd = state_dict
    conv_in = shape_of(sd, "encoder.conv_in.weight", 4)
    codebook = shape_of(sd, "quantize.embedding.weight", 2)
    quant = shape_of(sd, "quant_conv.weight", 4)
    out = shape_of(sd, "decoder.conv_out.weight", 4)
    if conv_in is None or codebook is None or quant is None or out is None:
        return None
    ch, in_channels = conv_in[0], conv_in[1]
    levels = child_indices(sd, "encoder.down")
    blocks = child_indices(sd, "encoder.down.0.block")
    if not is_consecutive(levels) or not is_consecutive(blocks):
        return None
    ch_mult = []
    for i in levels:
        first = shape_of(sd, f"encoder.down.{i}.block.0.conv1.weight", 4)
        if first is None or first[0] % ch:
            return None
        ch_mult.append(first[0] // ch)
    attending = [i for i in levels if child_indices(sd, f"encoder.down.{i}.attn")]
    last = len(levels) - 1
    if attending not in ([], [last]):
        return None  # a layout GFPGAN's decoder cannot run (see the module docstring)
    return {
        "n_embed": codebook[0],
        "embed_dim": codebook[1],
        "ch": ch,
        "out_ch": out[0],
        "ch_mult": tuple(ch_mult),
        "num_res_blocks": len(blocks),
        "attn_resolutions": (ATTN_SIDE,) if attending else (),
        "dropout": 0.0,
        "in_channels": in_channels,
        "resolution": ATTN_SIDE * 2**last,
        "z_channels": quant[1],
        "double_z": False,
        "enable_mid": "encoder.mid.block_1.norm1.weight" in sd,
        "fix_decoder": False,
        "fix_codebook": True,
        "fix_encoder": False,
        "head_size": 8,
    }

"""SwinIR (Liang et al., 2021, "SwinIR: Image Restoration Using Swin Transformer").

Arguments and keys follow the official ``network_swinir.py`` (and BasicSR's ``swinir_arch``, the
same layout), so the released ``.pth`` files load with ``strict=True``::

    conv_first.{weight,bias}                          [embed_dim, in_chans, 3, 3]
    patch_embed.norm.{weight,bias}                    [embed_dim]            (patch_norm)
    absolute_pos_embed                                [1, tokens, embed_dim] (ape)
    layers.<i>.residual_group.blocks.<j>.
        norm1, norm2, mlp.fc1 [mlp_ratio·dim, dim], mlp.fc2,
        attn.relative_position_bias_table [(2ws-1)², heads_i], attn.relative_position_index [ws², ws²],
        attn.qkv [3·dim, dim], attn.proj, attn_mask [nW, ws², ws²] (odd j only: shifted windows)
    layers.<i>.conv (1conv) | layers.<i>.conv.{0,2,4} (3conv)
    norm.{weight,bias}
    conv_after_body (1conv) | conv_after_body.{0,2,4} (3conv)
    pixelshuffle:        conv_before_upsample.0 [64, dim], upsample.{0,2,..} [4·64 | 9·64], conv_last
    pixelshuffledirect:  upsample.0 [in_chans·upscale², dim]
    nearest+conv:        conv_before_upsample.0, conv_up1, conv_up2 (×4 only), conv_hr, conv_last
    '' (denoise / JPEG): conv_last [in_chans, dim]

``attn_mask`` is stored for the training patch (``img_size`` tokens, ``nW = (img_size/ws)²``),
which is how ``recognize`` reads ``img_size`` back.

Any input size works: ``forward`` pads the input (reflect, bottom/right) to a multiple of the
window and crops the output back, exactly what the official ``check_image_size`` and BasicSR's
``SwinIRModel.test`` do around it. ``ArchInfo.size_multiple`` is therefore 1.

fp16: not safe. With the official weights the residual stream grows by orders of magnitude
over the RSTBs and leaves fp16's range (black images: SwinIR issues #103 and #180; Spandrel also
marks SwinIR unsafe for half precision). bf16 has fp32's range and is fine; the softmax runs in
fp32 either way (fused attention does, and so does the plain path).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers import DIV2K_RGB_MEAN, Upsample
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, shape_of
from restorekit.archs.layers.swin import SwinTransformerBlock
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

Upsampler = Literal["pixelshuffle", "pixelshuffledirect", "nearest+conv", ""]
NUM_FEAT = 64  # reconstruction channels of the pixelshuffle / nearest+conv heads (fixed upstream)


def _info(kw: dict[str, Any]) -> ArchInfo:
    up = kw["upscale"] if kw["upsampler"] else 1
    return ArchInfo("restoration", kw["in_chans"], kw["in_chans"], scale=up, supports_fp16=False)


def _conv_block(dim: int, resi_connection: str) -> nn.Module:
    """The conv closing each RSTB and the body: one 3×3 conv, or 3×3 → 1×1 → 3×3 at dim/4."""
    if resi_connection == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if resi_connection == "3conv":
        q = dim // 4
        return nn.Sequential(
            nn.Conv2d(dim, q, 3, 1, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(q, q, 1, 1, 0),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(q, dim, 3, 1, 1),
        )
    raise ConfigError(f"resi_connection: expected '1conv' or '3conv', got {resi_connection!r}")


class _Blocks(nn.Module):
    """Holds the blocks under ``residual_group.blocks`` (the official ``BasicLayer`` key path)."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


class RSTB(nn.Module):
    """Residual Swin Transformer Block: ``depth`` Swin blocks, a conv, and a skip around both."""

    def __init__(
        self, dim: int, depth: int, resi_connection: str, use_checkpoint: bool, **block: Any
    ) -> None:
        super().__init__()
        ws = block["window_size"]
        drop_path = block.pop("drop_path")
        self.residual_group = _Blocks(
            [
                SwinTransformerBlock(
                    dim, shift_size=0 if i % 2 == 0 else ws // 2, drop_path=drop_path[i], **block
                )
                for i in range(depth)
            ]
        )
        self.conv = _conv_block(dim, resi_connection)
        self.use_checkpoint = use_checkpoint

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        h, w = x_size
        y = x
        for blk in self.residual_group.blocks:
            if self.use_checkpoint and torch.is_grad_enabled():
                y = checkpoint(blk, y, x_size, use_reentrant=False)
            else:
                y = blk(y, x_size)
        y = y.transpose(1, 2).reshape(x.shape[0], -1, h, w)
        return self.conv(y).flatten(2).transpose(1, 2) + x


class _PatchNorm(nn.Module):
    """``patch_embed`` of the original: flatten to tokens (+ LayerNorm under ``patch_embed.norm``)."""

    def __init__(self, dim: int, norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


@ARCHS.register("SwinIR", info=_info)
class SwinIR(nn.Module):
    """SwinIR: conv → RSTBs (Swin blocks + conv, residual) → norm → conv, global skip → head.

    Args (the official names and defaults):
        img_size: training patch side (int or (h, w)); fixes the stored ``attn_mask`` shapes and
            ``absolute_pos_embed``, nothing else: any input size runs.
        patch_size: token side in pixels (1 in every release).
        in_chans: image channels (in = out).
        embed_dim: token channels (180 for SwinIR-M, 60 lightweight, 240 real-world large).
        depths / num_heads: Swin blocks and attention heads per RSTB.
        window_size: attention window side (8; 7 for JPEG artefact removal).
        mlp_ratio: MLP hidden width / embed_dim (2 in the releases).
        qkv_bias, qk_scale: bias on the q/k/v projection; logit scale (None: head_dim^-0.5).
        drop_rate, attn_drop_rate, drop_path_rate: dropout after projections/MLP, on attention
            weights, and the stochastic-depth rate (linearly increasing over all blocks).
        ape: learned absolute position embedding (needs inputs of exactly ``img_size``).
        patch_norm: LayerNorm on the tokens after embedding.
        use_checkpoint: recompute each Swin block in the backward pass (activation memory).
        upscale: 2/3/4/8 for SR, 1 for denoising and JPEG artefact removal.
        img_range: inputs in [0, 1] are multiplied by this (1; 255 for the JPEG models).
        upsampler: ``pixelshuffle`` (classical), ``pixelshuffledirect`` (lightweight),
            ``nearest+conv`` (real-world ×2/×4) or ``''`` (same size: denoising, JPEG).
        resi_connection: ``1conv`` or ``3conv`` (fewer parameters; the large real-world model).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 64,
        patch_size: int = 1,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (6, 6, 6, 6),
        num_heads: tuple[int, ...] = (6, 6, 6, 6),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        ape: bool = False,
        patch_norm: bool = True,
        use_checkpoint: bool = False,
        upscale: int = 2,
        img_range: float = 1.0,
        upsampler: Upsampler | None = "",
        resi_connection: Literal["1conv", "3conv"] = "1conv",
    ) -> None:
        super().__init__()
        upsampler = upsampler or ""
        if len(depths) != len(num_heads) or not depths:
            raise ConfigError(
                f"depths {tuple(depths)} and num_heads {tuple(num_heads)}: need equal, non-zero lengths"
            )
        if any(embed_dim % h for h in num_heads):
            raise ConfigError(f"num_heads: each must divide embed_dim {embed_dim}, got {tuple(num_heads)}")
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        res = (size[0] // patch_size, size[1] // patch_size)
        self.upscale, self.upsampler, self.img_range = upscale, upsampler, img_range
        self.scale = upscale if upsampler else 1
        self.window_size, self.ape = window_size, ape
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,)  # the official choice (zeros for gray)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = _PatchNorm(embed_dim, patch_norm)
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, res[0] * res[1], embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            start = sum(depths[:i])
            block = dict(
                input_resolution=res,
                num_heads=heads,
                window_size=window_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=dpr[start : start + depth],
            )
            self.layers.append(RSTB(embed_dim, depth, resi_connection, use_checkpoint, **block))
        # padding multiple: the window the blocks really use (the original shrinks it for tiny img_size)
        self.pad_multiple = self.layers[0].residual_group.blocks[0].window_size
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _conv_block(embed_dim, resi_connection)
        self._build_head(upsampler, upscale, embed_dim, in_chans)
        self.apply(_init_weights)

    def _build_head(self, upsampler: str, upscale: int, dim: int, out_ch: int) -> None:
        if upsampler in ("pixelshuffle", "nearest+conv"):
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True)
            )
        if upsampler == "pixelshuffle":
            self.upsample: nn.Module = Upsample(upscale, NUM_FEAT)
            self.conv_last = nn.Conv2d(NUM_FEAT, out_ch, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            if upscale < 1:
                raise ConfigError(f"upscale: expected a positive integer, got {upscale}")
            self.upsample = nn.Sequential(
                nn.Conv2d(dim, out_ch * upscale**2, 3, 1, 1), nn.PixelShuffle(upscale)
            )
        elif upsampler == "nearest+conv":
            if upscale not in (2, 4):
                raise ConfigError(f"upscale: upsampler 'nearest+conv' supports 2 or 4, got {upscale}")
            self.conv_up1 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            if upscale == 4:
                self.conv_up2 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            self.conv_hr = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            self.conv_last = nn.Conv2d(NUM_FEAT, out_ch, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        elif upsampler == "":
            self.conv_last = nn.Conv2d(dim, out_ch, 3, 1, 1)
        else:
            raise ConfigError(
                "upsampler: expected 'pixelshuffle', 'pixelshuffledirect', 'nearest+conv' or '', "
                f"got {upsampler!r}"
            )

    def set_fused_attention(self, enabled: bool) -> None:
        """Switch every block between SDPA (``True``) and the plain reference formula."""
        for m in self.modules():
            if hasattr(m, "fused"):
                m.fused = enabled

    def forward_features(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        t = self.patch_embed(x)
        if self.ape:
            t = t + self.absolute_pos_embed
        t = self.pos_drop(t)
        for layer in self.layers:
            t = layer(t, (h, w))
        return self.norm(t).transpose(1, 2).reshape(x.shape[0], -1, h, w)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.pad_multiple)
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        feat = self.conv_first(x)
        feat = self.conv_after_body(self.forward_features(feat)) + feat
        if self.upsampler == "pixelshuffle":
            out = self.conv_last(self.upsample(self.conv_before_upsample(feat)))
        elif self.upsampler == "pixelshuffledirect":
            out = self.upsample(feat)
        elif self.upsampler == "nearest+conv":
            y = self.conv_before_upsample(feat)
            y = self.lrelu(self.conv_up1(F.interpolate(y, scale_factor=2, mode="nearest")))
            if self.upscale == 4:
                y = self.lrelu(self.conv_up2(F.interpolate(y, scale_factor=2, mode="nearest")))
            out = self.conv_last(self.lrelu(self.conv_hr(y)))
        else:
            out = x + self.conv_last(feat)
        out = out / self.img_range + mean
        return out[..., : h * self.scale, : w * self.scale]


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad ``(N, C, H, W)`` at the bottom/right to multiples of ``multiple`` (reflect, as upstream).

    Reflect cannot pad an axis by its own length or more; such tiny inputs fall back to edge
    replication (the same rule as ``inference.tiling.pad_to``) instead of failing.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


@torch.no_grad()
def _init_weights(m: nn.Module) -> None:
    """The original init: truncated-normal Linear weights (std 0.02), zero biases, unit LayerNorms."""
    if any(p.is_meta for p in m.parameters(recurse=False)):
        return
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, SwinIR) and m.ape:
        nn.init.trunc_normal_(m.absolute_pos_embed, std=0.02)


def _window_from_table(rows: int) -> int | None:
    """``(2ws-1)²`` bias-table rows → ``ws``."""
    side = math.isqrt(rows)
    return (side + 1) // 2 if side * side == rows and side % 2 == 1 else None


def _head(sd: StateDict, in_chans: int) -> tuple[str, int] | None:
    """``(upsampler, upscale)`` from the reconstruction keys."""
    if "conv_up1.weight" in sd:
        return "nearest+conv", 4 if "conv_up2.weight" in sd else 2
    ups = child_indices(sd, "upsample")
    if "conv_before_upsample.0.weight" in sd:
        widths = [shape_of(sd, f"upsample.{i}.weight", 4) for i in ups]
        if len(widths) == 1 and widths[0] is not None and widths[0][0] == 9 * NUM_FEAT:
            return "pixelshuffle", 3
        if not is_consecutive(ups, 0, 2):
            return None
        return "pixelshuffle", 2 ** len(ups)
    direct = shape_of(sd, "upsample.0.weight", 4)
    if direct is not None:
        up = math.isqrt(direct[0] // in_chans)
        return ("pixelshuffledirect", up) if up * up * in_chans == direct[0] else None
    return "", 1


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """SwinIR kwargs from an official/BasicSR state dict, or ``None`` if the keys are not SwinIR's.

    Read from the weights: ``in_chans``/``embed_dim`` (``conv_first``), ``depths`` (block keys),
    ``num_heads`` and ``window_size`` (the bias tables), ``mlp_ratio`` (``fc1``), ``qkv_bias``,
    ``ape``, ``patch_norm``, ``resi_connection``, ``upsampler``/``upscale`` (head keys) and
    ``img_size`` (``attn_mask`` holds ``(img_size/ws)²`` windows; else ``absolute_pos_embed``).

    Not in the weights, so the official values are assumed: ``img_size`` 64 when no block is
    shifted and there is no ``ape`` (it then changes nothing), ``patch_size`` 1, ``qk_scale``
    None, dropout 0 / drop-path 0.1 (training only), and ``img_range`` 255 for the same-size
    models with window 7 (the JPEG artefact models, as in ``main_test_swinir.py``), else 1.
    """
    sd = state_dict
    first = shape_of(sd, "conv_first.weight", 4)
    fc1 = shape_of(sd, "layers.0.residual_group.blocks.0.mlp.fc1.weight", 2)
    qkv = "layers.0.residual_group.blocks.0.attn.qkv"
    if first is None or fc1 is None or f"{qkv}.weight" not in sd:
        return None
    embed_dim, in_chans = first[0], first[1]
    layers = child_indices(sd, "layers")
    if not is_consecutive(layers):
        return None
    depths, heads, windows = [], [], set()
    for i in layers:
        prefix = f"layers.{i}.residual_group.blocks"
        blocks = child_indices(sd, prefix)
        table = shape_of(sd, f"{prefix}.0.attn.relative_position_bias_table", 2)
        if not is_consecutive(blocks) or table is None:
            return None
        windows.add(_window_from_table(table[0]))
        depths.append(len(blocks))
        heads.append(table[1])
    if len(windows) != 1 or None in windows:
        return None
    ws = windows.pop()
    assert ws is not None
    head = _head(sd, in_chans)
    if head is None:
        return None
    upsampler, upscale = head
    masks = [tuple(t.shape) for k, t in sd.items() if k.endswith(".attn_mask")]
    pos = shape_of(sd, "absolute_pos_embed", 3)
    img_size = 64
    if masks:
        per_side = math.isqrt(masks[0][0])
        if per_side * per_side != masks[0][0]:
            return None  # a non-square training patch: not a layout the releases use
        img_size = per_side * ws
    elif pos is not None:
        img_size = math.isqrt(pos[1])
    return {
        "img_size": img_size,
        "patch_size": 1,
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "depths": tuple(depths),
        "num_heads": tuple(heads),
        "window_size": ws,
        "mlp_ratio": fc1[0] / embed_dim,
        "qkv_bias": f"{qkv}.bias" in sd,
        "qk_scale": None,
        "drop_rate": 0.0,
        "attn_drop_rate": 0.0,
        "drop_path_rate": 0.1,
        "ape": pos is not None,
        "patch_norm": "patch_embed.norm.weight" in sd,
        "use_checkpoint": False,
        "upscale": upscale,
        "img_range": 255.0 if upsampler == "" and ws == 7 else 1.0,
        "upsampler": upsampler,
        "resi_connection": "3conv" if "conv_after_body.0.weight" in sd else "1conv",
    }

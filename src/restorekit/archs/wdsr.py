"""WDSR-A and WDSR-B (Yu et al., 2018, "Wide Activation for Efficient and Accurate Image SR").

Not part of BasicSR. The layer layout, key names and weight normalisation follow the official
PyTorch code (JiahuiYu/wdsr_ntire2018, ``wdsr_a.py``/``wdsr_b.py``), so checkpoints trained with
it load with ``strict=True``. Every conv is weight-normalised (keys ``bias``, ``weight_g``
``[out,1,1,1]``, ``weight_v``)::

    head.0                       conv3x3 num_in_ch → num_feat
    body.<i>.body.0              A: conv3x3 num_feat → wide       B: conv1x1 num_feat → wide
    body.<i>.body.1              ReLU (no weights)
    body.<i>.body.2              A: conv3x3 wide → num_feat        B: conv1x1 wide → low_rank
    body.<i>.body.3              B only: conv3x3 low_rank → num_feat
    tail.0 (+ PixelShuffle)      conv3x3 num_feat → num_out_ch·upscale²
    skip.0 (+ PixelShuffle)      conv5x5 num_in_ch → num_out_ch·upscale²   (global branch)

What we chose where the official code has other conventions:

* Arguments use BasicSR's names: ``num_feat`` (official ``n_feats``), ``num_block``
  (``n_resblocks``), ``upscale`` (``scale``), ``res_scale``, ``rgb_mean`` (``r/g/b_mean``).
  The official code has separate ``n_colors`` only; ``num_in_ch``/``num_out_ch`` may differ here.
* The block widths are ratios of ``num_feat``: ``expansion_ratio`` (WDSR-A: official
  ``block_feats / n_feats``, default 4 = the paper's 32→128 setting; WDSR-B: the hard-coded
  ``expand = 6``) → ``wide = round(num_feat · expansion_ratio)``; and, for WDSR-B,
  ``low_rank_ratio`` (the hard-coded ``linear = 0.8``) → ``low_rank = int(num_feat ·
  low_rank_ratio)``, truncated exactly like the official ``int(n_feats*linear)``.
* Inputs are in [0, 1]. The official model takes [0, 255] and computes
  ``(x − 255·mean) / 127.5``; for [0, 1] inputs that is ``(x − mean) · 2``, so ``img_range``
  (the factor applied after subtracting the mean) defaults to 2.0 and the output is
  ``y / img_range + mean`` — the same function on rescaled pixels.
* Defaults are the paper's baseline (num_feat 32, num_block 16); WDSR-A at ×2 then has exactly
  the 1,190,100 parameters the official README reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers import DIV2K_RGB_MEAN, WeightNormConv2d, default_mean, mean_tensor
from restorekit.archs.layers.keys import (
    StateDict,
    child_indices,
    is_consecutive,
    only_prefixes,
    shape_of,
    split_pixel_shuffle,
)
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

_PREFIXES = ("head", "body", "tail", "skip")
OFFICIAL_LOW_RANK_RATIO = 0.8


def _info(kw: dict[str, Any]) -> ArchInfo:
    return ArchInfo("restoration", kw["num_in_ch"], kw["num_out_ch"], scale=kw["upscale"])


def wide_channels(num_feat: int, expansion_ratio: float) -> int:
    return round(num_feat * expansion_ratio)


def low_rank_channels(num_feat: int, low_rank_ratio: float) -> int:
    return int(num_feat * low_rank_ratio)


class _Block(nn.Module):
    """Residual block ``x + res_scale · body(x)``; ``body`` holds the (weight-normalised) layers."""

    def __init__(self, layers: list[nn.Module], res_scale: float) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) * self.res_scale


def _block_a(num_feat: int, wide: int, res_scale: float) -> _Block:
    """Wide activation: conv3x3 up to ``wide`` channels, ReLU, conv3x3 back."""
    return _Block(
        [WeightNormConv2d(num_feat, wide, 3), nn.ReLU(inplace=True), WeightNormConv2d(wide, num_feat, 3)],
        res_scale,
    )


def _block_b(num_feat: int, wide: int, low_rank: int, res_scale: float) -> _Block:
    """Wider activation with a linear low-rank conv: 1x1 up, ReLU, 1x1 down, 3x3 back."""
    return _Block(
        [
            WeightNormConv2d(num_feat, wide, 1),
            nn.ReLU(inplace=True),
            WeightNormConv2d(wide, low_rank, 1),
            WeightNormConv2d(low_rank, num_feat, 3),
        ],
        res_scale,
    )


class _WDSR(nn.Module):
    """The shared WDSR skeleton: head, residual body, sub-pixel tail and a 5x5 global skip."""


    def _build(
        self,
        num_in_ch: int,
        num_out_ch: int,
        num_feat: int,
        num_block: int,
        upscale: int,
        img_range: float,
        rgb_mean: tuple[float, ...],
        make_block: Callable[[], _Block],
    ) -> None:
        if upscale < 1:
            raise ConfigError(f"upscale: expected a positive integer, got {upscale}")
        self.scale = upscale
        self.img_range = img_range
        self.register_buffer("mean", mean_tensor(rgb_mean, num_in_ch, num_out_ch), persistent=False)
        out_feats = num_out_ch * upscale * upscale
        self.head = nn.Sequential(WeightNormConv2d(num_in_ch, num_feat, 3))
        self.body = nn.Sequential(*(make_block() for _ in range(num_block)))
        self.tail = nn.Sequential(WeightNormConv2d(num_feat, out_feats, 3), nn.PixelShuffle(upscale))
        self.skip = nn.Sequential(WeightNormConv2d(num_in_ch, out_feats, 5), nn.PixelShuffle(upscale))

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        out = self.tail(self.body(self.head(x))) + self.skip(x)
        return out / self.img_range + mean


@ARCHS.register("WDSR_A", info=_info)
class WDSRA(_WDSR):
    """WDSR-A: residual blocks with a wide ReLU (conv3x3 → ``expansion_ratio``·num_feat → conv3x3).

    Args:
        num_in_ch / num_out_ch: image channels.
        num_feat: channels between blocks (the narrow identity path).
        num_block: residual blocks.
        upscale: pixel-shuffle factor of tail and skip (any positive integer).
        res_scale: residual scaling (the authors use 0.1 for deep models).
        expansion_ratio: channels before the ReLU divided by ``num_feat``.
        img_range / rgb_mean: input normalisation, see the module docstring.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 32,
        num_block: int = 16,
        upscale: int = 4,
        res_scale: float = 1.0,
        expansion_ratio: float = 4.0,
        img_range: float = 2.0,
        rgb_mean: tuple[float, ...] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        wide = wide_channels(num_feat, expansion_ratio)
        if wide < 1:
            raise ConfigError(f"expansion_ratio: {expansion_ratio} gives no channels for num_feat={num_feat}")
        self._build(
            num_in_ch,
            num_out_ch,
            num_feat,
            num_block,
            upscale,
            img_range,
            rgb_mean,
            lambda: _block_a(num_feat, wide, res_scale),
        )


@ARCHS.register("WDSR_B", info=_info)
class WDSRB(_WDSR):
    """WDSR-B: 1x1 expansion to ``expansion_ratio``·num_feat, ReLU, 1x1 linear low-rank
    reduction to ``int(low_rank_ratio``·num_feat), then a conv3x3 back to num_feat.

    Args: as :class:`WDSRA`, plus ``low_rank_ratio`` (official 0.8); ``expansion_ratio``
    defaults to the official 6.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 32,
        num_block: int = 16,
        upscale: int = 4,
        res_scale: float = 1.0,
        expansion_ratio: float = 6.0,
        low_rank_ratio: float = OFFICIAL_LOW_RANK_RATIO,
        img_range: float = 2.0,
        rgb_mean: tuple[float, ...] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        wide = wide_channels(num_feat, expansion_ratio)
        low_rank = low_rank_channels(num_feat, low_rank_ratio)
        if wide < 1 or low_rank < 1:
            raise ConfigError(
                f"expansion_ratio/low_rank_ratio: {expansion_ratio}/{low_rank_ratio} give no channels "
                f"for num_feat={num_feat}"
            )
        self._build(
            num_in_ch,
            num_out_ch,
            num_feat,
            num_block,
            upscale,
            img_range,
            rgb_mean,
            lambda: _block_b(num_feat, wide, low_rank, res_scale),
        )


def _common(sd: StateDict, block_kernel: int) -> dict[str, Any] | None:
    """Arguments shared by both variants, or ``None`` if the layout is not WDSR's."""
    head = shape_of(sd, "head.0.weight_v", 4)
    tail = shape_of(sd, "tail.0.weight_v", 4)
    first = shape_of(sd, "body.0.body.0.weight_v", 4)
    if not only_prefixes(sd, _PREFIXES) or head is None or tail is None or first is None:
        return None
    if "skip.0.weight_v" not in sd or first[-1] != block_kernel:
        return None
    blocks = child_indices(sd, "body")
    if not is_consecutive(blocks):
        return None
    num_feat, num_in_ch = head[0], head[1]
    split = split_pixel_shuffle(tail[0], num_in_ch)
    if split is None:
        return None
    num_out_ch, upscale = split
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
        "num_feat": num_feat,
        "num_block": len(blocks),
        "upscale": upscale,
        "res_scale": 1.0,
        "wide": first[0],
    }


def _finish(common: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Order the kwargs like the constructor and add the normalisation defaults."""
    out = {k: v for k, v in common.items() if k != "wide"}
    out.update(extra)
    out["img_range"] = 2.0
    out["rgb_mean"] = default_mean(common["num_in_ch"], common["num_out_ch"])
    return out


def recognize_a(state_dict: StateDict) -> dict[str, Any] | None:
    """WDSR-A kwargs (3x3 wide block convs, two per block), or ``None``.

    ``res_scale`` is not stored in the weights; we assume 1 (the official default).
    """
    common = _common(state_dict, block_kernel=3)
    if common is None or "body.0.body.3.weight_v" in state_dict:
        return None
    return _finish(common, {"expansion_ratio": common["wide"] / common["num_feat"]})


def recognize_b(state_dict: StateDict) -> dict[str, Any] | None:
    """WDSR-B kwargs (1x1, 1x1, 3x3 block convs), or ``None``.

    The low-rank width only fixes ``int(num_feat · ratio)``; we return the official 0.8 when it
    fits, else ``low_rank / num_feat`` (nudged half a channel up if float rounding would make
    ``int`` fall one short), so the rebuilt model always has the checkpoint's shapes.
    """
    common = _common(state_dict, block_kernel=1)
    low = shape_of(state_dict, "body.0.body.2.weight_v", 4)
    if common is None or low is None or "body.0.body.3.weight_v" not in state_dict:
        return None
    num_feat, low_rank = common["num_feat"], low[0]
    ratio = OFFICIAL_LOW_RANK_RATIO
    if low_rank_channels(num_feat, ratio) != low_rank:
        ratio = low_rank / num_feat
        if low_rank_channels(num_feat, ratio) != low_rank:
            ratio = (low_rank + 0.5) / num_feat
    return _finish(common, {"expansion_ratio": common["wide"] / num_feat, "low_rank_ratio": ratio})

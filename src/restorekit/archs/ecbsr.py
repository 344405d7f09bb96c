"""ECBSR (Zhang, Zeng and Zhang, 2021, "Edge-oriented Convolution Block for Real-time Super
Resolution on Mobile Devices"), in BasicSR's ``ecbsr_arch`` layout and argument names.

The point of ECBSR is *re-parameterisation*: during training every block (an ECB) is five
parallel branches — a plain 3×3 conv, a 1×1 → 3×3 expand-and-squeeze pair, and 1×1 convs
followed by fixed Sobel-x, Sobel-y and Laplacian filters with learned per-channel scales — plus
an optional identity. Every branch is linear, so after training the whole block is exactly one
3×3 conv (``ECB.rep_params``); ``ECBSR.reparameterize()`` returns that plain network, a chain
of ``num_block + 2`` 3×3 convs that runs several times faster. The 1×1 outputs are padded with
their *bias* (not zeros) before the 3×3 step, which is what makes the fold exact at the borders
too; here that is done by zero-padding the input of the 1×1 conv, which yields the bias there.

State-dict layout (identical to BasicSR's release; ``i`` runs over ``num_block + 2`` ECBs)::

    backbone.<i>.conv3x3.{weight,bias}                     [out, in, 3, 3], [out]
    backbone.<i>.conv1x1_3x3.{k0,b0}                       [2·out, in, 1, 1], [2·out]
    backbone.<i>.conv1x1_3x3.{k1,b1}                       [out, 2·out, 3, 3], [out]
    backbone.<i>.conv1x1_{sbx,sby,lpl}.{k0,b0}             [out, in, 1, 1], [out]
    backbone.<i>.conv1x1_{sbx,sby,lpl}.{scale,bias,mask}   [out, 1, 1, 1], [out], [out, 1, 3, 3]
    backbone.<i>.act.weight                                [out] (PReLU only; not on the last ECB)

``mask`` holds the fixed edge filters; BasicSR stores it as a frozen parameter, here it is a
persistent buffer (same key, same values, but no optimizer or DDP ever sees it). The network
adds the nearest-upsampled input to the output (``repeat_interleave`` of the channels before
the pixel shuffle), so it learns only the residual.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
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

ActType = Literal["prelu", "relu", "rrelu", "softplus", "linear"]
ACT_TYPES: tuple[str, ...] = ("prelu", "relu", "rrelu", "softplus", "linear")
DEPTH_MULTIPLIER = 2.0  # BasicSR's ECBSR builds every ECB with it

# The fixed 3×3 filters of the edge branches, as BasicSR writes them into ``mask``.
EDGE_FILTERS: dict[str, tuple[tuple[float, ...], ...]] = {
    "sobelx": ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0)),
    "sobely": ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0)),
    "laplacian": ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0)),
}


def _info(kw: dict[str, Any]) -> ArchInfo:
    return ArchInfo("restoration", kw["num_in_ch"], kw["num_out_ch"], scale=kw["scale"])


def _conv_params(in_ch: int, out_ch: int, kernel: int) -> tuple[nn.Parameter, nn.Parameter]:
    """A weight and bias initialised as ``nn.Conv2d`` does (BasicSR takes them from one)."""
    conv = nn.Conv2d(in_ch, out_ch, kernel)
    return conv.weight, conv.bias  # type: ignore[return-value]


def _small_normal(*shape: int) -> Tensor:
    """N(0, 1e-3²) samples, BasicSR's ``randn * 1e-3`` init of the edge scales and biases.

    Left empty on the meta device: detection and export build there only for shapes, and
    ``normal_`` has no C++ meta kernel (its first use imports torch._dynamo, seconds)."""
    t = torch.empty(shape)
    return t if t.is_meta else t.normal_(0.0, 1e-3)


def _make_act(act_type: str, channels: int) -> nn.Module | None:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=channels)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "rrelu":
        return nn.RReLU(lower=-0.05, upper=0.05)
    if act_type == "softplus":
        return nn.Softplus()
    if act_type == "linear":
        return None
    raise ConfigError(f"act_type: expected one of {', '.join(ACT_TYPES)}, got {act_type!r}")


class SeqConvExpand(nn.Module):
    """1×1 conv to ``2·out`` channels, then a learned 3×3 conv (the expand-and-squeeze branch)."""

    def __init__(self, in_ch: int, out_ch: int, depth_multiplier: float = DEPTH_MULTIPLIER) -> None:
        super().__init__()
        mid = int(out_ch * depth_multiplier)
        self.k0, self.b0 = _conv_params(in_ch, mid, 1)
        self.k1, self.b1 = _conv_params(mid, out_ch, 3)

    def forward(self, x: Tensor) -> Tensor:
        y0 = F.conv2d(F.pad(x, (1, 1, 1, 1)), self.k0, self.b0)  # border = b0, as BasicSR pads
        return F.conv2d(y0, self.k1, self.b1)

    def rep_params(self) -> tuple[Tensor, Tensor]:
        """The equivalent zero-padded 3×3 conv: ``k1 ∘ k0`` and ``b1 + Σ k1 · b0``."""
        weight = torch.einsum("omuv,mi->oiuv", self.k1, self.k0[:, :, 0, 0])
        bias = self.b1 + torch.einsum("omuv,m->o", self.k1, self.b0)
        return weight, bias


class SeqConvEdge(nn.Module):
    """1×1 conv, then a fixed edge filter (``mask``) per channel with a learned scale and bias."""

    def __init__(self, kind: str, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.out_channels = out_ch
        self.k0, self.b0 = _conv_params(in_ch, out_ch, 1)
        self.scale = nn.Parameter(_small_normal(out_ch, 1, 1, 1))
        self.bias = nn.Parameter(_small_normal(out_ch))
        mask = torch.tensor(EDGE_FILTERS[kind], dtype=torch.float32).expand(out_ch, 1, 3, 3)
        self.register_buffer("mask", mask.contiguous())

    def forward(self, x: Tensor) -> Tensor:
        y0 = F.conv2d(F.pad(x, (1, 1, 1, 1)), self.k0, self.b0)
        return F.conv2d(y0, self.scale * self.mask, self.bias, groups=self.out_channels)

    def rep_params(self) -> tuple[Tensor, Tensor]:
        """Depthwise ``scale·mask`` after ``k0`` is one 3×3 conv; the padded ``b0`` folds into the bias."""
        edge = (self.scale * self.mask)[:, 0]  # [out, 3, 3]
        weight = torch.einsum("ouv,oi->oiuv", edge, self.k0[:, :, 0, 0])
        bias = self.bias + edge.sum(dim=(1, 2)) * self.b0
        return weight, bias


class ECB(nn.Module):
    """Edge-oriented convolution block: five parallel linear branches (+ identity), then ``act``.

    In training mode the branches run separately (their gradients are what makes ECB train
    better than one conv); in eval mode the block runs the folded 3×3 conv, as BasicSR's does.
    The identity is used only when ``with_idt`` and ``in_ch == out_ch`` (BasicSR's rule).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        depth_multiplier: float = DEPTH_MULTIPLIER,
        act_type: str = "prelu",
        with_idt: bool = False,
    ) -> None:
        super().__init__()
        self.out_channels = out_ch
        self.with_idt = bool(with_idt and in_ch == out_ch)
        self.conv3x3 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv1x1_3x3 = SeqConvExpand(in_ch, out_ch, depth_multiplier)
        self.conv1x1_sbx = SeqConvEdge("sobelx", in_ch, out_ch)
        self.conv1x1_sby = SeqConvEdge("sobely", in_ch, out_ch)
        self.conv1x1_lpl = SeqConvEdge("laplacian", in_ch, out_ch)
        self.act = _make_act(act_type, out_ch)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            y = self.conv3x3(x) + self.conv1x1_3x3(x) + self.conv1x1_sbx(x)
            y = y + self.conv1x1_sby(x) + self.conv1x1_lpl(x)
            if self.with_idt:
                y = y + x
        else:
            weight, bias = self.rep_params()
            y = F.conv2d(x, weight, bias, padding=1)
        return y if self.act is None else self.act(y)

    def rep_params(self) -> tuple[Tensor, Tensor]:
        """``(weight, bias)`` of the single zero-padded 3×3 conv equal to the block's branches."""
        weight, bias = self.conv3x3.weight, self.conv3x3.bias
        for branch in (self.conv1x1_3x3, self.conv1x1_sbx, self.conv1x1_sby, self.conv1x1_lpl):
            w, b = branch.rep_params()
            weight, bias = weight + w, bias + b
        if self.with_idt:
            eye = torch.eye(self.out_channels, dtype=weight.dtype, device=weight.device)
            weight = weight + F.pad(eye[:, :, None, None], (1, 1, 1, 1))
        return weight, bias


class RepBlock(nn.Module):
    """One folded ECB: a 3×3 conv and the block's activation (deploy form)."""

    def __init__(self, ecb: ECB) -> None:
        super().__init__()
        weight, bias = ecb.rep_params()
        self.conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
        self.conv.weight = nn.Parameter(weight.detach().clone())
        self.conv.bias = nn.Parameter(bias.detach().clone())
        self.act = copy.deepcopy(ecb.act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return y if self.act is None else self.act(y)


def _residual_upscale(backbone: nn.Module, x: Tensor, num_in_ch: int, scale: int) -> Tensor:
    """``pixel_shuffle(backbone(x) + x repeated scale² times per channel)``: a nearest-upsampled
    skip (a 1-channel input broadcasts over the output channels, as in BasicSR)."""
    shortcut = torch.repeat_interleave(x, scale * scale, dim=1) if num_in_ch > 1 else x
    return F.pixel_shuffle(backbone(x) + shortcut, scale)


class ECBSRPlain(nn.Module):
    """The re-parameterised ECBSR: ``num_block + 2`` plain 3×3 convs; what ``reparameterize`` returns.

    Not registered (its keys are not BasicSR's); keep the training-form weights for resuming,
    detection and export, and build this for deployment.
    """

    def __init__(self, source: ECBSR) -> None:
        super().__init__()
        self.num_in_ch, self.scale = source.num_in_ch, source.scale
        self.backbone = nn.Sequential(*(RepBlock(ecb) for ecb in source.backbone))  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> Tensor:
        return _residual_upscale(self.backbone, x, self.num_in_ch, self.scale)


@ARCHS.register("ECBSR", info=_info)
class ECBSR(nn.Module):
    """ECBSR: ``num_block + 2`` ECBs (the last linear, to ``num_out_ch·scale²``), pixel shuffle,
    and the nearest-upsampled input added back.

    Args:
        num_in_ch / num_out_ch: image channels (1 for BasicSR's Y-channel files, 3 for RGB).
            With several input channels the skip needs ``num_out_ch == num_in_ch``.
        num_block: ECBs between the first and the last (4 in BasicSR's m4c16 files).
        num_channel: feature channels (16).
        with_idt: add an identity branch to every ECB whose input and output widths agree.
        act_type: ``prelu``, ``relu``, ``rrelu``, ``softplus`` or ``linear``.
        scale: upscaling factor.
    """

    def __init__(
        self,
        num_in_ch: int,
        num_out_ch: int,
        num_block: int = 4,
        num_channel: int = 16,
        with_idt: bool = False,
        act_type: ActType = "prelu",
        scale: int = 4,
    ) -> None:
        super().__init__()
        if num_in_ch > 1 and num_out_ch != num_in_ch:
            raise ConfigError(
                f"num_out_ch: {num_out_ch} must equal num_in_ch {num_in_ch} (ECBSR's skip repeats "
                "the input channels); only a 1-channel input broadcasts"
            )
        _make_act(act_type, 1)  # a wrong act_type fails here, in one line
        self.num_in_ch, self.scale = num_in_ch, scale
        widths = [num_in_ch] + [num_channel] * (num_block + 1) + [num_out_ch * scale * scale]
        acts = [act_type] * (num_block + 1) + ["linear"]
        self.backbone = nn.Sequential(
            *(
                ECB(widths[i], widths[i + 1], DEPTH_MULTIPLIER, acts[i], with_idt)
                for i in range(num_block + 2)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return _residual_upscale(self.backbone, x, self.num_in_ch, self.scale)

    @torch.no_grad()
    def reparameterize(self) -> ECBSRPlain:
        """The deploy form: every ECB folded into one 3×3 conv (equal outputs up to rounding)."""
        plain = ECBSRPlain(self)
        return plain.train(self.training)


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """ECBSR kwargs from a BasicSR-layout state dict, or ``None`` if the keys are not ECBSR's.

    ``act_type`` is ``prelu`` when the ECBs carry PReLU weights (all of BasicSR's files);
    ReLU, RReLU and Softplus leave no trace, and ``relu`` is assumed. ``with_idt`` adds no
    tensors and is assumed False (BasicSR's files); both are reported by ``detect``.
    """
    sd = state_dict
    if not only_prefixes(sd, ("backbone",)) or "backbone.0.conv1x1_sbx.mask" not in sd:
        return None
    blocks = child_indices(sd, "backbone")
    if not is_consecutive(blocks) or len(blocks) < 2:
        return None
    first = shape_of(sd, "backbone.0.conv3x3.weight", 4)
    last = shape_of(sd, f"backbone.{blocks[-1]}.conv3x3.weight", 4)
    if first is None or last is None:
        return None
    split = split_pixel_shuffle(last[0], first[1])
    if split is None:
        return None
    num_out_ch, scale = split
    prelu = shape_of(sd, "backbone.0.act.weight", 1) is not None
    return {
        "num_in_ch": first[1],
        "num_out_ch": num_out_ch,
        "num_block": len(blocks) - 2,
        "num_channel": first[0],
        "with_idt": False,
        "act_type": "prelu" if prelu else "relu",
        "scale": scale,
    }


def unstored(kwargs: dict[str, Any]) -> tuple[str, ...]:
    """The arguments ``recognize`` had to assume for these kwargs (``detect.UNSTORED``)."""
    return ("with_idt",) if kwargs.get("act_type") == "prelu" else ("with_idt", "act_type")

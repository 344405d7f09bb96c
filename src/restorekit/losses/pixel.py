"""Pixel losses with BasicSR's names, arguments and numbers.

``L1Loss``, ``MSELoss`` and ``CharbonnierLoss`` compute an element-wise loss and reduce it the way
BasicSR's ``weight_reduce_loss`` does, so a config ported from BasicSR trains with the same loss
values. An optional element-wise ``weight`` (shape ``(N, 1|C, H, W)``) masks or re-weights pixels;
with ``reduction='mean'`` the weighted sum is divided by the total weight (counted per channel),
i.e. the loss is a mean over the weighted region rather than over all pixels.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

from restorekit.errors import ConfigError
from restorekit.registry import LOSSES

Reduction = Literal["none", "mean", "sum"]
_REDUCTIONS = get_args(Reduction)


def _check_reduction(reduction: str) -> None:
    # ``LOSSES.build`` already rejects a bad value through the type hint; this covers direct use.
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"reduction: expected one of {', '.join(_REDUCTIONS)}, got {reduction!r}")


def weight_reduce_loss(loss: Tensor, weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """Apply an element-wise ``weight`` to ``loss`` and reduce it (BasicSR's semantics).

    ``weight`` must have as many dimensions as ``loss`` and either one channel (broadcast over
    channels) or the same number. With ``'mean'`` the result is ``sum(loss * weight)`` divided by the
    weight summed over every channel it applies to, so a binary mask gives the mean over the masked
    pixels. The denominator is clamped away from zero: an all-zero mask yields 0 instead of NaN
    (BasicSR would return NaN and poison the run).
    """
    if weight is None:
        if reduction == "mean":
            return loss.mean()
        if reduction == "sum":
            return loss.sum()
        return loss
    if weight.dim() != loss.dim() or weight.size(1) not in (1, loss.size(1)):
        raise ValueError(
            f"loss weight of shape {tuple(weight.shape)} does not fit a loss of shape {tuple(loss.shape)}; "
            "expected the same number of dimensions and 1 or the same number of channels"
        )
    loss = loss * weight
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        total = weight.sum() if weight.size(1) > 1 else weight.sum() * loss.size(1)
        return loss.sum() / total.clamp_min(1e-12)
    return loss


class _PixelLoss(nn.Module):
    """Shared constructor and forward: subclasses only define the element-wise loss."""

    def __init__(self, loss_weight: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.loss_weight = float(loss_weight)
        self.reduction = reduction

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        """Loss of ``pred`` against ``target`` (both ``(N, C, H, W)``), times ``loss_weight``."""
        return self.loss_weight * weight_reduce_loss(self.elementwise(pred, target), weight, self.reduction)

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}, reduction={self.reduction!r}"


@LOSSES.register("L1Loss")
class L1Loss(_PixelLoss):
    """Mean absolute error |pred - target| — the default pixel loss of PSNR-oriented SR training."""

    def __init__(self, loss_weight: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__(loss_weight, reduction)

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs()


@LOSSES.register("MSELoss")
class MSELoss(_PixelLoss):
    """Mean squared error (pred - target)^2 — the loss PSNR directly measures."""

    def __init__(self, loss_weight: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__(loss_weight, reduction)

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).square()


@LOSSES.register("CharbonnierLoss")
class CharbonnierLoss(_PixelLoss):
    """Charbonnier loss sqrt((pred - target)^2 + eps): an L1 that is smooth at zero (LapSRN).

    ``eps`` (BasicSR's default 1e-12) sets the curvature near zero; note it sits *inside* the
    square root, so the loss of a perfect prediction is sqrt(eps), not 0.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: Reduction = "mean", eps: float = 1e-12) -> None:
        super().__init__(loss_weight, reduction)
        if not eps >= 0:
            raise ConfigError(f"eps: expected a number >= 0, got {eps!r}")
        self.eps = float(eps)

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return torch.sqrt((pred - target).square() + self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"

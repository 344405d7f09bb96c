"""Pixel losses: closed-form values, BasicSR's weighted reductions, config errors."""

from __future__ import annotations

import math

import pytest
import torch

import restorekit.losses  # noqa: F401  (registers the losses)
from restorekit.errors import ConfigError
from restorekit.losses.pixel import CharbonnierLoss, L1Loss, MSELoss
from restorekit.registry import LOSSES


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64)
    target = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64)
    return pred, target


def test_basicsr_docstring_example() -> None:
    # The worked example of BasicSR's ``weighted_loss`` (1-D tensors, element-wise weights).
    pred, target, weight = torch.tensor([0.0, 2, 3]), torch.tensor([1.0, 1, 1]), torch.tensor([1.0, 0, 1])
    assert L1Loss()(pred, target).item() == pytest.approx(4 / 3)
    assert L1Loss(reduction="sum")(pred, target).item() == pytest.approx(4.0)
    assert torch.equal(L1Loss(reduction="none")(pred, target), torch.tensor([1.0, 1, 2]))
    # Weights need the (N, C, H, W) layout (BasicSR reads weight.size(1)); as one row of pixels:
    as_img = [t.reshape(1, 1, 1, 3) for t in (pred, target, weight)]
    assert L1Loss()(*as_img[:2], weight=as_img[2]).item() == pytest.approx(1.5)
    assert L1Loss(reduction="sum")(*as_img[:2], weight=as_img[2]).item() == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("cls", "fn"),
    [
        (L1Loss, lambda d: abs(d)),
        (MSELoss, lambda d: d * d),
        (CharbonnierLoss, lambda d: math.sqrt(d * d + 1e-12)),
    ],
)
def test_reductions_match_closed_form(cls, fn) -> None:
    pred, target = _pair()
    diffs = (pred - target).flatten().tolist()
    elem = [fn(d) for d in diffs]
    assert cls()(pred, target).item() == pytest.approx(sum(elem) / len(elem), rel=1e-12)
    assert cls(reduction="sum")(pred, target).item() == pytest.approx(sum(elem), rel=1e-12)
    none = cls(reduction="none")(pred, target)
    assert none.shape == pred.shape
    assert none.flatten().tolist() == pytest.approx(elem, rel=1e-12)
    assert cls(loss_weight=2.5)(pred, target).item() == pytest.approx(2.5 * sum(elem) / len(elem), rel=1e-12)


def test_charbonnier_eps_inside_sqrt() -> None:
    x = torch.zeros(1, 1, 2, 2)
    assert CharbonnierLoss(eps=1e-6)(x, x).item() == pytest.approx(1e-3)
    pred = torch.full((1, 1, 1, 1), 3.0, dtype=torch.float64)
    assert CharbonnierLoss(eps=16.0)(pred, torch.zeros_like(pred)).item() == pytest.approx(5.0)


def test_weighted_mean_is_mean_over_weighted_region() -> None:
    pred, target = _pair()
    err = (pred - target).abs()
    # One-channel mask: BasicSR counts the mask once per channel of the loss.
    mask = (torch.arange(20, dtype=torch.float64).reshape(1, 1, 4, 5) % 3 == 0).double().expand(2, 1, 4, 5)
    expected = (err * mask).sum() / (mask.sum() * 3)
    assert L1Loss()(pred, target, weight=mask).item() == pytest.approx(expected.item(), rel=1e-12)
    masked = err.permute(0, 2, 3, 1)[mask[:, 0].bool()]  # (pixels, 3): the selected pixels only
    assert L1Loss()(pred, target, weight=mask).item() == pytest.approx(masked.mean().item(), rel=1e-12)
    # Full-channel weight: divided by its own sum.
    w = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert MSELoss()(pred, target, weight=w).item() == pytest.approx(
        ((pred - target) ** 2 * w).sum().item() / w.sum().item(), rel=1e-12
    )
    # 'sum' ignores the normalisation; 'none' returns the weighted map.
    assert L1Loss(reduction="sum")(pred, target, weight=w).item() == pytest.approx((err * w).sum().item())
    assert torch.allclose(L1Loss(reduction="none")(pred, target, weight=w), err * w)


def test_all_zero_weight_gives_zero_not_nan() -> None:
    pred, target = _pair()
    loss = L1Loss()(pred, target, weight=torch.zeros(2, 1, 4, 5, dtype=torch.float64))
    assert loss.item() == 0.0


def test_bad_weight_shape_is_rejected() -> None:
    pred, target = _pair()
    with pytest.raises(ValueError, match="does not fit"):
        L1Loss()(pred, target, weight=torch.ones(2, 2, 4, 5, dtype=torch.float64))


def test_gradient_flows() -> None:
    pred, target = _pair()
    pred.requires_grad_(True)
    CharbonnierLoss()(pred, target).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    # d/dp mean(|p - t|) = sign(p - t) / N
    pred.grad = None
    L1Loss()(pred, target).backward()
    assert torch.allclose(pred.grad, torch.sign(pred - target).detach() / pred.numel())


def test_registry_builds_with_basicsr_names_and_checks_types() -> None:
    assert {"L1Loss", "MSELoss", "CharbonnierLoss"} <= set(LOSSES.names())
    loss = LOSSES.build({"type": "CharbonnierLoss", "loss_weight": "0.5", "eps": 1e-6}, "train.losses[0]")
    assert isinstance(loss, CharbonnierLoss) and loss.loss_weight == 0.5 and loss.eps == 1e-6
    with pytest.raises(ConfigError, match=r"train\.losses\[0\]\.reduction: .*'avg'.*'none', 'mean' or 'sum'"):
        LOSSES.build({"type": "L1Loss", "reduction": "avg"}, "train.losses[0]")
    with pytest.raises(ConfigError, match=r"loss_wieght: unknown argument .*did you mean 'loss_weight'"):
        LOSSES.build({"type": "MSELoss", "loss_wieght": 1.0}, "train.losses[1]")


def test_direct_construction_rejects_bad_reduction() -> None:
    with pytest.raises(ConfigError, match="reduction: expected one of none, mean, sum, got 'avg'"):
        L1Loss(reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="eps"):
        CharbonnierLoss(eps=-1.0)

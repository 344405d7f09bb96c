"""lightweight-gan's losses: hinge signs, dual contrastive, reconstruction, the AMP-safe GP."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from restorekit.data.degradations import DiffAugment
from restorekit.losses.lightweight_gan import (
    REAL_IS_POSITIVE,
    crop_quadrant,
    discriminator_loss,
    dual_contrastive_loss,
    generator_loss,
    gradient_penalty,
    hinge_d_loss,
    hinge_g_loss,
    reconstruction_loss,
)
from restorekit.registry import LOSSES


def test_hinge_uses_lightweight_gans_flipped_signs() -> None:
    real, fake = torch.tensor([-2.0, 0.0, 0.5]), torch.tensor([2.0, 0.5, -1.0])
    # relu(1 + real) = [0, 1, 1.5]; relu(1 - fake) = [0, 0.5, 2]
    assert hinge_d_loss(real, fake).item() == pytest.approx(2.5 / 3 + 2.5 / 3)
    assert hinge_g_loss(fake).item() == pytest.approx(0.5)
    assert hinge_d_loss(torch.full((4,), -1.0), torch.full((4,), 1.0)).item() == 0.0  # D's goal
    assert not REAL_IS_POSITIVE["hinge"] and REAL_IS_POSITIVE["dual_contrastive"]
    r, f = torch.randn(5, 25), torch.randn(5, 25)  # 5×5 outputs: same as the elementwise form
    assert torch.allclose(hinge_d_loss(r, f), (F.relu(1 + r) + F.relu(1 - f)).mean())


def test_dual_contrastive_against_hand_computation() -> None:
    real, fake = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0]])
    e = math.exp
    first = ((math.log(e(1) + e(0)) - 1) + (math.log(e(2) + e(0)) - 2)) / 2
    second = math.log(e(0) + e(-1) + e(-2)) - 0
    assert dual_contrastive_loss(real, fake).item() == pytest.approx(first + second, rel=1e-6)


def test_dual_contrastive_equals_the_cross_entropy_form() -> None:
    real, fake = torch.randn(6, 1), torch.randn(4, 1)

    def half(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        logits = torch.cat([a[:, None], b[None].repeat(len(a), 1)], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(a), dtype=torch.long))

    r, f = real.flatten(), fake.flatten()
    assert torch.allclose(dual_contrastive_loss(real, fake), half(r, f) + half(-f, -r), atol=1e-6)


def test_head_sums_and_generator_roles() -> None:
    r1, f1, r2, f2 = (torch.randn(3, 1) for _ in range(4))
    d = discriminator_loss([r1, r2], [f1, f2])
    assert torch.allclose(d, hinge_d_loss(r1, f1) + hinge_d_loss(r2, f2))
    g = generator_loss([f1, f2])
    assert torch.allclose(g, f1.mean() + f2.mean())
    gd = generator_loss([f1, f2], [r1, r2], dual_contrastive=True)
    assert torch.allclose(gd, dual_contrastive_loss(f1, r1) + dual_contrastive_loss(f2, r2))
    dd = discriminator_loss([r1], [f1], dual_contrastive=True)
    assert torch.allclose(dd, dual_contrastive_loss(r1, f1))
    with pytest.raises(ValueError, match="real head"):
        generator_loss([f1], None, dual_contrastive=True)
    with pytest.raises(ValueError, match="heads"):
        discriminator_loss([r1, r2], [f1])


def test_not_registered_as_a_config_loss() -> None:
    assert not any("lightweight" in name.lower() or "hinge" in name.lower() for name in LOSSES.names())


def test_quadrants_follow_lightweight_gans_rearrange() -> None:
    img = torch.arange(2 * 3 * 8 * 6, dtype=torch.float32).view(2, 3, 8, 6)
    # 'b c (m h) (n w) -> (m n) b c h w'
    ref = img.view(2, 3, 2, 4, 2, 3).permute(2, 4, 0, 1, 3, 5).reshape(4, 2, 3, 4, 3)
    for q in range(4):
        assert torch.equal(crop_quadrant(img, q), ref[q])
    with pytest.raises(ValueError, match="quadrant"):
        crop_quadrant(img, 4)


def test_reconstruction_loss_against_nearest_downsampled_targets() -> None:
    img = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    whole, part = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 4, 4)
    target_whole = img[..., ::2, ::2]  # nearest at factor 2 picks every other pixel
    target_part = img[..., :8, 8:][..., ::2, ::2]  # quadrant 1: top-right
    expect = ((whole - target_whole) ** 2).mean() + ((part - target_part) ** 2).mean()
    assert torch.allclose(reconstruction_loss(img, whole, part, 1), expect)
    assert torch.allclose(reconstruction_loss(img, whole), ((whole - target_whole) ** 2).mean())
    with pytest.raises(ValueError, match="quadrant"):
        reconstruction_loss(img, whole, part)


# ----------------------------------------------------------------------------- gradient penalty
class TinyD(nn.Module):
    """Two heads like lightweight-gan's D: main logits and a 'side' output."""

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 4, 3))
        self.head = nn.Linear(4 * 6 * 6, 1)
        self.side = nn.Conv2d(3, 1, 8)
        self.gain = gain

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.body(x).flatten(1)) * self.gain, self.side(x).flatten(1) * self.gain


def test_gp_on_a_linear_d_is_weight_times_squared_weight_norm() -> None:
    lin = nn.Linear(12, 1)
    real, fake = torch.randn(3, 12, requires_grad=True), torch.randn(5, 12, requires_grad=True)
    gp = gradient_penalty([lin(real), lin(fake)], [real, fake])
    assert gp.item() == pytest.approx(10.0 * lin.weight.pow(2).sum().item(), rel=1e-5)
    gp.backward()  # the graph reaches D's parameters
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_gp_is_mean_of_per_image_squared_norms_over_both_batches() -> None:
    d = TinyD()
    real, fake = torch.rand(3, 3, 8, 8, requires_grad=True), torch.rand(2, 3, 8, 8, requires_grad=True)
    gp = gradient_penalty([*d(real), *d(fake)], [real, fake], weight=2.0)
    norms = []
    for x in (real, fake):
        for n in range(len(x)):
            xn = x[n : n + 1].detach().requires_grad_(True)
            (g,) = torch.autograd.grad(sum(o.sum() for o in d(xn)), xn)
            norms.append(g.pow(2).sum())
    assert gp.item() == pytest.approx(2.0 * torch.stack(norms).mean().item(), rel=1e-5)


def test_gp_through_diffaugment_on_the_real_batch() -> None:
    d, aug = TinyD(), DiffAugment(["translation", "cutout", "color"], prob=1.0)
    real = torch.rand(4, 3, 8, 8, requires_grad=True)
    gp = gradient_penalty(list(d(aug(real, torch.Generator().manual_seed(1)))), [real])
    assert torch.isfinite(gp) and gp > 0


@pytest.mark.parametrize(("gain", "scale_as_tensor"), [(1.0, False), (1e-7, False), (1e-7, True)])
def test_gp_under_fp16_autocast_with_a_grad_scaler_equals_fp32(gain: float, scale_as_tensor: bool) -> None:
    d = TinyD(gain=gain)  # at 1e-7 the input gradients flush to zero in fp16 unless scaled
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    real = x.clone().requires_grad_(True)
    ref = gradient_penalty(list(d(real)), [real])
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**15)
    scale = torch.tensor(scaler.get_scale()) if scale_as_tensor else scaler.get_scale()
    with torch.autocast("cpu", dtype=torch.float16):
        real16 = x.clone().requires_grad_(True)
        out = d(real16)
        assert out[0].dtype == torch.float16
        gp = gradient_penalty(list(out), [real16], scale=scale)
        unscaled = gradient_penalty(list(out), [real16])
    assert gp.dtype == torch.float32
    assert gp.item() == pytest.approx(ref.item(), rel=2e-2)
    if gain < 1:  # the scale is what makes it right
        assert abs(unscaled.item() - ref.item()) > 0.5 * ref.item()

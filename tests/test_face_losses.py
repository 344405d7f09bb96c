"""GFPGAN's objective pieces (restorekit.losses.face), with numbers from GFPGANModel's definitions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restorekit.losses.face import (
    component_rois,
    component_sizes,
    component_style_loss,
    crop_components,
    gray_for_identity,
    image_pyramid,
    pyramid_losses,
)
from restorekit.losses.pixel import L1Loss


def test_pyramid_is_coarsest_first_and_halves_bilinearly() -> None:
    gt = torch.rand(2, 3, 64, 64)
    pyr = image_pyramid(gt, 4)  # GFPGAN: log_size - 2 levels, here 8, 16, 32, 64
    assert [p.shape[-1] for p in pyr] == [8, 16, 32, 64]
    assert pyr[-1] is gt
    half = F.interpolate(gt, scale_factor=0.5, mode="bilinear", align_corners=False)
    assert torch.equal(pyr[-2], half)
    # bilinear halving with align_corners False averages each 2x2 block
    assert torch.allclose(pyr[-2][0, 0, 0, 0], gt[0, 0, :2, :2].mean(), atol=1e-6)


def test_pyramid_losses_use_the_weight_and_every_level() -> None:
    gt = torch.zeros(1, 3, 32, 32)
    rgbs = [torch.ones(1, 3, s, s) for s in (8, 16, 32)]
    losses = pyramid_losses(rgbs, gt, L1Loss(), 1e-12)
    assert sorted(losses) == [8, 16, 32]
    assert all(abs(v.item() - 1e-12) < 1e-18 for v in losses.values())


def test_component_rois_interleave_left_and_right_eyes() -> None:
    left = torch.tensor([[10.0, 11, 20, 21], [30, 31, 40, 41]])
    right = left + 100
    mouth = left + 200
    eyes, mouths = component_rois(left, right, mouth)
    assert eyes.tolist() == [
        [0, 10, 11, 20, 21], [0, 110, 111, 120, 121], [1, 30, 31, 40, 41], [1, 130, 131, 140, 141],
    ]  # fmt: skip
    assert mouths.tolist() == [[0, 210, 211, 220, 221], [1, 230, 231, 240, 241]]


def test_component_sizes_follow_gfpgan_at_512_and_scale_below() -> None:
    assert component_sizes(512) == (80, 120, 1.0)
    assert component_sizes(1024) == (160, 240, 2.0)  # GFPGAN: sizes and values times int(1024/512)
    assert component_sizes(128) == (20, 30, 1.0)  # GFPGAN's int(128/512) = 0 would erase the crops


def test_crops_of_a_constant_image_are_constant_and_sized() -> None:
    img = torch.full((2, 3, 64, 64), 0.25)
    eyes, mouths = component_rois(
        torch.tensor([[8.0, 8, 24, 24]] * 2),
        torch.tensor([[40.0, 8, 56, 24]] * 2),
        torch.tensor([[16.0, 40, 48, 56]] * 2),
    )
    crops = crop_components(img, eyes, mouths, 10, 15)
    assert crops["left_eye"].shape == (2, 3, 10, 10) and crops["mouth"].shape == (2, 3, 15, 15)
    assert torch.allclose(crops["right_eye"], torch.full_like(crops["right_eye"], 0.25))


def test_crops_pick_the_right_image_and_place() -> None:
    img = torch.zeros(2, 1, 32, 32)
    img[1, 0, 20:28, 4:12] = 1.0  # a bright patch only in image 1, at x 4..12, y 20..28
    box = torch.tensor([[4.0, 20, 12, 28], [4.0, 20, 12, 28]])
    eyes, mouths = component_rois(box, box, box)
    crops = crop_components(img, eyes, mouths, 4, 4)
    assert crops["left_eye"][0].abs().max() == 0  # image 0 has nothing there
    assert crops["left_eye"][1].mean() > 0.8


def test_component_style_loss_zero_for_equal_features_and_weighted() -> None:
    f = [torch.rand(2, 4, 5, 5), torch.rand(2, 6, 3, 3)]
    assert component_style_loss(f, [t.clone() for t in f], L1Loss()).item() == 0.0
    g0 = [f[0] + 1, f[1]]  # only the first depth differs: weight 0.5
    g1 = [f[0], f[1] + 1]
    l0 = component_style_loss(g0, f, L1Loss()).item()
    l1 = component_style_loss(g1, f, L1Loss()).item()

    def gram(x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        v = x.reshape(n, c, h * w)
        return v @ v.transpose(1, 2) / (c * h * w)

    assert abs(l0 - 0.5 * (gram(g0[0]) - gram(f[0])).abs().mean().item()) < 1e-6
    assert abs(l1 - (gram(g1[1]) - gram(f[1])).abs().mean().item()) < 1e-6


def test_component_style_loss_detaches_the_real_side() -> None:
    fake = [torch.rand(1, 2, 3, 3, requires_grad=True), torch.rand(1, 2, 3, 3, requires_grad=True)]
    real = [torch.rand(1, 2, 3, 3, requires_grad=True), torch.rand(1, 2, 3, 3, requires_grad=True)]
    component_style_loss(fake, real, L1Loss()).backward()
    assert fake[0].grad is not None and real[0].grad is None


def test_gray_for_identity_uses_gfpgan_weights_and_128() -> None:
    img = torch.zeros(1, 3, 64, 64)
    img[:, 0], img[:, 1], img[:, 2] = 1.0, 0.5, -1.0
    gray = gray_for_identity(img)
    assert gray.shape == (1, 1, 128, 128)
    assert torch.allclose(gray, torch.full_like(gray, 0.2989 + 0.5870 * 0.5 - 0.1140), atol=1e-6)

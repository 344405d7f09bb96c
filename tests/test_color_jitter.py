"""Colour jitter (``degradations.color_jitter``) against torchvision's formulas written out here,
for fixed factors, in numpy and in torch batches; hue wrap-around with hand-computed pixels; the
random order and factor draws; the per-channel shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restorekit.data.degradations.color_jitter import (
    JitterDraw,
    JitterRanges,
    adjust_brightness,
    adjust_brightness_np,
    adjust_contrast,
    adjust_contrast_np,
    adjust_hue,
    adjust_hue_np,
    adjust_saturation,
    adjust_saturation_np,
    apply_jitter_np,
    color_shift,
    color_shift_np,
    draw_jitter,
    jitter_batch,
    jitter_ranges,
)
from restorekit.errors import ConfigError


# --------------------------------------------------------------------- torchvision, as it defines them
def tv_gray(img: torch.Tensor) -> torch.Tensor:
    r, g, b = img.unbind(dim=-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(dim=-3)


def tv_blend(img1: torch.Tensor, img2: torch.Tensor | float, ratio: float) -> torch.Tensor:
    return (ratio * img1 + (1.0 - ratio) * img2).clamp(0, 1.0)


def tv_brightness(img: torch.Tensor, f: float) -> torch.Tensor:
    return tv_blend(img, torch.zeros_like(img), f)


def tv_contrast(img: torch.Tensor, f: float) -> torch.Tensor:
    return tv_blend(img, torch.mean(tv_gray(img), dim=(-3, -2, -1), keepdim=True), f)


def tv_saturation(img: torch.Tensor, f: float) -> torch.Tensor:
    return tv_blend(img, tv_gray(img), f)


def tv_rgb2hsv(img: torch.Tensor) -> torch.Tensor:
    r, g, b = img.unbind(dim=-3)
    maxc = torch.max(img, dim=-3).values
    minc = torch.min(img, dim=-3).values
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_divisor = torch.where(eqc, ones, cr)
    rc = (maxc - r) / cr_divisor
    gc = (maxc - g) / cr_divisor
    bc = (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def tv_hsv2rgb(img: torch.Tensor) -> torch.Tensor:
    h, s, v = img.unbind(dim=-3)
    i = torch.floor(h * 6.0)
    f = (h * 6.0) - i
    i = i.to(dtype=torch.int32)
    p = torch.clamp((v * (1.0 - s)), 0.0, 1.0)
    q = torch.clamp((v * (1.0 - s * f)), 0.0, 1.0)
    t = torch.clamp((v * (1.0 - s * (1.0 - f))), 0.0, 1.0)
    i = i % 6
    mask = i.unsqueeze(dim=-3) == torch.arange(6).view(-1, 1, 1)
    a1 = torch.stack((v, q, p, p, t, v), dim=-3)
    a2 = torch.stack((t, v, v, q, p, p), dim=-3)
    a3 = torch.stack((p, p, t, v, v, q), dim=-3)
    a4 = torch.stack((a1, a2, a3), dim=-4)
    return torch.einsum("...ijk, ...xijk -> ...xjk", mask.to(dtype=img.dtype), a4)


def tv_hue(img: torch.Tensor, f: float) -> torch.Tensor:
    h, s, v = tv_rgb2hsv(img).unbind(dim=-3)
    h = (h + f) % 1.0
    return tv_hsv2rgb(torch.stack((h, s, v), dim=-3))


TV = {"brightness": tv_brightness, "contrast": tv_contrast, "saturation": tv_saturation, "hue": tv_hue}
OURS = {
    "brightness": adjust_brightness,
    "contrast": adjust_contrast,
    "saturation": adjust_saturation,
    "hue": adjust_hue,
}
OURS_NP = {
    "brightness": adjust_brightness_np,
    "contrast": adjust_contrast_np,
    "saturation": adjust_saturation_np,
    "hue": adjust_hue_np,
}
CASES = [
    ("brightness", 0.6),
    ("brightness", 1.4),
    ("contrast", 0.5),
    ("contrast", 1.5),
    ("saturation", 0.0),
    ("saturation", 1.5),
    ("hue", -0.1),
    ("hue", 0.07),
    ("hue", 0.5),
    ("hue", -0.5),
]


def _image(seed: int, h: int = 24, w: int = 20) -> torch.Tensor:
    img = torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))
    img[:, 0, 0] = 0.5  # a gray pixel (h undefined: torchvision's eqc branch)
    img[:, 0, 1] = torch.tensor([1.0, 0.0, 0.2])  # hue just below 1 (wraps under +hue)
    img[:, 0, 2] = torch.tensor([0.3, 0.9, 0.9])  # max shared by g and b
    return img


@pytest.mark.parametrize(("op", "factor"), CASES)
def test_each_op_equals_torchvision_in_torch_and_numpy(op: str, factor: float) -> None:
    img = _image(1)
    want = TV[op](img, factor)
    torch.testing.assert_close(OURS[op](img, factor), want, atol=2e-6, rtol=0)
    ours_np = OURS_NP[op](np.ascontiguousarray(img.permute(1, 2, 0).numpy()), factor)
    torch.testing.assert_close(torch.from_numpy(ours_np).permute(2, 0, 1), want, atol=2e-6, rtol=0)


def test_batch_with_one_factor_per_image_equals_single_images() -> None:
    batch = torch.stack([_image(i) for i in range(3)])
    for op, factors in [
        ("brightness", [0.5, 1.0, 1.5]),
        ("contrast", [0.5, 1.2, 1.5]),
        ("hue", [-0.1, 0.0, 0.3]),
    ]:
        out = OURS[op](batch, torch.tensor(factors))
        for i, f in enumerate(factors):
            torch.testing.assert_close(out[i], TV[op](batch[i], f), atol=2e-6, rtol=0)


def test_hand_computed_pixels_including_the_hue_wrap() -> None:
    def px(rgb: list[float]) -> torch.Tensor:
        return torch.tensor(rgb).view(3, 1, 1)

    # red turned by a third of the circle is green, by minus a third blue
    torch.testing.assert_close(
        adjust_hue(px([1.0, 0.0, 0.0]), 1 / 3).flatten(), torch.tensor([0.0, 1.0, 0.0])
    )
    torch.testing.assert_close(
        adjust_hue(px([1.0, 0.0, 0.0]), -1 / 3).flatten(), torch.tensor([0.0, 0.0, 1.0])
    )
    # (1, 0, 0.2) has h = 1 - 0.2/6 = 0.9667; +0.1 wraps to 0.0667: sector 0, f = 0.4 -> (1, 0.4, 0)
    torch.testing.assert_close(
        adjust_hue(px([1.0, 0.0, 0.2]), 0.1).flatten(), torch.tensor([1.0, 0.4, 0.0]), atol=1e-6, rtol=0
    )
    # a gray pixel has no hue and stays; brightness clips at 1; saturation 0 gives the luma
    torch.testing.assert_close(adjust_hue(px([0.4, 0.4, 0.4]), 0.3).flatten(), torch.full((3,), 0.4))
    torch.testing.assert_close(
        adjust_brightness(px([0.8, 0.5, 0.1]), 1.5).flatten(), torch.tensor([1.0, 0.75, 0.15])
    )
    luma = 0.2989 * 0.8 + 0.587 * 0.5 + 0.114 * 0.1
    torch.testing.assert_close(adjust_saturation(px([0.8, 0.5, 0.1]), 0.0).flatten(), torch.full((3,), luma))
    # contrast blends towards the mean luma of the whole image
    # (torchvision's weights sum to 0.9999, so white has luma 0.9999 and the mean is 0.49995)
    two = torch.tensor([[[0.0, 1.0]], [[0.0, 1.0]], [[0.0, 1.0]]])  # a black and a white pixel
    want = 0.5 * two + 0.5 * 0.49995
    torch.testing.assert_close(adjust_contrast(two, 0.5), want, atol=1e-7, rtol=0)


def test_draw_jitter_order_factors_and_skipped_ops() -> None:
    ranges = JitterRanges()
    orders = set()
    for seed in range(40):
        d = draw_jitter(np.random.default_rng(seed), ranges)
        assert sorted(d.order) == [0, 1, 2, 3]
        orders.add(d.order)
        b, c, s, h = d.factors
        assert 0.5 <= b <= 1.5 and 0.5 <= c <= 1.5 and 0.0 <= s <= 1.5 and -0.1 <= h <= 0.1
        assert draw_jitter(np.random.default_rng(seed), ranges) == d  # a pure function of the stream
    assert len(orders) > 10  # the order really is random
    only = jitter_ranges(brightness=[0.9, 1.1], contrast=None, saturation=None, hue=[-0.2, 0.2])
    for seed in range(10):
        d = draw_jitter(np.random.default_rng(seed), only)
        assert sorted(d.order) == [0, 3] and d.factors[1] == 1.0 and d.factors[2] == 1.0


def test_jitter_batch_applies_each_images_own_order() -> None:
    batch = torch.stack([_image(i, 12, 10) for i in range(4)])
    draws = [
        JitterDraw((3, 0, 2, 1), (1.3, 0.7, 0.4, 0.08)),
        None,
        JitterDraw((1, 3), (1.0, 1.4, 1.0, -0.09)),
        JitterDraw((0, 1, 2, 3), (0.6, 1.2, 1.3, 0.02)),
    ]
    out = jitter_batch(batch, draws)
    names = ("brightness", "contrast", "saturation", "hue")
    for i, d in enumerate(draws):
        want = batch[i]
        for op in d.order if d is not None else ():
            want = TV[names[op]](want, d.factors[op])  # type: ignore[union-attr]
        torch.testing.assert_close(out[i], want, atol=3e-6, rtol=0)
        if d is not None:
            hwc = np.ascontiguousarray(batch[i].permute(1, 2, 0).numpy())
            np_out = apply_jitter_np(hwc, d.order, d.factors)
            torch.testing.assert_close(torch.from_numpy(np_out).permute(2, 0, 1), want, atol=3e-6, rtol=0)


def test_color_shift_adds_per_channel_offsets_and_clips() -> None:
    img = torch.full((2, 3, 4, 4), 0.5)
    img[1, :, 0, 0] = 0.99
    shift = torch.tensor([[0.05, -0.05, 0.0], [0.02, 0.0, -0.07]])
    out = color_shift(img, shift)
    torch.testing.assert_close(out[0, :, 1, 1], torch.tensor([0.55, 0.45, 0.5]))
    assert float(out[1, 0, 0, 0]) == 1.0  # clipped
    np_out = color_shift_np(img[0].permute(1, 2, 0).numpy(), shift[0].numpy())
    torch.testing.assert_close(torch.from_numpy(np_out).permute(2, 0, 1), out[0])


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"hue": [-0.6, 0.1]}, "hue: values must be >= -0.5"),
        ({"hue": [-0.1, 0.7]}, "hue: values must be <= 0.5"),
        ({"brightness": [-0.1, 1.0]}, "brightness: values must be >= 0"),
        ({"contrast": [1.5, 0.5]}, "contrast: expected low <= high"),
        ({"saturation": 1.5}, "saturation: expected a [low, high] pair"),
        ({"gamma": [1, 2]}, "gamma: not a jitter option"),
    ],
)
def test_bad_ranges_are_one_line_config_errors(given: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        jitter_ranges(**given)

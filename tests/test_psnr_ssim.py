"""PSNR/SSIM against closed forms, an independent BasicSR-convention reference, and torch vs numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from restorekit.errors import ConfigError
from restorekit.metrics import (
    calculate_psnr,
    calculate_ssim,
    get_metric,
    higher_is_better,
    psnr_batch,
    quantize,
    ssim_batch,
)
from restorekit.metrics.psnr_ssim import bgr2ycbcr, rgb2ycbcr, to_y_channel
from restorekit.registry import METRICS

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ---------------------------------------------------------------------------------------------
# Independent reference of BasicSR 1.4.2's conventions: pure numpy, no cv2, explicit loops of
# elementwise arithmetic instead of np.dot / filter2D.
# ---------------------------------------------------------------------------------------------
def ref_y(img: np.ndarray) -> np.ndarray:
    """Y of a BGR uint8-valued HWC image: float32 /255, float64 BT.601, float32 cast, *255."""
    x = img.astype(np.float32) / np.float32(255.0)
    if x.ndim == 3 and x.shape[2] == 3:
        b, g, r = (x[..., i].astype(np.float64) for i in range(3))
        y = b * 24.966 + g * 128.553 + r * 65.481 + 16.0
        x = (y / 255.0).astype(np.float32)[..., None]
    return x * np.float32(255.0)


def ref_prepare(a: np.ndarray, b: np.ndarray, crop: int, y: bool) -> tuple[np.ndarray, np.ndarray]:
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    if y:
        a, b = ref_y(a), ref_y(b)
    return a.astype(np.float64), b.astype(np.float64)


def ref_psnr(a: np.ndarray, b: np.ndarray, crop: int = 0, y: bool = False) -> float:
    a, b = ref_prepare(a, b, crop, y)
    mse = np.mean((a - b) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ref_window() -> np.ndarray:
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    return np.outer(g, g)


def ref_valid_correlate(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Direct float64 'valid' correlation: sum of shifted copies weighted by the window."""
    k = w.shape[0]
    h, wd = x.shape[0] - k + 1, x.shape[1] - k + 1
    out = np.zeros((h, wd))
    for i in range(k):
        for j in range(k):
            out += w[i, j] * x[i : i + h, j : j + wd]
    return out


def ref_ssim(a: np.ndarray, b: np.ndarray, crop: int = 0, y: bool = False) -> float:
    a, b = ref_prepare(a, b, crop, y)
    w = ref_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for ch in range(a.shape[2]):
        x, z = a[..., ch], b[..., ch]
        mx, mz = ref_valid_correlate(x, w), ref_valid_correlate(z, w)
        sxx = ref_valid_correlate(x * x, w) - mx * mx
        szz = ref_valid_correlate(z * z, w) - mz * mz
        sxz = ref_valid_correlate(x * z, w) - mx * mz
        m = ((2 * mx * mz + c1) * (2 * sxz + c2)) / ((mx * mx + mz * mz + c1) * (sxx + szz + c2))
        vals.append(m.mean())
    return float(np.mean(vals))


def structured_pairs(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random, gradient, checkerboard and saturated image pairs (BGR uint8, odd/even sizes)."""
    pairs = []
    a = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    pairs.append((a, b))
    yy, xx = np.mgrid[0:37, 0:45]
    grad = np.stack([(xx * 5) % 256, (yy * 7) % 256, (xx + yy) * 3 % 256], -1).astype(np.uint8)
    noisy = np.clip(grad + rng.normal(0, 6, grad.shape), 0, 255).round().astype(np.uint8)
    pairs.append((grad, noisy))
    checker = (((yy // 4 + xx // 4) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
    blur = np.clip(checker.astype(np.float64) * 0.8 + 20 + rng.normal(0, 3, checker.shape), 0, 255)
    pairs.append((checker, blur.round().astype(np.uint8)))
    sat = np.clip(rng.normal(128, 200, (33, 35, 3)), 0, 255).astype(np.uint8)
    pairs.append((sat, np.clip(sat.astype(int) + rng.integers(-3, 4, sat.shape), 0, 255).astype(np.uint8)))
    return pairs


# --------------------------------- closed forms and basics ----------------------------------
@pytest.mark.parametrize("d", [1, 3, 17, 128, 255])
def test_constant_images_psnr_closed_form(d: int) -> None:
    a = np.full((20, 24, 3), 0, np.uint8)
    b = np.full((20, 24, 3), d, np.uint8)
    assert abs(calculate_psnr(a, b, 0) - 20 * math.log10(255 / d)) < 1e-10
    assert abs(calculate_psnr(b, a, 3) - 20 * math.log10(255 / d)) < 1e-10


def test_constant_images_y_channel_closed_form() -> None:
    bgr1, bgr2 = (10, 200, 40), (60, 90, 250)
    a = np.broadcast_to(np.array(bgr1, np.uint8), (16, 16, 3))
    b = np.broadcast_to(np.array(bgr2, np.uint8), (16, 16, 3))

    def y601(bgr: tuple[int, int, int]) -> float:
        bl, g, r = bgr
        return 16.0 + (65.481 * r + 128.553 * g + 24.966 * bl) / 255.0

    expected = 20 * math.log10(255 / abs(y601(bgr1) - y601(bgr2)))
    # The float32 step in BasicSR's Y moves the value by < 1 float32 ulp of ~200.
    assert abs(calculate_psnr(a, b, 0, test_y_channel=True) - expected) < 1e-4
    y = to_y_channel(a)
    assert y.shape == (16, 16, 1) and y.dtype == np.float32
    assert abs(float(y[0, 0, 0]) - y601(bgr1)) < 1e-4


def test_ycbcr_helpers_agree_between_channel_orders() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    bgr = rgb[..., ::-1]
    assert np.array_equal(rgb2ycbcr(rgb, y_only=True), bgr2ycbcr(bgr, y_only=True))
    full = bgr2ycbcr(bgr.astype(np.float32) / 255)
    assert full.shape == (5, 6, 3) and full.dtype == np.float32
    assert np.allclose(full[..., 0], rgb2ycbcr(rgb.astype(np.float32) / 255, y_only=True), atol=1e-6)
    with pytest.raises(TypeError):
        bgr2ycbcr(rgb.astype(np.float64))


def test_identical_images() -> None:
    a = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    assert calculate_psnr(a, a.copy(), 2) == math.inf
    assert calculate_psnr(a, a.copy(), 0, test_y_channel=True) == math.inf
    assert abs(calculate_ssim(a, a.copy(), 0) - 1.0) < 1e-15


def test_crop_border_ignores_edges_and_matches_manual_crop() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (30, 32, 3), dtype=np.uint8)
    b = a.copy()
    b[:4] = 255 - b[:4]
    b[:, -4:] = 0
    assert math.isfinite(calculate_psnr(a, b, 0))
    assert calculate_psnr(a, b, 4) == math.inf
    c = rng.integers(0, 256, a.shape, dtype=np.uint8)
    assert calculate_psnr(a, c, 3) == calculate_psnr(a[3:-3, 3:-3], c[3:-3, 3:-3], 0)
    assert calculate_ssim(a, c, 3) == calculate_ssim(a[3:-3, 3:-3], c[3:-3, 3:-3], 0)


def test_chw_order_and_gray() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (20, 22, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (20, 22, 3), dtype=np.uint8)
    chw = (a.transpose(2, 0, 1), b.transpose(2, 0, 1))
    assert calculate_psnr(*chw, 1, input_order="CHW") == calculate_psnr(a, b, 1)
    assert calculate_ssim(*chw, 1, input_order="CHW") == calculate_ssim(a, b, 1)
    assert calculate_psnr(a[..., 0], b[..., 0], 0) == calculate_psnr(a[..., :1], b[..., :1], 0)


def test_bad_inputs_raise_value_error() -> None:
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(16, 16, 3\) vs \(16, 15, 3\)"):
        calculate_psnr(a, a[:, :15], 0)
    with pytest.raises(ValueError, match="input_order"):
        calculate_ssim(a, a, 0, input_order="WHC")
    with pytest.raises(ValueError, match="crop_border"):
        calculate_psnr(a, a, -1)
    with pytest.raises(ValueError, match="at least 11x11"):
        calculate_ssim(a, a, 3)
    t = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\(1, 3, 16, 16\) vs \(1, 3, 16, 15\)"):
        psnr_batch(t, t[..., :15])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_batch(t, t, 3)


# ---------------------------------- independent reference ------------------------------------
@pytest.mark.parametrize("crop,y", [(0, False), (4, False), (0, True), (3, True)])
def test_numpy_metrics_match_independent_reference(crop: int, y: bool) -> None:
    for a, b in structured_pairs(np.random.default_rng(10)):
        assert abs(calculate_psnr(a, b, crop, test_y_channel=y) - ref_psnr(a, b, crop, y)) < 1e-10
        assert abs(calculate_ssim(a, b, crop, test_y_channel=y) - ref_ssim(a, b, crop, y)) < 1e-12
    gray_a, gray_b = structured_pairs(np.random.default_rng(11))[1]
    ga, gb = gray_a[..., 1], gray_b[..., 1]
    assert abs(calculate_psnr(ga, gb, crop, test_y_channel=y) - ref_psnr(ga, gb, crop, y)) < 1e-10
    assert abs(calculate_ssim(ga, gb, crop, test_y_channel=y) - ref_ssim(ga, gb, crop, y)) < 1e-12


# ------------------------------------- torch vs numpy ----------------------------------------
def bgr_uint8(t: torch.Tensor) -> np.ndarray:
    """What BasicSR's tensor2img makes of one CHW RGB tensor: float32, clamp, BGR, round, uint8."""
    x = t.detach().float().cpu().clamp(0, 1).numpy().transpose(1, 2, 0)
    x = x[..., 0] if x.shape[2] == 1 else x[..., ::-1]
    return (x * 255.0).round().astype(np.uint8)


def random_pair(n: int, c: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(n, c, h, w, generator=g)
    out = gt + 0.05 * torch.randn(n, c, h, w, generator=g)  # partly outside [0, 1]: clamping
    out[0, :, :3, :3] = gt[0, :, :3, :3]
    return out, gt


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n,c,crop,y", [(1, 3, 0, False), (4, 3, 4, True), (3, 3, 2, False), (5, 1, 0, True)])
def test_batched_torch_matches_numpy(device: str, n: int, c: int, crop: int, y: bool) -> None:
    out, gt = random_pair(n, c, 29, 38, seed=n * 10 + c)
    out, gt = out.to(device), gt.to(device)
    p = psnr_batch(out, gt, crop, y)
    s = ssim_batch(out, gt, crop, y)
    assert p.shape == s.shape == (n,) and p.dtype == s.dtype == torch.float64
    assert p.device.type == device
    for i in range(n):
        a, b = bgr_uint8(out[i]), bgr_uint8(gt[i])
        assert abs(p[i].item() - calculate_psnr(a, b, crop, test_y_channel=y)) < 1e-9
        assert abs(s[i].item() - calculate_ssim(a, b, crop, test_y_channel=y)) < 1e-11


@pytest.mark.parametrize("device", DEVICES)
def test_batched_identical_is_inf_and_one(device: str) -> None:
    gt = torch.rand(2, 3, 16, 16, device=device)
    out = gt.clone()
    out[1, 0, 5, 5] += 0.5
    p = psnr_batch(out, gt)
    assert p[0].item() == math.inf and math.isfinite(p[1].item())
    assert abs(ssim_batch(gt, gt.clone(), test_y_channel=True) - 1.0).max().item() < 1e-15


def test_quantize_rounds_half_to_even_like_numpy() -> None:
    # float32 values v with float32(v * 255) exactly k + 0.5: BasicSR rounds them half to even.
    k = np.arange(0, 255)
    v = ((k + 0.5) / 255.0).astype(np.float32)
    halves = (v * np.float32(255.0)) == (k + 0.5)
    assert halves.sum() > 50  # plenty of exact half-way cases
    v, k = v[halves], k[halves]
    q = quantize(torch.from_numpy(v)).numpy()
    assert np.array_equal(q, np.where(k % 2 == 0, k, k + 1))
    assert np.array_equal(q, (v * 255.0).round())
    # And end to end: images made only of half-way values agree with the uint8 path.
    img = torch.from_numpy(np.resize(v, 3 * 16 * 16).reshape(1, 3, 16, 16))
    ref = torch.zeros_like(img)
    expected = calculate_psnr(bgr_uint8(img[0]), bgr_uint8(ref[0]), 0)
    assert abs(psnr_batch(img, ref).item() - expected) < 1e-9
    assert quantize(torch.tensor([-0.2, 1.7, 0.0, 1.0], dtype=torch.float64)).tolist() == [0, 255, 0, 255]


# ------------------------------------- registry helpers --------------------------------------
def test_get_metric_binds_checked_options() -> None:
    assert METRICS.get("psnr") is psnr_batch and METRICS.get("ssim") is ssim_batch
    out, gt = random_pair(2, 3, 24, 24, seed=5)
    fn = get_metric("psnr", crop_border="4", test_y_channel=True)  # YAML-ish strings coerced
    assert torch.equal(fn(out, gt), psnr_batch(out, gt, crop_border=4, test_y_channel=True))
    assert torch.equal(get_metric("ssim")(out, gt), ssim_batch(out, gt))
    with pytest.raises(ConfigError, match=r"crop_bordr.*did you mean 'crop_border'"):
        get_metric("psnr", crop_bordr=4)
    with pytest.raises(ConfigError, match=r"crop_border.*int"):
        get_metric("ssim", crop_border="abc")
    with pytest.raises(ConfigError, match=r"known: .*psnr.*ssim"):
        get_metric("pnsr")
    assert higher_is_better("psnr") and higher_is_better("ssim")
    with pytest.raises(ConfigError, match="unknown metric"):
        higher_is_better("nope")

"""NIQE: estimators on samples with known parameters, MSCN against direct sums, the final distance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import gennorm

from restorekit.errors import DataError, WeightsError
from restorekit.metrics import niqe as nq


def _write_params(path: Path, seed: int = 0, window: np.ndarray | None = None) -> Path:
    """A params file in BasicSR's niqe_pris_params.npz layout with made-up pristine statistics."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(36, 36))
    np.savez(
        path,
        mu_pris_param=rng.normal(size=(1, 36)),
        cov_pris_param=a @ a.T / 36 + 0.1 * np.eye(36),
        gaussian_window=nq.gaussian_window() if window is None else window,
    )
    return path


def _textured(h: int, w: int, seed: int) -> np.ndarray:
    """A natural-ish 8-bit gray image: smooth shapes plus noise (no flat blocks)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 120 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + rng.normal(0, 12, size=(h, w))
    return np.clip(np.round(img), 0, 255)


def test_gaussian_window_is_matlab_fspecial() -> None:
    w = nq.gaussian_window()
    assert w.shape == (7, 7) and w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w.T)
    sigma = 7 / 6
    assert w[3, 4] / w[3, 3] == pytest.approx(np.exp(-1 / (2 * sigma**2)))
    assert w[0, 0] / w[3, 3] == pytest.approx(np.exp(-18 / (2 * sigma**2)))


def test_mscn_of_constant_is_zero_and_matches_direct_sums() -> None:
    w = nq.gaussian_window()
    np.testing.assert_allclose(nq.mscn(np.full((20, 24), 87.0), w), 0.0, atol=1e-12)
    img = np.random.default_rng(1).uniform(0, 255, size=(15, 18))
    padded = np.pad(img, 3, mode="edge")  # scipy's mode="nearest"
    mu = np.zeros_like(img)
    sq = np.zeros_like(img)
    for dy in range(7):
        for dx in range(7):
            patch = padded[dy : dy + 15, dx : dx + 18]
            mu += w[dy, dx] * patch
            sq += w[dy, dx] * patch**2
    expected = (img - mu) / (np.sqrt(np.abs(sq - mu**2)) + 1)
    np.testing.assert_allclose(nq.mscn(img, w), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("alpha,beta", [(0.8, 1.3), (2.0, 0.5), (3.5, 2.0)])
def test_ggd_estimator_recovers_parameters(alpha: float, beta: float) -> None:
    x = gennorm.rvs(alpha, scale=beta, size=200_000, random_state=np.random.default_rng(2))
    a_hat, b_hat = nq.estimate_ggd_param(x)
    assert a_hat == pytest.approx(alpha, rel=0.03)
    assert b_hat == pytest.approx(beta, rel=0.02)


@pytest.mark.parametrize("alpha,beta_l,beta_r", [(1.5, 0.6, 1.2), (0.7, 1.0, 0.4), (2.5, 1.0, 1.0)])
def test_aggd_estimator_recovers_parameters(alpha: float, beta_l: float, beta_r: float) -> None:
    # AGGD: |x| is GGD(alpha) scaled by the side's beta; the left side has mass beta_l/(beta_l+beta_r).
    rng = np.random.default_rng(3)
    n = 200_000
    mag = np.abs(gennorm.rvs(alpha, size=n, random_state=rng))
    left = rng.random(n) < beta_l / (beta_l + beta_r)
    x = np.where(left, -beta_l * mag, beta_r * mag)
    a_hat, bl_hat, br_hat = nq.estimate_aggd_param(x)
    assert a_hat == pytest.approx(alpha, rel=0.03)
    assert bl_hat == pytest.approx(beta_l, rel=0.02)
    assert br_hat == pytest.approx(beta_r, rel=0.02)
    if beta_l == beta_r:  # the symmetric case is the GGD fit
        assert a_hat == pytest.approx(nq.estimate_ggd_param(x)[0], abs=1e-3)


def test_block_features_of_gaussian_noise() -> None:
    block = np.random.default_rng(4).normal(size=(96, 96))
    feat = nq.compute_feature(block)
    assert len(feat) == 18
    assert feat[0] == pytest.approx(2.0, abs=0.15)  # Gaussian → shape 2
    # Neighbour products of independent samples are symmetric: mean ≈ 0, equal left/right scales.
    for k in range(4):
        _, mean, bl, br = feat[2 + 4 * k : 6 + 4 * k]
        assert abs(mean) < 0.05 and bl == pytest.approx(br, rel=0.1)


def test_niqe_distance_formula_and_cropping(tmp_path: Path) -> None:
    params = nq.load_niqe_params(_write_params(tmp_path / "p.npz"))
    img = _textured(230, 200, 5)
    feats = nq.niqe_features(img, params.gaussian_window)
    assert feats.shape == (4, 36) and np.isfinite(feats).all()
    # Only whole 96x96 blocks count: the crop to 192x192 gives the same number.
    value = nq.niqe(img, params.mu_pris_param, params.cov_pris_param, params.gaussian_window)
    cropped = nq.niqe(img[:192, :192], params.mu_pris_param, params.cov_pris_param, params.gaussian_window)
    assert value == cropped
    # Eq. 10 with a full-rank pooled covariance, computed with solve instead of pinv.
    d = params.mu_pris_param[0] - feats.mean(axis=0)
    pooled = (params.cov_pris_param + np.cov(feats, rowvar=False)) / 2
    assert value == pytest.approx(np.sqrt(d @ np.linalg.solve(pooled, d)), rel=1e-8)
    # An image whose features equal the pristine mean is at distance 0.
    assert nq.niqe(
        img, feats.mean(axis=0)[None], params.cov_pris_param, params.gaussian_window
    ) == pytest.approx(0.0, abs=1e-12)


def test_calculate_niqe_layouts_and_determinism(tmp_path: Path) -> None:
    p = _write_params(tmp_path / "p.npz")
    rng = np.random.default_rng(6)
    bgr = np.stack([_textured(200, 210, s) for s in (7, 8, 9)], axis=2).astype(np.uint8)
    bgr[:, :, 0] = np.clip(bgr[:, :, 0].astype(int) + rng.integers(-3, 4, size=(200, 210)), 0, 255)
    v = nq.calculate_niqe(bgr, 0, params_path=p)
    assert np.isfinite(v) and v > 0
    assert nq.calculate_niqe(bgr, 0, params_path=p) == v
    assert nq.calculate_niqe(bgr.transpose(2, 0, 1), 0, input_order="CHW", params_path=p) == v
    # 'HW' on the Y channel computed independently (BT.601, BGR order, offset 16) gives the same.
    b, g, r = (bgr[:, :, i].astype(np.float64) for i in range(3))
    y = np.round(16 + (24.966 * b + 128.553 * g + 65.481 * r) / 255)
    assert nq.calculate_niqe(y, 0, input_order="HW", params_path=p) == pytest.approx(v, rel=1e-6)
    with_crop = nq.calculate_niqe(bgr, 4, params_path=p)
    assert with_crop == pytest.approx(nq.calculate_niqe(bgr[4:-4, 4:-4], 0, params_path=p))
    assert nq.calculate_niqe(bgr, 0, convert_to="gray", params_path=p) != v


def test_niqe_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTOREKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsError) as info:
        nq.calculate_niqe(np.zeros((100, 100, 3)), 0)
    assert "niqe_pris_params.npz" in str(info.value) and str(tmp_path / "cache") in str(info.value)
    bad = _write_params(tmp_path / "bad.npz", window=np.ones((5, 5)))
    with pytest.raises(WeightsError, match=r"bad\.npz: gaussian_window has shape \(5, 5\)"):
        nq.load_niqe_params(bad)
    good = _write_params(tmp_path / "good.npz")
    with pytest.raises(DataError, match="at least 96x96 pixels, got 90x120"):
        nq.calculate_niqe(np.zeros((90, 120)), 0, input_order="HW", params_path=good)

"""NIQE, the no-reference "naturalness" score, MATLAB-compatible as in BasicSR.

NIQE (Mittal et al., "Making a Completely Blind Image Quality Analyzer") fits a multivariate
Gaussian to 36 natural-scene statistics of 96x96 blocks and measures how far it lies from a
Gaussian fitted once on pristine images. Reproducing MATLAB's numbers needs every detail:

* MSCN coefficients with a 7x7 Gaussian window (σ = 7/6, from the parameters file) and
  ``nearest`` border handling, ``(I − μ) / (σ + 1)``;
* per block: an AGGD fit of the coefficients (shape, mean scale) and of the four neighbour
  products (shape, mean, left and right scales), with MATLAB's 0.2:0.001:10 shape table;
* two scales, the second after MATLAB's antialiased bicubic ``imresize`` by 0.5;
* the Y channel (BT.601 of BGR in [0, 255]) rounded to integers, as MATLAB reads uint8.

The pristine model (``niqe_pris_params.npz``: ``mu_pris_param`` (1, 36), ``cov_pris_param``
(36, 36), ``gaussian_window`` (7, 7)) is the file shipped with BasicSR; it is not bundled here,
so it is found with ``resolve_weights`` like any other pretrained file.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma as gamma_fn

from restorekit.data.degradations import imresize
from restorekit.errors import DataError, WeightsError
from restorekit.weights import resolve_weights

NIQE_PARAMS_FILENAME = "niqe_pris_params.npz"
NIQE_WHAT = "NIQE needs BasicSR's pristine model (basicsr/metrics/niqe_pris_params.npz)"
BLOCK_SIZE = 96


@dataclass(frozen=True)
class NIQEParams:
    """The pristine multivariate Gaussian and the MSCN window."""

    mu_pris_param: np.ndarray  # (1, 36)
    cov_pris_param: np.ndarray  # (36, 36)
    gaussian_window: np.ndarray  # (7, 7)


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: a normalised 2-D Gaussian (the NIQE window)."""
    r = (size - 1) / 2
    x = np.arange(-r, r + 1)
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def load_niqe_params(path: str | os.PathLike[str] | None = None) -> NIQEParams:
    """Read the pristine parameters from ``path`` or ``cache_dir()/niqe_pris_params.npz``."""
    p = resolve_weights(path, NIQE_PARAMS_FILENAME, NIQE_WHAT)
    expected = {"mu_pris_param": (1, 36), "cov_pris_param": (36, 36), "gaussian_window": (7, 7)}
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k], dtype=np.float64) for k in expected if k in f.files}
    except Exception as exc:
        raise WeightsError(f"{p}: cannot be read as NIQE parameters ({exc})") from None
    for key, shape in expected.items():
        if key not in arrays:
            raise WeightsError(f"{p}: NIQE parameters need key {key!r} with shape {shape}")
        if arrays[key].shape != shape:
            raise WeightsError(f"{p}: {key} has shape {arrays[key].shape}, expected {shape}")
    return NIQEParams(**arrays)


@lru_cache(maxsize=1)
def _shape_table() -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's candidate shapes 0.2:0.001:10 and ρ(α) = Γ(2/α)² / (Γ(1/α)Γ(3/α)) for each."""
    alphas = np.arange(0.2, 10.001, 0.001)
    inv = np.reciprocal(alphas)
    ratios = np.square(gamma_fn(inv * 2)) / (gamma_fn(inv) * gamma_fn(inv * 3))
    return alphas, ratios


def estimate_ggd_param(x: np.ndarray) -> tuple[float, float]:
    """Moment-matching fit of a zero-mean generalised Gaussian: (shape α, scale β).

    ``E|x|² / (E|x|)²`` is matched against the table; β = σ·sqrt(Γ(1/α)/Γ(3/α)).
    NIQE itself uses the asymmetric fit below; this is its symmetric special case (BRISQUE's).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    alphas, ratios = _shape_table()
    sigma_sq = np.mean(x**2)
    rho = np.mean(np.abs(x)) ** 2 / sigma_sq
    alpha = float(alphas[np.argmin((ratios - rho) ** 2)])
    beta = float(np.sqrt(sigma_sq) * np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha)))
    return alpha, beta


def estimate_aggd_param(block: np.ndarray) -> tuple[float, float, float]:
    """Fit an asymmetric generalised Gaussian: (shape α, left scale β_l, right scale β_r).

    Left/right standard deviations come from the negative/positive samples; the shape is the
    table entry closest (in squared difference) to the bias-corrected ratio of Lasmar et al.
    """
    x = np.asarray(block).ravel()
    alphas, ratios = _shape_table()
    left_std = np.sqrt(np.mean(x[x < 0] ** 2))
    right_std = np.sqrt(np.mean(x[x > 0] ** 2))
    gammahat = left_std / right_std
    rhat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
    rhatnorm = (rhat * (gammahat**3 + 1) * (gammahat + 1)) / ((gammahat**2 + 1) ** 2)
    alpha = alphas[np.argmin((ratios - rhatnorm) ** 2)]
    factor = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    return float(alpha), float(left_std * factor), float(right_std * factor)


def mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (I − μ) / (σ + 1) of a 2-D image.

    Like BasicSR, the result keeps the image's dtype (SciPy's ``convolve`` does), which is part
    of matching its numbers on the float32 second scale.
    """
    mu = convolve(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(np.square(img), window, mode="nearest") - np.square(mu)))
    return (img - mu) / (sigma + 1)


def compute_feature(block: np.ndarray) -> list[float]:
    """The 18 NIQE features of one MSCN block (AGGD of it and of its 4 neighbour products)."""
    alpha, beta_l, beta_r = estimate_aggd_param(block)
    feat = [alpha, (beta_l + beta_r) / 2]
    # Products with the right, lower, lower-right and lower-left neighbours (MATLAB circshift).
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        pair = block * np.roll(block, shift, axis=(0, 1))
        alpha, beta_l, beta_r = estimate_aggd_param(pair)
        mean = (beta_r - beta_l) * (gamma_fn(2 / alpha) / gamma_fn(1 / alpha))
        feat.extend([alpha, mean, beta_l, beta_r])
    return feat


def _downscale_half(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` (bicubic, antialiased) of a [0, 255] image, in float32.

    float32 like BasicSR, whose ``imresize`` always works on a ``FloatTensor``.
    """
    return imresize((img / 255.0).astype(np.float32), 0.5, antialiasing=True) * 255.0


def niqe_features(
    img: np.ndarray,
    gaussian_window: np.ndarray,
    block_size_h: int = BLOCK_SIZE,
    block_size_w: int = BLOCK_SIZE,
) -> np.ndarray:
    """The (blocks, 36) feature matrix of a 2-D image in [0, 255]: 18 per block at each of 2 scales.

    The image is cropped to whole blocks; blocks do not overlap (the official setting). At the
    second scale the same blocks, halved, are read from the downscaled image.
    """
    if img.ndim != 2:
        raise DataError(f"NIQE expects a 2-D gray or Y image, got shape {img.shape}")
    h, w = img.shape
    num_h, num_w = math.floor(h / block_size_h), math.floor(w / block_size_w)
    if num_h == 0 or num_w == 0:
        raise DataError(f"NIQE needs an image of at least {block_size_h}x{block_size_w} pixels, got {h}x{w}")
    img = img[: num_h * block_size_h, : num_w * block_size_w]

    per_scale = []
    for scale in (1, 2):
        coeffs = mscn(img, gaussian_window)
        feats = []
        for iw in range(num_w):
            for ih in range(num_h):
                rows = slice(ih * block_size_h // scale, (ih + 1) * block_size_h // scale)
                cols = slice(iw * block_size_w // scale, (iw + 1) * block_size_w // scale)
                feats.append(compute_feature(coeffs[rows, cols]))
        per_scale.append(np.array(feats))
        if scale == 1:
            img = _downscale_half(img)
    return np.concatenate(per_scale, axis=1)


def niqe(
    img: np.ndarray,
    mu_pris_param: np.ndarray,
    cov_pris_param: np.ndarray,
    gaussian_window: np.ndarray,
    block_size_h: int = BLOCK_SIZE,
    block_size_w: int = BLOCK_SIZE,
) -> float:
    """NIQE of a 2-D gray/Y image in [0, 255] (float), given the pristine model.

    sqrt((μ_p − μ_d)ᵀ pinv((Σ_p + Σ_d) / 2) (μ_p − μ_d)), Eq. 10 of the paper, where (μ_d, Σ_d)
    is the Gaussian fitted to the image's block features.
    """
    dist = niqe_features(img, gaussian_window, block_size_h, block_size_w)
    # Flat blocks give NaN features (0/0); MATLAB's nanmean/nancov skip them.
    mu_dist = np.nanmean(dist, axis=0)
    cov_dist = np.cov(dist[~np.isnan(dist).any(axis=1)], rowvar=False)
    invcov = np.linalg.pinv((cov_pris_param + cov_dist) / 2)
    d = mu_pris_param - mu_dist
    return float(np.squeeze(np.sqrt(d @ invcov @ np.transpose(d))))


def _to_y_channel(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of float32 BGR in [0, 255], step by step as BasicSR's ``to_y_channel``.

    The float32 → float64 → float32 round trips are kept on purpose: they decide how some
    values round to integers afterwards. A one-channel image passes through unchanged in value.
    """
    x = img.astype(np.float32) / 255.0
    if x.shape[2] == 3:
        y = (np.dot(x, [24.966, 128.553, 65.481]) + 16.0) / 255.0
        x = y.astype(np.float32)[:, :, None]
    return x * 255.0


def calculate_niqe(
    img: np.ndarray,
    crop_border: int,
    input_order: str = "HWC",
    convert_to: str = "y",
    params_path: str | os.PathLike[str] | None = None,
) -> float:
    """NIQE of an image with uint8 values (any int/float dtype) in BGR order, as BasicSR.

    ``input_order`` is 'HW', 'HWC' or 'CHW'; colour images are reduced to the Y channel
    (``convert_to='y'``) or OpenCV gray (``'gray'``). ``crop_border`` pixels are dropped on each
    side. ``params_path`` overrides the cached ``niqe_pris_params.npz``. Lower is better.
    """
    params = load_niqe_params(params_path)
    if input_order not in ("HW", "HWC", "CHW"):
        raise DataError(f"NIQE input_order must be 'HW', 'HWC' or 'CHW', got {input_order!r}")
    if convert_to not in ("y", "gray"):
        raise DataError(f"NIQE convert_to must be 'y' or 'gray', got {convert_to!r}")
    x = np.asarray(img).astype(np.float32)
    if input_order != "HW":
        if x.ndim == 2:
            x = x[:, :, None]
        if input_order == "CHW":
            x = x.transpose(1, 2, 0)
        if convert_to == "y":
            x = _to_y_channel(x)
        elif x.shape[2] == 3:
            x = cv2.cvtColor(x / 255.0, cv2.COLOR_BGR2GRAY) * 255.0
        x = np.squeeze(x)
    if crop_border:
        x = x[crop_border:-crop_border, crop_border:-crop_border]
    # MATLAB reads uint8 images: rounding here is what makes the numbers agree.
    x = x.round()
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice" on flat blocks
        return niqe(x, params.mu_pris_param, params.cov_pris_param, params.gaussian_window)

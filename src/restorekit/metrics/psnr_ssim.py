"""PSNR and SSIM on uint8-valued numpy images, exactly as BasicSR 1.4.2 computes them.

Papers compare super-resolution models by numbers produced with BasicSR's ``calculate_psnr`` /
``calculate_ssim``, so every step that can move the last digits is reproduced here on purpose:

* inputs are HWC **BGR** images holding values in [0, 255] (any numeric dtype);
* ``crop_border`` removes that many pixels from each edge before anything else;
* ``test_y_channel`` uses the BT.601 ("MATLAB ``rgb2ycbcr``") luma of ``x / 255`` computed in
  float32 → float64 dot product, ``+ 16``, ``/ 255``, cast to **float32**, ``* 255`` — the float32
  cast alone moves PSNR by up to ~1e-6 dB, so it is not "simplified" away;
* the maths is float64; PSNR is ``inf`` for identical images;
* SSIM uses an 11×11 Gaussian window (σ = 1.5) applied with ``cv2.filter2D`` over the valid
  region only, per channel, then averaged over channels (no MATLAB-style downsampling).

The batched torch versions used during validation live in ``psnr_ssim_torch`` and are tested
against these functions.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from restorekit.data.color import bgr2ycbcr, rgb2ycbcr  # noqa: F401  (rgb2ycbcr: public here too)

SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5


def reorder_image(img: np.ndarray, input_order: str = "HWC") -> np.ndarray:
    """Return ``img`` as HWC; a 2-D (gray) image becomes ``(H, W, 1)`` whatever the order.

    (BasicSR 1.4.2 transposes a 2-D image given with ``input_order='CHW'`` into ``(W, 1, H)``;
    that is a bug, not a convention, so it is not reproduced.)
    """
    if input_order not in ("HWC", "CHW"):
        raise ValueError(f"input_order: expected 'HWC' or 'CHW', got {input_order!r}")
    img = np.asarray(img)
    if img.ndim == 2:
        return img[..., None]
    if img.ndim != 3:
        raise ValueError(f"expected a 2-D or 3-D image array, got shape {img.shape}")
    return img.transpose(1, 2, 0) if input_order == "CHW" else img


def to_y_channel(img: np.ndarray) -> np.ndarray:
    """Y channel (float32, range [0, 255], not rounded) of an HWC BGR image in [0, 255].

    Images that are not 3-channel are returned as ``float32(img) / 255 * 255`` — the same
    (slightly lossy) float32 round trip BasicSR applies, so gray images match it too.
    """
    x = img.astype(np.float32) / 255.0
    if x.ndim == 3 and x.shape[2] == 3:
        x = bgr2ycbcr(x, y_only=True)[..., None]
    return x * 255.0


def _prepare(
    img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str, test_y_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Shared front half of PSNR and SSIM: check, reorder, crop, optional Y, float64."""
    img, img2 = np.asarray(img), np.asarray(img2)
    if img.shape != img2.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs {img2.shape}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ValueError(f"crop_border: expected an integer >= 0, got {crop_border!r}")
    img = reorder_image(img, input_order)
    img2 = reorder_image(img2, input_order)
    if crop_border:
        if 2 * crop_border >= min(img.shape[0], img.shape[1]):
            raise ValueError(f"crop_border={crop_border} leaves nothing of an image of shape {img.shape}")
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border, ...]
    if test_y_channel:
        img = to_y_channel(img)
        img2 = to_y_channel(img2)
    return img.astype(np.float64), img2.astype(np.float64)


def calculate_psnr(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int,
    input_order: str = "HWC",
    test_y_channel: bool = False,
) -> float:
    """PSNR in dB between two images with values in [0, 255] (BGR when ``test_y_channel``).

    ``inf`` when the (cropped) images are identical, as in BasicSR.
    """
    a, b = _prepare(img, img2, crop_border, input_order, test_y_channel)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0 * 255.0 / mse))


@lru_cache(maxsize=1)
def _ssim_window() -> np.ndarray:
    """The 11×11 float64 window BasicSR uses: outer product of OpenCV's 1-D Gaussian."""
    kernel = cv2.getGaussianKernel(SSIM_WINDOW_SIZE, SSIM_SIGMA)
    window = np.outer(kernel, kernel.transpose())
    window.setflags(write=False)
    return window


def _ssim_channel(img: np.ndarray, img2: np.ndarray) -> float:
    """Mean SSIM map of one float64 channel in [0, 255], valid region only."""
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    window = _ssim_window()
    m = SSIM_WINDOW_SIZE // 2

    def filt(x: np.ndarray) -> np.ndarray:
        # filter2D correlates; the window is symmetric so this is also a convolution.
        return cv2.filter2D(np.ascontiguousarray(x), -1, window)[m:-m, m:-m]

    mu1 = filt(img)
    mu2 = filt(img2)
    mu1_sq = mu1**2
    mu2_sq = mu2**2
    mu1_mu2 = mu1 * mu2
    sigma1_sq = filt(img**2) - mu1_sq
    sigma2_sq = filt(img2**2) - mu2_sq
    sigma12 = filt(img * img2) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2)
    )
    return ssim_map.mean()


def calculate_ssim(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int,
    input_order: str = "HWC",
    test_y_channel: bool = False,
) -> float:
    """SSIM between two images with values in [0, 255], per channel then averaged.

    The (cropped) images must be at least 11×11; BasicSR would silently return NaN instead.
    """
    a, b = _prepare(img, img2, crop_border, input_order, test_y_channel)
    if min(a.shape[0], a.shape[1]) < SSIM_WINDOW_SIZE:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} after cropping, "
            f"got {a.shape[0]}x{a.shape[1]}"
        )
    ssims = [_ssim_channel(a[..., i], b[..., i]) for i in range(a.shape[2])]
    return float(np.array(ssims).mean())

"""BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` (studio swing), the convention of BasicSR's metrics
(``test_y_channel``) and of its Y-channel datasets (``color: y``). It lives under ``data`` so
that datasets and metrics share one definition without datasets importing ``metrics``.
"""

from __future__ import annotations

import numpy as np

_BGR_TO_Y = [24.966, 128.553, 65.481]
_RGB_TO_Y = [65.481, 128.553, 24.966]
_BGR_TO_YCBCR = [[24.966, 112.0, -18.214], [128.553, -74.203, -93.786], [65.481, -37.797, 112.0]]
_RGB_TO_YCBCR = [[65.481, -37.797, 112.0], [128.553, -74.203, -93.786], [24.966, 112.0, -18.214]]
_YCBCR_OFFSET = [16, 128, 128]


def _to_unit_float32(img: np.ndarray) -> tuple[np.ndarray, np.dtype]:
    """uint8 [0, 255] or float32 [0, 1] → float32 [0, 1], as BasicSR's colour helpers accept."""
    dtype = img.dtype
    if dtype == np.uint8:
        return img.astype(np.float32) / 255.0, dtype
    if dtype == np.float32:
        return img.astype(np.float32), dtype
    raise TypeError(f"colour conversion expects a uint8 [0,255] or float32 [0,1] image, got {dtype}")


def _from_unit_range(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Map a [0, 255]-valued result back to the caller's dtype and range."""
    if dtype == np.uint8:
        return img.round().astype(np.uint8)
    return (img / 255.0).astype(np.float32)


def bgr2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """BT.601 YCbCr of a BGR image (uint8 in [0,255] or float32 in [0,1]); same dtype and range out.

    This is MATLAB's ``rgb2ycbcr`` (studio swing, Y in [16, 235]), not OpenCV's JPEG ``YCrCb``.
    """
    x, dtype = _to_unit_float32(img)
    if y_only:
        out = np.dot(x, _BGR_TO_Y) + 16.0
    else:
        out = np.matmul(x, _BGR_TO_YCBCR) + _YCBCR_OFFSET
    return _from_unit_range(out, dtype)


def rgb2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """The RGB-order twin of :func:`bgr2ycbcr`."""
    x, dtype = _to_unit_float32(img)
    if y_only:
        out = np.dot(x, _RGB_TO_Y) + 16.0
    else:
        out = np.matmul(x, _RGB_TO_YCBCR) + _YCBCR_OFFSET
    return _from_unit_range(out, dtype)

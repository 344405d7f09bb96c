"""Sample types, colour fix, fidelity blend and linear-light paste-back of restored faces.

Spaces, chosen so the user-visible knobs do what they say:

* **samples**: the pipeline keeps the input's sample type (uint8, uint16, float32 in [0, 1]) for
  everything it hands back; floats in [0, 1] are what the networks and blends see. 16-bit goes
  straight to float and back, never through 8 bits.
* **colour fix** (``match_mean_color``): the mean CIE Lab colour (OpenCV's float Lab: sRGB, D65,
  L in 0–100) of the restored crop is shifted onto the input crop's. A shift keeps every detail
  the network made and only moves the cast (GFPGAN's darker / redder faces, issue #188); matching
  the means is exact in Lab, and the few iterations only undo what clipping to the sRGB gamut
  moved. The result's mean ΔE76 to the input is below ``COLOR_TOLERANCE`` (0.5) unless the
  gamut prevents it (a face pushed to pure black or white has no room to move).
* **fidelity** (``fidelity_blend``): ``(1 − f)·restored + f·input`` in *linear light* (the sRGB
  transfer function undone): a mix of two faces is then a mix of their light, not of their
  gamma-encoded numbers, which darkens the mid-tones of an sRGB average. f = 0 and f = 1 return
  the restored or the input crop itself (no arithmetic), so both ends are exact in any sample type.
* **paste-back** (``paste_face_into``): ``m·face + (1 − m)·background`` in linear light too (a
  feathered edge then has no dark halo), computed only on the face's bounding box and written
  only where the mask is > 0: every other pixel is the background upscale, bit for bit.
"""

from __future__ import annotations

import cv2
import numpy as np

from restorekit.data.io import check_unit_floats
from restorekit.errors import DataError

UNITS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
COLOR_TOLERANCE = 0.5  # the ΔE76 of the means the colour fix iterates to
COLOR_ITERATIONS = 4


def sample_unit(dtype: np.dtype) -> float | None:
    """255 / 65535 for integer samples, None for float32 (already in [0, 1])."""
    return UNITS.get(np.dtype(dtype))


def check_samples(img: np.ndarray) -> None:
    """A one-line ``DataError`` unless ``img`` is uint8, uint16 or float32/float64 HW / HWC (1–4 channels)."""
    if not isinstance(img, np.ndarray):
        raise DataError(f"face input: expected a numpy image, got {type(img).__name__}")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 2, 3, 4)) or img.size == 0:
        raise DataError(f"face input: expected an HW or HWC image (1-4 channels), got {img.shape}")
    if np.dtype(img.dtype) not in UNITS and img.dtype.kind != "f":
        raise DataError(f"face input: expected uint8, uint16 or float samples, got {img.dtype}")
    if img.dtype.kind == "f":
        check_unit_floats(img, "face input")


def to_float(img: np.ndarray) -> np.ndarray:
    """Samples as float32 in [0, 1] (integer samples divided by their top value)."""
    unit = sample_unit(img.dtype)
    if unit is None:
        return np.asarray(img, dtype=np.float32)
    return np.divide(img, np.float32(unit), dtype=np.float32)


def from_float(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float samples clipped to [0, 1] and quantised (rounded) to ``dtype``; float stays float32."""
    clipped = np.clip(img, 0.0, 1.0)
    unit = sample_unit(dtype)
    if unit is None:
        return clipped.astype(np.float32, copy=False)
    return np.round(clipped * unit).astype(dtype)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """An 8-bit copy (for the detector and ParseNet, which were trained on 8-bit photos)."""
    if img.dtype == np.uint8:
        return img
    return from_float(to_float(img), np.dtype(np.uint8))


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """The sRGB decoding function (IEC 61966-2-1) on float32 in [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """The sRGB encoding function, the inverse of ``srgb_to_linear``."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def mean_lab(rgb: np.ndarray) -> np.ndarray:
    """The mean CIE Lab colour ``[3]`` (float64) of a float RGB image in [0, 1]."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab)
    return lab.reshape(-1, 3).mean(axis=0, dtype=np.float64)


def mean_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """ΔE76 between the mean Lab colours of two float RGB images in [0, 1]."""
    return float(np.linalg.norm(mean_lab(a) - mean_lab(b)))


def match_mean_color(restored: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``restored`` (float RGB in [0, 1]) with its mean Lab colour moved onto ``reference``'s.

    Each step adds the remaining difference of the means to every pixel's Lab value; the
    conversion back clips to the sRGB gamut, which moves the mean a little, so up to
    ``COLOR_ITERATIONS`` steps are taken until the ΔE of the means is below ``COLOR_TOLERANCE``.
    """
    target = mean_lab(reference)
    lab = cv2.cvtColor(np.ascontiguousarray(restored, dtype=np.float32), cv2.COLOR_RGB2Lab)
    out = restored
    for _ in range(COLOR_ITERATIONS):
        shift = target - lab.reshape(-1, 3).mean(axis=0, dtype=np.float64)
        if np.linalg.norm(shift) < COLOR_TOLERANCE:
            break
        out = cv2.cvtColor(lab + shift.astype(np.float32), cv2.COLOR_Lab2RGB)  # clips to [0, 1]
        lab = cv2.cvtColor(out, cv2.COLOR_RGB2Lab)
    return np.asarray(out, dtype=np.float32)


def fidelity_blend(restored: np.ndarray, original: np.ndarray, fidelity: float) -> np.ndarray:
    """``(1 − f)·restored + f·original`` in linear light, back in sRGB floats.

    ``f = 0`` returns ``restored`` and ``f = 1`` returns ``original`` themselves, not a computed
    copy, so the ends are exact whatever the sample type (see the module docstring).
    """
    if fidelity <= 0:
        return restored
    if fidelity >= 1:
        return original
    lin = (1 - fidelity) * srgb_to_linear(to_float(restored)) + fidelity * srgb_to_linear(to_float(original))
    return linear_to_srgb(lin)


def face_roi(
    face_shape: tuple[int, int], inverse: np.ndarray, size: tuple[int, int], pad: int = 8
) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)``: the canvas box (``size`` = (w, h)) the warped-back crop can touch.

    The corners of the crop mapped by ``inverse``, widened by ``pad`` px (the mask's blur and
    the bilinear warp's edge stay inside) and clipped; None when the face lies off the canvas.
    """
    h, w = face_shape[:2]
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64)
    pts = corners @ inverse[:, :2].T + inverse[:, 2]
    x0 = max(0, int(np.floor(pts[:, 0].min())) - pad)
    y0 = max(0, int(np.floor(pts[:, 1].min())) - pad)
    x1 = min(size[0], int(np.ceil(pts[:, 0].max())) + pad + 1)
    y1 = min(size[1], int(np.ceil(pts[:, 1].max())) + pad + 1)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def shifted(inverse: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """``inverse`` with its target moved so canvas pixel (x0, y0) is (0, 0) of a region."""
    out = np.array(inverse, dtype=np.float64)
    out[:, 2] -= (x0, y0)
    return out


def paste_face_into(
    canvas: np.ndarray,
    face: np.ndarray,
    inverse: np.ndarray,
    mask: np.ndarray,
    roi: tuple[int, int, int, int],
) -> None:
    """Blend ``face`` (float RGB in [0, 1], crop-sized) into ``canvas`` in place, in linear light.

    ``inverse`` maps crop pixels into the region ``roi`` of ``canvas`` (already shifted, see
    ``shifted``); ``mask`` is float32 in [0, 1] of the region's size. Only pixels with mask > 0
    are written; an alpha channel (the fourth) is never touched. ``canvas`` keeps its sample type.
    """
    x0, y0, x1, y1 = roi
    where = mask > 0
    if not where.any():
        return
    region = canvas[y0:y1, x0:x1, :3]
    warped = cv2.warpAffine(
        np.ascontiguousarray(face, dtype=np.float32), inverse, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR
    )
    m = mask[where][:, None].astype(np.float32)
    fg = srgb_to_linear(warped[where])
    bg = srgb_to_linear(to_float(region[where]))
    region[where] = from_float(linear_to_srgb(m * fg + (1 - m) * bg), canvas.dtype)

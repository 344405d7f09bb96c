"""Five-point face alignment to the FFHQ template, and the way back (GFPGAN / facexlib).

GFPGAN restores faces as 512×512 crops in which the eyes, nose and mouth corners sit where
FFHQ's alignment put them. ``align_face`` finds the similarity (rotation, uniform scale,
translation) from a detector's five points to that template with ``cv2.estimateAffinePartial2D``
and ``cv2.LMEDS``, as ``FaceRestoreHelper.align_warp_face`` does (facexlib chose LMEDS to match
skimage's ``SimilarityTransform`` on five points), and warps the photo with a constant gray
border (135, 133, 132): padding that looks like FFHQ's average background rather than black,
which the restorer would try to "restore".

``inverse_affine`` is the way back into a photo upscaled ``upscale`` times: the inverted matrix
times ``upscale`` plus a translation. By default that is the exact pixel-centre correction of an
×s resize (OpenCV's pixel centres), ``0.5 * (s - 1)``. GFPGAN (``paste_faces_to_input_image``)
adds ``0.5 * s`` when ``s > 1``, which lands its face half an output pixel right and down of the
background, a faint double edge in the feathered seam; ``offset="gfpgan"`` reproduces it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from restorekit.errors import ConfigError, DataError

# facexlib's ``face_template`` for 512 px: image-left eye, image-right eye, nose, mouth left, mouth right
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float64,
)
BORDER_VALUE = (135, 133, 132)
BORDER_MODES = {
    "constant": cv2.BORDER_CONSTANT,
    "reflect101": cv2.BORDER_REFLECT101,
    "reflect": cv2.BORDER_REFLECT,
}


def face_template(face_size: int = 512, crop_ratio: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """The five template points ``[5, 2]`` for a ``face_size`` crop, float64.

    ``crop_ratio`` (h, w) ≥ 1 widens the crop around the same face as facexlib's does: the
    output is ``face_size·w × face_size·h`` and the points move to stay centred.
    """
    if isinstance(face_size, bool) or not isinstance(face_size, int) or face_size < 8:
        raise ConfigError(f"face_size {face_size!r}: expected a whole number of pixels >= 8")
    rh, rw = crop_ratio
    if rh < 1 or rw < 1:
        raise ConfigError(f"crop_ratio {tuple(crop_ratio)!r}: expected (h, w) both >= 1")
    t = FFHQ_TEMPLATE_512 * (face_size / 512.0)
    t[:, 1] += face_size * (rh - 1) / 2
    t[:, 0] += face_size * (rw - 1) / 2
    return t


def crop_size(face_size: int = 512, crop_ratio: tuple[float, float] = (1.0, 1.0)) -> tuple[int, int]:
    """The aligned crop's ``(width, height)`` (cv2 order), as facexlib rounds it."""
    return int(face_size * crop_ratio[1]), int(face_size * crop_ratio[0])


def _points(landmarks: np.ndarray | Sequence) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (5, 2) or not np.isfinite(pts).all():
        raise DataError(f"face landmarks: expected 5 finite (x, y) points, got shape {pts.shape}")
    return pts


def estimate_similarity(landmarks: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (float64) that maps ``landmarks`` onto ``template``, by LMEDS.

    Degenerate points (all in one place) have no such transform: a ``DataError``.
    """
    src = _points(landmarks)
    dst = np.asarray(template, dtype=np.float64)
    matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if matrix is None or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:, :2])) < 1e-12:
        raise DataError(f"face landmarks {src.round(1).tolist()}: no similarity transform fits them")
    return matrix


def align_face(
    img: np.ndarray,
    landmarks: np.ndarray,
    face_size: int = 512,
    border_value: tuple[int, int, int] = BORDER_VALUE,
    border_mode: str = "constant",
    crop_ratio: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """``(aligned crop, affine matrix)``: the face of ``img`` warped onto the FFHQ template.

    ``landmarks`` is a detector's ``[5, 2]`` in template order. The matrix (2×3, float64) maps
    ``img`` pixels to crop pixels; keep it for ``inverse_affine``. The warp is bilinear, as
    ``cv2.warpAffine``'s default is in facexlib; ``border_mode`` is ``constant`` (the gray
    ``border_value``), ``reflect101`` or ``reflect``.
    """
    if border_mode not in BORDER_MODES:
        raise ConfigError(f"border_mode {border_mode!r}: expected one of {', '.join(BORDER_MODES)}")
    matrix = estimate_similarity(landmarks, face_template(face_size, crop_ratio))
    crop = cv2.warpAffine(
        img,
        matrix,
        crop_size(face_size, crop_ratio),
        borderMode=BORDER_MODES[border_mode],
        borderValue=tuple(float(v) for v in border_value),
    )
    return crop, matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points [N, 2]`` mapped by a 2×3 affine ``matrix`` (float64)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ np.asarray(matrix, dtype=np.float64)[:, :2].T + np.asarray(matrix, dtype=np.float64)[:, 2]


def inverse_affine(matrix: np.ndarray, upscale: float = 1, offset: str = "exact") -> np.ndarray:
    """The 2×3 map from crop pixels back into the input image upscaled ``upscale`` times.

    ``cv2.invertAffineTransform(matrix) * upscale`` plus, on the translation, ``0.5 * (upscale -
    1)`` (``offset="exact"``: pixel centres of an OpenCV resize) or GFPGAN's ``0.5 * upscale``
    when ``upscale > 1`` (``offset="gfpgan"``); see the module docstring.
    """
    if not upscale > 0:
        raise ConfigError(f"upscale {upscale!r}: expected a positive number")
    if offset not in ("exact", "gfpgan"):
        raise ConfigError(f"paste offset {offset!r}: expected 'exact' or 'gfpgan'")
    inv = cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64)) * upscale
    if offset == "exact":
        inv[:, 2] += 0.5 * (upscale - 1)
    elif upscale > 1:
        inv[:, 2] += 0.5 * upscale
    return inv


def warp_back(
    face: np.ndarray,
    inverse: np.ndarray,
    size: tuple[int, int],
    flags: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """``face`` (a crop, restored or not) warped by ``inverse`` onto a ``size`` = (width, height) canvas.

    Outside the face the result is 0 (cv2's default constant border), which the paste mask hides.
    """
    return cv2.warpAffine(
        face, np.asarray(inverse, dtype=np.float64), (int(size[0]), int(size[1])), flags=flags
    )


def square_paste_mask(
    face_shape: tuple[int, int],
    inverse: np.ndarray,
    size: tuple[int, int],
    upscale: float = 1,
    edges: tuple[bool, bool, bool, bool] = (False, False, False, False),
) -> np.ndarray:
    """facexlib's soft mask without a parsing net (float32 H×W in [0, 1] on the output canvas).

    A crop-sized square of ones warped back, eroded by ``2·upscale`` (the warp's soft edge),
    then eroded by twice and blurred by twice ``w_edge = sqrt(area) // 20`` so the face fades in.
    ``edges`` (left, top, right, bottom): sides of ``size`` that are the photo's own edges. The
    crop is padded gray beyond the photo, and the warp back mixes that gray into the last pixels;
    the first erosion then treats those sides as outside the face, so no gray fringe is pasted.
    (facexlib also multiplies the warped face by the first erosion; the blurred mask lies inside
    it, so ``paste_face`` does without.)
    """
    mask = warp_back(np.ones(face_shape[:2], dtype=np.float32), inverse, size)
    k = max(1, int(2 * upscale))
    sides = ((slice(None), 0), (0, slice(None)), (slice(None), -1), (-1, slice(None)))  # l, t, r, b
    for side, on in zip(sides, edges, strict=True):
        if on:
            mask[side] = 0.0
    mask = cv2.erode(mask, np.ones((k, k), np.uint8))
    edge = int(float(mask.sum()) ** 0.5) // 20
    if edge > 0:
        mask = cv2.erode(mask, np.ones((2 * edge, 2 * edge), np.uint8))
        mask = cv2.GaussianBlur(mask, (2 * edge + 1, 2 * edge + 1), 0)
    return np.clip(mask, 0.0, 1.0)  # the blur's float rounding overshoots 1 by ~1e-7


def paste_face(background: np.ndarray, face: np.ndarray, inverse: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask·warp_back(face) + (1 − mask)·background`` as float32; an alpha channel is kept as it is."""
    h, w = background.shape[:2]
    warped = warp_back(face, inverse, (w, h)).astype(np.float32)
    if warped.ndim == 2:
        warped = warped[:, :, None]
    m = mask.astype(np.float32)[:, :, None] if mask.ndim == 2 else mask.astype(np.float32)
    bg = background.astype(np.float32)
    if bg.ndim == 2:
        bg = bg[:, :, None]
    colour = bg[:, :, : warped.shape[2]]
    out = m * warped + (1 - m) * colour
    if bg.shape[2] > warped.shape[2]:  # alpha
        out = np.concatenate([out, bg[:, :, warped.shape[2] :]], axis=2)
    return out if background.ndim == 3 else out[:, :, 0]

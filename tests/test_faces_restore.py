"""The pieces of ``restorekit.faces.blend`` / ``restore``: exact ends, colour fix, bit-exact paste."""

from __future__ import annotations

import numpy as np
import skimage.data

from restorekit.faces.align import align_face, face_template, inverse_affine, square_paste_mask
from restorekit.faces.blend import (
    face_roi,
    fidelity_blend,
    linear_to_srgb,
    match_mean_color,
    mean_delta_e,
    paste_face_into,
    shifted,
    srgb_to_linear,
    to_float,
)
from restorekit.faces.restore import Background


def test_linear_light_round_trip_and_fidelity_ends() -> None:
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.abs(linear_to_srgb(srgb_to_linear(x)) - x).max() < 1e-5
    a, b = np.zeros((4, 4, 3), np.float32), np.ones((4, 4, 3), np.float32)
    assert fidelity_blend(a, b, 0) is a and fidelity_blend(a, b, 1) is b
    mid = fidelity_blend(a, b, 0.5)  # half the light: sRGB 0.735, not 0.5
    assert np.allclose(mid, 0.7354, atol=1e-3)


def test_colour_fix_bound() -> None:
    img = to_float(skimage.data.astronaut()[20:220, 140:340])
    shifted_img = np.clip(img * [0.6, 0.8, 1.1] + 0.05, 0, 1).astype(np.float32)
    assert mean_delta_e(shifted_img, img) > 10
    assert mean_delta_e(match_mean_color(shifted_img, img), img) < 0.5


def test_paste_touches_only_the_mask() -> None:
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 65535, (300, 280, 4), dtype=np.uint16)
    before = canvas.copy()
    lm = face_template(64) * 1.5 + [60, 70]
    crop, matrix = align_face(canvas[..., :3].copy(), lm, 64)
    inv = inverse_affine(matrix, 1)
    roi = face_roi(crop.shape[:2], inv, (280, 300))
    assert roi is not None
    local = shifted(inv, roi[0], roi[1])
    mask = square_paste_mask(crop.shape[:2], local, (roi[2] - roi[0], roi[3] - roi[1]))
    paste_face_into(canvas, np.full((64, 64, 3), 0.5, np.float32), local, mask, roi)
    full = np.zeros((300, 280), bool)
    full[roi[1] : roi[3], roi[0] : roi[2]] = mask > 0
    np.testing.assert_array_equal(canvas[~full], before[~full])
    np.testing.assert_array_equal(canvas[..., 3], before[..., 3])
    inner = mask == mask.max()
    assert np.abs(canvas[roi[1] : roi[3], roi[0] : roi[2], :3][inner].astype(int) - 32768).max() <= 1


def test_background_lanczos_and_identity() -> None:
    img = skimage.data.astronaut()[:50, :60]
    assert Background(2)(img).shape == (100, 120, 3)
    same = Background(1)(img)
    np.testing.assert_array_equal(same, img)
    f = to_float(img)
    up = Background(1.5)(f)
    assert up.shape == (75, 90, 3) and up.dtype == np.float32 and up.min() >= 0 and up.max() <= 1

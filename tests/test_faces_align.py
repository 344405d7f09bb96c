"""Five-point alignment to the FFHQ 512 template, and the way back, on real photos.

Landmarks come from the real MTCNN (facenet-pytorch's wheel weights, installed by
``scripts/setup-dev.sh``; without them the tests that detect fail, they do not skip) or, where a
test is about geometry only, are facenet-pytorch's own points for the astronaut (see
``tests/test_faces_mtcnn.py``). The template numbers are facexlib's ``FaceRestoreHelper``'s.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import skimage.data

from restorekit.errors import ConfigError, DataError
from restorekit.faces.align import (
    BORDER_VALUE,
    align_face,
    estimate_similarity,
    face_template,
    inverse_affine,
    paste_face,
    square_paste_mask,
    transform_points,
    warp_back,
)
from restorekit.faces.mtcnn import MTCNN, WEIGHT_FILES, default_weights_dir, load_mtcnn

FACEXLIB_512 = [
    [192.98138, 239.94708],
    [318.90277, 240.1936],
    [256.63416, 314.01935],
    [201.26117, 371.41043],
    [313.08905, 371.15118],
]
# facenet-pytorch's MTCNN points and box on skimage's astronaut (x, y)
ASTRO_POINTS = np.array(
    [[205.011, 101.727], [246.763, 103.714], [224.671, 128.965], [201.716, 139.246], [245.265, 141.857]]
)
ASTRO_BOX = (181, 62, 268, 172)


def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])


def grace_hopper() -> np.ndarray:
    img = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    assert img is not None, "matplotlib's sample_data/grace_hopper.jpg is missing"
    return img


def least_squares_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Umeyama's closed form: the similarity with the least squared error (skimage's estimate)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    e = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ e @ vt
    scale = (sig * np.diag(e)).sum() / (s**2).sum() * len(src)
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


@pytest.fixture(scope="module")
def model() -> MTCNN:
    folder = default_weights_dir()
    if folder is None or not all((folder / n).is_file() for n in WEIGHT_FILES):
        pytest.fail(
            f"MTCNN weights ({', '.join(WEIGHT_FILES)}) not found in the facenet-pytorch wheel: "
            "run scripts/setup-dev.sh, which installs facenet-pytorch==2.6.0 --no-deps for its weight files"
        )
    return load_mtcnn(folder)


# ------------------------------------------------------------------ template and similarity
def test_template_is_facexlibs_scaled() -> None:
    np.testing.assert_allclose(face_template(512), FACEXLIB_512)
    np.testing.assert_allclose(face_template(256), np.array(FACEXLIB_512) / 2)
    wide = face_template(512, crop_ratio=(1.0, 1.5))  # 768 wide: points move right by 128
    np.testing.assert_allclose(wide, np.array(FACEXLIB_512) + np.array([128, 0]))
    with pytest.raises(ConfigError, match="face_size"):
        face_template(0)
    with pytest.raises(ConfigError, match="crop_ratio"):
        face_template(512, crop_ratio=(0.5, 1))


def test_similarity_exact_and_robust_to_one_outlier() -> None:
    t = face_template(512)
    a, s = 0.3, 0.4
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = t @ rot.T + [100, 50]  # a rotated, shrunk, shifted copy of the template
    m = estimate_similarity(pts, t)
    assert np.abs(transform_points(pts, m) - t).max() < 1e-3
    # LMEDS (facexlib's choice) ignores a misplaced mouth corner; least squares would spread it
    bad = pts.copy()
    bad[4] += [15, -12]
    err = np.linalg.norm(transform_points(bad, estimate_similarity(bad, t)) - t, axis=1)
    lsq = np.linalg.norm(transform_points(bad, least_squares_similarity(bad, t)) - t, axis=1)
    assert err[:4].max() < 1e-2 and lsq[:4].max() > 3
    with pytest.raises(DataError, match="no similarity"):
        estimate_similarity(np.ones((5, 2)), t)
    with pytest.raises(DataError, match="5 finite"):
        estimate_similarity(np.ones((4, 2)), t)


# ------------------------------------------------------------------ aligned crops of real photos
def test_aligned_crop_puts_the_eyes_on_the_template(model: MTCNN) -> None:
    """Both measures of the issue, printed; what each can promise is asserted.

    1. the detected points, mapped by the estimated matrix, against the template: how well a
       similarity fits this face to FFHQ's mean face. Grace Hopper (frontal) is within 3 px at
       the eyes. The astronaut's head is turned and tilted: her eyes land 6.0 and 4.0 px off and no
       similarity does better (the least-squares one has the same residuals, checked).
    2. MTCNN run again on the 512 crop, against the template: adds MTCNN's own re-detection
       noise, measured at 1–5 px on these crops (re-detected vs mapped points), so the issue's
       3 px holds for neither photo's image-left eye (4.4 and 3.4 px); asserted within 5 px.
    """
    t = face_template(512)
    for name, img in (("astronaut", astronaut()), ("grace_hopper", grace_hopper())):
        (face,) = model.detect(img)
        crop, m = align_face(img, face.landmarks)
        assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8 and m.shape == (2, 3)
        mapped = transform_points(face.landmarks, m)
        fit = np.linalg.norm(mapped - t, axis=1)
        best = np.linalg.norm(
            transform_points(face.landmarks, least_squares_similarity(face.landmarks.astype(np.float64), t))
            - t,
            axis=1,
        )
        (again,) = model.detect(crop)
        redetect = np.linalg.norm(again.landmarks - t, axis=1)
        noise = np.linalg.norm(again.landmarks - mapped, axis=1)
        print(
            f"{name}: mapped-vs-template {fit.round(2).tolist()}, redetected-vs-template "
            f"{redetect.round(2).tolist()}, redetected-vs-mapped {noise.round(2).tolist()} px"
        )
        assert fit.sum() <= best.sum() + 1e-2  # LMEDS found the best similarity there is
        assert redetect[:2].max() < 5.0
        if name == "grace_hopper":
            assert fit[:2].max() < 3.0
        else:
            assert fit[:2].max() < 6.5


def blob_centre(img: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre (x, y) of a float image's positive part."""
    w = np.clip(img, 0, None)
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    return np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()


def test_the_crops_eye_pixels_sit_on_the_template(model: MTCNN) -> None:
    """The issue's 3 px measure without MTCNN's re-detection noise: a small bright spot is drawn
    at each detected eye in the photo, the photo goes through ``align_face`` itself, and the
    spots' centres are found again in the 512 crop's pixels.

    Measured: Grace Hopper (frontal) 2.47 / 2.66 px from the template's eyes, within 3 px; the
    spots sit where the matrix sends the points to 0.002 px (the warp adds nothing). The
    astronaut's turned, tilted head lands 6.0 / 4.0 px off, and the least-squares similarity
    does no better there (``test_aligned_crop_puts_the_eyes_on_the_template``): no similarity
    can put both of her eyes within 3 px of FFHQ's mean face.
    """
    t = face_template(512)
    for name, img in (("grace_hopper", grace_hopper()), ("astronaut", astronaut())):
        (face,) = model.detect(img)
        _, m = align_face(img, face.landmarks)
        yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
        centres = []
        for eye in face.landmarks[:2]:  # one spot per warp, so the two cannot mix
            spot = np.exp(-((xx - eye[0]) ** 2 + (yy - eye[1]) ** 2) / (2 * 1.5**2)).astype(np.float32)
            rgb = np.repeat(spot[:, :, None], 3, axis=2)
            warped, _ = align_face(rgb, face.landmarks, border_value=(0, 0, 0))
            centres.append(blob_centre(warped[:, :, 0].astype(np.float64)))
        found = np.array(centres)
        to_template = np.linalg.norm(found - t[:2], axis=1)
        to_matrix = np.linalg.norm(found - transform_points(face.landmarks[:2], m), axis=1)
        print(f"{name}: crop eyes vs template {to_template.round(2)} px, vs matrix {to_matrix.round(3)}")
        assert to_matrix.max() < 0.1  # the pixels follow the matrix
        if name == "grace_hopper":
            assert to_template.max() < 3.0  # the measure, on the frontal face
        else:
            assert to_template.max() < 6.5


def test_border_outside_the_photo() -> None:
    img = np.ascontiguousarray(astronaut()[40:, 150:])  # the face now touches the top edge
    points = ASTRO_POINTS - [150, 40]
    crop, m = align_face(img, points)
    assert tuple(crop[0, 0]) == BORDER_VALUE and tuple(crop[0, 511]) == BORDER_VALUE
    inside = transform_points([[60, 80]], m)[0].round().astype(int)  # a pixel of the photo
    assert tuple(crop[inside[1], inside[0]]) != BORDER_VALUE
    reflected, _ = align_face(img, points, border_mode="reflect101")
    assert tuple(reflected[0, 0]) != BORDER_VALUE
    small, m256 = align_face(img, points, face_size=256)
    assert small.shape == (256, 256, 3)
    np.testing.assert_allclose(m256, m * [[0.5], [0.5]], atol=1e-3)
    with pytest.raises(ConfigError, match="border_mode"):
        align_face(img, points, border_mode="wrap")


# ------------------------------------------------------------------ back into the photo
def test_round_trip_reproduces_the_face_region() -> None:
    """Align then warp back: each pixel of the face returns from where it was, within 1 px.

    The "texture" carries its own coordinates (channels x and y; bilinear warps reproduce linear
    ramps), so the round trip's displacement is read off directly. The photo itself comes back
    with a sub-0.1 px phase-correlation shift, blurred only by the two resamplings.
    """
    img = astronaut()
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = np.dstack([xx, yy, img[:, :, 1].astype(np.float32)])
    crop, m = align_face(ramp, ASTRO_POINTS, border_value=(-1, -1, -1))
    inv = inverse_affine(m, 1)
    x1, y1, x2, y2 = ASTRO_BOX
    back = warp_back(crop, inv, (w, h))[y1:y2, x1:x2]
    shift = np.hypot(back[:, :, 0] - xx[y1:y2, x1:x2], back[:, :, 1] - yy[y1:y2, x1:x2])
    print(f"round trip displacement in the face box: max {shift.max():.2e} px")
    assert shift.max() < 1.0 and shift.mean() < 0.05
    photo_crop, _ = align_face(img, ASTRO_POINTS)
    photo_back = warp_back(photo_crop, inv, (w, h))[y1:y2, x1:x2].astype(np.float64)
    original = img[y1:y2, x1:x2].astype(np.float64)
    (dx, dy), _ = cv2.phaseCorrelate(original.mean(axis=2), photo_back.mean(axis=2))
    assert np.hypot(dx, dy) < 0.1 and np.abs(photo_back - original).mean() < 2.0
    # the matrices compose to the identity
    both = np.vstack([inv, [0, 0, 1]]) @ np.vstack([m, [0, 0, 1]])
    np.testing.assert_allclose(both, np.eye(3), atol=1e-3)


def test_inverse_affine_upscaled_is_pixel_centre_exact_or_gfpgans() -> None:
    """An output pixel u of a x2 paste shows input x = (u + 0.5)/2 - 0.5 = u/2 - 0.25, as OpenCV's
    x2 resize of the background does; GFPGAN's offset (0.5·s) shows u/2 - 0.5 instead."""
    img = astronaut()
    h, w = img.shape[:2]
    m = estimate_similarity(ASTRO_POINTS, face_template(512))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    crop, _ = align_face(np.dstack([xx, yy, yy]), ASTRO_POINTS)
    x1, y1, x2, y2 = ASTRO_BOX
    u = np.arange(2 * x1, 2 * x2, dtype=np.float64)
    for offset, shift, want in (("exact", 0.5, 0.25), ("gfpgan", 1.0, 0.5)):
        inv2 = inverse_affine(m, 2, offset)
        both = np.vstack([inv2, [0, 0, 1]]) @ np.vstack([m, [0, 0, 1]])
        np.testing.assert_allclose(both[:2], [[2, 0, shift], [0, 2, shift]], atol=1e-3)
        up = warp_back(crop, inv2, (2 * w, 2 * h))[2 * y1 : 2 * y2, 2 * x1 : 2 * x2]
        assert np.abs(up[:, :, 0] - (u[None, :] / 2 - want)).max() < 0.01, offset
    background = cv2.resize(xx, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    background = background[2 * y1 : 2 * y2, 2 * x1 : 2 * x2]
    assert np.abs(background - (u[None, :] / 2 - 0.25)).max() < 0.01  # the exact offset is OpenCV's
    with pytest.raises(ConfigError, match="offset"):
        inverse_affine(m, 2, "half")
    np.testing.assert_allclose(inverse_affine(m, 1), cv2.invertAffineTransform(m))
    with pytest.raises(ConfigError, match="upscale"):
        inverse_affine(m, 0)


def test_paste_back_of_the_unchanged_crop_keeps_the_photo() -> None:
    img = astronaut()
    h, w = img.shape[:2]
    crop, m = align_face(img, ASTRO_POINTS)
    inv = inverse_affine(m, 1)
    mask = square_paste_mask(crop.shape, inv, (w, h))
    assert mask.shape == (h, w) and mask.min() >= 0 and mask.max() <= 1
    assert mask[120, 225] == pytest.approx(1.0) and mask[450, 450] == 0  # face centre; far away
    out = paste_face(img, crop, inv, mask)
    assert out.shape == img.shape
    np.testing.assert_array_equal(out[mask == 0], img[mask == 0])
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.abs(out[y1:y2, x1:x2] - img[y1:y2, x1:x2]).mean() < 2.0
    rgba = np.dstack([img, np.full((h, w), 77, np.uint8)])
    with_alpha = paste_face(rgba, crop, inv, mask)
    assert with_alpha.shape == (h, w, 4) and (with_alpha[:, :, 3] == 77).all()

"""Review findings on the face pipeline, each pinned by a test: ``fidelity 1`` returns the upscaled
photo exactly, a face cut by the photo's edge pastes no gray padding there, the x2 paste sits on
OpenCV's pixel centres, an upscale too big for an image file is one line before any allocation,
and two inputs sharing a stem are refused only when face crops are written."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from conftest import TINY_GFPGAN, tiny_gfpgan_weights
from restorekit.cli import main
from restorekit.errors import RestorekitError
from restorekit.faces.pipeline import load_face_restorer

pytestmark = pytest.mark.usefixtures("one_thread")
NET = TINY_GFPGAN


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gfpgan_weights(tmp_path_factory.mktemp("w"), "toy.pth")


def astronaut(size: int = 256) -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def lanczos(img: np.ndarray, s: int) -> np.ndarray:
    return cv2.resize(img, (img.shape[1] * s, img.shape[0] * s), interpolation=cv2.INTER_LANCZOS4)


@pytest.mark.parametrize("upscale", [1, 2])
def test_fidelity_one_is_the_upscaled_photo_exactly(weights: Path, upscale: int) -> None:
    img = astronaut()
    res = load_face_restorer(weights, device="cpu", fidelity=1, upscale=upscale).process(img)
    assert len(res.faces) == 1 and res.faces[0].restored
    np.testing.assert_array_equal(res.image, lanczos(img, upscale) if upscale > 1 else img)


def test_a_face_cut_by_the_edge_pastes_no_gray_padding(weights: Path) -> None:
    """The astronaut's face runs off the left edge; the aligned crop is gray (135, 133, 132) there."""
    img = np.ascontiguousarray(astronaut(512)[:, 215:])
    res = load_face_restorer(weights, device="cpu", upscale=1, color_fix=False).process(img)
    assert len(res.faces) == 1
    out, bg = res.image.astype(int), img.astype(int)
    changed = np.any(out != bg, axis=2)
    assert changed.sum() > 500  # the face was pasted
    assert not changed[:, :2].any()  # the two columns on the photo's edge are the photo's own


def test_x2_paste_sits_on_the_backgrounds_pixel_centres(weights: Path) -> None:
    """With f just below 1 the pasted face is (nearly) the input face: it must line up with the
    Lanczos x2 background, not sit half a pixel right and down of it (GFPGAN's offset)."""
    img = astronaut().astype(np.float32) / 255
    res = load_face_restorer(weights, device="cpu", fidelity=0.999, color_fix=False).process(img)
    bg = np.clip(lanczos(img, 2), 0, 1)
    x1, y1, x2, y2 = (int(2 * v) for v in res.faces[0].box)
    face = np.s_[y1 + 8 : y2 - 8, x1 + 8 : x2 - 8]

    def err(dx: float) -> float:
        m = np.float32([[1, 0, dx], [0, 1, dx]])
        shifted = cv2.warpAffine(bg, m, (bg.shape[1], bg.shape[0]), flags=cv2.INTER_LINEAR)
        return float(np.abs(res.image - shifted)[face].mean())

    assert err(0.0) < err(0.5), (err(0.0), err(0.5))


def test_an_upscale_too_big_for_an_image_file_is_one_line(weights: Path) -> None:
    restorer = load_face_restorer(weights, device="cpu", upscale=200)
    with pytest.raises(RestorekitError, match="over the 2\\^30 pixels"):
        restorer.process(astronaut())


def test_same_stem_inputs_refused_only_with_face_crops(weights: Path, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    small = cv2.cvtColor(astronaut(128), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(d / "a.png"), small)
    cv2.imwrite(str(d / "a.jpg"), small)
    base = ["faces", "-i", str(d), "--weights", str(weights), "--device", "cpu", "--quiet", "--upscale", "1"]
    assert main([*base, "-o", str(tmp_path / "o1")]) == 0
    assert sorted(p.name for p in (tmp_path / "o1" / "restored_imgs").iterdir()) == ["a.jpg", "a.png"]
    assert main([*base, "-o", str(tmp_path / "o2"), "--save-faces"]) == 2


def test_float_photo_in_0_255_is_one_line(weights: Path) -> None:
    """A 0-255 float photo (``cv2.imread(...).astype(float)``) came back white with no face."""
    r = load_face_restorer(weights, device="cpu")
    with pytest.raises(RestorekitError, match=r"expected in \[0, 1\], got a maximum of 2[0-9][0-9]"):
        r(astronaut(64).astype(np.float32))
    assert r(astronaut(64).astype(np.float32) / 255).dtype == np.float32  # the same photo in [0, 1] runs

"""A JPEG's EXIF orientation tag is honoured where photos come in (``restorekit faces`` and
``restorekit infer``): a phone portrait is stored sideways with "rotate 90", and reading its
samples as stored showed faces on their side (MTCNN found none)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restorekit.data.io import decode_image_raw, read_image_raw
from restorekit.faces.files import load

ORIENTATION = 0x0112  # EXIF's tag number


def tagged_jpeg(upright: np.ndarray, stored: np.ndarray, tag: int) -> bytes:
    """``stored`` (RGB) as a JPEG whose orientation tag says how to turn it into ``upright``."""
    exif = Image.Exif()
    exif[ORIENTATION] = tag
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=98, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize(("tag", "turn"), [(6, lambda a: np.rot90(a, 1)), (8, lambda a: np.rot90(a, -1)),
                                           (3, lambda a: a[::-1, ::-1])])  # fmt: skip
def test_jpeg_turned_upright_by_its_tag(tmp_path: Path, tag: int, turn) -> None:  # type: ignore[no-untyped-def]
    upright = np.zeros((40, 64, 3), np.uint8)
    upright[:8, :16] = (250, 20, 20)  # a red block in the top-left corner of the upright photo
    stored = np.ascontiguousarray(turn(upright))  # what a camera writes, before the tag is read
    data = tagged_jpeg(upright, stored, tag)
    path = tmp_path / "phone.jpg"
    path.write_bytes(data)
    as_stored = read_image_raw(path).img  # training data: samples as stored
    assert as_stored.shape[:2] == stored.shape[:2]
    for raw in (read_image_raw(path, orient=True).img, decode_image_raw(data, "phone.jpg", orient=True).img):
        assert raw.shape == (40, 64, 3) and raw.dtype == np.uint8
        assert abs(int(raw[3, 5, 2]) - 250) < 12 and int(raw[35, 60, 2]) < 12  # BGR: red on top-left
    rgb = load(path).rgb  # what `restorekit faces` works on
    assert rgb.shape == (40, 64, 3) and abs(int(rgb[3, 5, 0]) - 250) < 12


def test_gray_jpeg_and_png_keep_their_samples(tmp_path: Path) -> None:
    gray = (np.arange(48 * 32).reshape(48, 32) % 251).astype(np.uint8)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    raw = decode_image_raw(buf.getvalue(), "gray.jpg", orient=True)
    assert raw.img.shape == (32, 48, 1) and raw.is_gray  # turned, still one channel
    rgba = np.zeros((5, 7, 4), np.uint16)
    rgba[..., 3] = 40000
    png = tmp_path / "a.png"
    Image.fromarray(rgba[..., 3]).save(png)  # a 16-bit PNG: decoded unchanged with orient on
    assert read_image_raw(png, orient=True).img.dtype == np.uint16

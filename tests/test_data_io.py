"""Image I/O conventions and the paired transforms (restorekit.data.io / .transforms)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from restorekit.data.io import (
    IMG_EXTENSIONS,
    UnreadableImageError,
    decode_image_raw,
    imfrombytes,
    img2tensor,
    raw_to_tensor,
    read_image,
    read_image_full,
    read_image_raw,
    scan_images,
    tensor2img,
    write_image,
)
from restorekit.data.transforms import apply_dihedral, augment, augment_views, mod_crop, paired_random_crop
from restorekit.errors import DataError


def rand_u8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# ---------------------------------------------------------------- round trips


def test_rgb_8bit_round_trip_is_exact_and_rgb_ordered(tmp_path: Path) -> None:
    u8 = rand_u8((13, 17, 3))
    path = write_image(tmp_path / "a.png", u8.astype(np.float32) / 255)
    back = read_image(path)
    assert back.dtype == np.float32 and back.shape == (13, 17, 3)
    np.testing.assert_array_equal(np.round(back * 255).astype(np.uint8), u8)
    # OpenCV itself reads BGR: the file must hold channel 0 (red) in OpenCV's last channel
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(bgr[:, :, 2], u8[:, :, 0])


def test_pure_red_written_by_opencv_reads_as_red(tmp_path: Path) -> None:
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 255
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    img = read_image(tmp_path / "red.png")
    assert img[..., 0].min() == 1.0 and img[..., 1:].max() == 0.0


def test_16bit_png_round_trip(tmp_path: Path) -> None:
    u16 = np.random.default_rng(1).integers(0, 65536, size=(9, 11, 3), dtype=np.uint16)
    path = write_image(tmp_path / "d.png", u16.astype(np.float64) / 65535, bit_depth=16)
    info = read_image_full(path)
    assert info.bit_depth == 16 and not info.has_alpha and not info.is_gray
    np.testing.assert_array_equal(np.round(info.img.astype(np.float64) * 65535).astype(np.uint16), u16)


def test_gray_and_rgba(tmp_path: Path) -> None:
    gray = rand_u8((6, 7), seed=2)
    write_image(tmp_path / "g.png", gray.astype(np.float32) / 255)
    g = read_image_full(tmp_path / "g.png")
    assert g.is_gray and g.img.shape == (6, 7, 1) and g.bit_depth == 8
    np.testing.assert_array_equal(np.round(g.img[..., 0] * 255).astype(np.uint8), gray)

    rgba = rand_u8((5, 8, 4), seed=3)
    write_image(tmp_path / "a.png", rgba.astype(np.float32) / 255)
    full = read_image_full(tmp_path / "a.png")
    assert full.has_alpha and full.img.shape == (5, 8, 4)
    np.testing.assert_array_equal(np.round(full.img * 255).astype(np.uint8), rgba)
    rgb = read_image(tmp_path / "a.png")
    assert rgb.shape == (5, 8, 3)
    np.testing.assert_array_equal(rgb, full.img[..., :3])


def test_jpeg_tiff_bmp_webp_readable(tmp_path: Path) -> None:
    smooth = np.linspace(0, 1, 24 * 32 * 3, dtype=np.float32).reshape(24, 32, 3)
    for ext, tol in ((".jpg", 0.05), (".tif", 0.0), (".bmp", 0.0), (".webp", 0.1)):
        path = write_image(tmp_path / f"x{ext}", smooth)
        back = read_image(path)
        assert back.shape == smooth.shape
        assert np.abs(back - smooth).max() <= tol + 0.5 / 255, ext
    write_image(tmp_path / "t16.tif", smooth, bit_depth=16)
    assert read_image_full(tmp_path / "t16.tif").bit_depth == 16


def test_write_clips_rounds_and_creates_folders(tmp_path: Path) -> None:
    img = np.array([[[-0.2, 1.3, 100.4 / 255], [100.6 / 255, 0.0, 1.0]]], np.float32)
    path = write_image(tmp_path / "deep" / "er" / "c.png", img)
    u8 = np.round(read_image(path) * 255).astype(int)
    assert u8.tolist() == [[[0, 255, 100], [101, 0, 255]]]
    assert [p.name for p in path.parent.iterdir()] == ["c.png"]  # no temporary leftovers


def test_unicode_path(tmp_path: Path) -> None:
    img = rand_u8((4, 5, 3), seed=4).astype(np.float32) / 255
    path = write_image(tmp_path / "ünïcødé 画像" / "bild.png", img)
    np.testing.assert_allclose(read_image(path), img, atol=1e-7)


def test_write_rejects_bad_requests(tmp_path: Path) -> None:
    img = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(DataError, match=r"16-bit output needs \.png or \.tif"):
        write_image(tmp_path / "x.jpg", img, bit_depth=16)
    with pytest.raises(DataError, match="unknown image extension"):
        write_image(tmp_path / "x.gif", img)
    with pytest.raises(DataError, match="shape"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 2), np.float32))


def test_imfrombytes_matches_read_image(tmp_path: Path) -> None:
    path = write_image(tmp_path / "b.png", rand_u8((7, 9, 3), seed=5).astype(np.float32) / 255)
    np.testing.assert_array_equal(imfrombytes(path.read_bytes(), "key"), read_image(path))
    with pytest.raises(DataError, match="key: is not a readable image"):
        imfrombytes(b"garbage", "key")


# ---------------------------------------------------------------- bad files


def test_bad_files_name_the_path_and_the_problem(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    good = write_image(tmp_path / "good.png", rand_u8((32, 32, 3)).astype(np.float32) / 255)
    data = good.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("definitely not an image\n")
    cases = {
        "empty.png": r"is empty \(0 bytes\)",
        "trunc.png": "is not a readable image",
        "text.png": "is not a readable image",
        "missing.png": "does not exist",
    }
    for name, msg in cases.items():
        with pytest.raises(UnreadableImageError, match=msg) as info:
            read_image(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
        assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="is a folder"):
        read_image(tmp_path)
    for name, msg in cases.items():  # the integer path reports the same errors
        with pytest.raises(UnreadableImageError, match=msg):
            read_image_raw(tmp_path / name)


def test_raw_read_keeps_samples_as_decoded(tmp_path: Path) -> None:
    u16 = np.random.default_rng(2).integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), u16)
    cv2.imwrite(str(tmp_path / "g8.png"), u16[:, :, 0].astype(np.uint8))
    raw = read_image_raw(tmp_path / "c16.png")
    assert raw.img.dtype == np.uint16 and raw.bit_depth == 16 and not raw.is_gray and not raw.has_alpha
    np.testing.assert_array_equal(raw.img, u16)  # OpenCV's BGR order, untouched
    gray = decode_image_raw((tmp_path / "g8.png").read_bytes(), "g8")
    assert gray.img.shape == (5, 6, 1) and gray.img.dtype == np.uint8 and gray.is_gray
    for path in (tmp_path / "c16.png", tmp_path / "g8.png"):  # the patch conversion is read_image's
        t = raw_to_tensor(read_image_raw(path).img)
        np.testing.assert_array_equal(t.permute(1, 2, 0).numpy(), read_image(path))


def test_scan_images(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        scan_images(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataError, match="expected a folder"):
        scan_images(tmp_path / "file.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="no images found") as info:
        scan_images(empty)
    assert all(ext in str(info.value) for ext in IMG_EXTENSIONS)

    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("b.png", "a.JPG", "c.webp", ".hidden.png", "readme.txt"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "d.png").write_bytes(b"x")
    assert [p.name for p in scan_images(folder)] == ["a.JPG", "b.png", "c.webp"]
    assert [p.name for p in scan_images(folder, recursive=True)] == ["a.JPG", "b.png", "c.webp", "d.png"]


def test_tensor_conversions() -> None:
    img = np.random.default_rng(0).random((5, 6, 3), dtype=np.float32)
    t = img2tensor(img)
    assert t.shape == (3, 5, 6) and t.dtype == torch.float32
    assert torch.equal(t[1], torch.from_numpy(img[:, :, 1]))
    np.testing.assert_array_equal(tensor2img(t), img)
    np.testing.assert_array_equal(tensor2img(t[None]), img)
    assert img2tensor(img[:, :, 0]).shape == (1, 5, 6)
    clamped = tensor2img(torch.tensor([[[-1.0, 2.0]]]))
    assert clamped.tolist() == [[[0.0], [1.0]]]


# ---------------------------------------------------------------- transforms


def area_down(img: np.ndarray, s: int) -> np.ndarray:
    """Exact block-mean subsampling: commutes with flips and transposes of aligned blocks."""
    h, w, c = img.shape
    return img.reshape(h // s, s, w // s, s, c).mean(axis=(1, 3))


def test_mod_crop() -> None:
    img = np.zeros((13, 22, 3))
    assert mod_crop(img, 4).shape == (12, 20, 3)
    assert mod_crop(img[..., 0], 12).shape == (12, 12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_paired_crop_takes_corresponding_regions(scale: int) -> None:
    gt = np.random.default_rng(scale).random((12 * scale, 10 * scale, 3))
    lq = gt[::scale, ::scale]  # nearest subsampling: lq[i, j] = gt[i*s, j*s]
    rng = np.random.default_rng(0)
    corners = set()
    for _ in range(20):
        g, q = paired_random_crop(gt, lq, 4 * scale, scale, rng)
        assert g.shape == (4 * scale, 4 * scale, 3) and q.shape == (4, 4, 3)
        np.testing.assert_array_equal(g[::scale, ::scale], q)
        top, left = np.argwhere((gt == g[0, 0]).all(axis=-1))[0]
        assert top % scale == 0 and left % scale == 0
        corners.add((top, left))
    assert len(corners) > 5  # the position really is random


def test_paired_crop_errors_name_file_and_sizes() -> None:
    gt, lq = np.zeros((40, 40, 3)), np.zeros((21, 20, 3))
    with pytest.raises(DataError) as info:
        paired_random_crop(gt, lq, 16, 2, np.random.default_rng(0), gt_path="/data/0007.png")
    msg = str(info.value)
    assert "/data/0007.png" in msg and "40x40" in msg and "21x20" in msg
    with pytest.raises(DataError, match="smaller than the training patch gt_size=48"):
        paired_random_crop(np.zeros((40, 40, 3)), np.zeros((20, 20, 3)), 48, 2, np.random.default_rng(0))


def test_augment_applies_the_same_op_to_every_image() -> None:
    gt = np.random.default_rng(7).random((8, 8, 3))
    lq = area_down(gt, 2)
    seen = set()
    for seed in range(40):
        a, b = augment([gt, lq], True, True, np.random.default_rng(seed))
        np.testing.assert_allclose(area_down(a, 2), b)  # still aligned after the op
        ops = tuple(
            (h, v, t)
            for h in (False, True)
            for v in (False, True)
            for t in (False, True)
            if np.array_equal(apply_dihedral(gt, h, v, t), a)
        )
        assert len(ops) == 1
        seen.add(ops[0])
        assert a.flags["C_CONTIGUOUS"] and b.flags["C_CONTIGUOUS"]
    assert len(seen) == 8  # all eight dihedral transforms occur
    same = augment([gt], False, False, np.random.default_rng(0))[0]
    np.testing.assert_array_equal(same, gt)
    for seed in range(8):  # the view-returning variant: the same draws, the same pixels
        views = augment_views([gt, lq], True, True, np.random.default_rng(seed))
        copies = augment([gt, lq], True, True, np.random.default_rng(seed))
        for view, copy, original in zip(views, copies, (gt, lq)):
            assert np.array_equal(view, copy) and np.shares_memory(view, original)


def test_augment_is_a_function_of_the_rng() -> None:
    img = np.random.default_rng(1).random((6, 6, 1))
    outs = [augment([img], True, True, np.random.default_rng(3))[0] for _ in range(2)]
    np.testing.assert_array_equal(outs[0], outs[1])

"""Decoding only the top rows of a PNG (restorekit.data.png_rows): same bytes as OpenCV, or not used."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from restorekit.data import PairedImageDataset, png_rows
from restorekit.data.datasets import store
from restorekit.data.png_rows import decode_png_rows, png_rows_shape


def photo(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Smooth content plus noise, so PNG's adaptive filtering uses all five filter types."""
    rng = np.random.default_rng(seed)
    small = rng.random((6, 6, 3)).astype(np.float32)
    base = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    img = np.clip((base + 0.05 * rng.standard_normal(base.shape)) * 255, 0, 255).astype(np.uint8)
    return img if len(shape) == 3 else img[:, :, 0].copy()


@pytest.mark.parametrize("shape", [(61, 47, 3), (61, 47)])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_top_rows_are_opencvs_rows(shape: tuple[int, ...], level: int) -> None:
    enc = cv2.imencode(".png", photo(shape, level), [cv2.IMWRITE_PNG_COMPRESSION, level])[1]
    full = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED).reshape(61, 47, -1)
    assert png_rows_shape(enc) == full.shape and png_rows_shape(enc.tobytes()) == full.shape
    for n in (1, 2, 30, 60, 61, 100):
        rows = decode_png_rows(enc, n)
        assert rows.shape == full[:n].shape and np.array_equal(rows, full[:n]), n


def test_pngs_it_does_not_take(tmp_path: Path) -> None:
    img = photo((20, 16, 3), 0)
    rgb = cv2.imencode(".png", img)[1].tobytes()
    assert png_rows_shape(rgb) == (20, 16, 3)
    not_taken = {
        "16-bit": cv2.imencode(".png", img.astype(np.uint16) * 257)[1].tobytes(),
        "RGBA": cv2.imencode(".png", np.dstack([img, img[:, :, :1]]))[1].tobytes(),
        "truncated": rgb[: len(rgb) - 20],
        "interlaced": rgb[:28] + b"\x01" + rgb[29:],  # IHDR's interlace byte (the header is all it reads)
        "JPEG": cv2.imencode(".jpg", img)[1].tobytes(),
        "empty": b"",
    }
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", transparency=(1, 2, 3))  # a tRNS chunk
    not_taken["tRNS"] = buf.getvalue()
    assert b"tRNS" in not_taken["tRNS"]
    for what, data in not_taken.items():
        assert png_rows_shape(data) is None, what


def test_self_check_turns_the_path_off_when_pillow_disagrees(monkeypatch: pytest.MonkeyPatch) -> None:
    check = png_rows._pillow_rows_ok.__wrapped__
    assert check() is True
    monkeypatch.setattr(png_rows, "decode_png_rows", lambda buf, n: np.zeros((n, 23, 3), np.uint8))
    assert check() is False
    monkeypatch.setattr(png_rows, "_pillow_rows_ok", lambda: False)
    assert png_rows_shape(cv2.imencode(".png", photo((8, 8, 3), 1))[1]) is None


def test_only_where_it_pays() -> None:
    worth = png_rows.worth_stopping_early
    assert worth((512, 512, 3), 400) and not worth((512, 512, 3), 420)
    assert not worth((96, 96, 3), 10)  # Pillow's per-call cost outweighs the rows


def test_dataset_gives_the_same_tensors_with_and_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for d in ("GT", "LQ"):
        (tmp_path / d).mkdir()
    for i in range(3):  # GT large enough for the early stop (LQ not: decoded whole by OpenCV)
        gt = photo((256, 160, 3) if i else (256, 160), i)
        cv2.imwrite(str(tmp_path / "GT" / f"{i}.png"), gt)
        lq = cv2.resize(gt, (80, 128), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(tmp_path / "LQ" / f"{i}.png"), lq)
    assert png_rows_shape((tmp_path / "GT" / "0.png").read_bytes()) == (256, 160, 1)
    calls: list[int] = []
    monkeypatch.setattr(store, "decode_png_rows", lambda b, n: calls.append(n) or decode_png_rows(b, n))
    gt_dir, lq_dir = str(tmp_path / "GT"), str(tmp_path / "LQ")
    ds = PairedImageDataset(gt_dir, lq_dir, 2, gt_size=32, use_hflip=True, use_rot=True)
    keys = [(i % 3, 50 + i) for i in range(12)]
    fast = [ds[k] for k in keys]
    assert len(calls) >= 6 and all(32 <= n <= 204 for n in calls)  # the fast path was taken, rows only
    whole = PairedImageDataset(gt_dir, lq_dir, 2)
    fast_whole = [whole[i] for i in range(3)]
    monkeypatch.setattr(png_rows, "_pillow_rows_ok", lambda: False)  # OpenCV, whole images
    n_calls = len(calls)
    for a, k in zip(fast, keys):
        b = ds[k]
        assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["lq"], b["lq"])
    for i, a in enumerate(fast_whole):
        assert torch.equal(a["gt"], whole[i]["gt"]) and torch.equal(a["lq"], whole[i]["lq"])
    assert len(calls) == n_calls


# ---------------------------------------------------------------------------------------------
# PngRowWriter: a PNG written band by band


def encode_in_bands(img: np.ndarray, cuts: list[int]) -> bytes:
    buf = io.BytesIO()
    writer = png_rows.PngRowWriter(buf, img.shape[1], img.shape[0], img.shape[2], img.dtype)
    for r0, r1 in zip([0, *cuts], [*cuts, img.shape[0]]):
        writer.write(img[r0:r1])
    writer.close()
    return buf.getvalue()


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_row_writer_round_trips_every_kind(channels: int, dtype: type) -> None:
    rng = np.random.default_rng(channels)
    for h, w in [(61, 47), (9, 1), (1, 5)]:
        base = photo((h, w, 3), channels)[..., : min(channels, 3)]
        img = np.dstack([base, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)])[..., :channels]
        img = img.astype(dtype) * (257 if dtype == np.uint16 else 1)
        img[h // 2 :] += rng.integers(0, 2, img[h // 2 :].shape, dtype=dtype)  # low bits too
        cuts = sorted(set(rng.integers(1, h, 3).tolist())) if h > 1 else []
        data = encode_in_bands(img, cuts)
        got = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).reshape(h, w, -1)
        if channels == 2:  # OpenCV reads gray + alpha as BGRA
            got = got[..., [0, 3]]
        elif channels >= 3:
            got = got[..., [2, 1, 0, 3][:channels]]
        assert got.dtype == dtype and np.array_equal(got, img), (h, w)
        with Image.open(io.BytesIO(data)) as im:  # a second decoder, which checks every CRC
            im.load()
            assert im.size == (w, h)


def test_row_writer_files_are_about_opencvs_size() -> None:
    img = photo((240, 200, 3), 7)
    ours = encode_in_bands(img[..., ::-1], [100, 101, 180])
    theirs = cv2.imencode(".png", img)[1]
    assert len(ours) < 1.15 * len(theirs)
    flat = np.zeros((64, 64, 3), np.uint8)  # flat art: the filters must find the runs
    flat[20:40, 10:50] = (200, 10, 30)
    assert len(encode_in_bands(flat, [32])) < 400


def test_row_writer_refuses_wrong_rows() -> None:
    writer = png_rows.PngRowWriter(io.BytesIO(), 4, 3, 3, np.uint8)
    with pytest.raises(ValueError, match=r"expected \(h, 4, 3\) uint8 rows"):
        writer.write(np.zeros((1, 4, 3), np.uint16))
    writer.write(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="only 1 of 3 left"):
        writer.write(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="1 of 3 PNG rows were never written"):
        writer.close()

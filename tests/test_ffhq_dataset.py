"""``FFHQDegradationDataset`` (GFPGAN's training set): layout, each step's statistics, keyed draws,
the eye/mouth boxes, option errors, LMDB, and the device path (``degradations.ffhq``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from conftest import smooth_image
from restorekit.data import make_lmdb
from restorekit.data.datasets import ffhq
from restorekit.data.datasets.ffhq import FFHQDegradationDataset
from restorekit.data.degradations.ffhq import FFHQDegradation
from restorekit.data.face_components import component_boxes
from restorekit.errors import ConfigError, DataError
from restorekit.registry import DATASETS

SIZE = 64
# options/train_gfpgan_v1.yml's datasets.train section (loader keys dropped), at SIZE px
V1 = {
    "type": "FFHQDegradationDataset",
    "io_backend": "disk",
    "use_hflip": True,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "out_size": SIZE,
    "blur_kernel_size": 41,
    "kernel_list": ["iso", "aniso"],
    "kernel_prob": [0.5, 0.5],
    "blur_sigma": [0.1, 10],
    "downsample_range": [0.8, 8],
    "noise_range": [0, 20],
    "jpeg_range": [60, 100],
    "color_jitter_prob": 0.3,
    "color_jitter_shift": 20,
    "color_jitter_pt_prob": 0.3,
    "gray_prob": 0.01,
    "crop_components": True,
    "eye_enlarge_ratio": 1.4,
}
# every step but the one under test switched off (a 3-tap kernel with σ 0.1 is a unit pulse)
OFF = {
    "use_hflip": False,
    "blur_kernel_size": 3,
    "blur_sigma": [0.1, 0.1],
    "downsample_range": [1, 1],
    "noise_range": None,
    "jpeg_range": None,
}
ENTRY = {"left_eye": [20.0, 26.0, 5.0], "right_eye": [43.0, 27.0, 4.5], "mouth": [33.0, 46.0, 9.0]}


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ffhq") / "gt"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(root / f"{i:05d}.png"), smooth_image(rng, SIZE, SIZE))
    return root


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flat") / "gt"
    root.mkdir()
    cv2.imwrite(str(root / "00000.png"), np.full((128, 128, 3), 128, np.uint8))
    return root


@pytest.fixture(scope="module")
def landmarks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A landmarks file in GFPGAN's layout (8-digit keys, lists of numpy.float64)."""
    path = tmp_path_factory.mktemp("lm") / "FFHQ_eye_mouth_landmarks_64.pth"
    table = {
        f"{i:08d}": {part: [np.float64(v + i) for v in vals] for part, vals in ENTRY.items()}
        for i in range(4)
    }
    torch.save(table, path)
    return path


def build(root: Path, **options: Any) -> FFHQDegradationDataset:
    spec = {"type": "FFHQDegradationDataset", "dataroot_gt": str(root), "out_size": SIZE, **options}
    return DATASETS.build(spec, "data.train.dataset", skip_corrupt=False, scale=1)


def gt_image(root: Path, name: str = "00000.png") -> np.ndarray:
    return cv2.imread(str(root / name))[:, :, ::-1].astype(np.float32) / 255.0


def unit(t: torch.Tensor) -> np.ndarray:
    """A normalised CHW sample back to HWC [0, 1]."""
    return ((t.numpy().transpose(1, 2, 0) + 1.0) / 2.0).astype(np.float32)


# --------------------------------------------------------------------------- layout and keys
def test_v1_section_gives_gfpgans_sample_layout(faces: Path, landmarks: Path) -> None:
    ds = build(faces, **{k: v for k, v in V1.items() if k != "type"}, component_path=str(landmarks))
    assert len(ds) == 4 and ds.value_range == (-1.0, 1.0)
    s = ds[(2, 11)]
    assert set(s) == {"lq", "gt", "gt_path", "loc_left_eye", "loc_right_eye", "loc_mouth"}
    assert s["lq"].shape == s["gt"].shape == (3, SIZE, SIZE) and s["lq"].dtype == torch.float32
    assert s["gt_path"].endswith("00002.png")
    assert float(s["lq"].min()) >= -1 and float(s["lq"].max()) <= 1
    levels = (s["lq"] + 1) * 127.5
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)  # the LQ is on the 8-bit grid
    assert all(
        s[f"loc_{p}"].shape == (4,) and s[f"loc_{p}"].dtype == torch.float32 for p in ("left_eye", "mouth")
    )
    batch = next(iter(DataLoader([ds[(i, 7)] for i in range(4)], batch_size=4)))
    assert batch["lq"].shape == (4, 3, SIZE, SIZE) and batch["loc_mouth"].shape == (4, 4)


def test_same_key_same_sample_another_seed_differs(faces: Path) -> None:
    ds = build(faces, color_jitter_prob=0.5, color_jitter_pt_prob=0.5, gray_prob=0.2)
    a, b, c = ds[(1, 42)], ds[(1, 42)], ds[(1, 43)]
    assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    assert not torch.equal(a["lq"], c["lq"])


def test_loader_workers_give_the_keys_samples(faces: Path) -> None:
    ds = build(faces)
    keys = [(i, 100 + i) for i in range(4)]
    loader = DataLoader(ds, sampler=keys, batch_size=2, num_workers=2)
    got = torch.cat([b["lq"] for b in loader])
    assert torch.equal(got, torch.stack([ds[k]["lq"] for k in keys]))


# --------------------------------------------------------------------------- each step
def test_noise_std_is_the_drawn_sigma(flat: Path) -> None:
    ds = build(flat, **{**OFF, "noise_range": [5, 30]}, out_size=128, mean=None, std=None)
    sigmas = []
    for seed in range(6):
        d = ds.draw(np.random.default_rng(seed), (128, 128))
        assert d.sigma is not None and 5 <= d.sigma <= 30
        s = ds[(0, seed)]
        std = float((s["lq"] - s["gt"]).std()) * 255
        # 49k samples: 0.3 % sampling error; the 8-bit rounding adds 1/12 level² of variance
        assert std == pytest.approx(math.sqrt(d.sigma**2 + 1 / 12), rel=0.02)
        sigmas.append(d.sigma)
    assert max(sigmas) - min(sigmas) > 5


def _dqt_tables(jpeg: bytes) -> list[list[int]]:
    """The quantisation tables of a baseline JPEG (DQT segments, 8-bit entries)."""
    tables, i = [], 2
    while i < len(jpeg) - 4:
        assert jpeg[i] == 0xFF
        marker, length = jpeg[i + 1], int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker == 0xDB:
            seg = jpeg[i + 4 : i + 2 + length]
            for k in range(0, len(seg), 65):
                tables.append(sorted(seg[k + 1 : k + 65]))
        if marker == 0xDA:  # start of scan: no tables after it
            break
        i += 2 + length
    return tables


# ITU-T T.81 Annex K tables (their values; the DQT's zig-zag order does not matter once sorted)
K1 = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17,
      22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78,
      87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]  # fmt: skip
K2 = (
    [17, 18, 24, 47] + [99] * 4 + [18, 21, 26, 66] + [99] * 4 + [24, 26, 56] + [99] * 5 + [47, 66] + [99] * 38
)


def _libjpeg_tables(quality: int) -> list[list[int]]:
    """libjpeg's jpeg_set_quality: scale 5000/q below 50, 200 - 2q above; (t·s + 50) // 100 in 1..255."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [sorted(min(255, max(1, (t * scale + 50) // 100)) for t in table) for table in (K1, K2)]


def _quality_of(jpeg: bytes) -> int:
    found = [q for q in range(1, 101) if _libjpeg_tables(q) == _dqt_tables(jpeg)]
    assert found, "not a libjpeg-scaled table"
    return found[0]


def test_jpeg_quality_and_downsample_size_from_the_encoded_file(
    faces: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[tuple[int, ...], int, bytes]] = []
    real = ffhq.encode_jpeg

    def spy(img: np.ndarray, quality: int) -> np.ndarray:
        enc = real(img, quality)
        seen.append((img.shape, quality, enc.tobytes()))
        return enc

    monkeypatch.setattr(ffhq, "encode_jpeg", spy)
    ds = build(faces, **{**OFF, "jpeg_range": [30, 95], "downsample_range": [0.8, 8]})
    qualities = set()
    for seed in range(12):
        d = ds.draw(np.random.default_rng(seed), (SIZE, SIZE))
        ds[(0, seed)]
        shape, quality, enc = seen[-1]
        assert 0.8 <= d.downsample <= 8
        assert (
            shape[:2] == d.lq_hw == (int(SIZE // d.downsample), int(SIZE // d.downsample))
        )  # JPEG of the small LQ
        assert 30 <= _quality_of(enc) == quality == d.quality < 95  # GFPGAN's float quality, truncated
        qualities.add(quality)
    assert len(qualities) > 6


def test_jpeg_is_basicsrs_add_jpg_compression() -> None:
    rgb = (
        smooth_image(np.random.default_rng(3), 40, 56).astype(np.float32) / 255.0 * 1.1 - 0.05
    )  # some out of [0, 1]
    bgr = np.clip(rgb[:, :, ::-1], 0, 1)
    _ok, enc = cv2.imencode(
        ".jpg", (bgr * 255.0).astype(np.float32), [cv2.IMWRITE_JPEG_QUALITY, 70]
    )  # BasicSR's call
    want = np.float32(cv2.imdecode(enc, 1)) / 255.0
    np.testing.assert_array_equal(ffhq.jpeg_libjpeg(rgb, 70), want[:, :, ::-1])


def test_host_steps_follow_gfpgans_order(faces: Path) -> None:
    """GFPGAN's __getitem__ (BGR, cv2), step by step, with this draw's numbers, equals ``degrade``."""
    ds = build(faces, color_jitter_prob=1.0, gray_prob=0.5, noise_range=[5, 15], jpeg_range=[50, 90])
    rgb = gt_image(faces, "00002.png")
    for seed in range(6):
        d = ds.draw(np.random.default_rng(seed), (SIZE, SIZE))
        img = np.ascontiguousarray(rgb[:, ::-1, ::-1] if d.hflip else rgb[:, :, ::-1])  # BGR, flipped
        lq = cv2.filter2D(img, -1, d.kernel)
        lq = cv2.resize(
            lq, (int(SIZE // d.downsample), int(SIZE // d.downsample)), interpolation=cv2.INTER_LINEAR
        )
        noise = np.random.default_rng(d.noise_seed).standard_normal(lq.shape, dtype=np.float32)[:, :, ::-1]
        lq = np.clip(lq + noise * np.float32(d.sigma / 255.0), 0, 1)
        _, enc = cv2.imencode(".jpg", lq * 255.0, [cv2.IMWRITE_JPEG_QUALITY, d.quality])
        lq = np.float32(cv2.imdecode(enc, 1)) / 255.0
        lq = cv2.resize(lq, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        lq = np.clip(lq + d.shift[::-1], 0, 1)
        if d.gray:
            lq = np.tile(cv2.cvtColor(lq, cv2.COLOR_BGR2GRAY)[:, :, None], [1, 1, 3])
        ours = ds.degrade(np.ascontiguousarray(rgb[:, ::-1] if d.hflip else rgb), d)
        np.testing.assert_allclose(ours, lq[:, :, ::-1], atol=2e-6, rtol=0)


def test_colour_shift_is_within_bounds_and_drawn_per_channel(flat: Path) -> None:
    ds = build(flat, **OFF, out_size=128, mean=None, std=None, color_jitter_prob=1.0, color_jitter_shift=20)
    shifts = []
    for seed in range(8):
        d = ds.draw(np.random.default_rng(seed), (128, 128))
        assert d.shift is not None and np.abs(d.shift).max() <= 20 / 255
        s = ds[(0, seed)]
        got = (s["lq"] - s["gt"]).mean(dim=(1, 2)).numpy()
        np.testing.assert_allclose(got, d.shift, atol=0.5 / 255 + 1e-6)  # flat: the shift, 8-bit rounded
        shifts.append(d.shift)
    assert np.ptp(np.stack(shifts), axis=0).min() > 10 / 255  # each channel draws its own
    some = build(flat, **OFF, out_size=128, color_jitter_prob=0.3)
    rate = np.mean([some.draw(np.random.default_rng(s), (128, 128)).shift is not None for s in range(600)])
    assert 0.25 < rate < 0.35


def test_gray_prob_with_and_without_gt_gray(faces: Path) -> None:
    for gt_gray in (True, False):
        ds = build(faces, gray_prob=1.0, gt_gray=gt_gray, mean=None, std=None)
        s = ds[(0, 3)]
        assert torch.equal(s["lq"][0], s["lq"][1]) and torch.equal(s["lq"][1], s["lq"][2])
        assert torch.equal(s["gt"][0], s["gt"][2]) == gt_gray
        if gt_gray:
            img = gt_image(faces)
            img = img[:, ::-1] if ds.draw(np.random.default_rng(3), (SIZE, SIZE)).hflip else img
            luma = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
            np.testing.assert_allclose(s["gt"][0].numpy(), luma, atol=1e-6)
    some = build(faces, gray_prob=0.25)
    rate = np.mean([some.draw(np.random.default_rng(s), (SIZE, SIZE)).gray for s in range(600)])
    assert 0.2 < rate < 0.3
    assert not any(
        build(faces, gray_prob=0.0).draw(np.random.default_rng(s), (SIZE, SIZE)).gray for s in range(50)
    )


def test_torchvision_jitter_uses_the_drawn_factor(faces: Path) -> None:
    ds = build(
        faces, **OFF, mean=None, std=None, color_jitter_pt_prob=1.0,
        brightness=[0.6, 0.9], contrast=None, saturation=None, hue=None,
    )  # fmt: skip
    for seed in range(4):
        d = ds.draw(np.random.default_rng(seed), (SIZE, SIZE))
        assert d.jitter is not None and d.jitter.order == (0,) and 0.6 <= d.jitter.factors[0] <= 0.9
        s = ds[(0, seed)]
        want = torch.round((d.jitter.factors[0] * s["gt"]).clamp(0, 1) * 255) / 255
        torch.testing.assert_close(s["lq"], want, atol=1 / 255 + 1e-6, rtol=0)
        assert float((s["lq"] - want).abs().mean()) < 0.01 / 255
    some = build(faces, color_jitter_pt_prob=0.3)
    rate = np.mean([some.draw(np.random.default_rng(s), (SIZE, SIZE)).jitter is not None for s in range(600)])
    assert 0.25 < rate < 0.35


def test_blur_kernel_and_steps_off_leave_the_image(faces: Path) -> None:
    ds = build(faces, blur_kernel_size=21, blur_sigma=[0.5, 3], kernel_list=["aniso"], kernel_prob=[1])
    k = ds.draw(np.random.default_rng(0), (SIZE, SIZE)).kernel
    assert k.shape == (21, 21) and k.sum() == pytest.approx(1, abs=1e-5) and np.allclose(k, k[::-1, ::-1])
    s = build(faces, **OFF, mean=None, std=None)[(0, 0)]
    assert torch.equal(s["lq"], s["gt"])  # every step off: the LQ is the GT (8-bit already)


# --------------------------------------------------------------------------- flips and boxes
def test_hflip_flips_gt_and_boxes(faces: Path, landmarks: Path) -> None:
    ds = build(faces, crop_components=True, component_path=str(landmarks), eye_enlarge_ratio=1.4)
    flips = {ds.draw(np.random.default_rng(s), (SIZE, SIZE)).hflip: s for s in range(20)}
    assert set(flips) == {True, False}
    img = gt_image(faces, "00001.png")
    entry = {part: tuple(v + 1 for v in vals) for part, vals in ENTRY.items()}  # image 1's entry
    for flip, seed in flips.items():
        s = ds[(1, seed)]
        np.testing.assert_allclose(unit(s["gt"]), img[:, ::-1] if flip else img, atol=1e-6)
        want = component_boxes(entry, SIZE, flip, 1.4)  # type: ignore[arg-type]
        for part in ("left_eye", "right_eye", "mouth"):
            np.testing.assert_array_equal(s[f"loc_{part}"].numpy(), want[part])
    flipped = ds[(1, flips[True])]
    # image 1's eyes at x = 21 (half 6 → 8.4) and 44 (half 5.5 → 7.7) become x = 64-44 = 20 and 64-21 = 43
    np.testing.assert_allclose(
        flipped["loc_left_eye"].numpy(), [20 - 7.7 + 1, 28 - 7.7 + 1, 27.7, 35.7], atol=1e-5
    )
    np.testing.assert_allclose(
        flipped["loc_right_eye"].numpy(), [43 - 8.4 + 1, 27 - 8.4 + 1, 51.4, 35.4], atol=1e-5
    )
    np.testing.assert_allclose(flipped["loc_mouth"].numpy(), [30 - 10 + 1, 47 - 10 + 1, 40, 57], atol=1e-5)


def test_component_file_errors(faces: Path, landmarks: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(DataError, match=rf"^component_path: {missing} does not exist"):
        build(faces, crop_components=True, component_path=str(missing))
    with pytest.raises(ConfigError, match="component_path: required with crop_components: true"):
        build(faces, crop_components=True)
    torch.save(
        {"00000000": {p: [np.float64(v) for v in vals] for p, vals in ENTRY.items()}}, tmp_path / "one.pth"
    )
    with pytest.raises(DataError, match=r"has no entry for 3 of 4 images .*00001.png"):
        build(faces, crop_components=True, component_path=str(tmp_path / "one.pth"))
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for i, name in enumerate(["b.png", "a.png"]):  # no number in the name: GFPGAN's index rule (sorted)
        cv2.imwrite(str(renamed / name), (gt_image(faces, f"{i:05d}.png")[:, :, ::-1] * 255).astype(np.uint8))
    ds = build(
        renamed, use_hflip=False, crop_components=True, component_path=str(landmarks), eye_enlarge_ratio=1
    )
    assert ds[(1, 0)]["loc_mouth"].tolist() == [34 - 10 + 1, 47 - 10 + 1, 44.0, 57.0]  # b.png is index 1


def test_lmdb_store_gives_the_disk_samples(faces: Path, landmarks: Path, tmp_path: Path) -> None:
    make_lmdb(faces, tmp_path / "ffhq.lmdb")
    opts = {"crop_components": True, "component_path": str(landmarks), "color_jitter_pt_prob": 0.5}
    disk, lmdb = build(faces, **opts), build(tmp_path / "ffhq.lmdb", io_backend="lmdb", **opts)
    a, b = disk[(3, 9)], lmdb[(3, 9)]
    assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["loc_mouth"], b["loc_mouth"])
    assert b["gt_path"].endswith("ffhq.lmdb/00003.png")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"kernel_list": ["isoo", "aniso"]},
            r"kernel_list: unknown kernel type 'isoo' \(did you mean 'iso'\?\)",
        ),
        ({"kernel_prob": [1.0]}, r"kernel_prob: expected 2 probabilities"),
        ({"blur_kernel_size": 40}, r"blur_kernel_size: expected an odd size"),
        ({"blur_sigma": [0, 10]}, r"blur_sigma: values must be > 0"),
        ({"downsample_range": [8, 0.8]}, r"downsample_range: expected low <= high"),
        ({"jpeg_range": [60, 120]}, r"jpeg_range: values must be <= 100"),
        ({"noise_range": [-1, 20]}, r"noise_range: values must be >= 0"),
        ({"gray_prob": 1.5}, r"gray_prob: expected a probability"),
        ({"color_jitter_pt_prob": -0.1}, r"color_jitter_pt_prob: expected a probability"),
        ({"hue": [-0.6, 0.1]}, r"hue: values must be >= -0.5"),
        ({"mean": [0.5, 0.5]}, r"mean: expected 1 or 3 numbers"),
        ({"std": [0.5, 0.0, 0.5]}, r"std: expected 1 or 3 numbers > 0"),
        ({"mean": None}, r"mean / std: give both or neither"),
        ({"eye_enlarge_ratio": 0}, r"eye_enlarge_ratio: expected a factor > 0"),
        ({"out_size": 4}, r"out_size: expected the face size"),
        ({"use_rot": True}, r"use_rot: unknown argument"),
        ({"io_backend": "s3"}, r"io_backend: expected"),
    ],
)
def test_bad_options_are_one_line_config_errors(faces: Path, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        build(faces, **options)
    assert "\n" not in str(info.value)


def test_wrong_image_size_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    cv2.imwrite(str(tmp_path / "gt" / "00000.png"), np.zeros((SIZE, SIZE + 16, 3), np.uint8))
    with pytest.raises(DataError, match=r"00000.png: 80x64, expected an aligned face of out_size 64x64"):
        build(tmp_path / "gt")[(0, 0)]


# --------------------------------------------------------------------------- the device path
def _batch(ds: FFHQDegradationDataset, seeds: list[int]) -> dict[str, Any]:
    return default_collate([ds[(i % len(ds), s)] for i, s in enumerate(seeds)])


def test_device_samples_carry_draws_not_lq(faces: Path, landmarks: Path) -> None:
    opts = {"crop_components": True, "component_path": str(landmarks), "color_jitter_pt_prob": 1.0}
    host, dev = build(faces, **opts), build(faces, degrade_on="device", **opts)
    s = dev[(2, 5)]
    assert "lq" not in s and s["kernel"].shape == (41, 41) and s["noise_seed"].dtype == torch.int64
    assert sorted(s["jitter_order"].tolist()) == [0, 1, 2, 3]
    d = dev.draw(np.random.default_rng(5), (SIZE, SIZE))
    assert s["lq_size"].tolist() == list(d.lq_hw) and float(s["quality"]) == d.quality
    assert torch.equal(s["loc_mouth"], host[(2, 5)]["loc_mouth"])  # the same draws on both paths
    assert torch.equal(dev[(2, 5)]["kernel"], s["kernel"])


def test_device_path_equals_host_path_without_noise_and_jpeg(faces: Path, landmarks: Path) -> None:
    opts = {
        "noise_range": None, "jpeg_range": None, "color_jitter_prob": 0.5, "color_jitter_pt_prob": 0.7,
        "gray_prob": 0.3, "crop_components": True, "component_path": str(landmarks), "blur_kernel_size": 21,
    }  # fmt: skip
    host, dev = build(faces, **opts), build(faces, degrade_on="device", **opts)
    seeds = list(range(20, 28))
    want = _batch(host, seeds)
    got = FFHQDegradation.from_dataset(dev)(_batch(dev, seeds))
    assert set(got) == set(want)
    assert torch.equal(got["gt"], want["gt"]) and torch.equal(got["loc_left_eye"], want["loc_left_eye"])
    diff = (got["lq"] - want["lq"]).abs() * 127.5  # in 8-bit levels
    assert float(diff.max()) <= 1 + 1e-4 and float(diff.mean()) < 0.01  # a rounding step here and there


def test_device_noise_statistics_seeding_and_jpeg(flat: Path, faces: Path) -> None:
    dev = build(
        flat, **{**OFF, "noise_range": [10, 20]}, out_size=128, mean=None, std=None, degrade_on="device"
    )
    deg = FFHQDegradation.from_dataset(dev)
    batch = _batch(dev, [1, 2, 3])
    lq = deg(batch)["lq"]
    for i in range(3):
        std = float((lq[i] - batch["gt"][i]).std()) * 255
        assert std == pytest.approx(math.sqrt(float(batch["sigma"][i]) ** 2 + 1 / 12), rel=0.02)
    assert torch.equal(deg(batch)["lq"], lq)  # seeded per sample: the same batch, the same noise
    jpeg = {**OFF, "jpeg_range": [40, 90], "downsample_range": [1, 2]}
    host, jdev = build(faces, **jpeg), build(faces, degrade_on="device", **jpeg)
    want, got = (
        _batch(host, [4, 5, 6])["lq"],
        FFHQDegradation.from_dataset(jdev)(_batch(jdev, [4, 5, 6]))["lq"],
    )
    psnr = 10 * math.log10(4 / float((got - want).pow(2).mean()))  # range 2 ([-1, 1])
    assert psnr > 35  # DiffJPEG on the device vs libjpeg on the host

"""Eye/mouth boxes (``data.face_components``): GFPGAN's landmarks file layout (built here),
the boxes with ``eye_enlarge_ratio`` and under a flip (numbers), the 68- and 5-point rules."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from restorekit.data.face_components import (
    EYE_HALF_RATIO,
    FFHQ_TEMPLATE_512,
    MOUTH_HALF_RATIO,
    component_boxes,
    components_from_5,
    components_from_68,
    entry_key,
    flip_components,
    load_components,
    save_components,
)
from restorekit.errors import DataError

ENTRY = {"left_eye": (20.0, 30.0, 5.0), "right_eye": (44.0, 31.0, 4.0), "mouth": (30.0, 50.0, 8.0)}


def _gfpgan_file(path: Path, entries: dict[str, dict[str, tuple[float, float, float]]]) -> Path:
    """A file as GFPGAN's parse_landmark.py writes it: lists of numpy.float64, 8-digit keys."""
    table = {k: {part: [np.float64(v) for v in vals] for part, vals in e.items()} for k, e in entries.items()}
    torch.save(table, path)
    return path


def test_reads_gfpgans_layout(tmp_path: Path) -> None:
    other = {"left_eye": (1.5, 2.5, 16.0), "right_eye": (3.0, 4.0, 17.0), "mouth": (5.0, 6.0, 18.5)}
    path = _gfpgan_file(tmp_path / "lm.pth", {"00000000": ENTRY, "00000001": other})
    table = load_components(path)
    assert table == {"00000000": ENTRY, "00000001": other}
    assert all(isinstance(v, float) for e in table.values() for p in e.values() for v in p)


def test_written_files_are_gfpgans_layout_and_read_back(tmp_path: Path) -> None:
    path = save_components(tmp_path / "out.pth", {"00000007": ENTRY})
    raw = torch.load(path, weights_only=False)  # what GFPGAN's loader gets
    assert list(raw) == ["00000007"] and all(type(v) is np.float64 for v in raw["00000007"]["mouth"])
    mean, half = raw["00000007"]["mouth"][0:2], raw["00000007"]["mouth"][2]
    assert list(mean - half + 1) == [23.0, 43.0]  # GFPGAN's arithmetic on the slice works
    assert load_components(path) == {"00000007": ENTRY}


def test_boxes_with_eye_enlarge_ratio_and_flip_numbers() -> None:
    boxes = component_boxes(ENTRY, 64, hflip=False, eye_enlarge_ratio=1.5)
    # [x - h + 1, y - h + 1, x + h, y + h]; eyes' h times 1.5, the mouth's not
    assert boxes["left_eye"].tolist() == [13.5, 23.5, 27.5, 37.5]
    assert boxes["right_eye"].tolist() == [39.0, 26.0, 50.0, 37.0]
    assert boxes["mouth"].tolist() == [23.0, 43.0, 38.0, 58.0]
    flipped = component_boxes(ENTRY, 64, hflip=True, eye_enlarge_ratio=1.5)
    # eyes swap names and every centre moves to 64 - x (GFPGAN's get_component_coordinates)
    assert flipped["left_eye"].tolist() == [15.0, 26.0, 26.0, 37.0]  # old right eye at x = 20
    assert flipped["right_eye"].tolist() == [37.5, 23.5, 51.5, 37.5]  # old left eye at x = 44
    assert flipped["mouth"].tolist() == [27.0, 43.0, 42.0, 58.0]  # x 30 -> 34
    assert all(b.dtype == np.float32 and b.shape == (4,) for b in flipped.values())
    assert component_boxes(ENTRY, 64, eye_enlarge_ratio=1.0)["left_eye"].tolist() == [16.0, 26.0, 25.0, 35.0]
    assert flip_components(flip_components(ENTRY, 64), 64) == ENTRY


def test_gfpgan_golden_boxes() -> None:
    """GFPGAN's get_component_coordinates, run on this entry (out_size 512, ratio 1.4)."""
    entry = {
        "left_eye": (191.5, 242.25, 28.5),
        "right_eye": (319.5, 247.0, 23.75),
        "mouth": (267.75, 355.75, 42.25),
    }
    plain = component_boxes(entry, 512, False, 1.4)
    flip = component_boxes(entry, 512, True, 1.4)
    np.testing.assert_allclose(plain["left_eye"], [152.6, 203.35, 231.4, 282.15], atol=1e-4)
    np.testing.assert_allclose(plain["right_eye"], [287.25, 214.75, 352.75, 280.25], atol=1e-4)
    np.testing.assert_allclose(plain["mouth"], [226.5, 314.5, 310.0, 398.0], atol=1e-4)
    np.testing.assert_allclose(flip["left_eye"], [160.25, 214.75, 225.75, 280.25], atol=1e-4)
    np.testing.assert_allclose(flip["right_eye"], [281.6, 203.35, 360.4, 282.15], atol=1e-4)
    np.testing.assert_allclose(flip["mouth"], [203.0, 314.5, 286.5, 398.0], atol=1e-4)


def test_load_errors_are_one_line_and_name_key_and_file(tmp_path: Path) -> None:
    missing = tmp_path / "FFHQ_eye_mouth_landmarks_512.pth"
    with pytest.raises(DataError, match=rf"^component_path: {missing} does not exist"):
        load_components(missing)
    with pytest.raises(DataError, match="is a folder"):
        load_components(tmp_path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match=r"garbage.pth is not a readable landmarks file") as info:
        load_components(garbage)
    assert "\n" not in str(info.value)
    code = tmp_path / "code.pth"
    torch.save({"00000000": os.getcwd}, code)  # a file that pickles a function is refused
    with pytest.raises(DataError, match="is not a readable landmarks file"):
        load_components(code)
    partial = _gfpgan_file(
        tmp_path / "partial.pth", {"00000000": {"left_eye": (1, 2, 3), "right_eye": (1, 2, 3)}}
    )
    with pytest.raises(DataError, match=r"entry '00000000' must have left_eye, right_eye, mouth"):
        load_components(partial)
    bad = _gfpgan_file(tmp_path / "bad.pth", {"00000000": {**ENTRY, "mouth": (1.0, 2.0, -3.0)}})
    with pytest.raises(DataError, match=r"00000000.mouth: expected \[x, y, half side > 0\]"):
        load_components(bad, key="data.train.dataset.component_path")


def test_entry_key_by_stem_then_number_then_index() -> None:
    table = {"00000003": ENTRY, "face_a": ENTRY, "00000001": ENTRY}
    assert entry_key(0, "face_a", table) == "face_a"
    assert entry_key(0, "00003", table) == "00000003"  # FFHQ's 5-digit names
    assert entry_key(1, "portrait", table) == "00000001"  # GFPGAN's index rule
    assert entry_key(5, "portrait", table) is None


def test_components_from_68_follow_parse_landmark() -> None:
    rng = np.random.default_rng(0)
    lm = rng.uniform(300, 700, (68, 2))
    lm[36:42] = [[380, 480], [390, 470], [400, 468], [410, 470], [420, 480], [400, 486]]  # a 40 x 18 eye
    entry = components_from_68(lm, scale=0.5)
    x, y, half = entry["left_eye"]
    assert (x, y) == pytest.approx((200.0, 237.8333333)) and half == 16.0  # 20 px wide / 2 < 16: the floor
    pts = lm[48:68] * 0.5
    assert entry["mouth"][:2] == pytest.approx(tuple(pts.mean(0)))
    assert entry["mouth"][2] == pytest.approx(max(16.0, float((pts.max(0) - pts.min(0)).max()) / 2))


def test_components_from_5_points() -> None:
    entry = components_from_5(FFHQ_TEMPLATE_512)
    d = float(np.hypot(*(FFHQ_TEMPLATE_512[1] - FFHQ_TEMPLATE_512[0])))
    assert entry["left_eye"][:2] == tuple(FFHQ_TEMPLATE_512[0]) and entry["right_eye"][:2] == tuple(
        FFHQ_TEMPLATE_512[1]
    )
    assert entry["mouth"][:2] == pytest.approx(tuple((FFHQ_TEMPLATE_512[3] + FFHQ_TEMPLATE_512[4]) / 2))
    assert entry["left_eye"][2] == pytest.approx(EYE_HALF_RATIO * d)
    assert entry["mouth"][2] == pytest.approx(MOUTH_HALF_RATIO * d)
    # the calibration target: GFPGAN's tests/data/test_eye_mouth_landmarks.pth (FFHQ 00000000) has
    # eye halves 28.5675 / 23.6925 px (mean 26.13) and a mouth half of 42.21 px at 512
    assert entry["left_eye"][2] == pytest.approx(26.13, abs=0.02)
    assert entry["mouth"][2] == pytest.approx(42.21, abs=0.02)
    # a quarter-size face: the same boxes / 4, except where the 16 px floor (scaled by the caller) binds
    small = components_from_5(FFHQ_TEMPLATE_512 / 4 + 3, min_half=4.0)
    assert small["mouth"] == pytest.approx(
        (entry["mouth"][0] / 4 + 3, entry["mouth"][1] / 4 + 3, entry["mouth"][2] / 4)
    )
    assert components_from_5(FFHQ_TEMPLATE_512 / 8)["left_eye"][2] == 16.0
    with pytest.raises(ValueError, match="expected 5"):
        components_from_5(np.zeros((68, 2)))

"""``restorekit data face-landmarks``: GFPGAN's eye/mouth file for a folder of aligned faces."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from restorekit.cli import main
from restorekit.data.face_components import FFHQ_TEMPLATE_512, components_from_5, load_components
from restorekit.faces.align import align_face
from restorekit.faces.detect import load_detector
from restorekit.faces.toyset import _photos
from restorekit.registry import DATASETS

TEMPLATE = components_from_5(FFHQ_TEMPLATE_512)  # the template's own entry at 512 px
EYE_D = math.dist(FFHQ_TEMPLATE_512[0], FFHQ_TEMPLATE_512[1])  # 125.92 px
# Measured on this set (MTCNN on its own alignments): the worst centre lies 11.1 px (0.088 eye
# distances) from the template's, at 512 px; a half side is within 5% of the template's.
CENTRE_TOL = 0.15 * EYE_D  # 18.9 px at 512
HALF_TOL = 0.10


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two shipped photos aligned by MTCNN at 512 and 128 px, one gray copy, and a blank."""
    root = tmp_path_factory.mktemp("aligned") / "faces"
    root.mkdir()
    det = load_detector("mtcnn", only_keep_largest=True)
    for name, photo in _photos().items():
        points = det(photo)[0].landmarks
        for size in (512, 128):
            crop, _ = align_face(photo, points, face_size=size)
            cv2.imwrite(str(root / f"{name}_{size}.png"), crop)
    gray = cv2.cvtColor(cv2.imread(str(root / "astronaut_128.png")), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(root / "gray_128.png"), gray)
    cv2.imwrite(str(root / "zz_blank.png"), np.full((96, 96, 3), 128, np.uint8))
    return root


def run(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(["data", "face-landmarks", *args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(args: list[str], capsys: pytest.CaptureFixture) -> str:
    code, _, err = run(args, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_boxes_from_mtcnn_land_on_the_template_and_a_blank_falls_back(
    faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "landmarks.pth"
    code, stdout, _ = run([str(faces), "-o", str(out)], capsys)
    assert code == 0
    assert stdout.strip() == f"{out}: 6 images, 5 detected, 1 from the FFHQ template (zz_blank.png)"
    table = load_components(out)
    stems = ["astronaut_128", "astronaut_512", "gray_128", "hopper_128", "hopper_512", "zz_blank"]
    assert sorted(table) == stems
    assert all(table["zz_blank"][p] == pytest.approx(TEMPLATE[p]) for p in TEMPLATE)
    worst = 0.0
    for stem, entry in table.items():
        for part, (x, y, half) in entry.items():
            tx, ty, th = TEMPLATE[part]
            worst = max(worst, math.hypot(x - tx, y - ty))
            assert math.hypot(x - tx, y - ty) < CENTRE_TOL, (stem, part, x, y)
            assert abs(half / th - 1) < HALF_TOL, (stem, part, half)
    assert worst > 1.0  # the detector's points, not the template copied for every face
    # 128 px faces give boxes in 512 px coordinates: the same face at both sizes agrees
    for part in TEMPLATE:
        a, b = table["astronaut_128"][part], table["astronaut_512"][part]
        assert math.dist(a[:2], b[:2]) < 0.1 * EYE_D
    # GFPGAN's layout: plain dicts of lists of numpy.float64, so GFPGAN's own loader can use it
    raw = torch.load(out, weights_only=False)
    assert isinstance(raw["hopper_512"]["mouth"], list)
    assert all(type(v) is np.float64 for v in raw["hopper_512"]["mouth"])
    entry = raw["hopper_512"]["mouth"]
    mean, half = entry[0:2], entry[2]  # get_component_coordinates: a list slice minus a numpy scalar
    loc = np.hstack((mean - half + 1, mean + half))
    x, y, h = table["hopper_512"]["mouth"]
    assert np.allclose(loc, [x - h + 1, y - h + 1, x + h, y + h])


def test_file_feeds_the_face_dataset_at_its_out_size(
    faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    train = tmp_path / "train"
    train.mkdir()
    for p in faces.glob("*_128.png"):
        shutil.copy(p, train / p.name)
    out = tmp_path / "lm128.pth"
    assert run([str(train), "-o", str(out), "--size", "128", "--keys", "index"], capsys)[0] == 0
    assert sorted(load_components(out)) == [f"{i:08d}" for i in range(3)]
    ds = DATASETS.build(
        {"type": "FFHQDegradationDataset", "dataroot_gt": str(train), "out_size": 128,
         "use_hflip": False, "blur_kernel_size": 3, "blur_sigma": [0.1, 0.1], "downsample_range": [1, 1],
         "noise_range": None, "jpeg_range": None, "crop_components": True, "component_path": str(out)},
        "data.train.dataset", skip_corrupt=False, scale=1,
    )  # fmt: skip
    s = ds[(0, 0)]
    x1, y1, x2, y2 = s["loc_mouth"].tolist()
    tx, ty, th = (v / 4 for v in TEMPLATE["mouth"])
    assert abs((x1 + x2) / 2 - tx) < CENTRE_TOL / 4 and abs((y1 + y2) / 2 - ty) < CENTRE_TOL / 4
    assert (x2 - x1) == pytest.approx(2 * th - 1, rel=HALF_TOL)


def test_from_reads_gfpgans_file_and_renames_the_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "ffhq_part"
    folder.mkdir()
    for name in ("00003.png", "00007.png"):  # a part of FFHQ, FFHQ's own names
        cv2.imwrite(str(folder / name), np.zeros((64, 64, 3), np.uint8))
    gfpgan = {
        f"{i:08d}": {
            "left_eye": [np.float64(190 + i), np.float64(240.0), np.float64(26.0)],
            "right_eye": [np.float64(320 + i), np.float64(241.0), np.float64(25.0)],
            "mouth": [np.float64(257.0), np.float64(370 + i), np.float64(42.0)],
        }
        for i in range(10)
    }
    source = tmp_path / "FFHQ_eye_mouth_landmarks_512.pth"
    torch.save(gfpgan, source)  # as parse_landmark.py does
    out = tmp_path / "part.pth"
    code, stdout, _ = run([str(folder), "-o", str(out), "--from", str(source)], capsys)
    assert code == 0 and stdout.strip() == f"{out}: 2 images, 2 entries from the given file"
    table = load_components(out)
    assert sorted(table) == ["00003", "00007"]  # each image's own entry, under its stem
    assert table["00007"]["left_eye"] == (197.0, 240.0, 26.0)
    assert table["00003"]["mouth"] == (257.0, 373.0, 42.0)
    # round trip: the written file is itself GFPGAN layout and feeds --from again, scaled to 128
    again = tmp_path / "again.pth"
    assert run([str(folder), "-o", str(again), "--from", str(out), "--size", "128"], capsys)[0] == 0
    assert load_components(again)["00007"]["left_eye"] == pytest.approx((197 / 4, 60.0, 6.5))
    # an image without an entry is an error: inventing boxes would hide a wrong folder
    cv2.imwrite(str(folder / "extra.png"), np.zeros((64, 64, 3), np.uint8))
    line = one_error([str(folder), "-o", str(tmp_path / "x.pth"), "--from", str(out)], capsys)
    assert line == (
        f"error: --from {out}: no entry for 1 of 3 images "
        "(looked up by stem, then by index as 8 digits): extra.png"
    )
    torch.save({"a": [1, 2]}, tmp_path / "bad.pth")
    bad = [str(folder), "-o", str(tmp_path / "x.pth"), "--from", str(tmp_path / "bad.pth")]
    line = one_error(bad, capsys)
    assert line.startswith(f"error: --from: {tmp_path / 'bad.pth'}: entry 'a' must have left_eye")
    assert not (tmp_path / "x.pth").exists()


def test_existing_output_is_kept_unless_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    out = tmp_path / "lm.pth"
    out.write_bytes(b"precious")
    line = one_error([str(folder), "-o", str(out)], capsys)
    assert line == f"error: -o {out}: already exists; pass --force to replace it"
    assert out.read_bytes() == b"precious"
    code, stdout, _ = run([str(folder), "-o", str(out), "--force"], capsys)
    assert code == 0 and "1 images, 0 detected, 1 from the FFHQ template (a.png)" in stdout
    assert set(load_components(out)) == {"a"}


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = str(tmp_path / "lm.pth")
    assert one_error([str(empty), "-o", out], capsys).startswith(f"error: {empty}: no images found")
    assert one_error([str(tmp_path / "nope"), "-o", out], capsys) == (
        f"error: {tmp_path / 'nope'}: image folder does not exist"
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.png").write_bytes(b"not a png at all")
    assert f"{broken / 'bad.png'}" in one_error([str(broken), "-o", out], capsys)
    wide = tmp_path / "wide"
    wide.mkdir()
    cv2.imwrite(str(wide / "w.png"), np.zeros((64, 80, 3), np.uint8))
    assert one_error([str(wide), "-o", out], capsys) == (
        f"error: {wide / 'w.png'}: 80x64, expected a square aligned face"
    )
    retina = [str(wide), "-o", out, "--detector", "retinaface_resnet50"]
    line = one_error(retina, capsys)  # no weights
    assert "--detector-weights" in line and "detection_Resnet50_Final.pth" in line
    missing = tmp_path / "detection_Resnet50_Final.pth"
    line = one_error([*retina, "--detector-weights", str(missing)], capsys)
    assert str(missing) in line
    assert "did you mean 'mtcnn'" in one_error([str(wide), "-o", out, "--detector", "mtcn"], capsys)
    assert one_error([str(wide), "-o", str(tmp_path), "--force"], capsys) == (
        f"error: -o {tmp_path}: is a folder, expected the landmarks file to write"
    )
    assert not Path(out).exists()


def test_retinaface_path_runs_on_a_weights_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """RetinaFace by path: random mobile0.25 weights find no face, so every image takes the template."""
    from restorekit.faces.retinaface import RetinaFace

    torch.manual_seed(0)
    weights = tmp_path / "detection_mobilenet0.25_Final.pth"
    torch.save(RetinaFace("mobilenet0.25").state_dict(), weights)
    folder = tmp_path / "f"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((128, 128, 3), 100, np.uint8))
    out = tmp_path / "lm.pth"
    args = [str(folder), "-o", str(out), "--detector", "retinaface_mobile0.25"]
    args += ["--detector-weights", str(weights)]
    code, stdout, err = run(args, capsys)
    assert code == 0, err
    assert "1 images, 0 detected, 1 from the FFHQ template" in stdout

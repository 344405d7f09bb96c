"""``restorekit faces`` end to end on CPU: real photos (scikit-image), the real MTCNN weights of
the facenet-pytorch wheel, and a small randomly initialised GFPGANv1Clean written by the test
(no face-restoration weights exist offline), through ``restorekit.cli.main``.

Covers a file, a folder (gray, RGBA, 16-bit, a photo without a face), a glob, a video, ``--aligned``,
``--fidelity 1``, the GFPGAN output layout, ``--json`` and each bad input's one-line error.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from conftest import TINY_GFPGAN, tiny_gfpgan_weights
from restorekit.archs.export import export_network
from restorekit.cli import main
from restorekit.registry import ARCHS
from test_faces_video import FPS, FRAMES, decoded, make_video, read_index

pytestmark = pytest.mark.usefixtures("one_thread")

FACE = 64  # the toy network's face size
NET = TINY_GFPGAN


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gfpgan_weights(tmp_path_factory.mktemp("w"), "GFPGANtoy.pth")


def bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


def astronaut(size: int = 256) -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def multi_face() -> np.ndarray:
    """Two astronauts (one mirrored) on a flat 200×420 canvas: two faces."""
    canvas = np.full((200, 420, 3), (190, 210, 200), np.uint8)
    a = astronaut(200)
    canvas[:, :200] = a
    canvas[:, 220:] = a[:, ::-1]
    return canvas


def write(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def run(*argv: str | Path) -> int:
    return main(["faces", *map(str, argv), "--device", "cpu", "--quiet"])


def test_file_layout_and_json(weights: Path, tmp_path: Path) -> None:
    src = write(tmp_path / "in" / "astronaut.png", bgr(astronaut()))
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    assert (
        run("-i", src, "-o", out, "--weights", weights, "--save-faces", "--compare", "--json", summary) == 0
    )
    img = read(out / "restored_imgs" / "astronaut.png")
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    crop = read(out / "cropped_faces" / "astronaut_00.png")
    face = read(out / "restored_faces" / "astronaut_00.png")
    cmp = read(out / "cmp" / "astronaut_00.png")
    assert crop.shape == face.shape == (FACE, FACE, 3) and cmp.shape == (FACE, 2 * FACE, 3)
    np.testing.assert_array_equal(cmp[:, :FACE], crop)
    np.testing.assert_array_equal(cmp[:, FACE:], face)
    data = json.loads(summary.read_text())
    assert data["counts"] == {"images": 1, "faces": 1, "failed_faces": 0, "images_without_faces": 0,
                              "videos": 0, "frames": 0, "video_faces": 0}  # fmt: skip
    (rec,) = data["images"][0]["faces"]
    x1, y1, x2, y2 = rec["box"]  # the astronaut's face at 256 px: about (90, 31)-(134, 86)
    assert 80 < x1 < 100 and 22 < y1 < 42 and 124 < x2 < 144 and 76 < y2 < 96
    assert rec["score"] > 0.9 and rec["restored"] is True and len(rec["landmarks"]) == 5
    assert data["images"][0]["output"] == str(out / "restored_imgs" / "astronaut.png")
    assert data["elapsed_s"] > 0 and data["settings"]["detector"] == "mtcnn"
    # nothing is replaced without --overwrite, and with it the run repeats
    code = run("-i", src, "-o", out, "--weights", weights)
    assert code == 2
    assert run("-i", src, "-o", out, "--weights", weights, "--overwrite") == 0


def test_folder_formats_and_no_face(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "in"
    a = bgr(astronaut(192))
    write(d / "multi.jpg", bgr(multi_face()))
    write(d / "coffee.jpg", bgr(cv2.resize(skimage.data.coffee(), (200, 133))))
    write(d / "gray.png", cv2.cvtColor(a, cv2.COLOR_BGR2GRAY))
    alpha = np.tile(np.linspace(0, 255, 192, dtype=np.uint8), (192, 1))
    write(d / "rgba.png", np.dstack([a, alpha]))
    write(d / "deep.png", a.astype(np.uint16) * 257 + 128)
    out, summary = tmp_path / "out", tmp_path / "s.json"
    assert run("-i", d, "-o", out, "--weights", weights, "--json", summary, "--suffix", "r") == 0
    res = out / "restored_imgs"
    names = ["coffee_r.jpg", "deep_r.png", "gray_r.png", "multi_r.jpg", "rgba_r.png"]
    assert sorted(p.name for p in res.iterdir()) == names
    coffee = read(res / "coffee_r.jpg")
    assert coffee.shape == (266, 400, 3)  # no face: still written, upscaled
    gray = read(res / "gray_r.png")
    assert gray.shape == (384, 384)  # gray stays gray
    rgba = read(res / "rgba_r.png")
    assert rgba.shape == (384, 384, 4)
    np.testing.assert_allclose(
        rgba[..., 3].astype(float), cv2.resize(alpha, (384, 384)).astype(float), atol=3
    )
    deep = read(res / "deep_r.png")
    assert deep.dtype == np.uint16 and deep.shape == (384, 384, 3)
    assert len(np.unique(deep[..., 1] % 257)) > 8  # 16-bit samples, not 8-bit ones times 257
    data = json.loads(summary.read_text())
    faces = {Path(r["input"]).name: len(r["faces"]) for r in data["images"]}
    assert faces == {"coffee.jpg": 0, "deep.png": 1, "gray.png": 1, "multi.jpg": 2, "rgba.png": 1}
    c = data["counts"]
    assert c["images"] == 5 and c["faces"] == 5 and c["images_without_faces"] == 1 and c["failed_faces"] == 0
    captured = capsys.readouterr()
    assert captured.err == ""


def test_glob_ext_and_fidelity_one(weights: Path, tmp_path: Path) -> None:
    d = tmp_path / "in"
    img = astronaut()
    write(d / "a.jpg", bgr(img))
    write(d / "skip.png", bgr(img))
    out0, out1 = tmp_path / "f0", tmp_path / "f1"
    assert run("-i", f"{d}/*.jpg", "-o", out0, "--weights", weights, "--ext", "png", "--save-faces") == 0
    assert [p.name for p in (out0 / "restored_imgs").iterdir()] == ["a.png"]
    assert run("-i", f"{d}/*.jpg", "-o", out1, "--weights", weights, "--fidelity", "1", "--save-faces") == 0
    # f = 1: the restored face is the aligned input face, exactly
    crop = read(out1 / "cropped_faces" / "a_00.png")
    np.testing.assert_array_equal(read(out1 / "restored_faces" / "a_00.png"), crop)
    lanczos = cv2.resize(read(d / "a.jpg"), (512, 512), interpolation=cv2.INTER_LANCZOS4).astype(float)
    face = np.s_[60:175, 175:270]  # the face at 512 px
    err1 = np.abs(read(out1 / "restored_imgs" / "a.jpg").astype(float) - lanczos)[face].mean()
    err0 = np.abs(read(out0 / "restored_imgs" / "a.png").astype(float) - lanczos)[face].mean()
    # f = 1 pastes back the 64 px aligned input (a blurrier face than Lanczos's, then JPEG-coded:
    # 6.6 levels measured), the random network's face is ~10x further off (66.8)
    assert err1 < 9 and err0 > 4 * err1, (err0, err1)


def test_aligned_input(weights: Path, tmp_path: Path) -> None:
    src = write(
        tmp_path / "face.png", bgr(cv2.resize(skimage.data.astronaut()[30:210, 150:300], (FACE, FACE)))
    )
    out, summary = tmp_path / "out", tmp_path / "s.json"
    assert (
        run("-i", src, "-o", out, "--weights", weights, "--aligned", "--save-faces", "--json", summary) == 0
    )
    assert read(out / "restored_faces" / "face_00.png").shape == (FACE, FACE, 3)
    assert (out / "restored_imgs" / "face.png").exists()
    assert json.loads(summary.read_text())["counts"]["faces"] == 1


@pytest.mark.slow
def test_video_end_to_end(weights: Path, tmp_path: Path) -> None:
    src = make_video(tmp_path / "clip.mp4")
    out, summary = tmp_path / "out", tmp_path / "s.json"
    assert run("-i", src, "-o", out, "--weights", weights, "--fidelity", "1", "--json", summary) == 0
    dst = out / "restored_videos" / "clip.mp4"
    frames, audio = decoded(dst)
    assert len(frames) == FRAMES and frames[0].shape == (192, 192, 3)
    assert [read_index(f) for f in frames] == list(range(FRAMES))  # order kept (fidelity 1: input content)
    assert audio is not None and abs(audio - decoded(src)[1]) <= 1 / FPS
    (video,) = json.loads(summary.read_text())["videos"]
    assert video["frames"] == FRAMES and video["faces"] >= FRAMES - 1 and video["audio"] == "copied (aac)"


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err


def test_bad_inputs_are_one_line(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no image or video files" in _one_line_error(
        capsys, run("-i", empty, "-o", out, "--weights", weights)
    )
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 40)
    err = _one_line_error(capsys, run("-i", broken, "-o", out, "--weights", weights))
    assert "broken.png" in err and "not a readable image" in err
    video = tmp_path / "corrupt.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 500)
    err = _one_line_error(capsys, run("-i", video, "-o", out, "--weights", weights))
    assert "corrupt.mp4: is not a readable video" in err
    good = write(tmp_path / "ok.png", bgr(astronaut(128)))
    err = _one_line_error(
        capsys, run("-i", good, "-o", out, "--weights", weights, "--detector", "retinaface")
    )
    assert "detection_Resnet50_Final.pth" in err and "--detector-weights" in err
    missing = tmp_path / "nowhere" / "detection_Resnet50_Final.pth"
    err = _one_line_error(
        capsys, run("-i", good, "-o", out, "--weights", weights, "--detector", "retinaface",
                    "--detector-weights", missing),
    )  # fmt: skip
    assert str(missing) in err
    err = _one_line_error(capsys, run("-i", good, "-o", out, "--weights", weights, "--detector", "mtcnnn"))
    assert "did you mean" in err.lower() or "mtcnn" in err
    err = _one_line_error(capsys, run("-i", good, "-o", out, "--weights", weights, "--fidelity", "2"))
    assert "--fidelity 2" in err
    sr = tmp_path / "sr.safetensors"
    export_network(ARCHS.build({"type": "SRVGGNetCompact", "num_feat": 8, "num_conv": 2, "upscale": 2}), sr)
    err = _one_line_error(capsys, run("-i", good, "-o", out, "--weights", sr))
    assert "restorekit infer" in err
    assert not out.exists() or not any(out.rglob("*.*"))  # nothing written by any failed run

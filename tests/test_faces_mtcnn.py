"""MTCNN with the real facenet-pytorch weights on real photos, and the detector around it.

The weights are the three files of the facenet-pytorch 2.6.0 wheel that ``scripts/setup-dev.sh``
installs with ``--no-deps``; nothing imports the package. Without them these tests fail (they are
the only check that the port detects faces at all), they do not skip.

Photos ship with installed packages: ``skimage.data.astronaut()`` and matplotlib's
``grace_hopper.jpg`` (one face each); ``coffee``, ``rocket``, ``chelsea`` (a cat) and ``coins``
have none. ``REFERENCE`` holds facenet-pytorch's own output: its ``models/mtcnn.py`` +
``models/utils/detect_face.py`` (timesler/facenet-pytorch HEAD) run in a scratch folder with
``torchvision.ops.batched_nms`` replaced by a plain greedy loop, ``MTCNN(keep_all=True,
select_largest=False).detect(rgb, landmarks=True)``. The hand-read points were read off 8× and 5×
nearest-neighbour enlargements of the photos with a 1 px grid: iris centres, nose tip, mouth corners.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import skimage.data
import torch

from restorekit.errors import ConfigError, WeightsError
from restorekit.faces.detect import (
    Detector,
    FaceDetector,
    center_face,
    largest_face,
    load_detector,
    to_full_size,
)
from restorekit.faces.mtcnn import (
    MTCNN,
    WEIGHT_FILES,
    default_weights_dir,
    load_mtcnn,
    nms,
    pyramid_scales,
)
from restorekit.faces.types import Face

# facenet-pytorch's output on the RGB photos: box (x1, y1, x2, y2), score, 5 points
REFERENCE = {
    "astronaut": (
        [181.051, 62.156, 267.747, 172.05],
        0.9999977,
        [[205.011, 101.727], [246.763, 103.714], [224.671, 128.965], [201.716, 139.246], [245.265, 141.857]],
    ),
    "grace_hopper": (
        [174.402, 119.555, 355.648, 340.457],
        0.9998245,
        [[221.666, 192.206], [309.829, 186.13], [269.357, 239.174], [232.652, 279.649], [306.638, 275.927]],
    ),
}
# ... and on CANVAS (below), best score first
REFERENCE_CANVAS = [
    [1200.492, 431.934, 1242.68, 486.939],
    [199.727, 80.226, 288.282, 194.337],
    [728.435, 163.307, 910.828, 385.805],
]
# Hand-read from the pixels: image-left eye, image-right eye, nose tip, mouth left, mouth right.
HAND = {
    "astronaut": np.array([[204, 101], [247, 103], [223, 127], [203, 141], [244, 141]], np.float64),
    "grace_hopper": np.array([[223, 189], [305, 186], [264, 243], [227, 278], [308, 276]], np.float64),
}
# Eye width is ~0.3 of the inter-ocular distance (IOD) and the iris ~0.2: within 0.14·IOD a point is
# on the eye it names, and a swapped or neighbouring feature is ≥ 0.5·IOD away. MTCNN's published
# mean landmark error is 0.05–0.1·IOD; hand reading adds ~1 px. 0.14·IOD is 6 px on the astronaut.
TOL_IOD = 0.14


def iod(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[1] - points[0]))


# ------------------------------------------------------------------ photos and the detector
def photos() -> dict[str, np.ndarray]:
    """BGR uint8 photos, as cv2 reads them."""
    grace = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    assert grace is not None, "matplotlib's sample_data/grace_hopper.jpg is missing"
    return {"astronaut": np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1]), "grace_hopper": grace}


def canvas_of(p: dict[str, np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Astronaut, Grace Hopper and a half-size astronaut on one flat canvas; their hand-read points."""
    canvas = np.empty((700, 1400, 3), np.uint8)
    canvas[:] = (200, 210, 190)
    canvas[20:532, 20:532] = p["astronaut"]
    canvas[50:650, 560:1072] = p["grace_hopper"]
    canvas[400:656, 1110:1366] = cv2.resize(p["astronaut"], (256, 256), interpolation=cv2.INTER_AREA)
    half = (HAND["astronaut"] + 0.5) / 2 - 0.5  # cv2.resize keeps pixel centres aligned
    offsets = np.array([[20, 20], [560, 50], [1110, 400]], np.float64)
    return canvas, [HAND["astronaut"] + offsets[0], HAND["grace_hopper"] + offsets[1], half + offsets[2]]


@pytest.fixture(scope="module")
def weights() -> Path:
    folder = default_weights_dir()
    missing = [n for n in WEIGHT_FILES if folder is None or not (folder / n).is_file()]
    if missing:
        pytest.fail(
            f"MTCNN weights {', '.join(missing)} not found (facenet-pytorch wheel data folder {folder}): "
            "run scripts/setup-dev.sh, which installs facenet-pytorch==2.6.0 --no-deps for its weight files"
        )
    return folder


@pytest.fixture(scope="module")
def model(weights: Path) -> MTCNN:
    torch.manual_seed(0)
    return load_mtcnn(weights)


@pytest.fixture(scope="module")
def found(model: MTCNN) -> dict[str, list[Face]]:
    """One detection per photo, shared by the tests below (each costs ~0.3 s on one core)."""
    out = {}
    for name, img in photos().items():
        start = time.perf_counter()
        out[name] = model.detect(img)
        print(f"MTCNN {name} {img.shape[1]}x{img.shape[0]}: {time.perf_counter() - start:.3f} s")
    return out


# ------------------------------------------------------------------ weights
def test_weights_are_plain_state_dicts_loaded_strictly(weights: Path) -> None:
    """The files hold only tensors (weights_only=True reads them) whose keys are the modules' own."""
    model = MTCNN()
    for name, sub in zip(WEIGHT_FILES, (model.pnet, model.rnet, model.onet)):
        sd = torch.load(weights / name, map_location="cpu", weights_only=True)
        assert set(sd) == set(sub.state_dict()), name
    loaded = load_mtcnn(weights)
    sd = torch.load(weights / "onet.pt", map_location="cpu", weights_only=True)
    assert torch.equal(loaded.onet.dense6_3.weight, sd["dense6_3.weight"])
    assert not loaded.training


def test_missing_weights_are_one_line_naming_the_file(weights: Path, tmp_path: Path) -> None:
    for name in WEIGHT_FILES[:2]:
        shutil.copy(weights / name, tmp_path / name)
    with pytest.raises(WeightsError) as err:
        load_mtcnn(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "onet.pt") in msg and "--detector-weights" in msg
    with pytest.raises(WeightsError, match=r"does not exist.*--detector-weights"):
        load_detector("mtcnn", tmp_path / "nowhere")
    (tmp_path / "onet.pt").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match=r"onet\.pt"):
        load_mtcnn(tmp_path)
    with pytest.raises(WeightsError, match=r"--detector-weights PATH to detection_Resnet50_Final\.pth"):
        load_detector("retinaface_resnet50")
    with pytest.raises(ConfigError, match="did you mean 'mtcnn'"):
        load_detector("mtcn")


# ------------------------------------------------------------------ the port against facenet-pytorch
def test_same_faces_as_facenet_pytorch(found: dict[str, list[Face]]) -> None:
    for name, (box, score, points) in REFERENCE.items():
        assert len(found[name]) == 1, name
        face = found[name][0]
        assert face.box.dtype == np.float32 and face.landmarks.dtype == np.float32
        assert face.box.shape == (4,) and face.landmarks.shape == (5, 2)
        np.testing.assert_allclose(face.box, box, atol=2e-3)
        np.testing.assert_allclose(face.landmarks, points, atol=2e-3)
        assert face.score == pytest.approx(score, abs=1e-6)


def test_multi_face_canvas_every_face_once(model: MTCNN) -> None:
    canvas, hands = canvas_of(photos())
    start = time.perf_counter()
    faces = model.detect(canvas)
    print(f"MTCNN canvas {canvas.shape[1]}x{canvas.shape[0]} (3 faces): {time.perf_counter() - start:.3f} s")
    assert len(faces) == 3
    np.testing.assert_allclose([f.box for f in faces], REFERENCE_CANVAS, atol=2e-3)
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    for hand in hands:  # each pasted face found at its place, points on its features
        face = min(faces, key=lambda f: np.abs(f.landmarks - hand).sum())
        err = np.linalg.norm(face.landmarks - hand, axis=1)
        assert err.max() < max(TOL_IOD * iod(hand), 3.0), err


@pytest.mark.parametrize("name", ["coffee", "rocket", "chelsea", "coins"])
def test_no_face_no_detection(model: MTCNN, name: str) -> None:
    img = getattr(skimage.data, name)()
    assert model.detect(img, order="rgb") == []


# ------------------------------------------------------------------ landmarks land on the features
def test_landmarks_on_hand_read_points(found: dict[str, list[Face]]) -> None:
    for name, hand in HAND.items():
        points = found[name][0].landmarks
        err = np.linalg.norm(points - hand, axis=1)
        tol = TOL_IOD * iod(hand)
        print(
            f"{name}: landmark error {np.round(err, 2).tolist()} px, IOD {iod(hand):.1f}, tolerance {tol:.1f}"
        )
        assert err.max() < tol, (name, err)
        # FFHQ template order: image-left eye and mouth corner first, eyes above nose above mouth
        assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]
        assert max(points[0, 1], points[1, 1]) < points[2, 1] < min(points[3, 1], points[4, 1])


# ------------------------------------------------------------------ inputs and batches
def test_batches_and_input_forms(model: MTCNN, found: dict[str, list[Face]]) -> None:
    p = photos()
    astro = p["astronaut"]
    flipped = np.ascontiguousarray(astro[:, ::-1])
    batch = model.detect_batch(np.stack([astro, flipped]))  # one batch of two
    mixed = model.detect_batch([p["grace_hopper"], astro])  # two sizes
    alone = model.detect(flipped)
    assert len(batch) == 2 and len(alone) == 1
    np.testing.assert_allclose(batch[0][0].landmarks, found["astronaut"][0].landmarks, atol=1e-3)
    np.testing.assert_allclose(batch[1][0].box, alone[0].box, atol=1e-3)
    np.testing.assert_allclose(batch[1][0].box, [244.338, 67.022, 330.592, 174.307], atol=2e-3)  # facenet's
    # the mirrored face's image-left eye is the original's image-right eye, mirrored
    assert batch[1][0].landmarks[0, 0] == pytest.approx(511 - found["astronaut"][0].landmarks[1, 0], abs=4)
    np.testing.assert_allclose(mixed[0][0].box, found["grace_hopper"][0].box, atol=1e-3)
    np.testing.assert_allclose(mixed[1][0].box, found["astronaut"][0].box, atol=1e-3)
    rgb = model.detect(np.ascontiguousarray(astro[:, :, ::-1]), order="rgb")
    sixteen = model.detect(astro.astype(np.uint16) * 257)
    tensor = model.detect(torch.from_numpy(astro))
    for other in (rgb, sixteen, tensor):
        np.testing.assert_allclose(other[0].landmarks, found["astronaut"][0].landmarks, atol=1e-2)
    gray = model.detect(cv2.cvtColor(astro, cv2.COLOR_BGR2GRAY))
    assert len(gray) == 1 and np.abs(gray[0].landmarks - HAND["astronaut"]).max() < 6


def test_low_precision_networks_keep_float32_points(weights: Path, found: dict[str, list[Face]]) -> None:
    """bfloat16 networks (what a GPU may run) find the same face; coordinates stay float32 sums."""
    low = load_mtcnn(weights).to(torch.bfloat16)
    (face,) = low.detect(photos()["astronaut"])
    assert face.landmarks.dtype == np.float32
    assert np.abs(face.landmarks - found["astronaut"][0].landmarks).max() < 3.0  # measured 1.6


def test_tiny_image_and_bad_options(model: MTCNN) -> None:
    assert model.detect(np.zeros((15, 15, 3), np.uint8)) == []  # smaller than the 20 px minimum face
    assert pyramid_scales(100, 200, 20, 0.709)[0] == pytest.approx(0.6)
    with pytest.raises(ConfigError, match="thresholds"):
        MTCNN(thresholds=(0.6, 0.7))
    with pytest.raises(ConfigError, match="order"):
        model.detect(np.zeros((30, 30, 3), np.uint8), order="yuv")


def test_nms_union_and_min() -> None:
    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 6, 6], [50, 50, 60, 60]], dtype=torch.float32
    )
    scores = torch.tensor([0.9, 0.8, 0.95, 0.7])
    # IoU(0,1) = 81/119 = 0.68; the small box 2 lies inside 0: IoU 0.16 but Min-overlap 1
    assert nms(boxes, scores, 0.5).tolist() == [2, 0, 3]
    assert nms(boxes, scores, 0.7).tolist() == [2, 0, 1, 3]
    assert nms(boxes, scores, 0.7, mode="min").tolist() == [2, 3]


# ------------------------------------------------------------------ the detector around the network
def test_detector_filters_and_selection(model: MTCNN) -> None:
    canvas, _ = canvas_of(photos())
    det = FaceDetector(model, max_side=None)
    assert isinstance(model, Detector)
    faces = det(canvas)
    assert len(faces) == 3
    eyes = sorted(f.eye_distance for f in faces)  # ~21, ~43, ~88 px
    assert len(FaceDetector(model, eye_dist_threshold=eyes[0] + 1, max_side=None)(canvas)) == 2
    assert len(FaceDetector(model, eye_dist_threshold=eyes[2] + 1, max_side=None)(canvas)) == 0
    assert len(FaceDetector(model, conf_threshold=1.0, max_side=None)(canvas)) == 0
    h, w = canvas.shape[:2]
    big = largest_face(faces, h, w)
    assert big.eye_distance == pytest.approx(eyes[2])  # Grace Hopper
    assert center_face(faces, h, w).box[0] > 560  # Grace Hopper is nearest the canvas centre
    assert center_face(faces, h, w, center=(0, 0)).box[0] < 300  # the big astronaut
    only = FaceDetector(model, max_side=None, only_keep_largest=True)(canvas)
    assert len(only) == 1 and only[0].eye_distance == pytest.approx(eyes[2])
    with pytest.raises(ConfigError, match="max side"):
        FaceDetector(model, max_side=10)
    default = load_detector()  # GFPGAN's eye-distance filter, bounded size, MTCNN's own threshold
    assert (default.eye_dist_threshold, default.max_side, default.conf_threshold) == (5.0, 1600, None)


def test_bounded_resolution_same_faces(model: MTCNN, found: dict[str, list[Face]]) -> None:
    """A 2× upscaled photo detected at ≤ the photo's size gives the faces of full-size detection.

    Exactly (0.5 px) the 2× image of the photo's own faces: the only error left is the resize.
    Against detection at the full 2× size, MTCNN's own scale jitter shows: its pyramid samples a
    face at other levels: measured up to 0.05·IOD on the points, box IoU 0.87 (Grace) and 0.92.
    """
    for name, img in photos().items():
        big = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        bounded = FaceDetector(model, max_side=max(img.shape[:2]))
        start = time.perf_counter()
        small = bounded(big)
        t_small = time.perf_counter() - start
        start = time.perf_counter()
        full = FaceDetector(model, max_side=None)(big)
        t_full = time.perf_counter() - start
        print(f"{name} 2x: full {t_full:.2f} s, bounded {t_small:.2f} s")
        assert bounded.last_scale == (0.5, 0.5) and len(small) == len(full) == 1
        ref = found[name][0]
        np.testing.assert_allclose(small[0].landmarks, 2 * ref.landmarks + 0.5, atol=0.5)
        np.testing.assert_allclose(small[0].box, 2 * ref.box + 0.5, atol=0.5)
        err = np.linalg.norm(small[0].landmarks - full[0].landmarks, axis=1)
        assert err.max() < 0.06 * full[0].eye_distance, err
        assert box_iou(small[0].box, full[0].box) > 0.85


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_to_full_size_maps_pixel_centres() -> None:
    face = Face([10, 20, 30, 40], 0.9, np.arange(10).reshape(5, 2))
    back = to_full_size(face, 0.25, 0.5)
    np.testing.assert_allclose(back.box, [41.5, 40.5, 121.5, 80.5])
    np.testing.assert_allclose(back.landmarks[1], [2 * 4 + 1.5, 3 * 2 + 0.5])

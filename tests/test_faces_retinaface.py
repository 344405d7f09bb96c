"""RetinaFace: facexlib's two layouts, weight loading, anchors, decoding, NMS, forward and detect.

Reference numbers come from running xinntao/facexlib 260620a's own ``facexlib/detection/
retinaface.py`` (+ ``retinaface_net.py``, ``retinaface_utils.py``) in a scratch folder, with
torchvision stubbed by a copy of pytorch/vision's resnet50 + IntermediateLayerGetter and a
plain greedy ``ops.nms``, every parameter and buffer set by ``fill`` below and the inputs from
``fixed``; nothing here imports that code. The key files in ``tests/data`` say how they were made.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from restorekit.errors import ConfigError, DataError, WeightsError
from restorekit.faces.retinaface import (
    RetinaFace,
    as_bgr,
    box_iou,
    decode_boxes,
    decode_landmarks,
    load_retinaface,
    nms,
    prior_boxes,
)
from restorekit.faces.types import Face

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = Path(__file__).resolve().parent / "data"
KEY_FILES = {"resnet50": "retinaface_resnet50_keys.txt", "mobilenet0.25": "retinaface_mobilenet_keys.txt"}


def read_key_list(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """``(key, shape)`` lines of ``tests/data/<name>``; ``-`` is a 0-d tensor, ``#`` a comment."""
    out = []
    for line in (DATA / name).read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            out.append((key, () if shape == "-" else tuple(int(d) for d in shape.split(","))))
    return out


def fill(model: torch.nn.Module) -> torch.nn.Module:
    """The rule the reference numbers were made with: the i-th floating entry in sorted key order
    draws ``r = randn(shape, generator=seed i)``; running_var = 1 + 0.05|r|, conv weights r /
    sqrt(fan_in), BN weights 1 + 0.05 r, everything else 0.05 r. (A plain 0.05 r everywhere was
    tried first: it shrinks the signal so much that the heads no longer depend on the input.)"""
    with torch.no_grad():
        for i, (key, t) in enumerate(sorted(model.state_dict().items())):
            if not t.is_floating_point():
                continue
            r = torch.randn(t.shape, generator=torch.Generator().manual_seed(i))
            if key.endswith("running_var"):
                r = 1 + 0.05 * r.abs()
            elif t.dim() > 1:
                r = r / math.sqrt(t[0].numel())
            elif key.endswith("weight"):
                r = 1 + 0.05 * r
            else:
                r = 0.05 * r
            t.copy_(r)
    return model.eval()


def fixed(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ layout and weights
@pytest.mark.parametrize("network", ["resnet50", "mobilenet0.25"])
def test_layout_is_facexlibs(network: str) -> None:
    with torch.device("meta"):
        model = RetinaFace(network)
    layout = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert layout == read_key_list(KEY_FILES[network])  # same keys, shapes and order


def test_layout_landmarks() -> None:
    """A few keys spelled out, so a regenerated key file cannot drift silently."""
    big, small = dict(read_key_list(KEY_FILES["resnet50"])), dict(read_key_list(KEY_FILES["mobilenet0.25"]))
    assert big["body.conv1.weight"] == (64, 3, 7, 7)
    assert big["body.layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert big["body.layer2.0.conv2.weight"] == (128, 128, 3, 3)  # stride on the 3×3 (v1.5)
    assert big["body.layer4.2.bn3.running_var"] == (2048,)
    assert big["fpn.output1.0.weight"] == (256, 512, 1, 1)
    assert big["ssh3.conv7x7_3.0.weight"] == (64, 64, 3, 3)
    assert big["LandmarkHead.2.conv1x1.weight"] == (20, 256, 1, 1)
    assert big["body.layer1.0.downsample.1.running_mean"] == (256,)
    assert "body.fc.weight" not in big and "body.avgpool" not in " ".join(big)
    assert small["body.stage1.0.0.weight"] == (8, 3, 3, 3)
    assert small["body.stage3.1.3.weight"] == (256, 256, 1, 1)
    assert small["ClassHead.0.conv1x1.weight"] == (4, 64, 1, 1)
    assert "body.fc.weight" not in small
    assert len(big) == 456 and len(small) == 300


def state_from_key_file(network: str, prefix: str = "") -> dict[str, torch.Tensor]:
    out = {}
    for i, (key, shape) in enumerate(read_key_list(KEY_FILES[network])):
        if key.endswith("num_batches_tracked"):
            out[prefix + key] = torch.tensor(7, dtype=torch.long)
        else:
            out[prefix + key] = torch.full(shape, float(i % 97) / 97)
    return out


def test_load_facexlib_file_with_module_prefix(tmp_path: Path) -> None:
    """The released .pth files carry ``module.``; the layout is recognised from the keys."""
    path = tmp_path / "detection_mobilenet0.25_Final.pth"
    torch.save(state_from_key_file("mobilenet0.25", "module."), path)
    model = load_retinaface(path)
    assert model.network == "mobilenet0.25" and not model.training
    sd = model.state_dict()
    key = read_key_list(KEY_FILES["mobilenet0.25"])[3][0]
    assert key == "body.stage1.0.1.running_mean" and float(sd[key][0]) == pytest.approx(3 / 97)
    assert load_retinaface(path, network="mobile0.25").network == "mobilenet0.25"  # facexlib's spelling
    with pytest.raises(WeightsError, match=r"holds a RetinaFace mobilenet0.25, not the resnet50"):
        load_retinaface(path, network="resnet50")


def test_resnet50_layout_loads_strictly() -> None:
    from restorekit.weights import load_into

    model = RetinaFace("resnet50")
    assert load_into(model, state_from_key_file("resnet50"), "strict", "detection_Resnet50_Final.pth") == []
    assert float(model.state_dict()["body.conv1.weight"].flatten()[0]) == 0.0


def test_weight_errors_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "detection_Resnet50_Final.pth"
    with pytest.raises(WeightsError, match="--detector-weights") as exc:
        load_retinaface(missing)
    assert str(missing) in str(exc.value) and "\n" not in str(exc.value)
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, other)
    with pytest.raises(WeightsError, match="not a RetinaFace state dict"):
        load_retinaface(other)
    broken = state_from_key_file("mobilenet0.25")
    del broken["fpn.merge1.0.weight"]
    torch.save(broken, other)
    with pytest.raises(WeightsError, match=r"missing keys fpn\.merge1\.0\.weight") as exc:
        load_retinaface(other)
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match=r"expected one of resnet50, mobilenet0\.25"):
        RetinaFace("resnet18")


# ------------------------------------------------------------------ anchors, decoding, NMS
def test_prior_boxes_follow_the_formula() -> None:
    """72×100: levels 9×13, 5×7, 3×4 cells (ceil(h/step) × ceil(w/step)), 2 anchors each."""
    priors = prior_boxes(72, 100)
    assert priors.shape == (2 * (9 * 13 + 5 * 7 + 3 * 4), 4) == (328, 4)
    expected = {
        0: (0.5 * 8 / 100, 0.5 * 8 / 72, 16 / 100, 16 / 72),
        1: (0.5 * 8 / 100, 0.5 * 8 / 72, 32 / 100, 32 / 72),
        2: (1.5 * 8 / 100, 0.5 * 8 / 72, 16 / 100, 16 / 72),  # next column, same row
        26: (0.5 * 8 / 100, 1.5 * 8 / 72, 16 / 100, 16 / 72),  # next row after 13 cells
        233: (12.5 * 8 / 100, 8.5 * 8 / 72, 32 / 100, 32 / 72),  # last of level 1
        234: (0.5 * 16 / 100, 0.5 * 16 / 72, 64 / 100, 64 / 72),  # first of level 2
        327: (3.5 * 32 / 100, 2.5 * 32 / 72, 512 / 100, 512 / 72),  # last of level 3
    }
    for row, values in expected.items():
        assert priors[row].tolist() == pytest.approx(values, rel=1e-7, abs=1e-7), row
    assert prior_boxes(640, 480).shape[0] == 2 * (80 * 60 + 40 * 30 + 20 * 15)
    assert prior_boxes(33, 33).shape[0] == 2 * (5 * 5 + 3 * 3 + 2 * 2)


def test_decode_boxes_and_landmarks_by_hand() -> None:
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    # centre moves by loc·0.1·size; size scales by exp(loc·0.2): 5·ln 2 doubles the height
    loc = torch.tensor([[1.0, -1.0, 0.0, 5 * math.log(2)]])
    box = decode_boxes(loc, prior)[0].tolist()
    assert box == pytest.approx([0.52 - 0.1, 0.46 - 0.4, 0.52 + 0.1, 0.46 + 0.4], abs=1e-6)
    pre = torch.tensor([[1.0, 0.0, 0.0, 1.0, -1.0, -1.0, 2.0, 0.0, 0.0, 0.0]])
    points = decode_landmarks(pre, prior)[0].view(5, 2).tolist()
    expected = [(0.52, 0.5), (0.5, 0.54), (0.48, 0.46), (0.54, 0.5), (0.5, 0.5)]
    for got, want in zip(points, expected):
        assert got == pytest.approx(want, abs=1e-6)


def test_nms_by_hand() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # 0: IoU 1/3 with box 3 (kept), 0.818 with box 1
            [1.0, 0.0, 11.0, 10.0],  # 1: IoU 60/140 = 0.43 with box 3 -> gone
            [20.0, 20.0, 30.0, 30.0],  # 2: alone
            [5.0, 0.0, 15.0, 10.0],  # 3: best score
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.4).tolist() == [3, 0, 2]
    assert nms(boxes, scores, 0.45).tolist() == [3, 0, 2]  # box 1 still goes: 0.818 with box 0
    assert nms(boxes, scores, 0.9).tolist() == [3, 0, 1, 2]
    assert box_iou(boxes[0], boxes[1:2]).item() == pytest.approx(90 / 110)
    # IoU exactly at the threshold is kept (torchvision suppresses only IoU > threshold)
    pair = torch.tensor([[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    assert nms(pair, torch.tensor([0.6, 0.5]), 0.5).tolist() == [0, 1]
    assert nms(pair, torch.tensor([0.6, 0.5]), 0.49).tolist() == [0]
    # equal scores keep their input order
    apart = torch.tensor([[0.0, 0, 1, 1], [5.0, 5, 6, 6]])
    assert nms(apart, torch.tensor([0.5, 0.5]), 0.4).tolist() == [0, 1]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.4).tolist() == []


# ------------------------------------------------------------------ forward vs facexlib
# fmt: off
PRIORS = [0, 101, 240, 300, 327]
# rows: loc(4) | logits(2) | landmarks(10) at the priors above; 1×3×72×100 input fixed(.., 1234)·10
REFERENCE = {
    "mobilenet0.25": (
        (0.036667, 0.058698, 0.027968, 0.077130, -0.145297, 0.001884, 0.027504, 0.018272,
         -0.047618, -0.097800, -0.034681, 0.015695, -0.044256, -0.010682, -0.059378, 0.133756),
        (-0.105818, -0.300136, -0.030517, -0.040347, -0.110490, -0.084665, -0.110388, 0.165102,
         -0.030708, 0.074240, 0.073367, -0.064112, -0.071518, -0.002492, -0.072664, 0.075298),
        (-0.014030, -0.082361, -0.058943, -0.032535, -0.031405, 0.042651, -0.031402, 0.045725,
         -0.011759, 0.033879, 0.010744, 0.095753, -0.152342, -0.000582, 0.022520, -0.070685),
        (-0.007470, -0.018696, -0.181715, -0.001206, -0.012328, 0.002771, -0.034854, 0.099709,
         0.002095, 0.034928, 0.008270, 0.115273, -0.074054, -0.073186, -0.057695, -0.107776),
        (-0.013307, -0.040035, 0.002393, 0.081336, 0.063755, -0.160444, -0.042166, 0.053957,
         0.008229, 0.017866, 0.106639, 0.096942, 0.238114, 0.073058, -0.046431, 0.105778),
    ),
    "resnet50": (
        (-0.430038, 2.596694, 2.395981, -7.012095, -4.300502, 6.103707, -4.759879, -3.101714,
         -0.833571, 2.495964, 2.953227, -2.641606, -2.137113, 1.058477, 0.532874, -3.912499),
        (6.468693, -4.787094, 5.008489, -3.768592, 1.403758, 1.543742, 2.012243, 1.905365,
         -3.488938, -4.746930, 8.409455, 7.854474, -8.291904, 0.841761, 4.436241, 11.127087),
        (-1.252063, -0.174082, 2.714328, 2.739191, -8.060982, -9.917951, -5.874973, -0.435088,
         1.388137, 4.196834, 0.511331, 15.171472, 1.160072, 0.112093, 1.402914, -0.111773),
        (0.809767, 2.881567, -2.553410, -4.794768, -2.804595, -7.305871, 0.029077, -10.174470,
         -10.317839, 3.358662, -2.805302, 5.140345, -4.418315, -5.464546, -3.749345, 2.395490),
        (0.619741, -2.851426, -0.279214, -4.630995, 3.253087, 0.996076, -2.575182, 0.387496,
         -3.124091, 4.519863, -3.151804, 3.033445, 3.891982, -2.957011, 3.928240, 6.131926),
    ),
}
# (sum, sum of |x|) of loc, logits, landmarks over all 328 priors
REFERENCE_SUMS = {
    "mobilenet0.25": ((-23.72777, 107.32791), (-38.33625, 58.24233), (18.95141, 249.70340)),
    "resnet50": ((101.63015, 5859.89038), (-260.52521, 3880.98880), (-223.60795, 15422.07214)),
}
# fmt: on


@pytest.mark.parametrize("network", ["mobilenet0.25", "resnet50"])
def test_forward_matches_facexlib(network: str) -> None:
    model = fill(RetinaFace(network))
    with torch.no_grad():
        loc, logits, landm = model(fixed((1, 3, 72, 100), 1234) * 10)
    assert loc.shape == (1, 328, 4) and logits.shape == (1, 328, 2) and landm.shape == (1, 328, 10)
    rows = torch.cat([loc[0], logits[0], landm[0]], dim=1)[PRIORS]
    torch.testing.assert_close(rows, torch.tensor(REFERENCE[network]), rtol=1e-4, atol=1e-4)
    for t, (total, mass) in zip((loc, logits, landm), REFERENCE_SUMS[network]):
        assert t.sum().item() == pytest.approx(total, rel=1e-4, abs=1e-3)
        assert t.abs().sum().item() == pytest.approx(mass, rel=1e-4)


# ------------------------------------------------------------------ detect
def astronaut_bgr(size: int | None = 128) -> np.ndarray:
    """skimage's astronaut photo (bundled with scikit-image, a dev dependency) as BGR uint8."""
    import skimage.data

    rgb = skimage.data.astronaut()
    if size is not None:
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb[:, :, ::-1])


# facexlib's detect_faces(img, conf_threshold=0.85, nms_threshold=0.4) on astronaut_bgr(128) with
# the fill()ed MobileNet: x1, y1, x2, y2, score, then the 5 landmarks (x, y).
# fmt: off
REFERENCE_DETECT = np.array(
    [
        (90.5843, 33.8294, 107.0906, 52.6227, 0.9078, 101.7996, 45.6641, 97.7366, 44.3418, 100.4609,
         44.3440, 99.1176, 41.7714, 98.5961, 45.5219),
        (90.9304, 25.9439, 107.8781, 44.5864, 0.8916, 101.5518, 37.6225, 97.8023, 36.2079, 100.1182,
         36.2795, 98.9251, 34.0098, 98.3617, 37.5404),
        (83.2106, 17.2645, 99.8755, 37.2020, 0.8886, 94.1578, 29.3484, 90.1679, 28.4822, 92.1308,
         28.6988, 90.8075, 26.6193, 90.3221, 29.6035),
        (90.8367, 17.9551, 108.4270, 36.6076, 0.8851, 101.5344, 29.5387, 98.1604, 28.1564, 100.2001,
         28.3111, 98.8215, 26.1268, 98.6528, 30.2297),
        (83.3657, 40.0349, 100.1195, 61.3846, 0.8834, 94.1924, 53.2445, 90.1938, 51.9287, 91.9062,
         53.0228, 91.1960, 50.3589, 89.7017, 53.9233),
        (75.6236, 32.1368, 92.8107, 54.2789, 0.8658, 86.1831, 45.3961, 81.8368, 44.2695, 83.8426,
         44.9597, 82.9169, 42.2827, 81.3187, 45.7794),
        (75.6235, 9.2318, 92.3369, 29.8140, 0.8561, 85.9986, 21.1319, 82.5081, 20.4631, 83.7463,
         20.9295, 82.9506, 19.0402, 82.0460, 21.0129),
    ]
)
# fmt: on


def as_rows(faces: list[Face]) -> np.ndarray:
    return np.array([np.concatenate([f.box, [f.score], f.landmarks.reshape(-1)]) for f in faces])


def test_detect_matches_facexlib_on_a_photo() -> None:
    model = fill(RetinaFace("mobilenet0.25"))
    image = astronaut_bgr(128)
    faces = model.detect(image, conf_threshold=0.85)
    assert len(faces) == len(REFERENCE_DETECT)
    np.testing.assert_allclose(as_rows(faces), REFERENCE_DETECT, atol=2e-3)
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    from_rgb = model.detect(rgb, conf_threshold=0.85, order="rgb")
    np.testing.assert_array_equal(as_rows(from_rgb), as_rows(faces))
    assert len(model.detect(image, conf_threshold=0.8)) == 16
    assert len(model.detect(image, conf_threshold=0.9)) == 1


def test_detect_is_well_formed_on_a_full_photo() -> None:
    """Default settings (0.97, original size) on the 512×512 photo, then a low threshold with
    ``resize`` (the helper's LANCZOS4 scaling, coordinates scaled back)."""
    model = fill(RetinaFace("mobilenet0.25"))
    image = astronaut_bgr(None)
    for faces in (model.detect(image), model.detect(image, conf_threshold=0.5, resize=128)):
        assert isinstance(faces, list)
        for f in faces:
            assert isinstance(f, Face) and isinstance(f.score, float)
            assert f.box.dtype == np.float32 and f.box.shape == (4,) and np.isfinite(f.box).all()
            assert f.landmarks.dtype == np.float32 and f.landmarks.shape == (5, 2)
            assert f.box[0] < f.box[2] and f.box[1] < f.box[3]
    assert len(faces) > 10
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True) and min(scores) > 0.5
    boxes = torch.from_numpy(np.stack([f.box for f in faces]))
    for i in range(len(boxes)):  # nothing left overlaps a better face by more than the NMS threshold
        assert (box_iou(boxes[i], boxes[i + 1 :]) <= 0.4 + 1e-6).all()
    small = cv2.resize(image, (128, 128), interpolation=cv2.INTER_LANCZOS4)
    direct = model.detect(small, conf_threshold=0.5)
    np.testing.assert_allclose(as_rows(faces)[:, :4], as_rows(direct)[:, :4] * 4, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(as_rows(faces)[:, 4], as_rows(direct)[:, 4])  # scores are not scaled


def test_detect_from_known_head_outputs() -> None:
    """Heads with zero weights output their biases, so detect's result follows from the formulas:
    on a 32×32 image only level 3 (one cell at (16, 16), anchors 256 and 512 px) is switched on."""
    model = fill(RetinaFace("mobilenet0.25"))
    with torch.no_grad():
        for heads in (model.ClassHead, model.BboxHead, model.LandmarkHead):
            for h in heads:
                h.conv1x1.weight.zero_()
                h.conv1x1.bias.zero_()
        for level in (0, 1):
            model.ClassHead[level].conv1x1.bias.copy_(torch.tensor([0.0, -20.0, 0.0, -20.0]))
        model.ClassHead[2].conv1x1.bias.copy_(torch.tensor([0.0, 5.0, 0.0, 4.0]))
        model.BboxHead[2].conv1x1.bias[:4] = torch.tensor([0.5, -0.5, 0.0, 5 * math.log(0.5)])
        model.LandmarkHead[2].conv1x1.bias[:10] = torch.tensor([1.0, 0, 0, 1, -1, 0, 0, -1, 0.5, 0.5])
    image = np.full((32, 32, 3), 128, np.uint8)
    faces = model.detect(image)  # 0.97 < sigmoid(4) < sigmoid(5); IoU(256², 512²) = 0.25 < 0.4
    assert len(faces) == 2
    first, second = faces
    assert first.score == pytest.approx(1 / (1 + math.exp(-5)), rel=1e-6)
    assert second.score == pytest.approx(1 / (1 + math.exp(-4)), rel=1e-6)
    # centre (16 + 0.5·0.1·256, 16 - 0.5·0.1·256), size 256 × 256·exp(0.2·5·ln 0.5) = 256 × 128
    np.testing.assert_allclose(first.box, [28.8 - 128, 3.2 - 64, 28.8 + 128, 3.2 + 64], atol=1e-4)
    np.testing.assert_allclose(second.box, [16 - 256, 16 - 256, 16 + 256, 16 + 256], atol=1e-4)
    offsets = np.array([[1, 0], [0, 1], [-1, 0], [0, -1], [0.5, 0.5]]) * 0.1 * 256
    np.testing.assert_allclose(first.landmarks, 16 + offsets, atol=1e-4)
    np.testing.assert_allclose(second.landmarks, np.full((5, 2), 16.0), atol=1e-4)
    # resize: a 64×64 image at resize=32 is detected at 32×32 and scaled back by 2
    scaled = model.detect(np.full((64, 64, 3), 128, np.uint8), resize=32)
    np.testing.assert_allclose(scaled[0].box, first.box * 2, atol=1e-4)
    assert scaled[0].score == pytest.approx(first.score)
    assert model.detect(image, conf_threshold=0.995) == []


def test_inputs_become_the_helpers_bgr_image() -> None:
    """Gray is repeated, alpha dropped, 16-bit scaled to 0–255, RGB reversed (read_image's rules);
    detection of each form gives the same faces as the plain BGR image."""
    bgr = astronaut_bgr(64)
    gray = bgr[:, :, 1]
    assert as_bgr(gray).tolist() == np.repeat(gray[:, :, None], 3, axis=2).tolist()
    rgba = np.concatenate([bgr[:, :, ::-1], np.full((64, 64, 1), 7, np.uint8)], axis=2)
    assert as_bgr(rgba, "rgb").tolist() == bgr.tolist()
    deep = bgr.astype(np.uint16) * 257
    np.testing.assert_allclose(as_bgr(deep), bgr, atol=1e-9)
    model = fill(RetinaFace("mobilenet0.25"))
    plain = as_rows(model.detect(bgr, conf_threshold=0.8))
    assert len(plain) > 0
    np.testing.assert_allclose(as_rows(model.detect(deep, conf_threshold=0.8)), plain, atol=1e-4)
    assert as_rows(model.detect(rgba, conf_threshold=0.8, order="rgb")).tolist() == plain.tolist()
    as_color = np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    from_gray = as_rows(model.detect(gray, conf_threshold=0.7))
    assert len(from_gray) > 0
    assert from_gray.tolist() == as_rows(model.detect(as_color, conf_threshold=0.7)).tolist()


def test_detect_input_errors() -> None:
    model = fill(RetinaFace("mobilenet0.25"))
    with pytest.raises(DataError, match=r"expected an H×W or H×W×C image array, got shape \(4,\)"):
        model.detect(np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="expected 1, 3 or 4 channels, got 2"):
        model.detect(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(DataError, match="got list"):
        model.detect([[0]])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="resize 0"):
        model.detect(np.zeros((8, 8, 3), np.uint8), resize=0)
    with pytest.raises(ConfigError, match="order 'yuv'"):
        model.detect(np.zeros((8, 8, 3), np.uint8), order="yuv")  # type: ignore[arg-type]

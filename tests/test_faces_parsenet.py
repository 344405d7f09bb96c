"""ParseNet: facexlib's layout, weight loading, forward vs facexlib, and the paste-back mask.

Reference numbers come from running xinntao/facexlib 260620a's own ``facexlib/parsing/
parsenet.py`` in a scratch folder as ``init_parsing_model('parsenet')`` builds it, with every
parameter and buffer set by ``fill`` (the rule of ``tests/test_faces_retinaface.py``) and the input
from ``fixed``; nothing here imports that code. The mask steps are facexlib's
``FaceRestoreHelper.paste_faces_to_input_image`` (``use_parse=True``); the blur is checked against
a Gaussian written out here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from restorekit.errors import DataError, WeightsError
from restorekit.faces.parsenet import ParseNet, classes_to_mask, load_parsenet, soften_mask

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = Path(__file__).resolve().parent / "data"


def read_key_list(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """``(key, shape)`` lines of ``tests/data/<name>``; ``-`` is a 0-d tensor, ``#`` a comment."""
    out = []
    for line in (DATA / name).read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            out.append((key, () if shape == "-" else tuple(int(d) for d in shape.split(","))))
    return out


def fill(model: torch.nn.Module) -> torch.nn.Module:
    """Sorted key i draws ``r = randn(shape, generator=seed i)``: running_var 1 + 0.05|r|, conv
    weights r / sqrt(fan_in), BN weights 1 + 0.05 r, everything else 0.05 r."""
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
def test_layout_is_facexlibs() -> None:
    with torch.device("meta"):
        model = ParseNet()
    layout = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    expected = read_key_list("parsenet_keys.txt")
    assert layout == expected  # same keys, shapes and order
    keys = dict(expected)
    assert keys["encoder.0.conv2d.weight"] == (64, 3, 3, 3) and "encoder.0.norm.norm.weight" not in keys
    assert keys["encoder.4.shortcut_func.conv2d.weight"] == (256, 256, 3, 3)
    assert "body.0.shortcut_func.conv2d.weight" not in keys  # identity shortcut
    assert keys["body.9.conv2.norm.norm.running_var"] == (256,)
    assert keys["decoder.3.conv1.conv2d.weight"] == (64, 128, 3, 3)
    assert keys["out_mask_conv.conv2d.weight"] == (19, 64, 3, 3)


def state_from_key_file() -> dict[str, torch.Tensor]:
    out = {}
    for i, (key, shape) in enumerate(read_key_list("parsenet_keys.txt")):
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(3, dtype=torch.long)
        else:
            out[key] = torch.full(shape, float(i % 89) / 89)
    return out


def test_load_strictly_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "parsing_parsenet.pth"
    torch.save(state_from_key_file(), path)
    model = load_parsenet(path)
    assert not model.training
    assert float(model.state_dict()["encoder.0.conv2d.bias"][0]) == pytest.approx(1 / 89)
    missing = tmp_path / "nowhere" / "parsing_parsenet.pth"
    with pytest.raises(WeightsError, match="--parse-weights") as exc:
        load_parsenet(missing)
    assert str(missing) in str(exc.value) and "\n" not in str(exc.value)
    broken = state_from_key_file()
    broken["body.0.conv1.conv2d.weight"] = torch.zeros(256, 256, 1, 1)
    torch.save(broken, path)
    with pytest.raises(WeightsError, match=r"shape mismatch .*body\.0\.conv1\.conv2d\.weight") as exc:
        load_parsenet(path)
    assert "\n" not in str(exc.value)


# ------------------------------------------------------------------ forward vs facexlib
# fmt: off
POS = [(0, 0), (31, 17), (63, 63), (10, 50)]
REFERENCE_MASK = [  # logits at channels 0, 7, 14, 18 at POS (y, x); input fixed((1, 3, 64, 64), 1234)
    [-43.10825, 14.56296, -33.89816, -17.14442],
    [-49.31783, 37.42168, -11.84633, -37.01016],
    [-54.80526, 0.80131, -1.47909, -24.4143],
    [-63.45944, 8.91642, -62.20007, -5.57285],
]
REFERENCE_IMG = [[15.53305, -1.19054, 12.80267], [29.3881, -12.91233, 42.25699],
                 [21.75095, 14.12364, -12.89264], [48.13652, -23.92052, 21.64465]]
REFERENCE_ARGMAX = [[9, 17, 12, 9], [12, 1, 9, 4], [7, 9, 12, 17], [12, 15, 6, 15]]  # [::16, ::16]
# fmt: on


def test_forward_matches_facexlib() -> None:
    model = fill(ParseNet())
    with torch.no_grad():
        mask, img = model(fixed((1, 3, 64, 64), 1234))
    assert mask.shape == (1, 19, 64, 64) and img.shape == (1, 3, 64, 64)
    got_mask = [[mask[0, c, y, x].item() for c in (0, 7, 14, 18)] for y, x in POS]
    got_img = [[img[0, c, y, x].item() for c in range(3)] for y, x in POS]
    torch.testing.assert_close(torch.tensor(got_mask), torch.tensor(REFERENCE_MASK), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(torch.tensor(got_img), torch.tensor(REFERENCE_IMG), rtol=1e-4, atol=1e-3)
    assert mask.argmax(1)[0, ::16, ::16].tolist() == REFERENCE_ARGMAX
    assert mask.double().abs().sum().item() == pytest.approx(2622686.8767, rel=1e-5)
    assert img.double().sum().item() == pytest.approx(129131.4796, rel=1e-5)
    assert img.double().abs().sum().item() == pytest.approx(224401.8488, rel=1e-5)


# ------------------------------------------------------------------ the paste-back mask
KEPT = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15)  # facexlib MASK_COLORMAP's 255 entries


def test_classes_to_mask_keeps_the_face_classes() -> None:
    classes = np.arange(19 * 4).reshape(4, 19) % 19
    mask = classes_to_mask(classes)
    assert mask.dtype == np.float64
    for c in range(19):
        assert (mask[classes == c] == (255.0 if c in KEPT else 0.0)).all(), c


def gaussian_twice_along_x(row: np.ndarray) -> np.ndarray:
    """A 101-tap Gaussian with σ 11 from its formula, applied twice, reflect-101 borders (OpenCV's)."""
    taps = np.exp(-((np.arange(101) - 50) ** 2) / (2 * 11.0**2))
    taps /= taps.sum()
    for _ in range(2):
        row = np.convolve(np.pad(row, 50, mode="reflect"), taps, mode="valid")
    return row


def test_soften_mask_blurs_twice_and_zeroes_the_border() -> None:
    mask = np.zeros((512, 512))
    mask[:, :256] = 255.0  # the face on the left half: a vertical edge
    soft = soften_mask(mask.copy())
    expected = gaussian_twice_along_x(np.r_[np.full(256, 255.0), np.zeros(256)]) / 255
    expected[:10] = expected[-10:] = 0
    np.testing.assert_allclose(soft[10:-10], np.broadcast_to(expected, (492, 512)), atol=1e-12)
    assert (soft[:10] == 0).all() and (soft[-10:] == 0).all()
    assert (soft[:, :10] == 0).all() and (soft[:, -10:] == 0).all()
    # the numbers: Φ(d / (11·√2)) across the edge at 255.5, and 0 in the 10 px border
    row = soft[100]
    assert row[9] == 0.0 and row[10] == 1.0 and row[501] == 0.0
    blurred = {200: 0.9998220994, 230: 0.9494476957, 255: 0.5128226029, 256: 0.4871773971}
    blurred |= {280: 0.0576023445, 300: 0.0021077798}
    for col, value in blurred.items():
        assert row[col] == pytest.approx(value, abs=1e-9), col
    # two σ-11 blurs are one σ = 11·√2 blur: Φ(25.5 / (11·√2)) = erfc(-25.5 / 22) / 2
    assert row[230] == pytest.approx(math.erfc(-25.5 / 22) / 2, abs=1e-3)
    full = soften_mask(np.full((512, 512), 255.0))
    assert np.abs(full[10:-10, 10:-10] - 1.0).max() < 1e-12


class Recorder:
    """Stands in for ParseNet's forward: records the input, returns fabricated logits."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.inputs.append(x)
        return self.logits, x


def split_logits(left: int, right: int) -> torch.Tensor:
    logits = torch.zeros(1, 19, 512, 512)
    logits[0, left, :, :256] = 5.0
    logits[0, right, :, 256:] = 5.0
    return logits


def test_face_mask_end_to_end_with_fabricated_logits() -> None:
    model = ParseNet(in_size=32, out_size=32, res_depth=1)  # any ParseNet: its forward is replaced
    fake = Recorder(split_logits(left=1, right=17))  # skin | hair
    model.forward = fake  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    soft = model.face_mask(face)
    assert soft.shape == (512, 512) and soft.dtype == np.float64
    expected = gaussian_twice_along_x(np.r_[np.full(256, 255.0), np.zeros(256)]) / 255
    expected[:10] = expected[-10:] = 0
    np.testing.assert_allclose(soft[10:-10], np.broadcast_to(expected, (492, 512)), atol=1e-12)
    # the input ParseNet sees: RGB as given, /255, then (x - 0.5) / 0.5
    x = fake.inputs[0]
    assert x.shape == (1, 3, 512, 512)
    torch.testing.assert_close(x[0], torch.from_numpy(face).permute(2, 0, 1).float() / 127.5 - 1)
    # classes 0, 14, 16, 17, 18 are all cut; neck_l (15) is kept
    for right, kept in ((0, False), (14, False), (16, False), (18, False), (15, True), (13, True)):
        model.forward = Recorder(split_logits(left=1, right=right))  # type: ignore[method-assign]
        assert (model.face_mask(face)[256, 300] > 0.9) == kept, right


def test_face_mask_of_a_smaller_face() -> None:
    """Any face size: resized to 512 for parsing, the mask resized back to the face's size."""
    model = ParseNet(in_size=32, out_size=32, res_depth=1)
    fake = Recorder(split_logits(left=1, right=17))
    model.forward = fake  # type: ignore[method-assign]
    face = np.full((256, 256, 3), 200, np.uint8)
    soft = model.face_mask(face)
    assert fake.inputs[0].shape == (1, 3, 512, 512)
    assert soft.shape == (256, 256)
    assert soft[128, 100] == pytest.approx(1.0, abs=1e-3) and soft[128, 200] < 1e-3
    with pytest.raises(DataError, match=r"expected an H×W×3 RGB face, got shape \(8, 8\)"):
        model.face_mask(np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="expected uint8"):
        model.face_mask(np.zeros((8, 8, 3), np.float32))


@pytest.mark.slow
def test_face_mask_with_a_real_network_on_a_photo() -> None:
    """The full 512 px network (random weights) on skimage's astronaut: a valid soft mask."""
    import skimage.data

    model = fill(ParseNet())
    soft = model.face_mask(skimage.data.astronaut())
    assert soft.shape == (512, 512) and np.isfinite(soft).all()
    assert soft.min() >= 0 and soft.max() <= 1 + 1e-9
    assert (soft[:10] == 0).all() and (soft[:, -10:] == 0).all()

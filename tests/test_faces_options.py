"""``load_face_restorer`` options the other face tests leave out: ``parse_weights`` (ParseNet's
face mask), ``bg_weights`` (an SR model for the background, also ``--bg-weights``), and the
GFPGANv1 / RestoreFormer layouts through the pipeline. CPU, real MTCNN weights (the
facenet-pytorch wheel's), small randomly initialised networks written by the tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

import restorekit
from conftest import TINY_GFPGAN, tiny_gfpgan_weights
from restorekit.archs.gfpgan_v1 import GFPGANv1
from restorekit.archs.restoreformer import RestoreFormer
from restorekit.errors import WeightsError
from restorekit.faces.parsenet import ParseNet
from restorekit.faces.pipeline import FaceRecord, load_face_restorer
from restorekit.registry import ARCHS

pytestmark = pytest.mark.usefixtures("one_thread")
FACE = 64
NET = TINY_GFPGAN
MARGIN = 80  # px of the ×2 output around the face box that the paste (and its feather) may touch


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gfpgan_weights(tmp_path_factory.mktemp("w"), "toy.pth")


@pytest.fixture(scope="module")
def parse_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ParseNet whose parsing head says 'skin' (class 1) everywhere: a known, non-square mask."""
    torch.manual_seed(0)
    net = ParseNet()
    head = net.out_mask_conv.conv2d
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[1] = 10.0
    path = tmp_path_factory.mktemp("p") / "parsing_parsenet.pth"
    torch.save(net.state_dict(), path)
    return path


def sr_file(tmp_path: Path, scale: int, name: str) -> Path:
    torch.manual_seed(scale)
    net = ARCHS.build({"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1,
                       "upscale": scale})  # fmt: skip
    path = tmp_path / name
    torch.save(net.state_dict(), path)
    return path


def astronaut(size: int = 256) -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def outside(face: FaceRecord, shape: tuple[int, ...], scale: float = 2) -> np.ndarray:
    """True outside the face box (output pixels, ``scale`` × the input's) dilated by ``MARGIN``."""
    x1, y1, x2, y2 = (v * scale for v in face.box)
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    inside = (xs > x1 - MARGIN) & (xs < x2 + MARGIN) & (ys > y1 - MARGIN) & (ys < y2 + MARGIN)
    return ~inside


def skin_logits(self: ParseNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``parse_file``'s net gives (its parsing head is a constant), without the 512² forward."""
    n, _, h, w = x.shape
    logits = torch.zeros(n, 19, h, w)
    logits[:, 1] = 10.0
    return logits, torch.zeros(n, 3, h, w)


@pytest.mark.slow  # ParseNet always runs at 512²: ~20-50 s on one CPU thread
def test_parse_weights_mask(weights: Path, parse_file: Path) -> None:
    check_parse_mask(weights, parse_file)


def test_parse_weights_mask_fast(weights: Path, parse_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same checks with the network's forward replaced by its (constant) logits."""
    monkeypatch.setattr(ParseNet, "forward", skin_logits)
    check_parse_mask(weights, parse_file)


def check_parse_mask(weights: Path, parse_file: Path) -> None:
    img = astronaut()
    square = load_face_restorer(weights, device="cpu").process(img)
    parsed = load_face_restorer(weights, device="cpu", parse_weights=parse_file).process(img)
    assert len(parsed.faces) == 1 and parsed.failed == 0 and parsed.image.shape == (512, 512, 3)
    bg = cv2.resize(img, (512, 512), interpolation=cv2.INTER_LANCZOS4)
    far = outside(parsed.faces[0], bg.shape)
    assert far.sum() > 0.5 * far.size
    np.testing.assert_array_equal(parsed.image[far], bg[far])
    differ = np.any(parsed.image != square.image, axis=2)
    assert differ.sum() > 100  # the face-shaped mask is not the feathered square
    assert not differ[far].any()  # ... and they differ only on the face
    np.testing.assert_array_equal(parsed.restored[0], square.restored[0])  # same face, other mask
    changed = np.any(parsed.image != bg, axis=2)
    assert changed.sum() > 500


def test_parse_weights_missing(weights: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "parsing_parsenet.pth"
    with pytest.raises(WeightsError, match="nope") as exc:
        load_face_restorer(weights, device="cpu", parse_weights=missing)
    assert "\n" not in str(exc.value) and "does not exist" in str(exc.value)


def test_bg_weights_background(weights: Path, tmp_path: Path) -> None:
    img = astronaut()
    x2 = sr_file(tmp_path, 2, "edsr_x2.pth")
    res = load_face_restorer(weights, device="cpu", bg_weights=x2).process(img)
    assert len(res.faces) == 1 and res.image.shape == (512, 512, 3) and res.image.dtype == np.uint8
    whole = restorekit.load_model(x2, device="cpu")(img)
    assert whole.shape == res.image.shape and whole.dtype == np.uint8
    far = outside(res.faces[0], res.image.shape)
    np.testing.assert_array_equal(res.image[far], whole[far])
    lanczos = cv2.resize(img, (512, 512), interpolation=cv2.INTER_LANCZOS4)
    assert np.abs(whole[far].astype(int) - lanczos[far].astype(int)).mean() > 3  # really the model
    x4 = sr_file(tmp_path, 4, "edsr_x4.pth")
    res4 = load_face_restorer(weights, device="cpu", bg_weights=x4, upscale=2).process(img)
    assert res4.image.shape == (512, 512, 3)
    four = restorekit.load_model(x4, device="cpu")(img)
    assert four.shape == (1024, 1024, 3)
    small = cv2.resize(four, (512, 512), interpolation=cv2.INTER_AREA)
    far4 = outside(res4.faces[0], res4.image.shape)
    assert np.abs(res4.image[far4].astype(int) - small[far4].astype(int)).mean() < 4


def test_bg_weights_cli(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from restorekit.cli import main

    img = astronaut()
    src = tmp_path / "a.png"
    cv2.imwrite(str(src), np.ascontiguousarray(img[..., ::-1]))
    x2 = sr_file(tmp_path, 2, "edsr_x2.pth")
    out = tmp_path / "out"
    args = ["faces", "-i", str(src), "-o", str(out), "--weights", str(weights), "--device", "cpu", "--quiet"]
    assert main([*args, "--bg-weights", str(x2)]) == 0, capsys.readouterr().err
    written = sorted(p for p in out.rglob("*.png"))
    assert len(written) == 1, written
    got = cv2.imread(str(written[0]))[..., ::-1]
    expect = load_face_restorer(weights, device="cpu", bg_weights=x2)(img)
    np.testing.assert_array_equal(got, expect)
    code = main([*args, "--overwrite", "--bg-weights", str(tmp_path / "missing_bg.pth")])
    err = capsys.readouterr().err
    assert code == 2 and "missing_bg.pth" in err and len(err.strip().splitlines()) == 1, err
    code = main([*args, "--overwrite", "--bg-weights", str(weights)])  # a face model is no background
    err = capsys.readouterr().err
    assert code == 2 and "face-restoration" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("arch", ["GFPGANv1", "RestoreFormer"])
def test_other_face_archs(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    if arch == "GFPGANv1":
        net: torch.nn.Module = GFPGANv1(**NET)
        sd = {"params_ema": net.state_dict()}
    else:
        net = RestoreFormer(n_embed=64, embed_dim=16, ch=32, ch_mult=(1, 1, 2), num_res_blocks=1,
                            attn_resolutions=(16,), resolution=FACE, z_channels=32, head_size=4)  # fmt: skip
        sd = net.state_dict()
    path = tmp_path / f"{arch}.pth"
    torch.save(sd, path)
    r = load_face_restorer(path, device="cpu")
    assert type(r.net.net).__name__ == arch and r.face_size == FACE
    img = astronaut()
    res = r.process(img)
    assert len(res.faces) == 1 and res.failed == 0 and res.faces[0].restored
    assert res.restored[0].shape == (FACE, FACE, 3) and res.image.shape == (512, 512, 3)
    assert np.abs(res.restored[0].astype(int) - res.cropped[0].astype(int)).mean() > 1  # the net ran
    bg = cv2.resize(img, (512, 512), interpolation=cv2.INTER_LANCZOS4)
    assert np.any(res.image != bg)
    far = outside(res.faces[0], bg.shape)
    np.testing.assert_array_equal(res.image[far], bg[far])

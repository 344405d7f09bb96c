"""The face pipeline (``restorekit.faces.pipeline``) on CPU with real MTCNN weights and a tiny
randomly initialised GFPGANv1Clean: fidelity ends, colour fix, outside-mask bit identity,
16-bit / RGBA, batching, failed faces, non-face weights, several faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from conftest import TINY_GFPGAN, tiny_gfpgan_weights
from restorekit.archs.gfpgan_clean import GFPGANv1Clean
from restorekit.errors import ConfigError, DataError, WeightsError
from restorekit.faces.blend import mean_delta_e, to_float
from restorekit.faces.pipeline import default_batch, load_face_restorer

pytestmark = pytest.mark.usefixtures("one_thread")
FACE = 64
NET = TINY_GFPGAN


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gfpgan_weights(tmp_path_factory.mktemp("w"), "toy.pth")


def astronaut(size: int = 256) -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def test_outside_mask_is_background_and_colour_fix(weights: Path) -> None:
    img = astronaut()
    fixed = load_face_restorer(weights, device="cpu").process(img)
    raw = load_face_restorer(weights, device="cpu", color_fix=False).process(img)
    assert len(fixed.faces) == 1 and fixed.failed == 0 and fixed.faces[0].restored
    bg = cv2.resize(img, (512, 512), interpolation=cv2.INTER_LANCZOS4)
    changed = np.any(fixed.image != bg, axis=2)
    assert changed.sum() > 500  # the face was pasted
    x1, y1, x2, y2 = fixed.faces[0].box  # every changed pixel lies near the face (×2)
    ys, xs = np.nonzero(changed)
    assert 2 * x1 - 80 < xs.min() < xs.max() < 2 * x2 + 80
    assert 2 * y1 - 80 < ys.min() < ys.max() < 2 * y2 + 80
    assert (~changed).sum() > 0.8 * changed.size  # bit-identical outside
    de_fix = mean_delta_e(to_float(fixed.restored[0]), to_float(fixed.cropped[0]))
    de_raw = mean_delta_e(to_float(raw.restored[0]), to_float(raw.cropped[0]))
    assert de_fix < 1.0 < 5 * de_fix < de_raw, (de_fix, de_raw)


def test_fidelity_ends_exact(weights: Path) -> None:
    img = astronaut()
    one = load_face_restorer(weights, device="cpu", fidelity=1).process(img)
    np.testing.assert_array_equal(one.restored[0], one.cropped[0])
    face = np.ascontiguousarray(one.cropped[0])
    for dtype_face in (face, face.astype(np.float32) / 255):
        al = load_face_restorer(weights, device="cpu", fidelity=1, aligned=True, upscale=1)
        np.testing.assert_array_equal(al(dtype_face), dtype_face)
    zero = load_face_restorer(weights, device="cpu", aligned=True, upscale=1, color_fix=False).process(face)
    assert np.abs(zero.restored[0].astype(int) - face.astype(int)).mean() > 5
    with pytest.raises(ConfigError, match="fidelity"):
        load_face_restorer(weights, device="cpu", fidelity=1.5)
    with pytest.raises(DataError, match="64×64"):
        load_face_restorer(weights, device="cpu", aligned=True)(astronaut(100))


def test_uint16_rgba_gray_and_no_face(weights: Path) -> None:
    r = load_face_restorer(weights, device="cpu")
    img16 = astronaut().astype(np.uint16) * 257
    alpha = np.full((256, 256, 1), 40000, np.uint16)
    out = r.process(np.concatenate([img16, alpha], axis=2))
    assert out.image.dtype == np.uint16 and out.image.shape == (512, 512, 4) and len(out.faces) == 1
    assert (out.image[..., 3] == 40000).all()
    assert len(np.unique(out.image[..., :3] % 257)) > 10  # not an 8-bit round trip
    gray = r(cv2.cvtColor(astronaut(), cv2.COLOR_RGB2GRAY))
    assert gray.shape == (512, 512) and gray.dtype == np.uint8
    flat = np.full((100, 120, 3), 128, np.uint8)
    res = r.process(flat)
    assert res.faces == [] and res.image.shape == (200, 240, 3)


def test_batching_failures_and_many_faces(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = astronaut(200)
    canvas = np.full((200, 640, 3), (190, 210, 200), np.uint8)
    canvas[:, :200], canvas[:, 220:420], canvas[:, 440:] = a, a[:, ::-1], a
    one = load_face_restorer(weights, device="cpu", batch=1, fidelity=0.3).process(canvas)
    four = load_face_restorer(weights, device="cpu", batch=4, fidelity=0.3)
    res = four.process(canvas)
    assert len(res.faces) == 3 and res.failed == 0
    assert four.batch == 4 and load_face_restorer(weights, device="cpu").batch == 1  # the CPU default
    assert default_batch(None, torch.device("cuda")) == 4
    for bad_batch in (0, 2.5, True):
        with pytest.raises(ConfigError, match="--batch"):
            default_batch(bad_batch, torch.device("cpu"))  # type: ignore[arg-type]
    for x, y in zip(one.restored, res.restored, strict=True):
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
    real = four.net.forward
    calls = []

    def flaky(batch: torch.Tensor) -> torch.Tensor:
        calls.append(len(batch))
        if len(batch) > 1 or len(calls) == 3:  # the batch, then the second face alone
            raise RuntimeError("boom")
        return real(batch)

    monkeypatch.setattr(four.net, "forward", flaky)
    bad = four.process(canvas)
    assert calls == [3, 1, 1, 1] and bad.failed == 1
    assert [f.restored for f in bad.faces] == [True, False, True]
    np.testing.assert_array_equal(bad.restored[1], bad.cropped[1])
    np.testing.assert_array_equal(bad.restored[0], res.restored[0])
    monkeypatch.setattr(four.net, "forward", lambda b: (_ for _ in ()).throw(RuntimeError("x")))
    bad = four.process(canvas)
    assert bad.failed == 3 and not any(f.restored for f in bad.faces)
    np.testing.assert_array_equal(bad.restored[1], bad.cropped[1])


def test_non_face_weights(tmp_path: Path) -> None:
    from restorekit.registry import ARCHS

    net = ARCHS.build({"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1})
    p = tmp_path / "edsr.pth"
    torch.save(net.state_dict(), p)
    with pytest.raises(WeightsError, match="restorekit infer") as exc:
        load_face_restorer(p, device="cpu")
    assert "\n" not in str(exc.value)


def test_infer_refuses_face_model(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from restorekit.cli import main

    src = tmp_path / "a.png"
    cv2.imwrite(str(src), astronaut(64))
    out = tmp_path / "o"
    code = main(["infer", "-i", str(src), "-o", str(out), "--weights", str(weights), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "restorekit faces" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_gfpgan_512_end_to_end(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = GFPGANv1Clean(512, channel_multiplier=2, input_is_latent=True, different_w=True, sft_half=True)
    p = tmp_path / "g512.pth"
    torch.save({"params_ema": net.state_dict()}, p)
    img = skimage.data.astronaut()
    res = load_face_restorer(p, device="cpu").process(img)
    assert len(res.faces) == 1 and res.failed == 0 and res.image.shape == (1024, 1024, 3)
    assert res.restored[0].shape == (512, 512, 3)
    assert mean_delta_e(to_float(res.restored[0]), to_float(res.cropped[0])) < 1.0

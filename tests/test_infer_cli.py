"""``restorekit infer`` and ``restorekit.load_model``: formats kept, nothing overwritten, one-line errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import restorekit
from restorekit.archs import RRDBNet
from restorekit.archs.export import export_network
from restorekit.cli import main
from restorekit.errors import RestorekitError
from restorekit.inference.export import load_any
from restorekit.inference.precision import resolve_precision
from restorekit.registry import ARCHS


def make_model(path: Path, **changes: object) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "upscale": 2}
    net = ARCHS.build({**spec, **changes}).eval()
    export_network(net, path)
    return net


def write(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def rand_img(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top + 1, size=shape).astype(dtype)


def read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    make_model(tmp_path / "model.safetensors")
    return tmp_path / "model.safetensors"


def infer(model: Path, *args: str) -> int:
    return main(["infer", "--weights", str(model), "--quiet", *args])


def test_folder_glob_and_single_file(model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    for i in range(2):
        write(src / f"im{i}.png", rand_img((10, 13, 3), seed=i))
    (src / "notes.txt").write_text("not an image")
    assert infer(model, "-i", str(src), "-o", str(tmp_path / "a")) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["im0.png", "im1.png"]
    assert read(tmp_path / "a" / "im0.png").shape == (20, 26, 3)
    assert infer(model, "-i", str(src / "im*.png"), "-o", str(tmp_path / "b")) == 0
    assert (read(tmp_path / "b" / "im1.png") == read(tmp_path / "a" / "im1.png")).all()
    assert infer(model, "-i", str(src / "im0.png"), "-o", str(tmp_path / "one.png")) == 0
    assert (read(tmp_path / "one.png") == read(tmp_path / "a" / "im0.png")).all()


def test_tiled_output_matches_whole_image(model: Path, tmp_path: Path) -> None:
    src = write(tmp_path / "in.png", rand_img((45, 58, 3)))
    assert infer(model, "-i", str(src), "-o", str(tmp_path / "whole.png"), "--tile", "0") == 0
    args = ["--tile", "36", "--tile-overlap", "20", "--batch", "4"]  # margin 7 ≥ EDSR's radius 6
    assert infer(model, "-i", str(src), "-o", str(tmp_path / "tiled.png"), *args) == 0
    diff = np.abs(read(tmp_path / "whole.png").astype(int) - read(tmp_path / "tiled.png").astype(int))
    assert diff.max() <= 1  # equal up to a rounding flip of a 1e-6 difference
    assert (diff == 0).mean() > 0.999


def test_sixteen_bit_gray_and_alpha_are_kept(model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    write(src / "deep.png", rand_img((9, 11, 3), np.uint16))
    write(src / "gray.png", rand_img((9, 11)))
    rgba = rand_img((9, 11, 4), seed=3)
    write(src / "rgba.png", rgba)
    opaque = rand_img((9, 11, 4), seed=4)
    opaque[..., 3] = 255
    write(src / "opaque.png", opaque)
    assert infer(model, "-i", str(src), "-o", str(tmp_path / "out")) == 0
    deep = read(tmp_path / "out" / "deep.png")
    assert deep.dtype == np.uint16 and deep.shape == (18, 22, 3)
    assert len(np.unique(deep)) > 256  # really 16-bit samples, not 8-bit ones scaled up
    assert read(tmp_path / "out" / "gray.png").shape == (18, 22)
    out = read(tmp_path / "out" / "rgba.png")
    assert out.shape == (18, 22, 4)
    alpha = cv2.resize(rgba[..., 3].astype(np.float32) / 255, (22, 18), interpolation=cv2.INTER_CUBIC)
    want = np.round(np.clip(alpha, 0, 1) * 255)
    assert np.abs(out[..., 3].astype(int) - want).max() <= 1
    assert (read(tmp_path / "out" / "opaque.png")[..., 3] == 255).all()


def test_alpha_through_the_network(model: Path, tmp_path: Path) -> None:
    rgba = rand_img((9, 11, 4), seed=5)
    src = write(tmp_path / "rgba.png", rgba)
    assert infer(model, "-i", str(src), "-o", str(tmp_path / "net.png"), "--alpha", "network") == 0
    got = read(tmp_path / "net.png")[..., 3]
    restorer = restorekit.load_model(model)
    want = restorer(np.ascontiguousarray(rgba[..., 3]))  # alpha restored as a gray image
    assert got.shape == want.shape == (18, 22)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_scale_resizes_the_result(model: Path, tmp_path: Path) -> None:
    src = write(tmp_path / "in.png", rand_img((10, 12, 3)))
    assert infer(model, "-i", str(src), "-o", str(tmp_path / "x3.png"), "--scale", "3") == 0
    assert read(tmp_path / "x3.png").shape == (30, 36, 3)
    assert infer(model, "-i", str(src), "-o", str(tmp_path / "x1.png"), "--scale", "1") == 0
    assert read(tmp_path / "x1.png").shape == (10, 12, 3)


def test_ext_jpg_and_notes(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    write(src / "deep.png", rand_img((8, 8, 3), np.uint16))
    assert (
        main(["infer", "--weights", str(model), "-i", str(src), "-o", str(tmp_path / "o"), "--ext", "jpg"])
        == 0
    )
    assert read(tmp_path / "o" / "deep.jpg").dtype == np.uint8
    err = capsys.readouterr().err
    assert "cannot hold 16-bit precision" in err
    assert "tiles" not in err  # not a terminal: no progress bar


def test_nothing_is_overwritten(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write(tmp_path / "in" / "a.png", rand_img((8, 8, 3)))
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    assert infer(model, "-i", str(src), "-o", str(out)) == 2
    assert out.read_bytes() == b"precious"
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and len(err.splitlines()) == 1
    assert infer(model, "-i", str(src), "-o", str(out), "--overwrite") == 0
    assert read(out).shape == (16, 16, 3)
    assert infer(model, "-i", str(src.parent), "-o", str(src.parent)) == 2  # output == input
    assert "replace its input" in capsys.readouterr().err
    assert src.stat().st_size > 0 and read(src).shape == (8, 8, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "fp16"], "half precision needs a CUDA GPU"),
        (["--tile", "16", "--tile-overlap", "16"], "--tile-overlap"),
        (["--scale", "-2"], "--scale"),
    ],
)
def test_option_errors_are_one_line(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    src = write(tmp_path / "a.png", rand_img((8, 8, 3)))
    assert infer(model, "-i", str(src), "-o", str(tmp_path / "o"), "--device", "cpu", *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_input_errors(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert infer(model, "-i", str(tmp_path / "nothing*.png"), "-o", str(tmp_path / "o")) == 2
    assert "matches no image files" in capsys.readouterr().err
    bad = tmp_path / "bad.pth"
    torch.save({"params": {"foo.weight": torch.zeros(3, 3)}}, bad)
    src = write(tmp_path / "a.png", rand_img((8, 8, 3)))
    assert main(["infer", "--weights", str(bad), "-i", str(src), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "tried RRDBNet" in err and "SRVGGNetCompact" in err and len(err.splitlines()) == 1


def test_official_pth_prefers_params_ema(tmp_path: Path) -> None:
    torch.manual_seed(1)
    raw = RRDBNet(3, 3, scale=2, num_feat=8, num_block=1, num_grow_ch=4).eval()
    ema = RRDBNet(3, 3, scale=2, num_feat=8, num_block=1, num_grow_ch=4).eval()
    weights = tmp_path / "RealESRGAN_x2plus.pth"
    torch.save({"params": raw.state_dict(), "params_ema": ema.state_dict()}, weights)
    img = rand_img((13, 17, 3), seed=2)  # odd sides: ×2 unshuffle needs padding
    src = write(tmp_path / "in.png", img[..., ::-1])
    assert (
        main(["infer", "--quiet", "--weights", str(weights), "-i", str(src), "-o", str(tmp_path / "o.png")])
        == 0
    )
    got = read(tmp_path / "o.png")[..., ::-1].astype(np.float32) / 255  # RGB
    assert got.shape == (26, 34, 3)
    x = torch.nn.functional.pad(
        torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None], (0, 1, 0, 1), mode="reflect"
    )
    with torch.no_grad():
        want_ema = ema(x)[0, :, :26, :34].clamp(0, 1).permute(1, 2, 0).numpy()
        want_raw = raw(x)[0, :, :26, :34].clamp(0, 1).permute(1, 2, 0).numpy()
    assert np.abs(got - want_ema).max() <= 1 / 255 + 1e-6
    assert np.abs(got - want_raw).max() > 2 / 255


def test_python_api_numpy_and_tensors(model: Path) -> None:
    net = make_model(model.parent / "again.safetensors")
    restorer = restorekit.load_model(model, tile=16, tile_overlap=12)
    assert restorer.scale == 2 and restorer.dtype == torch.float32
    img = rand_img((11, 19, 3))
    out = restorer(img)
    assert out.dtype == np.uint8 and out.shape == (22, 38, 3)
    gray16 = rand_img((11, 19), np.uint16)
    assert restorer(gray16).dtype == np.uint16 and restorer(gray16).shape == (22, 38)
    assert restorer(rand_img((5, 6, 2))).shape == (10, 12, 2)  # gray + alpha stays so
    t = torch.rand(2, 3, 12, 10, dtype=torch.float64)
    out_t = restorer(t)
    assert out_t.shape == (2, 3, 24, 20) and out_t.dtype == torch.float64
    with torch.no_grad():
        want = net(t[1:].float()).clamp(0, 1)
    assert torch.allclose(restorer(t[1].float()), want[0], atol=1e-2)  # tiles: close, not exact (r > margin)
    whole = restorekit.load_model(net, tile=0)
    assert torch.allclose(whole(t[1].float()), want[0], atol=1e-5)
    nan = np.full((4, 4, 3), np.nan, np.float32)
    for bad, says in ((img.astype(np.float32), "maximum of"), (nan, "NaN")):
        with pytest.raises(RestorekitError, match=says):  # a 0-255 float image, not a white output
            restorer(bad)


def test_precision_choices_on_cpu(model: Path) -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == torch.float32
    with pytest.raises(RestorekitError, match="fp16"):
        resolve_precision("fp16", cpu)
    img = np.random.default_rng(0).random((10, 10, 3), dtype=np.float32)
    full = restorekit.load_model(model, precision="fp32")(img)
    bf16 = restorekit.load_model(model, precision="bf16")
    assert bf16.dtype == torch.bfloat16
    half = bf16(img)
    assert 0 < np.abs(half - full).max() < 0.05  # runs in bf16: close, but not bit-identical


def test_pick_device_is_one_rule() -> None:
    from restorekit.device import pick_device
    from restorekit.errors import ConfigError
    from restorekit.inference import precision

    assert precision.pick_device is pick_device  # inference uses the shared rule
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N"):
        pick_device("tpu")
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N"):
        pick_device("cuda:x")
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        assert pick_device("auto", local_rank=n - 1) == torch.device("cuda", n - 1)
        assert pick_device("cuda", local_rank=n - 1) == torch.device("cuda", n - 1)
        assert pick_device("cuda:0", local_rank=n - 1) == torch.device("cuda", 0)
        with pytest.raises(ConfigError, match="only"):
            pick_device(f"cuda:{n}")
    else:
        assert pick_device("auto", local_rank=3) == torch.device("cpu")
        for asked in ("cuda", "cuda:1"):
            with pytest.raises(ConfigError) as info:
                pick_device(asked)
            assert "no CUDA device is available" in str(info.value) and "\n" not in str(info.value)


def test_export_must_be_named_safetensors(tmp_path: Path) -> None:
    """An export named ``.pth`` was written as safetensors bytes and then refused by ``load_any``."""
    with pytest.raises(RestorekitError, match=r"x\.pth: an export is a safetensors file; name it x\.safet"):
        make_model(tmp_path / "x.pth")
    assert not (tmp_path / "x.pth").exists()
    make_model(tmp_path / "x.safetensors")
    net, _ = load_any(tmp_path / "x.safetensors")
    assert sum(p.numel() for p in net.parameters()) > 0

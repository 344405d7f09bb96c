"""``restorekit infer`` streams large PNG outputs band by band: same pixels, bounded host memory.

The streamed path (``Upscaler.restore_bands`` → ``files.save_png_bands`` → ``PngRowWriter``) is
compared with the whole-image path (``Upscaler.restore`` → ``save_restored`` → OpenCV or
``encode_gray_alpha_png``) on odd-sized images that span several tile rows, for every kind of
image ``infer`` keeps (gray, gray + alpha, RGB, RGBA, 8 and 16 bits), and a spy checks which
path ran, so neither comparison can pass by both runs taking the same one.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
import pytest
import torch

from restorekit.archs.export import export_network
from restorekit.cli import main
from restorekit.errors import DataError
from restorekit.inference import files
from restorekit.inference.gray_alpha import encode_gray_alpha_png, is_gray_alpha_png
from restorekit.inference.tiling import axis_weights, pad_to, plan_axis, tiled_bands, tiled_forward
from restorekit.inference.upscale import Upscaler, bicubic_rows, to_gray
from restorekit.registry import ARCHS

TILING = ["--tile", "24", "--tile-overlap", "8"]  # 53 rows → 3 tile rows


def make_model(path: Path, channels: int = 3) -> Path:
    torch.manual_seed(0)
    spec = {"type": "EDSR", "num_in_ch": channels, "num_out_ch": channels, "num_feat": 8, "num_block": 1,
            "upscale": 2, **({"rgb_mean": [0.5]} if channels == 1 else {})}  # fmt: skip
    export_network(ARCHS.build(spec).eval(), path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("models")
    return {c: make_model(root / f"edsr{c}.safetensors", c) for c in (1, 3)}


def smooth(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    """Structure plus noise (so every PNG filter type turns up), in the full range of ``dtype``."""
    rng = np.random.default_rng(seed)
    small = rng.random((5, 6, shape[2]), dtype=np.float32)
    base = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC).reshape(shape)
    top = np.iinfo(dtype).max
    return np.clip((base + 0.05 * rng.standard_normal(shape)) * top, 0, top).astype(dtype)


def write_input(path: Path, kind: str, dtype: type) -> Path:
    channels = {"gray": 1, "gray_alpha": 2, "rgb": 3, "rgba": 4}[kind]
    img = smooth((53, 41, channels), dtype, seed=channels)
    if kind == "gray_alpha":
        path.write_bytes(encode_gray_alpha_png(img))
    else:
        assert cv2.imwrite(str(path), img[..., 0] if channels == 1 else img)
    return path


class Spy:
    """Counts the bands each save path writes, passing everything through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.streamed: list[int] = []  # bands per streamed file
        self.whole = 0
        save_bands, save_whole = files.save_png_bands, files.save_restored

        def bands(path: Path, it: Any, *args: Any) -> Path:
            seen: list[int] = []
            self.streamed.append(0)

            def counted() -> Any:
                for band in it:
                    seen.append(band.color.shape[0])
                    self.streamed[-1] = len(seen)
                    yield band

            return save_bands(path, counted(), *args)

        def whole(*args: Any) -> Path:
            self.whole += 1
            return save_whole(*args)

        monkeypatch.setattr(files, "save_png_bands", bands)
        monkeypatch.setattr(files, "save_restored", whole)


def infer(model: Path, src: Path, out: Path, *extra: str) -> None:
    args = ["infer", "--quiet", "--device", "cpu", "--weights", str(model), "-i", str(src), "-o", str(out)]
    assert main([*args, *TILING, *extra]) == 0


@pytest.mark.parametrize(
    ("kind", "dtype", "net", "extra"),
    [
        ("rgb", np.uint8, 3, ["--batch", "5"]),  # batches span tile rows
        ("rgb", np.uint16, 3, []),
        ("gray", np.uint8, 3, []),  # gray through an RGB network: luma of the output
        ("rgba", np.uint8, 3, []),  # alpha upscaled bicubically, band by band
        ("rgba", np.uint16, 3, ["--alpha", "network"]),
        ("gray_alpha", np.uint16, 3, []),
        ("rgb", np.uint8, 1, []),  # RGB through a gray network: three passes in step
    ],
)
def test_streamed_png_equals_the_whole_image_path(
    models: dict[int, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    dtype: type,
    net: int,
    extra: list[str],
) -> None:
    src = write_input(tmp_path / "in.png", kind, dtype)
    spy = Spy(monkeypatch)
    infer(models[net], src, tmp_path / "streamed.png", *extra)
    bands = spy.streamed[0]
    assert bands == (2 if "--batch" in extra else 3) and spy.whole == 0  # streamed: a band per tile row
    monkeypatch.setattr(Upscaler, "streams", lambda self, img: False)
    infer(models[net], src, tmp_path / "whole.png", *extra)
    assert spy.streamed == [bands] and spy.whole == 1
    got = cv2.imread(str(tmp_path / "streamed.png"), cv2.IMREAD_UNCHANGED)
    want = cv2.imread(str(tmp_path / "whole.png"), cv2.IMREAD_UNCHANGED)
    assert got.dtype == want.dtype == dtype and got.shape == want.shape
    assert got.shape[:2] == (106, 82)
    assert np.array_equal(got, want)
    assert is_gray_alpha_png(tmp_path / "streamed.png") == (kind == "gray_alpha")
    assert not list(tmp_path.glob(".*tmp*"))


def test_bands_are_tile_rows_and_cover_the_output(models: dict[int, Path]) -> None:
    from restorekit.inference.export import load_any

    up = Upscaler(load_any(str(models[3]))[0], device="cpu", tile=24, tile_overlap=8)
    img = np.random.default_rng(0).random((101, 30, 4), dtype=np.float32)
    assert up.streams(img) and not up.streams(img[:20])  # one tile row: nothing to stream
    plan = plan_axis(101, 24, 8)
    starts, rows = 0, []
    for band in up.restore_bands(img):
        assert band.alpha is not None and band.alpha.shape[:2] == band.color.shape[:2]
        rows.append(band.color.shape[0])
        starts += band.color.shape[0]
    assert starts == 202 and len(rows) == len(plan.starts) > 4
    assert max(rows) <= plan.size * 2  # host memory: about a tile row of output, not the image
    assert not Upscaler(up.network, device="cpu", tile=24, tile_overlap=8, outscale=3).streams(img)
    assert Upscaler(up.network, device="cpu", tile=24, tile_overlap=8, outscale=2).streams(img)


def test_full_disk_mid_stream_is_one_line_and_leaves_no_temp_file(
    models: dict[int, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), smooth((201, 41, 3), np.uint8, seed=0))  # 9 tile rows
    out = tmp_path / "out"
    writes: list[int] = []
    rows: list[int] = []
    write_rows = files.PngRowWriter.write

    class FillingDisk:
        def __init__(self, fh: BinaryIO) -> None:
            self.fh = fh

        def write(self, data: bytes) -> int:
            if writes:  # the header made it, then the disk filled at the first image data
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            writes.append(len(data))
            return self.fh.write(data)

    def stream(path: Path, produce: Any) -> None:
        with open(path, "wb") as fh:
            produce(FillingDisk(fh))

    def counted(self: Any, block: np.ndarray) -> None:
        rows.append(len(block))
        write_rows(self, block)

    monkeypatch.setattr(files, "_write_stream", stream)
    monkeypatch.setattr(files.PngRowWriter, "write", counted)
    capsys.readouterr()
    args = ["infer", "--quiet", "--weights", str(models[3]), "-i", str(src), "-o", str(out / "a.png")]
    assert main([*args, *TILING]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(
        re.escape(f"error: {out / 'a.png'}: no space left on device") + r" \(needed ~\d+ MB\)\n", err
    )
    assert 0 < sum(rows) < 402  # it failed mid-stream, with rows still to come
    assert list(out.iterdir()) == []  # no .a.png.tmpPID


def test_an_error_while_streaming_removes_the_temp_file(
    models: dict[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_input(tmp_path / "in.png", "rgb", np.uint8)
    calls: list[int] = []

    def broken(self: Any, rows: np.ndarray) -> None:
        calls.append(len(rows))
        if len(calls) == 2:
            raise DataError("the network failed on the second band")

    monkeypatch.setattr(files.PngRowWriter, "write", broken)
    with pytest.raises(DataError, match="second band"):
        files.upscale_files(str(models[3]), str(src), str(tmp_path / "o" / "a.png"), tile=24, tile_overlap=8,
                            device="cpu", quiet=True)  # fmt: skip
    assert list((tmp_path / "o").iterdir()) == []


def test_temp_files_of_dead_runs_are_removed(models: dict[int, Path], tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.png", "rgb", np.uint8)
    out = tmp_path / "o"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = out / f".a.png.tmp{int(dead.stdout)}"  # what a SIGKILL during a streamed write leaves
    stale.write_bytes(b"\x89PNG partial")
    alive = out / f".a.png.tmp{os.getppid()}"  # another running process's write: left alone
    alive.write_bytes(b"in progress")
    infer(models[3], src, out / "a.png")
    assert sorted(p.name for p in out.iterdir()) == sorted(["a.png", alive.name])


# ---------------------------------------------------------------------------------------------
# The whole-image path gathers the same bands, so the comparisons above cannot see a banding
# error both share. These check the bands against whole-image computations that never band.


def reference_canvas(net: torch.nn.Module, x: torch.Tensor, tile: int, overlap: int) -> np.ndarray:
    """The whole float32 canvas, as tiling did before bands: pad the image, add every weighted tile."""
    py, px = plan_axis(x.shape[1], tile, overlap), plan_axis(x.shape[2], tile, overlap)
    padded = pad_to(x, py.padded, px.padded)
    canvas = None
    for iy, y0 in enumerate(py.starts):
        for ix, x0 in enumerate(px.starts):
            with torch.no_grad():
                out = net(padded[None, :, y0 : y0 + py.size, x0 : x0 + px.size])[0]
            s = out.shape[1] // py.size
            if canvas is None:
                canvas = torch.zeros(out.shape[0], x.shape[1] * s, x.shape[2] * s)
                wy, wx = axis_weights(py, s, overlap), axis_weights(px, s, overlap)
            out = out * wy[iy][:, None] * wx[ix]  # × 1 away from the edges: the same numbers
            hh, ww = min(out.shape[1], canvas.shape[1] - y0 * s), min(out.shape[2], canvas.shape[2] - x0 * s)
            canvas[:, y0 * s : y0 * s + hh, x0 * s : x0 * s + ww] += out[:, :hh, :ww]
    assert canvas is not None
    return canvas.permute(1, 2, 0).numpy()


def test_bands_add_up_to_the_whole_canvas_bit_for_bit() -> None:
    torch.manual_seed(0)
    net = ARCHS.build({"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1,
                       "upscale": 2}).eval()  # fmt: skip
    x = torch.rand(3, 67, 45)  # odd sides, 4 × 3 tiles, the last ones cut by the border
    bands = [(r0, band.copy()) for r0, band in tiled_bands(net, x, tile=24, overlap=8)]
    assert [r0 for r0, _ in bands] == list(itertools.accumulate([0] + [len(b) for _, b in bands[:-1]]))
    assert len(bands) == 4
    got = np.concatenate([band for _, band in bands])
    assert np.array_equal(got, reference_canvas(net, x, 24, 8))
    assert np.array_equal(tiled_forward(net, x, tile=24, overlap=8), got)


def test_banded_alpha_and_luma_equal_the_whole_plane() -> None:
    rng = np.random.default_rng(0)
    for h, w, s in [(61, 37, 2), (40, 23, 3), (7, 5, 4)]:
        plane = rng.random((h, w), dtype=np.float32)
        whole = cv2.resize(plane, (w * s, h * s), interpolation=cv2.INTER_CUBIC)
        cuts = sorted({0, h * s, *map(int, rng.integers(1, h * s, 4))})
        for r0, r1 in itertools.pairwise(cuts):
            assert np.array_equal(bicubic_rows(plane, r0, r1 - r0, s)[..., 0], whole[r0:r1]), (h, w, s, r0)
        rgb = rng.random((3, h, w), dtype=np.float32).transpose(1, 2, 0)  # a CHW canvas's HWC view
        gray = to_gray(rgb)
        for r0, r1 in itertools.pairwise(sorted({0, h, *map(int, rng.integers(1, h, 3))})):
            assert np.array_equal(to_gray(rgb[r0:r1]), gray[r0:r1])


@pytest.mark.parametrize("alpha", ["bicubic", "network"])
def test_integer_samples_restore_as_their_float_conversion(models: dict[int, Path], alpha: str) -> None:
    from restorekit.data.io import raw_to_float
    from restorekit.inference.export import load_any

    net = load_any(str(models[3]))[0]
    up = Upscaler(net, device="cpu", tile=24, tile_overlap=8, alpha=alpha)  # type: ignore[arg-type]
    for dtype, channels in [(np.uint8, 4), (np.uint16, 3), (np.uint8, 1), (np.uint16, 2)]:
        raw = smooth((45, 31, channels), dtype, seed=channels)
        if channels == 2:
            raw[..., 1] = 7  # a constant alpha: filled in, not upscaled
        # channel by channel: raw_to_float's conversion (what `infer` did) without its BGR → RGB
        as_float = np.dstack([raw_to_float(raw[..., i : i + 1], keep_alpha=True) for i in range(channels)])
        a, b = up.restore(np.ascontiguousarray(raw)), up.restore(as_float)
        assert np.array_equal(a.color, b.color), (dtype, channels)
        assert (a.alpha is None) == (channels in (1, 3))
        if a.alpha is not None and b.alpha is not None:
            assert np.array_equal(a.alpha, b.alpha), (dtype, channels)

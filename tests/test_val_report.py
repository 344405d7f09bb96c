"""``restorekit validate --report DIR``: the HTML page, its crops and curves, and its refusals."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from conftest import tiny_config, write_config
from restorekit.cli import main
from restorekit.engine import report as rp
from restorekit.errors import RestorekitError


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path]:
    """A finished tiny run: (config file, config, run folder)."""
    root = tmp_path_factory.mktemp("report")
    cfg = tiny_config(root)
    cfg_path = write_config(root / "tiny.yml", cfg)
    assert main(["train", "-c", str(cfg_path)]) == 0
    return cfg_path, cfg, Path(cfg["experiments_root"]) / "tiny"


def _cells(html: str, row: str) -> list[str]:
    """The cell texts of the table row whose first cell is ``row``."""
    match = re.search(rf"<tr><td>{re.escape(row)}</td>(.*?)</tr>", html)
    assert match, f"no row {row!r}"
    return re.findall(r"<td class=n>([^<]*)</td>", match.group(1))


def test_report_of_a_run(
    trained: tuple[Path, dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg_path, cfg, run = trained
    capsys.readouterr()
    out_dir = tmp_path / "rep"
    args = ["validate", "-c", str(cfg_path), "--weights", str(run / "model.safetensors")]
    assert main([*args, "--baseline", "bicubic", "--json", "--report", str(out_dir)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout stays pure JSON; the "wrote" line goes to stderr
    assert str(out_dir / "index.html") in captured.err
    assert json.loads((out_dir / "means.json").read_text()) == result

    html = (out_dir / "index.html").read_text()
    assert str(run) in html  # the run folder was found from model.safetensors
    for row in ("tinyval", "tinyval/bicubic"):
        assert _cells(html, row) == [f"{result[row]['psnr']:.4f}", f"{result[row]['ssim']:.4f}"]
    # Per-image rows: the model's values, then the baseline's; their means are the table's.
    per_image = [[float(c) for c in _cells(html, name)] for name in ("img000", "img001")]
    assert all(len(r) == 4 for r in per_image)
    assert np.mean([r[0] for r in per_image]) == pytest.approx(result["tinyval"]["psnr"], abs=1e-4)
    assert np.mean([r[2] for r in per_image]) == pytest.approx(result["tinyval/bicubic"]["psnr"], abs=1e-4)

    # Crops: the images are 32x32, smaller than the crop, so each crop is the whole image.
    val = cfg["data"]["val"]["tinyval"]["dataset"]
    for i, name in enumerate(["img000", "img001"]):
        stem = out_dir / "crops" / "tinyval" / f"{i:04d}_{name}"
        gt = cv2.imread(f"{stem}_gt.png")
        lq = cv2.imread(f"{stem}_lq.png")
        output = cv2.imread(f"{stem}_output.png")
        assert np.array_equal(gt, cv2.imread(str(Path(val["dataroot_gt"]) / f"{name}.png")))
        lq_file = cv2.imread(str(Path(val["dataroot_lq"]) / f"{name}.png"))
        assert np.array_equal(lq, np.repeat(np.repeat(lq_file, 2, axis=0), 2, axis=1))  # nearest x2
        assert output.shape == gt.shape and not np.array_equal(output, gt)
        assert f"src='crops/tinyval/{i:04d}_{name}_output.png'" in html

    # Curves from stats.jsonl: one PNG per metric and one for the losses, all linked.
    curves = sorted(p.name for p in (out_dir / "curves").iterdir())
    assert curves == ["psnr.png", "ssim.png", "train_losses.png"]
    for name in curves:
        img = cv2.imread(str(out_dir / "curves" / name))
        assert img is not None and img.shape[0] > 100 and img.std() > 0
        assert f"src='curves/{name}'" in html


def test_run_folder_is_found_from_checkpoints_and_run_option(
    trained: tuple[Path, dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg_path, _, run = trained
    ckpt = run / "checkpoints" / "iter_20"
    assert rp.find_run_dir(run / "model.safetensors") == run
    assert rp.find_run_dir(ckpt) == run
    assert rp.find_run_dir(ckpt / "net_g.safetensors") == run
    loose = tmp_path / "loose.safetensors"
    shutil.copy(run / "model.safetensors", loose)
    assert rp.find_run_dir(loose) is None
    assert rp.find_run_dir(loose, run) == run
    with pytest.raises(RestorekitError, match=r"--run .*: not a run folder"):
        rp.find_run_dir(loose, tmp_path)

    # Weights outside any run: the page says so instead of plotting; --run brings the curves back.
    capsys.readouterr()
    base = ["validate", "-c", str(cfg_path), "--weights", str(loose)]
    assert main([*base, "--report", str(tmp_path / "r1")]) == 0
    assert "pass --run DIR" in (tmp_path / "r1" / "index.html").read_text()
    assert not (tmp_path / "r1" / "curves").exists()
    assert main([*base, "--report", str(tmp_path / "r2"), "--run", str(run)]) == 0
    assert (tmp_path / "r2" / "curves" / "psnr.png").is_file()
    assert main([*base, "--run", str(run)]) == 2
    assert "--run DIR only makes sense with --report DIR" in capsys.readouterr().err


def test_report_refuses_a_non_empty_folder(
    trained: tuple[Path, dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg_path, _, run = trained
    target = tmp_path / "mine"
    target.mkdir()
    (target / "index.html").write_text("my page")
    capsys.readouterr()
    args = ["validate", "-c", str(cfg_path), "--weights", str(run / "model.safetensors")]
    assert main([*args, "--report", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "not empty" in captured.err and str(target) in captured.err
    assert sorted(p.name for p in target.iterdir()) == ["index.html"]
    assert (target / "index.html").read_text() == "my page"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*args, "--report", str(empty)]) == 0  # an empty folder is fine
    assert (empty / "index.html").is_file()


def test_report_without_matplotlib_says_what_to_install(
    trained: tuple[Path, dict[str, Any], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    cfg_path, _, run = trained
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    capsys.readouterr()
    args = ["validate", "-c", str(cfg_path), "--weights", str(run / "model.safetensors")]
    assert main([*args, "--report", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install restorekit[report]" in err
    assert not (tmp_path / "rep").exists()


def test_worst_window_is_the_brute_force_argmax() -> None:
    rng = np.random.default_rng(0)
    err = rng.integers(0, 50, size=(23, 19)).astype(np.float64)
    for size in (1, 4, 7, 19):
        sums = np.array(
            [
                [err[y : y + size, x : x + size].sum() for x in range(19 - size + 1)]
                for y in range(23 - size + 1)
            ]
        )
        expected = np.unravel_index(np.argmax(sums), sums.shape)  # first maximum, row-major
        assert rp.worst_window(torch.from_numpy(err), size) == tuple(int(v) for v in expected)


def test_crop_collector_picks_the_damaged_region() -> None:
    torch.manual_seed(0)
    gt = torch.rand(2, 3, 64, 80)
    out = gt.clone()
    out[0, :, 30:40, 50:60] = 1 - out[0, :, 30:40, 50:60]  # a 10x10 defect in image 0
    out[1, :, 0:5, 0:5] = 0.0  # and a 5x5 one in the corner of image 1
    lq = gt[:, :, ::2, ::2].contiguous()
    batch = {"lq": lq, "index": torch.tensor([0, 30])}
    items = rp.CropCollector(size=16, max_images=24)({**batch}, {"output": out, "gt": gt})
    assert items[1] is None  # beyond max_images
    item = items[0]
    assert item is not None
    # Every 16x16 window holding the whole defect ties; the top-left-most one is chosen.
    assert item["box"] == (24, 44, 16)
    q = lambda t: (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # noqa: E731
    assert np.array_equal(item["gt"], q(gt[0, :, 24:40, 44:60]))
    assert np.array_equal(item["output"], q(out[0, :, 24:40, 44:60]))
    up = lq[0].repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    assert np.array_equal(item["lq"], q(up[:, 24:40, 44:60]))
    corner = rp.CropCollector(size=16)(
        {"lq": lq[1:], "index": torch.tensor([1])}, {"output": out[1:], "gt": gt[1:]}
    )
    assert corner[0] is not None and corner[0]["box"] == (0, 0, 16)


def test_stats_reader_skips_broken_lines(tmp_path: Path) -> None:
    rows = [
        {"iter": 5, "kind": "train", "l_pix": 0.5, "lr": 1e-3},
        {"iter": 10, "kind": "val/a", "psnr": 20.0},
        {"iter": 10, "kind": "val/b", "psnr": 25.0, "niqe": 5.0},
        {"iter": 20, "kind": "val/a", "psnr": 21.0},
    ]
    text = "\n".join(json.dumps(r) for r in rows) + '\n{"iter": 30, "kind": "val/a", "ps'
    (tmp_path / "stats.jsonl").write_text(text)
    read = rp.read_stats(tmp_path)
    assert read == rows
    paths = rp.plot_curves(read, tmp_path / "curves")
    assert sorted(p.name for p in paths) == ["niqe.png", "psnr.png", "train_losses.png"]

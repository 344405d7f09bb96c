"""``restorekit metrics fid | fid-stats | kid`` end to end on tiny folders.

The Inception file is written by the test (random weights in the official layout, which is all
the code path needs); ``--dims 64`` keeps the matrix square root instant. Values are checked
against the library functions composed by hand, so the test shows the CLI wires them correctly.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from restorekit.archs.inception import FID_INCEPTION_FILENAME, FIDInception
from restorekit.cli import main
from restorekit.metrics import fid


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / FID_INCEPTION_FILENAME
    torch.save(FIDInception().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    out = []
    for name, count, offset in (("a", 4, 0), ("b", 5, 60)):
        folder = root / name
        folder.mkdir()
        for i in range(count):
            img = np.clip(rng.normal(100 + offset, 40, size=(40, 48, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{i:02d}.png"), img)
        out.append(folder)
    return out[0], out[1]


@pytest.fixture(scope="module")
def features(inception_file: Path, folders: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
    model = FIDInception(weights_path=inception_file, dims=64)
    return fid.extract_features(model, folders[0]), fid.extract_features(model, folders[1])


def _run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_fid_json_and_stats_file(
    inception_file: Path,
    folders: tuple[Path, Path],
    features: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    a, b = folders
    common = ["--weights", str(inception_file), "--dims", "64", "--device", "cpu", "--batch-size", "3"]
    code, out, _ = _run(capsys, "metrics", "fid", str(a), str(b), *common, "--json")
    assert code == 0
    got = json.loads(out)
    assert list(got) == ["fid"]
    stats_a, stats_b = fid.compute_statistics(features[0]), fid.compute_statistics(features[1])
    expected = fid.frechet_distance(*stats_a, *stats_b)
    assert expected > 0 and got["fid"] == pytest.approx(expected, rel=1e-9)

    # fid-stats writes pytorch-fid's file: exactly the keys mu and sigma, float64 statistics.
    npz = tmp_path / "a_stats.npz"
    code, out, _ = _run(capsys, "metrics", "fid-stats", str(a), "-o", str(npz), *common)
    assert code == 0 and str(npz) in out
    with np.load(npz) as f:
        assert sorted(f.files) == ["mu", "sigma"]
        np.testing.assert_allclose(f["mu"], stats_a[0], rtol=1e-12)
        np.testing.assert_allclose(f["sigma"], stats_a[1], rtol=1e-12)

    # A folder against the statistics file gives the folder-against-folder number.
    code, out, _ = _run(capsys, "metrics", "fid", str(b), str(npz), *common, "--json")
    assert code == 0 and json.loads(out)["fid"] == pytest.approx(expected, rel=1e-6)

    # The statistics file is never overwritten.
    before = npz.read_bytes()
    code, _, err = _run(capsys, "metrics", "fid-stats", str(b), "-o", str(npz), *common)
    assert code == 2 and "already exists" in err and npz.read_bytes() == before


def test_fid_stats_output_that_cannot_be_written_is_one_line(
    inception_file: Path, folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    common = ["--weights", str(inception_file), "--dims", "64", "--device", "cpu"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    a_dir = tmp_path / "dir.npz"
    a_dir.mkdir()
    for out, fragment in ((a_file / "s.npz", "cannot write FID statistics"), (a_dir, "already exists")):
        code, _, err = _run(capsys, "metrics", "fid-stats", str(folders[0]), "-o", str(out), *common)
        assert code == 2 and err.startswith(f"error: -o {out}" if out == a_dir else f"error: {out}: ")
        assert fragment in err and err.count("\n") == 1
    assert list(a_dir.iterdir()) == []


def test_fid_without_weights_names_file_and_folder(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RESTOREKIT_CACHE", str(cache))
    code, out, err = _run(capsys, "metrics", "fid", str(folders[0]), str(folders[1]), "--dims", "64")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and FID_INCEPTION_FILENAME in err and str(cache) in err
    assert "--weights" in err


def test_fid_uses_the_cache_folder_and_prints_one_line(
    inception_file: Path,
    folders: tuple[Path, Path],
    features: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / FID_INCEPTION_FILENAME).symlink_to(inception_file)
    monkeypatch.setenv("RESTOREKIT_CACHE", str(cache))
    code, out, _ = _run(capsys, "metrics", "fid", str(folders[0]), str(folders[1]), "--dims", "64")
    stats = [fid.compute_statistics(f) for f in features]
    expected = fid.frechet_distance(*stats[0], *stats[1])
    assert code == 0 and out.startswith("FID: ") and out.count("\n") == 1
    assert float(out.split()[1]) == pytest.approx(expected, rel=1e-9)


def test_kid_json_with_automatic_subset_size(
    inception_file: Path,
    folders: tuple[Path, Path],
    features: tuple[np.ndarray, np.ndarray],
    capsys: pytest.CaptureFixture,
) -> None:
    a, b = folders
    common = ["--weights", str(inception_file), "--dims", "64", "--device", "cpu"]
    code, out, err = _run(capsys, "metrics", "kid", str(a), str(b), *common, "--json")
    assert code == 0
    got = json.loads(out)
    assert list(got) == ["kid_mean", "kid_std"]
    # 4 and 5 images: the subset size drops from 1000 to the smaller folder, and says so.
    assert "subset size 4" in err
    mean, std = fid.kid(features[0], features[1], num_subsets=100, subset_size=4)
    assert got["kid_mean"] == pytest.approx(mean, rel=1e-9)
    assert got["kid_std"] == pytest.approx(std, abs=1e-12)
    assert mean > 0  # the two folders differ in brightness

    code, out, err = _run(
        capsys, "metrics", "kid", str(a), str(b), *common, "--subset-size", "3", "--subsets", "7", "--json"
    )
    assert code == 0 and err == ""
    mean, std = fid.kid(features[0], features[1], num_subsets=7, subset_size=3)
    got = json.loads(out)
    assert got["kid_mean"] == pytest.approx(mean, rel=1e-9) and got["kid_std"] == pytest.approx(std, rel=1e-9)
    assert std > 0  # different subsets of 3 out of 4/5 images

    code, _, err = _run(capsys, "metrics", "kid", str(a), str(b), *common, "--subset-size", "9")
    assert code == 2 and "--subset-size 9" in err and "5" in err and err.count("\n") == 1

"""End to end through the CLI: train, validate, exact resume after a kill, export, infer."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from safetensors.torch import load_file

from conftest import tiny_config, write_config
from restorekit.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "restorekit", *args], capture_output=True, text=True, env=full_env, timeout=300
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """One tiny run, trained once for every test of this module that only reads its results."""
    root = tmp_path_factory.mktemp("trained")
    cfg = tiny_config(root)
    cfg_path = write_config(root / "tiny.yml", cfg)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", "-c", str(cfg_path)]) == 0
    return cfg_path, cfg, out.getvalue()


def test_train_writes_the_run_folder(trained: tuple[Path, dict[str, Any], str]) -> None:
    _, cfg, out = trained
    run = Path(cfg["experiments_root"]) / "tiny"
    assert (run / "config.yaml").is_file() and (run / "log.txt").is_file()
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    train_rows = [r for r in stats if r["kind"] == "train"]
    assert [r["iter"] for r in train_rows] == [5, 10, 15, 20]
    assert all(np.isfinite(r["l_pixel"]) for r in train_rows)
    assert [r["iter"] for r in stats if r["kind"] == "val/tinyval"] == [10, 20]
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["iter_10", "iter_20"]
    assert {p.name for p in (run / "checkpoints" / "iter_20").iterdir()} == {
        "net_g.safetensors",
        "net_g_ema.safetensors",
        "training_state.pt",
        "config.yaml",
        "manifest.json",  # written last (tests/test_hardening_ckpt.py)
    }
    # the export is the EMA network
    exported = load_file(str(run / "model.safetensors"))
    ema = load_file(str(run / "checkpoints" / "iter_20" / "net_g_ema.safetensors"))
    assert exported.keys() == ema.keys() and all((exported[k] == ema[k]).all() for k in ema)
    csv_lines = (run / "val" / "tinyval" / "iter_20.csv").read_text().splitlines()
    assert csv_lines[0] == "image,psnr,ssim" and len(csv_lines) == 3
    assert "validation at iteration 20" in out


def test_existing_run_is_not_overwritten(
    tiny_run: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture
) -> None:
    cfg_path, cfg = tiny_run
    run = Path(cfg["experiments_root"]) / "tiny"
    run.mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    assert main(["train", "-c", str(cfg_path)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume auto" in err
    assert (run / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_validate_json_and_baseline(
    trained: tuple[Path, dict[str, Any], str], capsys: pytest.CaptureFixture
) -> None:
    cfg_path, cfg, _ = trained
    weights = Path(cfg["experiments_root"]) / "tiny" / "model.safetensors"
    assert (
        main(["validate", "-c", str(cfg_path), "--weights", str(weights), "--baseline", "bicubic", "--json"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"tinyval", "tinyval/bicubic"}
    for row in result.values():
        assert set(row) == {"psnr", "ssim"} and 5 < row["psnr"] < 60 and 0 < row["ssim"] <= 1
    last = json.loads((weights.parent / "val" / "tinyval" / "iter_20.json").read_text())
    assert result["tinyval"]["psnr"] == pytest.approx(last["psnr"], abs=1e-9)


def test_exact_resume_after_kill(tmp_path: Path) -> None:
    """2N iterations straight == N iterations, SIGKILL, --resume auto, N more: bitwise."""
    cfg = tiny_config(tmp_path, **{"data.train.num_workers": 1})
    straight = write_config(tmp_path / "a.yml", {**cfg, "name": "straight"})
    killed = write_config(tmp_path / "b.yml", {**cfg, "name": "killed"})
    assert run_cli("train", "-c", str(straight)).returncode == 0
    first = run_cli("train", "-c", str(killed), env={"RESTOREKIT_TEST_KILL_AFTER_SAVE": "10"})
    assert first.returncode == -signal.SIGKILL
    run_b = Path(cfg["experiments_root"]) / "killed"
    assert not (run_b / "model.safetensors").exists()
    assert sorted(p.name for p in (run_b / "checkpoints").iterdir()) == ["iter_10"]
    second = run_cli("train", "-c", str(killed), "--resume", "auto")
    assert second.returncode == 0, second.stderr
    assert "resumed from" in second.stdout
    run_a = Path(cfg["experiments_root"]) / "straight"
    for name in ["net_g", "net_g_ema"]:
        a = load_file(str(run_a / "checkpoints" / "iter_20" / f"{name}.safetensors"))
        b = load_file(str(run_b / "checkpoints" / "iter_20" / f"{name}.safetensors"))
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and bool((a[k] == b[k]).all()), f"{name}.{k} differs"
    loss_a = [json.loads(x) for x in (run_a / "stats.jsonl").read_text().splitlines()]
    loss_b = [json.loads(x) for x in (run_b / "stats.jsonl").read_text().splitlines()]
    last_a = [r["l_pixel"] for r in loss_a if r["kind"] == "train" and r["iter"] > 10]
    last_b = [r["l_pixel"] for r in loss_b if r["kind"] == "train" and r["iter"] > 10]
    assert last_a == last_b


def test_infer_exported_model(trained: tuple[Path, dict[str, Any], str], tmp_path: Path) -> None:
    _, cfg, _ = trained
    weights = Path(cfg["experiments_root"]) / "tiny" / "model.safetensors"
    src = Path(cfg["data"]["val"]["tinyval"]["dataset"]["dataroot_lq"])
    out_dir = tmp_path / "out"
    assert main(["infer", "--weights", str(weights), "-i", str(src), "-o", str(out_dir)]) == 0
    outs = sorted(out_dir.iterdir())
    assert [p.name for p in outs] == ["img000.png", "img001.png"]
    img = cv2.imread(str(outs[0]))
    assert img.shape == (32, 32, 3)


def test_validate_takes_a_run_folder_and_checks_its_manifest(
    trained: tuple[Path, dict[str, Any], str], capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    import shutil

    cfg_path, cfg, _ = trained
    run = Path(cfg["experiments_root"]) / "tiny"
    capsys.readouterr()
    assert main(["validate", "-c", str(cfg_path), "--weights", str(run), "--json"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    assert main(["validate", "-c", str(cfg_path), "--weights", str(run / "model.safetensors"), "--json"]) == 0
    assert from_run == json.loads(capsys.readouterr().out)  # the newest checkpoint's EMA = the export
    damaged = tmp_path / "iter_20"
    shutil.copytree(run / "checkpoints" / "iter_20", damaged)
    (damaged / "net_g_ema.safetensors").write_bytes(b"")
    assert main(["validate", "-c", str(cfg_path), "--weights", str(damaged), "--json"]) == 2
    assert "damaged checkpoint" in capsys.readouterr().err

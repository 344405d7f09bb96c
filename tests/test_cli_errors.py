"""Bad input through the CLI: one line naming the file, key or value; exit status 2; no traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import tiny_config, write_config
from restorekit.cli import main


def run_train(tmp_path: Path, cfg: dict[str, Any], capsys: pytest.CaptureFixture, *extra: str) -> str:
    path = write_config(tmp_path / "bad.yml", cfg)
    code = main(["train", "-c", str(path), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def train_gt(cfg: dict[str, Any]) -> Path:
    return Path(cfg["data"]["train"]["dataset"]["dataroot_gt"])


def train_lq(cfg: dict[str, Any]) -> Path:
    return Path(cfg["data"]["train"]["dataset"]["dataroot_lq"])


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ([], None),  # a valid config as control: it must get past the checks (exit 0)
        (["network_g.type=EDSRR"], "network_g.type: unknown architecture 'EDSRR' (did you mean 'EDSR'?)"),
        (["network_g.num_feet=8"], "network_g.num_feet: unknown argument for architecture 'EDSR'"),
        (["train.losses.pixel.type=L3Loss"], "train.losses.pixel.type: unknown loss 'L3Loss'"),
        (["train.optim_g.lr=-0.001"], "train.optim_g.lr"),
        (["scale=0"], "scale: input should be greater than or equal to 1 (got 0)"),
        (["data.train.dataset.type=Nope"], "data.train.dataset.type: unknown dataset 'Nope'"),
        (["data.val.tinyval.metrics.psnrr={}"], "unknown metric 'psnrr'"),
    ],
)
def test_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture, overrides: list[str], fragment: str | None
) -> None:
    cfg = tiny_config(tmp_path)
    path = write_config(tmp_path / "c.yml", cfg)
    code = main(["train", "-c", str(path), "--dry-run", *overrides])
    captured = capsys.readouterr()
    if fragment is None:
        assert code == 0 and "name: tiny" in captured.out
        return
    assert code == 2
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"error: {path}: ")
    assert fragment in captured.err


def test_negative_lr_message_names_the_value(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(tmp_path, **{"train.optim_g.lr": -0.001})
    line = run_train(tmp_path, cfg, capsys)
    assert "train.optim_g.lr" in line and "-0.001" in line


def test_not_yaml(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("name: [unclosed\nscale: 2\n")
    assert main(["train", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: line ") and "not valid YAML" in err and err.count("\n") == 1


def test_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(tmp_path, **{"data.train.dataset.dataroot_gt": str(tmp_path / "nowhere")})
    line = run_train(tmp_path, cfg, capsys)
    assert str(tmp_path / "nowhere") in line and "does not exist" in line


def test_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    cfg = tiny_config(tmp_path, **{"data.train.dataset.dataroot_gt": str(tmp_path / "empty")})
    line = run_train(tmp_path, cfg, capsys)
    assert str(tmp_path / "empty") in line


def test_names_that_do_not_pair(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(tmp_path)
    (train_lq(cfg) / "img000.png").rename(train_lq(cfg) / "other.png")
    line = run_train(tmp_path, cfg, capsys)
    assert "img000" in line


def test_lq_size_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(tmp_path)
    cv2.imwrite(str(train_lq(cfg) / "img001.png"), np.zeros((20, 20, 3), np.uint8))
    line = run_train(tmp_path, cfg, capsys)
    assert "img001" in line and "20" in line and "48" in line


def test_zero_byte_image(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(tmp_path)
    (train_gt(cfg) / "img002.png").write_bytes(b"")
    line = run_train(tmp_path, cfg, capsys)
    assert "img002.png" in line and "empty" in line


@pytest.mark.parametrize("workers", [0, 1])
def test_truncated_image_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, workers: int
) -> None:
    cfg = tiny_config(tmp_path, **{"data.train.num_workers": workers})
    victim = train_gt(cfg) / "img003.png"
    victim.write_bytes(victim.read_bytes()[:60])
    line = run_train(tmp_path, cfg, capsys)
    assert "img003.png" in line


def test_non_image_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(tmp_path)
    (train_gt(cfg) / "img004.png").write_text("this is not a PNG")
    line = run_train(tmp_path, cfg, capsys)
    assert "img004.png" in line


def test_skip_corrupt_counts_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(tmp_path, **{"data.skip_corrupt": True})
    victim = train_gt(cfg) / "img003.png"
    victim.write_bytes(victim.read_bytes()[:60])
    path = write_config(tmp_path / "skip.yml", cfg)
    assert main(["train", "-c", str(path)]) == 0
    run = Path(cfg["experiments_root"]) / "tiny"
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    skipped = [r.get("skipped_images", 0) for r in stats if r["kind"] == "train"]
    assert max(skipped) >= 1
    assert (run / "model.safetensors").is_file()


def test_failed_start_leaves_no_folder_behind(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(tmp_path, pretrained=str(tmp_path / "missing.safetensors"))
    line = run_train(tmp_path, cfg, capsys)
    assert "missing.safetensors" in line
    assert not (Path(cfg["experiments_root"]) / "tiny").exists()
    cfg.pop("pretrained")
    assert main(["train", "-c", str(write_config(tmp_path / "fixed.yml", cfg))]) == 0


def test_gan_settings_under_the_restoration_task_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = tiny_config(tmp_path, network_d={"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 8})
    line = run_train(tmp_path, cfg, capsys)
    assert "network_d: only used by task 'adversarial'" in line


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("network_g.num_feat=0", "network_g: EDSR with these arguments has an empty layer (conv_first."),
        ("network_g.num_block=-3", "network_g.num_block: expected a number >= 0 for EDSR, got -3"),
        ("network_g.num_block=1000000000", "network_g: EDSR would be enormous"),
        ("seed=-1", "seed: input should be greater than or equal to 0"),
        ("train.losses.pixel.loss_weight=.inf", "pixel.loss_weight: expected a finite number >= 0, got inf"),
        ("train.losses.pixel.loss_weight=-1", "pixel.loss_weight: expected a finite number >= 0, got -1"),
    ],
)
def test_sizes_seeds_and_loss_weights_are_config_errors_at_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, override: str, expected: str
) -> None:
    path = write_config(tmp_path / "c.yml", tiny_config(tmp_path))
    assert main(["train", "-c", str(path), override, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err

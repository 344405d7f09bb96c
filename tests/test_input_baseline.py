"""The scale-1 baseline: ``validate --baseline input`` scores the degraded input itself and
says which degradation (σ or JPEG quality) the row measures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import tiny_config, tiny_scale1_config, write_config
from restorekit.archs.export import export_network
from restorekit.cli import main
from restorekit.data.datasets import JPEGDataset, NoisyImageDataset
from restorekit.metrics.psnr_ssim_torch import psnr_batch
from restorekit.registry import ARCHS


def _denoise_config(tmp_path: Path, dataset: dict[str, Any]) -> dict[str, Any]:
    cfg = tiny_scale1_config(tmp_path)
    gt = cfg["data"]["val"]["tinyval"]["dataset"]["dataroot_gt"]
    cfg["data"]["val"]["tinyval"] = {
        "dataset": {"dataroot_gt": gt, **dataset},
        "metrics": {"psnr": {"crop_border": 0}},
    }
    return cfg


@pytest.mark.parametrize(
    "dataset, words",
    [
        ({"type": "NoisyImageDataset", "sigma": 25}, "Gaussian noise σ 25/255"),
        ({"type": "NoisyImageDataset", "sigma_range": [5, 50]}, "Gaussian noise σ uniform in [5, 50]/255"),
        ({"type": "JPEGDataset", "quality": 10}, "JPEG quality 10"),
    ],
)
def test_input_baseline_scores_the_degraded_input(
    tmp_path: Path, capsys: pytest.CaptureFixture, dataset: dict[str, Any], words: str
) -> None:
    cfg = _denoise_config(tmp_path, dataset)
    path = write_config(tmp_path / "c.yml", cfg)
    weights = tmp_path / "w.safetensors"
    torch.manual_seed(0)
    export_network(ARCHS.build(cfg["network_g"]), weights)
    capsys.readouterr()
    assert (
        main(["validate", "-c", str(path), "--weights", str(weights), "--baseline", "input", "--json"]) == 0
    )
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert list(rows) == ["tinyval", "tinyval/input"]
    # the row is the PSNR of the validation set's own noisy/JPEG inputs against their GT
    spec = {k: v for k, v in cfg["data"]["val"]["tinyval"]["dataset"].items() if k != "type"}
    ds = (NoisyImageDataset if dataset["type"] == "NoisyImageDataset" else JPEGDataset)(**spec)
    want = torch.stack([psnr_batch(s["lq"][None], s["gt"][None])[0] for s in (ds[0], ds[1])]).mean()
    assert rows["tinyval/input"]["psnr"] == pytest.approx(float(want), abs=1e-9)
    assert (
        f"note: tinyval/input: baseline 'input' at scale 1 is the degraded input itself ({words}"
        in captured.err
    )


def test_input_baseline_needs_scale_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(tmp_path)  # scale 2
    cfg["val"] = {**cfg.get("val", {}), "baseline": "input"}
    path = write_config(tmp_path / "c.yml", cfg)
    assert main(["train", "-c", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "val.baseline: 'input' needs scale 1, this config has scale 2" in err[0]


def test_validate_refuses_baseline_input_at_scale_2_before_evaluating(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from restorekit.engine import run

    cfg = tiny_config(tmp_path)  # scale 2
    path = write_config(tmp_path / "c.yml", cfg)
    monkeypatch.setattr(run, "validate_run", lambda *a, **k: pytest.fail("evaluated anyway"))
    assert (
        main(["validate", "-c", str(path), "--weights", str(tmp_path / "w.pth"), "--baseline", "input"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--baseline input: needs scale 1" in err[0] and "scale 2" in err[0]

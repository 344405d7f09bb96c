"""Arguments the weights do not store (EDSR's res_scale) are reported when assumed, and can be set
with ``infer --arch-opt``: a BasicSR EDSR trained with res_scale 0.1 at a custom size used to run
silently wrong."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from restorekit.cli import main
from restorekit.registry import ARCHS


def test_res_scale_is_reported_and_settable(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(0)
    spec = {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 16, "num_block": 2, "upscale": 2}
    net = ARCHS.build({**spec, "res_scale": 0.1}).eval()
    weights = tmp_path / "edsr.pth"
    torch.save({"params": net.state_dict()}, weights)  # BasicSR's layout: no arguments stored
    img = (np.random.default_rng(0).random((12, 12, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "in.png"), img)
    common = ["infer", "--weights", str(weights), "-i", str(tmp_path / "in.png")]
    assert main([*common, "-o", str(tmp_path / "assumed.png")]) == 0
    err = capsys.readouterr().err
    assert "EDSR res_scale=1.0" in err and "assumed (not stored in the weights)" in err
    assert main([*common, "-o", str(tmp_path / "set.png"), "--arch-opt", "res_scale=0.1"]) == 0
    assert "res_scale=" not in capsys.readouterr().err  # the one given is no longer assumed
    with torch.no_grad():  # the output of the network it really is (BGR on disk)
        x = torch.from_numpy(img[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        want = (net(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round()
    got_set = cv2.imread(str(tmp_path / "set.png")).astype(np.float64)
    got_assumed = cv2.imread(str(tmp_path / "assumed.png")).astype(np.float64)
    assert np.abs(got_set - want).max() <= 1 and np.abs(got_assumed - want).max() > 1
    assert main([*common, "-o", str(tmp_path / "x.png"), "--arch-opt", "nope=1"]) == 2
    assert "nope: unknown argument for architecture 'EDSR'" in capsys.readouterr().err

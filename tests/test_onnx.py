"""``restorekit export --onnx``: dynamic height/width, outputs equal PyTorch's under onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from restorekit.archs.export import export_network
from restorekit.archs.info import ArchInfo, arch_info
from restorekit.cli import main
from restorekit.registry import ARCHS

# ONNX export is an optional extra (pip install 'restorekit[onnx]'); without it there is nothing here to test
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

EDSR_X2 = {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "upscale": 2}


def exported(spec: dict[str, Any], path: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    net = ARCHS.build(spec).eval()
    for p in net.parameters():  # random weights away from any special initialisation
        p.data.normal_(0, 0.05)
    export_network(net, path)
    return net


def run_onnx(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@pytest.mark.parametrize(
    ("spec", "sizes"),
    [
        ({**EDSR_X2, "upscale": 3}, [(1, 17, 23), (2, 40, 9)]),
        (
            {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "scale": 2, "num_feat": 8, "num_block": 1,
             "num_grow_ch": 4},
            [(1, 18, 26), (2, 34, 12)],
        ),
        ({"type": "SRVGGNetCompact", "num_feat": 8, "num_conv": 2, "upscale": 4}, [(1, 9, 31), (3, 24, 24)]),
    ],
)  # fmt: skip
def test_onnx_matches_pytorch_at_any_size(
    spec: dict[str, Any],
    sizes: list[tuple[int, int, int]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    net = exported(spec, tmp_path / "m.safetensors")
    out = tmp_path / "m.onnx"
    assert main(["export", str(tmp_path / "m.safetensors"), "--onnx", str(out)]) == 0
    assert "onnxruntime check: max |onnx - torch|" in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    info = arch_info(net)
    assert meta["arch"] == spec["type"] and meta["scale"] == str(net.scale) == str(info.scale)
    assert meta["size_multiple"] == str(info.size_multiple)
    assert ArchInfo.from_json(meta["info"]) == info
    for n, h, w in sizes:  # none is the export's 32×32 sample
        x = torch.rand(n, 3, h, w)
        with torch.no_grad():
            want = net(x).numpy()
        got = run_onnx(out, x)
        assert got.shape == want.shape == (n, 3, h * net.scale, w * net.scale)
        assert np.abs(got - want).max() < 1e-4


def test_onnx_export_refuses_overwrite_and_bad_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "m.safetensors"
    exported(EDSR_X2, weights)
    existing = tmp_path / "m.onnx"
    existing.write_bytes(b"old")
    assert main(["export", str(weights), "--onnx", str(existing)]) == 2
    assert existing.read_bytes() == b"old" and "already exists" in capsys.readouterr().err
    assert main(["export", str(weights), "--onnx", str(tmp_path / "m.onx")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    both = tmp_path / "both.safetensors"
    assert main(["export", str(weights), "-o", str(both), "--onnx", str(tmp_path / "both.onnx")]) == 0
    assert both.is_file() and (tmp_path / "both.onnx").is_file()

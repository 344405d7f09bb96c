"""``restorekit export``: checkpoint or run folder → self-describing .safetensors (EMA by default)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import tiny_config, write_config
from restorekit.archs import EDSR, MSRResNet
from restorekit.archs.export import load_network
from restorekit.archs.info import ArchInfo, arch_info
from restorekit.cli import main
from restorekit.config import dump_config, load_config
from restorekit.engine.checkpoint import save_checkpoint
from restorekit.errors import WeightsError


def edsr(seed: int) -> EDSR:
    torch.manual_seed(seed)
    return EDSR(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=2)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder as the trainer writes it: iter_10 and iter_20 complete, an unfinished save."""
    cfg = load_config(write_config(tmp_path / "tiny.yml", tiny_config(tmp_path)))
    run = tmp_path / "experiments" / "tiny"
    for it, seed in ((10, 0), (20, 2)):
        nets = {"net_g": edsr(seed), "net_g_ema": edsr(seed + 1)}
        save_checkpoint(run, it, nets, {"iter": it}, dump_config(cfg))
    (run / "checkpoints" / "iter_30").mkdir()  # a crashed save: no training_state.pt
    return run


def metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


def same_weights(path: Path, reference: Path) -> bool:
    a, b = load_file(str(path)), load_file(str(reference))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_export_checkpoint_is_ema_and_self_describing(run_dir: Path, tmp_path: Path) -> None:
    ckpt = run_dir / "checkpoints" / "iter_10"
    out = tmp_path / "model.safetensors"
    assert main(["export", str(ckpt), "-o", str(out)]) == 0
    meta = metadata(out)
    assert meta["arch"] == "EDSR"
    kwargs = json.loads(meta["kwargs"])
    assert kwargs["upscale"] == 2 and kwargs["num_feat"] == 8  # scale from the config's top level
    assert same_weights(out, ckpt / "net_g_ema.safetensors")
    net = load_network(out)
    x = torch.rand(1, 3, 8, 8)
    ref = edsr(1).eval()  # the EMA weights of iter_10
    with torch.no_grad():
        assert torch.allclose(net(x), ref(x), atol=1e-6)
    raw = tmp_path / "raw.safetensors"
    assert main(["export", str(ckpt), "-o", str(raw), "--raw"]) == 0
    assert same_weights(raw, ckpt / "net_g.safetensors")


def test_run_folder_uses_newest_complete_checkpoint(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    assert main(["export", str(run_dir), "-o", str(out)]) == 0
    assert same_weights(out, run_dir / "checkpoints" / "iter_20" / "net_g_ema.safetensors")
    # a checkpoint folder works as --weights for infer too (its EMA weights)
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), np.full((6, 7, 3), 128, np.uint8))
    assert (
        main(["infer", "--quiet", "--weights", str(run_dir), "-i", str(src), "-o", str(tmp_path / "o")]) == 0
    )
    assert cv2.imread(str(tmp_path / "o" / "a.png")).shape == (12, 14, 3)


def test_export_refuses_to_overwrite(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.safetensors"
    out.write_bytes(b"keep me")
    assert main(["export", str(run_dir), "-o", str(out)]) == 2
    assert out.read_bytes() == b"keep me"
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and len(err.splitlines()) == 1
    assert main(["export", str(run_dir), "-o", str(out), "--overwrite"]) == 0
    assert metadata(out)["arch"] == "EDSR"


def test_export_official_pth_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    net = MSRResNet(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=4)
    pth = tmp_path / "msrresnet.pth"
    torch.save({"params": net.state_dict()}, pth)
    out = tmp_path / "msr.safetensors"
    assert main(["export", str(pth), "-o", str(out)]) == 0
    assert metadata(out)["arch"] == "MSRResNet" and json.loads(metadata(out)["kwargs"])["upscale"] == 4
    assert main(["export", str(tmp_path), "-o", str(tmp_path / "x.safetensors")]) == 2
    assert "not a checkpoint folder" in capsys.readouterr().err
    assert main(["export", str(pth), "-o", str(tmp_path / "x.pth")]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err
    assert main(["export", str(pth)]) == 2
    assert "-o OUT.safetensors and/or --onnx" in capsys.readouterr().err


def test_one_checkpoint_folder_format_for_engine_and_inference(run_dir: Path, tmp_path: Path) -> None:
    import restorekit.engine.checkpoint as engine_ckpt
    import restorekit.inference.export as inference_export
    from restorekit import ckptdir

    # one definition, used by the writer and the reader
    assert engine_ckpt.STATE_FILE is ckptdir.STATE_FILE
    assert engine_ckpt.list_checkpoints is ckptdir.list_checkpoints
    assert engine_ckpt.latest_checkpoint is ckptdir.latest_checkpoint
    assert inference_export.find_checkpoint is ckptdir.find_checkpoint
    found = ckptdir.list_checkpoints(run_dir)
    assert [it for it, _ in found] == [10, 20]  # iter_30 is incomplete
    assert ckptdir.latest_checkpoint(run_dir) == run_dir / "checkpoints" / "iter_20"
    assert ckptdir.find_checkpoint(run_dir) == run_dir / "checkpoints" / "iter_20"
    ckpt = run_dir / "checkpoints" / "iter_10"
    assert ckptdir.find_checkpoint(ckpt) == ckpt
    assert ckptdir.latest_checkpoint(tmp_path / "nowhere") is None
    empty = tmp_path / "empty_run"
    (empty / "checkpoints" / "iter_5").mkdir(parents=True)
    with pytest.raises(WeightsError, match="run folder has no complete checkpoint"):
        ckptdir.find_checkpoint(empty)


def test_export_metadata_has_arch_info(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.safetensors"
    assert main(["export", str(run_dir), "-o", str(out)]) == 0
    info = ArchInfo.from_json(metadata(out)["info"])
    assert info == ArchInfo("restoration", 3, 3, scale=2)
    assert arch_info(load_network(out)) == info

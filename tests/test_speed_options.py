"""Speed options on CPU: AMP (bf16/fp16), channels_last, torch.compile wiring, device-side LQ,
and the one-line fallback notice when an architecture cannot honour an option."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_config, write_config
from restorekit.cli import main
from restorekit.tasks import base


def train(tmp_path: Path, name: str, **changes: Any) -> Path:
    cfg = tiny_config(tmp_path, **{"train.total_iter": 6, "val.freq": None, "logger.save_checkpoint_freq": 6,
                                   "logger.print_freq": 3, **changes})  # fmt: skip
    cfg["name"] = name
    path = write_config(tmp_path / f"{name}.yml", cfg)
    assert main(["train", "-c", str(path)]) == 0
    return Path(cfg["experiments_root"]) / name


def final(run: Path, net: str = "net_g") -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / "iter_6" / f"{net}.safetensors"))


def close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tol: float) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=tol, rtol=0) for k in a)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_trains_in_float32_master_weights(tmp_path: Path, amp: str) -> None:
    run = train(tmp_path, f"amp_{amp}", **{"train.amp": amp})
    weights = final(run)
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())
    state = torch.load(run / "checkpoints" / "iter_6" / "training_state.pt", weights_only=True)
    amp_state = state["task"]["amp"]["g"]
    scaler, skipped = amp_state["scaler"], int(amp_state["skipped_steps"])
    assert (scaler.get("scale", 0) > 0) == (amp == "fp16")  # only fp16 uses a loss scale
    if amp == "fp16":
        # GradScaler halves its scale on each skipped step and grows only every 2000: the count
        # must account for the scale exactly
        assert scaler["scale"] == 2.0**16 * 0.5**skipped
    else:
        assert skipped == 0  # no scaler, nothing can be skipped


def test_channels_last_matches_contiguous(tmp_path: Path) -> None:
    plain = final(train(tmp_path, "plain"))
    cl = final(train(tmp_path, "cl", **{"train.channels_last": True}))
    assert close(plain, cl, 1e-5)


def test_fp16_fallback_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    real = base.arch_info
    monkeypatch.setattr(base, "arch_info", lambda m: dataclasses.replace(real(m), supports_fp16=False))
    run = train(tmp_path, "nofp16", **{"train.amp": "fp16"})
    out = capsys.readouterr().out
    notices = [line for line in out.splitlines() if line.startswith("notice:")]
    assert len(notices) == 1 and "EDSR" in notices[0] and "bf16" in notices[0]
    assert (run / "model.safetensors").is_file()


def test_compile_wraps_the_trained_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wiring of ``train.compile``: the step runs through torch.compile and checkpoints hold
    the plain module's keys. (Inductor's CPU code generation takes minutes on this machine, so
    the test compiles with dynamo's eager backend; the GPU check uses the real one.)"""
    seen: list[Any] = []
    real = torch.compile

    def eager_compile(module: torch.nn.Module, mode: str | None = None, **kw: Any) -> Any:
        seen.append(mode)
        return real(module, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    run = train(tmp_path, "compiled", **{"train.compile": "max-autotune"})
    plain = final(train(tmp_path, "uncompiled"))
    assert seen == ["max-autotune"]
    compiled = final(run)
    assert not any(k.startswith("_orig_mod") for k in compiled)
    assert close(plain, compiled, 1e-5)


def test_device_side_bicubic_lq_equals_host(tmp_path: Path) -> None:
    changes = {
        "data.train.dataset": {
            "type": "BicubicDataset",
            "dataroot_gt": str(tmp_path / "train" / "GT"),
            "gt_size": 16,
            "use_hflip": True,
            "use_rot": True,
        }
    }
    host = final(train(tmp_path, "host", **changes))
    device = final(train(tmp_path, "device", **changes, **{"data.degrade_on": "device"}))
    assert close(host, device, 1e-5)


def test_device_degradation_needs_an_on_the_fly_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = tiny_config(tmp_path, **{"data.degrade_on": "device"})
    path = write_config(tmp_path / "bad.yml", cfg)
    assert main(["train", "-c", str(path)]) == 2
    assert "data.degrade_on: 'device' needs a dataset that makes its LQ on the fly" in capsys.readouterr().err

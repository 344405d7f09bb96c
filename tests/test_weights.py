"""The one weights reader (``read_state_dict``) and the one loader (``load_into``)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from restorekit.errors import ConfigError, WeightsError
from restorekit.weights import load_into, read_state_dict


def _sd(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"conv.weight": torch.randn(4, 3, 3, 3, generator=g), "conv.bias": torch.randn(4, generator=g)}


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)


class Outer(nn.Module):
    """A sub-module (``decoder``) next to parameters of its own, like StyleGAN2 inside GFPGAN."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(3, 3, 1)
        self.decoder = Net()


def test_formats_and_wrappers(tmp_path: Path) -> None:
    sd, other = _sd(0), _sd(1)
    save_file(sd, str(tmp_path / "a.safetensors"))
    torch.save({f"module._orig_mod.{k}": v for k, v in sd.items()}, tmp_path / "b.pth")
    torch.save({"params": other, "params_ema": sd, "iter": 5}, tmp_path / "c.pth")
    torch.save({"params": sd}, tmp_path / "d.pt")
    torch.save({"state_dict": {"model": sd}}, tmp_path / "e.ckpt")
    for name in ("a.safetensors", "b.pth", "c.pth", "d.pt", "e.ckpt"):
        state, note = read_state_dict(tmp_path / name)
        assert set(state) == set(sd), name
        assert all(torch.equal(state[k], sd[k]) for k in sd), name
        if name == "c.pth":  # a choice was made, and the user is told which
            assert note is not None and "'params_ema'" in note and "params" in note and "c.pth" in note
        else:
            assert note is None, name


def test_param_key_is_exact(tmp_path: Path) -> None:
    sd, other = _sd(0), _sd(1)
    torch.save({"params": other, "params_ema": sd, "iter": 5}, tmp_path / "c.pth")
    state, note = read_state_dict(tmp_path / "c.pth", param_key="params")
    assert torch.equal(state["conv.bias"], other["conv.bias"]) and note is None
    with pytest.raises(WeightsError) as info:
        read_state_dict(tmp_path / "c.pth", param_key="g_ema")
    msg = str(info.value)
    assert "c.pth: no 'g_ema' in the file" in msg and "'params'" in msg and "'iter'" in msg
    assert "\n" not in msg


class _Evil:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (_touch, (str(self.path),))


def _touch(path: str) -> None:
    Path(path).write_text("code ran")


def test_pickle_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pth"
    torch.save({"params": _sd(), "payload": _Evil(marker)}, path)
    with pytest.raises(WeightsError) as info:
        read_state_dict(path)
    msg = str(info.value)
    assert "evil.pth: refused to load" in msg and "weights_only" not in msg and "\n" not in msg
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Evil(marker)))  # the payload is real
    assert marker.exists()


def test_broken_files_are_one_line(tmp_path: Path) -> None:
    torch.save(_sd(), tmp_path / "full.pth")
    save_file(_sd(), str(tmp_path / "full.safetensors"))
    cases = {
        "empty.pth": b"",
        "empty.safetensors": b"",
        "cut.pth": (tmp_path / "full.pth").read_bytes()[:200],
        "cut.safetensors": (tmp_path / "full.safetensors").read_bytes()[:100],
        "junk.pt": b"not a checkpoint",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(WeightsError) as info:
            read_state_dict(tmp_path / name)
        msg = str(info.value)
        assert msg.startswith(str(tmp_path / name)) and "\n" not in msg and "weights_only" not in msg, msg
        if name.startswith("empty"):
            assert "empty (0 bytes)" in msg
    with pytest.raises(WeightsError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="is a folder"):
        read_state_dict(tmp_path)
    torch.save({"a": torch.zeros(1), "epoch": 3}, tmp_path / "mixed.pth")
    with pytest.raises(WeightsError, match="entry 'epoch' is a int"):
        read_state_dict(tmp_path / "mixed.pth")


def test_strict_reports_everything_in_one_line() -> None:
    net = Net()
    load_into(net, _sd(3), "strict", "w.pth")
    assert torch.equal(net.conv.bias, _sd(3)["conv.bias"])
    bad = {"conv.weight": torch.zeros(4, 3, 1, 1), "extra.weight": torch.zeros(1)}
    with pytest.raises(WeightsError) as info:
        load_into(net, bad, "strict", "w.pth")
    msg = str(info.value)
    assert msg.startswith("w.pth: does not fit Net:") and "\n" not in msg
    assert "missing keys conv.bias" in msg and "unexpected keys extra.weight" in msg
    assert "shape mismatch (file vs model) conv.weight (4, 3, 1, 1) vs (4, 3, 3, 3)" in msg
    assert torch.equal(net.conv.bias, _sd(3)["conv.bias"])  # nothing was touched


def test_fit_loads_what_fits_and_says_how_much() -> None:
    net = Net()
    before = net.conv.weight.detach().clone()
    state = {"conv.bias": _sd(4)["conv.bias"], "conv.weight": torch.zeros(4, 3, 1, 1)}
    state["head.w"] = torch.ones(2)
    notes = load_into(net, state, "fit", "w.pth")
    assert torch.equal(net.conv.bias, state["conv.bias"]) and torch.equal(net.conv.weight, before)
    assert notes[0] == "w.pth: loaded 1 of 2 tensors of Net; skipped 2 from the file"
    assert any("conv.weight (4, 3, 1, 1) vs (4, 3, 3, 3)" in n for n in notes)
    assert any("head.w" in n for n in notes)
    with pytest.raises(WeightsError, match="no tensor fits Net"):
        load_into(net, {"x": torch.zeros(1)}, "fit", "w.pth")
    with pytest.raises(ConfigError, match="'loose'"):
        load_into(net, state, "loose", "w.pth")  # type: ignore[arg-type]


def test_prefix_loads_into_a_sub_module_only() -> None:
    outer = Outer()
    encoder = outer.encoder.weight.detach().clone()
    assert load_into(outer, _sd(5), "strict", "dec.pth", prefix="decoder.") == []
    assert torch.equal(outer.decoder.conv.weight, _sd(5)["conv.weight"])
    assert torch.equal(outer.encoder.weight, encoder)  # outside the prefix: untouched, not "missing"
    with pytest.raises(WeightsError, match=r"dec\.pth: does not fit Outer\.decoder: missing keys conv\.bias"):
        load_into(outer, {"conv.weight": _sd()["conv.weight"]}, "strict", "dec.pth", prefix="decoder.")
    with pytest.raises(WeightsError, match="has no sub-module 'nope'"):
        load_into(outer, _sd(), "strict", "dec.pth", prefix="nope.")
    notes = load_into(outer, {"conv.bias": _sd(6)["conv.bias"]}, "fit", "dec.pth", prefix="decoder")
    assert notes[0].startswith("dec.pth: loaded 1 of 2 tensors of Outer.decoder")

"""Round trips random init → state dict (in every wrapper and file format) → recognise → strict load.

Also: official-size layouts are recognised with the release arguments, unknown state dicts and
pickled code give a one-line WeightsError, never a traceback or code execution.
"""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import restorekit.archs  # noqa: F401
from restorekit.archs.detect import (
    RECOGNIZERS,
    build_from_state_dict,
    canonicalize,
    detect_arch,
    load_weights_file,
)
from restorekit.errors import WeightsError
from restorekit.registry import ARCHS, spec_of

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("EDSR", dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=2)),
    ("EDSR", dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=3)),
    ("EDSR", dict(num_in_ch=1, num_out_ch=1, num_feat=4, num_block=1, upscale=8, rgb_mean=(0.43,))),
    ("MSRResNet", dict(num_feat=8, num_block=2, upscale=2)),
    ("MSRResNet", dict(num_feat=8, num_block=1, upscale=3)),
    ("MSRResNet", dict(num_in_ch=1, num_out_ch=1, num_feat=4, num_block=1, upscale=4)),
    ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=2, num_grow_ch=4)),
    ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=8, num_block=1, num_grow_ch=4)),
    ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=1, num_feat=4, num_block=1, num_grow_ch=2)),
    ("RRDBNet", dict(num_in_ch=4, num_out_ch=3, scale=4, num_feat=4, num_block=1, num_grow_ch=6)),
    ("SRVGGNetCompact", dict(num_feat=8, num_conv=2, upscale=4, act_type="prelu")),
    ("SRVGGNetCompact", dict(num_feat=8, num_conv=1, upscale=2, act_type="leakyrelu")),
    ("SRVGGNetCompact", dict(num_in_ch=1, num_out_ch=1, num_feat=4, num_conv=0, upscale=3)),
    ("WDSR_A", dict(num_feat=8, num_block=2, upscale=2)),
    (
        "WDSR_A",
        dict(
            num_in_ch=1,
            num_out_ch=1,
            num_feat=6,
            num_block=1,
            upscale=3,
            expansion_ratio=2.5,
            rgb_mean=(0.43,),
        ),
    ),
    ("WDSR_B", dict(num_feat=10, num_block=2, upscale=4)),
    ("WDSR_B", dict(num_feat=8, num_block=1, upscale=2, expansion_ratio=3.0, low_rank_ratio=0.5)),
]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small nets run faster on one thread


def _full_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The given kwargs completed with the constructor's defaults (what detection must return)."""
    ctor = ARCHS.get(name)
    bound = inspect.signature(ctor).bind(**kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _random_model(name: str, kwargs: dict[str, Any], seed: int) -> torch.nn.Module:
    """A model whose every tensor is distinct random noise, so a mis-mapped key changes outputs."""
    torch.manual_seed(seed)
    model = ARCHS.build({"type": name, **kwargs}).eval()
    with torch.no_grad():
        for t in model.state_dict().values():
            t.add_(torch.randn_like(t) * 0.02)
    return model


def _forms(sd: dict[str, torch.Tensor], other: dict[str, torch.Tensor], tmp: Path) -> dict[str, Any]:
    """The same weights as users meet them: BasicSR-wrapped, DDP-prefixed, on disk."""
    prefixed = {f"module.{k}": v for k, v in sd.items()}
    wrapped = {"params_ema": sd, "params": other, "iter": 7}
    torch.save(wrapped, tmp / "wrapped.pth")
    torch.save({"state_dict": prefixed, "epoch": 3}, tmp / "lightning.ckpt")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp / "bare.safetensors"))
    save_file({k: v.contiguous() for k, v in prefixed.items()}, str(tmp / "prefixed.safetensors"))
    return {
        "wrapped": wrapped,
        "wrapped.pth": load_weights_file(tmp / "wrapped.pth"),
        "lightning.ckpt": load_weights_file(tmp / "lightning.ckpt"),
        "bare.safetensors": load_weights_file(tmp / "bare.safetensors"),
        "prefixed.safetensors": load_weights_file(tmp / "prefixed.safetensors"),
    }


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(VARIANTS)])
def test_round_trip(name: str, kwargs: dict[str, Any], tmp_path: Path) -> None:
    model = _random_model(name, kwargs, seed=0)
    other = _random_model(name, kwargs, seed=1).state_dict()
    expected = _full_kwargs(name, kwargs)
    assert detect_arch(model.state_dict()) == (name, expected)
    x = torch.rand(1, kwargs.get("num_in_ch", 3), 8, 8)
    with torch.no_grad():
        reference = model(x)
    for form, obj in _forms(model.state_dict(), other, tmp_path).items():
        loaded = build_from_state_dict(obj)  # detects, builds, loads strictly
        assert spec_of(loaded) == {"type": name, **expected}, form
        assert not loaded.training
        with torch.no_grad():
            assert torch.equal(loaded(x), reference), form


def test_wdsr_b_low_rank_ratio_is_recovered_up_to_truncation() -> None:
    # int(7 * 0.3) == 2 channels: the checkpoint only fixes the ratio to [2/7, 3/7), so detection
    # returns 2/7, which rebuilds the identical network.
    model = _random_model("WDSR_B", dict(num_feat=7, num_block=1, upscale=2, low_rank_ratio=0.3), seed=0)
    name, kwargs = detect_arch(model.state_dict())
    assert name == "WDSR_B"
    assert kwargs["low_rank_ratio"] == pytest.approx(2 / 7)
    loaded = build_from_state_dict(model.state_dict())
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        (
            "EDSR",
            dict(num_in_ch=3, num_out_ch=3, num_feat=256, num_block=32, res_scale=0.1),
            {"res_scale": 0.1},
        ),
        ("EDSR", dict(num_in_ch=3, num_out_ch=3, upscale=3), {"res_scale": 1.0, "upscale": 3}),
        ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=2), {"scale": 2, "num_block": 23}),
        ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, num_block=6), {"scale": 4, "num_block": 6}),
        ("SRVGGNetCompact", dict(num_conv=32), {"num_conv": 32, "act_type": "prelu", "upscale": 4}),
        ("MSRResNet", dict(), {"upscale": 4, "num_block": 16}),
    ],
)
def test_official_sizes_are_recognised(name: str, kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    with torch.device("meta"):
        sd = ARCHS.build({"type": name, **kwargs}).state_dict()
    detected, inferred = detect_arch(sd)
    assert detected == name
    assert inferred == _full_kwargs(name, kwargs)
    for key, value in expected.items():
        assert inferred[key] == value


def test_unrecognised_state_dict_lists_every_family() -> None:
    with pytest.raises(WeightsError) as info:
        detect_arch({"encoder.weight": torch.zeros(4, 3, 3, 3)})
    message = str(info.value)
    assert "\n" not in message
    for name, _ in RECOGNIZERS:
        assert name in message


def test_near_miss_is_reported() -> None:
    with torch.device("meta"):
        sd = ARCHS.build(
            {
                "type": "RRDBNet",
                "num_in_ch": 3,
                "num_out_ch": 3,
                "num_feat": 8,
                "num_block": 2,
                "num_grow_ch": 4,
            }
        ).state_dict()
    sd = {k: torch.zeros(v.shape) for k, v in sd.items()}
    sd["body.1.rdb2.conv3.weight"] = torch.zeros(4, 17, 3, 3)  # should be [4, 16, 3, 3]
    with pytest.raises(WeightsError, match=r"RRDBNet: body\.1\.rdb2\.conv3\.weight has shape"):
        build_from_state_dict(sd)
    del sd["body.1.rdb2.conv3.weight"]
    with pytest.raises(WeightsError, match="missing"):
        detect_arch(sd)


def _side_effect(path: str) -> None:
    Path(path).write_text("code ran")


class _Evil:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (_side_effect, (str(self.path),))


def test_pickled_code_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pth"
    torch.save({"params": {"conv.weight": torch.zeros(1)}, "payload": _Evil(marker)}, path)
    with pytest.raises(WeightsError, match=r"evil\.pth: refused to load"):
        load_weights_file(path)
    assert not marker.exists()
    # the payload is real: plain unpickling of the same object does run it
    pickle.loads(pickle.dumps(_Evil(marker)))
    assert marker.read_text() == "code ran"


def test_file_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"missing\.pth: weights file not found"):
        load_weights_file(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(WeightsError, match=r"junk\.pth: not a PyTorch weights file"):
        load_weights_file(junk)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(WeightsError, match=r"bad\.safetensors: not a readable safetensors file"):
        load_weights_file(bad_st)
    other = tmp_path / "model.bin"
    other.write_bytes(b"")
    with pytest.raises(WeightsError, match=r"model\.bin: unsupported weights file extension '\.bin'"):
        load_weights_file(other)
    not_sd = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], not_sd)
    with pytest.raises(WeightsError, match=r"list\.pt: expected a state dict"):
        load_weights_file(not_sd)


def test_canonicalize_rules() -> None:
    t = torch.zeros(1)
    u = torch.ones(1)
    assert canonicalize({"params_ema": {"a": t}, "params": {"a": u}})["a"] is t
    assert canonicalize({"params": {"a": u}, "state_dict": {"a": t}})["a"] is u
    assert canonicalize({"model": {"module.a": t}})["a"] is t
    assert canonicalize({"state_dict": {"params_ema": {"module._orig_mod.a": t}}})["a"] is t
    assert list(canonicalize({"module.module.b.c": t})) == ["b.c"]
    assert canonicalize({"params_ema": {}, "params": {"a": u}})["a"] is u  # empty EMA is skipped
    with pytest.raises(WeightsError, match="entry 'epoch' is a int"):
        canonicalize({"a": t, "epoch": 3})
    with pytest.raises(WeightsError, match="appears twice"):
        canonicalize({"a": t, "module.a": u})
    with pytest.raises(WeightsError, match="empty"):
        canonicalize({})


def test_wrapper_choice_is_reported_by_loaders(tmp_path: Path) -> None:
    from restorekit.archs.export import read_network
    from restorekit.inference.export import load_any

    kwargs = dict(num_in_ch=3, num_out_ch=3, num_feat=4, num_block=1, upscale=2)
    ema, raw = _random_model("EDSR", kwargs, 0), _random_model("EDSR", kwargs, 1)
    path = tmp_path / "EDSR_x2.pth"
    torch.save({"params": raw.state_dict(), "params_ema": ema.state_dict()}, path)
    net, notes = read_network(path)
    assert len(notes) == 2 and "'params_ema'" in notes[0] and "params" in notes[0]
    assert "res_scale=1.0" in notes[1] and "assumed" in notes[1]  # EDSR's unstored arguments
    assert torch.equal(net.conv_first.weight, ema.conv_first.weight)
    net, notes = read_network(path, param_key="params")
    assert len(notes) == 1 and torch.equal(net.conv_first.weight, raw.conv_first.weight)
    assert load_any(path)[1] == read_network(path)[1]  # `restorekit infer` prints the same note

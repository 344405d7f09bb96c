"""RCAN and RIDNet: BasicSR key layouts, recognition, and the pixel range of the official weights.

Key counts and shapes were derived by hand from BasicSR's ``rcan_arch.py`` / ``ridnet_arch.py``
(and ``options/test/RCAN/test_RCAN.yml``, ``inference/inference_ridnet.py``), not read back from
our modules.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import restorekit.archs  # noqa: F401
from restorekit.archs.detect import build_from_state_dict, detect_arch
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small nets run faster on one thread


def _shapes(name: str, **kwargs: Any) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = ARCHS.build({"type": name, **kwargs})
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _full(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = inspect.signature(ARCHS.get(name)).bind(**kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def test_rcan_official_layout() -> None:
    # RCAN_BIX4-official: 10 groups x (20 RCABs x 8 tensors + group conv 2) + 2 + 2 + 2 upsample
    # convs x 2 + 2
    kw = dict(num_in_ch=3, num_out_ch=3, num_group=10, num_block=20, upscale=4)
    shapes = _shapes("RCAN", **kw)
    assert len(shapes) == 10 * (20 * 8 + 2) + 2 + 2 + 4 + 2 == 1630
    expected = {
        "conv_first.weight": (64, 3, 3, 3),
        "body.0.residual_group.0.rcab.0.weight": (64, 64, 3, 3),
        "body.0.residual_group.0.rcab.2.bias": (64,),
        "body.0.residual_group.0.rcab.3.attention.1.weight": (4, 64, 1, 1),
        "body.0.residual_group.0.rcab.3.attention.3.weight": (64, 4, 1, 1),
        "body.9.residual_group.19.rcab.3.attention.3.bias": (64,),
        "body.9.conv.weight": (64, 64, 3, 3),
        "conv_after_body.weight": (64, 64, 3, 3),
        "upsample.2.weight": (256, 64, 3, 3),
        "conv_last.weight": (3, 64, 3, 3),
    }
    for key, shape in expected.items():
        assert shapes[key] == shape, key
    assert "mean" not in shapes
    x3 = _shapes("RCAN", **(kw | {"upscale": 3}))
    assert len(x3) == 1628 and x3["upsample.0.weight"] == (576, 64, 3, 3)


def test_ridnet_official_layout() -> None:
    # RIDNet(3, 64, 3): two mean shifts, head, 4 EAMs x (merge 10 + block1 4 + block2 6 + ca 4), tail
    shapes = _shapes("RIDNet", in_channels=3, mid_channels=64, out_channels=3)
    assert len(shapes) == 2 + 2 + 2 + 4 * 24 + 2 == 104
    expected = {
        "sub_mean.weight": (3, 3, 1, 1),
        "add_mean.bias": (3,),
        "head.weight": (64, 3, 3, 3),
        "body.0.merge.dilation1.0.weight": (64, 64, 3, 3),
        "body.0.merge.dilation2.2.weight": (64, 64, 3, 3),
        "body.0.merge.aggregation.0.weight": (64, 128, 3, 3),
        "body.0.block1.conv2.weight": (64, 64, 3, 3),
        "body.3.block2.body.4.weight": (64, 64, 1, 1),
        "body.3.ca.attention.1.weight": (4, 64, 1, 1),
        "tail.weight": (3, 64, 3, 3),
    }
    for key, shape in expected.items():
        assert shapes[key] == shape, key


VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("RCAN", dict(num_in_ch=3, num_out_ch=3, num_group=10, num_block=20, upscale=4)),  # official
    ("RCAN", dict(num_in_ch=3, num_out_ch=3, num_group=10, num_block=20, upscale=3)),
    ("RCAN", dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_group=2, num_block=3, upscale=2)),
    (
        "RCAN",
        dict(
            num_in_ch=1,
            num_out_ch=1,
            num_feat=12,
            num_group=1,
            num_block=1,
            squeeze_factor=4,
            upscale=8,
            rgb_mean=(0.4300,),
        ),
    ),
    ("RIDNet", dict(in_channels=3, mid_channels=64, out_channels=3)),  # official
    (
        "RIDNet",
        dict(in_channels=1, mid_channels=32, out_channels=1, num_block=2, rgb_mean=(0.43,), rgb_std=(1.0,)),
    ),
]


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(VARIANTS)])
def test_detected_from_the_layout(name: str, kwargs: dict[str, Any]) -> None:
    with torch.device("meta"):
        sd = ARCHS.build({"type": name, **kwargs}).state_dict()
    assert detect_arch({"params": sd}) == (name, _full(name, kwargs))


@pytest.mark.parametrize("name", ["RCAN", "RIDNet"])
def test_round_trip_loads_strictly(name: str) -> None:
    kwargs = (
        dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_group=2, num_block=2, upscale=2)
        if name == "RCAN"
        else dict(in_channels=3, mid_channels=16, out_channels=3, num_block=2)
    )
    torch.manual_seed(0)
    model = ARCHS.build({"type": name, **kwargs}).eval()
    with torch.no_grad():
        for t in model.state_dict().values():
            t.add_(torch.randn_like(t) * 0.02)
    loaded = build_from_state_dict({"params_ema": model.state_dict()})
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_ridnet_runs_the_official_255_range_forward_on_unit_inputs() -> None:
    torch.manual_seed(0)
    net = ARCHS.build(
        {"type": "RIDNet", "in_channels": 3, "mid_channels": 16, "out_channels": 3, "num_block": 1}
    ).eval()
    sd = net.state_dict()
    assert all(not p.requires_grad for n, p in net.named_parameters() if "mean" in n)  # frozen shifts
    mean = torch.tensor([0.4488, 0.4371, 0.4040]) * 255
    assert torch.allclose(sd["sub_mean.bias"], -mean) and torch.allclose(sd["add_mean.bias"], mean)
    x = torch.rand(1, 3, 10, 11)
    x255 = x * 255  # what BasicSR's inference_ridnet.py feeds: uint8 values as floats
    with torch.no_grad():
        res = F.conv2d(x255, sd["sub_mean.weight"], sd["sub_mean.bias"])
        res = net.tail(net.body(F.relu(net.head(res))))
        ref = x255 + F.conv2d(res, sd["add_mean.weight"], sd["add_mean.bias"])
        out = net(x)
    torch.testing.assert_close(out * 255, ref, rtol=1e-5, atol=1e-3)


def test_rcan_channel_attention_gates_each_channel() -> None:
    torch.manual_seed(0)
    net = ARCHS.build(
        {
            "type": "RCAN",
            "num_in_ch": 3,
            "num_out_ch": 3,
            "num_feat": 16,
            "num_group": 1,
            "num_block": 1,
            "upscale": 2,
        }
    ).eval()
    ca = net.body[0].residual_group[0].rcab[3]
    x = torch.randn(2, 16, 5, 5)
    gate = torch.sigmoid(ca.attention[3](F.relu(ca.attention[1](x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(ca(x), x * gate)


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="out_channels"):
        ARCHS.build({"type": "RIDNet", "in_channels": 3, "mid_channels": 8, "out_channels": 1})
    with pytest.raises(ConfigError, match="rgb_mean"):
        ARCHS.build({"type": "RIDNet", "in_channels": 1, "mid_channels": 8, "out_channels": 1})
    with pytest.raises(ConfigError, match="squeeze_factor"):
        ARCHS.build({"type": "RCAN", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "squeeze_factor": 16})
    with pytest.raises(ConfigError, match="rgb_mean"):
        ARCHS.build({"type": "RCAN", "num_in_ch": 1, "num_out_ch": 1})

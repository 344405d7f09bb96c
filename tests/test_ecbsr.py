"""ECBSR: BasicSR's key layout, the re-parameterised (one 3×3 conv per block) form, detection.

The key/shape table was derived by hand from BasicSR's ``basicsr/archs/ecbsr_arch.py`` (at
8d56e3a) for its ``train_ECBSR_x4_m4c16_prelu.yml`` network, not read back from our module.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import restorekit.archs  # noqa: F401
from restorekit.archs.detect import build_recognised, detect_arch
from restorekit.archs.ecbsr import ECBSR, SeqConvEdge, SeqConvExpand
from restorekit.archs.info import arch_info
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

pytestmark = pytest.mark.usefixtures("one_thread")

_ARGS = ("num_in_ch", "num_out_ch", "num_block", "num_channel", "with_idt", "act_type", "scale")


def _kw(*values: Any) -> dict[str, Any]:
    """ECBSR kwargs in BasicSR's positional order."""
    return dict(zip(_ARGS, values, strict=True))


M4C16_X4 = _kw(1, 1, 4, 16, False, "prelu", 4)


def _build(**kw: Any) -> ECBSR:
    return ARCHS.build({"type": "ECBSR", **kw})


def _m4c16_x4_table() -> dict[str, tuple[int, ...]]:
    """BasicSR ECBSR(1, 1, 4, 16, False, 'prelu', 4): 6 ECBs, widths 1→16→…→16→16 (= 1·4²)."""
    table: dict[str, tuple[int, ...]] = {}
    for i in range(6):
        cin, cout = (1 if i == 0 else 16), 16
        p = f"backbone.{i}."
        table[p + "conv3x3.weight"] = (cout, cin, 3, 3)
        table[p + "conv3x3.bias"] = (cout,)
        table[p + "conv1x1_3x3.k0"] = (32, cin, 1, 1)  # depth_multiplier 2.0
        table[p + "conv1x1_3x3.b0"] = (32,)
        table[p + "conv1x1_3x3.k1"] = (cout, 32, 3, 3)
        table[p + "conv1x1_3x3.b1"] = (cout,)
        for b in ("sbx", "sby", "lpl"):
            table[p + f"conv1x1_{b}.k0"] = (cout, cin, 1, 1)
            table[p + f"conv1x1_{b}.b0"] = (cout,)
            table[p + f"conv1x1_{b}.scale"] = (cout, 1, 1, 1)
            table[p + f"conv1x1_{b}.bias"] = (cout,)
            table[p + f"conv1x1_{b}.mask"] = (cout, 1, 3, 3)
        if i < 5:  # the last ECB is 'linear': no PReLU
            table[p + "act.weight"] = (cout,)
    return table


def test_m4c16_x4_prelu_keys_and_shapes_are_basicsrs() -> None:
    sd = _build(**M4C16_X4).state_dict()
    table = _m4c16_x4_table()
    assert len(table) == 5 * 22 + 21 == 131
    assert list(sd) == list(table)  # BasicSR's order too (conv3x3, branches, act)
    assert {k: tuple(v.shape) for k, v in sd.items()} == table
    # with_idt adds no tensors; RGB x4 only changes the first and last widths
    assert list(_build(**{**M4C16_X4, "with_idt": True}).state_dict()) == list(table)
    rgb = _build(**{**M4C16_X4, "num_in_ch": 3, "num_out_ch": 3}).state_dict()
    assert rgb["backbone.0.conv3x3.weight"].shape == (16, 3, 3, 3)
    assert rgb["backbone.5.conv3x3.weight"].shape == (48, 16, 3, 3)
    assert rgb["backbone.5.conv1x1_3x3.k0"].shape == (96, 16, 1, 1)


def test_masks_are_the_fixed_edge_filters_and_not_trained() -> None:
    net = _build(**M4C16_X4)
    sd = net.state_dict()
    sobelx = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
    laplacian = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
    assert torch.equal(sd["backbone.2.conv1x1_sbx.mask"][7, 0], sobelx)
    assert torch.equal(sd["backbone.2.conv1x1_sby.mask"][3, 0], sobelx.T)
    assert torch.equal(sd["backbone.0.conv1x1_lpl.mask"][0, 0], laplacian)
    names = {n for n, _ in net.named_parameters()}
    assert not any(n.endswith(".mask") for n in names) and len(names) == 131 - 6 * 3


def _basicsr_seqconv(x: torch.Tensor, k0: torch.Tensor, b0: torch.Tensor, k1: torch.Tensor, **kw: Any):
    """BasicSR's SeqConv3x3.forward: zero pad the 1×1 output, overwrite the border with b0."""
    y0 = F.pad(F.conv2d(x, k0, b0), (1, 1, 1, 1))
    pad = b0.view(1, -1, 1, 1)
    y0[:, :, :1, :], y0[:, :, -1:, :], y0[:, :, :, :1], y0[:, :, :, -1:] = pad, pad, pad, pad
    return F.conv2d(y0, k1, **kw)


def test_branches_match_basicsrs_bias_padded_forward() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64)
    expand = SeqConvExpand(3, 4).double()
    ref = _basicsr_seqconv(x, expand.k0, expand.b0, expand.k1, bias=expand.b1)
    assert torch.allclose(expand(x), ref, atol=1e-12, rtol=0)
    edge = SeqConvEdge("sobely", 3, 4).double()
    with torch.no_grad():
        edge.scale.normal_()
    weight = edge.scale * edge.mask
    ref = _basicsr_seqconv(x, edge.k0, edge.b0, weight, bias=edge.bias, groups=4)
    assert torch.allclose(edge(x), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "kw",
    [
        M4C16_X4 | {"with_idt": True},  # identity on every 16→16 ECB, the last one included
        _kw(3, 3, 2, 8, True, "relu", 2),
        _kw(1, 1, 1, 6, False, "softplus", 3),
    ],
)
def test_reparameterised_network_equals_the_training_form(kw: dict[str, Any]) -> None:
    torch.manual_seed(1)
    net = _build(**kw)
    with torch.no_grad():  # make the edge branches matter (their init scale is 1e-3)
        for name, p in net.named_parameters():
            if name.endswith(".scale"):
                p.normal_(0.0, 0.1)
    x = torch.rand(2, kw["num_in_ch"], 13, 17)
    with torch.no_grad():
        train_out = net.train()(x)
        plain = net.reparameterize()
        assert all(len(list(b.parameters())) <= 3 for b in plain.backbone)  # conv (+ PReLU)
        assert sum(isinstance(m, torch.nn.Conv2d) for m in plain.modules()) == kw["num_block"] + 2
        plain_out = plain.eval()(x)
        eval_out = net.eval()(x)  # eval mode folds on the fly, as BasicSR's ECB does
    assert plain_out.shape == (2, kw["num_out_ch"], 13 * kw["scale"], 17 * kw["scale"])
    assert (train_out - plain_out).abs().max() < 1e-5
    assert (train_out - eval_out).abs().max() < 1e-5
    # in float64 the fold is exact up to rounding: the 1e-5 above is float32, not approximation
    net64 = net.double().train()
    with torch.no_grad():
        diff = net64(x.double()) - net64.reparameterize()(x.double())
    assert diff.abs().max() < 1e-12


def test_identity_only_when_widths_agree() -> None:
    net = _build(**{**M4C16_X4, "num_channel": 8, "with_idt": True})
    assert [b.with_idt for b in net.backbone] == [False, True, True, True, True, False]


def test_arch_info_and_bad_arguments() -> None:
    info = arch_info({"type": "ECBSR", **M4C16_X4})
    assert (info.purpose, info.in_channels, info.out_channels, info.scale) == ("restoration", 1, 1, 4)
    with pytest.raises(ConfigError, match="num_out_ch: 1 must equal num_in_ch 3"):
        _build(**{**M4C16_X4, "num_in_ch": 3})
    with pytest.raises(ConfigError, match="act_type"):
        ARCHS.check({"type": "ECBSR", **M4C16_X4, "act_type": "gelu"})
    # a gray input broadcasts over colour outputs, as BasicSR's skip does
    out = _build(**{**M4C16_X4, "num_out_ch": 3, "scale": 2})(torch.rand(1, 1, 5, 5))
    assert out.shape == (1, 3, 10, 10)


@pytest.mark.parametrize(
    "kw",
    [
        M4C16_X4,
        M4C16_X4 | {"scale": 2},
        M4C16_X4 | {"num_in_ch": 3, "num_out_ch": 3},
        _kw(3, 3, 8, 32, False, "prelu", 3),
    ],
)
def test_detect_reads_every_stored_argument(kw: dict[str, Any]) -> None:
    sd = _build(**kw).state_dict()
    name, found = detect_arch(sd)
    assert (name, found) == ("ECBSR", kw)
    model, notes = build_recognised(sd)
    assert isinstance(model, ECBSR) and not model.training
    assert len(notes) == 1 and "with_idt=False assumed" in notes[0] and "act_type" not in notes[0]


def test_detect_reports_what_it_assumed_and_takes_overrides() -> None:
    kw = M4C16_X4 | {"act_type": "softplus", "with_idt": True}
    sd = _build(**kw).state_dict()
    name, found = detect_arch(sd)
    assert name == "ECBSR" and found["act_type"] == "relu" and found["with_idt"] is False
    _, notes = build_recognised(sd, "m.pth")
    assert notes[0].startswith("m.pth: ECBSR with_idt=False, act_type='relu' assumed")
    model, notes = build_recognised(sd, "m.pth", {"act_type": "softplus", "with_idt": True})
    assert notes == []
    assert isinstance(model.backbone[0].act, torch.nn.Softplus) and model.backbone[1].with_idt
    # a model from a different family is not taken for ECBSR
    broken = {k: v for k, v in sd.items() if "conv1x1_sbx.mask" not in k}
    with pytest.raises(Exception, match="not recognised"):
        detect_arch(broken)

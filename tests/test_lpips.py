"""LPIPS and the VGG/AlexNet trunks: official key layouts, and numbers against a plain re-implementation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from restorekit.archs.alexnet import AlexNetFeatures
from restorekit.archs.vgg import VGGFeatures, vgg_layer_names
from restorekit.errors import ConfigError, WeightsError
from restorekit.metrics.lpips import LPIPS, calculate_lpips

# torchvision's feature indices of each conv and its (out, in) channels, written out by hand.
VGG16_CONVS = {
    0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256), 14: (256, 256),
    17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512),
}  # fmt: skip
VGG19_CONVS = {
    0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256), 14: (256, 256),
    16: (256, 256), 19: (512, 256), 21: (512, 512), 23: (512, 512), 25: (512, 512), 28: (512, 512),
    30: (512, 512), 32: (512, 512), 34: (512, 512),
}  # fmt: skip
ALEX_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
# Max-pools (by index) that precede each VGG16 LPIPS tap relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
VGG16_TAPS = (3, 8, 15, 22, 29)


def _random_vgg_state(convs: dict[int, tuple[int, int]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, (cout, cin) in convs.items():
        state[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        state[f"features.{i}.bias"] = 0.01 * torch.randn(cout, generator=g)
    # The real files also hold the classifier; its (huge) shapes are irrelevant to feature loading.
    state["classifier.6.weight"] = torch.zeros(10, 4)
    state["classifier.6.bias"] = torch.zeros(10)
    return state


def _random_alex_state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, (cout, cin, k) in ALEX_CONVS.items():
        state[f"features.{i}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2 / (k * k * cin)) ** 0.5
        state[f"features.{i}.bias"] = 0.01 * torch.randn(cout, generator=g)
    state["classifier.1.weight"] = torch.zeros(4, 4)
    return state


def _random_lins(channels: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(channels)}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lpips")
    content = {
        "vgg16": _random_vgg_state(VGG16_CONVS, 0),
        "alex": _random_alex_state(1),
        "lin_vgg": _random_lins((64, 128, 256, 512, 512), 2),
        "lin_alex": _random_lins((64, 192, 384, 256, 256), 3),
    }
    paths = {}
    for name, state in content.items():
        paths[name] = root / f"{name}.pth"
        torch.save(state, paths[name])
    return paths


# ---------------------------------------------------------------------------------------------
# An independent LPIPS written straight from the paper/package description, on raw tensors.


def _ref_vgg16_taps(x: torch.Tensor, sd: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    taps, i = [], 0
    while i <= VGG16_TAPS[-1]:
        if i in VGG16_CONVS:
            x = F.relu(F.conv2d(x, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1))
            if i + 1 in VGG16_TAPS:
                taps.append(x)
            i += 2
        else:
            x = F.max_pool2d(x, 2, 2)
            i += 1
    return taps


def _ref_alex_taps(x: torch.Tensor, sd: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    taps = []
    for i, (_, _, k) in ALEX_CONVS.items():
        if i in (3, 6):
            x = F.max_pool2d(x, 3, 2)
        stride, pad = (4, 2) if i == 0 else (1, k // 2)
        x = F.relu(
            F.conv2d(x, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], stride=stride, padding=pad)
        )
        taps.append(x)
    return taps


def _ref_lpips(a: torch.Tensor, b: torch.Tensor, taps_fn, trunk: dict, lins: dict) -> torch.Tensor:  # type: ignore[no-untyped-def]
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    fa = taps_fn(((2 * a - 1) - shift) / scale, trunk)
    fb = taps_fn(((2 * b - 1) - shift) / scale, trunk)
    total = torch.zeros(a.shape[0])
    for k, (x, y) in enumerate(zip(fa, fb)):
        x = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        y = y / (y.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = lins[f"lin{k}.model.1.weight"].view(1, -1, 1, 1)
        total += ((x - y) ** 2 * w).sum(1).mean(dim=(1, 2))
    return total


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_matches_reference(files: dict[str, Path], net: str) -> None:
    trunk_path, lin_path = (
        (files["vgg16"], files["lin_vgg"]) if net == "vgg" else (files["alex"], files["lin_alex"])
    )
    model = LPIPS(net, backbone_weights=trunk_path, lin_weights=lin_path)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(4)
    size = 32 if net == "vgg" else 64  # the smallest that reaches every tap with a few pixels
    a, b = torch.rand(2, 3, size, size, generator=g), torch.rand(2, 3, size, size, generator=g)
    got = calculate_lpips(a, b, model=model)
    trunk, lins = torch.load(trunk_path, weights_only=True), torch.load(lin_path, weights_only=True)
    expected = _ref_lpips(a, b, _ref_vgg16_taps if net == "vgg" else _ref_alex_taps, trunk, lins)
    assert got.shape == (2,)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert (got > 0).all()
    torch.testing.assert_close(calculate_lpips(b, a, model=model), got, rtol=1e-5, atol=1e-7)  # symmetric
    assert torch.all(calculate_lpips(a, a, model=model).abs() < 1e-6)  # identity


def test_lpips_gradients_reach_the_input(files: dict[str, Path]) -> None:
    model = LPIPS("alex", files["alex"], files["lin_alex"])
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    model(x, torch.rand(1, 3, 64, 64)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in model.parameters())


def test_lpips_weight_errors(files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTOREKIT_CACHE", str(tmp_path))
    with pytest.raises(WeightsError) as info:
        LPIPS("vgg", backbone_weights=files["vgg16"])
    assert "lpips_v0.1_vgg.pth" in str(info.value) and str(tmp_path) in str(info.value)
    with pytest.raises(WeightsError, match=r"alexnet-owt-7be5be79\.pth"):
        LPIPS("alex", lin_weights=files["lin_alex"])
    with pytest.raises(WeightsError, match=r"lin_vgg\.pth.*shape mismatch"):
        LPIPS("alex", files["alex"], files["lin_vgg"])  # VGG heads on the AlexNet trunk
    with pytest.raises(ConfigError, match="'vgg' or 'alex'"):
        LPIPS("squeeze", files["alex"], files["lin_alex"])  # type: ignore[arg-type]


def test_lpips_reads_full_package_state_dict(files: dict[str, Path], tmp_path: Path) -> None:
    # A whole lpips.LPIPS state dict holds lin* and the lins.* aliases plus trunk keys.
    lins = torch.load(files["lin_alex"], weights_only=True)
    full = {
        **lins,
        **{k.replace("lin", "lins.", 1): v for k, v in lins.items()},
        "net.slice1.0.weight": torch.zeros(1),
    }
    torch.save(full, tmp_path / "full.pth")
    a, b = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 48, 48)
    m1 = LPIPS("alex", files["alex"], files["lin_alex"])
    m2 = LPIPS("alex", files["alex"], tmp_path / "full.pth")
    torch.testing.assert_close(calculate_lpips(a, b, model=m1), calculate_lpips(a, b, model=m2))


# ---------------------------------------------------------------------------------------------
# The trunks on their own


def test_vgg_key_layout_and_names(tmp_path: Path) -> None:
    vgg19 = VGGFeatures("vgg19", ["conv5_4"])
    expected = {}
    for i, (cout, cin) in VGG19_CONVS.items():
        expected[f"features.{i}.weight"] = (cout, cin, 3, 3)
        expected[f"features.{i}.bias"] = (cout,)
    assert {k: tuple(v.shape) for k, v in vgg19.state_dict().items()} == expected
    names = vgg_layer_names("vgg16")
    assert [names[i] for i in VGG16_CONVS] == [
        "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
        "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3",
    ]  # fmt: skip
    assert [names[i] for i in VGG16_TAPS] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    # A shallow extractor builds only what it needs and still loads the full file.
    shallow = VGGFeatures("vgg19", ["relu2_1"])
    assert len(shallow.features) == 7
    torch.save(_random_vgg_state(VGG19_CONVS, 5), tmp_path / "vgg19.pth")
    VGGFeatures("vgg19", ["relu2_1"], weights_path=tmp_path / "vgg19.pth")
    with pytest.raises(ConfigError, match="did you mean 'relu5_3'"):
        VGGFeatures("vgg16", ["relu5_4"])
    with pytest.raises(WeightsError, match=r"vgg19\.pth.*VGGFeatures"):
        VGGFeatures("vgg16", ["relu5_3"], weights_path=tmp_path / "vgg19.pth")


def test_vgg_normalisation_and_conv_outputs(tmp_path: Path) -> None:
    sd = _random_vgg_state(VGG19_CONVS, 6)
    torch.save(sd, tmp_path / "vgg19.pth")
    m = VGGFeatures("vgg19", ["conv1_1", "relu1_1"], range_norm=True, weights_path=tmp_path / "vgg19.pth")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    out = m(x)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    conv = F.conv2d(((x + 1) / 2 - mean) / std, sd["features.0.weight"], sd["features.0.bias"], padding=1)
    torch.testing.assert_close(out["conv1_1"], conv)
    assert (out["conv1_1"] < 0).any()  # not clobbered by an in-place ReLU
    torch.testing.assert_close(out["relu1_1"], F.relu(conv))


def test_alexnet_key_layout(files: dict[str, Path]) -> None:
    m = AlexNetFeatures(weights_path=files["alex"])
    expected = {}
    for i, (cout, cin, k) in ALEX_CONVS.items():
        expected[f"features.{i}.weight"] = (cout, cin, k, k)
        expected[f"features.{i}.bias"] = (cout,)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == expected
    outs = m(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 192, 384, 256, 256]

"""Discriminators: official key layouts, official checkpoints load by key, the forward matches the
reference written from the official code, spectral normalisation normalises.

Key names and shapes below were derived by hand from BasicSR's ``discriminator_arch.py`` (ESRGAN's
``VGGStyleDiscriminator``) and Real-ESRGAN's ``discriminator_arch.py`` (``UNetDiscriminatorSN``,
released as ``RealESRGAN_x4plus_netD.pth`` / ``RealESRGAN_x2plus_netD.pth``), not read back from
our modules. (The generators' release layouts — RealESRGAN_x4plus / x2plus, realesr-general-x4v3 —
are tested in test_archs.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import restorekit.archs  # noqa: F401  (registration)
from restorekit.archs.discriminators import recognize_unet_sn, recognize_vgg_style
from restorekit.registry import ARCHS
from restorekit.weights import load_into, read_state_dict

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small nets run faster on one thread


def _shapes(name: str, **kwargs: object) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = ARCHS.build({"type": name, **kwargs})
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_unet_sn_release_layout() -> None:
    shapes = _shapes("UNetDiscriminatorSN", num_in_ch=3, num_feat=64, skip_connection=True)
    expected = {
        "conv0.weight": (64, 3, 3, 3),
        "conv0.bias": (64,),
        "conv9.weight": (1, 64, 3, 3),
        "conv9.bias": (1,),
    }
    # (out, in, k) of the spectral-normalised convs; weight_u: [out], weight_v: [in·k·k]
    sn = {1: (128, 64, 4), 2: (256, 128, 4), 3: (512, 256, 4), 4: (256, 512, 3)}
    sn |= {5: (128, 256, 3), 6: (64, 128, 3), 7: (64, 64, 3), 8: (64, 64, 3)}
    for i, (o, c, k) in sn.items():
        expected[f"conv{i}.weight_orig"] = (o, c, k, k)
        expected[f"conv{i}.weight_u"] = (o,)
        expected[f"conv{i}.weight_v"] = (c * k * k,)
    assert shapes == expected  # 28 keys, no biases on the normalised convs, no bare 'weight'


def test_vgg_style_release_layout() -> None:
    shapes = _shapes("VGGStyleDiscriminator", num_in_ch=3, num_feat=64)
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = {"conv0_0.weight": (64, 3, 3, 3), "conv0_0.bias": (64,), "conv0_1.weight": (64, 64, 4, 4)}
    expected |= {f"bn0_1.{p}": (64,) if p != "num_batches_tracked" else () for p in bn}
    widths = [64, 128, 256, 512, 512]
    for i in range(1, 5):
        w, prev = widths[i], widths[i - 1]
        expected[f"conv{i}_0.weight"] = (w, prev, 3, 3)
        expected[f"conv{i}_1.weight"] = (w, w, 4, 4)
        for j in (0, 1):
            expected |= {f"bn{i}_{j}.{p}": (w,) if p != "num_batches_tracked" else () for p in bn}
    expected |= {"linear1.weight": (100, 512 * 16), "linear1.bias": (100,)}
    expected |= {"linear2.weight": (1, 100), "linear2.bias": (1,)}
    assert shapes == expected and len(shapes) == 60
    big = _shapes("VGGStyleDiscriminator", num_in_ch=3, num_feat=64, input_size=256)
    assert len(big) == 72 and big["conv5_1.weight"] == (512, 512, 4, 4) and big["bn5_0.weight"] == (512,)


class OfficialUNet(nn.Module):
    """The official module structure (attribute names, spectral_norm wrapping) with small width."""

    def __init__(self, f: int) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        self.conv0 = nn.Conv2d(3, f, 3, 1, 1)
        self.conv1 = sn(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = sn(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = sn(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        self.conv4 = sn(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = sn(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = sn(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        self.conv7 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)


def _reference_unet(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Real-ESRGAN's forward in eval mode, written functionally: W / σ with σ = uᵀ W v."""

    def conv(i: int, t: torch.Tensor, stride: int, pad: int) -> torch.Tensor:
        if f"conv{i}.weight_orig" in sd:
            w = sd[f"conv{i}.weight_orig"]
            sigma = torch.dot(sd[f"conv{i}.weight_u"], w.flatten(1) @ sd[f"conv{i}.weight_v"])
            return F.conv2d(t, w / sigma, None, stride, pad)
        return F.conv2d(t, sd[f"conv{i}.weight"], sd[f"conv{i}.bias"], stride, pad)

    def act(t: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(t, 0.2)

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

    x0 = act(conv(0, x, 1, 1))
    x1 = act(conv(1, x0, 2, 1))
    x2 = act(conv(2, x1, 2, 1))
    x3 = act(conv(3, x2, 2, 1))
    x4 = act(conv(4, up(x3), 1, 1)) + x2
    x5 = act(conv(5, up(x4), 1, 1)) + x1
    x6 = act(conv(6, up(x5), 1, 1)) + x0
    return conv(9, act(conv(8, act(conv(7, x6, 1, 1)), 1, 1)), 1, 1)


def test_released_unet_checkpoint_loads_by_key_and_matches_reference(tmp_path: Path) -> None:
    torch.manual_seed(0)
    official = OfficialUNet(4)
    with torch.no_grad():
        for _ in range(3):  # training-mode passes move u, v away from their initial values
            for m in official.modules():
                if hasattr(m, "weight_orig"):
                    m.train()(torch.rand(1, m.in_channels, 8, 8))
    sd = official.state_dict()
    torch.save({"params": sd}, tmp_path / "RealESRGAN_x4plus_netD.pth")  # BasicSR's wrapper
    loaded, note = read_state_dict(tmp_path / "RealESRGAN_x4plus_netD.pth")
    assert note is None  # only one wrapper key: no choice to report
    assert recognize_unet_sn(loaded) == {"num_in_ch": 3, "num_feat": 4, "skip_connection": True}
    ours = ARCHS.build({"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 4})
    assert load_into(ours, loaded, "strict", "netD") == []
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        out = ours.eval()(x)
    assert out.shape == (2, 1, 16, 16)
    torch.testing.assert_close(out, _reference_unet(sd, x), rtol=1e-5, atol=1e-6)


def _reference_vgg(sd: dict[str, torch.Tensor], x: torch.Tensor, stages: int) -> torch.Tensor:
    """BasicSR's VGGStyleDiscriminator forward in eval mode (BatchNorm with running statistics)."""

    def bn(name: str, t: torch.Tensor) -> torch.Tensor:
        p = {k: sd[f"{name}.{k}"] for k in ("running_mean", "running_var", "weight", "bias")}
        return F.batch_norm(t, p["running_mean"], p["running_var"], p["weight"], p["bias"], False, 0.0, 1e-5)

    def act(t: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(t, 0.2)

    feat = act(F.conv2d(x, sd["conv0_0.weight"], sd["conv0_0.bias"], 1, 1))
    feat = act(bn("bn0_1", F.conv2d(feat, sd["conv0_1.weight"], None, 2, 1)))
    for i in range(1, stages):
        feat = act(bn(f"bn{i}_0", F.conv2d(feat, sd[f"conv{i}_0.weight"], None, 1, 1)))
        feat = act(bn(f"bn{i}_1", F.conv2d(feat, sd[f"conv{i}_1.weight"], None, 2, 1)))
    feat = act(F.linear(feat.flatten(1), sd["linear1.weight"], sd["linear1.bias"]))
    return F.linear(feat, sd["linear2.weight"], sd["linear2.bias"])


@pytest.mark.parametrize("size", [128, 256])
def test_vgg_style_matches_reference_and_round_trips(size: int) -> None:
    torch.manual_seed(1)
    net = ARCHS.build({"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 2, "input_size": size})
    with torch.no_grad():
        for t in net.state_dict().values():  # non-trivial BN statistics and affine terms
            if t.is_floating_point():
                t.add_(torch.rand_like(t) * 0.1)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    kwargs = recognize_vgg_style(sd)
    assert kwargs == {"num_in_ch": 3, "num_feat": 2, "input_size": size}
    again = ARCHS.build({"type": "VGGStyleDiscriminator", **kwargs})
    load_into(again, sd, "strict", "netD")
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        out = again.eval()(x)
    assert out.shape == (2, 1)
    torch.testing.assert_close(out, _reference_vgg(sd, x, 5 if size == 128 else 6), rtol=1e-4, atol=1e-5)


def test_spectral_norm_drives_the_largest_singular_value_to_one() -> None:
    torch.manual_seed(0)
    net = ARCHS.build({"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 4}).train()
    with torch.no_grad():
        net(torch.rand(1, 3, 8, 8))
        first = torch.linalg.matrix_norm(net.conv3.weight.flatten(1), ord=2).item()
        for _ in range(150):  # one power iteration per training-mode forward
            net(torch.rand(1, 3, 8, 8))
    sigma = torch.linalg.matrix_norm(net.conv3.weight.flatten(1), ord=2).item()
    assert abs(sigma - 1) < 2e-3 and abs(sigma - 1) < abs(first - 1)
    assert net.conv3.weight_u.requires_grad is False  # buffers: saved, never optimised


def test_wrong_input_sizes_are_reported() -> None:
    vgg = ARCHS.build({"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 2})
    with pytest.raises(ValueError, match=r"needs 128×128 inputs, got \(96, 96\)"):
        vgg(torch.rand(1, 3, 96, 96))
    unet = ARCHS.build({"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 2})
    with pytest.raises(ValueError, match="divisible by 8"):
        unet(torch.rand(1, 3, 12, 12))
    with pytest.raises(Exception, match="input_size"):
        ARCHS.build({"type": "VGGStyleDiscriminator", "input_size": 192})

"""GAN losses against closed forms (BasicSR's semantics), the regularisers, and the VGG perceptual loss.

Expected numbers are written out from the definitions (log-sigmoid, squares, hinge margins,
Gram matrices normalised by C·H·W) rather than read back from the modules.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import restorekit.losses  # noqa: F401  (registration)
from restorekit.archs.vgg import VGGFeatures
from restorekit.errors import ConfigError, WeightsError
from restorekit.losses.gan import (
    GANLoss,
    gradient_penalty,
    r1_penalty,
    ragan_discriminator_loss,
    ragan_generator_loss,
)
from restorekit.losses.perceptual import PerceptualLoss
from restorekit.registry import LOSSES

PRED = torch.tensor([[-1.0], [2.0]])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


@pytest.mark.parametrize(
    ("gan_type", "real", "fake"),
    [
        # BCE with logits: -log σ(x) = softplus(-x) for the real label, softplus(x) for the fake one
        ("vanilla", (softplus(1.0) + softplus(-2.0)) / 2, (softplus(-1.0) + softplus(2.0)) / 2),
        ("ragan", (softplus(1.0) + softplus(-2.0)) / 2, (softplus(-1.0) + softplus(2.0)) / 2),
        ("lsgan", ((-1 - 1) ** 2 + (2 - 1) ** 2) / 2, ((-1) ** 2 + 2**2) / 2),
        ("wgan", -0.5, 0.5),
        ("wgan_softplus", (softplus(1.0) + softplus(-2.0)) / 2, (softplus(-1.0) + softplus(2.0)) / 2),
    ],
)
def test_labelled_losses_match_closed_forms(gan_type: str, real: float, fake: float) -> None:
    crit = GANLoss(gan_type, loss_weight=0.25)
    for is_disc, w in ((True, 1.0), (False, 0.25)):  # loss_weight scales only the generator's loss
        assert crit(PRED, True, is_disc=is_disc).item() == pytest.approx(real * w, rel=1e-6)
        assert crit(PRED, False, is_disc=is_disc).item() == pytest.approx(fake * w, rel=1e-6)


def test_hinge_margins_for_d_and_plain_critic_for_g() -> None:
    crit = GANLoss("hinge", loss_weight=0.1)
    assert crit(PRED, True, is_disc=True).item() == pytest.approx((2 + 0) / 2)  # relu(1 - x)
    assert crit(PRED, False, is_disc=True).item() == pytest.approx((0 + 3) / 2)  # relu(1 + x)
    assert crit(PRED, True, is_disc=False).item() == pytest.approx(-0.5 * 0.1)  # -mean(x) · weight


def test_label_values_and_alias() -> None:
    smooth = GANLoss("vanilla", real_label_val=0.9, fake_label_val=0.1)
    x = 0.3
    expected = -(0.9 * math.log(1 / (1 + math.exp(-x))) + 0.1 * math.log(1 - 1 / (1 + math.exp(-x))))
    assert smooth(torch.tensor([x]), True).item() == pytest.approx(expected, rel=1e-6)
    ls = GANLoss("lsgan", real_label_val=0.9)
    assert ls(torch.tensor([0.5]), True).item() == pytest.approx(0.16)
    dash, under = GANLoss("wgan-softplus"), GANLoss("wgan_softplus")
    assert dash.gan_type == "wgan_softplus"
    assert torch.equal(dash(PRED, False), under(PRED, False))
    assert GANLoss("ragan").relativistic and not GANLoss("vanilla").relativistic


def test_relativistic_average_forms() -> None:
    crit = GANLoss("ragan", loss_weight=2.0)
    real = torch.tensor([1.0, 3.0])  # mean 2
    fake = torch.tensor([-1.0, 0.0])  # mean -0.5

    def bce(x: torch.Tensor, label: float) -> float:
        return F.binary_cross_entropy_with_logits(x, torch.full_like(x, label)).item()

    g = ragan_generator_loss(crit, real, fake).item()
    assert g == pytest.approx(2.0 * (bce(real + 0.5, 0.0) + bce(fake - 2.0, 1.0)) / 2, rel=1e-6)
    d_real = ragan_discriminator_loss(crit, real, fake, True).item()
    d_fake = ragan_discriminator_loss(crit, fake, real, False).item()
    assert d_real == pytest.approx(0.5 * bce(real + 0.5, 1.0), rel=1e-6)  # D's loss is never weighted
    assert d_fake == pytest.approx(0.5 * bce(fake - 2.0, 0.0), rel=1e-6)


def test_gan_loss_errors_and_registry() -> None:
    built = LOSSES.build({"type": "GANLoss", "gan_type": "lsgan", "loss_weight": "0.5"})
    assert isinstance(built, GANLoss) and built.loss_weight == 0.5
    with pytest.raises(ConfigError, match="gan_type: expected one of 'vanilla'"):
        LOSSES.build({"type": "GANLoss", "gan_type": "relativistic"})
    with pytest.raises(ConfigError, match="gan_type"):
        GANLoss("nope")  # type: ignore[arg-type]


def test_r1_penalty_of_a_linear_critic() -> None:
    w = torch.tensor([0.5, -2.0, 1.0]).view(1, 3, 1, 1).requires_grad_(True)  # D's parameter
    x = torch.rand(4, 3, 2, 2, requires_grad=True)
    pred = (x * w).flatten(1).sum(1)  # ∇_x D = w at every pixel
    penalty = r1_penalty(pred, x)
    assert penalty.item() == pytest.approx(4 * (0.25 + 4.0 + 1.0), rel=1e-6)  # 4 pixels per channel
    penalty.backward()  # create_graph: the penalty trains D; d(4·Σw²)/dw = 8w
    torch.testing.assert_close(w.grad, 8 * w.detach())


def test_gradient_penalty_of_a_linear_critic() -> None:
    w = torch.full((1, 1, 2, 2), 0.25)  # ‖∇‖ = sqrt(4 · 0.0625) = 0.5 whatever the interpolate

    class Linear(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x * w).flatten(1).sum(1, keepdim=True)

    real, fake = torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2)
    assert gradient_penalty(Linear(), real, fake).item() == pytest.approx((0.5 - 1) ** 2, rel=1e-6)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)  # ‖∇·m‖ = sqrt(2)/4, divided by mean 0.5
    expected = (math.sqrt(2) / 4 - 1) ** 2 / 0.5
    assert gradient_penalty(Linear(), real, fake, weight=mask).item() == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------------------------ perceptual


def fake_vgg19_file(folder: Path, depth: int = 7) -> Path:
    """A torchvision-layout VGG19 file (random values) holding ``features.0 .. depth-1``."""
    torch.manual_seed(0)
    net = VGGFeatures("vgg19", layers=["relu2_1"], use_input_norm=False)  # builds features[:7]
    state = {f"features.{k}": v.clone() for k, v in net.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # present in the real file, ignored
    path = folder / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return path


def test_perceptual_and_style_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_vgg19_file(tmp_path)
    monkeypatch.setenv("RESTOREKIT_CACHE", str(tmp_path))
    layers = {"conv1_2": 0.5, "relu2_1": 2.0}
    loss = LOSSES.build(
        {"type": "PerceptualLoss", "layer_weights": layers, "perceptual_weight": 3.0, "style_weight": 10.0}
    )
    ref = VGGFeatures("vgg19", layers=list(layers), weights_path=tmp_path / "vgg19-dcbb9e9d.pth")
    x, gt = torch.rand(2, 3, 8, 8, requires_grad=True), torch.rand(2, 3, 8, 8)
    fx, fg = ref(x), ref(gt)

    def gram(f: torch.Tensor) -> torch.Tensor:
        _, c, h, w = f.shape
        return torch.einsum("nchw,ndhw->ncd", f, f) / (c * h * w)

    percep = 3.0 * sum(w * (fx[k] - fg[k]).abs().mean() for k, w in layers.items())
    style = 10.0 * sum(w * (gram(fx[k]) - gram(fg[k])).abs().mean() for k, w in layers.items())
    p, s = loss.components(x, gt)
    torch.testing.assert_close(p, percep, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(s, style, rtol=1e-5, atol=1e-9)
    total = loss(x, gt)
    torch.testing.assert_close(total, percep + style, rtol=1e-5, atol=1e-7)
    total.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in loss.parameters())  # VGG frozen


def test_perceptual_l2_fro_and_zero_weights(tmp_path: Path) -> None:
    path = str(fake_vgg19_file(tmp_path))
    x, gt = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    ref = VGGFeatures("vgg19", layers=["conv1_1"], weights_path=path)
    diff = ref(x)["conv1_1"] - ref(gt)["conv1_1"]
    l2 = PerceptualLoss({"conv1_1": 1.0}, criterion="l2", weights_path=path)
    torch.testing.assert_close(l2(x, gt), diff.pow(2).mean(), rtol=1e-5, atol=1e-7)
    fro = PerceptualLoss({"conv1_1": 1.0}, criterion="fro", weights_path=path)
    torch.testing.assert_close(fro(x, gt), diff.pow(2).sum().sqrt(), rtol=1e-5, atol=1e-6)
    off = PerceptualLoss({"conv1_1": 1.0}, perceptual_weight=0.0, weights_path=path)
    assert off.components(x, gt) == (None, None) and off(x, gt).item() == 0.0


def test_perceptual_loss_needs_the_weights_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTOREKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsError) as info:
        LOSSES.build({"type": "PerceptualLoss", "layer_weights": {"conv5_4": 1.0}})
    msg = str(info.value)
    assert "vgg19-dcbb9e9d.pth" in msg and str(tmp_path / "cache") in msg and "weights_path" in msg
    with pytest.raises(WeightsError, match="does not exist"):
        PerceptualLoss({"conv5_4": 1.0}, weights_path=str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match=r"layer_weights\.conv5_5: vgg19 has no such layer"):
        PerceptualLoss({"conv5_5": 1.0}, weights_path=str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match="criterion"):
        LOSSES.build({"type": "PerceptualLoss", "layer_weights": {"conv5_4": 1}, "criterion": "l3"})

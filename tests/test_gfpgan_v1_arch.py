"""GFPGANv1 (paper model) and FacialComponentDiscriminator: keys, forward vs GFPGAN, prior loading,
freezing, detection.

Reference numbers come from GFPGAN 7552a77 ``gfpgan/archs/gfpganv1_arch.py`` on BasicSR 8d56e3a
with native ops, models filled by ``fill`` and inputs from ``seeded`` (see test_stylegan2_arch's
docstring for the rule and how the numbers were produced).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import restorekit.archs  # noqa: F401  (registers the architectures)
from restorekit.archs.detect import build_recognised, detect_arch
from restorekit.archs.gfpgan_v1 import FacialComponentDiscriminator, GFPGANv1, recognize
from restorekit.archs.info import ArchInfo, arch_info
from restorekit.archs.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from restorekit.errors import WeightsError
from restorekit.weights import load_into, read_state_dict
from test_stylegan2_arch import (
    CUDA,
    assert_summary,
    fill,
    meta_layout,
    read_key_list,
    save_params_ema,
    seeded,
)

pytestmark = pytest.mark.usefixtures("one_thread")

RELEASE = dict(
    out_size=512,
    num_style_feat=512,
    channel_multiplier=1,
    decoder_load_path=None,
    fix_decoder=True,
    num_mlp=8,
    input_is_latent=True,
    different_w=True,
    narrow=1,
    sft_half=True,
)
# small versions of the release (G32) and of the other branches: one w, SFT on all channels, mapping
G32 = dict(
    out_size=32,
    num_style_feat=64,
    channel_multiplier=1,
    num_mlp=2,
    input_is_latent=True,
    different_w=True,
    narrow=0.5,
    sft_half=True,
)
G64 = dict(
    out_size=64,
    num_style_feat=32,
    channel_multiplier=2,
    num_mlp=2,
    input_is_latent=False,
    different_w=False,
    narrow=0.25,
    sft_half=False,
)


def test_release_layouts_equal_the_reference_key_lists() -> None:
    layout = meta_layout(lambda: GFPGANv1(**RELEASE))
    assert layout == read_key_list("gfpganv1_512_keys.txt")
    assert len(layout) == 285 and ("final_linear.weight", (16 * 512, 256 * 16)) in layout
    assert meta_layout(FacialComponentDiscriminator) == read_key_list(
        "facial_component_discriminator_keys.txt"
    )


def test_release_layout_is_recognised_as_released() -> None:
    with torch.device("meta"):
        sd = GFPGANv1(**RELEASE).state_dict()
    name, kwargs = detect_arch({"params_ema": sd})
    assert name == "GFPGANv1"
    assert kwargs == {**RELEASE, "resample_kernel": (1, 3, 3, 1), "lr_mlp": 0.01}
    with torch.device("meta"):
        comp = FacialComponentDiscriminator().state_dict()
    assert detect_arch(comp) == ("FacialComponentDiscriminator", {})


@torch.no_grad()
@pytest.mark.parametrize(
    ("cfg", "image", "first_rgb", "last_rgb"),
    [
        (
            G32,
            (-9104.428651, 9105.847628, [-0.9075255, -0.9865772, -0.8519501]),
            (83.002691, 232.382532, [0.654188, -0.3785272, -0.2579586]),
            (287.024544, 5025.461884, [0.6196387, 0.9849277, -0.7954419]),
        ),
        (
            G64,
            (-48443.714468, 48443.806456, [-2.0334694, -1.5368426, -2.2286713]),
            (80.646617, 99.786111, [0.0062129, 0.3866128, 0.1567291]),
            (-26593.117403, 32323.894592, [0.0634923, -1.4109507, 0.2975665]),
        ),
    ],
)
def test_forward_equals_the_reference(cfg: dict[str, Any], image: Any, first_rgb: Any, last_rgb: Any) -> None:
    net = fill(GFPGANv1(**cfg))
    size = cfg["out_size"]
    x = seeded(2, 3, size, size)
    out, rgbs = net(x, randomize_noise=False)
    assert out.shape == (2, 3, size, size)
    assert [r.shape[-1] for r in rgbs] == [2**i for i in range(3, net.log_size + 1)]
    assert_summary(out, image)
    assert_summary(rgbs[0], first_rgb)
    assert_summary(rgbs[-1], last_rgb)
    again, none = net(x, return_rgb=False, randomize_noise=False, weight=0.5)  # unknown kwargs: ignored
    assert none == [] and torch.equal(again, out)
    noisy, _ = net(x)  # fresh noise (the filled noise strengths are not zero)
    assert (noisy - out).abs().max() > 1e-4
    cl, _ = net(x.contiguous(memory_format=torch.channels_last), randomize_noise=False)
    torch.testing.assert_close(cl, out, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_component_discriminator_equals_the_reference() -> None:
    d = fill(FacialComponentDiscriminator())
    x = seeded(2, 3, 20, 20, seed=5)
    out, feats = d(x, return_feats=True)
    assert out.shape == (2, 1, 5, 5) and [f.shape[1] for f in feats] == [128, 256]
    assert_summary(out, (37.147145, 37.147145, [0.0708902, 0.3603865, 0.474246]))
    assert_summary(feats[0], (6193.383514, 8597.520086, [-0.0462856, 0.0121143, 0.4325042]))
    assert_summary(feats[1], (2487.323965, 3484.141824, [-0.0946179, -0.0193163, 0.1128063]))
    plain, none = d(x)
    assert none is None and torch.equal(plain, out)


def decoder_of(cfg: dict[str, Any]) -> StyleGAN2Generator:
    keys = ("out_size", "num_style_feat", "num_mlp", "channel_multiplier", "narrow")
    return StyleGAN2Generator(**{k: cfg[k] for k in keys})


def test_decoder_load_path_reads_params_ema_strictly(tmp_path: Path) -> None:
    prior = fill(decoder_of(G32))
    other = decoder_of(G32)  # a different init under "params": must not be the one loaded
    path = tmp_path / "prior.pth"
    torch.save({"params": other.state_dict(), "params_ema": prior.state_dict()}, path)
    net = GFPGANv1(**G32, decoder_load_path=str(path))
    for key, value in prior.state_dict().items():
        assert torch.equal(net.stylegan_decoder.state_dict()[key], value), key
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError) as err:
        GFPGANv1(**G32, decoder_load_path=str(missing))
    message = str(err.value)
    assert "network_g.decoder_load_path" in message and str(missing) in message and "\n" not in message
    wrong = save_params_ema(StyleGAN2Discriminator(32, narrow=0.5), tmp_path / "d.pth")
    with pytest.raises(WeightsError, match=r"network_g\.decoder_load_path: .*d\.pth") as err:
        GFPGANv1(**G32, decoder_load_path=str(wrong))
    assert "\n" not in str(err.value)


def test_fix_decoder_freezes_only_the_decoder() -> None:
    net = GFPGANv1(**G32)
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {f"stylegan_decoder.{n}" for n, _ in net.stylegan_decoder.named_parameters()} and frozen
    assert all(p.requires_grad for n, p in net.named_parameters() if not n.startswith("stylegan_decoder."))
    assert all(p.requires_grad for p in GFPGANv1(**G32, fix_decoder=False).parameters())


@pytest.mark.parametrize("cfg", [G32, G64])
def test_recognised_and_strict_round_trip(cfg: dict[str, Any], tmp_path: Path) -> None:
    net = fill(GFPGANv1(**cfg))
    path = save_params_ema(net, tmp_path / "g.pth")
    state, _ = read_state_dict(path)
    name, kwargs = detect_arch(state, str(path))
    assert name == "GFPGANv1"
    fixed = {"resample_kernel": (1, 3, 3, 1), "decoder_load_path": None, "fix_decoder": True, "lr_mlp": 0.01}
    assert kwargs == {**cfg, **fixed, "input_is_latent": True}  # input_is_latent: the release's, assumed
    overrides = {"input_is_latent": cfg["input_is_latent"]} if not cfg["input_is_latent"] else {}
    rebuilt, notes = build_recognised(state, str(path), overrides)
    if overrides:
        assert notes == [] or "input_is_latent" not in notes[0]
    else:
        assert "input_is_latent=True" in notes[0] and "resample_kernel" in notes[0]
    x = seeded(1, 3, cfg["out_size"], cfg["out_size"], seed=3)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, randomize_noise=False)[0], net(x, randomize_noise=False)[0])
    load_into(GFPGANv1(**cfg), state, "strict", path)


def test_clean_layouts_are_rejected() -> None:
    with torch.device("meta"):
        sd = GFPGANv1(**G32).state_dict()
    assert recognize(sd) is not None
    # GFPGANv1Clean: plain nn.Conv2d first conv (weight and bias on the conv itself)
    clean = {k: v for k, v in sd.items() if not k.startswith("conv_body_first.")}
    clean |= {
        "conv_body_first.weight": sd["conv_body_first.0.weight"],
        "conv_body_first.bias": sd["conv_body_first.1.bias"],
    }
    assert recognize(clean) is None
    # a decoder with the clean generator's bias placement
    renamed = {k.replace("style_conv1.activate.bias", "style_conv1.bias"): v for k, v in sd.items()}
    assert recognize(renamed) is None
    assert recognize({k: v for k, v in sd.items() if k != "final_linear.weight"}) is None


def test_arch_info() -> None:
    assert arch_info({"type": "GFPGANv1", "out_size": 512}) == ArchInfo(
        "face", 3, 3, input_size=512, value_range=(-1, 1), supports_channels_last=False, tileable=False
    )
    assert arch_info({"type": "FacialComponentDiscriminator"}) == ArchInfo(
        "discriminator", 3, 1, value_range=(-1, 1), tileable=False
    )


@torch.no_grad()
def test_low_precision_follows_the_input_on_cpu() -> None:
    """Kernels, noise and biases take the input's dtype: a bf16 model gives bf16 outputs near fp32,
    and under autocast the fp32 parameters meet bf16 activations without dtype errors."""
    cfg = dict(
        out_size=16, num_style_feat=16, num_mlp=1, narrow=0.125, input_is_latent=True, different_w=True
    )
    net = fill(GFPGANv1(**cfg, sft_half=True))
    x = seeded(2, 3, 16, 16)
    ref, _ = net(x, randomize_noise=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto, _ = net(x, randomize_noise=False)
    low, rgbs = net.to(torch.bfloat16)(x.bfloat16(), randomize_noise=False)
    assert low.dtype == torch.bfloat16 and all(r.dtype == torch.bfloat16 for r in rgbs)
    for out in (auto, low):
        assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


@CUDA
def test_cuda_matches_cpu_and_runs_half() -> None:
    net = fill(GFPGANv1(**G32))
    x = seeded(2, 3, 32, 32)
    with torch.no_grad():
        ref, _ = net(x, randomize_noise=False)
        net = net.cuda()
        out, _ = net(x.cuda(), randomize_noise=False)
        torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)
        with torch.autocast("cuda", dtype=torch.float16):
            half, rgbs = net(x.cuda())
        assert torch.isfinite(half).all() and all(torch.isfinite(r).all() for r in rgbs)
        out16, _ = net.half()(x.cuda().half(), randomize_noise=False)
        assert out16.dtype == torch.float16 and (out16.float().cpu() - ref).abs().max() < 0.05
        d = fill(FacialComponentDiscriminator()).cuda().half()
        assert torch.isfinite(d(seeded(2, 3, 20, 20).cuda().half())[0]).all()

"""Every registered architecture runs, and the SR families match the official key layouts.

Expected key counts and shapes below were derived by hand from the official code (BasicSR
``edsr_arch``/``srresnet_arch``/``rrdbnet_arch``, Real-ESRGAN ``srvgg_arch``, JiahuiYu
``wdsr_a``/``wdsr_b``), not read back from our modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import restorekit.archs  # noqa: F401  (registers the architectures)
from conftest import shipped_archs
from restorekit.archs.info import arch_info
from restorekit.archs.layers import Upsample, WeightNormConv2d, pixel_unshuffle
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

SRC = Path(__file__).resolve().parents[1] / "src"


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small nets run faster on one thread


# Small arguments per registered name: every registered architecture must appear here.
SMALL_KWARGS: dict[str, list[dict[str, Any]]] = {
    # the face family (GFPGAN): restorers of aligned faces, their discriminators and ArcFace
    "StyleGAN2Generator": [dict(out_size=16, num_style_feat=16, num_mlp=2, narrow=0.0625)],
    "StyleGAN2Discriminator": [dict(out_size=16, narrow=0.0625)],
    "GFPGANv1": [
        dict(
            out_size=16,
            num_style_feat=16,
            num_mlp=1,
            narrow=0.125,
            input_is_latent=True,
            different_w=True,
            sft_half=True,
        ),
    ],
    "FacialComponentDiscriminator": [{}],
    "GFPGANv1Clean": [
        dict(
            out_size=16,
            num_style_feat=8,
            num_mlp=1,
            narrow=0.0625,
            different_w=True,
            sft_half=True,
            input_is_latent=True,
        ),
    ],
    "StyleGAN2GeneratorClean": [dict(out_size=16, num_style_feat=8, num_mlp=1, narrow=0.0625)],
    "ResNetArcFace": [
        dict(block="IRBlock", layers=(1, 1, 1, 1), use_se=False),
        dict(block="IRBlock", layers=(1, 1, 1, 1), use_se=True),
    ],
    "RestoreFormer": [
        dict(
            n_embed=64,
            embed_dim=16,
            ch=32,
            ch_mult=(1, 2),
            num_res_blocks=1,
            resolution=32,
            z_channels=32,
            head_size=4,
        ),
    ],
    "ECBSR": [
        dict(num_in_ch=3, num_out_ch=3, num_block=1, num_channel=4, with_idt=True, act_type="rrelu", scale=2),
        dict(num_in_ch=1, num_out_ch=1, num_block=2, num_channel=8, act_type="prelu", scale=3),
    ],
    "EDSR": [
        dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=2),
        dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=3, res_scale=0.1),
        dict(num_in_ch=1, num_out_ch=1, num_feat=4, num_block=1, upscale=4, rgb_mean=(0.5,)),
    ],
    "LightweightGANDiscriminator": [
        dict(image_size=32, fmap_max=8),
        dict(image_size=64, fmap_max=8, transparent=True, disc_output_size=1, attn_res_layers=(32,)),
    ],
    "LightweightGANGenerator": [
        dict(image_size=32, latent_dim=8, fmap_max=8),
        dict(image_size=128, latent_dim=8, fmap_max=8, greyscale=True, freq_chan_attn=True),
        dict(image_size=32, latent_dim=8, fmap_max=8, transparent=True, attn_res_layers=(8,)),
    ],
    "MSRResNet": [
        dict(num_feat=8, num_block=2, upscale=2),
        dict(num_feat=8, num_block=1, upscale=3),
        dict(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=1, upscale=4),
    ],
    "RCAN": [
        dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_group=2, num_block=1, upscale=2),
        dict(
            num_in_ch=1,
            num_out_ch=1,
            num_feat=8,
            num_group=1,
            num_block=2,
            squeeze_factor=4,
            upscale=3,
            rgb_mean=(0.5,),
        ),
    ],
    "RIDNet": [
        dict(in_channels=3, mid_channels=16, out_channels=3, num_block=1),
        dict(in_channels=3, mid_channels=16, out_channels=3, num_block=2, img_range=1.0, rgb_mean=(0.5,)),
    ],
    "RRDBNet": [
        dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=1, num_grow_ch=4),
        dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=8, num_block=1, num_grow_ch=4),
        dict(num_in_ch=1, num_out_ch=1, scale=1, num_feat=8, num_block=2, num_grow_ch=4),
    ],
    "SRVGGNetCompact": [
        dict(num_feat=8, num_conv=2, upscale=4, act_type="prelu"),
        dict(num_feat=8, num_conv=1, upscale=2, act_type="leakyrelu"),
        dict(num_in_ch=1, num_out_ch=1, num_feat=4, num_conv=0, upscale=3, act_type="relu"),
    ],
    "SwinIR": [
        dict(
            img_size=8,
            embed_dim=8,
            depths=(2,),
            num_heads=(2,),
            window_size=4,
            mlp_ratio=2.0,
            upscale=2,
            upsampler="pixelshuffle",
        ),
        dict(
            img_size=8,
            embed_dim=8,
            depths=(1, 2),
            num_heads=(2, 1),
            window_size=2,
            upscale=3,
            upsampler="pixelshuffledirect",
            resi_connection="3conv",
        ),
        dict(
            img_size=8,
            embed_dim=8,
            depths=(2,),
            num_heads=(4,),
            window_size=4,
            upscale=4,
            upsampler="nearest+conv",
            ape=True,
            patch_norm=False,
        ),
        dict(
            img_size=8,
            embed_dim=8,
            depths=(2,),
            num_heads=(2,),
            window_size=4,
            upscale=1,
            upsampler="",
            img_range=255.0,
            qkv_bias=False,
        ),
    ],
    "UNetDiscriminatorSN": [
        dict(num_in_ch=3, num_feat=4),
        dict(num_in_ch=1, num_feat=4, skip_connection=False),
    ],
    "VGGStyleDiscriminator": [
        dict(num_in_ch=3, num_feat=2, input_size=128),
        dict(num_in_ch=1, num_feat=2, input_size=256),
    ],
    "WDSR_A": [
        dict(num_feat=8, num_block=2, upscale=2),
        dict(
            num_in_ch=1,
            num_out_ch=1,
            num_feat=6,
            num_block=1,
            upscale=3,
            expansion_ratio=2.5,
            rgb_mean=(0.5,),
        ),
    ],
    "WDSR_B": [
        dict(num_feat=10, num_block=2, upscale=4),
        dict(num_feat=8, num_block=1, upscale=2, expansion_ratio=3.0, low_rank_ratio=0.5, res_scale=0.1),
    ],
}

# SwinIR's residual stream overflows fp16 with the official weights (see archs/swinir.py)
FP16_UNSAFE = {"SwinIR", "GFPGANv1Clean", "StyleGAN2GeneratorClean"}  # GFPGAN#50: clean arch + .half()
#: 5-D modulated-conv weights cannot be made channels_last (channels_last *inputs* work)
NO_CHANNELS_LAST = {"StyleGAN2Generator", "GFPGANv1", "StyleGAN2GeneratorClean", "GFPGANv1Clean"}


def first_output(out: Any) -> torch.Tensor:
    """A face restorer returns (image, extras) as GFPGAN's networks do; the image comes first."""
    return out[0] if isinstance(out, tuple) else out


def logits_of(out: Any) -> torch.Tensor:
    """A discriminator's logits as ``(batch, 1, ...)``: a tuple output (lightweight-gan's D also
    returns side logits and reconstructions) holds them first, flattened per image."""
    return out[0].reshape(out[0].shape[0], 1, -1) if isinstance(out, tuple) else out


def test_every_registered_arch_has_small_kwargs() -> None:
    missing = [name for name in shipped_archs() if name not in SMALL_KWARGS]
    assert not missing, f"add small test kwargs for: {missing}"


@pytest.mark.parametrize("name", shipped_archs())
def test_forward_shape_and_capabilities(name: str) -> None:
    assert name in SMALL_KWARGS, f"no small test kwargs for registered arch {name!r}"
    for kwargs in SMALL_KWARGS[name]:
        torch.manual_seed(0)
        model = ARCHS.build({"type": name, **kwargs}).eval()
        info = arch_info(model)
        assert info.supports_fp16 is (name not in FP16_UNSAFE)
        assert info.supports_channels_last is (name not in NO_CHANNELS_LAST)
        if info.purpose in ("face", "feature"):  # fixed-size input: aligned faces, ArcFace's 128² gray
            side = info.input_size
            assert side is not None and info.tileable is False
            x = torch.rand(2, info.in_channels, side, side) * 2 - 1
            with torch.no_grad():
                y = first_output(model(x))
                y_cl = first_output(model(x.contiguous(memory_format=torch.channels_last)))
            expected = (2, info.out_channels) + ((side, side) if info.purpose == "face" else ())
            assert y.shape == expected and torch.isfinite(y).all(), (name, kwargs)
            torch.testing.assert_close(y_cl, y, rtol=1e-4, atol=1e-5)
            continue
        if info.purpose == "generator":  # maps latent vectors to images
            assert info.latent_dim is not None
            z = torch.randn(2, info.latent_dim)
            with torch.no_grad():
                model.train()(z)  # BatchNorm statistics
                y = model.eval()(z)
                y_cl = model.to(memory_format=torch.channels_last)(z) if info.supports_channels_last else y
            assert y.shape[:2] == (2, info.out_channels) and torch.isfinite(y).all(), (name, kwargs)
            torch.testing.assert_close(y_cl, y, rtol=1e-4, atol=1e-5)
            continue
        if info.purpose == "discriminator":  # scores images instead of restoring them
            side = info.input_size or 16
            x = torch.rand(2, info.in_channels, side, side)
            with torch.no_grad():
                model.train()(x)  # settle spectral-norm power iteration / BatchNorm statistics
                y = logits_of(model.eval()(x))
                y_cl = logits_of(model(x.contiguous(memory_format=torch.channels_last)))
            assert y.shape[:2] == (2, 1) and torch.isfinite(y).all(), (name, kwargs)
            torch.testing.assert_close(y_cl, y, rtol=1e-4, atol=1e-5)
            continue
        scale = model.scale
        assert isinstance(scale, int) and scale >= 1
        in_ch = kwargs.get("num_in_ch", 3)  # every family here defaults to RGB
        x = torch.rand(2, in_ch, 8, 8)
        with torch.no_grad():
            y = model(x)
            y_cl = model(x.contiguous(memory_format=torch.channels_last))
        assert y.shape == (2, kwargs.get("num_out_ch", 3), 8 * scale, 8 * scale), (name, kwargs)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(y_cl, y, rtol=1e-4, atol=1e-5)


def _shapes(name: str, **kwargs: Any) -> dict[str, tuple[int, ...]]:
    """Build on the meta device (no memory) and return key → shape."""
    with torch.device("meta"):
        model = ARCHS.build({"type": name, **kwargs})
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _check(shapes: dict[str, tuple[int, ...]], count: int, expected: dict[str, tuple[int, ...]]) -> None:
    assert len(shapes) == count
    for key, shape in expected.items():
        assert shapes.get(key) == shape, (key, shapes.get(key), shape)


def test_edsr_official_layouts() -> None:
    # M x4 (f64 b16): conv_first 2 + body 16*4 + conv_after_body 2 + 2 upsample convs * 2 + conv_last 2
    m4 = _shapes("EDSR", num_in_ch=3, num_out_ch=3)
    _check(
        m4,
        74,
        {
            "conv_first.weight": (64, 3, 3, 3),
            "body.15.conv2.weight": (64, 64, 3, 3),
            "body.15.conv2.bias": (64,),
            "conv_after_body.weight": (64, 64, 3, 3),
            "upsample.0.weight": (256, 64, 3, 3),
            "upsample.2.weight": (256, 64, 3, 3),
            "conv_last.weight": (3, 64, 3, 3),
        },
    )
    assert "mean" not in m4  # BasicSR keeps the mean out of the state dict
    large = _shapes("EDSR", num_in_ch=3, num_out_ch=3, num_feat=256, num_block=32, res_scale=0.1)
    _check(large, 138, {"body.31.conv1.weight": (256, 256, 3, 3), "upsample.2.weight": (1024, 256, 3, 3)})
    m3 = _shapes("EDSR", num_in_ch=3, num_out_ch=3, upscale=3)
    _check(m3, 72, {"upsample.0.weight": (576, 64, 3, 3)})
    assert "upsample.2.weight" not in m3


def test_msrresnet_official_layouts() -> None:
    x4 = _shapes("MSRResNet")
    _check(
        x4,
        74,
        {
            "conv_first.weight": (64, 3, 3, 3),
            "body.15.conv1.weight": (64, 64, 3, 3),
            "upconv1.weight": (256, 64, 3, 3),
            "upconv2.weight": (256, 64, 3, 3),
            "conv_hr.weight": (64, 64, 3, 3),
            "conv_last.bias": (3,),
        },
    )
    x3 = _shapes("MSRResNet", upscale=3)
    _check(x3, 72, {"upconv1.weight": (576, 64, 3, 3)})
    x2 = _shapes("MSRResNet", upscale=2)
    _check(x2, 72, {"upconv1.weight": (256, 64, 3, 3)})
    assert "upconv2.weight" not in x2


def test_rrdbnet_official_layouts() -> None:
    # 2 (conv_first) + 23 blocks * 3 RDBs * 5 convs * 2 + 5 convs * 2 (body, up1, up2, hr, last)
    x4 = _shapes("RRDBNet", num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)
    _check(
        x4,
        702,
        {
            "conv_first.weight": (64, 3, 3, 3),
            "body.0.rdb1.conv1.weight": (32, 64, 3, 3),
            "body.0.rdb1.conv2.weight": (32, 96, 3, 3),
            "body.22.rdb3.conv5.weight": (64, 192, 3, 3),
            "conv_body.weight": (64, 64, 3, 3),
            "conv_up2.weight": (64, 64, 3, 3),
            "conv_last.weight": (3, 64, 3, 3),
        },
    )
    x2 = _shapes("RRDBNet", num_in_ch=3, num_out_ch=3, scale=2)  # RealESRGAN_x2plus
    _check(x2, 702, {"conv_first.weight": (64, 12, 3, 3)})
    x1 = _shapes("RRDBNet", num_in_ch=3, num_out_ch=3, scale=1)
    _check(x1, 702, {"conv_first.weight": (64, 48, 3, 3)})
    anime = _shapes("RRDBNet", num_in_ch=3, num_out_ch=3, num_block=6)  # RealESRGAN_x4plus_anime_6B
    _check(anime, 192, {"body.5.rdb3.conv5.bias": (64,)})


def test_srvgg_official_layouts() -> None:
    # realesr-general-x4v3: 34 convs (weight+bias) at even indices 0..66, 33 PReLUs at odd indices
    general = _shapes("SRVGGNetCompact", num_feat=64, num_conv=32, upscale=4, act_type="prelu")
    _check(
        general,
        101,
        {
            "body.0.weight": (64, 3, 3, 3),
            "body.1.weight": (64,),
            "body.64.weight": (64, 64, 3, 3),
            "body.65.weight": (64,),
            "body.66.weight": (48, 64, 3, 3),
            "body.66.bias": (48,),
        },
    )
    anime = _shapes("SRVGGNetCompact", num_conv=16)  # realesr-animevideov3
    _check(anime, 53, {"body.33.weight": (64,), "body.34.weight": (48, 64, 3, 3)})
    xsx2 = _shapes("SRVGGNetCompact", num_conv=16, upscale=2)  # RealESRGANv2-animevideo-xsx2
    _check(xsx2, 53, {"body.34.weight": (12, 64, 3, 3)})
    leaky = _shapes("SRVGGNetCompact", num_conv=16, act_type="leakyrelu")
    _check(leaky, 36, {"body.2.weight": (64, 64, 3, 3), "body.34.weight": (48, 64, 3, 3)})


def test_wdsr_official_layouts() -> None:
    # Official README: the WDSR-A baseline (n_feats 32, block_feats 128, 16 blocks, x2) has
    # 1,190,100 parameters (weight_g and weight_v both counted).
    with torch.device("meta"):
        model = ARCHS.build({"type": "WDSR_A", "num_feat": 32, "num_block": 16, "upscale": 2})
    assert sum(p.numel() for p in model.parameters()) == 1_190_100
    a = _shapes("WDSR_A", num_feat=32, num_block=16, upscale=2)
    _check(
        a,
        3 + 16 * 6 + 3 + 3,
        {
            "head.0.weight_g": (32, 1, 1, 1),
            "head.0.weight_v": (32, 3, 3, 3),
            "body.0.body.0.weight_v": (128, 32, 3, 3),
            "body.15.body.2.weight_g": (32, 1, 1, 1),
            "body.15.body.2.weight_v": (32, 128, 3, 3),
            "tail.0.weight_v": (12, 32, 3, 3),
            "skip.0.weight_v": (12, 3, 5, 5),
            "skip.0.bias": (12,),
        },
    )
    b = _shapes("WDSR_B", num_feat=32, num_block=16, upscale=4)
    _check(
        b,
        3 + 16 * 9 + 3 + 3,
        {
            "body.0.body.0.weight_v": (192, 32, 1, 1),  # expand = 6
            "body.0.body.2.weight_v": (25, 192, 1, 1),  # int(32 * 0.8)
            "body.0.body.3.weight_v": (32, 25, 3, 3),
            "tail.0.weight_v": (48, 32, 3, 3),
            "skip.0.weight_v": (48, 3, 5, 5),
        },
    )


def _official_wdsr_forward(
    sd: dict[str, torch.Tensor], x255: torch.Tensor, scale: int, mean: list[float]
) -> torch.Tensor:
    """The official WDSR forward on [0, 255] pixels, written functionally from wdsr_a/b.py."""

    def conv(prefix: str, t: torch.Tensor) -> torch.Tensor:
        v, g = sd[f"{prefix}.weight_v"], sd[f"{prefix}.weight_g"]
        w = v * (g / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        return F.conv2d(t, w, sd[f"{prefix}.bias"], padding=v.shape[-1] // 2)

    m = torch.tensor(mean).view(1, -1, 1, 1) * 255
    x = (x255 - m) / 127.5
    s = F.pixel_shuffle(conv("skip.0", x), scale)
    h = conv("head.0", x)
    blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith("body.")})
    for i in blocks:
        layers = sorted({int(k.split(".")[3]) for k in sd if k.startswith(f"body.{i}.body.")})
        r = conv(f"body.{i}.body.{layers[0]}", h).relu()
        for j in layers[1:]:
            r = conv(f"body.{i}.body.{j}", r)
        h = h + r
    out = F.pixel_shuffle(conv("tail.0", h), scale) + s
    return out * 127.5 + m


@pytest.mark.parametrize("name", ["WDSR_A", "WDSR_B"])
def test_wdsr_matches_official_forward_on_255_scale(name: str) -> None:
    torch.manual_seed(1)
    model = ARCHS.build({"type": name, "num_feat": 8, "num_block": 2, "upscale": 2}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        x = torch.rand(1, 3, 6, 6)
        ours = model(x)
        ref = _official_wdsr_forward(model.state_dict(), x * 255, 2, [0.4488, 0.4371, 0.4040]) / 255
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_weight_norm_conv_matches_torch_weight_norm() -> None:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated but is the reference
        ref = nn.utils.weight_norm(nn.Conv2d(4, 6, 3, padding=1))
    with torch.no_grad():
        ref.weight_g.mul_(torch.rand_like(ref.weight_g) + 0.5)
    ours = WeightNormConv2d(4, 6, 3)
    ref_sd = ref.state_dict()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in ref_sd.items()
    }
    ours.load_state_dict(ref_sd, strict=True)
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)
    # a fresh module starts as a plain conv: g equals the norm of v
    fresh = WeightNormConv2d(4, 6, 3)
    torch.testing.assert_close(fresh.weight_g.flatten(), fresh.weight_v.flatten(1).norm(dim=1))


def test_pixel_unshuffle_matches_basicsr_layout() -> None:
    x = torch.randn(2, 3, 8, 12)
    s = 2
    b, c, hh, ww = x.shape
    ref = (
        x.view(b, c, hh // s, s, ww // s, s).permute(0, 1, 3, 5, 2, 4).reshape(b, c * s * s, hh // s, ww // s)
    )
    assert torch.equal(pixel_unshuffle(x, s), ref)
    with pytest.raises(ValueError, match="divisible"):
        pixel_unshuffle(torch.randn(1, 3, 7, 8), 2)


def test_rrdbnet_x2_feeds_unshuffled_input_to_conv_first() -> None:
    torch.manual_seed(0)
    model = ARCHS.build(
        {
            "type": "RRDBNet",
            "num_in_ch": 3,
            "num_out_ch": 3,
            "scale": 2,
            "num_feat": 4,
            "num_block": 1,
            "num_grow_ch": 2,
        }
    )
    seen: list[torch.Tensor] = []
    model.conv_first.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    x = torch.rand(1, 3, 8, 8)
    model(x)
    assert seen[0].shape == (1, 12, 4, 4)
    assert torch.equal(seen[0][0, 0:4, 0, 0], x[0, 0, 0:2, 0:2].flatten())


def test_edsr_mean_follows_device_and_dtype_but_not_state_dict() -> None:
    model = ARCHS.build(
        {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_block": 1, "upscale": 2}
    )
    assert "mean" not in model.state_dict()
    model = model.double()
    assert model.mean.dtype == torch.float64
    x = torch.full((1, 3, 4, 4), 0.5, dtype=torch.float64)
    assert model(x).dtype == torch.float64


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="upscale"):
        Upsample(5, 4)
    with pytest.raises(ConfigError, match="scale"):
        ARCHS.build({"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "scale": 3})
    with pytest.raises(ConfigError, match="upscale"):
        ARCHS.build({"type": "MSRResNet", "upscale": 8})
    with pytest.raises(ConfigError, match="rgb_mean"):
        ARCHS.build({"type": "EDSR", "num_in_ch": 1, "num_out_ch": 1})
    with pytest.raises(ConfigError, match="act_type"):
        ARCHS.build({"type": "SRVGGNetCompact", "act_type": "gelu"})


def test_layers_never_import_a_family() -> None:
    families = {"edsr", "srresnet", "rrdbnet", "srvgg", "wdsr", "detect"}
    for path in (SRC / "restorekit" / "archs" / "layers").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                assert not (
                    parts[:2] == ["restorekit", "archs"] and len(parts) > 2 and parts[2] in families
                ), (
                    path.name,
                    node.module,
                )


def test_importing_archs_stays_light() -> None:
    code = (
        "import sys, restorekit.archs, restorekit.archs.detect\n"
        "bad = [m for m in sys.modules if m.startswith(('restorekit.engine', 'restorekit.cli', "
        "'restorekit.tasks', 'tensorboard', 'wandb', 'torchvision'))]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(SRC)}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr

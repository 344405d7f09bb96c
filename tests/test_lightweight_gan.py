"""lightweight-gan (lucidrains, package 1.2.1): layouts, computations, recognition, checkpoint files.

The expected layouts are written here from reading ``lightweight_gan/lightweight_gan.py`` at tag
1.2.1 (``Generator``, ``Discriminator`` and the blocks they use): one full literal table per
network at 64 px, and ``_expected_g`` / ``_expected_d``, a compact restatement of how their
constructors name and size every tensor, for the other sizes. The computations where a slip
is likely (the blur, the upsampling stage with its GLU, skip-layer excitation, the window
attention, the quadrant crop) are restated with plain torch and compared with our modules.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from restorekit.archs.info import arch_info, full_kwargs
from restorekit.archs.layers.lightweight_gan_blocks import Blur, LinearAttention, dct_weights
from restorekit.archs.lightweight_gan import (
    LightweightGANDiscriminator,
    LightweightGANGenerator,
    read_lightweight_gan_checkpoint,
    read_lightweight_gan_config,
    recognize,
    recognize_discriminator,
    recognize_lightweight_gan,
)
from restorekit.errors import ConfigError, WeightsError
from restorekit.registry import ARCHS

Shapes = dict[str, tuple[int, ...]]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small nets run faster on one thread


# --- expected layouts, from lightweight-gan's source ---------------------------------------------

# Generator(image_size=64) with the class defaults (blur on): 4 stages 4→8→16→32→64 px of
# 512, 512, 256, 128 channels; no skip-layer excitation below 128 px; no attention.
G64: Shapes = {"initial_conv.0.weight": (256, 512, 4, 4), "initial_conv.0.bias": (512,)}
G64.update({f"initial_conv.1.{n}": (512,) for n in ("weight", "bias", "running_mean", "running_var")})
G64["initial_conv.1.num_batches_tracked"] = ()
for _i, (_cin, _cout) in enumerate([(256, 512), (512, 512), (512, 256), (256, 128)]):
    _p = f"layers.{_i}.0"
    G64.update(
        {
            f"{_p}.0.net.0.weight": (4 * _cin, _cin, 1, 1),
            f"{_p}.0.net.0.bias": (4 * _cin,),
            f"{_p}.1.f": (3,),
            f"{_p}.2.1.weight": (2 * _cout, _cin, 4, 4),
            f"{_p}.2.1.bias": (2 * _cout,),
            f"{_p}.3.weight": (1,),
        }
    )
    G64.update({f"{_p}.4.{n}": (2 * _cout,) for n in ("weight", "bias", "running_mean", "running_var")})
    G64[f"{_p}.4.num_batches_tracked"] = ()
G64.update({"out_conv.weight": (3, 128, 3, 3), "out_conv.bias": (3,)})

_ATTN64 = {
    "fn.fn.to_lin_q.weight": (512, 64, 1, 1),
    "fn.fn.to_lin_kv.net.0.weight": (64, 1, 3, 3),
    "fn.fn.to_lin_kv.net.1.weight": (1024, 64, 1, 1),
    "fn.fn.to_q.weight": (512, 64, 1, 1),
    "fn.fn.to_kv.weight": (1024, 64, 1, 1),
    "fn.fn.to_out.weight": (64, 1024, 1, 1),
    "fn.fn.to_out.bias": (64,),
    "fn.norm.g": (1, 64, 1, 1),
    "fn.norm.b": (1, 64, 1, 1),
}
# Discriminator(image_size=64, disc_output_size=1): three residual blocks 64→32→16→8 px
# (3→128→256→512 channels), the 1×1 head, the 32×32 side discriminator, decoder1 only.
D64: Shapes = {
    "residual_layers.0.0.branches.0.0.f": (3,),
    "residual_layers.0.0.branches.0.1.1.weight": (128, 12, 1, 1),
    "residual_layers.0.0.branches.0.1.1.bias": (128,),
    "residual_layers.0.0.branches.0.3.weight": (128, 128, 3, 3),
    "residual_layers.0.0.branches.0.3.bias": (128,),
    "residual_layers.0.0.branches.1.0.f": (3,),
    "residual_layers.0.0.branches.1.2.weight": (128, 3, 1, 1),
    "residual_layers.0.0.branches.1.2.bias": (128,),
    "residual_layers.1.0.branches.0.0.f": (3,),
    "residual_layers.1.0.branches.0.1.1.weight": (256, 512, 1, 1),
    "residual_layers.1.0.branches.0.1.1.bias": (256,),
    "residual_layers.1.0.branches.0.3.weight": (256, 256, 3, 3),
    "residual_layers.1.0.branches.0.3.bias": (256,),
    "residual_layers.1.0.branches.1.0.f": (3,),
    "residual_layers.1.0.branches.1.2.weight": (256, 128, 1, 1),
    "residual_layers.1.0.branches.1.2.bias": (256,),
    "residual_layers.2.0.branches.0.0.f": (3,),
    "residual_layers.2.0.branches.0.1.1.weight": (512, 1024, 1, 1),
    "residual_layers.2.0.branches.0.1.1.bias": (512,),
    "residual_layers.2.0.branches.0.3.weight": (512, 512, 3, 3),
    "residual_layers.2.0.branches.0.3.bias": (512,),
    "residual_layers.2.0.branches.1.0.f": (3,),
    "residual_layers.2.0.branches.1.2.weight": (512, 256, 1, 1),
    "residual_layers.2.0.branches.1.2.bias": (512,),
    "to_logits.0.f": (3,),
    "to_logits.1.weight": (512, 512, 3, 3),
    "to_logits.1.bias": (512,),
    "to_logits.3.weight": (1, 512, 4, 4),
    "to_logits.3.bias": (1,),
    "to_shape_disc_out.0.weight": (64, 3, 3, 3),
    "to_shape_disc_out.0.bias": (64,),
    **{f"to_shape_disc_out.1.{k}": v for k, v in _ATTN64.items()},
    "to_shape_disc_out.2.branches.0.0.f": (3,),
    "to_shape_disc_out.2.branches.0.1.1.weight": (32, 256, 1, 1),
    "to_shape_disc_out.2.branches.0.1.1.bias": (32,),
    "to_shape_disc_out.2.branches.0.3.weight": (32, 32, 3, 3),
    "to_shape_disc_out.2.branches.0.3.bias": (32,),
    "to_shape_disc_out.2.branches.1.0.f": (3,),
    "to_shape_disc_out.2.branches.1.2.weight": (32, 64, 1, 1),
    "to_shape_disc_out.2.branches.1.2.bias": (32,),
    "to_shape_disc_out.3.fn.fn.to_lin_q.weight": (512, 32, 1, 1),
    "to_shape_disc_out.3.fn.fn.to_lin_kv.net.0.weight": (32, 1, 3, 3),
    "to_shape_disc_out.3.fn.fn.to_lin_kv.net.1.weight": (1024, 32, 1, 1),
    "to_shape_disc_out.3.fn.fn.to_q.weight": (512, 32, 1, 1),
    "to_shape_disc_out.3.fn.fn.to_kv.weight": (1024, 32, 1, 1),
    "to_shape_disc_out.3.fn.fn.to_out.weight": (32, 1024, 1, 1),
    "to_shape_disc_out.3.fn.fn.to_out.bias": (32,),
    "to_shape_disc_out.3.fn.norm.g": (1, 32, 1, 1),
    "to_shape_disc_out.3.fn.norm.b": (1, 32, 1, 1),
    "to_shape_disc_out.5.weight": (1, 32, 4, 4),
    "to_shape_disc_out.5.bias": (1,),
    "decoder1.layers.0.0.net.0.weight": (2048, 512, 1, 1),
    "decoder1.layers.0.0.net.0.bias": (2048,),
    "decoder1.layers.0.1.weight": (512, 512, 3, 3),
    "decoder1.layers.0.1.bias": (512,),
    "decoder1.layers.1.0.net.0.weight": (1024, 256, 1, 1),
    "decoder1.layers.1.0.net.0.bias": (1024,),
    "decoder1.layers.1.1.weight": (256, 256, 3, 3),
    "decoder1.layers.1.1.bias": (256,),
    "decoder1.layers.2.0.net.0.weight": (512, 128, 1, 1),
    "decoder1.layers.2.0.net.0.bias": (512,),
    "decoder1.layers.2.1.weight": (128, 128, 3, 3),
    "decoder1.layers.2.1.bias": (128,),
    "decoder1.layers.3.0.net.0.weight": (256, 64, 1, 1),
    "decoder1.layers.3.0.net.0.bias": (256,),
    "decoder1.layers.3.1.weight": (6, 64, 3, 3),
    "decoder1.layers.3.1.bias": (6,),
}


def _bn(p: str, c: int) -> Shapes:
    out: Shapes = {f"{p}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")}
    out[f"{p}.num_batches_tracked"] = ()
    return out


def _attn(p: str, dim: int) -> Shapes:
    """PreNorm(dim, LinearAttention(dim)): 8 heads × 64 whatever ``dim``."""
    return {
        f"{p}.fn.to_lin_q.weight": (512, dim, 1, 1),
        f"{p}.fn.to_lin_kv.net.0.weight": (dim, 1, 3, 3),
        f"{p}.fn.to_lin_kv.net.1.weight": (1024, dim, 1, 1),
        f"{p}.fn.to_q.weight": (512, dim, 1, 1),
        f"{p}.fn.to_kv.weight": (1024, dim, 1, 1),
        f"{p}.fn.to_out.weight": (dim, 1024, 1, 1),
        f"{p}.fn.to_out.bias": (dim,),
        f"{p}.norm.g": (1, dim, 1, 1),
        f"{p}.norm.b": (1, dim, 1, 1),
    }


def _conv(p: str, cout: int, cin: int, k: int) -> Shapes:
    return {f"{p}.weight": (cout, cin, k, k), f"{p}.bias": (cout,)}


def _expected_g(
    size: int,
    latent: int = 256,
    fmap: int = 512,
    coef: int = 12,
    ch: int = 3,
    attn: tuple[int, ...] = (),
    freq: bool = False,
    blur: bool = True,
) -> Shapes:
    res = int(math.log2(size))
    feats = [latent] + [3 if n >= 8 else min(2 ** (coef - n), fmap) for n in range(2, res)]
    sle = {s: d for s, d in ((3, 7), (4, 8), (5, 9), (6, 10)) if d <= res}
    out: Shapes = {"initial_conv.0.weight": (latent, 2 * latent, 4, 4), "initial_conv.0.bias": (2 * latent,)}
    out.update(_bn("initial_conv.1", 2 * latent))
    for i, n in enumerate(range(2, res)):
        cin, cout, p = feats[i], feats[i + 1], f"layers.{i}"
        out.update(_conv(f"{p}.0.0.net.0", 4 * cin, cin, 1))
        if blur:
            out[f"{p}.0.1.f"] = (3,)
        out.update(_conv(f"{p}.0.2.1", 2 * cout, cin, 4))
        out[f"{p}.0.3.weight"] = (1,)
        out.update(_bn(f"{p}.0.4", 2 * cout))
        if n in sle:
            gated = feats[sle[n] - 2]  # output channels of the stage that makes side 2**dst
            if freq:
                mid = max(3, gated // 4)
                out[f"{p}.1.dct_weights"] = (1, cout, 2 ** (n + 1), 2 ** (n + 1))
            else:
                mid = max(3, gated // 2)
                out.update(_conv(f"{p}.1.to_k", 1, cout, 1))
            out.update({**_conv(f"{p}.1.net.0", mid, cout, 1), **_conv(f"{p}.1.net.2", gated, mid, 1)})
        if 2**n in attn:
            out.update(_attn(f"{p}.2", cin))
    out.update(_conv("out_conv", ch, feats[-1], 3))
    return out


def _residual_down(p: str, cin: int, cout: int, blur: bool) -> Shapes:
    out: Shapes = {f"{p}.branches.0.0.f": (3,)} if blur else {}
    out.update(
        {**_conv(f"{p}.branches.0.1.1", cout, 4 * cin, 1), **_conv(f"{p}.branches.0.3", cout, cout, 3)}
    )
    if blur:
        out[f"{p}.branches.1.0.f"] = (3,)
    out.update(_conv(f"{p}.branches.1.2", cout, cin, 1))
    return out


def _decoder(p: str, cin: int, ch: int) -> Shapes:
    out: Shapes = {}
    chans = cin
    for i in range(4):
        out.update(_conv(f"{p}.layers.{i}.0.net.0", 4 * chans, chans, 1))
        out.update(_conv(f"{p}.layers.{i}.1", 2 * ch if i == 3 else chans, chans, 3))
        chans //= 2
    return out


def _expected_d(
    size: int,
    fmap: int = 512,
    coef: int = 12,
    ch: int = 3,
    out_size: int = 5,
    attn: tuple[int, ...] = (),
    blur: bool = True,
) -> Shapes:
    res = int(math.log2(size))
    sides = list(range(min(8, res), 2, -1))
    feats = [min(2 ** (coef - n), fmap) for n in sides]
    plain = max(0, res - 8)
    if plain == 0:
        feats[0] = ch
    out: Shapes = {}
    for i in range(plain):
        if blur:
            out[f"non_residual_layers.{i}.0.f"] = (3,)
        out.update(_conv(f"non_residual_layers.{i}.1", feats[0] if i == plain - 1 else ch, ch, 4))
    for i, n in enumerate(sides[:-1]):
        out.update(_residual_down(f"residual_layers.{i}.0", feats[i], feats[i + 1], blur))
        if 2**n in attn:
            out.update(_attn(f"residual_layers.{i}.1", feats[i]))
    last = feats[-1]
    if out_size == 5:
        out.update({**_conv("to_logits.0", last, last, 1), **_conv("to_logits.2", 1, last, 4)})
    else:
        out.update({"to_logits.0.f": (3,)} if blur else {})
        out.update({**_conv("to_logits.1", last, last, 3), **_conv("to_logits.3", 1, last, 4)})
    out.update(_conv("to_shape_disc_out.0", 64, ch, 3))
    out.update(_attn("to_shape_disc_out.1.fn", 64))
    out.update(_residual_down("to_shape_disc_out.2", 64, 32, blur))
    out.update(_attn("to_shape_disc_out.3.fn", 32))
    out.update(_conv("to_shape_disc_out.5", 1, 32, 4))
    out.update(_decoder("decoder1", last, ch))
    if res >= 9:
        out.update(_decoder("decoder2", feats[-2], ch))
    return out


def _layout(name: str, **kwargs: Any) -> Shapes:
    with torch.device("meta"):
        model = ARCHS.build({"type": name, **kwargs})
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _assert_layout(ours: Shapes, expected: Shapes) -> None:
    assert list(ours) == list(expected), (sorted(set(ours) ^ set(expected))[:6], len(ours), len(expected))
    bad = [(k, ours[k], v) for k, v in expected.items() if ours[k] != v]
    assert not bad, bad[:4]


def test_full_64px_tables() -> None:
    assert len(G64) == 53 and len(D64) == 75
    _assert_layout(_layout("LightweightGANGenerator", image_size=64), G64)
    _assert_layout(_layout("LightweightGANDiscriminator", image_size=64, disc_output_size=1), D64)
    # the compact restatement agrees with the literal tables it is used in place of
    assert _expected_g(64) == G64 and _expected_d(64, out_size=1) == D64


CHANNELS = {"rgb": {}, "gray": {"greyscale": True}, "rgba": {"transparent": True}}


@pytest.mark.parametrize(
    ("size", "attn", "colour", "blur"),
    [(s, a, c, b) for s, a, c in itertools.product((64, 256), ((), (32,)), CHANNELS) for b in (True, False)],
)
def test_layouts_match_lightweight_gan(size: int, attn: tuple[int, ...], colour: str, blur: bool) -> None:
    kw = CHANNELS[colour]
    ch = 4 if colour == "rgba" else 1 if colour == "gray" else 3
    g = _layout("LightweightGANGenerator", image_size=size, attn_res_layers=attn, antialias=blur, **kw)
    _assert_layout(g, _expected_g(size, ch=ch, attn=attn, blur=blur))
    for out_size in (1, 5):
        d = _layout(
            "LightweightGANDiscriminator",
            image_size=size,
            attn_res_layers=attn,
            disc_output_size=out_size,
            antialias=blur,
            **kw,
        )
        _assert_layout(d, _expected_d(size, ch=ch, out_size=out_size, attn=attn, blur=blur))


def test_layouts_at_other_sizes_and_widths() -> None:
    """FcaNet gates, 512/1024 px (3-channel top stages, stride-2 D stem, decoder2), other caps."""
    cases = [  # (our kwargs, the same in _expected_g's names)
        (dict(image_size=256, freq_chan_attn=True), dict(size=256, freq=True)),
        (
            dict(image_size=512, latent_dim=32, fmap_max=64, attn_res_layers=(16, 64)),
            dict(size=512, latent=32, fmap=64, attn=(16, 64)),
        ),
        (
            dict(image_size=1024, latent_dim=16, fmap_max=16, freq_chan_attn=True),
            dict(size=1024, latent=16, fmap=16, freq=True),
        ),
        (dict(image_size=128, fmap_max=1024, fmap_inverse_coef=13), dict(size=128, fmap=1024, coef=13)),
    ]
    for ours, theirs in cases:
        _assert_layout(_layout("LightweightGANGenerator", **ours), _expected_g(**theirs))
    for size, fmap in ((512, 32), (1024, 16), (128, 1024)):
        _assert_layout(
            _layout("LightweightGANDiscriminator", image_size=size, fmap_max=fmap, attn_res_layers=(64,)),
            _expected_d(size, fmap=fmap, attn=(64,)),
        )


# --- computations, restated ----------------------------------------------------------------------


def test_blur_is_the_121_kernel_with_reflected_borders() -> None:
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    w = [1.0, 2.0, 1.0]

    def reflect(i: int, n: int) -> int:  # kornia's default border: -1 → 1, n → n-2
        return -i if i < 0 else 2 * (n - 1) - i if i >= n else i

    want = torch.zeros_like(x)
    for r, c in itertools.product(range(5), range(7)):
        for dr, dc in itertools.product((-1, 0, 1), repeat=2):
            want[..., r, c] += w[dr + 1] * w[dc + 1] / 16 * x[..., reflect(r + dr, 5), reflect(c + dc, 7)]
    torch.testing.assert_close(Blur().double()(x), want)
    assert torch.equal(Blur().state_dict()["f"], torch.tensor([1.0, 2.0, 1.0]))


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and norm gains, so eval outputs test them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(1 + torch.randn(m.num_features, generator=g) * 0.1)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


KERNEL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), KERNEL.expand(c, 1, 3, 3), groups=c)


def _functional_generator(sd: dict[str, torch.Tensor], z: torch.Tensor, blur: bool) -> torch.Tensor:
    """lightweight-gan's ``Generator.forward`` at 128 px (gate 16 px → 128 px), from the weights."""

    def bn(x: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(
            x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"], eps=1e-5
        )

    def glu(x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * torch.sigmoid(b)

    x = F.conv_transpose2d(z[:, :, None, None], sd["initial_conv.0.weight"], sd["initial_conv.0.bias"])
    x = glu(bn(x, "initial_conv.1"))
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    gate = None
    for i, n in enumerate(range(2, 7)):
        p = f"layers.{i}.0"
        x = F.conv2d(x, sd[f"{p}.0.net.0.weight"], sd[f"{p}.0.net.0.bias"])
        x = F.pixel_shuffle(F.silu(x), 2)
        x = _blur(x) if blur else x
        x = F.conv2d(F.pad(x, (2, 1, 2, 1)), sd[f"{p}.2.1.weight"], sd[f"{p}.2.1.bias"])  # 4×4 "same"
        x = glu(bn(x, f"{p}.4"))  # noise weight is 0
        if n == 3:  # global-context gate from the 16×16 map
            q = f"layers.{i}.1"
            w = F.conv2d(x, sd[f"{q}.to_k.weight"], sd[f"{q}.to_k.bias"]).flatten(2).softmax(-1)
            pooled = (x.flatten(2) * w).sum(-1)[:, :, None, None]
            h = F.leaky_relu(F.conv2d(pooled, sd[f"{q}.net.0.weight"], sd[f"{q}.net.0.bias"]), 0.1)
            gate = torch.sigmoid(F.conv2d(h, sd[f"{q}.net.2.weight"], sd[f"{q}.net.2.bias"]))
        if n == 6:
            assert gate is not None
            x = x * gate
    return F.conv2d(x, sd["out_conv.weight"], sd["out_conv.bias"], padding=1)


@pytest.mark.parametrize("blur", [True, False])
def test_generator_matches_a_functional_restatement(blur: bool) -> None:
    torch.manual_seed(0)
    g = _randomize(LightweightGANGenerator(image_size=128, latent_dim=16, fmap_max=16, antialias=blur))
    z = torch.randn(3, 16)
    with torch.no_grad():
        got = g(z)
        want = _functional_generator(g.state_dict(), z, blur)
    assert got.shape == (3, 3, 128, 128)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_skip_layer_excitation_gates_the_128px_map() -> None:
    torch.manual_seed(0)
    g = _randomize(LightweightGANGenerator(image_size=128, latent_dim=8, fmap_max=8))
    seen: list[tuple[int, ...]] = []
    gate_value = [0.0]

    def fixed_gate(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(inputs[0].shape))
        return torch.full_like(output, gate_value[0])

    g.layers[1][1].register_forward_hook(fixed_gate)  # the gate after stage 3 (16×16 px)
    z = torch.randn(2, 8)
    bias = g.out_conv.bias.view(1, -1, 1, 1)
    outs = {}
    with torch.no_grad():
        for value in (0.0, 1.0, 2.0):
            gate_value[0] = value
            outs[value] = g(z)
    assert seen[0] == (2, 8, 16, 16)
    torch.testing.assert_close(outs[0.0], bias.expand_as(outs[0.0]))  # a zero gate blanks the map
    torch.testing.assert_close(outs[2.0] - bias, 2 * (outs[1.0] - bias), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(outs[1.0], outs[0.0])
    assert g.layers[1][1](torch.rand(2, 8, 16, 16)).shape == (2, 8, 1, 1)  # one gate per channel


def test_linear_attention_matches_a_restatement() -> None:
    torch.manual_seed(0)
    att = LinearAttention(8).eval()
    fmap = torch.randn(2, 8, 5, 6)
    b, h, d, X, Y = 2, 8, 64, 5, 6

    def heads(t: torch.Tensor) -> torch.Tensor:  # (b, h·d, X, Y) → (b, h, d, X, Y)
        return t.reshape(b, h, d, X, Y)

    with torch.no_grad():
        scale = d**-0.5
        # global linear attention
        q = heads(att.to_lin_q(fmap)).flatten(3).softmax(dim=2) * scale  # softmax over features
        k, v = (heads(t).flatten(3) for t in att.to_lin_kv(fmap).chunk(2, dim=1))
        k = k.softmax(dim=3)  # over positions
        lin = torch.einsum("bhdn,bhen,bhdm->bhem", k, v, q).reshape(b, h * d, X, Y)
        # 3×3 window attention as the reference writes it: unfold the zero-padded keys/values
        q2 = att.to_q(fmap).reshape(b * h, d, X * Y) * scale
        k2, v2 = (
            F.unfold(t.reshape(b * h, d, X, Y), 3, padding=1).reshape(b * h, d, 9, X * Y)
            for t in att.to_kv(fmap).chunk(2, dim=1)
        )
        sim = torch.einsum("bdn,bdjn->bjn", q2, k2)
        attn = (sim - sim.amax(dim=1, keepdim=True)).softmax(dim=1)
        full = torch.einsum("bjn,bdjn->bdn", attn, v2).reshape(b, h * d, X, Y)
        want = att.to_out(torch.cat((F.gelu(lin), full), dim=1))
        torch.testing.assert_close(att(fmap), want, rtol=1e-4, atol=1e-5)


def test_window_attention_in_cpu_slices_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU path slices (batch × heads) to stay in cache; values and gradients are unchanged."""
    from restorekit.archs.layers import lightweight_gan_blocks as blocks

    torch.manual_seed(0)
    att = LinearAttention(6, dim_head=4, heads=3)
    fmap = torch.randn(5, 6, 7, 9, requires_grad=True)

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        fmap.grad = None
        out = att(fmap)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        return out.detach(), fmap.grad.clone()  # type: ignore[union-attr]

    whole = run()
    monkeypatch.setattr(blocks, "_CPU_CHUNK", 4 * 7 * 9 * 2)  # two of the 15 (batch, head) maps per slice
    sliced = run()
    torch.testing.assert_close(sliced[0], whole[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(sliced[1], whole[1], rtol=0, atol=1e-6)


def test_attention_width_options_and_checks() -> None:
    small = ARCHS.build(
        {
            "type": "LightweightGANDiscriminator",
            "image_size": 32,
            "fmap_max": 8,
            "attn_heads": 2,
            "attn_dim_head": 16,
        }
    )
    assert small.state_dict()["to_shape_disc_out.1.fn.fn.to_lin_q.weight"].shape == (32, 64, 1, 1)
    assert small.to_shape_disc_out[1].fn.fn.scale == 16**-0.5
    default = ARCHS.build({"type": "LightweightGANDiscriminator", "image_size": 32, "fmap_max": 8})
    assert default.state_dict()["to_shape_disc_out.1.fn.fn.to_lin_q.weight"].shape == (512, 64, 1, 1)
    for key in ("attn_heads", "attn_dim_head"):
        with pytest.raises(ConfigError, match=key):
            ARCHS.build({"type": "LightweightGANGenerator", "image_size": 32, key: 0})


def test_fcanet_dct_filters() -> None:
    w = dct_weights(8, 32)  # two channels per frequency
    assert w.shape == (1, 32, 8, 8)
    torch.testing.assert_close(w[0, 0], torch.full((8, 8), 1 / 8))  # DC: 1/√8 · 1/√8
    x = torch.arange(8, dtype=torch.float64)
    basis = math.sqrt(2 / 8) * torch.cos(math.pi * 3 * (x + 0.5) / 8)
    want = (torch.full((8,), 1 / math.sqrt(8), dtype=torch.float64)[:, None] * basis[None, :]).float()
    torch.testing.assert_close(w[0, 6], want)  # frequency (0, 3): varies along the last axis
    torch.testing.assert_close(w[0, 22], want.T)  # frequency (3, 0)
    assert torch.equal(dct_weights(8, 40)[0, 32:], torch.zeros(8, 8, 8))  # 40 // 16 = 2 per slice


def test_generator_noise_comes_from_the_given_generator() -> None:
    torch.manual_seed(0)
    g = _randomize(LightweightGANGenerator(image_size=32, latent_dim=8, fmap_max=8))
    z = torch.randn(2, 8)
    with torch.no_grad():
        quiet = [g(z, torch.Generator().manual_seed(s)) for s in (1, 2)]
        torch.testing.assert_close(quiet[0], quiet[1])  # zero noise weights: no dependence
        for m in g.modules():
            if type(m).__name__ == "Noise":
                m.weight.fill_(0.5)
        a, b, c = (g(z, torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def _quadrants(t: torch.Tensor) -> torch.Tensor:
    """einops ``'b c (m h) (n w) -> (m n) b c h w'`` with m = n = 2, restated."""
    b, c, hh, ww = t.shape
    return (
        t.reshape(b, c, 2, hh // 2, 2, ww // 2).permute(2, 4, 0, 1, 3, 5).reshape(4, b, c, hh // 2, ww // 2)
    )


def test_discriminator_reconstructions_and_quadrant() -> None:
    torch.manual_seed(0)
    d = LightweightGANDiscriminator(image_size=512, fmap_max=8).eval()
    x = torch.rand(1, 3, 512, 512)
    feats: list[torch.Tensor] = []
    d.residual_layers[-2][0].register_forward_hook(lambda m, i, o: feats.append(o))  # the 16×16 block
    with torch.no_grad():
        plain = d(x)
        assert plain.recon_whole is None and plain.quadrant is None
        assert plain.logits.shape == (1, 25) and plain.side_logits.shape == (1, 1, 1, 1)
        with pytest.raises(ValueError, match="quadrant"):
            d(x, reconstruct=True)
        out = d(x, reconstruct=True, generator=torch.Generator().manual_seed(7))
        drawn = int(torch.randint(4, (1,), generator=torch.Generator().manual_seed(7)))
        assert out.quadrant == drawn
        torch.testing.assert_close(out.logits, plain.logits)
        assert out.recon_whole is not None and out.recon_whole.shape == (1, 3, 128, 128)
        assert out.recon_quadrant is not None and out.recon_quadrant.shape == (1, 3, 128, 128)
        assert feats[-1].shape[-2:] == (16, 16)
        torch.testing.assert_close(out.recon_quadrant, d.decoder2(_quadrants(feats[-1])[drawn]))
        loss = d.reconstruction_loss(x, out)
        want = ((out.recon_whole - x[..., ::4, ::4]) ** 2).mean()  # nearest 512 → 128
        want = want + ((out.recon_quadrant - _quadrants(x)[drawn][..., ::2, ::2]) ** 2).mean()
        torch.testing.assert_close(loss, want)
        given = d(x, reconstruct=True, quadrant=3)
        assert given.quadrant == 3
        torch.testing.assert_close(given.recon_quadrant, d.decoder2(_quadrants(feats[-1])[3]))
        with pytest.raises(ValueError, match="512×512"):
            d(torch.rand(1, 3, 256, 256))


def test_small_discriminator_has_no_quadrant_decoder() -> None:
    torch.manual_seed(0)
    d = LightweightGANDiscriminator(image_size=32, fmap_max=8, greyscale=True, disc_output_size=1).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        out = d(x, reconstruct=True)  # no randomness needed below 512 px
    assert out.logits.shape == (2, 1) and out.recon_quadrant is None and out.quadrant is None
    assert out.recon_whole is not None and out.recon_whole.shape == (2, 1, 128, 128)
    want = ((out.recon_whole - F.interpolate(x, size=(128, 128))) ** 2).mean()
    torch.testing.assert_close(d.reconstruction_loss(x, out), want)


def test_arch_info() -> None:
    g = arch_info({"type": "LightweightGANGenerator", "image_size": 64, "transparent": True})
    assert (g.purpose, g.in_channels, g.out_channels, g.latent_dim) == ("generator", 256, 4, 256)
    assert g.value_range == (0.0, 1.0) and g.tileable is False
    d = arch_info({"type": "LightweightGANDiscriminator", "image_size": 128, "greyscale": True})
    assert (d.purpose, d.in_channels, d.out_channels, d.input_size, d.tileable) == (
        "discriminator",
        1,
        1,
        128,
        False,
    )
    with pytest.raises(ConfigError, match="power of 2"):
        ARCHS.build({"type": "LightweightGANGenerator", "image_size": 96})
    with pytest.raises(ConfigError, match="choose one"):
        ARCHS.build(
            {"type": "LightweightGANDiscriminator", "image_size": 64, "greyscale": True, "transparent": True}
        )
    with pytest.raises(ConfigError, match="disc_output_size"):
        ARCHS.build({"type": "LightweightGANDiscriminator", "image_size": 64, "disc_output_size": 3})


# --- recognition and files -----------------------------------------------------------------------

G_VARIANTS = [
    dict(image_size=32, latent_dim=8, fmap_max=8),
    dict(image_size=128, latent_dim=8, fmap_max=16, greyscale=True, freq_chan_attn=True, antialias=False),
    dict(image_size=64, latent_dim=16, fmap_max=8, transparent=True, attn_res_layers=(8,)),
    dict(image_size=32, latent_dim=8, fmap_max=64, fmap_inverse_coef=9),
    dict(image_size=32, latent_dim=8, fmap_max=8, attn_res_layers=(16,), attn_heads=8, attn_dim_head=4),
]
D_VARIANTS = [
    dict(image_size=32, fmap_max=8),
    dict(image_size=64, fmap_max=16, greyscale=True, disc_output_size=1, antialias=False),
    dict(image_size=32, fmap_max=8, transparent=True, attn_res_layers=(16,)),
    dict(image_size=512, fmap_max=8, fmap_inverse_coef=10),
    dict(image_size=32, fmap_max=8, attn_heads=8, attn_dim_head=8),
]


def _full(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Every constructor argument: the given ones (coerced as a build would) plus the defaults."""
    return full_kwargs(name, ARCHS.check({"type": name, **kwargs})[1])


@pytest.mark.parametrize("kwargs", G_VARIANTS)
def test_generator_round_trip(kwargs: dict[str, Any]) -> None:
    torch.manual_seed(0)
    g = ARCHS.build({"type": "LightweightGANGenerator", **kwargs}).eval()
    found = recognize(g.state_dict())
    assert found == _full("LightweightGANGenerator", kwargs)
    assert recognize_lightweight_gan(g.state_dict()) == found
    rebuilt = ARCHS.build({"type": "LightweightGANGenerator", **found}).eval()
    rebuilt.load_state_dict(g.state_dict(), strict=True)
    z = torch.randn(2, found["latent_dim"])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(z), g(z))
    assert recognize_discriminator(g.state_dict()) is None


@pytest.mark.parametrize("kwargs", D_VARIANTS)
def test_discriminator_round_trip(kwargs: dict[str, Any]) -> None:
    with torch.device("meta"):
        d = ARCHS.build({"type": "LightweightGANDiscriminator", **kwargs})
    found = recognize_discriminator(d.state_dict())
    assert found == _full("LightweightGANDiscriminator", kwargs)
    with torch.device("meta"):
        rebuilt = ARCHS.build({"type": "LightweightGANDiscriminator", **found})
    rebuilt.load_state_dict(d.state_dict(), strict=True, assign=True)
    assert recognize(d.state_dict()) is None


def test_other_state_dicts_are_not_recognised() -> None:
    rrdb = ARCHS.build({"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_block": 1})
    assert recognize(rrdb.state_dict()) is None and recognize_discriminator(rrdb.state_dict()) is None
    g = LightweightGANGenerator(image_size=32, latent_dim=8, fmap_max=8).state_dict()
    assert recognize({k: v for k, v in g.items() if not k.startswith("layers.1.")}) is None  # a gap


def _write_checkpoint(path: Path, g: nn.Module, ge: nn.Module, d: nn.Module) -> None:
    gan = {f"G.{k}": v for k, v in g.state_dict().items()}
    gan.update({f"D.{k}": v for k, v in d.state_dict().items()})
    gan.update({f"GE.{k}": v for k, v in ge.state_dict().items()})
    gan.update({f"D_aug.D.{k}": v for k, v in d.state_dict().items()})
    scaler = {
        "scale": 65536.0,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 2000,
        "_growth_tracker": 0,
    }
    torch.save({"GAN": gan, "version": "1.2.1", "G_scaler": scaler, "D_scaler": dict(scaler)}, path)


def test_checkpoint_and_config_load_strictly(tmp_path: Path) -> None:
    kw = dict(image_size=64, greyscale=True, attn_res_layers=(32,), antialias=False, fmap_max=16)
    torch.manual_seed(0)
    g = LightweightGANGenerator(latent_dim=256, **kw)
    ge = LightweightGANGenerator(latent_dim=256, **kw)
    d = LightweightGANDiscriminator(disc_output_size=1, **kw)
    ckpt = tmp_path / "models" / "default" / "model_3.pt"
    ckpt.parent.mkdir(parents=True)
    _write_checkpoint(ckpt, g, ge, d)
    # what lightweight-gan 1.2.1's Trainer.config() writes (fmap_max is read back when present)
    config = {
        "image_size": 64,
        "transparent": False,
        "greyscale": True,
        "syncbatchnorm": False,
        "disc_output_size": 1,
        "optimizer": "adam",
        "attn_res_layers": [32],
        "freq_chan_attn": False,
        "fmap_max": 16,
    }
    (ckpt.parent / ".config.json").write_text(json.dumps(config))

    states = read_lightweight_gan_checkpoint(ckpt)
    assert set(states) == {"G", "D", "GE"}
    specs = read_lightweight_gan_config(ckpt.parent / ".config.json")
    assert specs["G"] == recognize(states["G"]) == recognize(states["GE"])
    assert specs["D"] == recognize_discriminator(states["D"])
    for part, reference in (("G", g), ("GE", ge), ("D", d)):
        name = "LightweightGANDiscriminator" if part == "D" else "LightweightGANGenerator"
        net = ARCHS.build({"type": name, **specs[part]})
        net.load_state_dict(states[part], strict=True)
        for key, value in reference.state_dict().items():
            assert torch.equal(net.state_dict()[key], value), (part, key)
    assert not torch.equal(states["G"]["out_conv.weight"], states["GE"]["out_conv.weight"])


def test_checkpoint_errors_are_one_line(tmp_path: Path) -> None:
    g = LightweightGANGenerator(image_size=32, latent_dim=8, fmap_max=8)
    plain = tmp_path / "plain.pt"
    torch.save(g.state_dict(), plain)
    no_ge = tmp_path / "model_1.pt"
    torch.save({"GAN": {f"G.{k}": v for k, v in g.state_dict().items()}, "version": "1.2.1"}, no_ge)
    code = tmp_path / "model_2.pt"
    torch.save({"GAN": {}, "when": date(2024, 1, 1)}, code)  # a non-allow-listed object
    garbage = tmp_path / "model_3.pt"
    garbage.write_bytes(b"not a zip file at all")
    cases = [
        (plain, "no 'GAN' state dict"),
        (no_ge, "no 'D.*' keys"),
        (code, "refused to load"),
        (garbage, "refused to load|not a PyTorch weights file"),
        (tmp_path / "missing.pt", "not found"),
    ]
    for path, fragment in cases:
        with pytest.raises(WeightsError, match=fragment) as info:
            read_lightweight_gan_checkpoint(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    base = {"image_size": 64, "transparent": False, "disc_output_size": 1, "syncbatchnorm": False}
    cases = [
        ("{not json", "not a readable JSON"),
        (json.dumps([1, 2]), "expected a JSON object"),
        (json.dumps({"image_size": 64, "transparent": False}), "'disc_output_size'"),
        (json.dumps(base | {"disc_output_size": 3}), "disc_output_size"),
        (json.dumps(base | {"image_size": 100}), "power of 2"),
        (json.dumps(base | {"greyscale": True, "transparent": True}), "choose one"),
        (json.dumps(base | {"attn_res_layers": "32"}), "attn_res_layers"),
    ]
    for i, (text, fragment) in enumerate(cases):
        path = tmp_path / f"c{i}.json"
        path.write_text(text)
        with pytest.raises(ConfigError, match=fragment) as info:
            read_lightweight_gan_config(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        read_lightweight_gan_config(tmp_path / "none.json")
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(base))
    specs = read_lightweight_gan_config(ok, antialias=True)
    assert specs["G"]["antialias"] and specs["G"]["latent_dim"] == 256 and specs["D"]["fmap_max"] == 512
    assert specs["D"]["disc_output_size"] == 1 and specs["D"]["attn_res_layers"] == ()

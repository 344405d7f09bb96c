"""StyleGAN2 (BasicSR layout) without compiled ops: upfirdn2d / fused LReLU, keys, forward, detection.

Reference numbers were produced once, in a scratch folder, by running BasicSR 8d56e3a
(``basicsr/archs/stylegan2_arch.py``) and GFPGAN 7552a77 with the compiled ops replaced by their
native PyTorch versions (BasicSR's own ``upfirdn2d_native``; ``fused_leaky_relu`` =
``leaky_relu(x + bias, 0.2) * sqrt(2)``), on models filled by ``fill`` below and inputs made by
``seeded``; they are written here as numbers. Nothing from that folder is imported.

``fill``'s rule: state-dict keys in sorted order, each tensor ``randn`` from a CPU
``torch.Generator`` seeded with ``crc32(key)``, times 1 for tensors of 2+ dims (equalised layers
rescale their weights at run time, so unit weights are their natural scale; noise maps are unit
normal) and 0.05 for 1-D ones (biases, noise strengths). A flat 0.05 for every tensor shrinks
each equalised conv's output ×20 and makes the encoder outputs independent of the input to 1e-8,
which would make the comparison blind to most of the network.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import restorekit.archs  # noqa: F401  (registers the architectures)
from restorekit.archs.detect import build_recognised, detect_arch
from restorekit.archs.info import ArchInfo, arch_info
from restorekit.archs.layers.stylegan2_ops import (
    ConvLayer,
    UpFirDnDownsample,
    UpFirDnSmooth,
    UpFirDnUpsample,
    fused_leaky_relu,
    upfirdn2d,
)
from restorekit.archs.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator, recognize
from restorekit.errors import ConfigError, WeightsError
from restorekit.registry import ARCHS
from restorekit.weights import load_into, read_state_dict

pytestmark = pytest.mark.usefixtures("one_thread")
DATA = Path(__file__).parent / "data"
CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA (runs in addition to the CPU tests)"
)


# ------------------------------------------------------------ shared helpers (test_gfpgan_v1_arch uses them)
def fill(model: torch.nn.Module) -> torch.nn.Module:
    """Every state-dict entry by the fixed rule of the module docstring; returns ``model.eval()``."""
    sd = model.state_dict()
    new = {}
    for key in sorted(sd):
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        new[key] = torch.randn(sd[key].shape, generator=gen) * (1.0 if sd[key].ndim >= 2 else 0.05)
    model.load_state_dict(new)
    return model.eval()


def seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


Summary = tuple[float, float, list[float]]


def assert_summary(t: torch.Tensor, expected: Summary) -> None:
    """Sum, sum of magnitudes and the values at flat indices 0, 1234 % n, n-1 (the reference's)."""
    f = t.detach().double().cpu().flatten()
    n = f.numel()
    total, magnitude, values = expected
    assert f.sum().item() == pytest.approx(total, rel=1e-5, abs=1e-4)
    assert f.abs().sum().item() == pytest.approx(magnitude, rel=1e-5, abs=1e-4)
    got = [f[i].item() for i in (0, 1234 % n, n - 1)]
    np.testing.assert_allclose(got, values, atol=1e-5, rtol=0)


def read_key_list(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """``(key, shape)`` lines of ``tests/data/<name>`` (comments start with ``#``)."""
    out = []
    for line in (DATA / name).read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            out.append((key, tuple(int(d) for d in shape.split(","))))
    return out


def meta_layout(make: Callable[[], torch.nn.Module]) -> list[tuple[str, tuple[int, ...]]]:
    with torch.device("meta"):
        model = make()
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def save_params_ema(model: torch.nn.Module, path: Path) -> Path:
    torch.save({"params_ema": model.state_dict()}, path)
    return path


# ------------------------------------------------------------------ upfirdn2d and the fused activation
def upfirdn_definition(
    x: np.ndarray, k: np.ndarray, up: tuple[int, int], down: tuple[int, int], pad: tuple
) -> np.ndarray:
    """By definition, in float64: insert ``up-1`` zeros after every sample, pad with zeros (crop
    where negative), convolve with ``k`` (so the kernel is flipped), keep every ``down``-th."""
    (ux, uy), (dx, dy), (px0, px1, py0, py1) = up, down, pad
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * uy, w * ux))
    u[:, :, ::uy, ::ux] = x
    a, b = max(py0, 0), max(px0, 0)
    p = np.zeros((n, c, h * uy + a + max(py1, 0), w * ux + b + max(px1, 0)))
    p[:, :, a : a + h * uy, b : b + w * ux] = u
    p = p[:, :, max(-py0, 0) : p.shape[2] - max(-py1, 0), max(-px0, 0) : p.shape[3] - max(-px1, 0)]
    kh, kw = k.shape
    oh, ow = (p.shape[2] - kh) // dy + 1, (p.shape[3] - kw) // dx + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(kh):
        for j in range(kw):
            out += (
                k[kh - 1 - i, kw - 1 - j]
                * p[:, :, i : i + dy * (oh - 1) + 1 : dy, j : j + dx * (ow - 1) + 1 : dx]
            )
    return out


ASYMMETRIC = torch.arange(1.0, 13.0).reshape(3, 4) / 78  # a flipped kernel gives other numbers


@pytest.mark.parametrize(
    ("up", "down", "pad"),
    [
        (1, 1, (0, 0)),
        (2, 1, (2, 1)),  # ToRGB's skip upsampling
        (1, 1, (1, 1)),  # the blur after a transposed conv
        (1, 2, (2, 2)),  # the blur before a stride-2 conv
        (2, 2, (1, 2)),
        (3, 2, (-1, 2)),  # negative padding crops
        ((2, 1), (1, 3), (1, -1, 0, 2)),  # per-axis factors and pads
    ],
)
def test_upfirdn2d_matches_its_definition(up: Any, down: Any, pad: tuple) -> None:
    x = seeded(2, 3, 9, 11, seed=6)
    got = upfirdn2d(x, ASYMMETRIC, up=up, down=down, pad=pad)
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    full = (pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else pad
    want = upfirdn_definition(x.double().numpy(), ASYMMETRIC.double().numpy(), pair(up), pair(down), full)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6, rtol=0)


# BasicSR's upfirdn2d_native(x, ASYMMETRIC, up, up, down, down, p0, p1, p0, p1): shape, summary
NATIVE: dict[tuple[int, int, int, int], tuple[tuple[int, ...], Summary]] = {
    (1, 1, 0, 0): ((2, 3, 7, 8), (-3.573284, 83.277039, [-0.4507293, 0.2207792, -0.3299022])),
    (2, 1, 2, 1): ((2, 3, 19, 22), (-16.425347, 300.046716, [-0.0310591, -0.1149247, 0.0225973])),
    (1, 2, 2, 2): ((2, 3, 6, 6), (1.614183, 42.407538, [-0.0229776, 0.1646481, 0.0816901])),
    (2, 1, 1, 1): ((2, 3, 18, 21), (-16.323558, 286.656087, [-0.0682992, 0.1736821, 0.0225973])),
    (1, 2, 1, 1): ((2, 3, 5, 5), (-9.821293, 32.181553, [-0.1707969, -0.1370944, -0.2177048])),
    (2, 2, 1, 2): ((2, 3, 10, 11), (-2.452517, 52.632414, [-0.0682992, -0.040601, 0.0])),
    (3, 2, -1, 2): ((2, 3, 13, 16), (-10.258513, 84.116182, [-0.0139287, 0.0, 0.0])),
    (1, 1, -2, 1): ((2, 3, 6, 7), (-12.322864, 64.501748, [-0.224262, 0.6449013, -0.22306])),
}


@pytest.mark.parametrize("case", list(NATIVE))
def test_upfirdn2d_equals_basicsr_native(case: tuple[int, int, int, int]) -> None:
    up, down, p0, p1 = case
    got = upfirdn2d(seeded(2, 3, 9, 11, seed=6), ASYMMETRIC, up=up, down=down, pad=(p0, p1))
    shape, summary = NATIVE[case]
    assert tuple(got.shape) == shape
    assert_summary(got, summary)


def test_resampling_modules_keep_kernels_out_of_the_state_dict() -> None:
    up, down = UpFirDnUpsample((1, 3, 3, 1)), UpFirDnDownsample((1, 3, 3, 1))
    smooth = UpFirDnSmooth((1, 3, 3, 1), upsample_factor=2, kernel_size=3)
    assert (up.pad, down.pad, smooth.pad) == ((2, 1), (1, 1), (1, 1))  # BasicSR's formulas for (1,3,3,1)
    assert float(up.kernel.sum()) == pytest.approx(4.0) and float(down.kernel.sum()) == pytest.approx(1.0)
    layer = ConvLayer(4, 8, 3, downsample=True)
    assert "0.kernel" in dict(layer.named_buffers()) and list(layer.state_dict()) == ["1.weight", "2.bias"]
    x = seeded(1, 2, 8, 8).double()
    assert up.double()(x).dtype == torch.float64 and up(x).shape == (1, 2, 16, 16)
    assert down(x.float()).shape == (1, 2, 4, 4)
    with pytest.raises(ValueError, match="upsample_factor or downsample_factor"):
        UpFirDnSmooth((1, 3, 3, 1))


def test_fused_leaky_relu_is_bias_leaky_relu_gain() -> None:
    x, b = seeded(2, 5, 3, 3), seeded(5, seed=1)
    y = x + b.reshape(1, 5, 1, 1)
    want = torch.where(y > 0, y, 0.2 * y) * math.sqrt(2)
    torch.testing.assert_close(fused_leaky_relu(x, b), want, rtol=0, atol=1e-6)
    x2 = seeded(4, 5)  # (b, c) from EqualLinear
    torch.testing.assert_close(fused_leaky_relu(x2, b), F.leaky_relu(x2 + b, 0.2) * math.sqrt(2))
    assert fused_leaky_relu(x.bfloat16(), b).dtype == torch.bfloat16  # the fp32 bias follows x


# ------------------------------------------------------------------ the official layouts
def test_official_layouts_equal_the_reference_key_lists() -> None:
    prior = meta_layout(lambda: StyleGAN2Generator(512, 512, 8, channel_multiplier=1))
    assert prior == read_key_list("stylegan2_generator_512_keys.txt")
    assert len(prior) == 139 and prior[-1] == ("noises.noise14", (1, 1, 512, 512))
    disc = meta_layout(lambda: StyleGAN2Discriminator(512, channel_multiplier=1))
    assert disc == read_key_list("stylegan2_discriminator_512_keys.txt")
    assert len(disc) == 43


def test_official_layouts_are_recognised() -> None:
    with torch.device("meta"):
        prior = StyleGAN2Generator(512, 512, 8, channel_multiplier=1).state_dict()
        disc = StyleGAN2Discriminator(512, channel_multiplier=1).state_dict()
    assert detect_arch({"params_ema": prior}) == (
        "StyleGAN2Generator",
        dict(out_size=512, num_style_feat=512, num_mlp=8, channel_multiplier=1, resample_kernel=(1, 3, 3, 1),
             lr_mlp=0.01, narrow=1),
    )  # fmt: skip
    assert detect_arch(disc) == (
        "StyleGAN2Discriminator",
        dict(out_size=512, channel_multiplier=1, resample_kernel=(1, 3, 3, 1), stddev_group=4, narrow=1),
    )


# ------------------------------------------------------------------ forward against the reference
GEN = dict(out_size=32, num_style_feat=64, num_mlp=2, channel_multiplier=1, narrow=0.5)
DISC = dict(out_size=32, channel_multiplier=1, narrow=0.5)


@torch.no_grad()
def test_generator_forward_equals_the_reference() -> None:
    g = fill(StyleGAN2Generator(**GEN))
    z, z2, centre, w = seeded(2, 64), seeded(2, 64, seed=1), seeded(1, 64, seed=2), seeded(2, 8, 64, seed=3)
    image, latent = g([z], randomize_noise=False)
    assert latent is None and image.shape == (2, 3, 32, 32)
    assert_summary(image, (-4023.085082, 6548.081447, [-0.5414473, 0.7337778, -1.350086]))
    image, latent = g(
        [z, z2],
        randomize_noise=False,
        inject_index=3,
        truncation=0.7,
        truncation_latent=centre,
        return_latents=True,
    )
    assert latent.shape == (2, 8, 64)
    assert_summary(image, (-6652.919758, 8171.016822, [-0.5951289, 0.2929291, -1.3695465]))
    assert_summary(latent, (-31.127305, 247.353488, [-0.3120549, -0.2545502, -0.0419939]))
    image, _ = g([w], input_is_latent=True, randomize_noise=False)  # W+ codes, one per layer
    assert_summary(image, (-4207.794406, 8077.127675, [-0.286298, -0.3557844, -1.8718369]))
    noise = [getattr(g.noises, f"noise{i}") for i in range(g.num_layers)]
    torch.testing.assert_close(g([w], True, noise)[0], image, rtol=0, atol=0)  # explicit = stored noise


@torch.no_grad()
def test_discriminator_forward_equals_the_reference() -> None:
    d = fill(StyleGAN2Discriminator(**DISC))
    x = seeded(4, 3, 32, 32, seed=4)
    assert_summary(d(x), (1.494462, 1.494462, [0.3937798, 0.3815879, 0.3534632]))  # one group of 4
    assert_summary(d(x[:2]), (0.759333, 0.759333, [0.3937545, 0.3937545, 0.3655789]))  # group = batch
    with pytest.raises(ValueError, match="not a multiple of stddev_group"):
        d(seeded(6, 3, 32, 32))


# ------------------------------------------------------------------ recognition and strict round trip
@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("StyleGAN2Generator", GEN, dict(GEN, channel_multiplier=2)),  # below 64 px cm changes nothing
        (
            "StyleGAN2Generator",
            dict(out_size=64, num_style_feat=32, num_mlp=3, channel_multiplier=2, narrow=0.25),
            None,
        ),
        (
            "StyleGAN2Generator",
            dict(out_size=64, num_style_feat=16, num_mlp=0, channel_multiplier=1, narrow=0.125),
            None,
        ),
        ("StyleGAN2Discriminator", DISC, dict(DISC, channel_multiplier=2)),
        ("StyleGAN2Discriminator", dict(out_size=64, channel_multiplier=1, narrow=0.25), None),
    ],
)
def test_recognised_with_its_arguments_and_strict_round_trip(
    name: str, kwargs: dict[str, Any], expected: dict[str, Any] | None, tmp_path: Path
) -> None:
    model = fill(ARCHS.build({"type": name, **kwargs}))
    path = save_params_ema(model, tmp_path / "w.pth")
    state, _ = read_state_dict(path)
    found, args = detect_arch(state, str(path))
    defaults = {"resample_kernel": (1, 3, 3, 1)}
    defaults |= {"lr_mlp": 0.01} if name == "StyleGAN2Generator" else {"stddev_group": 4}
    assert found == name and args == {**defaults, **(expected or kwargs)}
    rebuilt, notes = build_recognised(state, str(path))
    assert "resample_kernel" in notes[0] and ("lr_mlp" in notes[0] or "stddev_group" in notes[0])
    with torch.no_grad():
        if name == "StyleGAN2Generator":
            z = seeded(2, kwargs["num_style_feat"])
            a, b = model([z], randomize_noise=False)[0], rebuilt([z], randomize_noise=False)[0]
        else:
            x = seeded(2, 3, kwargs["out_size"], kwargs["out_size"])
            a, b = model(x), rebuilt(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    fresh = ARCHS.build({"type": name, **kwargs})
    load_into(fresh, state, "strict", path)  # the file loads strictly into the configured model


def clean_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """GFPGAN's StyleGAN2GeneratorClean keys from ours: nn.Linear mapping layers at odd indices
    (LeakyReLU modules between them), the style-conv bias ``[1, C, 1, 1]`` on the StyleConv itself."""
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "style_mlp":
            parts[1] = str(2 * int(parts[1]) - 1)
        if key.endswith(".activate.bias"):
            parts, value = [*parts[:-2], "bias"], value.reshape(1, -1, 1, 1)
        out[".".join(parts)] = value
    return out


def test_clean_generator_layout_is_not_taken_for_ours() -> None:
    with torch.device("meta"):
        sd = StyleGAN2Generator(**GEN).state_dict()
    assert recognize(sd) is not None
    clean = clean_layout(sd)
    assert "style_conv1.bias" in clean and "style_mlp.3.weight" in clean
    assert recognize(clean) is None
    renumbered_mapping_only = {k: v for k, v in sd.items() if not k.startswith("style_mlp.")}
    renumbered_mapping_only |= {k: v for k, v in clean.items() if k.startswith("style_mlp.")}
    assert recognize(renumbered_mapping_only) is None
    try:
        name, _ = detect_arch(clean)
    except WeightsError:  # unrecognised: expected, unless a clean family is registered too
        return
    assert name not in ("StyleGAN2Generator", "GFPGANv1")


# ------------------------------------------------------------ restorekit's generator contract, options
def test_generator_contract_latent_and_torch_generator() -> None:
    g = fill(StyleGAN2Generator(**GEN))
    z = seeded(2, 64)
    with torch.no_grad():
        a = g(z, torch.Generator().manual_seed(1))
        b = g(z, torch.Generator().manual_seed(1))
        c = g(z, torch.Generator().manual_seed(2))
    assert isinstance(a, torch.Tensor) and a.shape == (2, 3, 32, 32)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-3  # the filled noise strengths are not zero
    plain = StyleGAN2Generator(**GEN).eval()  # noise strengths start at zero: no dependence on noise
    with torch.no_grad():
        torch.testing.assert_close(plain(z), plain([z])[0], rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError):
        g(seeded(1, 65))
    with pytest.raises(TypeError, match="as a list"):
        g(z, True)


def test_channels_last_and_double_backward() -> None:
    g, d = fill(StyleGAN2Generator(**GEN)), fill(StyleGAN2Discriminator(**DISC))
    x = seeded(2, 3, 32, 32, seed=1)
    with torch.no_grad():
        ref_d = d(x)
        d = d.to(memory_format=torch.channels_last)
        torch.testing.assert_close(
            d(x.contiguous(memory_format=torch.channels_last)), ref_d, rtol=1e-5, atol=1e-5
        )
    with pytest.raises(RuntimeError, match="rank 4"):  # why the generator declares no channels_last
        g.to(memory_format=torch.channels_last)
    assert not arch_info({"type": "StyleGAN2Generator", **GEN}).supports_channels_last
    real = x.clone().requires_grad_(True)  # R1: gradient of the gradient penalty reaches the weights
    (grad,) = torch.autograd.grad(d(real).sum(), real, create_graph=True)
    grad.pow(2).sum().backward()
    w = d.conv_body[1].conv2[1].weight.grad
    assert w is not None and torch.isfinite(w).all() and w.abs().sum() > 0


def test_arch_info_and_bad_sizes() -> None:
    assert arch_info({"type": "StyleGAN2Generator", "out_size": 64, "num_style_feat": 32}) == ArchInfo(
        "generator", 32, 3, value_range=(-1, 1), latent_dim=32, supports_channels_last=False, tileable=False
    )
    assert arch_info({"type": "StyleGAN2Discriminator", "out_size": 256}) == ArchInfo(
        "discriminator", 3, 1, input_size=256, value_range=(-1, 1), tileable=False
    )
    with pytest.raises(ConfigError, match="power of two from 8 to 1024, got 48"):
        ARCHS.build({"type": "StyleGAN2Generator", "out_size": 48})
    g = StyleGAN2Generator(16, 8, 1, narrow=0.0625)
    assert [tuple(n.shape) for n in g.make_noise()] == [tuple(b.shape) for b in g.noises.buffers()]
    assert g.mean_latent(10).shape == (1, 8)


@CUDA
def test_cuda_matches_cpu_and_runs_half() -> None:
    g, d = fill(StyleGAN2Generator(**GEN)), fill(StyleGAN2Discriminator(**DISC))
    z, x = seeded(2, 64), seeded(2, 3, 32, 32)
    with torch.no_grad():
        ref_g, ref_d = g([z], randomize_noise=False)[0], d(x)
        g, d = g.cuda(), d.cuda()
        torch.testing.assert_close(g([z.cuda()], randomize_noise=False)[0].cpu(), ref_g, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(d(x.cuda()).cpu(), ref_d, rtol=1e-4, atol=1e-4)
        with torch.autocast("cuda", dtype=torch.float16):
            half_g, half_d = g([z.cuda()], randomize_noise=False)[0], d(x.cuda())
        assert half_g.dtype == torch.float16 and torch.isfinite(half_g).all() and torch.isfinite(half_d).all()
        assert (half_g.float().cpu() - ref_g).abs().max() < 0.05
        out = g.half()(z.cuda().half(), torch.Generator("cuda").manual_seed(0))
        assert out.dtype == torch.float16 and torch.isfinite(out).all()

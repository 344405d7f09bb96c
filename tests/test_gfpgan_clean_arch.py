"""GFPGANv1Clean and StyleGAN2GeneratorClean: the v1.3/v1.4 layout, forward vs GFPGAN, init,
prior loading and freezing, noise, recognition and ArchInfo.

Reference numbers were produced by running TencentARC/GFPGAN 7552a77's own
``gfpgan/archs/gfpganv1_clean_arch.py`` and ``stylegan2_clean_arch.py`` in a scratch folder
(basicsr stubbed: its registry and ``default_init_weights``, copied from BasicSR 8d56e3a), with
every parameter and buffer set by ``fill`` below and the inputs from ``fixed``; nothing here
imports that code. ``tests/data/gfpgan_v14_keys.txt`` says how it was made in its header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import restorekit.archs  # noqa: F401  (registers the architectures)
from restorekit.archs.detect import build_recognised, detect_arch
from restorekit.archs.gfpgan_clean import GFPGANv1Clean, recognize
from restorekit.archs.info import arch_info
from restorekit.archs.stylegan2_clean import StyleGAN2GeneratorClean
from restorekit.errors import ConfigError, WeightsError
from restorekit.registry import ARCHS

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = Path(__file__).resolve().parent / "data"

#: how GFPGANer builds v1.3 / v1.4 (gfpgan/utils.py, arch='clean')
V14 = dict(
    out_size=512,
    num_style_feat=512,
    channel_multiplier=2,
    decoder_load_path=None,
    fix_decoder=False,
    num_mlp=8,
    input_is_latent=True,
    different_w=True,
    narrow=1,
    sft_half=True,
)


def fill(model: torch.nn.Module) -> torch.nn.Module:
    """The rule the reference numbers were made with: the i-th state-dict entry in sorted key
    order is ``randn(shape, generator=seed i)`` times 0.1 (vectors) or 1/sqrt(numel/shape[0])."""
    with torch.no_grad():
        for i, (_, t) in enumerate(sorted(model.state_dict().items())):
            std = 0.1 if t.dim() < 2 else (t.numel() // t.shape[0]) ** -0.5
            t.copy_(torch.randn(t.shape, generator=torch.Generator().manual_seed(i)) * std)
    return model


def fixed(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


PIXELS = [(0, 0, 0, 0), (0, 1, 5, 7), (1, 2, -1, -1), (1, 0, 13, 3)]


def assert_matches(img: torch.Tensor, total: float, pixels: list[float]) -> None:
    assert img.sum().item() == pytest.approx(total, rel=1e-5)
    got = [img[p].item() for p in PIXELS]
    assert got == pytest.approx(pixels, abs=1e-5)


def meta_state(name: str, **kwargs: Any) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return ARCHS.build({"type": name, **kwargs}).state_dict()


def read_key_list(name: str) -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for line in (DATA / name).read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            out.append((key, tuple(int(d) for d in shape.split(","))))
    return out


# ------------------------------------------------------------------ layout and numbers vs GFPGAN
def test_v14_layout_is_gfpgans() -> None:
    layout = [(k, tuple(v.shape)) for k, v in meta_state("GFPGANv1Clean", **V14).items()]
    expected = read_key_list("gfpgan_v14_keys.txt")
    assert layout == expected  # same keys, shapes and order
    assert len(layout) == 285 and ("final_linear.weight", (16 * 512, 256 * 16)) in layout
    assert ("stylegan_decoder.noises.noise14", (1, 1, 512, 512)) in layout
    assert sum(torch.Size(s).numel() for _, s in layout) == 87_143_276


GFPGAN_CASES = {
    # W+ codes, SFT on half the channels, latent input (the releases' choices), 32 px
    "v14-like": (
        dict(
            out_size=32,
            num_style_feat=32,
            channel_multiplier=1,
            num_mlp=2,
            input_is_latent=True,
            different_w=True,
            narrow=0.25,
            sft_half=True,
        ),
        2965.0568848,
        [-0.8624995, 0.6988724, 1.6501802, -0.8748291],
        [0.35456726, 0.23974669, 0.24477601],
    ),
    # one code through the mapping MLP, SFT on all channels, widths × 2 at 64 px
    "sft-full": (
        dict(
            out_size=64,
            num_style_feat=32,
            channel_multiplier=2,
            num_mlp=2,
            input_is_latent=False,
            different_w=False,
            narrow=0.125,
            sft_half=False,
        ),
        1849.0643311,
        [0.507388, -1.8307498, 1.6760504, 0.4859244],
        [0.23177314, 0.33580232, -0.01930808, -0.47888848],
    ),
}


@pytest.mark.parametrize("case", list(GFPGAN_CASES))
def test_gfpgan_forward_matches_reference(case: str) -> None:
    kwargs, total, pixels, rgb_means = GFPGAN_CASES[case]
    net = fill(GFPGANv1Clean(**kwargs)).eval()
    side = kwargs["out_size"]
    x = fixed((2, 3, side, side), 1234).clamp(-1, 1)
    with torch.no_grad():
        img, rgbs = net(x, return_rgb=True, randomize_noise=False)
        cl, _ = net(x.contiguous(memory_format=torch.channels_last), randomize_noise=False)
        no_rgb = net(x, return_rgb=False, randomize_noise=False, weight=0.5)  # GFPGANer passes weight
    assert img.shape == (2, 3, side, side)
    assert_matches(img, total, pixels)
    assert [tuple(r.shape) for r in rgbs] == [(2, 3, 2**k, 2**k) for k in range(3, side.bit_length())]
    assert [r.mean().item() for r in rgbs] == pytest.approx(rgb_means, abs=1e-5)
    torch.testing.assert_close(cl, img, rtol=1e-5, atol=1e-5)
    assert no_rgb[1] == [] and torch.equal(no_rgb[0], img)


def test_generator_forward_matches_reference() -> None:
    g = fill(
        StyleGAN2GeneratorClean(out_size=32, num_style_feat=32, num_mlp=3, channel_multiplier=1, narrow=0.25)
    )
    z1, z2 = fixed((2, 32), 7), fixed((2, 32), 8)
    with torch.no_grad():
        img, lat = g([z1], input_is_latent=False, randomize_noise=False, return_latents=True)
        assert_matches(img, -322.6856079, [-1.2142117, 0.9859138, 0.1038472, -1.2313368])
        assert lat.shape == (2, 8, 32) and lat.sum().item() == pytest.approx(64.456009, rel=1e-5)
        img, lat = g([z1], input_is_latent=True, randomize_noise=False)
        assert lat is None
        assert_matches(img, -295.5805054, [-1.3548994, 0.8987285, 0.133888, -1.1700262])
        img, _ = g([fixed((2, 8, 32), 9)], input_is_latent=True, randomize_noise=False)  # W+
        assert_matches(img, -1071.8303223, [-1.0982492, 0.6189948, 0.1120247, -1.3411937])
        img, lat = g(
            [z1, z2],
            randomize_noise=False,
            truncation=0.7,
            truncation_latent=fixed((1, 32), 10),
            inject_index=3,
            return_latents=True,
        )
        assert_matches(img, -117.0506439, [-1.134341, 0.9343845, 0.1397152, -1.1326294])
        assert lat.sum().item() == pytest.approx(74.439255, rel=1e-5)


def test_seeded_init_is_gfpgans() -> None:
    """Same seed, same weights as GFPGAN (its RNG order), so training from scratch is comparable."""
    torch.manual_seed(0)
    net = GFPGANv1Clean(
        out_size=32,
        num_style_feat=16,
        channel_multiplier=1,
        num_mlp=2,
        narrow=0.125,
        different_w=True,
        sft_half=True,
    )
    sd = net.state_dict()
    expected = {
        "conv_body_first.weight": -0.963487,
        "final_linear.weight": 10.171741,
        "stylegan_decoder.style_mlp.3.weight": 1.389631,
        "stylegan_decoder.style_conv1.modulated_conv.modulation.weight": -1.984468,
        "stylegan_decoder.noises.noise4": 11.496435,
        "condition_shift.2.2.weight": -2.258728,
    }
    assert {k: sd[k].sum().item() for k in expected} == pytest.approx(expected, abs=1e-4)
    assert torch.equal(sd["stylegan_decoder.style_conv1.modulated_conv.modulation.bias"], torch.ones(64))


# ------------------------------------------------------------------ noise
def test_noise_fixed_or_random() -> None:
    # filled: a fresh init has zero noise strengths, so noise would change nothing
    net = fill(
        GFPGANv1Clean(out_size=16, num_style_feat=8, num_mlp=1, narrow=0.0625, input_is_latent=True)
    ).eval()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        a, b = net(x, randomize_noise=False)[0], net(x, randomize_noise=False)[0]
        c, d = net(x)[0], net(x)[0]
    assert torch.equal(a, b)
    assert not torch.allclose(c, d) and not torch.allclose(a, c)

    g = fill(StyleGAN2GeneratorClean(out_size=16, num_style_feat=8, num_mlp=1, narrow=0.0625)).eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        same = [g(z, torch.Generator().manual_seed(3)) for _ in range(2)]
        other = g(z, torch.Generator().manual_seed(4))
        fixed_noise = g([z], randomize_noise=False)[0]
    assert torch.equal(*same) and same[0].shape == (2, 3, 16, 16)
    assert not torch.allclose(same[0], other)
    assert torch.equal(fixed_noise, g([z], randomize_noise=False)[0])
    with pytest.raises(TypeError, match="as a list"):
        g(z, True)


# ------------------------------------------------------------------ prior loading and freezing
SMALL = dict(out_size=16, num_style_feat=8, channel_multiplier=1, num_mlp=2, narrow=0.0625)


def _decoder_file(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    prior = StyleGAN2GeneratorClean(16, num_style_feat=8, num_mlp=2, channel_multiplier=1, narrow=0.0625)
    state = {k: v + 1 for k, v in prior.state_dict().items()}  # unlike any fresh init
    path = tmp_path / "prior.pth"
    torch.save({"params_ema": state, "params": prior.state_dict()}, path)
    return path, state


def test_decoder_load_path_loads_and_fix_decoder_freezes(tmp_path: Path) -> None:
    path, state = _decoder_file(tmp_path)
    net = GFPGANv1Clean(**SMALL, decoder_load_path=str(path), fix_decoder=True)
    for key, value in net.stylegan_decoder.state_dict().items():
        assert torch.equal(value, state[key]), key  # params_ema, buffers included
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    decoder = {f"stylegan_decoder.{n}" for n, _ in net.stylegan_decoder.named_parameters()}
    assert frozen == decoder and "stylegan_decoder.style_mlp.1.weight" in frozen
    assert all(p.requires_grad for n, p in net.named_parameters() if n not in decoder)
    free = GFPGANv1Clean(**SMALL, decoder_load_path=str(path), fix_decoder=False)
    assert all(p.requires_grad for p in free.parameters())


def test_decoder_load_path_errors_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError) as err:
        GFPGANv1Clean(**SMALL, decoder_load_path=str(missing))
    assert str(err.value) == f"network_g.decoder_load_path: {missing}: weights file not found"
    wrong = tmp_path / "wide.pth"
    torch.save({"params_ema": StyleGAN2GeneratorClean(16, 8, 2, 1, narrow=0.125).state_dict()}, wrong)
    with pytest.raises(
        WeightsError, match=r"^network_g\.decoder_load_path: .*wide\.pth: does not fit"
    ) as err:
        GFPGANv1Clean(**SMALL, decoder_load_path=str(wrong))
    assert "\n" not in str(err.value) and "shape mismatch" in str(err.value)


# ------------------------------------------------------------------ recognition
RECOGNISED = [
    ("GFPGANv1Clean", {**V14}),  # the v1.3 / v1.4 release layout
    ("GFPGANv1Clean", {**V14, "out_size": 64}),
    (
        "GFPGANv1Clean",
        dict(SMALL, out_size=64, channel_multiplier=2, different_w=True, sft_half=False, narrow=0.125),
    ),
    ("GFPGANv1Clean", dict(SMALL, different_w=False, sft_half=True, num_mlp=0)),
    (
        "StyleGAN2GeneratorClean",
        dict(out_size=512, num_style_feat=512, num_mlp=8, channel_multiplier=2, narrow=1),
    ),
    (
        "StyleGAN2GeneratorClean",
        dict(out_size=64, num_style_feat=16, num_mlp=3, channel_multiplier=1, narrow=0.5),
    ),
    (
        "StyleGAN2GeneratorClean",
        dict(out_size=32, num_style_feat=16, num_mlp=0, channel_multiplier=2, narrow=0.3),
    ),
]


def _full(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if name == "GFPGANv1Clean":  # inference: no prior to load or freeze; the releases' latent input
        return {**kwargs, "decoder_load_path": None, "fix_decoder": False, "input_is_latent": True}
    return kwargs


@pytest.mark.parametrize(("name", "kwargs"), RECOGNISED)
def test_detect_gives_the_arguments(name: str, kwargs: dict[str, Any]) -> None:
    sd = meta_state(name, **kwargs)
    found, args = detect_arch({"params_ema": sd})
    assert found == name
    expected = _full(name, kwargs)
    if expected["out_size"] < 64:  # below 64 px channel_multiplier is invisible: the default
        expected["channel_multiplier"] = 1 if name == "GFPGANv1Clean" else 2
    assert args == {k: expected[k] for k in args} and set(args) == set(expected)


def test_other_layouts_are_not_taken() -> None:
    gfpgan_v1 = meta_state("GFPGANv1", out_size=32, num_style_feat=16, narrow=0.25, different_w=True)
    basicsr_g = meta_state("StyleGAN2Generator", out_size=32, num_style_feat=16, num_mlp=2, narrow=0.25)
    assert detect_arch(gfpgan_v1)[0] == "GFPGANv1" and recognize(gfpgan_v1) is None
    assert detect_arch(basicsr_g)[0] == "StyleGAN2Generator"
    clean_g = meta_state("StyleGAN2GeneratorClean", out_size=32, num_style_feat=16, num_mlp=2, narrow=0.25)
    assert recognize({f"stylegan_decoder.{k}": v for k, v in clean_g.items()}) is None  # no encoder


def test_strict_round_trip_and_unstored_note(tmp_path: Path) -> None:
    kwargs = dict(SMALL, different_w=True, sft_half=True, input_is_latent=True)
    net = fill(GFPGANv1Clean(**kwargs)).eval()
    model, notes = build_recognised({"params_ema": net.state_dict()}, "v14.pth")
    assert type(model) is GFPGANv1Clean and not model.training
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x, randomize_noise=False)[0], net(x, randomize_noise=False)[0])
    assert len(notes) == 1 and "input_is_latent=True assumed" in notes[0]
    assert notes[0].startswith("v14.pth: GFPGANv1Clean") and "--arch-opt input_is_latent=VALUE" in notes[0]
    # an override of the unstored argument is taken and no longer reported
    model, notes = build_recognised(net.state_dict(), "m.pth", {"input_is_latent": False})
    assert model.input_is_latent is False and notes == []
    g = fill(StyleGAN2GeneratorClean(16, 8, 1, 1, 0.0625))
    model, notes = build_recognised(g.state_dict(), "g.pth")
    assert notes == []  # every argument of the generator is in its shapes
    z = torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(model([z], randomize_noise=False)[0], g([z], randomize_noise=False)[0])


# ------------------------------------------------------------------ ArchInfo and arguments
def test_arch_info() -> None:
    net = ARCHS.build({"type": "GFPGANv1Clean", **SMALL})
    info = arch_info(net)
    assert (info.purpose, info.value_range, info.input_size) == ("face", (-1.0, 1.0), 16)
    assert (info.in_channels, info.out_channels, info.scale, info.tileable) == (3, 3, 1, False)
    assert arch_info({"type": "GFPGANv1Clean", **V14}).input_size == 512
    with pytest.raises(RuntimeError):  # the declared input size is a real constraint
        net(torch.rand(1, 3, 32, 32))
    g = arch_info({"type": "StyleGAN2GeneratorClean", "out_size": 32, "num_style_feat": 24})
    assert (g.purpose, g.latent_dim, g.in_channels, g.out_channels) == ("generator", 24, 24, 3)
    assert g.value_range == (-1.0, 1.0) and not g.supports_fp16 and not g.supports_channels_last
    with pytest.raises(RuntimeError):  # the declared latent length is a real constraint
        ARCHS.build({"type": "StyleGAN2GeneratorClean", "out_size": 8, "num_style_feat": 24})(
            torch.randn(1, 25)
        )


def test_bad_out_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="GFPGANv1Clean: out_size must be a power of two"):
        GFPGANv1Clean(out_size=500)
    with pytest.raises(ConfigError, match="StyleGAN2GeneratorClean: out_size must be a power of two"):
        StyleGAN2GeneratorClean(out_size=2048)

"""SwinIR: official key layout, recognition of every release type, padding, tiling, attention paths.

The expected keys, shapes and buffer values below were written from a reading of the official
``models/network_swinir.py`` (JingyunLiang/SwinIR) and BasicSR's ``swinir_arch.py`` (the same
layout), not read back from our module: ``official_layout`` enumerates what those constructors
register. Big models are built on the meta device only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import restorekit.archs  # noqa: F401
from restorekit.archs.detect import build_from_state_dict, detect_arch
from restorekit.archs.info import arch_info
from restorekit.archs.layers.swin import WindowAttention
from restorekit.archs.swinir import SwinIR
from restorekit.inference.tiling import tiled_forward
from restorekit.registry import ARCHS

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small nets run faster on one thread


def official_layout(
    in_chans: int,
    embed_dim: int,
    depths: list[int],
    num_heads: list[int],
    window_size: int,
    img_size: int,
    mlp_ratio: float,
    upscale: int,
    upsampler: str,
    resi_connection: str = "1conv",
) -> dict[str, tuple[int, ...]]:
    """Key → shape of the official SwinIR's state dict (patch_norm on, ape off, qkv_bias on)."""
    d, ws, n = embed_dim, window_size, window_size**2
    out = {"conv_first.weight": (d, in_chans, 3, 3), "conv_first.bias": (d,)}
    out |= {"patch_embed.norm.weight": (d,), "patch_embed.norm.bias": (d,)}

    def conv_block(prefix: str) -> dict[str, tuple[int, ...]]:
        if resi_connection == "1conv":
            return {f"{prefix}.weight": (d, d, 3, 3), f"{prefix}.bias": (d,)}
        q = d // 4
        return {
            f"{prefix}.0.weight": (q, d, 3, 3),
            f"{prefix}.0.bias": (q,),
            f"{prefix}.2.weight": (q, q, 1, 1),
            f"{prefix}.2.bias": (q,),
            f"{prefix}.4.weight": (d, q, 3, 3),
            f"{prefix}.4.bias": (d,),
        }

    for i, (depth, heads) in enumerate(zip(depths, num_heads)):
        for j in range(depth):
            p = f"layers.{i}.residual_group.blocks.{j}"
            out |= {f"{p}.norm1.weight": (d,), f"{p}.norm1.bias": (d,)}
            out[f"{p}.attn.relative_position_bias_table"] = ((2 * ws - 1) ** 2, heads)
            out[f"{p}.attn.relative_position_index"] = (n, n)
            out |= {f"{p}.attn.qkv.weight": (3 * d, d), f"{p}.attn.qkv.bias": (3 * d,)}
            out |= {f"{p}.attn.proj.weight": (d, d), f"{p}.attn.proj.bias": (d,)}
            out |= {f"{p}.norm2.weight": (d,), f"{p}.norm2.bias": (d,)}
            hidden = int(d * mlp_ratio)
            out |= {f"{p}.mlp.fc1.weight": (hidden, d), f"{p}.mlp.fc1.bias": (hidden,)}
            out |= {f"{p}.mlp.fc2.weight": (d, hidden), f"{p}.mlp.fc2.bias": (d,)}
            if j % 2 == 1:  # shifted block: mask buffer for the training patch
                out[f"{p}.attn_mask"] = ((img_size // ws) ** 2, n, n)
        out |= conv_block(f"layers.{i}.conv")
    out |= {"norm.weight": (d,), "norm.bias": (d,)}
    out |= conv_block("conv_after_body")

    def conv(name: str, cout: int, cin: int) -> None:
        out[f"{name}.weight"], out[f"{name}.bias"] = (cout, cin, 3, 3), (cout,)

    if upsampler in ("pixelshuffle", "nearest+conv"):
        conv("conv_before_upsample.0", 64, d)
    if upsampler == "pixelshuffle":
        stages = [9] if upscale == 3 else [4] * (upscale.bit_length() - 1)
        for k, mult in enumerate(stages):
            conv(f"upsample.{2 * k}", mult * 64, 64)
        conv("conv_last", in_chans, 64)
    elif upsampler == "pixelshuffledirect":
        conv("upsample.0", in_chans * upscale**2, d)
    elif upsampler == "nearest+conv":
        for name in ["conv_up1"] + (["conv_up2"] if upscale == 4 else []) + ["conv_hr"]:
            conv(name, 64, 64)
        conv("conv_last", in_chans, 64)
    else:
        conv("conv_last", in_chans, d)
    return out


def _official_index(ws: int) -> torch.Tensor:
    """The official relative_position_index, pair by pair: (dy + ws-1)·(2ws-1) + (dx + ws-1)."""
    idx = torch.empty(ws * ws, ws * ws, dtype=torch.long)
    for a in range(ws * ws):
        for b in range(ws * ws):
            dy, dx = a // ws - b // ws, a % ws - b % ws
            idx[a, b] = (dy + ws - 1) * (2 * ws - 1) + dx + ws - 1
    return idx


def _official_mask(h: int, ws: int, shift: int) -> torch.Tensor:
    """The official attn_mask: -100 between tokens of different roll regions (three bands per axis)."""
    band = [0 if r < h - ws else 1 if r < h - shift else 2 for r in range(h)]
    ids = [[3 * band[r] + band[c] for c in range(h)] for r in range(h)]
    wins = []
    for wr in range(0, h, ws):
        for wc in range(0, h, ws):
            wins.append([ids[r][c] for r in range(wr, wr + ws) for c in range(wc, wc + ws)])
    t = torch.tensor(wins, dtype=torch.float32)
    return torch.where(t[:, None, :] != t[:, :, None], -100.0, 0.0)


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


SMALL = dict(
    in_chans=3,
    embed_dim=16,
    depths=[2, 2],
    num_heads=[2, 4],
    window_size=4,
    img_size=16,
    mlp_ratio=2.0,
    upscale=2,
    upsampler="pixelshuffle",
)


def test_small_variant_has_the_official_keys_and_buffers() -> None:
    expected = official_layout(**SMALL)
    # 2 layers x (2 blocks x 14 + 1 mask + conv 2) + conv_first, patch norm, norm,
    # conv_after_body, conv_before_upsample, one upsample conv, conv_last (2 each)
    assert len(expected) == 2 * (2 * 14 + 1 + 2) + 7 * 2 == 76
    model = ARCHS.build({"type": "SwinIR", **SMALL})
    assert _shapes(model) == expected
    sd = model.state_dict()
    index = sd["layers.0.residual_group.blocks.0.attn.relative_position_index"]
    assert torch.equal(index, _official_index(4))
    assert torch.equal(sd["layers.1.residual_group.blocks.1.attn_mask"], _official_mask(16, 4, 2))
    assert "mean" not in sd


def test_full_classical_x2_layout_on_meta() -> None:
    kw = dict(
        in_chans=3, embed_dim=180, depths=[6] * 6, num_heads=[6] * 6, window_size=8, img_size=48,
        mlp_ratio=2, upscale=2, upsampler="pixelshuffle",
    )  # fmt: skip
    with torch.device("meta"):
        model = ARCHS.build({"type": "SwinIR", **kw})
    shapes = _shapes(model)
    assert len(shapes) == 548  # 6 x (6 x 14 + 3 masks + 2) + 14
    assert shapes == official_layout(**kw)
    assert shapes["layers.5.residual_group.blocks.5.attn_mask"] == (36, 64, 64)
    assert shapes["layers.0.residual_group.blocks.0.attn.relative_position_bias_table"] == (225, 6)
    assert shapes["upsample.0.weight"] == (256, 64, 3, 3)
    name, kwargs = detect_arch({"params": model.state_dict()})
    assert name == "SwinIR"
    assert kwargs["depths"] == (6,) * 6 and kwargs["img_size"] == 48 and kwargs["upscale"] == 2


def _release(img: int, up: int, ups: str, **kw: Any) -> dict[str, Any]:
    base = dict(
        img_size=img, in_chans=3, embed_dim=180, depths=(6,) * 6, num_heads=(6,) * 6, window_size=8,
        mlp_ratio=2.0, img_range=1.0, upscale=up, upsampler=ups, resi_connection="1conv",
    )  # fmt: skip
    return base | kw


LIGHT = dict(embed_dim=60, depths=(6,) * 4, num_heads=(6,) * 4)
REAL_L = dict(embed_dim=240, depths=(6,) * 9, num_heads=(8,) * 9, resi_connection="3conv")
RELEASES = {  # main_test_swinir.py's define_model, one entry per released model type
    "classical_x2_s48": _release(48, 2, "pixelshuffle"),
    "classical_x3_s64": _release(64, 3, "pixelshuffle"),
    "classical_x4_s64": _release(64, 4, "pixelshuffle"),
    "lightweight_x2": _release(64, 2, "pixelshuffledirect", **LIGHT),
    "lightweight_x3": _release(64, 3, "pixelshuffledirect", **LIGHT),
    "lightweight_x4": _release(64, 4, "pixelshuffledirect", **LIGHT),
    "real_x4_1conv": _release(64, 4, "nearest+conv"),
    "real_x2_1conv": _release(64, 2, "nearest+conv"),
    "real_x4_3conv_large": _release(64, 4, "nearest+conv", **REAL_L),
    "color_dn": _release(128, 1, ""),
    "gray_dn": _release(128, 1, "", in_chans=1),
    "gray_jpeg_car": _release(126, 1, "", in_chans=1, window_size=7, img_range=255.0),
    "color_jpeg_car": _release(126, 1, "", window_size=7, img_range=255.0),
}


@pytest.mark.parametrize("release", RELEASES)
def test_every_release_type_is_recognised(release: str) -> None:
    kw = RELEASES[release]
    layout = official_layout(**{k: v for k, v in kw.items() if k != "img_range"} | {"depths": [2, 2]})
    sd = {k: torch.empty(shape, device="meta") for k, shape in layout.items()}  # the file, reduced depth
    name, got = detect_arch({"params_ema": sd})
    assert name == "SwinIR"
    assert got["depths"] == (2, 2)
    for key, value in kw.items():
        if key not in ("depths", "num_heads"):
            assert got[key] == value, (release, key, got[key], value)
    assert got["num_heads"] == kw["num_heads"][:2]
    assert got["ape"] is False and got["patch_norm"] is True and got["qkv_bias"] is True


def test_official_state_dict_loads_strictly_with_and_without_buffers() -> None:
    torch.manual_seed(0)
    layout = official_layout(**SMALL)
    sd: dict[str, torch.Tensor] = {}
    for key, shape in layout.items():
        if key.endswith("relative_position_index"):
            sd[key] = _official_index(4)
        elif key.endswith("attn_mask"):
            sd[key] = _official_mask(16, 4, 2)
        else:
            sd[key] = torch.randn(shape) * 0.05
    model = build_from_state_dict({"params": sd})  # detects, builds, loads with strict=True
    assert isinstance(model, SwinIR)
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        ref = model(x)
    derived = {k: v for k, v in sd.items() if not k.endswith(("relative_position_index", "attn_mask"))}
    again = ARCHS.build({"type": "SwinIR", **SMALL, "drop_path_rate": 0.1}).eval()
    again.load_state_dict(derived, strict=True)  # the derived buffers are recomputed, not required
    with torch.no_grad():
        assert torch.equal(again(x), ref)
    with pytest.raises(RuntimeError, match="attn_mask"):  # a wrong training size is still an error
        again.load_state_dict(sd | {"layers.0.residual_group.blocks.1.attn_mask": torch.zeros(9, 16, 16)})


def test_ape_gives_img_size_and_info_is_declared() -> None:
    kw = SMALL | {"ape": True, "img_size": 24, "depths": [1], "num_heads": [2]}  # no shifted block
    with torch.device("meta"):
        sd = ARCHS.build({"type": "SwinIR", **kw}).state_dict()
    assert tuple(sd["absolute_pos_embed"].shape) == (1, 24 * 24, 16)
    _, got = detect_arch(sd)
    assert got["img_size"] == 24 and got["ape"] is True
    info = arch_info({"type": "SwinIR", **SMALL})
    assert (info.scale, info.size_multiple, info.supports_fp16, info.tileable) == (2, 1, False, True)
    assert arch_info({"type": "SwinIR", **SMALL, "upsampler": "", "upscale": 1}).scale == 1


def _random(seed: int = 0, **kw: Any) -> SwinIR:
    torch.manual_seed(seed)
    model = ARCHS.build({"type": "SwinIR", **(SMALL | kw)}).eval()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point() and not name.endswith("attn_mask"):
                t.add_(torch.randn_like(t) * 0.05)
    return model


def test_odd_size_equals_official_pad_then_crop() -> None:
    model = _random()
    x = torch.rand(2, 3, 37, 45)
    with torch.no_grad():
        out = model(x)
        padded = F.pad(x, (0, 3, 0, 3), mode="reflect")  # to 40 x 48, bottom/right, as upstream
        ref = model(padded)[..., : 37 * 2, : 45 * 2]
        other = model(F.pad(x, (0, 3, 0, 3), mode="replicate"))[..., : 37 * 2, : 45 * 2]
    assert out.shape == (2, 3, 74, 90)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert (out - other).abs().max() > 1e-4  # the padding mode is visible: the check can fail


def test_tiled_equals_whole_on_odd_sizes() -> None:
    # one RSTB of a shifted and a non-shifted block, window 4: receptive-field radius <= 10 input
    # pixels, so a blend margin of 10 (overlap 28) is exact when tiles start on the window grid
    model = _random(depths=[2], num_heads=[2], upsampler="pixelshuffledirect")
    x = torch.rand(3, 37, 45)
    with torch.no_grad():
        whole = model(x[None])[0].permute(1, 2, 0).numpy()
    tiled = tiled_forward(model, x, tile=36, overlap=28, multiple=4)
    assert tiled.shape == whole.shape == (74, 90, 3)
    assert np.abs(tiled - whole).max() < 1e-5
    rough = tiled_forward(model, x, tile=36, overlap=4, multiple=4)
    assert np.abs(rough - whole).max() > 1e-4  # too little overlap differs: tiling really happened


@pytest.mark.parametrize("hw", [(16, 16), (13, 21)])
def test_sdpa_equals_plain_attention(hw: tuple[int, int]) -> None:
    model = _random(resi_connection="3conv", qk_scale=0.3)
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        fused = model(x)
        model.set_fused_attention(False)
        plain = model(x)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    assert all(not m.fused for m in model.modules() if isinstance(m, WindowAttention))


class _SoftmaxDtypes(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.dtypes: list[torch.dtype] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") == "softmax":
            self.dtypes.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


def test_plain_attention_softmax_runs_in_fp32_under_autocast() -> None:
    model = _random()
    model.set_fused_attention(False)
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16), _SoftmaxDtypes() as seen:
            low = model(x)
    assert seen.dtypes and set(seen.dtypes) == {torch.float32}
    assert torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), ref, rtol=0.05, atol=0.05)


def test_use_checkpoint_gives_the_same_gradients() -> None:
    plain, ckpt = _random(drop_path_rate=0.0), _random(drop_path_rate=0.0, use_checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 12, 12)
    grads = []
    for model in (plain, ckpt):
        model.train()
        model.zero_grad()
        model(x).square().mean().backward()
        grads.append(model.conv_first.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_gray_model_has_no_mean_and_keeps_its_range() -> None:
    model = _random(in_chans=1, upsampler="", upscale=1, img_range=255.0, window_size=7, img_size=14)
    assert model.mean.shape == (1, 1, 1, 1) and float(model.mean.abs().sum()) == 0.0
    x = torch.rand(1, 1, 9, 10)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()

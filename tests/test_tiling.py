"""Tiled inference: layout, blend weights, and exact equality with whole-image inference.

The exactness promise: a network whose receptive-field radius r (input pixels) is at most the
blend margin ``(overlap - overlap // 4) // 2`` gives the whole-image output to float precision.
Every such test is paired with a too-small overlap that must *differ*, so it cannot pass by
accident (e.g. by never tiling).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.archs import EDSR
from restorekit.archs.info import arch_info
from restorekit.errors import RestorekitError
from restorekit.inference.tiling import (
    axis_weights,
    blend_profile,
    count_tiles,
    pad_to,
    plan_axis,
    tiled_forward,
)
from restorekit.inference.upscale import Upscaler
from restorekit.registry import ARCHS


def conv_net(layers: int, scale: int, seed: int = 0) -> nn.Module:
    """``layers`` 3×3 convs (receptive-field radius ``layers``) and a pixel shuffle."""
    torch.manual_seed(seed)
    mods: list[nn.Module] = [nn.Conv2d(3, 8, 3, 1, 1)]
    for _ in range(layers - 2):
        mods += [nn.LeakyReLU(0.2), nn.Conv2d(8, 8, 3, 1, 1)]
    mods += [nn.LeakyReLU(0.2), nn.Conv2d(8, 3 * scale * scale, 3, 1, 1), nn.PixelShuffle(scale)]
    return nn.Sequential(*mods).eval()


class UnshuffleNet(nn.Module):
    """×2 net that pixel-unshuffles by 2 first (like RRDBNet ×2): its output depends on the phase."""

    size_multiple = 2

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv1 = nn.Conv2d(12, 16, 3, 1, 1)
        self.conv2 = nn.Conv2d(16, 48, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(F.pixel_unshuffle(x, 2)), 0.2))
        return F.pixel_shuffle(y, 4)


def whole(net: nn.Module, x: Tensor) -> np.ndarray:
    with torch.no_grad():
        return net(x[None])[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("multiple", [1, 2, 4])
def test_plan_axis_covers_with_overlap_equal_bounded_tiles(multiple: int) -> None:
    for length in range(1, 140, 3):
        for tile, overlap in [(8, 0), (16, 4), (16, 7), (32, 8), (40, 12)]:
            plan = plan_axis(length, tile, overlap, multiple)
            starts = plan.starts
            assert plan.padded % multiple == 0 and length <= plan.padded < length + multiple
            assert starts[0] == 0 and starts[-1] + plan.size == plan.padded  # covers the axis
            assert all(s % multiple == 0 for s in starts) and plan.size % multiple == 0
            assert list(starts) == sorted(set(starts))
            if len(starts) > 1:
                assert plan.size <= tile
                shared = [plan.size - (b - a) for a, b in itertools.pairwise(starts)]
                assert min(shared) >= overlap
            else:
                assert plan.size == plan.padded


def test_plan_axis_keeps_redundant_work_small() -> None:
    # 2048 px in tiles of ≤512 with overlap 32: 5 tiles of 436 (6 % extra per axis),
    # not 480-px strides plus a flush last tile (which would cost 5 full tiles of 512).
    plan = plan_axis(2048, 512, 32)
    assert len(plan.starts) == 5 and plan.size == 436
    assert plan_axis(300, 512, 32).starts == (0,)  # smaller than a tile: one tile
    assert plan_axis(300, 0, 32).size == 300  # tile 0: whole axis


def test_axis_weights_sum_to_one_and_skip_tile_margins() -> None:
    plan = plan_axis(100, 32, 16)
    scale = 3
    weights = axis_weights(plan, scale, 16)
    total = torch.zeros(plan.padded * scale)
    for w, s in zip(weights, plan.starts):
        total[s * scale : s * scale + len(w)] += w
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    margin, ramp = blend_profile(16)
    assert (margin, ramp) == (6, 4)
    inner = weights[1]  # a middle tile: both edges lie inside the image
    assert float(inner[: margin * scale].abs().max()) == 0.0
    assert float(inner[-margin * scale :].abs().max()) == 0.0
    assert float(inner[margin * scale]) > 0.0
    assert float(weights[0][0]) == 1.0  # the image border is not an inner edge: full weight


@pytest.mark.parametrize("hw", [(77, 101), (20, 13), (64, 64), (1, 50)])
@pytest.mark.parametrize("batch", [1, 3])
def test_tiled_equals_whole_when_receptive_field_fits(hw: tuple[int, int], batch: int) -> None:
    net = conv_net(layers=4, scale=2)  # r = 4
    x = torch.rand(3, *hw, generator=torch.Generator().manual_seed(0))
    ref = whole(net, x)
    out = tiled_forward(net, x, tile=32, overlap=16, batch=batch)  # margin 6 ≥ 4
    assert out.shape == ref.shape == (hw[0] * 2, hw[1] * 2, 3)
    assert np.abs(out - ref).max() < 1e-5


def test_too_small_overlap_differs_from_whole() -> None:
    net = conv_net(layers=4, scale=2)
    x = torch.rand(3, 77, 101, generator=torch.Generator().manual_seed(0))
    out = tiled_forward(net, x, tile=32, overlap=4)  # margin 1 < r = 4
    assert np.abs(out - whole(net, x)).max() > 1e-3


def test_scale_one_network_is_exact() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 3, 3, 1, 1)).eval()
    x = torch.rand(3, 45, 70)
    out = tiled_forward(net, x, tile=16, overlap=8)  # r = 2, margin 3
    assert out.shape == (45, 70, 3)
    assert np.abs(out - whole(net, x)).max() < 1e-5


def test_edsr_tiles_equal_whole_image() -> None:
    torch.manual_seed(0)
    net = EDSR(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=2).eval()
    x = torch.rand(3, 53, 61)
    ref = whole(net, x)
    assert np.abs(tiled_forward(net, x, tile=40, overlap=24) - ref).max() < 1e-5  # margin 9 ≥ r ≈ 6
    assert np.abs(tiled_forward(net, x, tile=32, overlap=4) - ref).max() > 1e-4


def test_unshuffle_net_tiles_stay_phase_aligned() -> None:
    net = UnshuffleNet().eval()
    x = torch.rand(3, 51, 51)  # odd sides: padded to multiples of 2 and cropped back
    padded = pad_to(x, 52, 52)
    ref = whole(net, padded)[: 51 * 2, : 51 * 2]
    out = tiled_forward(net, x, tile=32, overlap=16, multiple=2)
    assert out.shape == (102, 102, 3)
    assert np.abs(out - ref).max() < 1e-5
    # without the multiple, some tiles start on odd pixels: another unshuffle phase, other outputs
    assert any(s % 2 for s in plan_axis(52, 32, 13).starts)
    assert np.abs(tiled_forward(net, padded, tile=32, overlap=13)[:102, :102] - ref).max() > 1e-3


def _rrdbnet(scale: int) -> nn.Module:
    torch.manual_seed(0)
    spec = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "scale": scale, "num_feat": 8,
            "num_block": 1, "num_grow_ch": 4}  # fmt: skip
    return ARCHS.build(spec).eval()


def test_rrdbnet_pixel_unshuffle_any_size() -> None:
    for scale in (1, 2):
        net = _rrdbnet(scale)
        multiple = arch_info(net).size_multiple
        assert multiple == {1: 4, 2: 2}[scale]
        x = torch.rand(3, 37, 29)
        out = tiled_forward(net, x, tile=32, overlap=8, multiple=multiple)
        assert out.shape == (37 * scale, 29 * scale, 3)
        full = tiled_forward(net, x, tile=0, overlap=8, multiple=multiple)
        assert np.abs(out - full).max() < 0.05  # deep net: not exact, but close


def test_upscaler_sizes_tiles_for_the_size_multiple() -> None:
    net = _rrdbnet(1)  # ×1 unshuffles by 4: every tile side and start must be a multiple of 4
    seen: list[tuple[int, ...]] = []
    net.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape)))
    up = Upscaler(net, tile=10, tile_overlap=4)
    assert up.multiple == 4 and up.net_scale == 1
    img = np.random.default_rng(0).random((21, 30, 3), dtype=np.float32)
    out = up.restore(img).color
    assert out.shape == (21, 30, 3)
    assert len(seen) == up.count_tiles(img) > 4
    assert all(h % 4 == 0 and w % 4 == 0 and h <= 10 and w <= 10 for _, _, h, w in seen), seen


def test_device_batches_are_bounded_by_the_tile() -> None:
    seen: list[tuple[int, ...]] = []
    net = conv_net(layers=3, scale=2)

    def fn(t: Tensor) -> Tensor:
        seen.append(tuple(t.shape))
        return net(t)

    done: list[int] = []
    x = torch.rand(3, 150, 260)
    tiled_forward(fn, x, tile=64, overlap=16, batch=2, progress=done.append)
    assert max(s[2] for s in seen) <= 64 and max(s[3] for s in seen) <= 64
    assert max(s[0] for s in seen) <= 2
    assert sum(done) == count_tiles(150, 260, 64, 16) == sum(s[0] for s in seen) > 10


def test_tiling_errors_are_one_line() -> None:
    with pytest.raises(RestorekitError, match="smaller than --tile"):
        plan_axis(100, 16, 16)

    def half(t: Tensor) -> Tensor:
        return t[:, :, ::2, ::2]

    with pytest.raises(RestorekitError, match="integer upscaling"):
        tiled_forward(half, torch.rand(3, 20, 20), tile=0)

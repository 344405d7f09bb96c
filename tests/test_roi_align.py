"""``layers.roi_align`` is ``torchvision.ops.roi_align`` (torchvision does not import here).

The reference is ``roi_align_definition`` below: a line-by-line scalar transcription of
torchvision's CPU kernel (``torchvision/csrc/ops/cpu/roi_align_kernel.cpp`` and the bilinear
pre-computation of ``roi_align_common.h``), one sample at a time in float64. The vectorised
operator must agree with it on random boxes (fractional, partly or wholly outside the image,
malformed), on GFPGAN's eye/mouth crops, and on a few values worked out by hand.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from restorekit.archs.layers.roi_align import boxes_to_rois, roi_align
from restorekit.errors import DataError

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (in addition to the CPU tests)")


def roi_align_definition(
    inp: np.ndarray,
    rois: np.ndarray,
    pooled_h: int,
    pooled_w: int,
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> np.ndarray:
    """torchvision's kernel, transcribed: loops over rois, bins and samples (channels as a vector).

    Arithmetic is in ``inp``'s dtype, as the kernel's ``T``: for a float32 input the sample
    positions themselves are float32 (about 3e-5 px off at x ~ 500), which moves a crop of a
    noisy image by more than 1e-5 from the float64 answer; the operator must match the float32
    kernel, not a more precise one.
    """
    T = inp.dtype.type
    _, c, height, width = inp.shape
    out = np.zeros((len(rois), c, pooled_h, pooled_w), dtype=T)
    for n, roi in enumerate(rois):
        b = int(roi[0])
        offset = T(0.5) if aligned else T(0.0)
        start_w = T(roi[1]) * T(spatial_scale) - offset
        start_h = T(roi[2]) * T(spatial_scale) - offset
        end_w = T(roi[3]) * T(spatial_scale) - offset
        end_h = T(roi[4]) * T(spatial_scale) - offset
        roi_w = end_w - start_w
        roi_h = end_h - start_h
        if not aligned:
            roi_w = max(roi_w, T(1.0))
            roi_h = max(roi_h, T(1.0))
        bin_h = roi_h / T(pooled_h)
        bin_w = roi_w / T(pooled_w)
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / T(pooled_h))
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / T(pooled_w))
        count = max(grid_h * grid_w, 1)
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                acc = np.zeros(c, dtype=T)
                for iy in range(grid_h):
                    y = start_h + T(ph) * bin_h + T(iy + 0.5) * bin_h / T(grid_h)
                    for ix in range(grid_w):
                        x = start_w + T(pw) * bin_w + T(ix + 0.5) * bin_w / T(grid_w)
                        if not (-1.0 <= y <= height and -1.0 <= x <= width):
                            continue  # empty sample: contributes 0 but still counts
                        yy, xx = max(y, T(0.0)), max(x, T(0.0))
                        y_low, x_low = int(yy), int(xx)
                        if y_low >= height - 1:
                            y_high = y_low = height - 1
                            yy = T(y_low)
                        else:
                            y_high = y_low + 1
                        if x_low >= width - 1:
                            x_high = x_low = width - 1
                            xx = T(x_low)
                        else:
                            x_high = x_low + 1
                        ly, lx = yy - T(y_low), xx - T(x_low)
                        hy, hx = T(1.0) - ly, T(1.0) - lx
                        acc += (
                            hy * hx * inp[b, :, y_low, x_low]
                            + hy * lx * inp[b, :, y_low, x_high]
                            + ly * hx * inp[b, :, y_high, x_low]
                            + ly * lx * inp[b, :, y_high, x_high]
                        )
                out[n, :, ph, pw] = acc / T(count)
    return out


def random_rois(gen: torch.Generator, k: int, n: int, h: int, w: int) -> torch.Tensor:
    """Boxes with fractional corners from well outside to well inside the image, some tiny or
    inverted (the 1×1 clamp), of sizes from sub-bin to larger than the image."""
    cx = torch.rand(k, generator=gen) * (w + 6) - 3
    cy = torch.rand(k, generator=gen) * (h + 6) - 3
    bw = torch.rand(k, generator=gen) * 1.6 * w + 0.05
    bh = torch.rand(k, generator=gen) * 1.6 * h + 0.05
    idx = torch.randint(0, n, (k,), generator=gen).double()
    rois = torch.stack([idx, cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=1)
    rois[0, 1:] = torch.tensor([2.3, 1.7, 2.1, 1.2])  # inverted: forced to 1×1 unless aligned
    rois[1, 1:] = torch.tensor([-9.0, -9.0, -5.5, -4.0])  # wholly outside: zeros
    return rois


@pytest.mark.parametrize(
    ("output_size", "spatial_scale", "sampling_ratio", "aligned"),
    [
        ((3, 4), 1.0, -1, False),
        ((2, 5), 0.5, -1, False),
        ((4, 3), 1.0, 2, False),
        ((3, 3), 0.75, -1, True),
        ((1, 2), 1.0, 3, True),
    ],
)
def test_random_boxes_equal_the_definition(
    output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int, aligned: bool
) -> None:
    gen = torch.Generator().manual_seed(10 * output_size[0] + output_size[1])
    x = torch.randn(3, 2, 7, 9, generator=gen, dtype=torch.float64)
    rois = random_rois(gen, 14, 3, 7 / spatial_scale, 9 / spatial_scale)
    ref = roi_align_definition(x.numpy(), rois.numpy(), *output_size, spatial_scale, sampling_ratio, aligned)
    assert np.abs(ref[1]).max() == 0  # the wholly outside box
    assert np.abs(ref).max() > 0.1
    got = roi_align(x, rois, output_size, spatial_scale, sampling_ratio, aligned)
    assert got.dtype == torch.float64 and got.shape == (14, 2, *output_size)
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-10)
    x32, rois32 = x.float(), rois.float()
    args = (spatial_scale, sampling_ratio, aligned)
    ref32 = roi_align_definition(x32.numpy(), rois32.numpy(), *output_size, *args)
    got32 = roi_align(x32, rois32, output_size, *args)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), ref32, rtol=0, atol=1e-5)


def gfpgan_rois(centres: list[list[tuple[float, float, float]]], eye_enlarge: float = 1.4) -> tuple:
    """GFPGAN's boxes: per image (left eye, right eye, mouth) as (cx, cy, half_len); a box is
    ``[centre - half + 1, centre + half]`` (FFHQDegradationDataset), eyes enlarged ×1.4, and the
    rois are ``[b, box]`` rows with both eyes of an image adjacent (GFPGANModel.get_roi_regions)."""
    eyes, mouths = [], []
    for b, parts in enumerate(centres):
        boxes = []
        for j, (cx, cy, half) in enumerate(parts):
            half = half * eye_enlarge if j < 2 else half
            boxes.append([b, cx - half + 1, cy - half + 1, cx + half, cy + half])
        eyes += boxes[:2]
        mouths.append(boxes[2])
    return torch.tensor(eyes, dtype=torch.float32), torch.tensor(mouths, dtype=torch.float32)


# FFHQ-like landmarks on a 512 face: small and large components (grids of 1 and 2 samples per
# bin), and one mouth reaching past the bottom border.
CENTRES = [
    [(193.4, 240.2, 19.6), (318.7, 240.9, 21.3), (257.1, 371.5, 46.2)],
    [(180.2, 228.6, 33.1), (331.9, 251.3, 40.5), (255.6, 470.2, 75.8)],
]


@pytest.mark.parametrize(("side", "scale"), [(512, 1.0), (128, 0.25)])
def test_gfpgan_components_equal_the_definition(side: int, scale: float) -> None:
    gen = torch.Generator().manual_seed(side)
    img = torch.rand(2, 3, side, side, generator=gen) * 2 - 1
    eyes, mouths = gfpgan_rois(CENTRES)
    grids = torch.cat([(eyes[:, 3] - eyes[:, 1]) / 80, (mouths[:, 3] - mouths[:, 1]) / 120]) * scale
    assert grids.ceil().unique().tolist() == ([1, 2] if side == 512 else [1])  # adaptive grids
    got_e = roi_align(img, eyes, 80, spatial_scale=scale)
    got_m = roi_align(img, boxes=mouths, output_size=120, spatial_scale=scale)
    assert got_e.shape == (4, 3, 80, 80) and got_m.shape == (2, 3, 120, 120)
    start = time.perf_counter()
    ref_e = roi_align_definition(img.numpy(), eyes.numpy(), 80, 80, scale)
    ref_m = roi_align_definition(img.numpy(), mouths.numpy(), 120, 120, scale)
    assert time.perf_counter() - start < 60
    np.testing.assert_allclose(got_e.numpy(), ref_e, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got_m.numpy(), ref_m, rtol=0, atol=1e-5)
    # the crops are the image's content (a mouth fully inside matches its pixels' range)
    assert got_m[0].min() >= -1 and got_m[0].max() <= 1 and got_m[0].std() > 0.1


def _ramp() -> torch.Tensor:
    """4×4 image ``v[y, x] = x² + 10·y`` (x² is not bilinear, so the weights show)."""
    y, x = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    return (x**2 + 10 * y).view(1, 1, 4, 4)


@pytest.mark.parametrize(
    ("box", "kwargs", "expected"),
    [
        # 2×2 samples at 0.5, 1.5: x² reads (0+1)/2 and (1+4)/2, mean 1.5; 10y reads 10
        ([0, 0, 0, 2, 2], {}, [[11.5]]),
        # four bins of the whole image; samples at 3.5 sit past the last centre: row/column 3
        ([0, 0, 0, 4, 4], {"output_size": 2}, [[11.5, 17.75], [29.0, 35.25]]),
        ([0, 0, 0, 4, 4], {"sampling_ratio": 1}, [[24.0]]),  # one sample at (2, 2): 4 + 20
        ([0, 0, 0, 4, 4], {"spatial_scale": 0.5}, [[11.5]]),  # the box becomes [0, 2]²
        ([0, 2.5, 2.5, 3.5, 3.5], {}, [[39.0]]),  # sample (3, 3) = 9 + 30
        ([0, 3.2, 0, 4.2, 1], {}, [[14.0]]),  # x = 3.7 in (W-1, W]: column 3; y = 0.5: 9 + 5
        ([0, 3.6, 0, 4.6, 1], {}, [[0.0]]),  # x = 4.1 > W: empty
        ([0, -1.3, 0, -0.3, 1], {}, [[5.0]]),  # x = -0.8 in [-1, 0): clamped to 0; 0 + 5
        ([0, -2.5, 0, -1.5, 1], {}, [[0.0]]),  # x = -2 < -1: empty
        ([0, 1, 1, 1, 1], {}, [[17.5]]),  # empty box forced to 1×1: sample (1.5, 1.5): 2.5 + 15
        ([0, 0.5, 0.5, 1.5, 1.5], {"aligned": True}, [[5.5]]),  # shifted to [0, 1]: (0.5, 0.5): 0.5 + 5
        ([0, 1, 1, 1, 1], {"aligned": True}, [[0.0]]),  # aligned keeps the empty box: no samples
    ],
)
def test_hand_computed_values(box: list[float], kwargs: dict, expected: list[list[float]]) -> None:
    kw = {"output_size": 1, **kwargs}
    got = roi_align(_ramp(), torch.tensor([box], dtype=torch.float32), **kw)
    torch.testing.assert_close(got[0, 0], torch.tensor(expected), rtol=0, atol=1e-6)


def test_batch_index_and_the_list_form() -> None:
    img = torch.cat([_ramp(), _ramp() + 100])
    rois = torch.tensor([[1, 0, 0, 2, 2], [0, 0, 0, 2, 2], [1, 0, 0, 4, 4]], dtype=torch.float32)
    got = roi_align(img, rois, 1)  # the last: 4×4 samples at .5…3.5: x² 18.5/4, 10y 75/4
    torch.testing.assert_close(got.flatten(), torch.tensor([111.5, 11.5, 100 + 4.625 + 18.75]))
    listed = roi_align(img, [rois[1:2, 1:], rois[[0, 2], 1:]], 1)  # per-image (Ki, 4) tensors
    torch.testing.assert_close(listed.flatten(), got[[1, 0, 2]].flatten())
    torch.testing.assert_close(boxes_to_rois([rois[1:2, 1:], rois[[0, 2], 1:]]), rois[[1, 0, 2]])
    assert roi_align(img, torch.zeros(0, 5), (2, 3)).shape == (0, 1, 2, 3)


def test_bad_boxes_are_one_line_errors() -> None:
    img = _ramp()
    with pytest.raises(DataError, match=r"expected a \(K, 5\) tensor .* got shape \[2, 4\]"):
        roi_align(img, torch.zeros(2, 4), 2)
    with pytest.raises(DataError, match=r"boxes\[1\]: expected a \(K, 4\) tensor"):
        roi_align(img, [torch.zeros(1, 4), torch.zeros(1, 5)], 2)
    with pytest.raises(DataError, match="batch index 3 is outside the input's batch of 1"):
        roi_align(img, torch.tensor([[3.0, 0, 0, 2, 2]]), 2)
    with pytest.raises(DataError, match="input: expected"):
        roi_align(img[0], torch.tensor([[0.0, 0, 0, 2, 2]]), 2)


def test_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [[0, 0.3, 0.8, 4.9, 3.1], [1, -1.5, 2.2, 3.3, 6.4], [1, 4.1, -0.6, 6.7, 2.9]], dtype=torch.float64
    )
    assert torch.autograd.gradcheck(lambda t: roi_align(t, rois, (2, 3)), (x,))
    assert torch.autograd.gradcheck(lambda t: roi_align(t, rois, 2, 0.8, 2, True), (x,))
    # the gradient reaches the input only: boxes are constants, as in torchvision
    r = rois.clone().requires_grad_(True)
    roi_align(x, r, 2).sum().backward()
    assert r.grad is None and x.grad is not None and x.grad.abs().sum() > 0


def test_half_precision_is_sampled_in_float32() -> None:
    img = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    rois = torch.tensor([[0, 1.3, 2.2, 13.9, 11.4]])
    full = roi_align(img, rois, 5)
    for dtype in (torch.float16, torch.bfloat16):
        half = roi_align(img.to(dtype), rois, 5)
        assert half.dtype == dtype
        torch.testing.assert_close(half.float(), full, rtol=0, atol=2e-2)


@CUDA
def test_cuda_equals_cpu() -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 64, 64, generator=gen)
    eyes, _ = gfpgan_rois(CENTRES)
    cpu = roi_align(x, eyes, 20, spatial_scale=0.125)
    gpu = roi_align(x.cuda(), eyes.cuda(), 20, spatial_scale=0.125)
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-5)

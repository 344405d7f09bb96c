"""imresize against a loop-based float64 reference of MATLAB's bicubic imresize."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from restorekit.data.degradations import imresize
from restorekit.data.degradations.bicubic import contributions

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ---------------------------------------------------------------------------------------------
# Reference: MATLAB's imresize.m (bicubic) written out with scalar loops, in float64.
# ---------------------------------------------------------------------------------------------
def ref_cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def ref_contributions(in_len: int, out_len: int, scale: float, aa: bool) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``contributions``: weights and 0-based mirrored indices, all-zero columns killed."""
    stretch = scale < 1 and aa
    width = 4.0 / scale if stretch else 4.0
    taps = math.ceil(width) + 2
    weights = np.zeros((out_len, taps))
    indices = np.zeros((out_len, taps), dtype=np.int64)
    aux = list(range(in_len)) + list(range(in_len - 1, -1, -1))  # MATLAB's [1:n, n:-1:1]
    for i in range(out_len):
        u = (i + 1) / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        for p in range(taps):
            j = left + p  # 1-based input index
            d = u - j
            weights[i, p] = scale * ref_cubic(scale * d) if stretch else ref_cubic(d)
            indices[i, p] = aux[(j - 1) % len(aux)]
        weights[i] /= weights[i].sum()
    alive = np.any(weights != 0, axis=0)
    return weights[:, alive], indices[:, alive]


def ref_resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float, aa: bool) -> np.ndarray:
    w, idx = ref_contributions(img.shape[axis], out_len, scale, aa)
    src = np.moveaxis(img, axis, 0)
    out = np.zeros((out_len, *src.shape[1:]))
    for i in range(out_len):
        for p in range(w.shape[1]):
            out[i] += w[i, p] * src[idx[i, p]]
    return np.moveaxis(out, 0, axis)


def ref_imresize(
    img: np.ndarray, scale: float, aa: bool = True, size: tuple[int, int] | None = None
) -> np.ndarray:
    """HW or HWC float64; rows first, then columns (equal scales) as MATLAB orders them."""
    img = img.astype(np.float64)
    if size is None:
        sh = sw = scale
        size = (math.ceil(img.shape[0] * scale), math.ceil(img.shape[1] * scale))
    else:
        sh, sw = size[0] / img.shape[0], size[1] / img.shape[1]
    order = [(0, size[0], sh), (1, size[1], sw)]
    if sw < sh:
        order.reverse()
    for axis, n, s in order:
        img = ref_resize_axis(img, axis, n, s, aa)
    return img


CASES = [
    (1 / 2, (24, 30)),
    (1 / 2, (25, 31)),
    (1 / 3, (27, 33)),
    (1 / 3, (26, 31)),
    (1 / 4, (32, 40)),
    (1 / 4, (29, 35)),
    (2, (12, 14)),
    (2, (13, 11)),
    (4, (8, 10)),
    (4, (7, 9)),
]


@pytest.mark.parametrize("scale,hw", CASES)
def test_hwc_numpy_matches_matlab_reference(scale: float, hw: tuple[int, int]) -> None:
    img = np.random.default_rng(hw[0] * 100 + hw[1]).random((*hw, 3)).astype(np.float32)
    out = imresize(img, scale)
    ref = ref_imresize(img, scale)
    assert out.shape == ref.shape == (math.ceil(hw[0] * scale), math.ceil(hw[1] * scale), 3)
    assert out.dtype == np.float32
    assert np.abs(out - ref).max() < 1e-5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale,hw", [CASES[1], CASES[2], CASES[5], CASES[7], CASES[9]])
def test_nchw_tensor_matches_reference_and_batch_is_per_image(
    device: str, scale: float, hw: tuple[int, int]
) -> None:
    x = torch.rand(3, 3, *hw, generator=torch.Generator().manual_seed(7)).to(device)
    out = imresize(x, scale)
    assert out.device.type == device and out.dtype == torch.float32
    for i in range(3):
        ref = ref_imresize(x[i].cpu().numpy().transpose(1, 2, 0), scale)
        assert np.abs(out[i].cpu().numpy().transpose(1, 2, 0) - ref).max() < 1e-5
        single = imresize(x[i], scale)  # CHW
        assert single.shape == out[i].shape
        assert torch.allclose(single, out[i], atol=1e-6, rtol=0)


@pytest.mark.parametrize("scale,hw", [CASES[2], CASES[6], CASES[4]])
def test_float64_path_is_float64_accurate(scale: float, hw: tuple[int, int]) -> None:
    img = np.random.default_rng(3).random(hw)  # 2-D gray, float64
    out = imresize(img, scale)
    assert out.dtype == np.float64 and out.ndim == 2
    assert np.abs(out - ref_imresize(img, scale)).max() < 1e-12
    t = imresize(torch.from_numpy(img)[None, None], scale)
    assert t.dtype == torch.float64
    assert np.abs(t[0, 0].numpy() - out).max() < 1e-12


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 2, 4, 0.37])
def test_constant_image_stays_constant(scale: float) -> None:
    img = np.full((23, 18, 3), 0.6183, np.float32)
    out = imresize(img, scale)
    assert np.abs(out - np.float32(0.6183)).max() < 1e-6


def test_upscaling_reproduces_a_linear_ramp_in_the_interior() -> None:
    # Keys' cubic (a = -0.5) reproduces polynomials up to degree 2 away from the borders.
    n, s = 20, 4
    ramp = np.tile(np.arange(n, dtype=np.float64)[None, :] * 0.03, (6, 1))
    out = imresize(ramp, s)
    u = (np.arange(1, n * s + 1) / s + 0.5 * (1 - 1 / s)) - 1  # 0-based source coordinate
    inner = (u > 2) & (u < n - 3)
    assert np.abs(out[:, inner] - 0.03 * u[inner][None, :]).max() < 1e-12


def test_no_antialiasing_and_explicit_size_follow_matlab() -> None:
    img = np.random.default_rng(4).random((21, 26, 3))
    assert np.abs(imresize(img, 1 / 3, antialiasing=False) - ref_imresize(img, 1 / 3, aa=False)).max() < 1e-12
    out = imresize(img, size=(9, 40))  # per-axis factors, W enlarged while H shrinks
    assert out.shape == (9, 40, 3)
    assert np.abs(out - ref_imresize(img, 0, size=(9, 40))).max() < 1e-12
    out2 = imresize(img, size=(40, 9))  # W has the smaller factor and goes first
    assert np.abs(out2 - ref_imresize(img, 0, size=(40, 9))).max() < 1e-12


def test_contribution_tables_match_reference() -> None:
    for in_len, out_len, scale in [(13, 4, 1 / 3), (10, 40, 4), (5, 3, 0.5), (3, 12, 4)]:
        w, idx = contributions(in_len, out_len, scale)
        rw, ridx = ref_contributions(in_len, out_len, scale, True)
        assert np.abs(w.numpy() - rw).max() < 1e-14
        assert np.array_equal(idx.numpy(), ridx)


def test_layouts_dtypes_and_errors() -> None:
    x = torch.rand(2, 3, 16, 12)
    assert imresize(x[0, 0], 0.5).shape == (8, 6)
    assert imresize(x.half(), 0.5).dtype == torch.float16
    nhwc = x.permute(0, 2, 3, 1).numpy()
    out = imresize(nhwc, 0.5)
    assert out.shape == (2, 8, 6, 3) and out.flags["C_CONTIGUOUS"]
    assert np.allclose(out, imresize(x, 0.5).permute(0, 2, 3, 1).numpy(), atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a read-only view must not trigger torch's warning
        ro = imresize(np.broadcast_to(np.float32(0.25), (8, 10, 3)), 0.5)
    assert ro.shape == (4, 5, 3) and np.allclose(ro, 0.25, atol=1e-7)
    for bad in (0, -0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale"):
            imresize(x, bad)
    with pytest.raises(ValueError, match="scale or an output size"):
        imresize(x)
    with pytest.raises(TypeError, match="uint8"):
        imresize(np.zeros((8, 8, 3), np.uint8), 0.5)
    with pytest.raises(TypeError, match="float tensor"):
        imresize(torch.zeros(3, 8, 8, dtype=torch.uint8), 0.5)

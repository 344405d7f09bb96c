"""Real-ESRGAN degradation steps: kernels, filtering, USM, noise, JPEG, the pipeline, the pool."""

from __future__ import annotations

import io
import itertools
import math

import cv2
import numpy as np
import pytest
import torch
from scipy import special

from conftest import smooth_image
from restorekit.data.degradations import (
    BlurKernelOptions,
    DiffJPEG,
    PairPool,
    RealESRGANDegradation,
    USMSharp,
    bivariate_gaussian,
    bivariate_generalized_gaussian,
    bivariate_plateau,
    circular_lowpass_kernel,
    filter2d,
    random_add_gaussian_noise,
    random_add_poisson_noise,
    sample_final_sinc,
)
from restorekit.data.degradations.noise import count_levels
from restorekit.errors import ConfigError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


# ----------------------------------------------------------------------------- kernels
def test_kernel_shapes_match_closed_forms() -> None:
    """Neighbour/centre ratios are the closed forms, independent of the normalisation."""
    k, c, s = 21, 10, 1.7
    q1 = 1 / s**2  # q at one pixel off-centre on an axis
    iso = bivariate_gaussian(k, s, s, 0.0)
    gen = bivariate_generalized_gaussian(k, s, s, 0.0, 0.6)
    plat = bivariate_plateau(k, s, s, 0.0, 1.5)
    assert iso[c, c + 1] / iso[c, c] == pytest.approx(math.exp(-q1 / 2), rel=1e-5)
    assert gen[c, c + 1] / gen[c, c] == pytest.approx(math.exp(-(q1**0.6) / 2), rel=1e-5)
    assert plat[c, c + 1] / plat[c, c] == pytest.approx(1 / (1 + q1**1.5), rel=1e-5)
    # β = 1 makes the generalised Gaussian a Gaussian
    np.testing.assert_allclose(bivariate_generalized_gaussian(k, s, s, 0, 1.0), iso, rtol=1e-5)
    # anisotropic: σx along columns, σy along rows; a quarter turn swaps them
    an = bivariate_gaussian(k, 2.0, 0.8, 0.0, isotropic=False)
    assert an[c, c + 2] / an[c, c] == pytest.approx(math.exp(-4 / (2 * 2.0**2)), rel=1e-5)
    assert an[c + 2, c] / an[c, c] == pytest.approx(math.exp(-4 / (2 * 0.8**2)), rel=1e-4)
    np.testing.assert_allclose(bivariate_gaussian(k, 2.0, 0.8, math.pi / 2, isotropic=False), an.T, atol=1e-7)
    for kern in (iso, gen, plat, an):
        assert kern.dtype == np.float32 and kern.sum() == pytest.approx(1.0, abs=1e-5)
    for kern in (iso, gen, plat):  # isotropic kernels have every symmetry of the square
        np.testing.assert_allclose(kern, kern.T, atol=1e-8)
        np.testing.assert_allclose(kern, kern[::-1, ::-1], atol=1e-8)


def test_sinc_kernel_closed_form_and_cutoff() -> None:
    for w in (math.pi / 2, math.pi / 3):
        k = circular_lowpass_kernel(w, 21)
        assert k.sum() == pytest.approx(1.0, abs=1e-5)
        # r = 1 against r = 0: (ω J1(ω) / 2π) / (ω² / 4π) = 2 J1(ω) / ω
        assert k[10, 11] / k[10, 10] == pytest.approx(2 * special.j1(w) / w, rel=1e-5)
        resp = np.abs(np.fft.fft2(k, s=(256, 256)))
        f = np.fft.fftfreq(256) * 2 * np.pi
        r = np.hypot(*np.meshgrid(f, f))
        assert resp[r <= 0.8 * w].min() > 0.8 and resp[r <= 0.8 * w].max() < 1.2  # pass band
        assert resp[(r >= 1.3 * w) & (r <= math.pi)].max() < 0.12  # stop band (inside the disc)
    padded = circular_lowpass_kernel(math.pi / 2, 9, pad_to=21)
    assert padded.shape == (21, 21) and np.all(padded[:6] == 0) and np.all(padded[:, 15:] == 0)


def test_kernel_sampling_is_seeded_normalised_and_sized() -> None:
    opts = BlurKernelOptions()
    a = [opts.sample(np.random.default_rng(s)) for s in range(60)]
    b = [opts.sample(np.random.default_rng(s)) for s in range(60)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], a[1])
    for kern in a:
        assert kern.shape == (21, 21) and kern.sum() == pytest.approx(1.0, abs=1e-4)
    sizes = set()  # sinc kernels never underflow to 0 inside their window: the support is the size
    for s in range(40):
        kern = BlurKernelOptions(sinc_prob=1.0).sample(np.random.default_rng(s))
        rows = np.flatnonzero(np.abs(kern).sum(1) > 0)
        sizes.add(int(rows[-1] - rows[0] + 1))
        assert rows[0] + rows[-1] == 20  # centred
    assert sizes <= set(range(7, 22, 2)) and len(sizes) >= 4
    sincs = [sample_final_sinc(np.random.default_rng(s), 0.5) for s in range(20)]
    pulses = [s for s in sincs if s.max() == 1.0]
    assert 0 < len(pulses) < 20 and all(s.sum() == pytest.approx(1.0, abs=1e-5) for s in sincs)


def test_kernel_options_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"kernel_prob2: the probabilities must sum to 1"):
        BlurKernelOptions(kernel_prob=(0.5, 0.5, 0.5, 0, 0, 0)).check("2")
    with pytest.raises(ConfigError, match=r"kernel_list: unknown kernel type 'plateu_iso'.*did you mean"):
        BlurKernelOptions(kernel_list=("iso", "plateu_iso"), kernel_prob=(0.5, 0.5)).check()
    with pytest.raises(ConfigError, match=r"blur_sigma: expected low <= high"):
        BlurKernelOptions(blur_sigma=(3.0, 0.2)).check()
    with pytest.raises(ConfigError, match=r"blur_kernel_size: expected an odd size"):
        BlurKernelOptions(blur_kernel_size=20).check()


# ----------------------------------------------------------------------------- filters
def test_filter2d_matches_cv2_per_sample() -> None:
    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.random((2, 3, 37, 30), dtype=np.float32))
    kernels = torch.from_numpy(np.stack([BlurKernelOptions().sample(rng) for _ in range(2)]))
    for x in (img, img[..., :9, :8]):  # the second is smaller than the 10-pixel border
        out = filter2d(x, kernels)
        assert out.shape == x.shape
        for b in range(2):
            for c in range(3):
                ref = cv2.filter2D(x[b, c].numpy(), -1, kernels[b].numpy(), borderType=cv2.BORDER_REFLECT_101)
                np.testing.assert_allclose(out[b, c].numpy(), ref, atol=2e-6)


def test_usm_blur_matches_cv2_and_keeps_flat_images() -> None:
    rng = np.random.default_rng(1)
    x = torch.from_numpy(smooth_image(rng, 40, 64).astype(np.float32).transpose(2, 0, 1) / 255)[None]
    usm = USMSharp()
    ref = cv2.GaussianBlur(x[0, 1].numpy(), (51, 51), 0)
    np.testing.assert_allclose(usm.blur(x)[0, 1].numpy(), ref, atol=1e-5)
    out = usm(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert (out - x).abs().max() > 0.01  # it sharpens something
    flat = torch.full((1, 3, 32, 32), 0.3)
    torch.testing.assert_close(usm(flat), flat)


# ----------------------------------------------------------------------------- noise
def test_gaussian_noise_std_range_gray_and_seed() -> None:
    img = torch.full((4, 3, 64, 64), 0.5)
    out = random_add_gaussian_noise(img, (10, 10), gray_prob=0.0, generator=_gen(0), clip=False)
    assert (out - img).std().item() == pytest.approx(10 / 255, rel=0.05)
    assert not torch.equal(out[:, 0], out[:, 1])
    gray = random_add_gaussian_noise(img, (5, 20), gray_prob=1.0, generator=_gen(0))
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    clipped = random_add_gaussian_noise(img, (200, 250), gray_prob=0.5, generator=_gen(3))
    assert clipped.min() >= 0 and clipped.max() <= 1
    a = random_add_gaussian_noise(img, (1, 30), 0.4, generator=_gen(7))
    b = random_add_gaussian_noise(img, (1, 30), 0.4, generator=_gen(7))
    assert torch.equal(a, b) and not torch.equal(a, random_add_gaussian_noise(img, (1, 30), 0.4, _gen(8)))


def test_poisson_noise_is_mean_preserving_with_shot_variance() -> None:
    ramp = torch.arange(256, dtype=torch.float32).repeat(3, 64, 1)[None] / 255  # 256 levels
    assert count_levels(ramp).tolist() == [256.0]
    img = ramp.expand(4, 3, 64, 256).contiguous()
    assert count_levels(img[:, :, :, :5]).tolist() == [5.0] * 4
    scale = 2.0
    out = random_add_poisson_noise(img, (scale, scale), gray_prob=0.0, generator=_gen(0), clip=False)
    noise = (out - img).double()
    se = noise.std().item() / math.sqrt(noise.numel())
    assert abs(noise.mean().item()) < 4 * se
    expected_var = scale**2 * img.double().mean().item() / 256  # Poisson(λ)/v has variance λ/v²
    assert noise.var().item() == pytest.approx(expected_var, rel=0.05)
    gray = random_add_poisson_noise(img, (0.5, 3), gray_prob=1.0, generator=_gen(1))
    assert torch.equal(gray[:, 0] - img[:, 0], gray[:, 2] - img[:, 2])
    a = random_add_poisson_noise(img, (0.05, 3), 0.4, generator=_gen(5))
    assert torch.equal(a, random_add_poisson_noise(img, (0.05, 3), 0.4, generator=_gen(5)))
    assert a.min() >= 0 and a.max() <= 1


# ----------------------------------------------------------------------------- JPEG
def _as_batch(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32).transpose(2, 0, 1) / 255)[None]


def test_jpeg_quality_100_is_near_identity_and_error_falls_with_quality() -> None:
    rng = np.random.default_rng(2)
    base = rng.random((9, 11, 3)).astype(np.float32)
    smooth = np.clip(cv2.resize(base, (88, 72), interpolation=cv2.INTER_CUBIC), 0, 1)
    x = torch.from_numpy(smooth.transpose(2, 0, 1))[None]
    jpeg = DiffJPEG()
    out = jpeg(x, 100)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert _psnr(out[0].numpy(), x[0].numpy()) > 35  # colour: 4:2:0 chroma is the main loss
    gray = x[:, :1].expand(1, 3, 72, 88)  # constant chroma: only the rounding of coefficients
    assert _psnr(jpeg(gray, 100)[0].numpy(), gray[0].numpy()) > 50
    textured = _as_batch(smooth_image(rng, 72, 88))
    errors = [(jpeg(textured, q) - textured).pow(2).mean().item() for q in (10, 30, 50, 70, 90, 100)]
    assert all(a > b for a, b in itertools.pairwise(errors)), errors


def test_jpeg_is_close_to_cv2_and_per_sample() -> None:
    rng = np.random.default_rng(3)
    img = smooth_image(rng, 64, 96)  # RGB uint8
    x = _as_batch(img)
    jpeg = DiffJPEG()
    for q in (30, 80):
        _ok, enc = cv2.imencode(".jpg", img[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, q])
        ref = cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255
        ours = jpeg(x, q)[0].numpy().transpose(1, 2, 0)
        assert _psnr(ours, ref) > 33  # nearly the same image as libjpeg's
        assert abs(_psnr(ours, img / 255.0) - _psnr(ref, img / 255.0)) < 0.5  # same loss
    both = jpeg(torch.cat([x, x]), torch.tensor([20.0, 90.0]))
    torch.testing.assert_close(both[:1], jpeg(x, 20.0))
    torch.testing.assert_close(both[1:], jpeg(x, 90.0))
    odd = _as_batch(img[:37, :51])
    assert jpeg(odd, 50).shape == odd.shape
    soft = DiffJPEG(differentiable=True)
    y = x.clone().requires_grad_(True)
    soft(y, 50).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- pipeline
def _batch(b: int, h: int, w: int, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    gt = torch.stack([_as_batch(smooth_image(rng, h, w))[0] for _ in range(b)])
    k1 = np.stack([BlurKernelOptions().sample(rng) for _ in range(b)])
    k2 = np.stack([BlurKernelOptions(blur_sigma=(0.2, 1.5)).sample(rng) for _ in range(b)])
    sinc = np.stack([sample_final_sinc(rng, 0.8) for _ in range(b)])
    return {
        "gt": gt,
        "kernel1": torch.from_numpy(k1),
        "kernel2": torch.from_numpy(k2),
        "sinc_kernel": torch.from_numpy(sinc),
    }


def test_pipeline_sizes_grid_range_and_determinism() -> None:
    batch = _batch(2, 80, 96)
    deg = RealESRGANDegradation(scale=4, gt_size=48)
    for seed in (1, 3, 4, 7):  # seeds that draw both final orders, up/down/keep, both noises
        out = deg.synthesize(batch, _gen(seed))
        assert out["lq"].shape == (2, 3, 12, 12)
        assert out["gt"].shape == out["gt_usm"].shape == (2, 3, 48, 48)
        lq = out["lq"]
        assert lq.min() >= 0 and lq.max() <= 1
        torch.testing.assert_close(lq * 255, (lq * 255).round(), atol=1e-4, rtol=0)
        again = deg.synthesize(batch, _gen(seed))
        assert all(torch.equal(out[k], again[k]) for k in out)
    assert not torch.equal(deg.synthesize(batch, _gen(0))["lq"], deg.synthesize(batch, _gen(1))["lq"])
    lq, gt_usm = RealESRGANDegradation(scale=2)(
        batch["gt"], batch["kernel1"], batch["kernel2"], batch["sinc_kernel"], _gen(0)
    )
    assert lq.shape == (2, 3, 40, 48) and gt_usm.shape == (2, 3, 80, 96)


def test_pipeline_without_degradations_returns_sharpened_gt() -> None:
    """Pulse kernels, no resize, zero noise, JPEG 100 on a gray image (no chroma loss): the LQ
    is the sharpened GT rounded, so the steps are wired in order and nothing else leaks in."""
    rng = np.random.default_rng(4)
    gray = smooth_image(rng, 48, 48)[:, :, :1].repeat(3, axis=2)
    gt = _as_batch(gray)
    pulse = torch.zeros(1, 21, 21)
    pulse[0, 10, 10] = 1
    none = dict(resize_prob=(0, 0, 1), gaussian_noise_prob=1.0, noise_range=(0, 0), jpeg_range=(100, 100))
    deg = RealESRGANDegradation(
        scale=1, gt_size=None, second_blur_prob=1.0, **none, **{f"{k}2": v for k, v in none.items()}
    )
    lq, gt_usm = deg(gt, pulse, pulse, pulse, _gen(0))
    err = (lq - gt_usm).abs()
    assert err.max() < 4 / 255 and err.mean() < 1 / 255


def test_pipeline_options_are_checked_by_key() -> None:
    with pytest.raises(ConfigError, match=r"resize_prob2: the probabilities must sum to 1"):
        RealESRGANDegradation(resize_prob2=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match=r"jpeg_range: values must be <= 100"):
        RealESRGANDegradation(jpeg_range=(30, 120))
    with pytest.raises(ConfigError, match=r"resize_range: the range must contain 1"):
        RealESRGANDegradation(resize_range=(0.2, 0.8))
    with pytest.raises(ConfigError, match=r"gt_size: 30 must be a positive multiple of scale 4"):
        RealESRGANDegradation(gt_size=30)
    with pytest.raises(ConfigError, match=r"degradation\.gaussian_noise_prob: expected a probability"):
        RealESRGANDegradation.from_config({"gaussian_noise_prob": 1.5}, scale=4)
    with pytest.raises(
        ConfigError, match=r"degradation\.resize_prb: unknown argument.*did you mean 'resize_prob'"
    ):
        RealESRGANDegradation.from_config({"resize_prb": [0.2, 0.7, 0.1]}, scale=4)
    deg = RealESRGANDegradation.from_config({"resize_range2": [0.5, 1.0], "queue_size": 4}, scale=2)
    assert deg.resize_range2 == (0.5, 1.0) and deg.scale == 2 and deg.make_pool().size == 4


# ----------------------------------------------------------------------------- pool
def _tagged(start: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.arange(start, start + b, dtype=torch.float32).view(b, 1, 1, 1)
    return ids.expand(b, 3, 2, 2).clone(), ids.expand(b, 3, 8, 8).clone()


def test_pair_pool_mixes_batches_and_keeps_pairs_together() -> None:
    pool, gen = PairPool(8), _gen(0)
    seen: list[float] = []
    for step in range(10):
        lq, gt = _tagged(4 * step, 4)
        out_lq, out_gt = pool(lq, gt, gen)
        if step < 2:  # filling: the batch itself comes back
            assert torch.equal(out_lq, lq)
        assert torch.equal(out_lq[:, :, :1, :1], out_gt[:, :, :1, :1])  # pairs stay pairs
        seen += out_lq[:, 0, 0, 0].tolist()
    assert pool.full
    held = pool.lq[:, 0, 0, 0].tolist()
    # filling returns a batch and keeps it: pairs 0..7 come out twice, every later one once
    assert sorted(seen + held) == sorted(list(range(8)) * 2 + list(range(8, 40)))
    later = {step: seen[4 * step : 4 * step + 4] for step in range(2, 10)}
    assert all(not set(ids) & set(range(4 * step, 4 * step + 4)) for step, ids in later.items())
    assert any(len({int(i) // 4 for i in ids}) > 1 for ids in later.values())  # batches are mixed
    with pytest.raises(ConfigError, match="queue_size: 8 must be a multiple of the batch size 3"):
        PairPool(8)(*_tagged(0, 3))


def test_pair_pool_state_round_trip_is_exact() -> None:
    pool, gen = PairPool(8), _gen(1)
    for step in range(3):
        pool(*_tagged(4 * step, 4), gen)
    buf = io.BytesIO()
    torch.save({"pool": pool.state_dict(), "gen": gen.get_state()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    resumed, gen2 = PairPool(8), torch.Generator()
    resumed.load_state_dict(state["pool"])
    gen2.set_state(state["gen"])
    for step in range(3, 7):
        a = pool(*_tagged(4 * step, 4), gen)
        b = resumed(*_tagged(4 * step, 4), gen2)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ConfigError, match="queue_size"):
        PairPool(16).load_state_dict(pool.state_dict())


def test_synthesize_with_pool_recomputes_usm_of_the_returned_gt() -> None:
    batch = _batch(2, 64, 64, seed=5)
    deg = RealESRGANDegradation(scale=4, gt_size=32, queue_size=4)
    pool, gen = deg.make_pool(), _gen(2)
    for _ in range(4):
        out = deg.synthesize(batch, gen, pool)
    torch.testing.assert_close(out["gt_usm"], deg.usm(out["gt"]))
    assert out["lq"].shape == (2, 3, 8, 8)

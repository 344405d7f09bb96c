"""FID/KID numerics against closed forms and independent code; the Inception's official key layout."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restorekit.archs import inception as inception_mod
from restorekit.archs.inception import FID_INCEPTION_FILENAME, FIDInception
from restorekit.errors import ConfigError, DataError, WeightsError
from restorekit.metrics import fid
from restorekit.weights import cache_dir, resolve_weights

# ---------------------------------------------------------------------------------------------
# The official key layout, written from torchvision's Inception3 definition (the module names
# pytorch-fid's weight file uses): (name, in_channels, out_channels, (kh, kw)) per BasicConv2d.


def _inception_convs() -> list[tuple[str, int, int, tuple[int, int]]]:
    convs = [
        ("Conv2d_1a_3x3", 3, 32, (3, 3)),
        ("Conv2d_2a_3x3", 32, 32, (3, 3)),
        ("Conv2d_2b_3x3", 32, 64, (3, 3)),
        ("Conv2d_3b_1x1", 64, 80, (1, 1)),
        ("Conv2d_4a_3x3", 80, 192, (3, 3)),
    ]
    for name, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
        convs += [
            (f"{name}.branch1x1", cin, 64, (1, 1)),
            (f"{name}.branch5x5_1", cin, 48, (1, 1)),
            (f"{name}.branch5x5_2", 48, 64, (5, 5)),
            (f"{name}.branch3x3dbl_1", cin, 64, (1, 1)),
            (f"{name}.branch3x3dbl_2", 64, 96, (3, 3)),
            (f"{name}.branch3x3dbl_3", 96, 96, (3, 3)),
            (f"{name}.branch_pool", cin, pool, (1, 1)),
        ]
    convs += [
        ("Mixed_6a.branch3x3", 288, 384, (3, 3)),
        ("Mixed_6a.branch3x3dbl_1", 288, 64, (1, 1)),
        ("Mixed_6a.branch3x3dbl_2", 64, 96, (3, 3)),
        ("Mixed_6a.branch3x3dbl_3", 96, 96, (3, 3)),
    ]
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        convs += [
            (f"{name}.branch1x1", 768, 192, (1, 1)),
            (f"{name}.branch7x7_1", 768, c7, (1, 1)),
            (f"{name}.branch7x7_2", c7, c7, (1, 7)),
            (f"{name}.branch7x7_3", c7, 192, (7, 1)),
            (f"{name}.branch7x7dbl_1", 768, c7, (1, 1)),
            (f"{name}.branch7x7dbl_2", c7, c7, (7, 1)),
            (f"{name}.branch7x7dbl_3", c7, c7, (1, 7)),
            (f"{name}.branch7x7dbl_4", c7, c7, (7, 1)),
            (f"{name}.branch7x7dbl_5", c7, 192, (1, 7)),
            (f"{name}.branch_pool", 768, 192, (1, 1)),
        ]
    convs += [
        ("Mixed_7a.branch3x3_1", 768, 192, (1, 1)),
        ("Mixed_7a.branch3x3_2", 192, 320, (3, 3)),
        ("Mixed_7a.branch7x7x3_1", 768, 192, (1, 1)),
        ("Mixed_7a.branch7x7x3_2", 192, 192, (1, 7)),
        ("Mixed_7a.branch7x7x3_3", 192, 192, (7, 1)),
        ("Mixed_7a.branch7x7x3_4", 192, 192, (3, 3)),
    ]
    for name, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        convs += [
            (f"{name}.branch1x1", cin, 320, (1, 1)),
            (f"{name}.branch3x3_1", cin, 384, (1, 1)),
            (f"{name}.branch3x3_2a", 384, 384, (1, 3)),
            (f"{name}.branch3x3_2b", 384, 384, (3, 1)),
            (f"{name}.branch3x3dbl_1", cin, 448, (1, 1)),
            (f"{name}.branch3x3dbl_2", 448, 384, (3, 3)),
            (f"{name}.branch3x3dbl_3a", 384, 384, (1, 3)),
            (f"{name}.branch3x3dbl_3b", 384, 384, (3, 1)),
            (f"{name}.branch_pool", cin, 192, (1, 1)),
        ]
    return convs


def official_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for name, cin, cout, (kh, kw) in _inception_convs():
        shapes[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for buf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{buf}"] = (cout,)
    shapes["fc.weight"] = (1008, 2048)
    shapes["fc.bias"] = (1008,)
    return shapes


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the official layout; He-scaled so activations stay O(1) through 94 convs."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in official_shapes().items():
        if key.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("bn.weight"):
            state[key] = 0.8 + 0.4 * torch.rand(shape, generator=g)
        else:
            state[key] = 0.05 * torch.randn(shape, generator=g)
    return state


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    return random_inception_state()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory, official_state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path_factory.mktemp("w") / FID_INCEPTION_FILENAME
    torch.save(official_state, path)
    return path


@pytest.fixture(scope="module")
def model(weights_file: Path) -> FIDInception:
    return FIDInception(weights_path=weights_file)


@pytest.fixture(scope="module")
def model64(weights_file: Path) -> FIDInception:
    """pytorch-fid's ``--dims 64`` (first max-pool): the same code path, seconds instead of minutes."""
    return FIDInception(weights_path=weights_file, dims=64)


# ---------------------------------------------------------------------------------------------
# Fréchet distance


def _spd(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_equal_gaussians_is_zero() -> None:
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=8), _spd(8, rng)
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-9


def test_frechet_diagonal_closed_form() -> None:
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_general_matches_symmetric_eigen_formula() -> None:
    # Tr sqrt(S1 S2) = Tr sqrt(S1^½ S2 S1^½), the latter computed with eigh only.
    rng = np.random.default_rng(2)
    mu1, mu2, s1, s2 = rng.normal(size=10), rng.normal(size=10), _spd(10, rng), _spd(10, rng)
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(inner))
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_singular_product_uses_eps_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[np.ndarray] = []
    real_sqrtm = fid._sqrtm

    def fake_sqrtm(a: np.ndarray) -> np.ndarray:
        calls.append(a)
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(fid, "_sqrtm", fake_sqrtm)
    s1, s2 = np.diag([1.0, 0.0, 4.0]), np.diag([1.0, 2.0, 0.0])  # singular covariances
    mu = np.zeros(3)
    got = fid.frechet_distance(mu, s1, mu, s2, eps=1e-6)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + 1e-6 * np.eye(3)) @ (s2 + 1e-6 * np.eye(3)))
    e = 1e-6
    d1, d2 = np.diag(s1), np.diag(s2)
    expected = np.sum(d1 + d2) - 2 * np.sum(np.sqrt((d1 + e) * (d2 + e)))
    assert got == pytest.approx(expected, abs=1e-9)


def test_frechet_rank_deficient_is_finite() -> None:
    s = np.diag([2.0, 0.0, 0.0])
    got = fid.frechet_distance(np.zeros(3), s, np.ones(3), s)
    assert got == pytest.approx(3.0, abs=1e-5)


def test_frechet_imaginary_component(monkeypatch: pytest.MonkeyPatch) -> None:
    s = np.eye(2)
    monkeypatch.setattr(fid, "_sqrtm", lambda a: np.eye(2) + 1e-5j * np.ones((2, 2)))
    assert fid.frechet_distance(np.zeros(2), s, np.zeros(2), s) == pytest.approx(0.0, abs=1e-12)
    monkeypatch.setattr(fid, "_sqrtm", lambda a: np.eye(2) + 0.1j * np.eye(2))
    with pytest.raises(DataError, match=r"imaginary component of 0\.1"):
        fid.frechet_distance(np.zeros(2), s, np.zeros(2), s)


def test_statistics_and_npz_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(20, 5))
    mu, sigma = fid.compute_statistics(feats)
    np.testing.assert_allclose(mu, feats.mean(0))
    centred = feats - feats.mean(0)
    np.testing.assert_allclose(sigma, centred.T @ centred / 19)
    path = fid.save_stats_npz(tmp_path / "stats.npz", mu, sigma)
    assert path == tmp_path / "stats.npz" and path.is_file()
    with np.load(path) as f:  # how pytorch-fid reads it
        np.testing.assert_array_equal(f["mu"][:], mu)
        np.testing.assert_array_equal(f["sigma"][:], sigma)
    other = tmp_path / "pytorch_fid_style.npz"
    np.savez_compressed(other, mu=mu, sigma=sigma)  # how pytorch-fid writes it
    mu2, sigma2 = fid.load_stats_npz(other)
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=mu, sigma=sigma)
    with pytest.raises(DataError, match=r"bad\.npz.*'mu'"):
        fid.load_stats_npz(bad)


# ---------------------------------------------------------------------------------------------
# KID


def _direct_unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Textbook unbiased MMD² with k(a, b) = (a·b/d + 1)³, by explicit sums over pairs."""
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / d + 1) ** 3)

    m = len(x)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_direct_mmd() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(12, 4)), rng.normal(loc=0.5, size=(12, 4))
    # One subset of all samples is a permutation: the MMD is the full-sample statistic.
    mean, std = fid.kid(x, y, num_subsets=1, subset_size=12)
    assert mean == pytest.approx(_direct_unbiased_mmd2(x, y), rel=1e-10)
    assert std == 0.0
    # Several subsets: mean/std over subsets drawn in torch-fidelity's order.
    mean, std = fid.kid(x, y, num_subsets=5, subset_size=6, seed=7)
    rs = np.random.RandomState(7)
    vals = []
    for _ in range(5):
        a, b = x[rs.choice(12, 6, replace=False)], y[rs.choice(12, 6, replace=False)]
        vals.append(_direct_unbiased_mmd2(a, b))
    assert mean == pytest.approx(np.mean(vals), rel=1e-10)
    assert std == pytest.approx(np.std(vals), rel=1e-10)


def test_kid_same_distribution_near_zero() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 16))
    same, _ = fid.kid(x, rng.normal(size=(400, 16)), num_subsets=20, subset_size=200)
    shifted, _ = fid.kid(x, rng.normal(loc=0.5, size=(400, 16)), num_subsets=20, subset_size=200)
    assert abs(same) < 0.02 * shifted
    with pytest.raises(DataError, match="subset_size 1000"):
        fid.kid(x, x)


# ---------------------------------------------------------------------------------------------
# The Inception network


def test_inception_key_layout_matches_official() -> None:
    shapes = official_shapes()
    assert len(shapes) == 94 * 5 + 2
    own = {k: tuple(v.shape) for k, v in FIDInception().state_dict().items() if "num_batches" not in k}
    assert own == shapes
    assert own["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert own["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)
    assert own["fc.weight"] == (1008, 2048)


@pytest.mark.parametrize("with_counters", [False, True])
def test_inception_loads_official_layout_strictly(
    tmp_path: Path, official_state: dict[str, torch.Tensor], with_counters: bool
) -> None:
    state = dict(official_state)
    if with_counters:  # files saved by newer PyTorch carry BatchNorm counters; older ones do not
        state.update({f"{name}.bn.num_batches_tracked": torch.tensor(0) for name, *_ in _inception_convs()})
    path = tmp_path / "w.pth"
    torch.save(state, path)
    m = FIDInception(weights_path=path)
    loaded = m.state_dict()
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_6e.branch7x7dbl_5.bn.running_var", "fc.bias"):
        assert torch.equal(loaded[key], state[key])
    assert not m.training and not any(p.requires_grad for p in m.parameters())


def test_inception_wrong_file_names_the_key(tmp_path: Path, official_state: dict[str, torch.Tensor]) -> None:
    state = dict(official_state)
    state["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's 1000-class head
    del state["Mixed_5b.branch1x1.conv.weight"]
    path = tmp_path / "w.pth"
    torch.save(state, path)
    with pytest.raises(
        WeightsError, match=r"w\.pth.*missing keys Mixed_5b\.branch1x1\.conv\.weight.*fc\.weight"
    ):
        FIDInception(weights_path=path)


def test_tf_average_pool_ignores_padding() -> None:
    out = inception_mod._tf_avg_pool(torch.ones(1, 1, 4, 4))
    assert torch.allclose(out, torch.ones_like(out))  # count_include_pad=True would give 4/9 corners


def test_mixed_7c_max_pools_its_pool_branch(model: FIDInception) -> None:
    seen: list[torch.Tensor] = []
    handle = model.Mixed_7c.branch_pool.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    x = torch.randn(1, 2048, 8, 8)
    with torch.no_grad():
        model.Mixed_7c(x)
        model.Mixed_7b(x[:, :1280])
    handle.remove()
    assert torch.equal(seen[0], F.max_pool2d(x, 3, stride=1, padding=1))
    assert len(seen) == 1  # Mixed_7b's branch_pool is another module


def test_inception_pool3_features(model: FIDInception) -> None:
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 64, 80))
    assert feats.shape == (1, 2048) and torch.isfinite(feats).all() and feats.abs().sum() > 0


def test_inception_resize_scale_and_first_block(model64: FIDInception) -> None:
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        feats = model64(x)
        # pytorch-fid: bilinear resize to 299 (align_corners=False), 2x-1, block 0, spatial mean.
        y = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
        y = model64.Conv2d_2b_3x3(model64.Conv2d_2a_3x3(model64.Conv2d_1a_3x3(y)))
        expected = F.max_pool2d(y, kernel_size=3, stride=2).mean(dim=(2, 3))
    assert feats.shape == (2, 64)
    assert torch.allclose(feats, expected, atol=1e-5)
    assert not torch.allclose(feats[0], feats[1])
    with pytest.raises(ConfigError, match="dims must be one of 64, 192, 768, 2048"):
        FIDInception(dims=1000)


# ---------------------------------------------------------------------------------------------
# End to end on folders


def _write_folder(folder: Path, seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    folder.mkdir()
    imgs = []
    for i in range(count):
        img = rng.integers(0, 256, size=(40 + 8 * i, 48, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:02d}.png"), img)
        imgs.append(img)
    return imgs


def test_fid_from_paths_end_to_end(tmp_path: Path, weights_file: Path, model64: FIDInception) -> None:
    model = model64
    bgr_a = _write_folder(tmp_path / "a", 0, 3)
    _write_folder(tmp_path / "b", 1, 3)
    # Independent reading path: cv2 BGR uint8 → RGB → /255 float32, one image at a time.
    with torch.no_grad():
        ref = [
            model(torch.from_numpy((im[:, :, ::-1] / np.float32(255)).copy()).permute(2, 0, 1)[None])
            for im in bgr_a
        ]
    feats_a = fid.extract_features(model, str(tmp_path / "a"), batch_size=2)
    np.testing.assert_allclose(feats_a, torch.cat(ref).double().numpy(), rtol=1e-5, atol=1e-6)

    feats_b = fid.extract_features(model, str(tmp_path / "b"), batch_size=8)
    expected = fid.frechet_distance(*fid.compute_statistics(feats_a), *fid.compute_statistics(feats_b))
    got = fid.fid_from_paths(
        str(tmp_path / "a"), str(tmp_path / "b"), weights=str(weights_file), batch_size=2, dims=64
    )
    assert np.isfinite(got) and got > 0
    assert got == pytest.approx(expected, rel=1e-6)

    stats = tmp_path / "b_stats.npz"
    fid.save_stats_npz(stats, *fid.compute_statistics(feats_b))
    from_npz = fid.fid_from_paths(str(tmp_path / "a"), str(stats), str(weights_file), dims=64)
    assert from_npz == pytest.approx(expected, rel=1e-6)


def test_gray_images_are_repeated_to_rgb(model64: FIDInception) -> None:
    gray = np.random.default_rng(6).random((32, 32, 1)).astype(np.float32)
    feats = fid.extract_features(model64, [gray, np.repeat(gray, 3, axis=2)])
    np.testing.assert_allclose(feats[0], feats[1], rtol=1e-6, atol=1e-7)


def test_missing_weights_names_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTOREKIT_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    (tmp_path / "imgs").mkdir()
    with pytest.raises(WeightsError) as info:
        fid.fid_from_paths(str(tmp_path / "imgs"), str(tmp_path / "imgs"))
    msg = str(info.value)
    assert FID_INCEPTION_FILENAME in msg and str(tmp_path / "cache") in msg and "\n" not in msg
    with pytest.raises(WeightsError, match=r"nope\.pth does not exist"):
        resolve_weights(str(tmp_path / "nope.pth"), FID_INCEPTION_FILENAME, "FID")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / FID_INCEPTION_FILENAME).write_bytes(b"x")
    assert resolve_weights(None, FID_INCEPTION_FILENAME, "FID") == tmp_path / "cache" / FID_INCEPTION_FILENAME


def test_missing_paths_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        fid.fid_from_paths(str(tmp_path / "nowhere"), str(tmp_path))
    with pytest.raises(DataError, match="at least 2"):
        fid.compute_statistics(np.zeros((1, 4)))

"""Set metrics (FID, KID): sharding-exact merging, BatchNorm calibration, options and errors.

All networks are random-init Inceptions calibrated on the test images (``weights: random``),
with small ``dims``/``resize_to`` so that every test runs in a few seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from conftest import smooth_image
from restorekit.archs.inception import FID_INCEPTION_FILENAME
from restorekit.data.io import write_image
from restorekit.errors import ConfigError, DataError, WeightsError
from restorekit.metrics import (
    FIDMetric,
    MetricSkipped,
    build_metric,
    check_metric,
    get_metric,
    higher_is_better,
    is_set_metric,
)
from restorekit.metrics import distribution as dist
from restorekit.metrics import fid as fidmod
from restorekit.metrics.niqe import NIQE_PARAMS_FILENAME
from restorekit.registry import METRICS

FAST: dict[str, Any] = {"weights": "random", "dims": 64, "resize_to": 75, "batch_size": 4}


def _images(n: int, seed: int, size: int = 40) -> torch.Tensor:
    """NCHW RGB in [0, 1], on the 8-bit grid (so a PNG round trip is lossless)."""
    rng = np.random.default_rng(seed)
    imgs = np.stack([smooth_image(rng, size, size) for _ in range(n)]).astype(np.float32) / 255
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()


def _folder(path: Path, images: torch.Tensor) -> str:
    for i, img in enumerate(images):
        write_image(path / f"{i:03d}.png", img.permute(1, 2, 0).numpy())
    return str(path)


def _feed(metric: Any, out: torch.Tensor, gt: torch.Tensor | None, indices: list[int], bs: int) -> None:
    for s in range(0, len(indices), bs):
        idx = indices[s : s + bs]
        metric.update(out[idx], None if gt is None else gt[idx], idx)


def _sharded_vs_single(make: Any, out: torch.Tensor, gt: torch.Tensor | None) -> tuple[Any, Any]:
    """One process updating on everything vs two fake ranks (r, r+2, ...) merged on 'rank 0'."""
    n = len(out)
    single = make()
    _feed(single, out, gt, list(range(n)), 4)
    ranks = [make() for _ in range(2)]
    for r, m in enumerate(ranks):
        _feed(m, out, gt, list(range(r, n, 2)), 4)
    states = [m.state() for m in ranks]
    ranks[0].merge(states)
    ranks[1].merge(states[::-1])  # every rank merges; the order of the states must not matter
    return single, ranks


@pytest.mark.parametrize("reference", ["folder", "gt"])
def test_fid_two_ranks_equal_one_process(tmp_path: Path, reference: str) -> None:
    out, gt = _images(12, 0), _images(12, 1)
    ref = _folder(tmp_path / "ref", gt) if reference == "folder" else None
    single, ranks = _sharded_vs_single(
        lambda: get_metric("fid", reference=ref, **FAST), out, gt if ref is None else None
    )
    merged = ranks[0].state()
    assert merged["indices"].tolist() == list(range(12))
    expected = single.compute()
    assert np.isfinite(expected) and expected > 0
    assert ranks[0].compute() == expected and ranks[1].compute() == expected
    if reference == "folder":  # features were extracted per rank, at update time
        assert single.state()["out"].dtype == np.float64
        assert np.array_equal(merged["out"], single.state()["out"])
    else:  # random weights + gt: 8-bit images kept, calibration happens on the merged gt
        assert merged["gt"][3].dtype == np.uint8 and len(merged["out"]) == 12
    assert "not comparable with published" in single.note


def test_kid_two_ranks_equal_one_process(tmp_path: Path) -> None:
    out, gt = _images(12, 2), _images(12, 3)
    ref = _folder(tmp_path / "ref", gt)
    opts = {**FAST, "subsets": 20, "subset_size": 6, "num_images": 12}
    single, ranks = _sharded_vs_single(lambda: get_metric("kid", reference=ref, **opts), out, None)
    assert np.array_equal(ranks[0].state()["out"], single.state()["out"])
    value = single.compute()
    assert ranks[0].compute() == value and ranks[1].compute() == value
    # The mean (returned) and the spread (kept) are torch-fidelity's KID of the same features.
    ref_feats = fidmod.extract_features(single.model, ref, 4)
    mean, std = fidmod.kid(single.state()["out"], ref_feats, 20, 6, seed=2020)
    assert value == mean and single.std == std and value != 0  # unbiased: may be < 0 for few images
    with_gt = get_metric("kid", **opts)  # reference None: calibrated on the gt, in compute()
    _feed(with_gt, out, gt, list(range(12)), 4)
    assert with_gt.compute() == pytest.approx(value, rel=1e-9)
    single.reset()
    with pytest.raises(DataError, match="kid: needs at least 2 images, got 0"):
        single.compute()


def test_fid_of_a_set_against_itself_is_zero(tmp_path: Path) -> None:
    imgs, other = _images(80, 4, size=32), _images(80, 5, size=32)  # 80 > 64 dims: full-rank covariance
    metric = get_metric("fid", reference=_folder(tmp_path / "ref", imgs), **{**FAST, "batch_size": 40})
    _feed(metric, imgs, None, list(range(80)), 40)
    same = metric.compute()
    metric.reset()
    _feed(metric, other, None, list(range(80)), 40)
    different = metric.compute()
    assert abs(same) < 1e-6 * different and different > 0
    gt_mode = get_metric("fid", **{**FAST, "batch_size": 40})  # reference None: gt = outputs
    _feed(gt_mode, imgs, imgs, list(range(80)), 40)
    assert abs(gt_mode.compute()) < 1e-6 * different


def test_fid_with_gt_equals_fid_with_a_folder_of_the_gt(tmp_path: Path) -> None:
    out, gt = _images(12, 6), _images(12, 7)
    with_gt = get_metric("fid", **FAST)
    _feed(with_gt, out, gt, list(range(12)), 4)
    with_folder = get_metric("fid", reference=_folder(tmp_path / "gt", gt), **FAST)
    _feed(with_folder, out, None, list(range(12)), 4)
    a, b = with_gt.compute(), with_folder.compute()
    assert a > 0 and a == pytest.approx(b, rel=1e-9)
    assert with_gt.compute() == a  # the second round reuses the calibrated network


def test_calibration_sets_cumulative_batchnorm_statistics() -> None:
    x = _images(6, 8, size=75)
    model = fidmod.random_fid_model(dims=64, seed=0, input_size=75)
    bn, conv = model.Conv2d_1a_3x3.bn, model.Conv2d_1a_3x3.conv
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    state = torch.get_rng_state()
    assert fidmod.calibrate_batchnorm(model, [x[:4], x[4:]]) == 6
    with torch.no_grad():
        means = [conv(2 * b - 1).mean(dim=(0, 2, 3)) for b in (x[:4], x[4:])]
    torch.testing.assert_close(bn.running_mean, (means[0] + means[1]) / 2, rtol=1e-4, atol=1e-6)
    assert not bn.training and not model.training
    # Seeded: the same network each time, and the global RNG is left alone.
    assert torch.equal(torch.get_rng_state(), state)
    again = fidmod.random_fid_model(dims=64, seed=0, input_size=75)
    assert torch.equal(again.Conv2d_1a_3x3.conv.weight, conv.weight)
    other = fidmod.random_fid_model(dims=64, seed=1, input_size=75)
    assert not torch.equal(other.Conv2d_1a_3x3.conv.weight, conv.weight)
    with pytest.raises(DataError, match="at least 2 images"):
        fidmod.calibrate_batchnorm(model, [x[:1]])


def test_calibration_makes_deep_features_informative() -> None:
    x = _images(6, 9, size=75)
    model = fidmod.random_fid_model(dims=768, seed=0, input_size=75)  # 2048 alike, 3x slower
    with torch.no_grad():
        before = model(x).std(dim=0).mean().item()
        fidmod.calibrate_batchnorm(model, [x])
        after = model(x).std(dim=0).mean().item()
    assert after > 1e4 * before  # uncalibrated, ~70 layers flatten the features to a constant


def test_gray_images_count_as_rgb(tmp_path: Path) -> None:
    out, gt = _images(8, 10)[:, :1], _images(8, 11)[:, :1]
    gray = get_metric("fid", **FAST)
    rgb = get_metric("fid", **FAST)
    _feed(gray, out, gt, list(range(8)), 4)
    _feed(rgb, out.expand(-1, 3, -1, -1), gt.expand(-1, 3, -1, -1), list(range(8)), 4)
    assert gray.compute() == rgb.compute()
    with pytest.raises(DataError, match="needs one gt per output"):
        gray.update(out, None, list(range(8)))


def test_higher_is_better_is_declared_at_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = {"psnr": True, "ssim": True, "niqe": False, "lpips": False, "fid": False, "kid": False}
    assert {m: higher_is_better(m) for m in expected} == expected
    assert METRICS.meta("kid") == {"higher_is_better": False}
    with pytest.raises(ConfigError, match=r"unknown metric 'fdi' \(did you mean 'fid'\?\)") as info:
        higher_is_better("fdi")
    assert "\n" not in str(info.value)
    monkeypatch.setitem(METRICS._items, "undeclared", lambda output, gt: output)
    with pytest.raises(ConfigError, match="'undeclared' does not declare higher_is_better"):
        higher_is_better("undeclared")


def test_is_set_metric() -> None:
    assert is_set_metric(FIDMetric) and is_set_metric(METRICS.get("kid"))
    assert is_set_metric(get_metric("kid", **FAST, subset_size=2))
    assert not is_set_metric(get_metric("psnr")) and not is_set_metric(METRICS.get("lpips"))


def test_missing_weights_is_one_line_and_optional_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTOREKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsError) as info:
        get_metric("fid", where="data.val.v.metrics.fid")
    msg = str(info.value)
    assert FID_INCEPTION_FILENAME in msg and str(tmp_path / "cache") in msg and "\n" not in msg
    with pytest.raises(WeightsError, match=r"nope\.pth does not exist"):
        get_metric("kid", weights=str(tmp_path / "nope.pth"))

    with pytest.raises(MetricSkipped) as skipped:
        get_metric("fid", where="data.val.v.metrics.fid", optional=True)
    note = str(skipped.value)
    assert (
        note.startswith("data.val.v.metrics.fid: skipped (optional: true)") and FID_INCEPTION_FILENAME in note
    )
    assert skipped.value.metric == "fid" and "\n" not in note
    assert build_metric("kid", optional=True) == (None, str(get_skip("kid")))
    metric, note = build_metric("niqe", optional=True)  # any metric with a weights file
    assert metric is None and NIQE_PARAMS_FILENAME in note
    metric, note = build_metric("fid", optional=True, **FAST)  # nothing missing: built, no note
    assert isinstance(metric, FIDMetric) and note is None
    with pytest.raises(ConfigError, match=r"fid\.optional: expected true or false"):
        check_metric("fid", where="fid", optional="maybe")


def get_skip(name: str) -> MetricSkipped:
    try:
        get_metric(name, optional=True)
    except MetricSkipped as exc:
        return exc
    raise AssertionError(f"{name} was not skipped")


def test_fid_from_a_yaml_config_and_option_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _folder(tmp_path / "ref", _images(6, 12))
    text = f"""
metrics:
  fid: {{reference: {ref}, num_images: '16', weights: random, dims: 64, resize_to: 75, batch_size: 3}}
"""
    opts = yaml.safe_load(text)["metrics"]["fid"]
    built: list[int] = []
    real = dist.F.random_fid_model
    monkeypatch.setattr(dist.F, "random_fid_model", lambda *a: built.append(1) or real(*a))
    assert check_metric("fid", where="data.val.v.metrics.fid", **opts)["num_images"] == 16
    assert built == []  # checking builds (and loads) nothing
    metric = get_metric("fid", where="data.val.v.metrics.fid", **opts)
    assert isinstance(metric, FIDMetric) and metric.num_images == 16 and metric.batch_size == 3
    assert built == [1]
    _feed(metric, _images(6, 13), None, list(range(6)), 3)
    assert metric.compute() > 0
    assert get_metric("fid", weights="random").num_images == 5000
    assert get_metric("kid", weights="random").num_images == 1000

    stats = tmp_path / "stats.npz"
    fidmod.save_stats_npz(stats, np.zeros(64), np.eye(64))
    bad = [
        ({"reference": str(stats), "weights": "random"}, r"v\.reference: weights: random needs images"),
        ({"dims": 100}, r"v\.dims: expected one of 64, 192, 768, 2048"),
        ({"resize_to": 50}, r"v\.resize_to: must be at least 75"),
        ({"num_images": 1}, r"v\.num_images: must be at least 2"),
        ({"referense": "x"}, r"v\.referense: unknown argument .*did you mean 'reference'"),
    ]
    for extra, pattern in bad:
        with pytest.raises(ConfigError, match=pattern) as info:
            check_metric("fid", where="v", **extra)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"v\.subset_size: must be between 2 and num_images \(10\)"):
        check_metric("kid", where="v", num_images=10, subset_size=20)
    with pytest.raises(ConfigError, match=r"v\.reference: .*stats\.npz is a statistics file, but kid needs"):
        check_metric("kid", where="v", reference=str(stats))
    with pytest.raises(ConfigError, match="weights: random needs images"):
        FIDMetric(reference=str(stats), weights="random")  # direct construction checks too
    with pytest.raises(DataError, match=r"reference .*nowhere does not exist"):
        get_metric("fid", reference=str(tmp_path / "nowhere"), **FAST)


def test_official_weights_and_npz_reference(tmp_path: Path) -> None:
    """A weights file in the official layout and pytorch-fid statistics: no calibration at all."""
    weights = tmp_path / FID_INCEPTION_FILENAME
    torch.save(fidmod.random_fid_model(dims=64, seed=3).state_dict(), weights)
    ref_feats = np.random.default_rng(0).normal(size=(30, 64))
    stats = fidmod.save_stats_npz(tmp_path / "ref.npz", *fidmod.compute_statistics(ref_feats))
    metric = get_metric("fid", reference=str(stats), weights=str(weights), dims=64, resize_to=75)
    assert metric.note == "fid: images resized to 75, not 299"
    torch.testing.assert_close(metric.model.state_dict(), torch.load(weights), rtol=0, atol=0)
    out = _images(8, 14)
    _feed(metric, out, None, list(range(8)), 3)
    with torch.no_grad():
        feats = metric.model(out).double().numpy()
    expected = fidmod.frechet_distance(
        *fidmod.compute_statistics(feats), *fidmod.compute_statistics(ref_feats)
    )
    assert metric.compute() == pytest.approx(expected, rel=1e-6)
    small = fidmod.save_stats_npz(tmp_path / "small.npz", np.zeros(32), np.eye(32))
    with pytest.raises(DataError, match="statistics have 32 dimensions, fid uses dims 64"):
        metric._load_npz(str(small))


def test_merge_rejects_an_image_seen_twice() -> None:
    metric = get_metric("kid", subset_size=2, **FAST)
    _feed(metric, _images(4, 15), _images(4, 16), [0, 1, 2, 3], 4)
    with pytest.raises(ValueError, match="index 0 was updated more than once"):
        metric.merge([metric.state(), metric.state()])


def test_batch_slices_never_end_with_a_single_image() -> None:
    def sizes(n: int, bs: int) -> list[int]:
        return [s.stop - s.start for s in fidmod.batch_slices(n, bs)]

    assert sizes(9, 4) == [4, 5] and sizes(8, 4) == [4, 4] and sizes(1, 4) == [1] and sizes(0, 4) == []
    assert sizes(3, 1) == [1, 2]
    assert [i for s in fidmod.batch_slices(11, 3) for i in range(11)[s]] == list(range(11))

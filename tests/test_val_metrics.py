"""NIQE and LPIPS as validation metrics: the registry's factory contract, BasicSR's layouts, the CLI.

Weights and the NIQE parameters file are made up by the test (random networks in the official
layouts): the point is the wiring — quantisation, channel order, options, building once.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import restorekit.metrics as metrics_mod
from conftest import smooth_image, tiny_config, write_config
from restorekit.archs.export import export_network
from restorekit.cli import main
from restorekit.engine.validation import BestTracker
from restorekit.errors import ConfigError, WeightsError
from restorekit.metrics import (
    calculate_psnr,
    calculate_ssim,
    check_metric,
    get_metric,
    higher_is_better,
    psnr_batch,
    ssim_batch,
)
from restorekit.metrics import psnr_ssim_torch as pst
from restorekit.metrics.lpips import LPIPS
from restorekit.metrics.niqe import NIQE_PARAMS_FILENAME, calculate_niqe, gaussian_window
from restorekit.registry import ARCHS

ALEX_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A NIQE parameters file and LPIPS-alex weights (trunk + heads), all random."""
    root = tmp_path_factory.mktemp("metric_files")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(36, 36))
    niqe = root / NIQE_PARAMS_FILENAME
    np.savez(
        niqe,
        mu_pris_param=rng.normal(size=(1, 36)),
        cov_pris_param=a @ a.T / 36 + 0.1 * np.eye(36),
        gaussian_window=gaussian_window(),
    )
    g = torch.Generator().manual_seed(1)
    trunk = {}
    for i, (cout, cin, k) in ALEX_CONVS.items():
        trunk[f"features.{i}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2 / (k * k * cin)) ** 0.5
        trunk[f"features.{i}.bias"] = 0.01 * torch.randn(cout, generator=g)
    lins = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
        for k, c in enumerate((64, 192, 384, 256, 256))
    }
    torch.save(trunk, root / "alex.pth")
    torch.save(lins, root / "lin_alex.pth")
    return {"niqe": niqe, "alex": root / "alex.pth", "lin": root / "lin_alex.pth"}


def _images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    """NCHW RGB in [0, 1] that are *not* on the 8-bit grid, with a few values outside [0, 1]."""
    rng = np.random.default_rng(seed)
    imgs = np.stack([smooth_image(rng, h, w) for _ in range(n)]).astype(np.float32) / 255
    imgs += rng.uniform(-0.004, 0.004, size=imgs.shape).astype(np.float32)
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()


def _tensor2img_bgr(t: torch.Tensor) -> np.ndarray:
    """BasicSR's tensor2img for one RGB CHW image: clamp, *255, round, uint8, RGB → BGR."""
    arr = np.round(np.clip(t.numpy().astype(np.float32), 0, 1) * np.float32(255)).astype(np.uint8)
    return np.ascontiguousarray(arr.transpose(1, 2, 0)[:, :, ::-1])


def test_function_metrics_are_bound_and_factories_are_built(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    psnr = get_metric("psnr", crop_border="2")
    assert (
        isinstance(psnr, functools.partial)
        and psnr.func is psnr_batch
        and psnr.keywords == {"crop_border": 2}
    )

    built: list[tuple] = []

    class CountingLPIPS(LPIPS):
        def __init__(self, *args: object) -> None:
            built.append(args)
            super().__init__(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(metrics_mod, "LPIPS", CountingLPIPS)
    opts = {"net": "alex", "backbone_weights": str(files["alex"]), "lin_weights": str(files["lin"])}
    assert check_metric("lpips", **opts) == opts and built == []  # checking builds nothing
    metric = get_metric("lpips", **opts)
    assert len(built) == 1 and isinstance(metric, metrics_mod.LPIPSMetric)
    with pytest.raises(ConfigError, match=r"metrics\.lpips\.netz: unknown argument.*did you mean 'net'"):
        check_metric("lpips", where="metrics.lpips", netz="alex")
    with pytest.raises(ConfigError, match=r"net: expected one of 'vgg', 'alex'"):
        check_metric("lpips", net="squeeze")
    with pytest.raises(ConfigError, match=r"convert_to: expected one of 'y', 'gray'"):
        check_metric("niqe", convert_to="rgb")


def test_lower_is_better_metrics_keep_the_lowest() -> None:
    assert [higher_is_better(m) for m in ("psnr", "ssim", "niqe", "lpips", "fid")] == [
        True,
        True,
        False,
        False,
        False,
    ]
    best = BestTracker()
    best.update("set", {"lpips": 0.3, "psnr": 20.0}, 1)
    assert best.update("set", {"lpips": 0.2, "psnr": 19.0}, 2)  # the first metric improved
    assert not best.update("set", {"lpips": 0.25, "psnr": 25.0}, 3)
    assert best.best["set/lpips"] == {"value": 0.2, "iter": 2}
    assert best.best["set/psnr"] == {"value": 25.0, "iter": 3}


def test_niqe_metric_is_basicsr_niqe_of_the_saved_image(files: dict[str, Path]) -> None:
    out = _images(2, 100, 196, seed=1)
    metric = get_metric("niqe", crop_border=2, params_path=str(files["niqe"]))
    values = metric(out, torch.zeros(1))  # no reference: the gt argument is ignored
    assert values.dtype == torch.float64 and values.shape == (2,)
    expected = [calculate_niqe(_tensor2img_bgr(img), 2, params_path=files["niqe"]) for img in out]
    assert values.tolist() == expected  # the same function on the same uint8 BGR array
    assert values[0] != values[1] and np.isfinite(expected).all()
    # The channel order matters for Y: feeding RGB as if it were BGR gives another number.
    rgb = _tensor2img_bgr(out[0])[:, :, ::-1]
    assert calculate_niqe(rgb, 2, params_path=files["niqe"]) != expected[0]
    gray = get_metric("niqe", convert_to="gray", params_path=str(files["niqe"]))(out, out)
    assert gray.tolist() != values.tolist()


def test_niqe_without_params_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTOREKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsError) as info:
        get_metric("niqe")
    msg = str(info.value)
    assert NIQE_PARAMS_FILENAME in msg and str(tmp_path / "cache") in msg and "\n" not in msg
    bad = tmp_path / "bad.npz"
    np.savez(bad, mu_pris_param=np.zeros((1, 36)))
    with pytest.raises(WeightsError, match="cov_pris_param"):
        get_metric("niqe", params_path=str(bad))


def test_lpips_metric_quantises_like_tensor2img(files: dict[str, Path]) -> None:
    out, gt = _images(3, 48, 40, seed=2), _images(3, 48, 40, seed=3)
    metric = get_metric("lpips", backbone_weights=str(files["alex"]), lin_weights=str(files["lin"]))
    got = metric(out, gt)
    model = LPIPS("alex", files["alex"], files["lin"])
    to_unit = [
        torch.from_numpy(np.stack([_tensor2img_bgr(i)[:, :, ::-1] for i in x]).astype(np.float32) / 255)
        for x in (out, gt)
    ]
    with torch.no_grad():
        expected = model(*(t.permute(0, 3, 1, 2) for t in to_unit)).double()
        unquantised = model(out, gt).double()
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)
    assert not torch.allclose(got, unquantised, rtol=0, atol=1e-9)  # quantising is not a no-op
    assert (metric(gt, gt) == 0).all()
    gray = metric(out[:, :1], gt[:, :1])  # one channel is repeated to RGB
    torch.testing.assert_close(
        gray, metric(out[:, :1].expand(-1, 3, -1, -1), gt[:, :1].expand(-1, 3, -1, -1))
    )


def test_validate_with_niqe_and_lpips_builds_lpips_once(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    cfg = tiny_config(tmp_path)
    rng = np.random.default_rng(4)
    gt_dir, lq_dir = tmp_path / "v" / "GT", tmp_path / "v" / "LQ"
    gt_dir.mkdir(parents=True)
    lq_dir.mkdir(parents=True)
    for i in range(3):  # 96x192: two NIQE blocks, so its covariance exists
        gt = smooth_image(rng, 96, 192)
        cv2.imwrite(str(gt_dir / f"v{i}.png"), gt)
        cv2.imwrite(str(lq_dir / f"v{i}.png"), cv2.resize(gt, (96, 48), interpolation=cv2.INTER_AREA))
    lpips_opts = {"net": "alex", "backbone_weights": str(files["alex"]), "lin_weights": str(files["lin"])}
    cfg["data"]["val"] = {
        "v": {
            "dataset": {"type": "PairedImageDataset", "dataroot_gt": str(gt_dir), "dataroot_lq": str(lq_dir)},
            "metrics": {"niqe": {"crop_border": 0, "params_path": str(files["niqe"])}, "lpips": lpips_opts},
        }
    }
    cfg_path = write_config(tmp_path / "c.yml", cfg)
    torch.manual_seed(0)
    net = ARCHS.build(cfg["network_g"], upscale=2, scale=2)
    weights = tmp_path / "w.safetensors"
    export_network(net, weights)

    built = []
    real = metrics_mod.LPIPS
    monkeypatch.setattr(metrics_mod, "LPIPS", lambda *a: built.append(a) or real(*a))
    assert main(["validate", "-c", str(cfg_path), "--weights", str(weights), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result) == ["v"] and list(result["v"]) == ["niqe", "lpips"]
    assert len(built) == 1  # three batches, one network

    # The means are those of the metrics applied to each output image by hand.
    model = real("alex", files["alex"], files["lin"])
    niqe_vals, lpips_vals = [], []
    for i in range(3):
        lq = torch.from_numpy(cv2.imread(str(lq_dir / f"v{i}.png"))[:, :, ::-1] / np.float32(255))
        gt = torch.from_numpy(cv2.imread(str(gt_dir / f"v{i}.png"))[:, :, ::-1] / np.float32(255))
        with torch.no_grad():
            out = net(lq.permute(2, 0, 1)[None].contiguous()).clamp(0, 1)
        niqe_vals.append(calculate_niqe(_tensor2img_bgr(out[0]), 0, params_path=files["niqe"]))
        q = torch.from_numpy(_tensor2img_bgr(out[0])[:, :, ::-1] / np.float32(255)).permute(2, 0, 1)[None]
        with torch.no_grad():
            lpips_vals.append(float(model(q, gt.permute(2, 0, 1)[None])))
    assert result["v"]["niqe"] == pytest.approx(float(np.mean(niqe_vals)), rel=1e-9)
    assert result["v"]["lpips"] == pytest.approx(float(np.mean(lpips_vals)), rel=1e-5)


def test_tiled_ssim_on_images_larger_than_a_tile() -> None:
    """Several 32-row tiles plus a remainder on both axes, against BasicSR's numpy SSIM."""
    g = torch.Generator().manual_seed(5)
    gt = torch.rand(2, 3, 75, 90, generator=g)
    out = gt + 0.08 * torch.randn(2, 3, 75, 90, generator=g)
    for y in (False, True):
        got = ssim_batch(out, gt, 2, y)
        for i in range(2):
            a, b = _tensor2img_bgr(out[i]), _tensor2img_bgr(gt[i])
            assert abs(got[i].item() - calculate_ssim(a, b, 2, test_y_channel=y)) < 1e-11
            assert psnr_batch(out, gt, 2, y)[i].item() == pytest.approx(
                calculate_psnr(a, b, 2, test_y_channel=y), abs=1e-9
            )
    # The GPU variant of the filter (all planes at once, zero-padded tiles) gives the same values.
    x = torch.rand(4, 75, 90, generator=g, dtype=torch.float64) * 255
    batched = pst._filter_batched(x, pst._tile_band(x.device))
    torch.testing.assert_close(batched, pst._filter_valid(x), rtol=0, atol=1e-10)
    assert batched.shape == (4, 65, 80)

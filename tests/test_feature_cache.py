"""The reals' Inception features are computed once per data set + protocol, across runs.

Every case builds a second metric (a new run) on the same cache folder and checks that the
expensive part (calibration, feature extraction) is not repeated, that the number is the same,
and that a changed image or option is a new entry, never a stale one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import smooth_image
from restorekit.data.io import write_image
from restorekit.metrics import fid as fidmod
from restorekit.metrics import get_metric
from restorekit.metrics.feature_cache import SUBDIR, FeatureCache, protocol

FAST: dict[str, Any] = {"weights": "random", "dims": 64, "resize_to": 75, "batch_size": 4}


def _images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    imgs = np.stack([smooth_image(rng, size, size) for _ in range(n)]).astype(np.float32) / 255
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()


def _score(metric: Any, out: torch.Tensor, gt: torch.Tensor | None) -> float:
    for s in range(0, len(out), 4):
        idx = list(range(s, min(s + 4, len(out))))
        metric.update(out[idx], None if gt is None else gt[idx], idx)
    return float(metric.compute())


class Counter:
    """Wraps a function of ``fid`` and counts its calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.calls = 0
        real = getattr(fidmod, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(fidmod, name, wrapped)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RESTOREKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / SUBDIR


def test_random_inception_reals_are_calibrated_once_across_runs(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes, reals = _images(10, 1), _images(10, 2)
    calib = Counter(monkeypatch, "calibrate_batchnorm")
    first = _score(get_metric("fid", **FAST), fakes, reals)
    assert calib.calls == 1 and len(list(cache.glob("*.npz"))) == 1
    again = _score(get_metric("fid", **FAST), fakes, reals)  # a new run: read from disk
    assert calib.calls == 1 and again == first
    kid = get_metric("kid", **FAST, subset_size=4)
    _score(kid, fakes, reals)
    assert calib.calls == 1  # KID on the same reals with the same network shares the entry
    changed = reals.clone()
    changed[3, :, 0, 0] = 1 - changed[3, :, 0, 0]
    _score(get_metric("fid", **FAST), fakes, changed)
    assert calib.calls == 2  # one changed pixel is a new entry
    _score(get_metric("fid", **{**FAST, "seed": 1}), fakes, reals)
    assert calib.calls == 3  # another protocol is a new entry
    off = _score(get_metric("fid", **FAST, cache=False), fakes, reals)
    assert calib.calls == 4 and off == first
    assert len(list(cache.glob("*.npz"))) == 3


def test_a_folder_reference_is_extracted_once_and_refreshed_on_change(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "reals"
    for i, img in enumerate(_images(8, 3)):
        write_image(folder / f"{i}.png", img.permute(1, 2, 0).numpy())
    extract = Counter(monkeypatch, "extract_features")
    fakes = _images(8, 4)
    first = _score(get_metric("fid", reference=str(folder), **FAST), fakes, None)
    again = _score(get_metric("fid", reference=str(folder), **FAST), fakes, None)
    assert extract.calls == 1 and again == first
    write_image(folder / "0.png", _images(1, 5)[0].permute(1, 2, 0).numpy())  # a replaced file
    changed = _score(get_metric("fid", reference=str(folder), **FAST), fakes, None)
    assert extract.calls == 2 and changed != first


def test_official_weights_reals_in_memory_are_cached_per_batch(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(fidmod.random_fid_model(dims=64, seed=3).state_dict(), weights)
    opts = {"weights": str(weights), "dims": 64, "resize_to": 75, "batch_size": 4}
    fakes, reals = _images(8, 6), _images(8, 7)
    first_metric = get_metric("fid", **opts)
    first = _score(first_metric, fakes, reals)
    assert first_metric.protocol == protocol(weights, 0, 64, 75)
    assert "pt_inception-2015-12-05-6726825d.pth" in first_metric.protocol
    metric = get_metric("fid", **opts)
    calls = []
    real_features = metric._features
    monkeypatch.setattr(metric, "_features", lambda x: calls.append(len(x)) or real_features(x))
    assert _score(metric, fakes, reals) == first
    assert calls == [4, 4]  # only the fakes went through the network


def test_a_torn_or_unwritable_cache_is_recomputed_not_an_error(cache: Path, tmp_path: Path) -> None:
    store = FeatureCache("p")
    key = store.key(b"x")
    store.put(key, {"features": np.ones((2, 3))})
    (cache / f"{key}.npz").write_bytes(b"PK\x03\x04torn")
    assert FeatureCache("p").get(key) is None
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    store = FeatureCache("p")
    store.folder = blocked / SUBDIR
    store.put(key, {"features": np.zeros(1)})  # cannot write: kept in memory only
    assert store.folder is None and store.get(key)["features"].tolist() == [0.0]  # type: ignore[index]

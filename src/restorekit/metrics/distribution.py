"""FID and KID as set metrics (``metrics: {fid: {reference: stats.npz, num_images: 5000}}``).

Both compare the Inception features of the *outputs* with those of a reference:

* ``reference: stats.npz`` — a pytorch-fid statistics file (``mu``, ``sigma``; FID only);
* ``reference: folder`` — a folder of images, its features computed once and kept for every
  validation round;
* ``reference: None`` — the ``gt`` images passed to ``update()``.

``weights`` is the path of ``pt_inception-2015-12-05-6726825d.pth`` (``None``: the cache folder,
see ``restorekit.weights``) or ``"random"``: a seeded random-init Inception whose BatchNorm
statistics are calibrated on the real images (``fid.calibrate_batchnorm``). That is what tests
and toy recipes use offline; the value is a valid two-sample distance but not comparable with
published FIDs, which ``note`` says. With a folder the calibration runs once, on the folder,
before the first batch, so all ranks get the same network. With ``reference: None`` the real
images are only complete after ``merge``, so the metric then keeps the quantised 8-bit images
(not features) and calibrates and extracts everything in ``compute()`` — exact under any
sharding, but the state holds images: meant for toy sets. A ``.npz`` reference has no images to
calibrate on, so ``weights: random`` with one is a config error.

Inputs are quantised like BasicSR's ``tensor2img`` (the saved 8-bit images are what pytorch-fid
would read), gray is repeated to RGB, and each image is resized to ``resize_to`` (299 as
pytorch-fid; tests may use down to 75 to stay quick on a CPU). The reals' features are cached
across rounds and runs (``metrics.feature_cache``; ``cache: false`` keeps them in memory only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from restorekit.archs.inception import (
    FID_DIMS,
    FID_INCEPTION_FILENAME,
    FID_INPUT_SIZE,
    FIDInception,
    resize_for_fid,
)
from restorekit.data.io import scan_images
from restorekit.errors import ConfigError, DataError
from restorekit.metrics import fid as F
from restorekit.metrics.base import SetMetric, merge_indexed
from restorekit.metrics.feature_cache import (
    FeatureCache,
    batchnorm_state,
    file_identity,
    load_batchnorm_state,
    model_identity,
    protocol,
)
from restorekit.metrics.psnr_ssim_torch import quantize
from restorekit.registry import METRICS, signature_params
from restorekit.weights import resolve_weights

RANDOM = "random"
FIDDims = Literal[64, 192, 768, 2048]


def _rgb_resized(unit: Tensor, size: int) -> Tensor:
    """Gray repeated to RGB (PIL's ``convert("RGB")``), then pytorch-fid's resize to ``size``."""
    if unit.shape[1] == 1:
        unit = unit.expand(-1, 3, -1, -1)
    return resize_for_fid(unit, size)


def _to_unit(images: Tensor, size: int) -> Tensor:
    """tensor2img's 8-bit round trip as float32 in [0, 1] (what reading the saved PNG gives)."""
    return _rgb_resized(quantize(images).to(torch.float32).div_(255.0), size)


class InceptionSetMetric(SetMetric):
    """What FID and KID share: options, the network, the reference, the per-rank state."""

    name = "inception"
    npz_reference = False  # whether a .npz statistics file can be the reference

    def __init__(
        self,
        reference: str | None,
        num_images: int,
        weights: str | None,
        dims: FIDDims,
        batch_size: int,
        resize_to: int,
        seed: int,
        cache: bool = True,
    ) -> None:
        """Shared set-up; subclasses call ``check_options`` with all their options first."""
        self.reference, self.num_images, self.dims = reference, num_images, dims
        self.batch_size, self.resize_to, self.seed = batch_size, resize_to, seed
        self.random = weights == RANDOM
        if reference is not None and not Path(reference).exists():
            kind = f"{'a .npz statistics file or ' if self.npz_reference else ''}a folder of images"
            raise DataError(f"{self.name}: reference {reference} does not exist (expected {kind})")
        if self.random:
            self.model: FIDInception = F.random_fid_model(dims, seed, resize_to)
        else:
            path = resolve_weights(weights, FID_INCEPTION_FILENAME, F.FID_WEIGHTS_WHAT)
            self.model = FIDInception(weights_path=path, dims=dims, input_size=resize_to)
        #: how the number is made, written beside every value (stats.jsonl, fid.csv)
        self.protocol = protocol(None if self.random else path, seed, dims, resize_to)
        weights_id = model_identity(self.model) if self.random else file_identity(path)
        self.features = FeatureCache(f"{self.protocol}|{weights_id}|{self.batch_size}", persist=cache)
        self.deferred = self.random and reference is None  # keep images, extract in compute()
        self.ready = not self.random  # random weights: calibrated before first use
        self.note = self._note()
        self._ref: Any = None  # reference features / statistics, computed once
        self._device = torch.device("cpu")  # of the last update: where compute() runs
        self._model_device = torch.device("cpu")
        self.reset()

    @classmethod
    def check_options(cls, where: str, **opts: Any) -> None:
        """Value checks that need nothing loaded (types are checked by ``check_metric``)."""
        defaults = {n: p.default for n, p in signature_params(cls).items()}
        o = {**defaults, **opts}
        if o["num_images"] < 2:
            raise ConfigError(f"{where}.num_images: must be at least 2, got {o['num_images']}")
        if o["batch_size"] < 1:
            raise ConfigError(f"{where}.batch_size: must be at least 1, got {o['batch_size']}")
        if o["resize_to"] < 75:
            raise ConfigError(f"{where}.resize_to: must be at least 75 (InceptionV3), got {o['resize_to']}")
        if o["dims"] not in FID_DIMS:
            raise ConfigError(
                f"{where}.dims: must be one of {', '.join(map(str, FID_DIMS))}, got {o['dims']}"
            )
        ref = o["reference"]
        if ref is not None and str(ref).endswith(".npz"):
            if not cls.npz_reference:
                raise ConfigError(
                    f"{where}.reference: {ref} is a statistics file, but {cls.name} needs features: "
                    "give a folder of images or None (the gt images)"
                )
            if o["weights"] == RANDOM:
                raise ConfigError(
                    f"{where}.reference: weights: random needs images to calibrate on, and {ref} "
                    "holds only statistics: give a folder of images or None (the gt images)"
                )

    def _note(self) -> str | None:
        parts = []
        if self.random:
            on = "the gt images" if self.reference is None else str(self.reference)
            parts.append(
                f"random-init Inception (seed {self.seed}) calibrated on {on}: a valid two-sample "
                "distance, not comparable with published numbers"
            )
        if self.resize_to != FID_INPUT_SIZE:
            parts.append(f"images resized to {self.resize_to}, not 299")
        return f"{self.name}: " + "; ".join(parts) if parts else None

    # -- the protocol ------------------------------------------------------------------------

    def reset(self) -> None:
        self._indices: list[int] = []
        self._out: list[Any] = []  # per batch: feature arrays, or per image: uint8 CHW (deferred)
        self._gt: list[Any] = []

    def update(self, output: Tensor, gt: Tensor | None, indices: Sequence[int]) -> None:
        self._check_batch(output, gt, indices)
        self._device = output.device
        self._indices += [int(i) for i in indices]
        use_gt = self.reference is None
        if self.deferred:
            self._out += list(quantize(output).to(torch.uint8).cpu().numpy())
            self._gt += list(quantize(gt).to(torch.uint8).cpu().numpy())  # type: ignore[arg-type]
            return
        self._prepare(output.device)
        self._out.append(self._features(_to_unit(output, self.resize_to)))
        if use_gt:  # the reals are the same every round: their features come from the cache
            real = quantize(gt).to(torch.uint8)  # type: ignore[arg-type]
            key = self.features.key(real.device.type, str(tuple(real.shape)), real.cpu().numpy().tobytes())
            hit = self.features.get(key)
            if hit is None:
                unit = _rgb_resized(real.to(torch.float32).div_(255.0), self.resize_to)
                hit = {"features": self._features(unit)}
                self.features.put(key, hit)
            self._gt.append(hit["features"])

    def state(self) -> dict[str, Any]:
        if self.deferred:
            return {
                "indices": np.asarray(self._indices, np.int64),
                "out": list(self._out),
                "gt": list(self._gt),
            }
        empty = np.empty((0, self.dims))
        out = np.concatenate(self._out) if self._out else empty
        gt = (np.concatenate(self._gt) if self._gt else empty) if self.reference is None else None
        return {"indices": np.asarray(self._indices, np.int64), "out": out, "gt": gt}

    def merge(self, states: Sequence[Any]) -> None:
        merged = merge_indexed(states, ("out", "gt"))
        self._indices = merged["indices"].tolist()
        if self.deferred:
            self._out, self._gt = merged["out"], merged["gt"]
        else:
            self._out = [merged["out"]]
            self._gt = [merged["gt"]] if merged["gt"] is not None else []

    def compute(self) -> float:
        n = len(self._indices)
        if n < 2:
            raise DataError(f"{self.name}: needs at least 2 images, got {n}")
        if self.deferred:
            out, gt = self._deferred_features()
            return self._value(out, gt)
        self._prepare(self._device)
        out = np.concatenate(self._out)
        return self._value(out, np.concatenate(self._gt) if self.reference is None else None)

    def _value(self, out: np.ndarray, gt: np.ndarray | None) -> float:
        """The metric from output features and gt features (``None``: use the reference)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The protocol of the last ``compute()``, with the image count and the reference."""
        return f"{self.protocol}; {len(self._indices)} images vs {self.reference or 'the real images'}"

    # -- helpers -----------------------------------------------------------------------------

    def _check_batch(self, output: Tensor, gt: Tensor | None, indices: Sequence[int]) -> None:
        if output.dim() != 4 or output.shape[1] not in (1, 3):
            raise DataError(
                f"{self.name}: expected NCHW images with 1 or 3 channels, got {tuple(output.shape)}"
            )
        if len(indices) != len(output):
            raise ValueError(f"{self.name}: {len(output)} images but {len(indices)} indices")
        if self.reference is None and (gt is None or gt.shape[0] != output.shape[0]):
            got = "None" if gt is None else str(tuple(gt.shape))
            raise DataError(f"{self.name}: reference is None, so update() needs one gt per output; gt: {got}")

    @torch.no_grad()
    def _features(self, x: Tensor) -> np.ndarray:
        self._move(x.device)
        chunks = [self.model(x[sl]).double().cpu().numpy() for sl in F.batch_slices(len(x), self.batch_size)]
        return np.concatenate(chunks) if chunks else np.empty((0, self.dims))

    def _move(self, device: torch.device) -> None:
        """``model.to(device)`` only on a change: walking 300 modules per batch is not free."""
        if device != self._model_device:
            self.model.to(device)
            self._model_device = device

    def _calibration_batch_size(self) -> int:
        return max(2, self.batch_size)  # BatchNorm in train mode needs more than one image

    def _prepare(self, device: torch.device) -> None:
        """Calibrate (random weights) and compute the reference once, before first use."""
        self._move(device)
        ref = self.reference
        if ref is None or (self.ready and self._ref is not None):
            return
        if str(ref).endswith(".npz"):
            self._ref = self._load_npz(ref)
            return
        key = self.features.key(torch.device(device).type, *(file_identity(p) for p in scan_images(ref)))
        hit = self.features.get(key)
        if hit is None or (self.random and not load_batchnorm_state(self.model, hit)):
            if not self.ready:
                batches = F.iter_image_batches(ref, self._calibration_batch_size(), self.resize_to, device)
                F.calibrate_batchnorm(self.model, batches)
            feats = F.extract_features(self.model, ref, self.batch_size, device)
            hit = {"features": feats, **(batchnorm_state(self.model) if self.random else {})}
            self.features.put(key, hit)
        self.ready = True
        if (n := len(hit["features"])) < 2:
            raise DataError(f"{self.name}: reference {ref} needs at least 2 images, found {n}")
        self._ref = self._reference_from_features(hit["features"])

    def _load_npz(self, ref: str) -> Any:
        mu, sigma = F.load_stats_npz(ref)
        if mu.shape[0] != self.dims:
            raise DataError(
                f"{ref}: statistics have {mu.shape[0]} dimensions, {self.name} uses dims {self.dims}"
            )
        return mu, sigma

    def _reference_from_features(self, feats: np.ndarray) -> Any:
        return feats

    def _unit_batches(self, images: list[np.ndarray], batch_size: int) -> Iterator[Tensor]:
        for sl in F.batch_slices(len(images), batch_size):
            batch = [torch.from_numpy(im)[None].to(self._device).float().div_(255.0) for im in images[sl]]
            yield torch.cat([_rgb_resized(b, self.resize_to) for b in batch])

    def _deferred_features(self) -> tuple[np.ndarray, np.ndarray]:
        """Calibrate on the merged gt images (in index order), then extract both sets' features.

        The gt images are the same every validation round (and every run on the same data), so
        the calibrated BatchNorm statistics and the gt features are cached, keyed by the images.
        """
        digest = hashlib.sha1(np.asarray(self._indices, np.int64).tobytes())
        for im in self._gt:
            digest.update(str(im.shape).encode())
            digest.update(im.tobytes())
        key = self.features.key(self._device.type, digest.hexdigest())
        self._move(self._device)
        hit = self.features.get(key)
        if hit is None or not load_batchnorm_state(self.model, hit):
            # calibrating resets the BatchNorm statistics first
            F.calibrate_batchnorm(self.model, self._unit_batches(self._gt, self._calibration_batch_size()))
            gt = np.concatenate([self._features(b) for b in self._unit_batches(self._gt, self.batch_size)])
            hit = {"features": gt, **batchnorm_state(self.model)}
            self.features.put(key, hit)
        out = np.concatenate([self._features(b) for b in self._unit_batches(self._out, self.batch_size)])
        return out, hit["features"]


@METRICS.register("fid", higher_is_better=False)
class FIDMetric(InceptionSetMetric):
    """Fréchet Inception Distance of the outputs to ``reference`` (see the module docstring).

    ``num_images`` (default 5000, the usual count) is how many images a task should generate
    for it. With 2048 dimensions the covariance needs well over 2048 images to be meaningful,
    and on a CPU the 2048x2048 matrix square root takes tens of seconds.
    """

    name = "fid"
    npz_reference = True

    def __init__(
        self,
        reference: str | None = None,
        num_images: int = 5000,
        weights: str | None = None,
        dims: FIDDims = 2048,
        batch_size: int = 50,
        resize_to: int = FID_INPUT_SIZE,
        seed: int = 0,
        cache: bool = True,
    ) -> None:
        self.check_options(self.name, **{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        super().__init__(reference, num_images, weights, dims, batch_size, resize_to, seed, cache)

    def _reference_from_features(self, feats: np.ndarray) -> Any:
        return F.compute_statistics(feats)

    def _value(self, out: np.ndarray, gt: np.ndarray | None) -> float:
        mu, sigma = F.compute_statistics(out)
        ref = F.compute_statistics(gt) if gt is not None else self._ref
        return F.frechet_distance(mu, sigma, *ref)


@METRICS.register("kid", higher_is_better=False)
class KIDMetric(InceptionSetMetric):
    """Kernel Inception Distance (the mean over subsets) of the outputs to ``reference``.

    Follows torch-fidelity (``fid.kid``): ``subsets`` random subsets of ``subset_size`` images
    drawn with ``subset_seed`` (2020, torch-fidelity's). ``subset_size: None`` uses
    ``min(1000, number of images)``, as ``restorekit kid`` does. The spread over subsets of the
    last ``compute()`` is kept in ``std``. The reference is a folder or None (a ``.npz`` holds
    only mean and covariance, not the features KID needs).
    """

    name = "kid"

    def __init__(
        self,
        reference: str | None = None,
        num_images: int = 1000,
        weights: str | None = None,
        dims: FIDDims = 2048,
        batch_size: int = 50,
        resize_to: int = FID_INPUT_SIZE,
        seed: int = 0,
        subsets: int = 100,
        subset_size: int | None = None,
        subset_seed: int = 2020,
        cache: bool = True,
    ) -> None:
        self.check_options(self.name, **{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        self.subsets, self.subset_size, self.subset_seed = subsets, subset_size, subset_seed
        self.std: float | None = None
        super().__init__(reference, num_images, weights, dims, batch_size, resize_to, seed, cache)

    @classmethod
    def check_options(cls, where: str, **opts: Any) -> None:
        super().check_options(where, **opts)
        defaults = {n: p.default for n, p in signature_params(cls).items()}
        o = {**defaults, **opts}
        if o["subsets"] < 1:
            raise ConfigError(f"{where}.subsets: must be at least 1, got {o['subsets']}")
        size = o["subset_size"]
        if size is not None and not 2 <= size <= o["num_images"]:
            raise ConfigError(
                f"{where}.subset_size: must be between 2 and num_images ({o['num_images']}), got {size}"
            )

    def _value(self, out: np.ndarray, gt: np.ndarray | None) -> float:
        ref = gt if gt is not None else self._ref
        size = self.subset_size if self.subset_size is not None else min(1000, len(out), len(ref))
        mean, self.std = F.kid(out, ref, self.subsets, size, seed=self.subset_seed)
        return mean

"""FID and KID on pytorch-fid's Inception features, so numbers are comparable with papers.

What has to match pytorch-fid for the numbers to be comparable:

* images are read as 8-bit and scaled to float32 by ``/255`` (``read_image`` does exactly that),
  gray images are repeated to RGB and alpha is dropped (PIL's ``convert("RGB")``);
* the network, its bilinear resize to 299 and its [-1, 1] scaling (``FIDInception``);
* statistics in float64 with ``np.cov(rowvar=False)`` and the Fréchet distance with
  ``scipy.linalg.sqrtm``, adding ``eps`` to the diagonals only when the product is singular;
* ``.npz`` statistics files with the keys ``mu`` and ``sigma`` (interchangeable both ways).

KID follows torch-fidelity: the unbiased MMD² with the polynomial kernel
``(x·y/d + 1)^3``, averaged over random subsets drawn with ``np.random.RandomState(seed)``.

Without the official weights (offline tests, toy recipes) :func:`random_fid_model` builds a
seeded random-init Inception and :func:`calibrate_batchnorm` sets its BatchNorm statistics from
real images. The distance between two sets is then still a valid two-sample distance (equal
sets give 0, it grows as they differ), but its scale is arbitrary: never compare such numbers
with published FIDs. The set metrics ``fid``/``kid`` (``metrics.distribution``) use both.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from restorekit.archs.inception import (
    FID_FEATURE_DIM,
    FID_INCEPTION_FILENAME,
    FID_INPUT_SIZE,
    FIDInception,
    resize_for_fid,
)
from restorekit.data.io import read_image, scan_images
from restorekit.errors import DataError
from restorekit.weights import resolve_weights

PathLike = str | os.PathLike[str]
ImagesInput = PathLike | torch.Tensor | Sequence[PathLike] | Sequence[np.ndarray]

FID_WEIGHTS_WHAT = "FID needs the pytorch-fid Inception weights"


def compute_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``np.cov(rowvar=False)``, i.e. divided by N-1) of (N, D) features."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise DataError(f"FID statistics need at least 2 feature vectors (N, D), got shape {feats.shape}")
    return np.mean(feats, axis=0), np.cov(feats, rowvar=False)


def save_stats_npz(path: PathLike, mu: np.ndarray, sigma: np.ndarray) -> Path:
    """Write statistics as pytorch-fid does (``np.savez_compressed`` with keys ``mu``, ``sigma``)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    try:  # under a file, a read-only folder, a full disk: one line, no partial file left
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:  # a file object stops numpy from appending a second ".npz"
            np.savez_compressed(fh, mu=np.asarray(mu), sigma=np.asarray(sigma))
        tmp.replace(p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise DataError(f"{p}: cannot write FID statistics: {exc.strerror or exc}") from None
    return p


def load_stats_npz(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``mu`` (D,) and ``sigma`` (D, D) from a pytorch-fid statistics file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: FID statistics file does not exist")
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in ("mu", "sigma") if k not in f.files]
            if missing:
                raise DataError(f"{p}: FID statistics need keys 'mu' and 'sigma', found {sorted(f.files)}")
            mu, sigma = np.asarray(f["mu"], dtype=np.float64), np.asarray(f["sigma"], dtype=np.float64)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{p}: cannot be read as a .npz statistics file ({exc})") from None
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise DataError(f"{p}: expected mu (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")
    return mu, sigma


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """``scipy.linalg.sqrtm`` without its warnings (pytorch-fid checks finiteness itself).

    pytorch-fid passes ``disp=False`` only to discard the error estimate; SciPy ≥ 1.16
    deprecates that argument, and the square root itself is the same either way. Imported
    here: ``scipy.linalg`` costs ~0.3 s at import, and importing ``restorekit.metrics`` (which
    registers ``fid``) should not pay it before a distance is computed.
    """
    from scipy import linalg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return linalg.sqrtm(a)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """‖mu1 − mu2‖² + Tr(Σ1 + Σ2 − 2·sqrt(Σ1Σ2)), computed exactly as pytorch-fid does.

    When the product's square root is not finite (a singular product), ``eps`` is added to both
    diagonals and the root taken again. A complex root is accepted when the imaginary parts of
    its diagonal are within 1e-3 of zero (numerical noise) and its real part is used; otherwise
    the statistics are inconsistent, usually because far too few images were used.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise DataError(
            f"FID statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise DataError(
                f"FID: the covariance square root has an imaginary component of {m:.3g}; "
                "use more images (at least as many as feature dimensions, 2048)"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _polynomial_kernel(
    x: np.ndarray, y: np.ndarray, degree: int, gamma: float | None, coef0: float
) -> np.ndarray:
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0) ** degree


def _unbiased_mmd2(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased MMD²: within-set means skip the diagonal (i ≠ j), the cross term uses all pairs."""
    m = k_xx.shape[0]
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kid(
    feats1: np.ndarray,
    feats2: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1,
    seed: int = 2020,
) -> tuple[float, float]:
    """Kernel Inception Distance (mean, std over subsets) as torch-fidelity computes it.

    Each subset draws ``subset_size`` rows of each set without replacement, in torch-fidelity's
    order from ``np.random.RandomState(seed)``; its default seed is 2020, kept here so the same
    features give the same number. The spread is ``np.std`` (population) over subsets.
    Computed in float64 (torch-fidelity uses the features' float32).
    """
    f1, f2 = np.asarray(feats1, dtype=np.float64), np.asarray(feats2, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise DataError(f"KID needs two (N, D) feature arrays of equal D, got {f1.shape} and {f2.shape}")
    n1, n2 = len(f1), len(f2)
    if subset_size < 2 or subset_size > min(n1, n2):
        raise DataError(
            f"KID subset_size {subset_size} must be between 2 and the number of samples "
            f"(first set: {n1}, second set: {n2}); pass a smaller subset_size"
        )
    rng = np.random.RandomState(seed)
    mmds = np.zeros(num_subsets)
    for i in range(num_subsets):
        a = f1[rng.choice(n1, subset_size, replace=False)]
        b = f2[rng.choice(n2, subset_size, replace=False)]
        k_aa = _polynomial_kernel(a, a, degree, gamma, coef0)
        k_bb = _polynomial_kernel(b, b, degree, gamma, coef0)
        k_ab = _polynomial_kernel(a, b, degree, gamma, coef0)
        mmds[i] = _unbiased_mmd2(k_aa, k_ab, k_bb)
    return float(np.mean(mmds)), float(np.std(mmds))


def _to_rgb_tensor(img: np.ndarray, name: str) -> torch.Tensor:
    """HWC float [0, 1] image → 1x3xHxW; gray repeated (as PIL's convert("RGB")), alpha dropped."""
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise DataError(f"{name}: expected an HWC image with 1, 3 or 4 channels, got shape {arr.shape}")
    if arr.shape[2] in (1, 2):
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    arr = arr[:, :, :3]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def _image_items(images: ImagesInput) -> list[tuple[str, PathLike | np.ndarray]]:
    """Name and source of every image: a folder's files (sorted), a list of files or of arrays."""
    if isinstance(images, str | os.PathLike):
        return [(str(p), p) for p in scan_images(images)]
    return [(str(x) if isinstance(x, str | os.PathLike) else f"image #{i}", x) for i, x in enumerate(images)]


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive slices of ``batch_size`` items covering ``range(n)``; a last slice of one item
    is folded into the one before, because BatchNorm in train mode (calibration) cannot normalise
    a single sample whose feature map is 1x1."""
    starts = list(range(0, n, max(1, batch_size)))
    bounds = [*starts, n]
    if len(starts) > 1 and n - starts[-1] == 1:
        bounds.pop(-2)
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def iter_image_batches(
    images: ImagesInput, batch_size: int = 50, size: int = FID_INPUT_SIZE, device: str | torch.device = "cpu"
) -> Iterator[torch.Tensor]:
    """NCHW float32 batches of a folder or a list of files/HWC arrays, each image resized on its
    own to ``size`` (so mixed sizes batch, and the result equals a batched resize)."""
    items = _image_items(images)
    for sl in batch_slices(len(items), batch_size):
        batch = []
        for name, src in items[sl]:
            img = read_image(src) if isinstance(src, str | os.PathLike) else src
            batch.append(resize_for_fid(_to_rgb_tensor(img, name).to(device), size))
        yield torch.cat(batch)


@torch.inference_mode()
def extract_features(
    model: FIDInception, images_or_dir: ImagesInput, batch_size: int = 50, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Features (N, model.dims) float64 of a folder, a list of files/HWC arrays, or an NCHW tensor.

    Files are read one by one and each is resized to the model's input size (299) on its own
    before batching (the resize is per image, so this equals pytorch-fid's batched resize and
    also allows mixed sizes). A tensor must be NCHW RGB in [0, 1]. ``batch_size`` only trades
    memory for speed.
    """
    model = model.to(device).eval()
    if isinstance(images_or_dir, torch.Tensor):
        x = images_or_dir
        if x.ndim != 4 or x.shape[1] != 3:
            raise DataError(f"FID features: expected an NCHW RGB tensor, got shape {tuple(x.shape)}")
        chunks = [model(x[sl].to(device, torch.float32)) for sl in batch_slices(len(x), batch_size)]
        return torch.cat(chunks).double().cpu().numpy() if chunks else np.empty((0, model.dims))
    size = getattr(model, "input_size", FID_INPUT_SIZE)
    batches = iter_image_batches(images_or_dir, batch_size, size, device)
    feats = [model(b).double().cpu().numpy() for b in batches]
    return np.concatenate(feats) if feats else np.empty((0, model.dims))


def random_fid_model(
    dims: int = FID_FEATURE_DIM, seed: int = 0, input_size: int = FID_INPUT_SIZE
) -> FIDInception:
    """A random-init FID Inception, the same for the same ``seed`` (global RNG left untouched).

    Its BatchNorm statistics are meaningless until :func:`calibrate_batchnorm` has run.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FIDInception(weights_path=None, dims=dims, input_size=input_size)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Set every BatchNorm's running statistics from ``batches`` of real images; returns the count.

    Random weights with default BatchNorm statistics (mean 0, var 1) let activations drift
    through 94 layers until the features are nearly constant. Running the real images through
    the network in train mode with ``momentum=None`` makes each layer's statistics the
    cumulative average over the batches, so every layer sees normalised inputs and the
    features spread. The same batches in the same order always give the same statistics, so
    every rank calibrating on the same reference images gets the same network. The model is
    left in eval mode. (``FIDInception.train()`` refuses train mode; the BatchNorm layers are
    switched individually.)
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    count = 0
    try:
        for x in batches:
            model(x)
            count += len(x)
    finally:
        for bn in norms:
            bn.eval()
    if count < 2:
        raise DataError(f"BatchNorm calibration needs at least 2 images, got {count}")
    return count


def statistics_of_path(
    path: PathLike, model: FIDInception | None, batch_size: int = 50, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, sigma)`` of a ``.npz`` statistics file or of a folder of images."""
    p = Path(path)
    if str(p).endswith(".npz"):
        return load_stats_npz(p)
    if not p.exists():
        raise DataError(f"{p}: does not exist (expected a folder of images or a .npz statistics file)")
    if model is None:
        raise ValueError("a folder needs a model to extract features")
    feats = extract_features(model, p, batch_size=batch_size, device=device)
    if len(feats) < 2:
        raise DataError(f"{p}: FID needs at least 2 images, found {len(feats)}")
    return compute_statistics(feats)


def load_fid_model(
    weights: PathLike | None = None, device: str | torch.device = "cpu", dims: int = 2048
) -> FIDInception:
    """The FID Inception with the official weights (``weights`` or the cache folder)."""
    path = resolve_weights(weights, FID_INCEPTION_FILENAME, FID_WEIGHTS_WHAT)
    return FIDInception(weights_path=path, dims=dims).to(device)


def fid_from_paths(
    a: str,
    b: str,
    weights: str | None = None,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    dims: int = 2048,
) -> float:
    """FID between two folders of images or ``.npz`` statistics files (either side may be either).

    The weights are only needed (and only looked up) when one side is a folder. ``dims`` picks
    pytorch-fid's feature layer (2048 = pool3, the number papers report). On a CPU the 2048-d
    matrix square root alone takes tens of seconds, as it does in pytorch-fid.
    """
    for p in (a, b):
        if not Path(p).exists():
            raise DataError(f"{p}: does not exist (expected a folder of images or a .npz statistics file)")
    needs_model = not (str(a).endswith(".npz") and str(b).endswith(".npz"))
    model = load_fid_model(weights, device, dims) if needs_model else None
    mu1, sigma1 = statistics_of_path(a, model, batch_size, device)
    mu2, sigma2 = statistics_of_path(b, model, batch_size, device)
    if mu1.shape != mu2.shape:
        raise DataError(
            f"{a} and {b}: statistics have different dimensions ({mu1.shape[0]} vs {mu2.shape[0]})"
        )
    return frechet_distance(mu1, sigma1, mu2, sigma2)

"""Blur kernels of Real-ESRGAN's degradation model, sampled per sample in the data workers.

Real-ESRGAN blurs with six kernel families — isotropic / anisotropic Gaussians, generalised
Gaussians and "plateau" kernels — or, with some probability, a 2-D sinc (circular low-pass)
filter that mimics ringing and overshoot. Kernels are small numpy arrays, so they are drawn in
the DataLoader workers (cheap, parallel) and only the convolution runs batched on the device.

With ``Σ`` the 2×2 covariance rotated by θ (``diag(σx², σy²)`` turned by θ; ``σy = σx``, θ = 0 for
the isotropic kinds) and ``q(x) = xᵀ Σ⁻¹ x`` on a grid centred on the middle pixel:

* Gaussian:              ``exp(-q / 2)``
* generalised Gaussian:  ``exp(-q^β / 2)``   (β = 1 is the Gaussian; β < 1 heavier tails)
* plateau:               ``1 / (1 + q^β)``   (flat top, heavy tails)
* sinc:                  ``ω J₁(ω r) / (2π r)`` with ``ω²/(4π)`` at r = 0 (J₁: Bessel, first kind)

each normalised to sum 1. These are BasicSR's ``degradations.py`` formulas, so kernels drawn with
the same parameters are the same numbers. Sampling follows Real-ESRGAN's dataset: sizes are odd
in 7..``blur_kernel_size`` and zero-padded to ``blur_kernel_size``; rotation is uniform in
[-π, π]; β is drawn below or above 1 with probability 1/2 each; the sinc cutoff is uniform in
[π/3, π] for kernels smaller than 13, else [π/5, π].

Every random number comes from an explicit ``numpy.random.Generator`` (never the global numpy or
``random`` state), which is what makes a sample a pure function of its ``(index, seed)`` key.
The option checks at the bottom are shared with the batched pipeline: a bad value is a
``ConfigError`` naming the option key, before any training starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from restorekit.errors import ConfigError, did_you_mean

KERNEL_TYPES: tuple[str, ...] = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
MIN_KERNEL_SIZE = 7
FINAL_SINC_SIZE = 21  # Real-ESRGAN's final sinc filter: sizes 7..21, padded to 21


# ----------------------------------------------------------------------------- closed forms
def mesh_grid(kernel_size: int) -> np.ndarray:
    """(K, K, 2) pixel offsets (x, y) from the centre of an odd-sized kernel."""
    ax = np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def sigma_matrix2(sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """Covariance ``U diag(σx², σy²) Uᵀ`` with U the rotation by ``theta`` (radians)."""
    c, s = math.cos(theta), math.sin(theta)
    u = np.array([[c, -s], [s, c]])
    return u @ np.diag([sig_x**2, sig_y**2]) @ u.T


def _quadratic_form(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, isotropic: bool
) -> np.ndarray:
    """``q = xᵀ Σ⁻¹ x`` on the kernel grid (the squared Mahalanobis distance)."""
    cov = np.diag([sig_x**2, sig_x**2]) if isotropic else sigma_matrix2(sig_x, sig_y, theta)
    grid = mesh_grid(kernel_size)
    return np.einsum("...i,ij,...j->...", grid, np.linalg.inv(cov), grid)


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return (kernel / kernel.sum()).astype(np.float32)


def bivariate_gaussian(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, isotropic: bool = True
) -> np.ndarray:
    """Gaussian kernel; in the isotropic case ``sig_y`` and ``theta`` are ignored."""
    return _normalised(np.exp(-0.5 * _quadratic_form(kernel_size, sig_x, sig_y, theta, isotropic)))


def bivariate_generalized_gaussian(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, beta: float, isotropic: bool = True
) -> np.ndarray:
    """Generalised Gaussian ``exp(-q^β / 2)``: β < 1 gives heavier tails, β > 1 a flatter top."""
    q = _quadratic_form(kernel_size, sig_x, sig_y, theta, isotropic)
    return _normalised(np.exp(-0.5 * np.power(q, beta)))


def bivariate_plateau(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, beta: float, isotropic: bool = True
) -> np.ndarray:
    """Plateau kernel ``1 / (1 + q^β)``: flat near the centre, polynomial tails."""
    q = _quadratic_form(kernel_size, sig_x, sig_y, theta, isotropic)
    return _normalised(1.0 / (np.power(q, beta) + 1.0))


def circular_lowpass_kernel(cutoff: float, kernel_size: int, pad_to: int = 0) -> np.ndarray:
    """2-D circularly symmetric sinc with cutoff ``cutoff`` (radians, π is Nyquist), sum 1.

    This is the ideal low-pass filter's impulse response truncated to the kernel window; the
    truncation is what produces the ringing Real-ESRGAN wants to simulate. ``pad_to`` (odd, or 0)
    zero-pads the result to that size.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"sinc kernel size must be odd, got {kernel_size}")
    r = np.hypot(*np.moveaxis(mesh_grid(kernel_size), -1, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    c = (kernel_size - 1) // 2
    kernel[c, c] = cutoff**2 / (4 * np.pi)  # the limit of the expression at r = 0
    kernel = _normalised(kernel)
    return pad_kernel(kernel, pad_to) if pad_to > kernel_size else kernel


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad an odd square kernel to ``size`` × ``size`` (odd), keeping it centred."""
    k = kernel.shape[0]
    if size < k or (size - k) % 2:
        raise ValueError(f"cannot pad a {k}x{k} kernel to {size}x{size}")
    p = (size - k) // 2
    return np.pad(kernel, ((p, p), (p, p)))


def pulse_kernel(size: int = FINAL_SINC_SIZE) -> np.ndarray:
    """The identity kernel (a centred 1): convolving with it changes nothing."""
    kernel = np.zeros((size, size), dtype=np.float32)
    kernel[size // 2, size // 2] = 1.0
    return kernel


# ----------------------------------------------------------------------------- sampling
def _draw_beta(rng: np.random.Generator, beta_range: Sequence[float]) -> float:
    """β below or above 1 with probability 1/2 each (Real-ESRGAN), so both shapes are common.

    Ranges that do not contain 1 are clipped to it (the sampled value stays in the range)."""
    lo, hi = float(beta_range[0]), float(beta_range[1])
    one = min(max(1.0, lo), hi)
    if rng.random() < 0.5:
        return float(rng.uniform(lo, one))
    return float(rng.uniform(one, hi))


def random_mixed_kernel(
    rng: np.random.Generator,
    kernel_list: Sequence[str],
    kernel_prob: Sequence[float],
    kernel_size: int,
    sigma_range: Sequence[float],
    betag_range: Sequence[float],
    betap_range: Sequence[float],
    rotation_range: Sequence[float] = (-math.pi, math.pi),
) -> np.ndarray:
    """One kernel of a family drawn from ``kernel_list`` with probabilities ``kernel_prob``.

    σx (and, for the anisotropic kinds, σy independently) are uniform in ``sigma_range``.
    """
    kind = kernel_list[int(rng.choice(len(kernel_list), p=np.asarray(kernel_prob, dtype=np.float64)))]
    isotropic = not kind.endswith("aniso")
    sig_x = float(rng.uniform(sigma_range[0], sigma_range[1]))
    if isotropic:
        sig_y, theta = sig_x, 0.0
    else:
        sig_y = float(rng.uniform(sigma_range[0], sigma_range[1]))
        theta = float(rng.uniform(rotation_range[0], rotation_range[1]))
    if kind in ("iso", "aniso"):
        return bivariate_gaussian(kernel_size, sig_x, sig_y, theta, isotropic)
    if kind.startswith("generalized"):
        beta = _draw_beta(rng, betag_range)
        return bivariate_generalized_gaussian(kernel_size, sig_x, sig_y, theta, beta, isotropic)
    if kind.startswith("plateau"):
        beta = _draw_beta(rng, betap_range)
        return bivariate_plateau(kernel_size, sig_x, sig_y, theta, beta, isotropic)
    raise ValueError(f"unknown kernel type {kind!r}; known: {', '.join(KERNEL_TYPES)}")


def _sinc_cutoff(rng: np.random.Generator, kernel_size: int) -> float:
    """Small kernels cannot hold low cutoffs (the main lobe would not fit), hence two ranges."""
    low = math.pi / 3 if kernel_size < 13 else math.pi / 5
    return float(rng.uniform(low, math.pi))


@dataclass(frozen=True)
class BlurKernelOptions:
    """One degradation stage's kernel options, named as in Real-ESRGAN's dataset config."""

    blur_kernel_size: int = 21
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1

    def check(self, suffix: str = "") -> None:
        """Raise a ConfigError naming the key (``suffix`` is ``"2"`` for the second stage)."""
        size = self.blur_kernel_size
        if size < MIN_KERNEL_SIZE or size % 2 != 1:
            raise ConfigError(
                f"blur_kernel_size{suffix}: expected an odd size >= {MIN_KERNEL_SIZE}, got {size}"
            )
        for kind in self.kernel_list:
            if kind not in KERNEL_TYPES:
                raise ConfigError(
                    f"kernel_list{suffix}: unknown kernel type {kind!r}{did_you_mean(kind, KERNEL_TYPES)}; "
                    f"known: {', '.join(KERNEL_TYPES)}"
                )
        check_distribution(
            f"kernel_prob{suffix}", self.kernel_prob, len(self.kernel_list), f"kernel_list{suffix}"
        )
        check_range(f"blur_sigma{suffix}", self.blur_sigma, low=0.0, open_low=True)
        check_range(f"betag_range{suffix}", self.betag_range, low=0.0, open_low=True)
        check_range(f"betap_range{suffix}", self.betap_range, low=0.0, open_low=True)
        check_probability(f"sinc_prob{suffix}", self.sinc_prob)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A kernel of odd size in 7..blur_kernel_size, zero-padded to blur_kernel_size."""
        kernel_size = MIN_KERNEL_SIZE + 2 * int(
            rng.integers(0, (self.blur_kernel_size - MIN_KERNEL_SIZE) // 2 + 1)
        )
        if rng.random() < self.sinc_prob:
            kernel = circular_lowpass_kernel(_sinc_cutoff(rng, kernel_size), kernel_size)
        else:
            kernel = random_mixed_kernel(
                rng,
                self.kernel_list,
                self.kernel_prob,
                kernel_size,
                self.blur_sigma,
                self.betag_range,
                self.betap_range,
            )
        return pad_kernel(kernel, self.blur_kernel_size)


def sample_final_sinc(rng: np.random.Generator, final_sinc_prob: float) -> np.ndarray:
    """Real-ESRGAN's last filter: a sinc (cutoff in [π/3, π]) with probability
    ``final_sinc_prob``, else the identity pulse; always 21 × 21."""
    if rng.random() < final_sinc_prob:
        kernel_size = MIN_KERNEL_SIZE + 2 * int(rng.integers(0, (FINAL_SINC_SIZE - MIN_KERNEL_SIZE) // 2 + 1))
        cutoff = float(rng.uniform(math.pi / 3, math.pi))
        return circular_lowpass_kernel(cutoff, kernel_size, pad_to=FINAL_SINC_SIZE)
    return pulse_kernel(FINAL_SINC_SIZE)


# ----------------------------------------------------------------------------- option checks
def check_probability(key: str, value: float) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{key}: expected a probability in [0, 1], got {value}")


def check_distribution(key: str, values: Sequence[float], length: int, what: str) -> None:
    """Probabilities of ``length`` mutually exclusive choices (``what``): each in [0, 1], sum 1."""
    if len(values) != length:
        raise ConfigError(
            f"{key}: expected {length} probabilities (one per entry of {what}), got {len(values)}"
        )
    for v in values:
        check_probability(key, v)
    if abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"{key}: the probabilities must sum to 1, got {list(values)} (sum {sum(values):g})")


def check_range(
    key: str,
    value: Sequence[float],
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    contains: float | None = None,
) -> None:
    """``[lo, hi]`` with ``lo <= hi`` inside the given bounds (and containing ``contains``)."""
    if len(value) != 2:
        raise ConfigError(f"{key}: expected a [low, high] pair, got {list(value)}")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise ConfigError(f"{key}: expected low <= high, got {list(value)}")
    if low is not None and (lo < low or (open_low and lo == low)):
        raise ConfigError(f"{key}: values must be {'>' if open_low else '>='} {low:g}, got {list(value)}")
    if high is not None and hi > high:
        raise ConfigError(f"{key}: values must be <= {high:g}, got {list(value)}")
    if contains is not None and not lo <= contains <= hi:
        raise ConfigError(f"{key}: the range must contain {contains:g}, got {list(value)}")

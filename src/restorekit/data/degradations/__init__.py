"""Degradations that turn clean images into training inputs (batched torch, GPU-capable).

Modules are imported explicitly here; each one exports its public functions.
"""

from restorekit.data.degradations.bicubic import imresize
from restorekit.data.degradations.diffaugment import AdaptiveP, DiffAugment, auto_aug_prob, diff_augment
from restorekit.data.degradations.filters import USMSharp, filter2d
from restorekit.data.degradations.jpeg import DiffJPEG
from restorekit.data.degradations.kernels import (
    BlurKernelOptions,
    bivariate_gaussian,
    bivariate_generalized_gaussian,
    bivariate_plateau,
    circular_lowpass_kernel,
    random_mixed_kernel,
    sample_final_sinc,
)
from restorekit.data.degradations.noise import random_add_gaussian_noise, random_add_poisson_noise
from restorekit.data.degradations.realesrgan import PairPool, RealESRGANDegradation

__all__ = [
    "AdaptiveP",
    "BlurKernelOptions",
    "DiffAugment",
    "DiffJPEG",
    "PairPool",
    "RealESRGANDegradation",
    "USMSharp",
    "auto_aug_prob",
    "bivariate_gaussian",
    "bivariate_generalized_gaussian",
    "bivariate_plateau",
    "circular_lowpass_kernel",
    "diff_augment",
    "filter2d",
    "imresize",
    "random_add_gaussian_noise",
    "random_add_poisson_noise",
    "random_mixed_kernel",
    "sample_final_sinc",
]

"""Datasets: the keyed-dataset contract and the super-resolution datasets built on it.

- ``base``: ``KeyedDataset`` — keys ``i`` / ``(i, seed)``, seeding, ``skip_corrupt`` and
  ``num_skipped``, the ``_load(index, rng)`` hook. Usable outside SR (no ``scale``).
- ``store``: ``ImageStore`` (a folder or an LMDB store, and the decoded-image cache), ``Source``
  (shape first, rows on demand), ``gt_refs``.
- ``sr``: ``SRDataset`` — ``scale``, ``gt_size`` and flips on top of ``KeyedDataset``.
- ``paired``: ``PairedImageDataset`` (GT/LQ folders, BasicSR/DIV2K pairing), ``fit_gt_to_lq``.
- ``bicubic``: ``BicubicDataset`` (GT only, MATLAB bicubic LQ), ``bicubic_lq``.
- ``degraded``: ``NoisyImageDataset``, ``JPEGDataset`` (scale 1: GT only, noise / JPEG LQ).
- ``realesrgan_pairs``: ``RealESRGANPairsDataset`` (GT + Real-ESRGAN-degraded LQ fixed per image).
- ``folder``: ``ImageFolderDataset`` (unpaired images for generation, lightweight-gan's preparation).

Every name the single-module ``datasets.py`` offered is importable from here as before.
"""

from restorekit.data.datasets.base import KeyedDataset, log, split_key
from restorekit.data.datasets.bicubic import BicubicDataset, bicubic_lq
from restorekit.data.datasets.degraded import JPEGDataset, NoisyImageDataset, jpeg_roundtrip
from restorekit.data.datasets.ffhq import FFHQDegradationDataset  # noqa: F401  (registers it)
from restorekit.data.datasets.folder import ImageFolderDataset
from restorekit.data.datasets.paired import PairedImageDataset, fit_gt_shape, fit_gt_to_lq, pair_refs
from restorekit.data.datasets.realesrgan_pairs import RealESRGANPairsDataset
from restorekit.data.datasets.sr import SRDataset, check_sr_options
from restorekit.data.datasets.store import (
    _SHOW,  # noqa: F401  (the old module's, kept)
    Backend,
    ImageStore,
    Source,
    check_not_empty,
    fill_cache,
    gt_names,
    gt_refs,
)

# The single module's private names, kept for code written against it (realesrgan_dataset.py).
_split_key = split_key
_Store = ImageStore
_SRDataset = SRDataset
_gt_names = gt_names
_pair = pair_refs
_check_not_empty = check_not_empty
_check_options = check_sr_options

__all__ = [
    "Backend",
    "BicubicDataset",
    "ImageFolderDataset",
    "ImageStore",
    "JPEGDataset",
    "KeyedDataset",
    "NoisyImageDataset",
    "PairedImageDataset",
    "RealESRGANPairsDataset",
    "SRDataset",
    "Source",
    "bicubic_lq",
    "check_not_empty",
    "check_sr_options",
    "fill_cache",
    "fit_gt_shape",
    "fit_gt_to_lq",
    "gt_names",
    "gt_refs",
    "jpeg_roundtrip",
    "log",
    "pair_refs",
    "split_key",
]

"""Data: image I/O, paired transforms, datasets, LMDB stores, prefetchers, degradations.

Importing this package registers its datasets in ``restorekit.registry.DATASETS`` (explicit
imports, never a folder scan).
"""

from restorekit.data import datasets  # noqa: F401  (registers PairedImageDataset, BicubicDataset)
from restorekit.data.datasets import BicubicDataset, KeyedDataset, PairedImageDataset
from restorekit.data.degradations import PairPool, RealESRGANDegradation, imresize
from restorekit.data.io import (
    IMG_EXTENSIONS,
    ImageInfo,
    RawImage,
    UnreadableImageError,
    imfrombytes,
    img2tensor,
    raw_to_float,
    raw_to_tensor,
    read_image,
    read_image_full,
    read_image_raw,
    scan_images,
    tensor2img,
    write_image,
)
from restorekit.data.lmdb_io import LmdbReader, make_lmdb
from restorekit.data.prefetch import CPUPrefetcher, CUDAPrefetcher, move_to
from restorekit.data.realesrgan_dataset import RealESRGANDataset  # registers RealESRGANDataset
from restorekit.data.sample import make_sample_dataset
from restorekit.data.transforms import augment, mod_crop, paired_random_crop

__all__ = [
    "IMG_EXTENSIONS",
    "BicubicDataset",
    "CPUPrefetcher",
    "CUDAPrefetcher",
    "ImageInfo",
    "KeyedDataset",
    "LmdbReader",
    "PairPool",
    "PairedImageDataset",
    "RawImage",
    "RealESRGANDataset",
    "RealESRGANDegradation",
    "UnreadableImageError",
    "augment",
    "imfrombytes",
    "img2tensor",
    "imresize",
    "make_lmdb",
    "make_sample_dataset",
    "mod_crop",
    "move_to",
    "paired_random_crop",
    "raw_to_float",
    "raw_to_tensor",
    "read_image",
    "read_image_full",
    "read_image_raw",
    "scan_images",
    "tensor2img",
    "write_image",
]

"""Scale-1 restoration datasets: GT images only, the LQ made on the fly by a degradation.

``NoisyImageDataset`` (Gaussian denoising, SwinIR/DnCNN style) and ``JPEGDataset`` (JPEG
artefact removal) share the GT side with ``BicubicDataset``: a folder or LMDB store, the
crop-first integer path (only the patch is decoded, flipped and converted to float) and the
decoded-image cache. The output has the input's size, so the top-level ``scale`` must be 1.

**Randomness.** Every choice (crop, flips, σ or quality, the noise field) comes from the key's
generator in a fixed order, so the same key gives the bitwise-same sample in any worker.
Validation sets (no ``gt_size``) ignore the key's generator for the degradation: the draw is
seeded by ``(val_seed, index)``, so every validation pass — and every run — scores the model on
the same noisy/compressed images, as the fixed-seed test sets of the papers do.

**Gray.** ``gray: true`` turns the GT into one channel with the BT.601 luma weights (what
``cv2.imread(..., IMREAD_GRAYSCALE)`` and JFIF's Y use), rounded back to the 8-bit grid for
8-bit sources, before the degradation; both GT and LQ then have one channel.

**On the device.** ``NoisyImageDataset(degrade_on="device")`` (config ``data.degrade_on``) leaves
the LQ out of training samples and carries the drawn σ and a noise seed instead: the task adds
the noise to the whole batch on the training device (``noisy_lq_batch``), each sample's noise
from a ``torch.Generator`` seeded by its draw, so runs stay reproducible and resume exactly (the
noise differs from the host path's NumPy stream, not in its statistics). Validation samples
always carry their LQ. ``JPEGDataset(degrade_on="device")`` carries the drawn quality instead
of the LQ and the task codes the whole batch on the device (``jpeg_lq_batch``) with the same
``DiffJPEG`` the host path runs, each image at its own quality: the same arithmetic in float32
(TF32 off), so the LQ equals the host one up to float summation order — on the CPU the batched
and per-image results are bitwise equal (``tests/test_jpeg_on_device.py``); on a GPU a
coefficient lying within rounding error of a quantisation step's half can round the other way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from restorekit.data.datasets.sr import SRDataset
from restorekit.data.datasets.store import Backend, ImageStore, fill_cache, gt_refs
from restorekit.data.io import img2tensor, raw_to_float
from restorekit.data.transforms import augment_views, draw_crop
from restorekit.errors import ConfigError
from restorekit.registry import DATASETS

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_gray(img: np.ndarray, eight_bit: bool) -> np.ndarray:
    """Float HWC RGB (or gray) in [0, 1] → HW1 luma; on the 8-bit grid when ``eight_bit``."""
    y = img[:, :, :1] if img.shape[2] == 1 else (img[:, :, :3] @ _LUMA)[:, :, None]
    if eight_bit:
        y = np.round(y * 255.0) / 255.0
    return np.ascontiguousarray(y, dtype=np.float32)


def _range(value: Sequence[float] | None, key: str, lo: float, hi: float) -> tuple[float, float] | None:
    """``[a, b]`` with ``lo <= a <= b <= hi``, or None; a one-line ConfigError otherwise."""
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ConfigError(f"{key}: expected [low, high], got {value!r}")
    a, b = float(value[0]), float(value[1])
    if not lo <= a <= b <= hi:
        raise ConfigError(f"{key}: expected {lo} <= low <= high <= {hi}, got {list(value)}")
    return a, b


class _GTOnlyDataset(SRDataset):
    """The GT side: store, refs, cache, mod-free crop and flips; subclasses add ``degrade``."""

    def __init__(
        self,
        dataroot_gt: str,
        gt_size: int | None,
        use_hflip: bool,
        use_rot: bool,
        meta_info: str | None,
        io_backend: Backend,
        skip_corrupt: bool,
        cache_images: bool,
        gray: bool,
        scale: int,
        val_seed: int,
    ) -> None:
        if scale != 1:
            raise ConfigError(
                f"scale: {type(self).__name__} keeps the image size (denoising / JPEG), "
                f"so the top-level scale must be 1, got {scale}"
            )
        super().__init__(1, gt_size, use_hflip, use_rot, skip_corrupt)
        self.gray = gray
        self.val_seed = val_seed
        self.gt_store = ImageStore(str(dataroot_gt), io_backend, "dataroot_gt", cache_images)
        self.refs = gt_refs(self.gt_store, meta_info, skip_corrupt)
        self.cache_bytes = fill_cache(type(self).__name__, [(self.gt_store, self.refs)], skip_corrupt)

    def __len__(self) -> int:
        return len(self.refs)

    def degrade(self, gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
        """(LQ HWC float32, the drawn parameters) for the float HWC ``gt``."""
        raise NotImplementedError

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        ref = self.refs[index]
        path = self.gt_store.display(ref)
        src = self.gt_store.open(ref)
        if self.gt_size is None:
            raw = src.rows(src.shape[0])
            rng = np.random.default_rng([self.val_seed, index])  # the same draw every pass
        else:  # decode only the rows down to the patch (PNG), crop and flip the integer samples
            top, left = draw_crop(src.shape, self.gt_size, rng, path)
            raw = src.rows(top + self.gt_size)[top : top + self.gt_size, left : left + self.gt_size]
            raw = augment_views([raw], self.use_hflip, self.use_rot, rng)[0]
        gt = raw_to_float(raw)
        if self.gray:
            gt = to_gray(gt, raw.dtype == np.uint8)
        if getattr(self, "degrade_on", "host") == "device" and self.gt_size is not None:
            sample = {"gt": img2tensor(gt), "lq_path": path, "gt_path": path}
            return {**sample, **self.device_params(rng)}
        lq, params = self.degrade(gt, rng)
        sample: dict[str, Any] = {"lq": img2tensor(lq), "gt": img2tensor(gt)}
        sample.update(lq_path=path, gt_path=path)
        sample.update({k: torch.tensor(v, dtype=torch.float32) for k, v in params.items()})
        return sample


@DATASETS.register("NoisyImageDataset")
class NoisyImageDataset(_GTOnlyDataset):
    """GT images; LQ = GT + Gaussian noise of std ``sigma``/255 (σ in 8-bit levels, as the
    SwinIR / BasicSR denoising configs give it), or σ uniform in ``sigma_range`` per sample.

    ``clip`` (default) clips the noisy image to [0, 1]; ``quantize`` also rounds it to the
    8-bit grid (off by default: the papers add noise to the float image and never round).
    Each sample carries its σ as ``sigma`` (8-bit levels).
    """

    def __init__(
        self,
        dataroot_gt: str,
        sigma: float | None = None,
        sigma_range: list[float] | None = None,
        gray: bool = False,
        clip: bool = True,
        quantize: bool = False,
        gt_size: int | None = None,
        use_hflip: bool = False,
        use_rot: bool = False,
        meta_info: str | None = None,
        io_backend: Backend = "disk",
        skip_corrupt: bool = False,
        cache_images: bool = False,
        scale: int = 1,
        val_seed: int = 0,
        degrade_on: Literal["host", "device"] = "host",
    ) -> None:
        if (sigma is None) == (sigma_range is None):
            raise ConfigError(f"sigma / sigma_range: give exactly one, got {sigma!r} and {sigma_range!r}")
        if sigma is not None and not 0 <= float(sigma) <= 255:
            raise ConfigError(f"sigma: expected 0..255 (8-bit levels), got {sigma!r}")
        self.sigma_range = _range(sigma_range, "sigma_range", 0.0, 255.0)
        self.sigma = None if sigma is None else float(sigma)
        self.clip, self.quantize, self.degrade_on = clip, quantize, degrade_on
        super().__init__(
            dataroot_gt, gt_size, use_hflip, use_rot, meta_info, io_backend, skip_corrupt, cache_images,
            gray, scale, val_seed,
        )  # fmt: skip

    def describe(self) -> str:
        """The degradation in words, for the baseline row that scores the noisy input itself."""
        if self.sigma_range is None:
            return f"Gaussian noise σ {self.sigma:g}/255"
        return f"Gaussian noise σ uniform in [{self.sigma_range[0]:g}, {self.sigma_range[1]:g}]/255"

    def device_params(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """What ``noisy_lq_batch`` needs of one training sample: its σ and its noise seed."""
        sigma = self.draw_sigma(rng)
        seed = int(rng.integers(0, 2**62))
        return {"sigma": torch.tensor(sigma, dtype=torch.float32), "noise_seed": torch.tensor(seed)}

    def draw_sigma(self, rng: np.random.Generator) -> float:
        if self.sigma_range is None:
            assert self.sigma is not None
            return self.sigma
        lo, hi = self.sigma_range
        return float(rng.uniform(lo, hi))

    def degrade(self, gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
        sigma = self.draw_sigma(rng)
        noise = rng.standard_normal(gt.shape, dtype=np.float32) * np.float32(sigma / 255.0)
        lq = gt + noise
        if self.quantize:
            lq = np.round(lq * 255.0) / 255.0
        if self.clip:
            lq = np.clip(lq, 0.0, 1.0)
        return lq.astype(np.float32), {"sigma": sigma}


_CODECS: dict[str, torch.nn.Module] = {}  # one DiffJPEG (its tables and DCT matrix) per device


def _codec(device: torch.device) -> torch.nn.Module:
    from restorekit.data.degradations.jpeg import DiffJPEG  # a sibling package, imported late

    key = str(device)
    if key not in _CODECS:
        _CODECS[key] = DiffJPEG().to(device)
    return _CODECS[key]


@contextlib.contextmanager
def _full_fp32_matmul() -> Iterator[None]:
    """TF32 off for the codec's GEMMs (the trainer turns it on for CUDA by default): TF32's
    10-bit mantissa moves DCT coefficients across rounding boundaries the host never sees."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def jpeg_code(x: Tensor, quality: Tensor | float) -> Tensor:
    """The JPEG round trip of a (B, C, H, W) batch (C = 3, or 1 for gray) in [0, 1], each image
    at its own quality: 8-bit in and out, gray coded as R = G = B (see ``jpeg_roundtrip``).
    Runs on ``x``'s device, in float32 with full-precision matmuls."""
    x = torch.round(x.float().clamp(0, 1) * 255.0) / 255.0
    gray = x.shape[1] == 1
    if gray:
        x = x.expand(x.shape[0], 3, *x.shape[2:])
    with torch.no_grad(), _full_fp32_matmul():
        out = _codec(x.device)(x, quality)
    out = torch.round(out * 255.0) / 255.0
    return out[:, :1].contiguous() if gray else out


def jpeg_lq_batch(gt: Tensor, quality: Tensor) -> Tensor:
    """``JPEGDataset``'s LQ for a training batch on ``gt``'s device: each image coded at its
    drawn ``quality`` (B,), with the host path's codec and arithmetic (the module doc says how
    close the two are)."""
    return jpeg_code(gt, quality.to(gt.device, torch.float32).reshape(-1))


def jpeg_roundtrip(img: np.ndarray, quality: float) -> np.ndarray:
    """Encode and decode float HWC ``img`` (RGB or 1-channel) at ``quality`` with the project's
    libjpeg-exact ``DiffJPEG``; 8-bit in and out, as a real encoder and decoder are.

    One channel is coded as R = G = B: JFIF's Y of a gray pixel is the pixel and Cb = Cr = 128
    exactly, so the chroma planes code to nothing and the result is a grayscale JPEG (luma
    table only), which is what libjpeg writes for a gray image.
    """
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    out = jpeg_code(x, float(quality))
    return np.ascontiguousarray(out[0].numpy().transpose(1, 2, 0), dtype=np.float32)


@DATASETS.register("JPEGDataset")
class JPEGDataset(_GTOnlyDataset):
    """GT images; LQ = the GT JPEG-compressed at ``quality``, or at an integer quality drawn
    uniformly from ``quality_range`` [lo, hi] (both ends included) per sample.

    Colour images are coded as libjpeg does by default (YCbCr 4:2:0); ``gray: true`` codes the
    luma alone (the SwinIR / DnCNN-3 grayscale artefact-removal setting). Each sample carries its
    quality as ``quality``. ``degrade_on: device`` (training samples only) leaves the LQ to
    ``jpeg_lq_batch`` on the training device, from the same quality draw.
    """

    def __init__(
        self,
        dataroot_gt: str,
        quality: int | None = None,
        quality_range: list[int] | None = None,
        gray: bool = False,
        gt_size: int | None = None,
        use_hflip: bool = False,
        use_rot: bool = False,
        meta_info: str | None = None,
        io_backend: Backend = "disk",
        skip_corrupt: bool = False,
        cache_images: bool = False,
        scale: int = 1,
        val_seed: int = 0,
        degrade_on: Literal["host", "device"] = "host",
    ) -> None:
        if (quality is None) == (quality_range is None):
            raise ConfigError(
                f"quality / quality_range: give exactly one, got {quality!r} and {quality_range!r}"
            )
        if quality is not None and not 1 <= int(quality) <= 100:
            raise ConfigError(f"quality: expected 1..100, got {quality!r}")
        qr = _range(quality_range, "quality_range", 1, 100)
        self.quality_range = None if qr is None else (int(qr[0]), int(qr[1]))
        self.quality = None if quality is None else int(quality)
        self.degrade_on = degrade_on
        super().__init__(
            dataroot_gt, gt_size, use_hflip, use_rot, meta_info, io_backend, skip_corrupt, cache_images,
            gray, scale, val_seed,
        )  # fmt: skip

    def describe(self) -> str:
        """The degradation in words, for the baseline row that scores the JPEG input itself."""
        if self.quality_range is None:
            return f"JPEG quality {self.quality}"
        return f"JPEG quality uniform in [{self.quality_range[0]}, {self.quality_range[1]}]"

    def device_params(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """What ``jpeg_lq_batch`` needs of one training sample: its quality (the host path's draw)."""
        return {"quality": torch.tensor(float(self.draw_quality(rng)), dtype=torch.float32)}

    def draw_quality(self, rng: np.random.Generator) -> int:
        if self.quality_range is None:
            assert self.quality is not None
            return self.quality
        lo, hi = self.quality_range
        return int(rng.integers(lo, hi + 1))

    def degrade(self, gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
        quality = self.draw_quality(rng)
        return jpeg_roundtrip(gt, quality), {"quality": float(quality)}


def noisy_lq_batch(gt: Tensor, sigma: Tensor, seeds: Tensor, clip: bool, quantize: bool) -> Tensor:
    """``NoisyImageDataset``'s LQ for a batch on ``gt``'s device: ``gt + N(0, (σ/255)²)``, each
    sample's noise from a generator seeded by its ``noise_seed``, then rounded / clipped as the
    dataset says. One host read of the seeds per batch; the noise itself is made on the device."""
    noise = torch.empty_like(gt)
    for i, seed in enumerate(seeds.tolist()):
        g = torch.Generator(device=gt.device)
        g.manual_seed(int(seed))
        noise[i] = torch.randn(gt.shape[1:], generator=g, device=gt.device, dtype=gt.dtype)
    lq = gt + noise * (sigma.to(gt).view(-1, 1, 1, 1) / 255.0)
    if quantize:
        lq = torch.round(lq * 255.0) / 255.0
    return lq.clamp_(0.0, 1.0) if clip else lq

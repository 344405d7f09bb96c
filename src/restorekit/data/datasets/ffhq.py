"""``FFHQDegradationDataset``: GFPGAN's training set — aligned faces, the LQ made on the fly.

Options are GFPGAN's (``options/train_gfpgan_v1.yml``, ``datasets.train``), so that section maps
onto the constructor key for key; where GFPGAN requires a key, its default here is the v1 file's
value, and where GFPGAN reads ``opt.get(key)``, its default is GFPGAN's (colour jitter and gray off).

**Steps**, in GFPGAN's order, on the GT face (float RGB in [0, 1], ``out_size``²):

1. horizontal flip with probability 1/2 (``use_hflip``), the eye/mouth boxes flipped with it;
2. blur with a ``random_mixed_kernel`` of ``blur_kernel_size`` (``kernel_list`` / ``kernel_prob``,
   σx and σy in ``blur_sigma``, rotation in [−π, π], β ranges BasicSR's default (0.5, 8)),
   ``cv2.filter2D`` with reflect-101 borders;
3. downsample by a factor uniform in ``downsample_range`` to ``(⌊w / f⌋, ⌊h / f⌋)``, bilinear;
4. Gaussian noise, σ uniform in ``noise_range`` (8-bit levels), clipped to [0, 1] (null: none);
5. JPEG at a quality uniform in ``jpeg_range`` truncated to an integer, as OpenCV takes it (so
   [60, 100] gives 60..99), through libjpeg (``cv2.imencode``), as GFPGAN (null: none);
6. resize back to the GT size, bilinear;
7. with ``color_jitter_prob``, a per-channel shift uniform in ±``color_jitter_shift``/255, clipped;
8. with ``gray_prob``, the LQ to gray (BT.601 luma, 3 equal channels), and the GT too if ``gt_gray``;
9. with ``color_jitter_pt_prob``, torchvision's brightness / contrast / saturation / hue in a
   random order, factors uniform in ``brightness`` ... ``hue`` (``degradations.color_jitter``);
10. the LQ rounded to 8 bits; both images normalised with ``mean`` / ``std`` (0.5: [−1, 1]).

A sample is ``{"lq", "gt", "gt_path"}``, plus ``loc_left_eye``, ``loc_right_eye``, ``loc_mouth``
((4,) float32 boxes ``[x1, y1, x2, y2]``, ``data.face_components``) with ``crop_components``.
Each image's entry in ``component_path`` is found by its stem, else by GFPGAN's rule (its index,
8 digits; see ``face_components.entry_key``); an image without one is an error at start-up.

**Randomness** follows ``datasets/base.py``: ``dataset[(index, seed)]`` draws every choice from
``np.random.default_rng(seed)``, all of them first (``draw``), in the order of the steps, so a
sample is a pure function of its key in any worker and a resumed run sees the same samples. The
noise field comes from its own generator seeded by a drawn ``noise_seed``, so the host and the
device path draw the same parameters for a key. ``degrade_on="device"`` leaves steps 2-10 to
``degradations.ffhq.FFHQDegradation`` (its module doc says what runs where and why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from restorekit.data.datasets.base import KeyedDataset
from restorekit.data.datasets.store import Backend, ImageStore, fill_cache, gt_refs
from restorekit.data.degradations.color_jitter import JitterDraw, color_shift_np, draw_jitter, jitter_ranges
from restorekit.data.degradations.ffhq import LUMA, finish_lq, normalise
from restorekit.data.degradations.kernels import (
    KERNEL_TYPES,
    check_distribution,
    check_probability,
    check_range,
    random_mixed_kernel,
)
from restorekit.data.face_components import PARTS, component_boxes, entry_key, load_components
from restorekit.data.io import raw_to_float
from restorekit.errors import ConfigError, DataError, did_you_mean
from restorekit.registry import DATASETS

Pair = tuple[float, float]
BETA_RANGE = (0.5, 8.0)  # BasicSR's random_mixed_kernels default, which GFPGAN does not override


@dataclass(frozen=True)
class FFHQDraw:
    """Every random choice of one sample (the parameters of steps 1-9)."""

    hflip: bool
    kernel: np.ndarray  # (K, K) float32, sums to 1
    downsample: float
    lq_hw: tuple[int, int]
    sigma: float | None  # 8-bit levels; None: no noise step
    noise_seed: int
    quality: int | None  # None: no JPEG step
    shift: np.ndarray | None  # (3,) RGB offsets in [0, 1] units; None: no shift
    gray: bool
    jitter: JitterDraw | None


# ----------------------------------------------------------------------------- JPEG (libjpeg)
def encode_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Float HWC RGB in [0, 1] → JPEG bytes via OpenCV's libjpeg (8-bit, as ``imencode`` converts)."""
    q8 = np.clip(np.round(np.clip(img, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    ok, enc = cv2.imencode(
        ".jpg", np.ascontiguousarray(q8[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:  # pragma: no cover - OpenCV always encodes a valid 8-bit image
        raise RuntimeError("cv2.imencode failed to write a JPEG")
    return enc


def decode_jpeg(buf: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1], dtype=np.float32) / 255.0


def jpeg_libjpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """BasicSR's ``add_jpg_compression``: a libjpeg round trip of the clipped image."""
    return decode_jpeg(encode_jpeg(img, quality))


# ----------------------------------------------------------------------------- option checks
def _range(key: str, value: Sequence[float] | None, **bounds: Any) -> Pair | None:
    if value is None:
        return None
    check_range(key, value, **bounds)
    return float(value[0]), float(value[1])


def _channels(key: str, value: Sequence[float] | None, positive: bool) -> tuple[float, float, float] | None:
    if value is None:
        return None
    if len(value) not in (1, 3) or (positive and any(v <= 0 for v in value)):
        want = "1 or 3 numbers" + (" > 0" if positive else "")
        raise ConfigError(f"{key}: expected {want} (one per channel), got {list(value)}")
    v = [float(x) for x in value] * (3 if len(value) == 1 else 1)
    return v[0], v[1], v[2]


@DATASETS.register("FFHQDegradationDataset")
class FFHQDegradationDataset(KeyedDataset):
    """Aligned faces and their on-the-fly LQ, as GFPGAN trains on them (see the module doc)."""

    def __init__(
        self,
        dataroot_gt: str,
        io_backend: Backend = "disk",
        meta_info: str | None = None,
        out_size: int = 512,
        use_hflip: bool = True,
        mean: tuple[float, ...] | None = (0.5, 0.5, 0.5),
        std: tuple[float, ...] | None = (0.5, 0.5, 0.5),
        blur_kernel_size: int = 41,
        kernel_list: tuple[str, ...] = ("iso", "aniso"),
        kernel_prob: tuple[float, ...] = (0.5, 0.5),
        blur_sigma: tuple[float, float] = (0.1, 10.0),
        downsample_range: tuple[float, float] = (0.8, 8.0),
        noise_range: tuple[float, float] | None = (0.0, 20.0),
        jpeg_range: tuple[float, float] | None = (60.0, 100.0),
        color_jitter_prob: float | None = None,
        color_jitter_shift: float = 20.0,
        color_jitter_pt_prob: float | None = None,
        brightness: tuple[float, float] | None = (0.5, 1.5),
        contrast: tuple[float, float] | None = (0.5, 1.5),
        saturation: tuple[float, float] | None = (0.0, 1.5),
        hue: tuple[float, float] | None = (-0.1, 0.1),
        gray_prob: float | None = None,
        gt_gray: bool = False,
        crop_components: bool = False,
        component_path: str | None = None,
        eye_enlarge_ratio: float = 1.0,
        skip_corrupt: bool = False,
        cache_images: bool = False,
        degrade_on: Literal["host", "device"] = "host",
    ) -> None:
        super().__init__(skip_corrupt)
        if out_size < 8:
            raise ConfigError(f"out_size: expected the face size in pixels (>= 8), got {out_size}")
        if blur_kernel_size < 1 or blur_kernel_size % 2 != 1:
            raise ConfigError(f"blur_kernel_size: expected an odd size >= 1, got {blur_kernel_size}")
        for kind in kernel_list:
            if kind not in KERNEL_TYPES:
                raise ConfigError(
                    f"kernel_list: unknown kernel type {kind!r}{did_you_mean(kind, KERNEL_TYPES)}; "
                    f"known: {', '.join(KERNEL_TYPES)}"
                )
        check_distribution("kernel_prob", kernel_prob, len(kernel_list), "kernel_list")
        probs = {"color_jitter_prob": color_jitter_prob, "color_jitter_pt_prob": color_jitter_pt_prob}
        for key, p in {**probs, "gray_prob": gray_prob}.items():
            if p is not None:
                check_probability(key, p)
        if not (math.isfinite(color_jitter_shift) and color_jitter_shift >= 0):
            raise ConfigError(f"color_jitter_shift: expected >= 0 (8-bit levels), got {color_jitter_shift}")
        if not (math.isfinite(eye_enlarge_ratio) and eye_enlarge_ratio > 0):
            raise ConfigError(f"eye_enlarge_ratio: expected a factor > 0, got {eye_enlarge_ratio}")
        if (mean is None) != (std is None):
            raise ConfigError(f"mean / std: give both or neither, got {mean!r} and {std!r}")
        if degrade_on not in ("host", "device"):
            raise ConfigError(f"degrade_on: expected 'host' or 'device', got {degrade_on!r}")
        self.out_size, self.use_hflip = int(out_size), bool(use_hflip)
        self.mean, self.std = _channels("mean", mean, False), _channels("std", std, True)
        self.kernel_size, self.kernel_list, self.kernel_prob = (
            blur_kernel_size,
            tuple(kernel_list),
            tuple(kernel_prob),
        )
        self.blur_sigma = _range("blur_sigma", blur_sigma, low=0.0, open_low=True)
        self.downsample_range = _range("downsample_range", downsample_range, low=0.0, open_low=True)
        self.noise_range = _range("noise_range", noise_range, low=0.0)
        self.jpeg_range = _range("jpeg_range", jpeg_range, low=1.0, high=100.0)
        self.color_jitter_prob, self.color_jitter_pt_prob = color_jitter_prob, color_jitter_pt_prob
        self.color_jitter_shift = float(color_jitter_shift) / 255.0
        self.jitter = jitter_ranges(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
        self.gray_prob, self.gt_gray = gray_prob, bool(gt_gray)
        self.crop_components, self.eye_enlarge_ratio = bool(crop_components), float(eye_enlarge_ratio)
        self.degrade_on = degrade_on
        self.value_range = self._value_range()
        self.gt_store = ImageStore(str(dataroot_gt), io_backend, "dataroot_gt", cache_images)
        self.refs = gt_refs(self.gt_store, meta_info, skip_corrupt)
        self.component_keys: list[str] = []
        if self.crop_components:
            if component_path is None:
                raise ConfigError(
                    "component_path: required with crop_components: true (GFPGAN's "
                    "FFHQ_eye_mouth_landmarks_512.pth, or a file written by face_components.save_components)"
                )
            self.components = load_components(component_path, "component_path")
            self.component_keys = self._match_components(str(component_path))
        self.cache_bytes = fill_cache(type(self).__name__, [(self.gt_store, self.refs)], skip_corrupt)

    def _value_range(self) -> tuple[float, float]:
        """The range of normalised values, which tasks read to map images back to [0, 1]."""
        if self.mean is None or self.std is None:
            return 0.0, 1.0
        lo = min((0.0 - m) / s for m, s in zip(self.mean, self.std, strict=True))
        hi = max((1.0 - m) / s for m, s in zip(self.mean, self.std, strict=True))
        return lo, hi

    def _match_components(self, path: str) -> list[str]:
        keys, missing = [], []
        for i, ref in enumerate(self.refs):
            key = entry_key(i, Path(ref).stem, self.components)
            if key is None:
                missing.append(self.gt_store.display(ref))
            keys.append(key or "")
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise DataError(
                f"component_path: {path} has no entry for {len(missing)} of {len(self.refs)} images "
                f"(looked up by stem, then by index as 8 digits): {', '.join(missing[:3])}{more}"
            )
        return keys

    def __len__(self) -> int:
        return len(self.refs)

    # ------------------------------------------------------------------------- the draws
    def draw(self, rng: np.random.Generator, hw: tuple[int, int]) -> FFHQDraw:
        """All random choices for a GT of size ``hw``, in the order of the steps."""
        h, w = hw
        hflip = bool(self.use_hflip and rng.random() < 0.5)
        assert self.blur_sigma is not None and self.downsample_range is not None
        kernel = random_mixed_kernel(
            rng, self.kernel_list, self.kernel_prob, self.kernel_size, self.blur_sigma, BETA_RANGE, BETA_RANGE
        )
        factor = float(rng.uniform(*self.downsample_range))
        lq_hw = (max(1, int(h // factor)), max(1, int(w // factor)))
        sigma = None if self.noise_range is None else float(rng.uniform(*self.noise_range))
        noise_seed = int(rng.integers(0, 2**62))
        quality = None
        if self.jpeg_range is not None:  # OpenCV takes an integer quality: GFPGAN's float is truncated
            quality = min(100, int(rng.uniform(*self.jpeg_range)))
        shift = None
        if self.color_jitter_prob is not None and rng.random() < self.color_jitter_prob:
            s = self.color_jitter_shift
            shift = rng.uniform(-s, s, 3).astype(np.float32)
        gray = bool(self.gray_prob and rng.random() < self.gray_prob)
        jitter = None
        if self.color_jitter_pt_prob is not None and rng.random() < self.color_jitter_pt_prob:
            jitter = draw_jitter(rng, self.jitter)
        return FFHQDraw(hflip, kernel, factor, lq_hw, sigma, noise_seed, quality, shift, gray, jitter)

    # ------------------------------------------------------------------------- the host path
    def degrade(self, gt: np.ndarray, d: FFHQDraw) -> np.ndarray:
        """Steps 2-8 on the (flipped) float HWC RGB ``gt``: the LQ before jitter and rounding."""
        h, w = gt.shape[:2]
        lq = cv2.filter2D(gt, -1, d.kernel, borderType=cv2.BORDER_REFLECT_101)
        lq = cv2.resize(lq, (d.lq_hw[1], d.lq_hw[0]), interpolation=cv2.INTER_LINEAR)
        if d.sigma is not None:
            noise = np.random.default_rng(d.noise_seed).standard_normal(lq.shape, dtype=np.float32)
            lq = np.clip(lq + noise * np.float32(d.sigma / 255.0), 0.0, 1.0)
        if d.quality is not None:
            lq = jpeg_libjpeg(lq, d.quality)
        lq = cv2.resize(lq, (w, h), interpolation=cv2.INTER_LINEAR)
        if d.shift is not None:
            lq = color_shift_np(lq, d.shift)
        if d.gray:
            lq = gray3_np(lq)
        return np.ascontiguousarray(lq, dtype=np.float32)

    def _gt(self, index: int) -> tuple[np.ndarray, str]:
        ref = self.refs[index]
        path = self.gt_store.display(ref)
        src = self.gt_store.open(ref)
        if tuple(src.shape[:2]) != (self.out_size, self.out_size):
            raise DataError(
                f"{path}: {src.shape[1]}x{src.shape[0]}, expected an aligned face of out_size "
                f"{self.out_size}x{self.out_size} (resize the data set or set out_size)"
            )
        gt = raw_to_float(src.rows(src.shape[0]))
        if gt.shape[2] == 1:  # GFPGAN reads every image as colour
            gt = np.repeat(gt, 3, axis=2)
        return gt, path

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        gt, path = self._gt(index)
        d = self.draw(rng, gt.shape[:2])
        if d.hflip:
            gt = gt[:, ::-1]
        gt = np.ascontiguousarray(gt)
        sample: dict[str, Any] = {"gt_path": path}
        if self.crop_components:
            entry = self.components[self.component_keys[index]]
            boxes = component_boxes(entry, self.out_size, d.hflip, self.eye_enlarge_ratio)
            sample.update({f"loc_{part}": torch.from_numpy(boxes[part]) for part in PARTS})
        gt_gray = self.gt_gray and d.gray
        gt_t = torch.from_numpy(np.ascontiguousarray((gray3_np(gt) if gt_gray else gt).transpose(2, 0, 1)))
        if self.degrade_on == "device":
            return {**sample, "gt": gt_t, **device_params(d)}
        lq = torch.from_numpy(np.ascontiguousarray(self.degrade(gt, d).transpose(2, 0, 1)))
        lq = finish_lq(lq[None], [d.jitter])[0]
        sample["lq"] = normalise(lq, self.mean, self.std)
        sample["gt"] = normalise(gt_t, self.mean, self.std)
        return sample


def gray3_np(img: np.ndarray) -> np.ndarray:
    """HWC RGB → its BT.601 luma in 3 equal channels (GFPGAN: ``cvtColor(BGR2GRAY)`` then tile)."""
    y = (
        img[:, :, 0] * np.float32(LUMA[0])
        + img[:, :, 1] * np.float32(LUMA[1])
        + img[:, :, 2] * np.float32(LUMA[2])
    )
    return np.repeat(y[:, :, None], 3, axis=2).astype(np.float32)


def device_params(d: FFHQDraw) -> dict[str, torch.Tensor]:
    """What ``FFHQDegradation`` needs of one sample (neutral values where a step is off)."""
    order = list(d.jitter.order) if d.jitter is not None else []
    factors = list(d.jitter.factors) if d.jitter is not None else [1.0, 1.0, 1.0, 0.0]
    return {
        "kernel": torch.from_numpy(np.ascontiguousarray(d.kernel, dtype=np.float32)),
        "lq_size": torch.tensor(d.lq_hw, dtype=torch.int64),
        "sigma": torch.tensor(d.sigma or 0.0, dtype=torch.float32),
        "noise_seed": torch.tensor(d.noise_seed, dtype=torch.int64),
        "quality": torch.tensor(float(d.quality or 0), dtype=torch.float32),
        "shift": torch.from_numpy(d.shift if d.shift is not None else np.zeros(3, np.float32)),
        "gray": torch.tensor(float(d.gray), dtype=torch.float32),
        "jitter_order": torch.tensor(order + [-1] * (4 - len(order)), dtype=torch.int64),
        "jitter_factors": torch.tensor(factors, dtype=torch.float32),
    }

"""``RealESRGANPairsDataset``: GT images and their Real-ESRGAN-degraded LQ, fixed per image.

A model trained on Real-ESRGAN's second-order degradation (blur, resize, noise, JPEG, twice) is
built for inputs degraded that way, not for clean bicubic LQ; scoring it on a bicubic benchmark
set says little. This dataset makes the fair validation set: each GT image degraded by the
same ``RealESRGANDegradation`` (same options, so ``degradation: ${degradation}`` can reuse the
training section) with blur kernels drawn as ``RealESRGANDataset`` draws them (same option names
and defaults). With ``val.baseline: bicubic`` the baseline is MATLAB bicubic upscaling of that
same degraded LQ, so model and baseline see identical inputs.

**Fixed draws.** Every random choice for image ``index`` — kernels, sinc filter, the
degradation's batch-wide choices, noise, JPEG qualities — comes from ``(seed, index)`` alone:
the kernels from ``np.random.default_rng([seed, index])``, the degradation from a CPU
``torch.Generator`` seeded by that generator's next draw. A key's own draw seed (``(i, s)``
keys of the trainer's sampler) is ignored, so every validation round of every run, on any
device and with any worker count, evaluates the same LQ. The degradation runs on the CPU in
float32 (one image at a time, each with its own choices, as a batch of one would in training),
so the LQ does not depend on the training device; it can differ in the last bit across CPU
kinds or torch versions (vectorised float paths), like any float pipeline.

**Draws.** ``draws: k`` degrades every GT image ``k`` times (each draw its own LQ): ``n`` images
give ``k·n`` pairs, pair ``j`` being draw ``j // n`` of image ``j % n`` seeded by ``(seed, j)``, so the
first ``n`` pairs are the ``draws: 1`` set. One draw per image is one sample of a very wide
distribution (blur, resize, noise kind and level, JPEG quality); a few per image make a small
validation set's score far less a matter of luck. Pairs are named ``<stem>_d<r>`` (draw ``r``)
in ``gt_path`` / ``lq_path`` when ``k > 1``; those names are not files.

**Sizes.** Whole images: the GT is mod-cropped to ``scale`` (bottom/right) and the LQ is
``(H/scale, W/scale)`` on the 8-bit grid. ``gt_size`` and ``queue_size`` of the degradation
section are the training crop and pair pool; they are accepted (so the section can be shared)
and not used. Gray sources are repeated to three channels, as ``RealESRGANDataset`` does.

**Cost.** One degradation per image, then the LQ is kept (uint8, 1/scale² of the GT's pixels;
``cache_lq: false`` recomputes it each time); a 500² image takes well under a second on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restorekit.data.datasets.sr import SRDataset
from restorekit.data.datasets.store import Backend, ImageStore, fill_cache, gt_refs
from restorekit.data.degradations.kernels import (
    KERNEL_TYPES,
    BlurKernelOptions,
    check_probability,
    sample_final_sinc,
)
from restorekit.data.degradations.realesrgan import RealESRGANDegradation
from restorekit.data.io import img2tensor, raw_to_float
from restorekit.errors import ConfigError, DataError
from restorekit.registry import DATASETS

_PROBS = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
#: degradation options that only concern training batches (crop after degrading, pair pool)
TRAINING_ONLY = ("gt_size", "queue_size")


def pair_seed(seed: int, index: int) -> np.random.Generator:
    """The generator every draw of image ``index`` comes from (kernels first, then the torch seed)."""
    return np.random.default_rng([int(seed), int(index)])


@DATASETS.register("RealESRGANPairsDataset")
class RealESRGANPairsDataset(SRDataset):
    """GT images with a Real-ESRGAN-degraded LQ fixed by ``(seed, index)`` (see the module doc).

    ``degradation`` holds ``RealESRGANDegradation``'s options (``scale`` comes from the top of
    the config); the kernel options are ``RealESRGANDataset``'s, with its defaults. Samples are
    ``{"lq", "gt", "lq_path", "gt_path"}``, usable as a ``data.val`` set or a fixed test set.
    """

    def __init__(
        self,
        dataroot_gt: str,
        scale: int,
        degradation: dict[str, Any] | None = None,
        seed: int = 0,
        draws: int = 1,
        meta_info: str | None = None,
        io_backend: Backend = "disk",
        cache_images: bool = False,
        cache_lq: bool = True,
        blur_kernel_size: int = 21,
        kernel_list: tuple[str, ...] = KERNEL_TYPES,
        kernel_prob: tuple[float, ...] = _PROBS,
        blur_sigma: tuple[float, float] = (0.2, 3.0),
        betag_range: tuple[float, float] = (0.5, 4.0),
        betap_range: tuple[float, float] = (1.0, 2.0),
        sinc_prob: float = 0.1,
        blur_kernel_size2: int = 21,
        kernel_list2: tuple[str, ...] = KERNEL_TYPES,
        kernel_prob2: tuple[float, ...] = _PROBS,
        blur_sigma2: tuple[float, float] = (0.2, 1.5),
        betag_range2: tuple[float, float] = (0.5, 4.0),
        betap_range2: tuple[float, float] = (1.0, 2.0),
        sinc_prob2: float = 0.1,
        final_sinc_prob: float = 0.8,
        skip_corrupt: bool = False,
    ) -> None:
        super().__init__(scale, None, False, False, skip_corrupt)
        if draws < 1:
            raise ConfigError(f"draws: expected a number of degraded copies per image >= 1, got {draws}")
        self.seed, self.cache_lq, self.draws = int(seed), cache_lq, int(draws)
        self.degradation = build_degradation(degradation, scale)
        self.kernels1 = BlurKernelOptions(
            blur_kernel_size, tuple(kernel_list), tuple(kernel_prob), tuple(blur_sigma),
            tuple(betag_range), tuple(betap_range), sinc_prob,
        )  # fmt: skip
        self.kernels2 = BlurKernelOptions(
            blur_kernel_size2, tuple(kernel_list2), tuple(kernel_prob2), tuple(blur_sigma2),
            tuple(betag_range2), tuple(betap_range2), sinc_prob2,
        )  # fmt: skip
        self.kernels1.check()
        self.kernels2.check("2")
        check_probability("final_sinc_prob", final_sinc_prob)
        self.final_sinc_prob = final_sinc_prob
        self.gt_store = ImageStore(str(dataroot_gt), io_backend, "dataroot_gt", cache_images)
        self.refs = gt_refs(self.gt_store, meta_info, skip_corrupt)
        self.cache_bytes = fill_cache(type(self).__name__, [(self.gt_store, self.refs)], skip_corrupt)
        self._lq: dict[int, torch.Tensor] = {}  # index -> (3, h, w) uint8

    def __len__(self) -> int:
        return len(self.refs) * self.draws

    def describe(self) -> str:
        """The LQ in words (for reports): what degraded it and with which seed."""
        per = f", {self.draws} draws" if self.draws > 1 else ""
        return f"Real-ESRGAN second-order degradation x{self.scale}, seed {self.seed} per image{per}"

    def _gt(self, index: int) -> tuple[torch.Tensor, str]:
        """(3, H, W) float GT, mod-cropped to ``scale``, and its display path."""
        ref = self.refs[index]
        path = self.gt_store.display(ref)
        raw = self.gt_store.read_raw(ref)  # HWC as decoded (may be the cache's read-only array)
        h, w = raw.shape[0] - raw.shape[0] % self.scale, raw.shape[1] - raw.shape[1] % self.scale
        if h == 0 or w == 0:
            raise DataError(f"{path}: {raw.shape[0]}x{raw.shape[1]} is smaller than scale {self.scale}")
        gt = raw_to_float(raw[:h, :w])  # RGB or gray, alpha dropped
        if gt.shape[2] == 1:
            gt = np.repeat(gt, 3, axis=2)
        return img2tensor(gt), path

    def synthesize(self, gt: torch.Tensor, index: int) -> torch.Tensor:
        """The (3, H/scale, W/scale) uint8 LQ of image ``index`` from its (3, H, W) GT."""
        rng = pair_seed(self.seed, index)
        kernel1 = self.kernels1.sample(rng)
        kernel2 = self.kernels2.sample(rng)
        sinc = sample_final_sinc(rng, self.final_sinc_prob)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(rng.integers(0, 2**62)))

        def as_kernel(k: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(k, dtype=np.float32))[None]

        lq, _ = self.degradation(
            gt[None].float(), as_kernel(kernel1), as_kernel(kernel2), as_kernel(sinc), gen
        )
        return torch.round(lq[0] * 255.0).to(torch.uint8)

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        del rng  # every draw comes from (seed, index): the same LQ every round and every run
        draw, image = divmod(index, len(self.refs))
        gt, path = self._gt(image)
        if self.draws > 1:
            p = Path(path)
            path = str(p.with_name(f"{p.stem}_d{draw}{p.suffix}"))
        lq = self._lq.get(index)
        if lq is None:
            lq = self.synthesize(gt, index)
            if self.cache_lq:
                self._lq[index] = lq
        return {"lq": lq.float() / 255.0, "gt": gt, "lq_path": path, "gt_path": path}


def build_degradation(options: Mapping[str, Any] | None, scale: int) -> RealESRGANDegradation:
    """``RealESRGANDegradation`` from a config section, ignoring its training-only keys."""
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(
            f"degradation: expected a mapping of RealESRGANDegradation options, got {options!r}"
        )
    kept = {k: v for k, v in (options or {}).items() if k not in TRAINING_ONLY}
    deg = RealESRGANDegradation.from_config(kept, scale=scale, where="degradation")
    deg.gt_size, deg.queue_size = None, 0  # whole images, no pool
    return deg.eval()

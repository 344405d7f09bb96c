"""Real-ESRGAN's second-order degradation, batched on the training device (CPU or GPU).

Call contract (what a training task does each step)::

    deg = RealESRGANDegradation.from_config(cfg_section, scale=cfg.scale).to(device)
    pool = deg.make_pool()                          # once; PairPool(queue_size)
    gen = torch.Generator(device).manual_seed(s)    # once; save gen.get_state() to resume
    batch = move_to(batch, device)                  # from RealESRGANDataset via the DataLoader:
                                                    # gt (B,3,H,W) RGB [0,1], kernel1/kernel2
                                                    # (B,21,21), sinc_kernel (B,21,21)
    out = deg.synthesize(batch, gen, pool)          # {"lq", "gt", "gt_usm"}

``out["lq"]`` is (B, 3, gt_size/scale, gt_size/scale) on the 1/255 grid; ``out["gt"]`` the
matching (B, 3, gt_size, gt_size) GT patch; ``out["gt_usm"]`` that patch unsharp-masked (the
target of Real-ESRGAN's L1 and perceptual losses; its GAN loss uses ``gt``). Without a ``gt_size``
nothing is cropped and the LQ is (H // scale, W // scale). ``deg(gt, kernel1, kernel2,
sinc_kernel, gen)`` is the bare degradation: ``(lq, gt_usm)`` at full size, no crop, no pool.
Everything runs under ``torch.no_grad`` in float32; the kernels may arrive on any device.

The steps and their order are ``RealESRGANModel.feed_data``'s, with the option names of
``train_realesrgan_x4plus.yml`` (defaults are its values):

1. ``gt_usm = USM(gt)``; blur with ``kernel1``; resize by a factor drawn up / down / keep with
   ``resize_prob`` from ``resize_range`` (mode area / bilinear / bicubic, 1/3 each); Gaussian
   noise (``gaussian_noise_prob``, σ in ``noise_range``) else Poisson noise
   (``poisson_scale_range``), gray with ``gray_noise_prob`` per image; clip; JPEG with a quality
   per image in ``jpeg_range``.
2. Blur with ``kernel2`` with probability ``second_blur_prob``; resize to ``H/scale · f`` with
   ``f`` from ``resize_prob2`` / ``resize_range2``; noise as above with the ``...2`` options;
   then, with probability 1/2 each, [resize to H/scale + ``sinc_kernel``] then JPEG
   (``jpeg_range2``), or JPEG then [resize + sinc].
3. Clamp and round to 8 bits; crop a random ``gt_size`` patch (same position for the batch);
   pass through the pair pool; sharpen the GT patch again for ``gt_usm``.

Randomness: batch-wide choices (resize kind, factor, mode, noise kind, second blur, order, crop)
are drawn first, all at once, from ``generator`` and read back in one host transfer — shapes
depend on them, so they must reach the host, and doing it once before any work is queued keeps
the device busy. Per-image values (σ, gray, JPEG quality, the noise itself) stay on the device.
So a fixed generator state gives the same batch, on any device; ``generator`` must live on the
images' device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.data.degradations.filters import USMSharp, filter2d
from restorekit.data.degradations.jpeg import DiffJPEG
from restorekit.data.degradations.kernels import check_distribution, check_probability, check_range
from restorekit.data.degradations.noise import random_add_gaussian_noise, random_add_poisson_noise
from restorekit.errors import ConfigError
from restorekit.registry import check_kwargs, signature_params

RESIZE_MODES = ("area", "bilinear", "bicubic")
_N_DRAWS = 13  # batch-wide uniforms: 11 for the degradation, 2 for the crop position

Pair = tuple[float, float]
Triple = tuple[float, float, float]


def _resize_factor(prob: Sequence[float], bounds: Sequence[float], u_kind: float, u_val: float) -> float:
    """Up (factor in [1, hi]), down ([lo, 1]) or keep (1), chosen with ``prob``."""
    lo, hi = float(bounds[0]), float(bounds[1])
    if u_kind < prob[0]:
        return 1.0 + u_val * (hi - 1.0)
    if u_kind < prob[0] + prob[1]:
        return lo + u_val * (1.0 - lo)
    return 1.0


def _mode(u: float) -> str:
    return RESIZE_MODES[min(int(u * len(RESIZE_MODES)), len(RESIZE_MODES) - 1)]


class RealESRGANDegradation(nn.Module):
    """The two-stage degradation; every option is a constructor argument (see the module doc)."""

    def __init__(
        self,
        scale: int = 4,
        gt_size: int | None = 256,
        queue_size: int = 180,
        resize_prob: Triple = (0.2, 0.7, 0.1),
        resize_range: Pair = (0.15, 1.5),
        gaussian_noise_prob: float = 0.5,
        noise_range: Pair = (1.0, 30.0),
        poisson_scale_range: Pair = (0.05, 3.0),
        gray_noise_prob: float = 0.4,
        jpeg_range: Pair = (30.0, 95.0),
        second_blur_prob: float = 0.8,
        resize_prob2: Triple = (0.3, 0.4, 0.3),
        resize_range2: Pair = (0.3, 1.2),
        gaussian_noise_prob2: float = 0.5,
        noise_range2: Pair = (1.0, 25.0),
        poisson_scale_range2: Pair = (0.05, 2.5),
        gray_noise_prob2: float = 0.4,
        jpeg_range2: Pair = (30.0, 95.0),
    ) -> None:
        super().__init__()
        if int(scale) != scale or scale < 1:
            raise ConfigError(f"scale: expected a positive integer, got {scale}")
        if gt_size is not None and (gt_size < scale or gt_size % scale):
            raise ConfigError(f"gt_size: {gt_size} must be a positive multiple of scale {scale}")
        if queue_size < 0:
            raise ConfigError(f"queue_size: expected 0 (no pool) or a positive size, got {queue_size}")
        stages = {
            "": (resize_prob, resize_range, gaussian_noise_prob, noise_range, poisson_scale_range,
                 gray_noise_prob, jpeg_range),
            "2": (resize_prob2, resize_range2, gaussian_noise_prob2, noise_range2, poisson_scale_range2,
                  gray_noise_prob2, jpeg_range2),
        }  # fmt: skip
        for sfx, (r_prob, r_range, g_prob, n_range, p_range, gray_prob, j_range) in stages.items():
            check_distribution(f"resize_prob{sfx}", r_prob, 3, "up, down, keep")
            check_range(f"resize_range{sfx}", r_range, low=0.0, open_low=True, contains=1.0)
            check_probability(f"gaussian_noise_prob{sfx}", g_prob)
            check_range(f"noise_range{sfx}", n_range, low=0.0)
            check_range(f"poisson_scale_range{sfx}", p_range, low=0.0)
            check_probability(f"gray_noise_prob{sfx}", gray_prob)
            check_range(f"jpeg_range{sfx}", j_range, low=1.0, high=100.0)
        check_probability("second_blur_prob", second_blur_prob)
        self.scale, self.gt_size, self.queue_size = int(scale), gt_size, queue_size
        self.resize_prob, self.resize_range = tuple(resize_prob), tuple(resize_range)
        self.gaussian_noise_prob, self.noise_range = gaussian_noise_prob, tuple(noise_range)
        self.poisson_scale_range, self.gray_noise_prob = tuple(poisson_scale_range), gray_noise_prob
        self.jpeg_range, self.second_blur_prob = tuple(jpeg_range), second_blur_prob
        self.resize_prob2, self.resize_range2 = tuple(resize_prob2), tuple(resize_range2)
        self.gaussian_noise_prob2, self.noise_range2 = gaussian_noise_prob2, tuple(noise_range2)
        self.poisson_scale_range2, self.gray_noise_prob2 = tuple(poisson_scale_range2), gray_noise_prob2
        self.jpeg_range2 = tuple(jpeg_range2)
        self.usm = USMSharp()
        self.jpeg = DiffJPEG(differentiable=False)

    @classmethod
    def from_config(
        cls, options: Mapping[str, Any] | None, scale: int, where: str = "degradation"
    ) -> RealESRGANDegradation:
        """Build from a config section (keys as in Real-ESRGAN's option file); errors name
        ``where.<key>``. ``scale`` is the run's top-level scale."""
        kwargs = dict(options or {})
        if "scale" in kwargs and kwargs["scale"] != scale:
            raise ConfigError(f"{where}.scale: {kwargs['scale']} differs from the top-level scale {scale}")
        kwargs["scale"] = scale
        kwargs = check_kwargs(cls, signature_params(cls), kwargs, f"{where}.", cls.__name__)
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from None

    def make_pool(self) -> PairPool:
        """The training-pair pool of ``queue_size`` pairs (0: a pass-through)."""
        return PairPool(self.queue_size)

    # ------------------------------------------------------------------------- steps
    def _noise(self, img: Tensor, u: float, stage: str, generator: torch.Generator | None) -> Tensor:
        gray = getattr(self, f"gray_noise_prob{stage}")
        if u < getattr(self, f"gaussian_noise_prob{stage}"):
            return random_add_gaussian_noise(img, getattr(self, f"noise_range{stage}"), gray, generator)
        return random_add_poisson_noise(img, getattr(self, f"poisson_scale_range{stage}"), gray, generator)

    def _jpeg(self, img: Tensor, bounds: Sequence[float], generator: torch.Generator | None) -> Tensor:
        u = torch.rand(img.shape[0], generator=generator, device=img.device)
        quality = u * (bounds[1] - bounds[0]) + bounds[0]
        # clip first: values outside [0, 1] make the JPEG round trip ring badly
        return self.jpeg(torch.clamp(img, 0, 1), quality)

    def _degrade(
        self,
        gt: Tensor,
        kernel1: Tensor,
        kernel2: Tensor,
        sinc_kernel: Tensor,
        u: Sequence[float],
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        h, w = gt.shape[-2:]
        gt_usm = self.usm(gt)
        # ---- first degradation
        out = filter2d(gt_usm, kernel1)
        factor = _resize_factor(self.resize_prob, self.resize_range, u[0], u[1])
        if factor != 1.0:
            out = F.interpolate(out, scale_factor=factor, mode=_mode(u[2]))
        out = self._noise(out, u[3], "", generator)
        out = self._jpeg(out, self.jpeg_range, generator)
        # ---- second degradation
        if u[4] < self.second_blur_prob:
            out = filter2d(out, kernel2)
        factor = _resize_factor(self.resize_prob2, self.resize_range2, u[5], u[6])
        size = (max(1, int(h / self.scale * factor)), max(1, int(w / self.scale * factor)))
        out = F.interpolate(out, size=size, mode=_mode(u[7]))
        out = self._noise(out, u[8], "2", generator)
        # [resize back + sinc] and JPEG in either order: other orders make twisted lines
        final_size = (h // self.scale, w // self.scale)
        if u[9] < 0.5:
            out = filter2d(F.interpolate(out, size=final_size, mode=_mode(u[10])), sinc_kernel)
            out = self._jpeg(out, self.jpeg_range2, generator)
        else:
            out = self._jpeg(out, self.jpeg_range2, generator)
            out = filter2d(F.interpolate(out, size=final_size, mode=_mode(u[10])), sinc_kernel)
        lq = torch.clamp((out * 255.0).round(), 0, 255) / 255.0
        return lq, gt_usm

    def _host_draws(self, gt: Tensor, generator: torch.Generator | None) -> list[float]:
        if gt.ndim != 4 or gt.shape[1] != 3:
            raise ValueError(f"RealESRGANDegradation expects a (B, 3, H, W) RGB batch, got {tuple(gt.shape)}")
        if generator is not None and generator.device.type != gt.device.type:
            raise ValueError(
                f"the generator is on {generator.device}, the batch on {gt.device}; use one device"
            )
        return torch.rand(_N_DRAWS, generator=generator, device=gt.device, dtype=torch.float64).tolist()

    @torch.no_grad()
    def forward(
        self,
        gt: Tensor,
        kernel1: Tensor,
        kernel2: Tensor,
        sinc_kernel: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(lq (B, 3, H//scale, W//scale), gt_usm (B, 3, H, W)) for a GT batch, no crop."""
        u = self._host_draws(gt, generator)
        return self._degrade(gt.float(), kernel1, kernel2, sinc_kernel, u, generator)

    @torch.no_grad()
    def synthesize(
        self,
        batch: Mapping[str, Tensor],
        generator: torch.Generator | None = None,
        pool: PairPool | None = None,
    ) -> dict[str, Tensor]:
        """A training batch {"lq", "gt", "gt_usm"} from a dataset batch (see the module doc)."""
        gt = batch["gt"].float()
        u = self._host_draws(gt, generator)
        lq, _ = self._degrade(gt, batch["kernel1"], batch["kernel2"], batch["sinc_kernel"], u, generator)
        if self.gt_size is not None:
            lq, gt = self._crop(lq, gt, u[11], u[12])
        if pool is not None:
            lq, gt = pool(lq, gt, generator)
        # the pool hands back other steps' patches, so the sharpened target is made afterwards
        return {"lq": lq.contiguous(), "gt": gt.contiguous(), "gt_usm": self.usm(gt)}

    def _crop(self, lq: Tensor, gt: Tensor, u_top: float, u_left: float) -> tuple[Tensor, Tensor]:
        """One random ``gt_size`` patch at the same position for the whole batch (BasicSR)."""
        assert self.gt_size is not None
        s, lq_size = self.scale, self.gt_size // self.scale
        h, w = lq.shape[-2:]
        if h < lq_size or w < lq_size:
            raise ConfigError(
                f"gt_size: {self.gt_size} is larger than the GT batch {gt.shape[-2]}x{gt.shape[-1]}; "
                "lower gt_size or raise the dataset's crop_pad_size"
            )
        top, left = int(u_top * (h - lq_size + 1)), int(u_left * (w - lq_size + 1))
        lq = lq[..., top : top + lq_size, left : left + lq_size]
        gt = gt[..., top * s : (top + lq_size) * s, left * s : (left + lq_size) * s]
        return lq, gt


class PairPool:
    """Real-ESRGAN's training-pair pool: a queue of ``size`` (lq, gt) pairs that mixes batches.

    One batch shares its resize factor, mode, noise kind and order, so consecutive batches look
    alike; swapping the batch for random pairs from earlier batches restores per-batch variety.
    While filling, a batch is stored and returned unchanged. Once full, ``b`` random pairs are
    taken out and replaced by the new batch — the same distribution as Real-ESRGAN's "shuffle the
    whole queue, pop the first b" at O(b) instead of O(size) copies. ``size`` must be a multiple
    of the batch size (as in Real-ESRGAN); 0 makes the pool a pass-through.

    ``state_dict`` holds the stored pairs themselves (about 150 MB for 180 pairs of 256² GT), so
    a resumed run continues with exactly the pool it had.
    """

    def __init__(self, size: int = 180) -> None:
        if size < 0:
            raise ConfigError(f"queue_size: expected 0 (no pool) or a positive size, got {size}")
        self.size = int(size)
        self.ptr = 0
        self.lq: Tensor | None = None
        self.gt: Tensor | None = None

    @property
    def full(self) -> bool:
        return self.size > 0 and self.ptr == self.size

    @torch.no_grad()
    def __call__(
        self, lq: Tensor, gt: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        if self.size == 0:
            return lq, gt
        b = lq.shape[0]
        if self.lq is None or self.gt is None:
            if self.size % b:
                raise ConfigError(f"queue_size: {self.size} must be a multiple of the batch size {b}")
            self.lq = lq.new_zeros((self.size, *lq.shape[1:]))
            self.gt = gt.new_zeros((self.size, *gt.shape[1:]))
        if self.lq.shape[1:] != lq.shape[1:] or self.gt.shape[1:] != gt.shape[1:]:
            raise ValueError(
                f"PairPool holds lq {tuple(self.lq.shape[1:])} / gt {tuple(self.gt.shape[1:])} pairs, "
                f"got {tuple(lq.shape[1:])} / {tuple(gt.shape[1:])}"
            )
        self.lq, self.gt = self.lq.to(lq.device), self.gt.to(gt.device)  # e.g. after loading on CPU
        if not self.full:
            if self.size - self.ptr < b:
                raise ConfigError(f"queue_size: {self.size} must be a multiple of the batch size {b}")
            self.lq[self.ptr : self.ptr + b] = lq
            self.gt[self.ptr : self.ptr + b] = gt
            self.ptr += b
            return lq, gt
        idx = torch.randperm(self.size, generator=generator, device=lq.device)[:b]
        out_lq, out_gt = self.lq[idx], self.gt[idx]  # advanced indexing copies
        self.lq[idx], self.gt[idx] = lq, gt
        return out_lq, out_gt

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "ptr": self.ptr, "lq": self.lq, "gt": self.gt}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["size"]) != self.size:
            raise ConfigError(
                f"queue_size: the checkpoint's pool holds {state['size']} pairs, the config {self.size}"
            )
        self.ptr = int(state["ptr"])
        self.lq = None if state["lq"] is None else state["lq"].clone()
        self.gt = None if state["gt"] is None else state["gt"].clone()

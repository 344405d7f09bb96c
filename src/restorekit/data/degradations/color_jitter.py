"""Colour jitter as torchvision's ``ColorJitter`` does it, for numpy images and torch batches.

GFPGAN's ``FFHQDegradationDataset`` jitters the LQ face in two ways, and this module has both:

* **a per-channel shift** (``color_shift``): ``clip(img + u, 0, 1)`` with ``u`` uniform in
  ``[-shift, shift]`` per channel (GFPGAN's ``color_jitter``, shift 20/255);
* **brightness, contrast, saturation and hue in a random order** (GFPGAN's ``color_jitter_pt``,
  which calls torchvision's ``adjust_*`` after a ``randperm(4)``). The formulas, for float images
  in [0, 1] with ``gray = 0.2989 R + 0.587 G + 0.114 B`` (torchvision's ``rgb_to_grayscale``):

  - brightness ``f``: ``clip(f · img, 0, 1)``;
  - contrast ``f``:   ``clip(f · img + (1 − f) · mean(gray), 0, 1)``, the mean over the whole image;
  - saturation ``f``: ``clip(f · img + (1 − f) · gray, 0, 1)``, per pixel;
  - hue ``f`` (in [−0.5, 0.5]): RGB → HSV, ``h ← (h + f) mod 1``, HSV → RGB (torchvision's
    ``_rgb2hsv`` / ``_hsv2rgb``, whose HSV → RGB clamps p, q, t to [0, 1]; the hue wraps).

torchvision is not a dependency, so these are written out here. The numpy functions work on one
HWC image; the torch ones on a (B, 3, H, W) batch with one factor per image (a number or a (B,)
tensor), so a training device can jitter a whole batch. The random part is separate: ``draw_jitter``
draws the order and the factors from a ``numpy.random.Generator`` (the caller's per-draw stream),
and ``jitter_batch`` applies a list of such draws, grouping the images that apply the same
operation at the same step, so no image does work it did not draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from restorekit.data.degradations.kernels import check_range
from restorekit.errors import ConfigError

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale (not BT.601's 0.299)
OPS = ("brightness", "contrast", "saturation", "hue")
NEUTRAL = (1.0, 1.0, 1.0, 0.0)  # the factor of each op that changes nothing


# ----------------------------------------------------------------------------- numpy, one HWC image
def gray_np(img: np.ndarray) -> np.ndarray:
    """(H, W) luma of an HWC RGB image with torchvision's weights."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return np.float32(GRAY_WEIGHTS[0]) * r + np.float32(GRAY_WEIGHTS[1]) * g + np.float32(GRAY_WEIGHTS[2]) * b


def _blend_np(img: np.ndarray, other: np.ndarray | np.float32, f: float) -> np.ndarray:
    return np.clip(np.float32(f) * img + np.float32(1.0 - f) * other, 0.0, 1.0).astype(img.dtype)


def adjust_brightness_np(img: np.ndarray, f: float) -> np.ndarray:
    return _blend_np(img, np.float32(0.0), f)


def adjust_contrast_np(img: np.ndarray, f: float) -> np.ndarray:
    return _blend_np(img, np.float32(gray_np(img).mean(dtype=np.float32)), f)


def adjust_saturation_np(img: np.ndarray, f: float) -> np.ndarray:
    return _blend_np(img, gray_np(img)[..., None], f)


def rgb_to_hsv_np(img: np.ndarray) -> np.ndarray:
    """HWC RGB in [0, 1] → HWC HSV with h in [0, 1) (torchvision's ``_rgb2hsv``)."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    maxc, minc = img.max(axis=-1), img.min(axis=-1)
    eqc = maxc == minc
    cr = maxc - minc
    s = cr / np.where(eqc, 1.0, maxc).astype(img.dtype)
    div = np.where(eqc, 1.0, cr).astype(img.dtype)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = np.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return np.stack([h, s, maxc], axis=-1).astype(img.dtype)


def hsv_to_rgb_np(hsv: np.ndarray) -> np.ndarray:
    """HWC HSV → HWC RGB (torchvision's ``_hsv2rgb``: p, q, t clamped to [0, 1])."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(np.int32) % 6
    p = np.clip(v * (1.0 - s), 0.0, 1.0)
    q = np.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = np.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    table = np.stack(
        [np.stack(c, axis=0) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))], axis=0
    )  # (3 channels, 6 sectors, H, W)
    out = np.take_along_axis(table, np.broadcast_to(i[None, None], (3, 1, *i.shape)), axis=1)[:, 0]
    return np.moveaxis(out, 0, -1).astype(hsv.dtype)


def adjust_hue_np(img: np.ndarray, f: float) -> np.ndarray:
    hsv = rgb_to_hsv_np(img)
    hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(f), 1.0)
    return hsv_to_rgb_np(hsv)


_NP_OPS = (adjust_brightness_np, adjust_contrast_np, adjust_saturation_np, adjust_hue_np)


def apply_jitter_np(img: np.ndarray, order: Sequence[int], factors: Sequence[float]) -> np.ndarray:
    """The ops of ``order`` (indices into ``OPS``) in that order, each with ``factors[op]``."""
    for op in order:
        img = _NP_OPS[op](img, factors[op])
    return img


def color_shift_np(img: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """GFPGAN's ``color_jitter``: add a per-channel offset, clip to [0, 1]."""
    return np.clip(img + shift.astype(np.float32), 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- torch, (B, 3, H, W)
def _per_image(f: float | Tensor, img: Tensor) -> Tensor:
    t = torch.as_tensor(f, dtype=img.dtype, device=img.device)
    return t.reshape(-1, *([1] * (img.ndim - 1))) if t.ndim else t


def gray(img: Tensor) -> Tensor:
    """(B, 1, H, W) luma of a (B, 3, H, W) RGB batch (torchvision's ``rgb_to_grayscale``)."""
    r, g, b = img.unbind(dim=-3)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(-3)


def _blend(img: Tensor, other: Tensor | float, f: float | Tensor) -> Tensor:
    f = _per_image(f, img)
    return (f * img + (1.0 - f) * other).clamp(0.0, 1.0)


def adjust_brightness(img: Tensor, f: float | Tensor) -> Tensor:
    return _blend(img, 0.0, f)


def adjust_contrast(img: Tensor, f: float | Tensor) -> Tensor:
    return _blend(img, gray(img).mean(dim=(-3, -2, -1), keepdim=True), f)


def adjust_saturation(img: Tensor, f: float | Tensor) -> Tensor:
    return _blend(img, gray(img), f)


def rgb_to_hsv(img: Tensor) -> Tensor:
    """(B, 3, H, W) RGB → HSV, h in [0, 1) (torchvision's ``_rgb2hsv``)."""
    r, g, b = img.unbind(dim=-3)
    maxc, minc = img.max(dim=-3).values, img.min(dim=-3).values
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    div = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """(B, 3, H, W) HSV → RGB (torchvision's ``_hsv2rgb``)."""
    h, s, v = hsv.unbind(dim=-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    table = torch.stack(
        [torch.stack(c, dim=-3) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))], dim=-4
    )  # (..., 3 channels, 6 sectors, H, W)
    idx = i.unsqueeze(-3).unsqueeze(-3).expand(*table.shape[:-3], 1, *i.shape[-2:])
    return table.gather(-3, idx).squeeze(-3)


def adjust_hue(img: Tensor, f: float | Tensor) -> Tensor:
    hsv = rgb_to_hsv(img)
    h = torch.remainder(hsv[..., 0:1, :, :] + _per_image(f, img), 1.0)
    return hsv_to_rgb(torch.cat([h, hsv[..., 1:, :, :]], dim=-3))


_TORCH_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_shift(img: Tensor, shift: Tensor) -> Tensor:
    """``clip(img + shift, 0, 1)`` with ``shift`` (B, 3): one offset per image and channel."""
    return (img + shift.to(img).view(*shift.shape, 1, 1)).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------- drawing, applying
@dataclass(frozen=True)
class JitterRanges:
    """The factor ranges (None: that op is never applied), GFPGAN's defaults and option names."""

    brightness: tuple[float, float] | None = (0.5, 1.5)
    contrast: tuple[float, float] | None = (0.5, 1.5)
    saturation: tuple[float, float] | None = (0.0, 1.5)
    hue: tuple[float, float] | None = (-0.1, 0.1)

    def check(self) -> None:
        """One-line ConfigErrors naming the option, where torchvision would raise mid-training."""
        for name in OPS[:3]:
            value = getattr(self, name)
            if value is not None:
                check_range(name, value, low=0.0)
        if self.hue is not None:
            check_range("hue", self.hue, low=-0.5, high=0.5)

    def ranges(self) -> tuple[tuple[float, float] | None, ...]:
        return tuple(getattr(self, name) for name in OPS)


def jitter_ranges(**given: Sequence[float] | None) -> JitterRanges:
    """``JitterRanges`` from option values (lists from YAML), checked."""
    unknown = set(given) - set(OPS)
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: not a jitter option (known: {', '.join(OPS)})")
    values: dict[str, tuple[float, ...] | None] = {}
    for key, value in given.items():
        if value is not None and (isinstance(value, str) or not isinstance(value, Sequence)):
            raise ConfigError(f"{key}: expected a [low, high] pair or null, got {value!r}")
        values[key] = None if value is None else tuple(float(v) for v in value)
    ranges = JitterRanges(**values)  # type: ignore[arg-type]
    ranges.check()
    return ranges


@dataclass(frozen=True)
class JitterDraw:
    """One image's jitter: the ops in the order applied, and a factor per op (neutral if unused)."""

    order: tuple[int, ...] = ()
    factors: tuple[float, float, float, float] = NEUTRAL


def draw_jitter(rng: np.random.Generator, ranges: JitterRanges) -> JitterDraw:
    """A random order of the four ops (GFPGAN's ``randperm(4)``); ops without a range are
    skipped, and each applied op draws its factor uniformly, in the order applied."""
    factors = list(NEUTRAL)
    order = []
    bounds = ranges.ranges()
    for op in rng.permutation(len(OPS)).tolist():
        if bounds[op] is None:
            continue
        lo, hi = bounds[op]  # type: ignore[misc]
        factors[op] = float(rng.uniform(lo, hi))
        order.append(op)
    return JitterDraw(tuple(order), (factors[0], factors[1], factors[2], factors[3]))


def jitter_batch(img: Tensor, draws: Sequence[JitterDraw | None], factors: Tensor | None = None) -> Tensor:
    """Apply ``draws[i]`` to image ``i`` of a (B, 3, H, W) batch (None: unchanged).

    The orders are host data (Python ints), so images can be grouped per step and op without a
    device sync; ``factors`` (B, 4), if given, replaces the draws' factors with a tensor already
    on the batch's device (what a training batch carries), avoiding one host-to-device copy per op.
    """
    if factors is None:
        factors = torch.tensor(
            [list(d.factors) if d is not None else list(NEUTRAL) for d in draws], dtype=img.dtype
        ).to(img.device)
    out = img
    steps = max((len(d.order) for d in draws if d is not None), default=0)
    for step in range(steps):
        for op in range(len(OPS)):
            idx = [
                i
                for i, d in enumerate(draws)
                if d is not None and len(d.order) > step and d.order[step] == op
            ]
            if not idx:
                continue
            if len(idx) == out.shape[0]:
                out = _TORCH_OPS[op](out, factors[:, op])
                continue
            sel = torch.tensor(idx, device=img.device)
            out = out.index_copy(0, sel, _TORCH_OPS[op](out.index_select(0, sel), factors[sel, op]))
    return out

"""GFPGAN's FFHQ degradation on the training device (``FFHQDegradation``), and steps both paths share.

``FFHQDegradationDataset(degrade_on="device")`` (config ``data.degrade_on: device``) leaves the
LQ out of its samples: a worker decodes and flips the face and draws every random choice
(kernel, factors, noise seed, jitter order...), and the task calls this module on the batch::

    deg = FFHQDegradation.from_dataset(train_set).to(device)   # once (mean/std of the dataset)
    batch = deg(batch)            # adds "lq", normalises "gt"; loc_* and the rest pass through

**What runs where, and why.** Measured on this project's shared 2-core CPU, one thread, per
512² sample with the v1 options: the whole host path ~100 ms (~10 samples/s per loader worker;
150 ms when the torchvision jitter is drawn), of which the 41² blur (cv2's DFT path) 24-47 ms,
the hue step of the jitter ~50 ms, Gaussian noise on a 512² LQ ~19 ms, decoding ~2-19 ms; the
downsample, the small-image JPEG and the resize back stay below 1 ms each. With
``degrade_on: device`` the worker's share is ~17 ms (decode, flip, draws). Blur, noise and
jitter are the kind of work a GPU does in well under a millisecond per image; that was not
measured here (no GPU in this session). So the device path pays where cores are scarce (a few
per GPU) or a small model steps fast; for GFPGAN itself at batch 3 per GPU with 6 workers each,
the host keeps up, and ``degrade_on: host`` stays the default. On a CPU-only run the device path
is slower than the host one (a direct 41² convolution instead of cv2's DFT: ~600 ms for a batch
of three 512² faces against ~300 ms on the host): use it with an accelerator only.

* **Host** (the dataset): decode, flip, the draws, the gray GT (``gt_gray``), the eye/mouth boxes.
* **Device** (here): blur, downsample, noise, JPEG, resize back, colour shift, gray LQ, colour
  jitter, 8-bit rounding, normalisation. Each sample has its own LQ size, so the steps between the
  downsample and the resize back loop over the batch (a few small images); the others are batched.

**Differences to the host path**, by design: the JPEG is the project's ``DiffJPEG`` (a torch
JPEG: libjpeg's tables, quality scaling and 4:2:0 chroma, a float DCT; over 33 dB PSNR against
libjpeg in tests/test_degradations.py, 38-43 dB on the LQ faces of tests/test_ffhq_dataset.py),
because a libjpeg round trip on the host in the middle of the chain would cost two device syncs
per sample; the noise comes from a ``torch.Generator`` seeded with the sample's ``noise_seed``
instead of NumPy, so it has the same statistics, not the same values. With noise and JPEG off,
both paths agree to float rounding (a pixel here and there one 8-bit level apart). One host read
per batch (the LQ sizes, JPEG on/off and jitter orders, packed) is the only sync.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.data.degradations.color_jitter import NEUTRAL, JitterDraw, jitter_batch
from restorekit.data.degradations.filters import filter2d
from restorekit.data.degradations.jpeg import DiffJPEG

# cv2's BGR2GRAY weights (BT.601), which GFPGAN's gray step uses (the jitter uses torchvision's).
LUMA = (0.299, 0.587, 0.114)
DEVICE_KEYS = (
    "kernel",
    "lq_size",
    "sigma",
    "noise_seed",
    "quality",
    "shift",
    "gray",
    "jitter_order",
    "jitter_factors",
)


def to_gray3(img: Tensor, mask: Tensor | None = None) -> Tensor:
    """(B, 3, H, W) → its luma repeated to 3 channels; with ``mask`` (B,) only where it is 1."""
    w = img.new_tensor(LUMA).view(1, 3, 1, 1)
    y = (img * w).sum(dim=1, keepdim=True).expand_as(img)
    if mask is None:
        return y.contiguous()
    m = mask.to(img).view(-1, 1, 1, 1)
    return m * y + (1 - m) * img


def normalise(img: Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> Tensor:
    """``(img − mean) / std`` per channel (torchvision's ``normalize``); None leaves [0, 1]."""
    if mean is None or std is None:
        return img
    m = img.new_tensor(list(mean)).view(-1, 1, 1)
    s = img.new_tensor(list(std)).view(-1, 1, 1)
    return (img - m) / s


def finish_lq(lq: Tensor, draws: Sequence[JitterDraw | None], factors: Tensor | None = None) -> Tensor:
    """GFPGAN's last LQ steps on a (B, 3, H, W) batch: the colour jitter each image drew, then
    rounding to the 8-bit grid (``clamp(round(x · 255), 0, 255) / 255``)."""
    if any(d is not None and d.order for d in draws):
        lq = jitter_batch(lq, draws, factors)
    return torch.clamp(torch.round(lq * 255.0), 0, 255) / 255.0


def _jitter_draws(orders: Sequence[Sequence[int]]) -> list[JitterDraw | None]:
    """Orders as the batch carries them (op indices, −1 padded) → draws; factors come separately."""
    out: list[JitterDraw | None] = []
    for row in orders:
        order = tuple(int(o) for o in row if int(o) >= 0)
        out.append(JitterDraw(order, NEUTRAL) if order else None)
    return out


class FFHQDegradation(nn.Module):
    """The LQ of a batch from ``FFHQDegradationDataset(degrade_on="device")`` (see the module doc)."""

    def __init__(
        self, mean: Sequence[float] | None = (0.5, 0.5, 0.5), std: Sequence[float] | None = (0.5, 0.5, 0.5)
    ) -> None:
        super().__init__()
        self.mean = None if mean is None else tuple(float(v) for v in mean)
        self.std = None if std is None else tuple(float(v) for v in std)
        self.jpeg = DiffJPEG(differentiable=False)

    @classmethod
    def from_dataset(cls, dataset: Any) -> FFHQDegradation:
        return cls(dataset.mean, dataset.std)

    def _jpeg(self, img: Tensor, quality: Tensor) -> Tensor:
        """8-bit in, 8-bit out, as a real codec (and the host path) is."""
        x = torch.round(img.clamp(0, 1) * 255.0) / 255.0
        return torch.round(self.jpeg(x, quality) * 255.0) / 255.0

    @torch.no_grad()
    def degrade(self, batch: Mapping[str, Any]) -> Tensor:
        """The LQ in [0, 1] on the 8-bit grid, (B, 3, H, W), not normalised."""
        gt = batch["gt"].float()
        b, _, h, w = gt.shape
        # the one host read: sizes, JPEG on/off and jitter orders decide shapes and control flow
        plan = torch.cat(
            [batch["lq_size"].long(), (batch["quality"] > 0).long().view(b, 1), batch["jitter_order"].long()],
            1,
        ).tolist()
        seeds = [int(s) for s in torch.as_tensor(batch["noise_seed"]).reshape(-1).tolist()]  # a host key
        blurred = filter2d(gt, batch["kernel"].to(gt))
        sigma = batch["sigma"].to(gt).view(b)
        quality = batch["quality"].to(gt).view(b)
        full = []
        for i in range(b):
            lh, lw, jpeg_on = plan[i][0], plan[i][1], plan[i][2]
            x = F.interpolate(blurred[i : i + 1], size=(lh, lw), mode="bilinear", align_corners=False)
            g = torch.Generator(device=gt.device)
            g.manual_seed(seeds[i])
            noise = torch.randn(x.shape, generator=g, device=gt.device, dtype=gt.dtype)
            x = (x + noise * (sigma[i] / 255.0)).clamp(0.0, 1.0)
            if jpeg_on:
                x = self._jpeg(x, quality[i : i + 1])
            full.append(F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False))
        lq = torch.cat(full, 0)
        lq = (lq + batch["shift"].to(gt).view(b, 3, 1, 1)).clamp(0.0, 1.0)
        lq = to_gray3(lq, batch["gray"].to(gt).view(b))
        draws = _jitter_draws([row[3:] for row in plan])
        return finish_lq(lq, draws, batch["jitter_factors"].to(gt))

    @torch.no_grad()
    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch with ``lq`` added and ``gt`` normalised; the degradation's keys dropped."""
        lq = self.degrade(batch)
        out = {k: v for k, v in batch.items() if k not in DEVICE_KEYS}
        out["lq"] = normalise(lq, self.mean, self.std)
        out["gt"] = normalise(batch["gt"].float(), self.mean, self.std)
        return out

"""JPEG compression of a batch in torch, each image at its own quality (Real-ESRGAN's DiffJPEG).

A baseline JPEG round trip is simulated with tensor ops so it runs batched on the device:
RGB → YCbCr (JFIF, ×255), 4:2:0 chroma subsampling by 2 × 2 averaging, 8 × 8 block DCT,
division by the quality-scaled quantisation tables, rounding, and the inverse path back to RGB
clipped to [0, 1]. The rounding is the only lossy step, exactly as in a real encoder. With
``differentiable=True`` rounding is replaced by ``round(x) + (x − round(x))³`` (Shin & Song,
2017), whose gradient is not zero almost everywhere; Real-ESRGAN synthesises data without
gradients and uses plain rounding, the default here.

Where this follows libjpeg (what ``cv2.imencode`` runs) rather than BasicSR's DiffJPEG, on purpose:

* **Tables** are the Annex K tables in their natural orientation (row = vertical frequency).
  DiffJPEG stores them transposed, which quantises some horizontal and vertical frequencies
  with each other's step.
* **Quality scaling** is libjpeg's ``jpeg_quality_scaling`` — ``5000/q`` below 50, ``200 − 2q``
  above — then ``⌊(table · s + 50) / 100⌋`` clamped to [1, 255] (baseline). DiffJPEG multiplies
  the tables by ``s/100`` without rounding or clamping, so quality 100 divides by zero there;
  here quality 100 is the all-ones table, as in libjpeg. Fractional qualities (Real-ESRGAN draws
  them uniformly) still move the scale continuously.
* **Chroma upsampling** is bilinear with half-pixel centres, which is libjpeg's default "fancy"
  triangle upsampling (3/4, 1/4 weights); DiffJPEG repeats pixels.
* **Padding** to a multiple of 16 replicates the last row/column (as libjpeg does), instead of
  padding with black, so blocks on the border are not darkened.

The remaining difference to libjpeg is its integer DCT and the fact that its input and output
are 8-bit; the pipeline rounds to 8 bits at its end. Measured against cv2 on smooth test images
the error at a given quality is within the same ballpark (see tests).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), natural (row-major) order.
_Y_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_C_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8,) * 4,
)
# JFIF full-range YCbCr, as libjpeg.
_RGB2YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
_YCBCR2RGB = (
    (1.0, 0.0, 1.402),
    (1.0, -0.344136, -0.714136),
    (1.0, 1.772, 0.0),
)


def diff_round(x: Tensor) -> Tensor:
    """Rounding with a usable gradient: ``round(x) + (x − round(x))³``."""
    r = torch.round(x)
    return r + (x - r) ** 3


def quality_to_scale(quality: Tensor) -> Tensor:
    """libjpeg's percentage scale for a quality in [1, 100] (50 → 100 %, 100 → 0 %)."""
    q = quality.clamp(1, 100)
    return torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)


def _dct_matrix() -> Tensor:
    """Orthonormal 8-point DCT-II: JPEG's FDCT of a block is ``D @ block @ Dᵀ``."""
    d = torch.empty(8, 8, dtype=torch.float64)
    for u in range(8):
        a = math.sqrt(1 / 8) if u == 0 else math.sqrt(2 / 8)
        for x in range(8):
            d[u, x] = a * math.cos((2 * x + 1) * u * math.pi / 16)
    return d.float()


class DiffJPEG(nn.Module):
    """Batched JPEG round trip: ``jpeg(img, quality)`` with ``img`` (B, 3, H, W) RGB in [0, 1]
    and ``quality`` a number or a (B,) tensor; returns (B, 3, H, W) in [0, 1]."""

    def __init__(self, differentiable: bool = False) -> None:
        super().__init__()
        self.rounding = diff_round if differentiable else torch.round
        d = _dct_matrix()
        self.register_buffer("dct2", torch.kron(d, d), persistent=False)  # vec(D X Dᵀ) = (D⊗D) vec(X)
        self.register_buffer("y_table", torch.tensor(_Y_TABLE, dtype=torch.float32), persistent=False)
        self.register_buffer("c_table", torch.tensor(_C_TABLE, dtype=torch.float32), persistent=False)
        self.register_buffer("rgb2ycbcr", torch.tensor(_RGB2YCBCR, dtype=torch.float32), persistent=False)
        self.register_buffer("ycbcr2rgb", torch.tensor(_YCBCR2RGB, dtype=torch.float32), persistent=False)

    def tables(self, quality: Tensor) -> tuple[Tensor, Tensor]:
        """Per-image luminance and chrominance quantisation tables, (B, 8, 8) each."""
        scale = quality_to_scale(quality.float()).view(-1, 1, 1)
        y = torch.floor((self.y_table.to(scale.device) * scale + 50) / 100).clamp(1, 255)
        c = torch.floor((self.c_table.to(scale.device) * scale + 50) / 100).clamp(1, 255)
        return y, c

    def _code(self, plane: Tensor, table: Tensor) -> Tensor:
        """Level shift, block DCT, quantise, dequantise, inverse DCT of a (B, H, W) plane
        (H, W multiples of 8); ``table`` is (B, 8, 8). The 2-D DCT of all blocks is one GEMM
        with the 64 × 64 matrix ``D ⊗ D`` (many tiny 8 × 8 products are far slower)."""
        b, h, w = plane.shape
        blocks = (plane - 128.0).reshape(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
        d2 = self.dct2.to(plane)
        coef = blocks.reshape(b, -1, 64) @ d2.T
        t = table.to(plane).reshape(b, 1, 64)
        coef = self.rounding(coef / t) * t
        blocks = (coef @ d2).reshape(b, h // 8, w // 8, 8, 8)
        return blocks.permute(0, 1, 3, 2, 4).reshape(b, h, w) + 128.0

    def forward(self, img: Tensor, quality: float | Tensor) -> Tensor:
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"DiffJPEG expects a (B, 3, H, W) RGB batch, got shape {tuple(img.shape)}")
        b, _, h, w = img.shape
        if not isinstance(quality, Tensor):
            quality = torch.full((b,), float(quality), device=img.device)
        quality = quality.to(img.device).reshape(-1).expand(b)
        y_table, c_table = self.tables(quality)

        ycc = torch.einsum("ij,bjhw->bihw", self.rgb2ycbcr.to(img), img * 255.0)
        ycc = ycc + img.new_tensor([0.0, 128.0, 128.0]).view(1, 3, 1, 1)
        ph, pw = (-h) % 16, (-w) % 16  # whole 16 × 16 MCUs: 8 × 8 blocks of subsampled chroma
        if ph or pw:
            ycc = F.pad(ycc, (0, pw, 0, ph), mode="replicate")
        luma = self._code(ycc[:, 0], y_table)
        chroma = F.avg_pool2d(ycc[:, 1:], kernel_size=2, stride=2)
        hc, wc = chroma.shape[-2:]
        chroma = torch.stack([self._code(chroma[:, i], c_table) for i in range(2)], dim=1)
        chroma = F.interpolate(chroma, size=(2 * hc, 2 * wc), mode="bilinear", align_corners=False)
        ycc = torch.cat([luma[:, None], chroma], dim=1)[:, :, :h, :w]
        ycc = ycc - img.new_tensor([0.0, 128.0, 128.0]).view(1, 3, 1, 1)
        rgb = torch.einsum("ij,bjhw->bihw", self.ycbcr2rgb.to(img), ycc)
        return (torch.clamp(rgb, 0, 255) / 255.0).contiguous()

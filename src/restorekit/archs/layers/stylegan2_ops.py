"""StyleGAN2 building blocks with BasicSR's key layout and no compiled ops.

BasicSR's ``stylegan2_arch`` (which GFPGANv1 builds on) calls two CUDA extensions, ``upfirdn2d``
and ``fused_bias_act``; without a compiler they fail to import and the networks cannot run on
the GPU. Both are short formulas, so here they are plain torch ops that work on any device and
dtype and support double backward (R1 regularisation differentiates the discriminator twice):

* ``upfirdn2d``: zero-insert upsample, pad (negative = crop), convolve with the flipped FIR
  kernel, keep every ``down``-th sample; equal to BasicSR's ``upfirdn2d_native``.
* ``fused_leaky_relu``: ``leaky_relu(x + bias, 0.2) * sqrt(2)``, the op's definition.

Module, argument and parameter names and nesting are BasicSR's, so state-dict keys match the
released weights. The FIR kernels are *non-persistent* buffers: BasicSR keeps them as plain
attributes (absent from its state dicts); an unsaved buffer still moves with ``.to(device)``.
Reshapes rather than views throughout, so channels-last inputs work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Kernel1D = Sequence[int] | Sequence[float]
SQRT2 = math.sqrt(2)


def bias_parameter(channels: int, value: float) -> nn.Parameter:
    """A bias vector filled with ``value`` (modulation biases start at 1, so styles start at 1)."""
    return nn.Parameter(torch.full((channels,), float(value)))


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def upfirdn2d(
    x: Tensor,
    kernel: Tensor,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    pad: Sequence[int] = (0, 0),
) -> Tensor:
    """Upsample by zero insertion, FIR-filter with ``kernel`` (true convolution), downsample.

    Args:
        x: ``(b, c, h, w)``; every channel is filtered independently.
        kernel: 2-D ``(kh, kw)`` FIR kernel (moved to ``x``'s device and dtype).
        up / down: factors, an int for both axes or ``(x, y)``.
        pad: ``(p0, p1)`` for both axes or ``(x0, x1, y0, y1)``, applied after upsampling;
            negative values crop (as BasicSR's native version does).

    Output side: ``(side * up + p0 + p1 - k) // down + 1``.
    """
    ux, uy = _pair(up)
    dx, dy = _pair(down)
    px0, px1, py0, py1 = (pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else tuple(pad)
    b, c, h, w = x.shape
    if ux > 1 or uy > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, (0, ux - 1, 0, 0, 0, uy - 1))  # zeros after every sample
        x = x.reshape(b, c, h * uy, w * ux)
    x = F.pad(x, (px0, px1, py0, py1))
    kh, kw = kernel.shape
    weight = torch.flip(kernel, (0, 1)).to(device=x.device, dtype=x.dtype)
    # depthwise: one filter per channel; striding the convolution is the same as keeping every
    # down-th sample of the full result (BasicSR slices ``[::down]``), at 1/down² of the cost
    return F.conv2d(x, weight.expand(c, 1, kh, kw), stride=(dy, dx), groups=c)


def fused_leaky_relu(
    x: Tensor, bias: Tensor | None = None, negative_slope: float = 0.2, scale: float = SQRT2
) -> Tensor:
    """``leaky_relu(x + bias) * scale`` with ``bias`` along dim 1: what ``fused_bias_act`` computes.

    The bias is cast to ``x``'s dtype so fp16 activations (autocast) stay fp16.
    """
    if bias is not None:
        x = x + bias.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU + gain √2; the bias is the only parameter (key ``bias``)."""

    def __init__(self, channel: int, negative_slope: float = 0.2, scale: float = SQRT2) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)


class ScaledLeakyReLU(nn.Module):
    """Leaky ReLU times √2 (keeps the activation variance of equalised-learning-rate layers)."""

    def __init__(self, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope) * SQRT2


class NormStyleCode(nn.Module):
    """Pixel norm of the style codes ``(b, c)``: unit mean square per code."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


def make_resample_kernel(k: Kernel1D | Tensor) -> Tensor:
    """A 2-D resampling kernel summing to 1: the outer product of a 1-D ``k``, or ``k`` if 2-D."""
    t = torch.as_tensor(k, dtype=torch.float32)
    if t.ndim == 1:
        t = t[None, :] * t[:, None]
    return t / t.sum()


class _FIR(nn.Module):
    """``upfirdn2d`` with fixed factors; ``kernel`` is a non-persistent buffer (not in BasicSR's keys)."""

    kernel: Tensor

    def __init__(self, kernel: Tensor, up: int, down: int, pad: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("kernel", kernel, persistent=False)
        self.up, self.down, self.pad = up, down, pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.up, down=self.down, pad=self.pad)


class UpFirDnUpsample(_FIR):
    """×``factor`` upsampling with the FIR kernel (ToRGB's skip path); gain ``factor²``."""

    def __init__(self, resample_kernel: Kernel1D, factor: int = 2) -> None:
        kernel = make_resample_kernel(resample_kernel) * factor**2
        p = kernel.shape[0] - factor
        super().__init__(kernel, factor, 1, ((p + 1) // 2 + factor - 1, p // 2))
        self.factor = factor


class UpFirDnDownsample(_FIR):
    """FIR low-pass then ÷``factor`` subsampling."""

    def __init__(self, resample_kernel: Kernel1D, factor: int = 2) -> None:
        kernel = make_resample_kernel(resample_kernel)
        p = kernel.shape[0] - factor
        super().__init__(kernel, 1, factor, ((p + 1) // 2, p // 2))
        self.factor = factor


class UpFirDnSmooth(_FIR):
    """The blur (no resampling) around a strided or transposed convolution; its padding
    accounts for the conv's kernel so that up/down-sampling by 2 keeps the grid aligned."""

    def __init__(
        self,
        resample_kernel: Kernel1D,
        upsample_factor: int = 1,
        downsample_factor: int = 1,
        kernel_size: int = 1,
    ) -> None:
        kernel = make_resample_kernel(resample_kernel)
        if upsample_factor > 1:
            kernel = kernel * upsample_factor**2
            p = (kernel.shape[0] - upsample_factor) - (kernel_size - 1)
            pad = ((p + 1) // 2 + upsample_factor - 1, p // 2 + 1)
        elif downsample_factor > 1:
            p = (kernel.shape[0] - downsample_factor) + (kernel_size - 1)
            pad = ((p + 1) // 2, p // 2)
        else:
            raise ValueError("UpFirDnSmooth: upsample_factor or downsample_factor must be > 1")
        super().__init__(kernel, 1, 1, pad)
        self.upsample_factor, self.downsample_factor = upsample_factor, downsample_factor


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights stored ``/ lr_mul`` and scaled by
    ``lr_mul / sqrt(in)`` at run time (the mapping network uses ``lr_mul = 0.01``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bias: bool = True,
        bias_init_val: float = 0,
        lr_mul: float = 1,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        if activation not in ("fused_lrelu", None):
            raise ValueError(f"EqualLinear: activation must be 'fused_lrelu' or None, got {activation!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.lr_mul = lr_mul
        self.activation = activation
        self.scale = lr_mul / math.sqrt(in_channels)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels).div_(lr_mul))
        self.bias = bias_parameter(out_channels, bias_init_val) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        if self.activation == "fused_lrelu":
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate (weights scaled by ``1 / sqrt(in·k²)`` at run time)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        bias_init_val: float = 0,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding = stride, padding
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = bias_parameter(out_channels, bias_init_val) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's weight-modulated convolution (no bias), one weight per sample (grouped conv).

    ``sample_mode``: ``"upsample"`` (transposed stride-2 conv, then blur), ``"downsample"``
    (blur, then stride-2 conv) or ``None``. The demodulation norms are computed in fp32, so
    fp16 weights neither under- nor overflow there (identical results in fp32).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
        resample_kernel: Kernel1D = (1, 3, 3, 1),
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.sample_mode, self.eps = demodulate, sample_mode, eps
        if sample_mode == "upsample":
            self.smooth = UpFirDnSmooth(resample_kernel, upsample_factor=2, kernel_size=kernel_size)
        elif sample_mode == "downsample":
            self.smooth = UpFirDnSmooth(resample_kernel, downsample_factor=2, kernel_size=kernel_size)
        elif sample_mode is not None:
            raise ValueError(f"ModulatedConv2d: sample_mode {sample_mode!r} is not upsample/downsample/None")
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.modulation = EqualLinear(num_style_feat, in_channels, bias=True, bias_init_val=1)
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.padding = kernel_size // 2

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        b, c, h, w = x.shape
        k, o = self.kernel_size, self.out_channels
        weight = self.scale * self.weight * self.modulation(style).reshape(b, 1, c, 1, 1)
        if self.demodulate:
            demod = torch.rsqrt(weight.float().pow(2).sum((2, 3, 4)) + self.eps)
            weight = weight * demod.to(weight.dtype).reshape(b, o, 1, 1, 1)
        if self.sample_mode == "upsample":
            weight = weight.transpose(1, 2).reshape(b * c, o, k, k)
            out = F.conv_transpose2d(x.reshape(1, b * c, h, w), weight, stride=2, groups=b)
            return self.smooth(out.reshape(b, o, *out.shape[2:]))
        weight = weight.reshape(b * o, c, k, k)
        if self.sample_mode == "downsample":
            x = self.smooth(x)
            out = F.conv2d(x.reshape(1, b * c, *x.shape[2:]), weight, stride=2, groups=b)
        else:
            out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=self.padding, groups=b)
        return out.reshape(b, o, *out.shape[2:])


class StyleConv(nn.Module):
    """Modulated conv + per-pixel noise (learned strength ``weight``, zero at init) + bias/LReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
        resample_kernel: Kernel1D = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(
            in_channels, out_channels, kernel_size, num_style_feat, demodulate, sample_mode, resample_kernel
        )
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.activate = FusedLeakyReLU(out_channels)

    def forward(
        self, x: Tensor, style: Tensor, noise: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """``noise=None`` draws fresh noise (from ``generator``, on the output's device)."""
        out = self.modulated_conv(x, style)
        if noise is None:
            b, _, h, w = out.shape
            noise = out.new_empty(b, 1, h, w).normal_(generator=generator)
        out = out + self.weight.to(out.dtype) * noise.to(out.dtype)
        return self.activate(out)


class ToRGB(nn.Module):
    """1×1 modulated conv (not demodulated) to RGB + bias, added to the upsampled skip image."""

    def __init__(
        self,
        in_channels: int,
        num_style_feat: int,
        upsample: bool = True,
        resample_kernel: Kernel1D = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.upsample = UpFirDnUpsample(resample_kernel, factor=2) if upsample else None
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.modulated_conv(x, style)
        out = out + self.bias.to(out.dtype)
        if skip is not None:
            if self.upsample is not None:
                skip = self.upsample(skip)
            out = out + skip
        return out


class ConstantInput(nn.Module):
    """The learned 4×4 start of the synthesis network, repeated over the batch."""

    def __init__(self, num_channel: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, num_channel, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.weight.repeat(batch, 1, 1, 1)


class ConvLayer(nn.Sequential):
    """[blur] + EqualConv2d (stride 2 after the blur when ``downsample``) + [activation]; the
    indices are the keys (the blur, index 0, has none). With ``activate`` the bias lives in the
    FusedLeakyReLU, not the conv; without bias the activation is ScaledLeakyReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        downsample: bool = False,
        resample_kernel: Kernel1D = (1, 3, 3, 1),
        bias: bool = True,
        activate: bool = True,
    ) -> None:
        layers: list[nn.Module] = []
        if downsample:
            layers.append(UpFirDnSmooth(resample_kernel, downsample_factor=2, kernel_size=kernel_size))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(
            EqualConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias and not activate)
        )
        if activate:
            layers.append(FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU(0.2))
        super().__init__(*layers)
        self.padding = padding


class ResBlock(nn.Module):
    """Discriminator residual block: two 3×3 convs (the second ÷2) + a 1×1 ÷2 skip, sum / √2."""

    def __init__(self, in_channels: int, out_channels: int, resample_kernel: Kernel1D = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, bias=True, activate=True)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, True, resample_kernel, bias=True, activate=True)
        self.skip = ConvLayer(in_channels, out_channels, 1, True, resample_kernel, bias=False, activate=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2

"""Building blocks of lightweight-gan (lucidrains' FastGAN re-implementation, package 1.2.1).

Each block keeps the attribute names and child order of the reference classes (``Blur.f``,
``PreNorm.fn``/``.norm``, ``LinearAttention.to_lin_kv.net.0``, ``GlobalContext.to_k``,
``FCANet.dct_weights``, ``SumBranches.branches``), because the state-dict keys of a
lightweight-gan checkpoint are spelled by them; a rename here breaks strict loading. The
computations are restated with plain torch (no einops, no kornia).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Blur(nn.Module):
    """The [1, 2, 1] ⊗ [1, 2, 1] / 16 low-pass filter, reflect-padded, per channel.

    Same as ``kornia.filters.filter2d(x, f, normalized=True)`` with kornia's defaults (reflect
    border, "same" output). ``f`` is a persistent buffer, so it appears in the state dict: that
    key is how a checkpoint tells whether its run used the blur (``antialias``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("f", torch.tensor([1.0, 2.0, 1.0]))

    def forward(self, x: Tensor) -> Tensor:
        f = self.f.to(x.dtype)
        kernel = f[None, :] * f[:, None]
        kernel = (kernel / kernel.abs().sum()).expand(x.shape[1], 1, 3, 3)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[1])


def make_blur(antialias: bool) -> nn.Module:
    """``Blur()``, or the parameter-free ``nn.Identity`` the lightweight-gan trainer puts in its
    place when ``--antialias`` is off (it rebinds the module-global ``Blur``): either way the
    slot keeps its index in the surrounding ``nn.Sequential``, so the other keys do not move."""
    return Blur() if antialias else nn.Identity()


class Noise(nn.Module):
    """Adds ``weight · N(0, 1)`` noise, one value per pixel shared by all channels.

    ``generator`` lets the caller own the draws (a training task keeps them in its checkpointed
    ``torch.Generator``); it must live on the input's device.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b, _, h, w = x.shape
        noise = torch.randn((b, 1, h, w), generator=generator, device=x.device, dtype=x.dtype)
        return x + self.weight * noise


class NoiseSequential(nn.Sequential):
    """``nn.Sequential`` that hands a ``torch.Generator`` to its ``Noise`` children (same keys)."""

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:  # type: ignore[override]
        for module in self:
            x = module(x, generator) if isinstance(module, Noise) else module(x)
        return x


def conv2d_same(dim_in: int, dim_out: int, kernel_size: int) -> nn.Sequential:
    """A stride-1 conv whose output has the input's size, also for an even kernel (4×4: pad 2
    left/top and 1 right/bottom). The pad is child 0, so the conv's keys are ``….1.weight``."""
    left = kernel_size // 2
    right = left - 1 if kernel_size % 2 == 0 else left
    return nn.Sequential(nn.ZeroPad2d((left, right, left, right)), nn.Conv2d(dim_in, dim_out, kernel_size))


class ChanNorm(nn.Module):
    """Layer norm over the channels of each pixel (biased variance, eps 1e-5), params ``g``, ``b``."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        var = torch.var(x, dim=1, unbiased=False, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.g + self.b


class PreNorm(nn.Module):
    """``fn(ChanNorm(x))``; ``fn`` is registered first, as in the reference."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.norm = ChanNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) + x


class SumBranches(nn.Module):
    def __init__(self, branches: Sequence[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


class DepthWiseConv2d(nn.Module):
    def __init__(
        self, dim_in: int, dim_out: int, kernel_size: int, padding: int = 0, bias: bool = True
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(dim_in, dim_in, kernel_size, padding=padding, groups=dim_in, bias=bias),
            nn.Conv2d(dim_in, dim_out, 1, bias=bias),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


_CPU_CHUNK = 1 << 21  # elements per window-attention slice on a CPU (8 MB of fp32)


class LinearAttention(nn.Module):
    """Global linear attention plus 3×3-window softmax attention, concatenated, then a 1×1 conv.

    The window attention pads with zeros, so border pixels attend to zero keys as well (their
    similarity 0 takes part in the softmax): that is the reference's ``F.unfold`` behaviour and
    is kept. Heads × dim_head (lightweight-gan: 8 × 64) is independent of ``dim``.
    """

    def __init__(self, dim: int, dim_head: int = 64, heads: int = 8, kernel_size: int = 3) -> None:
        super().__init__()
        self.scale = dim_head**-0.5
        self.heads = heads
        self.dim_head = dim_head
        self.kernel_size = kernel_size
        inner = dim_head * heads
        self.nonlin = nn.GELU()
        self.to_lin_q = nn.Conv2d(dim, inner, 1, bias=False)
        self.to_lin_kv = DepthWiseConv2d(dim, inner * 2, 3, padding=1, bias=False)
        self.to_q = nn.Conv2d(dim, inner, 1, bias=False)
        self.to_kv = nn.Conv2d(dim, inner * 2, 1, bias=False)
        self.to_out = nn.Conv2d(inner * 2, dim, 1)

    def _heads(self, t: Tensor) -> Tensor:
        """(b, h·d, x, y) → (b·h, x·y, d)."""
        b, _, x, y = t.shape
        return t.reshape(b * self.heads, self.dim_head, x * y).transpose(1, 2)

    def _merge(self, t: Tensor, b: int, x: int, y: int) -> Tensor:
        """(b·h, x·y, d) → (b, h·d, x, y)."""
        return t.reshape(b, self.heads, x * y, self.dim_head).transpose(2, 3).reshape(b, -1, x, y)

    def forward(self, fmap: Tensor) -> Tensor:
        b, _, x, y = fmap.shape
        # linear attention over the whole map: softmax over features for q, over positions for k
        lin_k, lin_v = self.to_lin_kv(fmap).chunk(2, dim=1)
        lin_q = self._heads(self.to_lin_q(fmap)).softmax(dim=-1) * self.scale
        lin_k, lin_v = self._heads(lin_k).softmax(dim=-2), self._heads(lin_v)
        context = lin_k.transpose(1, 2) @ lin_v  # (bh, d, d)
        lin_out = self._merge(lin_q @ context, b, x, y)
        # softmax attention inside each k×k window, one shifted view of the padded keys and
        # values per window offset (the reference unfolds them; same result, far less copying)
        bh, d, pad = b * self.heads, self.dim_head, self.kernel_size // 2
        k, v = (F.pad(t.reshape(bh, d, x, y), (pad, pad, pad, pad)) for t in self.to_kv(fmap).chunk(2, dim=1))
        q = self.to_q(fmap).reshape(bh, d, x, y) * self.scale
        # on a CPU, cache-sized slices of (batch × heads) run ~1.6× faster than one pass over
        # tensors of hundreds of MB; a GPU takes the whole batch at once
        step = bh if q.device.type != "cpu" else max(1, _CPU_CHUNK // (d * x * y))
        parts = [self._window(q[s : s + step], k[s : s + step], v[s : s + step]) for s in range(0, bh, step)]
        full_out = (parts[0] if len(parts) == 1 else torch.cat(parts)).reshape(b, -1, x, y)
        return self.to_out(torch.cat((self.nonlin(lin_out), full_out), dim=1))

    def _window(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Window attention of ``q`` (n, d, x, y) over zero-padded ``k``/``v`` (n, d, x+2p, y+2p)."""
        x, y, ks = q.shape[-2], q.shape[-1], self.kernel_size
        offsets = [(i, j) for i in range(ks) for j in range(ks)]
        sim = torch.stack([(q * k[..., i : i + x, j : j + y]).sum(dim=1) for i, j in offsets], dim=1)
        sim = sim - sim.amax(dim=1, keepdim=True).detach()
        attn = sim.softmax(dim=1)  # (n, k·k, x, y)
        full = attn[:, :1] * v[..., :x, :y]
        for n, (i, j) in enumerate(offsets[1:], start=1):
            full = full + attn[:, n : n + 1] * v[..., i : i + x, j : j + y]
        return full


def attention(dim: int, heads: int = 8, dim_head: int = 64) -> PreNorm:
    """The attention block lightweight-gan inserts at ``attn_res_layers`` (used residually)."""
    return PreNorm(dim, LinearAttention(dim, dim_head=dim_head, heads=heads))


class GlobalContext(nn.Module):
    """Skip-layer excitation gate from a global-context pooling (GCNet): softmax-weighted
    spatial mean of ``x`` → 1×1 conv → LeakyReLU(0.1) → 1×1 conv → sigmoid, one gate per
    output channel (shape ``(b, chan_out, 1, 1)``)."""

    def __init__(self, *, chan_in: int, chan_out: int) -> None:
        super().__init__()
        self.to_k = nn.Conv2d(chan_in, 1, 1)
        mid = max(3, chan_out // 2)
        self.net = nn.Sequential(
            nn.Conv2d(chan_in, mid, 1), nn.LeakyReLU(0.1), nn.Conv2d(mid, chan_out, 1), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        context = self.to_k(x).flatten(2).softmax(dim=-1)  # (b, 1, n)
        pooled = x.flatten(2) @ context.transpose(1, 2)  # (b, c, 1)
        return self.net(pooled.unsqueeze(-1))


def _dct_1d(i: int, freq: int, length: int) -> float:
    value = math.cos(math.pi * freq * (i + 0.5) / length) / math.sqrt(length)
    return value * (1.0 if freq == 0 else math.sqrt(2.0))


def dct_weights(width: int, channels: int) -> Tensor:
    """FcaNet's 2-D DCT filters: 16 frequencies ((0, 0..7) and (0..7, 0)), each given to a
    ``channels // 16`` slice of channels (channels past 16 slices stay zero, as in the reference).

    Each filter is the outer product of two 1-D bases in float64, rounded once to float32: the
    same values as the reference's per-pixel Python loop, without its 16·width² iterations.
    """
    fu = [0] * 8 + list(range(8))
    fv = list(range(8)) + [0] * 8
    # computed on the CPU even while building on the meta device (layout checks), where
    # torch.outer would import torch._dynamo (seconds); moved to the default device at the end
    cpu = torch.device("cpu")
    out = torch.zeros(1, channels, width, width, device=cpu)
    part = channels // len(fu)
    for i, (u, v) in enumerate(zip(fu, fv)):
        bu = torch.tensor([_dct_1d(x, u, width) for x in range(width)], dtype=torch.float64, device=cpu)
        bv = torch.tensor([_dct_1d(y, v, width) for y in range(width)], dtype=torch.float64, device=cpu)
        out[:, i * part : (i + 1) * part] = (bu[:, None] * bv[None, :]).to(out.dtype)
    return out.to(torch.empty(0).device)


class FCANet(nn.Module):
    """Skip-layer excitation gate from frequency channel attention: the map's DCT coefficients
    (a fixed ``dct_weights`` buffer, persistent, so in the state dict) → 1×1 convs → sigmoid."""

    def __init__(self, *, chan_in: int, chan_out: int, width: int, reduction: int = 4) -> None:
        super().__init__()
        self.register_buffer("dct_weights", dct_weights(width, chan_in))
        mid = max(3, chan_out // reduction)
        self.net = nn.Sequential(
            nn.Conv2d(chan_in, mid, 1), nn.LeakyReLU(0.1), nn.Conv2d(mid, chan_out, 1), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x * self.dct_weights).sum(dim=(2, 3), keepdim=True))


class PixelShuffleUpsample(nn.Module):
    """1×1 conv to 4× channels, SiLU, pixel shuffle ×2.

    Initialised like the reference class (each filter repeated over its 2×2 sub-pixels, zero
    bias: a nearest-neighbour start without checkerboards); lightweight-gan's model then
    re-draws every ``Conv2d`` weight (``kaiming_init_``), which the families here repeat.
    """

    def __init__(self, dim: int, dim_out: int | None = None) -> None:
        super().__init__()
        dim_out = dim if dim_out is None else dim_out
        conv = nn.Conv2d(dim, dim_out * 4, 1)
        self.net = nn.Sequential(conv, nn.SiLU(), nn.PixelShuffle(2))
        if not conv.weight.is_meta:
            with torch.no_grad():
                w = torch.empty(dim_out, dim, 1, 1)
                nn.init.kaiming_uniform_(w)
                conv.weight.copy_(w.repeat_interleave(4, dim=0))
                conv.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def sp_conv_downsample(dim: int, dim_out: int) -> nn.Sequential:
    """SP-conv: pixel-unshuffle by 2 (channel order c, row, col, as einops' rearrange) + 1×1 conv."""
    return nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(dim * 4, dim_out, 1))


def residual_down(chan_in: int, chan_out: int, antialias: bool) -> SumBranches:
    """The discriminator's ×½ block: (blur, SP-conv, 3×3 conv) + (blur, avg-pool, 1×1 conv)."""
    return SumBranches(
        [
            nn.Sequential(
                make_blur(antialias),
                sp_conv_downsample(chan_in, chan_out),
                nn.LeakyReLU(0.1),
                nn.Conv2d(chan_out, chan_out, 3, padding=1),
                nn.LeakyReLU(0.1),
            ),
            nn.Sequential(
                make_blur(antialias), nn.AvgPool2d(2), nn.Conv2d(chan_in, chan_out, 1), nn.LeakyReLU(0.1)
            ),
        ]
    )


class SimpleDecoder(nn.Module):
    """Four ×2 stages (pixel-shuffle upsample, 3×3 conv, GLU) halving the channels each time;
    the last outputs ``chan_out`` image channels. 8×8 features → a 128×128 reconstruction."""

    def __init__(self, *, chan_in: int, chan_out: int = 3, num_upsamples: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        chans = chan_in
        for ind in range(num_upsamples):
            out = chan_out * 2 if ind == num_upsamples - 1 else chans
            self.layers.append(
                nn.Sequential(PixelShuffleUpsample(chans), nn.Conv2d(chans, out, 3, padding=1), nn.GLU(dim=1))
            )
            chans //= 2

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


@torch.no_grad()
def kaiming_init_(module: nn.Module) -> None:
    """lightweight-gan's ``_init_weights``: Kaiming-normal (fan-in, gain √2) for every module
    whose type is exactly ``nn.Conv2d`` or ``nn.Linear``; biases, ``ConvTranspose2d`` and
    BatchNorm keep PyTorch's defaults. Meta tensors (layout checks) are skipped."""
    for m in module.modules():
        if type(m) in (nn.Conv2d, nn.Linear) and not m.weight.is_meta:
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in", nonlinearity="leaky_relu")

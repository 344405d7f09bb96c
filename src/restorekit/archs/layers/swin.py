"""Swin Transformer pieces (Liu et al., 2021) in the key layout of SwinIR's releases.

Window attention splits the token grid into ``ws × ws`` windows and attends within each, adding a
learned bias indexed by the relative position of the two tokens. Every second block shifts the
grid by ``ws // 2`` (a cyclic roll) so information crosses window borders; windows that wrap
around the image edge then hold tokens that are not neighbours, which an additive mask (-100)
keeps apart.

Two attention paths compute the same thing:

* ``fused`` (default): ``F.scaled_dot_product_attention`` with the bias (+ mask) as its float
  ``attn_mask``. That is exact, not an approximation: SDPA computes
  ``softmax(q·kᵀ·scale + attn_mask)·v``, the formula below. Its fused kernels never materialise
  the logits in low precision and accumulate the softmax in fp32.
* plain: the official formula written out (``softmax(q·scale·kᵀ + bias + mask)·v``) with the
  logits and the softmax in fp32 even under fp16/bf16 autocast, kept as the reference the tests
  and ``benchmarks/swinir.py`` compare against.

Buffers: ``relative_position_index`` (every block) and ``attn_mask`` (shifted blocks) are
*persistent*, as in both the official SwinIR code and BasicSR's copy, because the released
checkpoints contain them and must load with ``strict=True``. They are derived data, so a file
without them loads too (``_load_from_state_dict`` drops them from the missing keys).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MASK_VALUE = -100.0  # the official value; exp(-100) is 0 in fp32 and it is finite in fp16


def window_partition(x: Tensor, ws: int) -> Tensor:
    """``(B, H, W, C)`` → ``(B·nW, ws·ws, C)``, windows in row-major order (the official order)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: Tensor, ws: int, h: int, w: int) -> Tensor:
    """Inverse of ``window_partition``: ``(B·nW, ws·ws, C)`` → ``(B, H, W, C)``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def _on_default_device(cpu_tensor: Tensor) -> Tensor:
    """Move a buffer computed on the CPU to the device models are being built on.

    Buffers are computed on the CPU on purpose: under ``torch.device("meta")`` (how ``detect``
    checks layouts) indexing and ``masked_fill`` go through Python decompositions whose first use
    imports for seconds.
    """
    return cpu_tensor.to(torch.get_default_device())


def relative_position_index(ws: int, device: Any = "cpu") -> Tensor:
    """``[ws², ws²]`` index into the ``(2ws-1)²``-row bias table for every token pair of a window.

    Pair (i, j) with offsets ``(dy, dx) = pos_i - pos_j`` maps to ``(dy + ws-1)·(2ws-1) + dx + ws-1``,
    the official numbering (int64, like the buffer in the checkpoints).
    """
    ar = torch.arange(ws, device=device)
    coords = torch.stack(torch.meshgrid(ar, ar, indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]) + (ws - 1)
    return rel[0] * (2 * ws - 1) + rel[1]


def shifted_window_mask(h: int, w: int, ws: int, shift: int, device: Any = "cpu") -> Tensor:
    """``[nW, ws², ws²]`` additive mask (0 or -100) for a grid of ``h × w`` tokens rolled by ``shift``.

    After the roll, the last ``shift`` rows/columns come from the opposite edge; tokens of
    different regions (three bands per axis) must not attend to each other.
    """
    region = torch.zeros(1, h, w, 1, device=device)
    bands = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, hs in enumerate(bands):
        for j, wsl in enumerate(bands):
            region[:, hs, wsl, :] = 3 * i + j
    ids = window_partition(region, ws).squeeze(-1)  # nW, ws²
    diff = ids[:, None, :] - ids[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, MASK_VALUE)


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch with probability ``p`` in training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        noise = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * noise / keep


class Mlp(nn.Module):
    """Linear → GELU → Linear (keys ``fc1``, ``fc2``); dropout after each as in the original."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class _DerivedBuffers(nn.Module):
    """Loads state dicts with or without the derived (recomputable) buffers named in ``_derived``."""

    _derived: tuple[str, ...] = ()

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args)
        missing_keys = args[2]
        for name in self._derived:
            if prefix + name in missing_keys:
                missing_keys.remove(prefix + name)


class WindowAttention(_DerivedBuffers):
    """Multi-head self-attention within windows, with a relative position bias.

    Keys: ``relative_position_bias_table`` ``[(2ws-1)², heads]``, ``relative_position_index``
    ``[ws², ws²]``, ``qkv`` ``[3·dim, dim]``, ``proj`` ``[dim, dim]``.
    """

    _derived = ("relative_position_index",)

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.fused = True  # F.scaled_dot_product_attention; False: the plain reference formula
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        index = relative_position_index(window_size)  # CPU-built, see _on_default_device
        self.register_buffer("relative_position_index", _on_default_device(index))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        if not self.relative_position_bias_table.is_meta:
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> Tensor:
        """``[heads, ws², ws²]``: the table looked up for every token pair."""
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x``: ``(B·nW, ws², dim)``; ``mask``: ``(nW, ws², ws²)`` for shifted windows, else None."""
        bn, n, c = x.shape
        qkv = self.qkv(x).view(bn, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B·nW, heads, ws², head_dim)
        bias = self.position_bias().unsqueeze(0)  # 1, heads, n, n
        if mask is not None:  # one bias per window, repeated over the batch
            bias = (bias + mask.unsqueeze(1).to(bias.dtype)).repeat(bn // mask.shape[0], 1, 1, 1)
        drop = self.attn_drop if self.training else 0.0
        if self.fused:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias.to(q.dtype), dropout_p=drop, scale=self.scale
            )
        else:
            # fp32 logits and softmax whatever the autocast dtype (exp overflows fp16 otherwise)
            logits = (q * self.scale) @ k.transpose(-2, -1)
            attn = (logits.float() + bias.float()).softmax(dim=-1).to(v.dtype)
            out = F.dropout(attn, drop, training=self.training) @ v
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(bn, n, c)))


class SwinTransformerBlock(_DerivedBuffers):
    """LayerNorm → (shifted) window attention → residual; LayerNorm → MLP → residual.

    ``input_resolution`` (the training patch size in tokens) only fixes the ``attn_mask`` buffer
    of the checkpoints and, as in the original, shrinks the window to the resolution when that
    is not larger than it; other sizes compute their mask on the fly.
    """

    _derived = ("attn_mask",)

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        if min(self.input_resolution) <= window_size:  # the original's rule: one window, no shift
            window_size, shift_size = min(self.input_resolution), 0
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        mask = None
        if shift_size > 0:
            mask = _on_default_device(shifted_window_mask(*self.input_resolution, window_size, shift_size))
        self.register_buffer("attn_mask", mask)

    def mask_for(self, h: int, w: int, device: torch.device) -> Tensor | None:
        if self.shift_size == 0:
            return None
        if (h, w) == self.input_resolution and self.attn_mask is not None:
            return self.attn_mask
        return shifted_window_mask(h, w, self.window_size, self.shift_size, device)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, shift = self.window_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        y = self.attn(window_partition(y, ws), self.mask_for(h, w, x.device))
        y = window_reverse(y, ws, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))

"""Tiled inference: overlapping tiles stream through the device, the canvas stays on the host.

Why tiles: a convolutional network's activation memory grows with the image area (RRDBNet needs
several GiB for a 2000×2000 input), so whole-image inference caps the image size at what the
device holds. Here the input is cut into tiles of at most ``tile`` pixels per side, batches of
tiles go to the device, and their outputs come back to a float32 canvas in host memory, so peak
device memory depends on the tile size and the batch, never on the image size.

Layout (per axis; the grid is the product of the two axes):
* The axis is first padded (reflect) to a multiple of the network's ``size_multiple`` (RRDBNet
  ×2/×1 pixel-unshuffle their input), and every tile starts on a multiple of it, so each tile sees
  the same unshuffle phase as the whole image would.
* ``n`` equal tiles are spread evenly with at least ``overlap`` shared pixels between neighbours,
  each as small as that allows (≤ ``tile``). Equal sizes let tiles be batched; even spreading
  keeps the redundant work near ``overlap / (tile - overlap)`` per axis instead of doubling the
  last row of tiles as "last tile flush with the border" layouts do.

Blend: within each overlap the outer ``margin`` pixels of a tile get weight 0 (they are the pixels
whose receptive field reaches past the tile's edge, i.e. the wrong ones) and the next ``ramp``
pixels a linear ramp; weights are normalised so they sum to one at every output pixel. With
``ramp = overlap // 4`` and ``margin = (overlap - ramp) // 2`` a network whose receptive-field
radius (in input pixels) is at most ``margin`` (12 for the default overlap of 32) gives *exactly*
the whole-image output: every tile that contributes to a pixel computed it from complete context.
For deeper networks the cross-fade hides the small differences that remain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from restorekit.errors import RestorekitError

Forward = Callable[[Tensor], Tensor]
Progress = Callable[[int], object]


@dataclass(frozen=True)
class AxisPlan:
    """Tiles along one axis: all ``size`` long, starting at ``starts``, over ``padded`` pixels."""

    size: int
    starts: tuple[int, ...]
    padded: int


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def plan_axis(length: int, tile: int, overlap: int, multiple: int = 1) -> AxisPlan:
    """Spread equal tiles of at most ``tile`` pixels over an axis of ``length`` pixels.

    ``tile <= 0`` means one tile over the whole (padded) axis. Sizes and starts are multiples of
    ``multiple``; neighbouring tiles share at least ``overlap`` pixels.
    """
    if length < 1:
        raise RestorekitError(f"cannot tile an empty image axis (length {length})")
    m = max(1, int(multiple))
    lq = _ceil_div(length, m)  # lengths below are in units of m
    if tile <= 0:
        return AxisPlan(lq * m, (0,), lq * m)
    tq, oq = max(1, tile // m), _ceil_div(max(0, overlap), m)
    if lq <= tq:
        return AxisPlan(lq * m, (0,), lq * m)
    if oq >= tq:
        raise RestorekitError(
            f"--tile-overlap {overlap} must be smaller than --tile {tile}"
            + (f" (both in steps of {m} pixels for this network)" if m > 1 else "")
        )
    n = _ceil_div(lq - oq, tq - oq)  # fewest tiles that cover the axis with the overlap
    size = _ceil_div(lq + (n - 1) * oq, n)  # the smallest equal size that still does
    starts = tuple((i * (lq - size)) // (n - 1) * m for i in range(n))
    return AxisPlan(size * m, starts, lq * m)


def blend_profile(overlap: int) -> tuple[int, int]:
    """``(margin, ramp)`` in input pixels for a requested overlap (see the module docstring)."""
    ramp = max(0, overlap) // 4
    return (max(0, overlap) - ramp) // 2, ramp


def axis_weights(plan: AxisPlan, scale: int, overlap: int) -> list[Tensor]:
    """Per-tile 1-D output weights along an axis, normalised to sum to one at every pixel."""
    margin, ramp = blend_profile(overlap)
    n = plan.size * scale
    pos = torch.arange(n, dtype=torch.float64) + 0.5  # distance of each output pixel from the edge

    def edge(p: Tensor) -> Tensor:
        if ramp == 0:
            return (p > margin * scale).double()
        return ((p - margin * scale) / (ramp * scale)).clamp(0, 1)

    raw: list[Tensor] = []
    total = torch.zeros(plan.padded * scale, dtype=torch.float64)
    for start in plan.starts:
        w = torch.ones(n, dtype=torch.float64)
        if start > 0:  # an edge inside the image: its pixels lack context
            w = torch.minimum(w, edge(pos))
        if start + plan.size < plan.padded:
            w = torch.minimum(w, edge(pos.flip(0)))
        raw.append(w)
        total[start * scale : start * scale + n] += w
    if bool((total <= 0).any()):  # cannot happen with plan_axis's layout; guards future edits
        raise AssertionError("tile weights leave output pixels uncovered")
    return [(w / total[s * scale : s * scale + n]).float() for w, s in zip(raw, plan.starts, strict=True)]


def pad_to(x: Tensor, height: int, width: int) -> Tensor:
    """Pad a ``(C, H, W)`` tensor at the bottom/right to ``height``×``width``.

    Reflect padding keeps image statistics at the border (what the network saw in training);
    an axis shorter than its padding falls back to edge replication, which reflect cannot do.
    """
    ph, pw = height - x.shape[-2], width - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x[None], (0, pw, 0, ph), mode=mode)[0]


def count_tiles(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """How many tiles ``tiled_forward`` will run for an image of this size."""
    py = plan_axis(height, tile, overlap, multiple)
    px = plan_axis(width, tile, overlap, multiple)
    return len(py.starts) * len(px.starts)


@torch.inference_mode()
def tiled_forward(
    fn: Forward,
    x: Tensor,
    *,
    tile: int = 512,
    overlap: int = 32,
    multiple: int = 1,
    batch: int = 1,
    progress: Progress | None = None,
) -> np.ndarray:
    """Run ``fn`` over a ``(C, H, W)`` host tensor in overlapping tiles; an ``(H·s, W·s, C')`` array.

    ``fn`` takes a float32 host batch ``(N, C, h, w)`` (it moves it to its device and precision)
    and returns ``(N, C', h·s, w·s)`` anywhere; the integer scale ``s`` and ``C'`` are read from
    the first output. The result is float32 HWC in host memory (a view of a CHW canvas, so not
    C-contiguous), not clamped, so it equals the
    whole-image output wherever the network's receptive field fits (see the module docstring).
    ``progress`` is called with the number of tiles finished after each batch.
    """
    if x.dim() != 3:
        raise ValueError(f"tiled_forward expects a (C, H, W) tensor, got shape {tuple(x.shape)}")
    if batch < 1:
        raise RestorekitError(f"--batch must be at least 1, got {batch}")
    _, height, width = x.shape
    py = plan_axis(height, tile, overlap, multiple)
    px = plan_axis(width, tile, overlap, multiple)
    x = pad_to(x.float(), py.padded, px.padded)
    coords = [(iy, ix) for iy in range(len(py.starts)) for ix in range(len(px.starts))]
    canvas: Tensor | None = None  # CHW, so accumulating a tile is a row-contiguous add
    scale = 0
    wy: list[list[tuple[int, int, Tensor]]] = []
    wx: list[list[tuple[int, int, Tensor]]] = []
    for first in range(0, len(coords), batch):
        group = coords[first : first + batch]
        tiles = torch.stack(
            [
                x[:, py.starts[iy] : py.starts[iy] + py.size, px.starts[ix] : px.starts[ix] + px.size]
                for iy, ix in group
            ]
        )
        out = fn(tiles).detach().float().cpu()
        if canvas is None:
            scale = _output_scale(tuple(out.shape), tuple(tiles.shape))
            canvas = torch.zeros(out.shape[1], height * scale, width * scale)
            wy = [_edges(w) for w in axis_weights(py, scale, overlap)]
            wx = [_edges(w) for w in axis_weights(px, scale, overlap)]
        for k, (iy, ix) in enumerate(group):
            y0, x0 = py.starts[iy] * scale, px.starts[ix] * scale
            hh, ww = min(out.shape[2], canvas.shape[1] - y0), min(out.shape[3], canvas.shape[2] - x0)
            tile_out = out[k]
            for lo, hi, w in wy[iy]:  # weights differ from 1 only near inner edges
                tile_out[:, lo:hi].mul_(w[:, None])
            for lo, hi, w in wx[ix]:
                tile_out[:, :, lo:hi].mul_(w)
            canvas[:, y0 : y0 + hh, x0 : x0 + ww] += tile_out[:, :hh, :ww]
        if progress is not None:
            progress(len(group))
    assert canvas is not None
    return canvas.permute(1, 2, 0).numpy()  # an HWC view of the CHW canvas: no copy


def _edges(w: Tensor) -> list[tuple[int, int, Tensor]]:
    """``(lo, hi, w[lo:hi])`` for the leading and trailing runs of ``w`` that are not exactly 1."""
    ones = (w == 1).nonzero()
    if len(ones) == 0:
        return [(0, len(w), w)]
    first, last = int(ones[0]), int(ones[-1]) + 1
    return [(lo, hi, w[lo:hi]) for lo, hi in ((0, first), (last, len(w))) if hi > lo]


def _output_scale(out_shape: tuple[int, ...], in_shape: tuple[int, ...]) -> int:
    """The network's integer upscaling factor, checked on both axes."""
    if len(out_shape) != 4 or out_shape[0] != in_shape[0]:
        raise RestorekitError(
            f"the network returned shape {list(out_shape)} for input {list(in_shape)}; "
            "expected an (N, C, H, W) image batch"
        )
    scale = out_shape[2] // in_shape[2]
    if scale < 1 or out_shape[2] != in_shape[2] * scale or out_shape[3] != in_shape[3] * scale:
        raise RestorekitError(
            f"the network maps {in_shape[2]}×{in_shape[3]} to {out_shape[2]}×{out_shape[3]}, "
            "not an integer upscaling; only such networks can be tiled"
        )
    return scale

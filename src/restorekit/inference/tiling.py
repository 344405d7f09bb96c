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

from collections.abc import Callable, Iterator
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


def tiled_forward(
    fn: Forward,
    x: Tensor,
    *,
    tile: int = 512,
    overlap: int = 32,
    multiple: int = 1,
    batch: int = 1,
    progress: Progress | None = None,
    unit: float | None = None,
) -> np.ndarray:
    """Run ``fn`` over a ``(C, H, W)`` host tensor in overlapping tiles; an ``(H·s, W·s, C')`` array.

    ``fn`` takes a float32 host batch ``(N, C, h, w)`` (it moves it to its device and precision)
    and returns ``(N, C', h·s, w·s)`` anywhere; the integer scale ``s`` and ``C'`` are read from
    the first output. The result is float32 HWC in host memory (a view of a CHW canvas, so not
    C-contiguous), not clamped, so it equals the
    whole-image output wherever the network's receptive field fits (see the module docstring).
    ``progress`` is called with the number of tiles finished after each batch. It is
    ``tiled_bands`` gathered into one canvas, so the two give the same numbers.
    """
    canvas: Tensor | None = None
    bands = tiled_bands(
        fn, x, tile=tile, overlap=overlap, multiple=multiple, batch=batch, progress=progress, unit=unit
    )
    for r0, band in bands:
        if canvas is None:
            out_h = x.shape[1] * (band.shape[1] // x.shape[2])
            if band.shape[0] == out_h:  # one band is the whole output: no second copy
                return band
            canvas = torch.empty(band.shape[2], out_h, band.shape[1])
        canvas[:, r0 : r0 + band.shape[0]] = torch.from_numpy(band).permute(2, 0, 1)
    assert canvas is not None
    return canvas.permute(1, 2, 0).numpy()  # an HWC view of the CHW canvas: no copy


@torch.inference_mode()
def tiled_bands(
    fn: Forward,
    x: Tensor,
    *,
    tile: int = 512,
    overlap: int = 32,
    multiple: int = 1,
    batch: int = 1,
    progress: Progress | None = None,
    unit: float | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """``tiled_forward``'s output as ``(first row, (rows, W·s, C') float32 band)``, top to bottom.

    Why: the output of a large image need never exist whole in host memory when it is written
    as it comes (``restorekit infer`` to PNG). Rows are final once every tile that overlaps them
    has been added, i.e. once a tile row is done, all rows above the next tile row's start; the
    accumulator holds only the rows still open (about one tile row), so host memory is bounded
    by the tile size and the image width, not the height. Tiles are batched, weighted and added
    in the same order as a whole canvas would be, so the numbers are the same to the bit.
    A band is a view into the accumulator: valid until the next one is asked for.

    ``x`` may hold integer samples (uint8/uint16 with ``unit`` 255/65535): each tile is then
    converted on its own (``tile / unit`` in float32, the same division as
    ``data.io.raw_to_float``), so a large input is held at 1-2 bytes per sample, not 4.
    """
    if x.dim() != 3:
        raise ValueError(f"tiled_forward expects a (C, H, W) tensor, got shape {tuple(x.shape)}")
    if batch < 1:
        raise RestorekitError(f"--batch must be at least 1, got {batch}")
    _, height, width = x.shape
    py = plan_axis(height, tile, overlap, multiple)
    px = plan_axis(width, tile, overlap, multiple)
    if x.is_floating_point():
        x = x.float()
    elif unit is None:
        raise ValueError(f"integer samples ({x.dtype}) need their unit (255 or 65535)")
    reflect = py.padded - height < height and px.padded - width < width  # pad_to's rule
    coords = [(iy, ix) for iy in range(len(py.starts)) for ix in range(len(px.starts))]
    acc = torch.zeros(0)  # CHW output rows [acc0, acc0 + len): adding a tile is a row-contiguous add
    acc0 = done = scale = 0  # done: output rows already handed out
    wy: list[list[tuple[int, int, Tensor]]] = []
    wx: list[list[tuple[int, int, Tensor]]] = []
    for first in range(0, len(coords), batch):
        group = coords[first : first + batch]
        tiles = torch.stack([_tile(x, py, px, iy, ix, reflect) for iy, ix in group])
        if not tiles.is_floating_point():
            tiles = tiles.float().div_(unit)
        out = fn(tiles).detach().float().cpu()
        if not scale:
            scale = _output_scale(tuple(out.shape), tuple(tiles.shape))
            acc = torch.zeros(out.shape[1], min(py.size, height) * scale, width * scale)
            wy = [_edges(w) for w in axis_weights(py, scale, overlap)]
            wx = [_edges(w) for w in axis_weights(px, scale, overlap)]
        for k, (iy, ix) in enumerate(group):
            y0, x0 = py.starts[iy] * scale, px.starts[ix] * scale
            hh, ww = min(out.shape[2], height * scale - y0), min(out.shape[3], width * scale - x0)
            acc, acc0 = _window(acc, acc0, done, y0 + hh)
            tile_out = out[k]
            for lo, hi, w in wy[iy]:  # weights differ from 1 only near inner edges
                tile_out[:, lo:hi].mul_(w[:, None])
            for lo, hi, w in wx[ix]:
                tile_out[:, :, lo:hi].mul_(w)
            acc[:, y0 - acc0 : y0 - acc0 + hh, x0 : x0 + ww] += tile_out[:, :hh, :ww]
        if progress is not None:
            progress(len(group))
        rows_done = (first + len(group)) // len(px.starts)  # tile rows with every tile added
        final = height * scale if rows_done == len(py.starts) else py.starts[rows_done] * scale
        if final > done:
            yield done, acc[:, done - acc0 : final - acc0].permute(1, 2, 0).numpy()
            done = final


def _window(acc: Tensor, acc0: int, lo: int, hi: int) -> tuple[Tensor, int]:
    """An accumulator holding output rows ``[lo, hi)``: ``acc`` itself when it does, else its
    open rows moved to the front (in place when they fit, so one buffer serves every tile row)."""
    if acc0 <= lo and hi <= acc0 + acc.shape[1]:
        return acc, acc0
    live = acc[:, lo - acc0 :].clone()  # the rows still open: at most the overlap of two tile rows
    if hi - lo > acc.shape[1]:  # a batch reaching further down than one tile row: grow
        acc = torch.zeros(acc.shape[0], hi - lo, acc.shape[2])
    else:
        acc.zero_()
    acc[:, : live.shape[1]] = live
    return acc, lo


def _tile(x: Tensor, py: AxisPlan, px: AxisPlan, iy: int, ix: int, reflect: bool) -> Tensor:
    """Tile ``(iy, ix)`` of ``x`` padded as ``pad_to`` would pad the whole image, without padding it:
    only tiles that reach past the bottom/right border are gathered (a full-size padded copy of a
    large input is as big as the input)."""
    y0, x0 = py.starts[iy], px.starts[ix]
    _, height, width = x.shape
    if y0 + py.size <= height and x0 + px.size <= width:
        return x[:, y0 : y0 + py.size, x0 : x0 + px.size]
    rows = _source_index(y0, py.size, height, reflect)
    cols = _source_index(x0, px.size, width, reflect)
    return x.index_select(1, rows).index_select(2, cols)


def _source_index(start: int, n: int, length: int, reflect: bool) -> Tensor:
    """Source pixels of padded positions ``start … start + n - 1`` on an axis of ``length``."""
    i = torch.arange(start, start + n)
    if reflect:  # torch's "reflect": the border pixel itself is not repeated
        return torch.where(i < length, i, 2 * (length - 1) - i)
    return i.clamp(max=length - 1)


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

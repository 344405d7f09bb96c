"""RoIAlign (He et al., 2017, Mask R-CNN) in plain PyTorch: ``torchvision.ops.roi_align`` without torchvision.

GFPGAN crops eyes (80×80) and mouths (120×120) out of its output and ground truth with
``torchvision.ops.roi_align(img, boxes, output_size)`` for its facial-component losses.
torchvision does not import here, so this is the same operator, written from the definition in
torchvision's CPU kernel (``csrc/ops/cpu/roi_align_kernel.cpp``, ``roi_align_common.h``):

* a box ``[b, x1, y1, x2, y2]`` is scaled by ``spatial_scale`` (minus 0.5 when ``aligned``);
  without ``aligned`` its width and height are clamped to at least 1 (malformed boxes are 1×1);
* it is cut into ``PH × PW`` bins; each bin averages a ``gh × gw`` grid of samples, ``gh =
  sampling_ratio`` or, adaptively, ``ceil(roi_h / PH)`` (per box);
* sample ``(iy, ix)`` of bin ``(ph, pw)`` lies at ``y = y1 + ph·bin_h + (iy + 0.5)·bin_h / gh``
  (``x`` alike) and is read bilinearly: a sample with ``y < -1``, ``y > H``, ``x < -1`` or ``x >
  W`` is 0; otherwise ``y`` is clamped to ``>= 0``, and at ``y >= H - 1`` both taps are row
  ``H - 1``; likewise ``x``;
* the average divides by ``max(gh·gw, 1)`` — samples outside the image count as zeros.

Those rules make the bilinear weights *separable*: every sample's weight is a row weight times
a column weight, and the "outside" test is a row test and a column test. So each box needs only
its ``PH·gh`` sample rows (two taps each) and ``PW·gw`` sample columns: one batched gather of
``input[b, rows, cols]`` and one ``einsum`` give every bin, for all boxes at once, with no
Python loop over boxes or pixels. Gradients reach ``input`` through the gather (autograd's
indexing backward, an accumulating scatter); boxes get none, as in torchvision.

Adaptive sampling gives each box its own grid; the gather is padded to the largest one and the
unused samples are masked, so ``gh``'s maximum is read on the host once per call (one device
sync; with ``sampling_ratio > 0`` the sync only checks the batch indices). Memory is about
``K · C · (2·PH·gh) · (2·PW·gw)`` elements — under 4·(box side + bins)² per channel and box,
small for face components, not meant for detection heads with thousands of boxes.

Positions are computed in the input's precision and in the kernel's order of operations, as
the kernel does with its ``T``: float32 positions are ~3e-5 px off at x ≈ 500, which moves a
crop of a noisy image by more than 1e-5, so matching torchvision means matching that rounding
(the tests compare with a float32 transcription to ~2e-7). Half inputs use float32 positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from restorekit.errors import DataError

__all__ = ["boxes_to_rois", "roi_align"]


def boxes_to_rois(boxes: Tensor | Sequence[Tensor], where: str = "boxes") -> Tensor:
    """``(K, 5)`` rois ``[batch_index, x1, y1, x2, y2]`` from either accepted form.

    A tensor must already be ``(K, 5)`` (GFPGAN's form); a list holds one ``(Ki, 4)`` tensor
    per image, whose position in the list is the batch index (torchvision's other form).
    """
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise DataError(f"{where}: expected a (K, 5) tensor [batch_index, x1, y1, x2, y2], "
                            f"got shape {list(boxes.shape)}")
        return boxes
    if not isinstance(boxes, (list, tuple)) or not all(isinstance(b, Tensor) for b in boxes):
        raise DataError(f"{where}: expected a (K, 5) tensor or a list of (Ki, 4) tensors, "
                        f"got {type(boxes).__name__}")
    if not boxes:
        raise DataError(f"{where}: the list of per-image boxes is empty")
    for i, b in enumerate(boxes):
        if b.dim() != 2 or b.shape[1] != 4:
            raise DataError(f"{where}[{i}]: expected a (K, 4) tensor [x1, y1, x2, y2], "
                            f"got shape {list(b.shape)}")
    flat = torch.cat(list(boxes), dim=0)
    index = torch.cat([torch.full((len(b), 1), i, dtype=flat.dtype, device=flat.device)
                       for i, b in enumerate(boxes)])
    return torch.cat([index, flat], dim=1)


def _axis_taps(
    start: Tensor, bin_size: Tensor, grid: Tensor, pooled: int, max_grid: int, size: int
) -> tuple[Tensor, Tensor]:
    """Along one axis: the two tap indices and weights of every sample, ``(K, pooled, 2·max_grid)``.

    ``start``/``bin_size``/``grid`` are per box ``(K,)``. Weights already hold the "sample
    exists" mask (``i < grid``) and this axis's "inside ``[-1, size]``" test, so a sample's
    bilinear weight is the product of its row and column weights, as in the kernel.
    """
    dtype = start.dtype
    p = torch.arange(pooled, device=start.device, dtype=dtype).view(1, -1, 1)
    i = torch.arange(max_grid, device=start.device).view(1, 1, -1)
    g = grid.view(-1, 1, 1)
    b = bin_size.view(-1, 1, 1)
    # the kernel's order of operations, in the kernel's precision
    pos = start.view(-1, 1, 1) + p * b + (i.to(dtype) + 0.5) * b / g.to(dtype)
    used = (i < g) & (pos >= -1.0) & (pos <= size)  # False for NaN (an empty grid divides by 0)
    pos = torch.where(used, pos, 0.0).clamp(min=0)
    low = pos.floor().long()
    edge = low >= size - 1
    low = torch.where(edge, torch.full_like(low, size - 1), low)
    high = torch.where(edge, low, low + 1)
    pos = torch.where(edge, low.to(dtype), pos)
    frac = pos - low.to(dtype)
    weights = torch.stack([1.0 - frac, frac], dim=-1) * used.unsqueeze(-1).to(dtype)
    taps = torch.stack([low, high], dim=-1)
    shape = (*pos.shape[:2], 2 * max_grid)
    return taps.reshape(shape), weights.reshape(shape)


def roi_align(
    input: Tensor,  # torchvision's argument names, so keyword calls port unchanged
    boxes: Tensor | Sequence[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """``torchvision.ops.roi_align``: ``(K, C, PH, PW)`` average-pooled bins of the boxes.

    Args:
        input: ``(N, C, H, W)`` feature map (any float dtype and device).
        boxes: ``(K, 5)`` ``[batch_index, x1, y1, x2, y2]`` or a list of ``(Ki, 4)`` per image,
            in input coordinates divided by ``spatial_scale``.
        output_size: ``PH`` (square) or ``(PH, PW)``.
        spatial_scale: multiplies the box coordinates (0.25 for boxes on a 4× larger image).
        sampling_ratio: samples per bin side; ``<= 0``: adaptive, ``ceil(box side / bins)``.
        aligned: shift boxes by -0.5 px (Detectron2's convention); GFPGAN uses ``False``.
    """
    if input.dim() != 4:
        raise DataError(f"roi_align input: expected (N, C, H, W), got shape {list(input.shape)}")
    rois = boxes_to_rois(boxes).detach()
    ph, pw = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if ph < 1 or pw < 1:
        raise DataError(f"roi_align output_size: expected positive sides, got {output_size!r}")
    n, c, height, width = input.shape
    k = rois.shape[0]
    # half-precision inputs are sampled with float32 coordinates (torchvision autocasts to float)
    cdtype = input.dtype if input.dtype in (torch.float32, torch.float64) else torch.float32
    rois = rois.to(device=input.device, dtype=cdtype)
    if k == 0:
        return input.new_zeros(k, c, ph, pw)

    batch = rois[:, 0].long()  # the kernel's int cast: truncation
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, j] * spatial_scale - offset for j in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # malformed boxes are forced to 1×1
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    if sampling_ratio > 0:
        grid_h = torch.full_like(batch, sampling_ratio)
        grid_w = grid_h
    else:
        grid_h, grid_w = torch.ceil(roi_h / ph).long(), torch.ceil(roi_w / pw).long()
    # one host read: the padded grid and the batch-index range (a wrong index is a one-line error)
    gh_max, gw_max, b_min, b_max = torch.stack(
        [grid_h.max(), grid_w.max(), batch.min(), batch.max()]
    ).tolist()
    if b_min < 0 or b_max >= n:
        raise DataError(f"roi_align boxes: batch index {b_min if b_min < 0 else b_max} is outside "
                        f"the input's batch of {n}")
    gh_max, gw_max = max(int(gh_max), 1), max(int(gw_max), 1)

    rows, wy = _axis_taps(y1, bin_h, grid_h, ph, gh_max, height)  # (K, PH, 2gh)
    cols, wx = _axis_taps(x1, bin_w, grid_w, pw, gw_max, width)  # (K, PW, 2gw)
    count = (grid_h * grid_w).clamp(min=1).to(cdtype)
    wy = wy / count.view(-1, 1, 1)  # the average, folded into the row weights

    nhwc = input.permute(0, 2, 3, 1)  # a gather of (row, col) pairs brings whole channel vectors
    vals = nhwc[batch.view(k, 1, 1), rows.reshape(k, -1, 1), cols.reshape(k, 1, -1)]
    vals = vals.view(k, ph, 2 * gh_max, pw, 2 * gw_max, c)
    out = torch.einsum("kpa,kqb,kpaqbc->kcpq", wy.to(input.dtype), wx.to(input.dtype), vals)
    return out.contiguous()

"""The pieces of GFPGAN's objective that are not stand-alone losses (``GFPGANModel``'s helpers).

Each is a pure function of tensors so the face task's step reads like GFPGAN's
``optimize_parameters`` and each piece is tested on its own:

* :func:`image_pyramid` — the bilinear GT pyramid the intermediate RGBs are compared with;
* :func:`component_rois` / :func:`crop_components` — eye and mouth crops by ``roi_align``
  (torchvision's ``aligned=False`` convention), the same boxes for output and GT;
* :func:`component_style_loss` — L1 between Gram matrices of a component D's two feature depths
  (weights 0.5 and 1), the GT side detached;
* :func:`gray_for_identity` — GFPGAN's luminance gray, resized to ArcFace's 128² input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from restorekit.archs.layers.roi_align import roi_align
from restorekit.losses.perceptual import gram_matrix

#: GFPGAN's luminance weights in ``gray_resize_for_identity`` (ITU-R 601, rounded as there)
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


def image_pyramid(gt: Tensor, levels: int) -> list[Tensor]:
    """``levels`` images, coarsest first, ending with ``gt``: each halves the next (bilinear,
    align_corners False), as ``GFPGANModel.construct_img_pyramid``."""
    pyramid = [gt]
    down = gt
    for _ in range(levels - 1):
        down = F.interpolate(down, scale_factor=0.5, mode="bilinear", align_corners=False)
        pyramid.insert(0, down)
    return pyramid


def pyramid_losses(
    rgbs: Sequence[Tensor], gt: Tensor, l1: Callable[[Tensor, Tensor], Tensor], weight: float
) -> dict[int, Tensor]:
    """``{side: weight · l1(rgb, gt at that side)}`` for every intermediate RGB of the decoder."""
    pyramid = image_pyramid(gt, len(rgbs))
    return {int(rgb.shape[-1]): l1(rgb.float(), target) * weight for rgb, target in zip(rgbs, pyramid)}


def component_rois(left_eye: Tensor, right_eye: Tensor, mouth: Tensor) -> tuple[Tensor, Tensor]:
    """(eye rois (2B, 5): left, right per image in turn; mouth rois (B, 5)) as ``[b, x1, y1, x2, y2]``."""
    b = left_eye.shape[0]
    idx = torch.arange(b, dtype=left_eye.dtype, device=left_eye.device)[:, None]
    eyes = torch.stack([torch.cat([idx, left_eye], 1), torch.cat([idx, right_eye], 1)], 1).reshape(2 * b, 5)
    mouths = torch.cat([idx, mouth], 1)
    return eyes, mouths


def component_sizes(out_size: int, eye_size: int = 80, mouth_size: int = 120) -> tuple[int, int, float]:
    """(eye side, mouth side, value factor) for faces of ``out_size``.

    GFPGAN scales the 80/120 crops by ``int(out_size / 512)`` and multiplies the crops' values
    by it as well — which is 0 below 512 px. Here sides scale by ``out_size / 512`` (at least 8)
    so small toy faces keep their components; the value factor is GFPGAN's for >= 512 and 1
    below, where GFPGAN's would erase the crops.
    """
    ratio = out_size / 512
    factor = float(int(ratio)) if ratio >= 1 else 1.0
    return max(8, round(eye_size * ratio)), max(8, round(mouth_size * ratio)), factor


def crop_components(
    img: Tensor, eyes: Tensor, mouths: Tensor, eye_side: int, mouth_side: int, factor: float = 1.0
) -> dict[str, Tensor]:
    """``{"left_eye", "right_eye", "mouth"}`` crops of ``img`` (float32) by the rois."""
    rois_e = eyes.to(device=img.device, dtype=torch.float32)
    rois_m = mouths.to(device=img.device, dtype=torch.float32)
    x = img.float()
    both = roi_align(x, rois_e, eye_side) * factor
    return {
        "left_eye": both[0::2],
        "right_eye": both[1::2],
        "mouth": roi_align(x, rois_m, mouth_side) * factor,
    }


def component_style_loss(
    fake_feats: Sequence[Tensor], real_feats: Sequence[Tensor], l1: Callable[[Tensor, Tensor], Tensor]
) -> Tensor:
    """GFPGAN's ``_comp_style``: 0.5 · L1(Gram(f0), Gram(r0)) + L1(Gram(f1), Gram(r1)), reals detached."""
    f0, f1 = (f.float() for f in fake_feats[:2])
    r0, r1 = (r.detach().float() for r in real_feats[:2])
    return l1(gram_matrix(f0), gram_matrix(r0)) * 0.5 + l1(gram_matrix(f1), gram_matrix(r1))


def gray_for_identity(img: Tensor, size: int = 128) -> Tensor:
    """(N, 1, size, size) luminance of an RGB batch, bilinear-resized (GFPGAN's identity input)."""
    r, g, b = GRAY_WEIGHTS
    gray = (r * img[:, 0] + g * img[:, 1] + b * img[:, 2]).unsqueeze(1)
    return F.interpolate(gray, (size, size), mode="bilinear", align_corners=False)

"""ParseNet (from PSFRGAN, Chen et al., 2021): the face-parsing network behind GFPGAN's paste-back mask.

Layout and keys follow facexlib's ``parsing/parsenet.py`` as ``init_parsing_model('parsenet')``
builds it (``ParseNet(in_size=512, out_size=512, parsing_ch=19)``), so ``parsing_parsenet.pth``
loads with ``strict=True`` (facexlib loads it with no prefix handling)::

    encoder.0.conv2d                          3 → 64, 3×3, bias (no norm, no activation)
    encoder.<1..4>  ResidualBlock 'down'      64→128→256→256→256 (channels clipped to [32, 256])
    body.<0..9>     ResidualBlock             256 → 256 at in_size/16
    decoder.<0..3>  ResidualBlock 'up'        256→256→256→128→64
    out_img_conv.conv2d, out_mask_conv.conv2d 3×3 with bias → 3 and 19 channels

A ResidualBlock is ``conv1`` (conv → BN → LeakyReLU 0.2) and ``conv2`` (conv → BN) at
``<name>.conv2d`` / ``<name>.norm.norm``, plus ``shortcut_func.conv2d`` (3×3 with bias, no
norm) when it changes size or width. Every conv reflect-pads by 1; 'down' strides its first
conv (and the shortcut) by 2, 'up' doubles (nearest) before its first conv.

``face_mask`` is the mask ``FaceRestoreHelper.paste_faces_to_input_image`` builds with
``use_parse=True``, step for step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.errors import DataError, WeightsError
from restorekit.weights import check_finite, load_into, read_state_dict

WEIGHT_FILE = "parsing_parsenet.pth"
NUM_CLASSES = 19
# The 19 classes are CelebAMask-HQ's as PSFRGAN orders them; facexlib's MASK_COLORMAP keeps the
# face (skin, brows, eyes, glasses, ears, earring, nose, mouth, lips, necklace) and zeroes
# background 0, neck 14, cloth 16, hair 17 and hat 18.
MASK_OUT_CLASSES: tuple[int, ...] = (0, 14, 16, 17, 18)
BLUR_KSIZE, BLUR_SIGMA, BORDER = 101, 11, 10  # the helper's GaussianBlur((101, 101), 11) ×2, thres 10
Scale = Literal["none", "down", "up"]


class ConvLayer(nn.Module):
    """(nearest ×2 if 'up') → reflect pad → conv (stride 2 if 'down') → optional BN → optional LeakyReLU."""

    def __init__(
        self, cin: int, cout: int, scale: Scale = "none", norm: bool = False, act: bool = False, k: int = 3
    ) -> None:
        super().__init__()
        self.up = scale == "up"
        self.pad = math.ceil((k - 1) / 2)
        self.conv2d = nn.Conv2d(cin, cout, k, 2 if scale == "down" else 1, bias=not norm)
        # facexlib's NormLayer wraps the BN as ``norm.norm``; its 'none' norm and activation hold no tensors
        self.norm = nn.Module()
        if norm:
            self.norm.norm = nn.BatchNorm2d(cout)
        self.act = nn.LeakyReLU(0.2, inplace=True) if act else None

    def forward(self, x: Tensor) -> Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv2d(F.pad(x, [self.pad] * 4, mode="reflect") if self.pad else x)
        if hasattr(self.norm, "norm"):
            x = self.norm.norm(x)
        return self.act(x) if self.act is not None else x


class ResidualBlock(nn.Module):
    """``shortcut(x) + conv2(conv1(x))``; the shortcut is a plain 3×3 conv when the shape changes."""

    def __init__(self, cin: int, cout: int, scale: Scale = "none") -> None:
        super().__init__()
        self.shortcut_func = None if scale == "none" and cin == cout else ConvLayer(cin, cout, scale)
        self.conv1 = ConvLayer(cin, cout, "up" if scale == "up" else "none", norm=True, act=True)
        self.conv2 = ConvLayer(cout, cout, "down" if scale == "down" else "none", norm=True)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.shortcut_func is None else self.shortcut_func(x)
        return identity + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    """facexlib's ParseNet (BN + LeakyReLU 0.2 configuration, the only one released)."""

    def __init__(
        self,
        in_size: int = 512,
        out_size: int = 512,
        min_feat_size: int = 32,
        base_ch: int = 64,
        parsing_ch: int = NUM_CLASSES,
        res_depth: int = 10,
        ch_range: tuple[int, int] = (32, 256),
    ) -> None:
        super().__init__()
        lo, hi = ch_range

        def clip(c: int) -> int:
            return max(lo, min(c, hi))

        min_feat_size = min(in_size, min_feat_size)
        down = int(np.log2(in_size // min_feat_size))
        up = int(np.log2(out_size // min_feat_size))
        encoder: list[nn.Module] = [ConvLayer(3, base_ch)]
        ch = base_ch
        for _ in range(down):
            encoder.append(ResidualBlock(clip(ch), clip(ch * 2), "down"))
            ch *= 2
        self.encoder = nn.Sequential(*encoder)
        self.body = nn.Sequential(*[ResidualBlock(clip(ch), clip(ch)) for _ in range(res_depth)])
        decoder: list[nn.Module] = []
        for _ in range(up):
            decoder.append(ResidualBlock(clip(ch), clip(ch // 2), "up"))
            ch //= 2
        self.decoder = nn.Sequential(*decoder)
        self.out_img_conv = ConvLayer(clip(ch), 3)
        self.out_mask_conv = ConvLayer(clip(ch), parsing_ch)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(parsing logits [N,19,H,W], image [N,3,H,W])`` for RGB ``x`` in [-1, 1]."""
        feat = self.encoder(x)
        x = self.decoder(feat + self.body(feat))
        return self.out_mask_conv(x), self.out_img_conv(x)

    @torch.no_grad()
    def parse(self, face_rgb: np.ndarray) -> np.ndarray:
        """Class index per pixel ``[512, 512]`` (int64) of an RGB uint8 face, the helper's input path.

        The face is resized to 512 (bilinear), scaled to [0, 1] and normalised with mean = std
        = 0.5 to [-1, 1], as ``paste_faces_to_input_image`` prepares it.
        """
        face = _check_face(face_rgb)
        face = cv2.resize(face, (512, 512), interpolation=cv2.INTER_LINEAR)
        param = next(self.parameters())
        x = torch.from_numpy(face.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
        x = ((x - 0.5) / 0.5).to(param.device, param.dtype)
        was_training = self.training
        self.eval()
        try:
            logits = self(x)[0]
        finally:
            self.train(was_training)
        return logits.argmax(dim=1)[0].cpu().numpy()

    def face_mask(self, face_rgb: np.ndarray) -> np.ndarray:
        """The soft paste-back mask (float64 in [0, 1], the face's H×W) of a restored RGB face."""
        h, w = _check_face(face_rgb).shape[:2]
        return soften_mask(classes_to_mask(self.parse(face_rgb)), (w, h))


def _check_face(face: np.ndarray) -> np.ndarray:
    if not isinstance(face, np.ndarray) or face.ndim != 3 or face.shape[2] != 3 or face.size == 0:
        what = f"shape {face.shape}" if isinstance(face, np.ndarray) else type(face).__name__
        raise DataError(f"face parsing input: expected an H×W×3 RGB face, got {what}")
    if face.dtype != np.uint8:
        raise DataError(f"face parsing input: expected uint8 (0–255), got {face.dtype}")
    return face


def classes_to_mask(classes: np.ndarray) -> np.ndarray:
    """255 where the class is part of the face, 0 for background/neck/cloth/hair/hat (float64)."""
    if classes.ndim != 2:
        raise ValueError(f"parsing map: expected H×W class indices, got shape {classes.shape}")
    return np.where(np.isin(classes, MASK_OUT_CLASSES), 0.0, 255.0)


def soften_mask(mask: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """The helper's steps on a 0/255 float64 mask: blur (101, σ 11) twice, zero a 10 px border, /255.

    ``size`` (w, h) resizes the result (bilinear) to the face's size; facexlib passes
    ``shape[:2]`` there, which is (h, w) and only right for square faces, as GFPGAN's are.
    """
    mask = cv2.GaussianBlur(mask, (BLUR_KSIZE, BLUR_KSIZE), BLUR_SIGMA)
    mask = cv2.GaussianBlur(mask, (BLUR_KSIZE, BLUR_KSIZE), BLUR_SIGMA)
    mask[:BORDER, :] = 0
    mask[-BORDER:, :] = 0
    mask[:, :BORDER] = 0
    mask[:, -BORDER:] = 0
    mask = mask / 255.0
    if size is not None and size != (mask.shape[1], mask.shape[0]):
        mask = cv2.resize(mask, size)
    return mask


def load_parsenet(path: str | Path) -> ParseNet:
    """ParseNet from facexlib's ``parsing_parsenet.pth``, strictly loaded, in eval mode."""
    p = Path(path).expanduser()
    if not p.is_file():
        kind = "is a folder, not a file" if p.is_dir() else "does not exist"
        raise WeightsError(
            f"ParseNet weights {p} {kind}: pass --parse-weights PATH to {WEIGHT_FILE} "
            "(restorekit never downloads)"
        )
    sd, _ = read_state_dict(p)
    check_finite(sd, p)
    model = ParseNet()
    load_into(model, sd, "strict", p)
    return model.eval()

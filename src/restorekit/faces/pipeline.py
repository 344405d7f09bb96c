"""``restorekit.load_face_restorer``: detect, align, restore, colour-fix, blend and paste back faces.

One photo goes through GFPGAN's steps (``GFPGANer.enhance`` + facexlib's ``FaceRestoreHelper``):

1. the background: the photo upscaled (``restore.Background``: an SR model, tiled, or Lanczos);
2. detection on an 8-bit RGB copy (``load_detector``; 16-bit and float photos are detected on
   their 8-bit rendering, which is all the detectors were trained on), optionally smoothed by
   the caller's ``landmark_filter`` (video);
3. alignment of every face to the FFHQ template at ``face_size`` (the network's input side), in
   the photo's own sample type, the gray border scaled to it;
4. restoration of all faces **in batches** (``restore.FaceNet``); a failed face keeps its input
   crop, is counted in ``failed``, and leaves the background in its place;
5. the colour fix (mean Lab of the restored crop moved onto the input crop's, ``blend``), then the
   fidelity blend in linear light (f = 0 restored, f = 1 input crop, both exact);
6. paste-back through GFPGAN's inverse affine with a soft mask (eroded, feathered square, or
   ParseNet's face mask with ``parse_weights``), blended in linear light on the face's box only:
   pixels outside the mask are the background upscale bit for bit, alpha is the background's.

Images are numpy RGB: HW / HWC with 1-4 channels, uint8, uint16 or float32 in [0, 1]; the output
has the input's sample type and channels. A gray photo (HW, HW×1, or gray + alpha) is restored as
RGB (three equal channels: the networks are colour networks) and returned as BT.601 luma in its
own layout; ``cropped`` and ``restored`` faces are always RGB.

``aligned=True``: the input *is* an aligned ``face_size``² face: no detection and no paste; the
output is the restored face upscaled by the background path (so ``bg_weights`` still applies),
and with ``upscale=1`` and ``fidelity=1`` it is the input, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restorekit.errors import ConfigError, DataError
from restorekit.faces.align import align_face, face_template, inverse_affine, square_paste_mask, warp_back
from restorekit.faces.blend import (
    check_samples,
    face_roi,
    fidelity_blend,
    from_float,
    match_mean_color,
    paste_face_into,
    sample_unit,
    shifted,
    to_float,
    to_uint8,
)
from restorekit.faces.restore import Background, FaceNet
from restorekit.faces.types import Face

__all__ = ["FaceRecord", "FaceRestorer", "FaceResult", "load_face_restorer"]

LUMA = (0.299, 0.587, 0.114)
BORDER_GRAY = (135, 133, 132)  # facexlib's border, in 8-bit units


@dataclass
class FaceRecord:
    """One face: box (x1, y1, x2, y2), score and 5 landmarks in the *input* photo's pixels.

    ``restored`` is False for a face the network failed on (its input crop was kept).
    """

    box: list[float]
    score: float
    landmarks: list[list[float]]
    restored: bool


@dataclass
class FaceResult:
    """What ``FaceRestorer.process`` gives: the output and every face's crops.

    ``image``: same sample type and channels as the input, ``upscale`` times its size.
    ``cropped``: the aligned input crops (``face_size``², the input's sample type, RGB).
    ``restored``: the restored crops after colour fix and fidelity (same type), one per face.
    """

    image: np.ndarray
    faces: list[FaceRecord] = field(default_factory=list)
    cropped: list[np.ndarray] = field(default_factory=list)
    restored: list[np.ndarray] = field(default_factory=list)
    failed: int = 0


def as_rgb(img: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(RGB or RGBA HWC, was_gray)``; gray (HW, HW×1) and gray + alpha become three equal channels."""
    if img.dtype.kind == "f" and img.dtype != np.float32:
        img = img.astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, None]
    c = img.shape[2]
    if c == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2)), True
    if c == 2:
        return np.ascontiguousarray(img[..., [0, 0, 0, 1]]), True
    return img, False


def back_to_layout(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """An RGB(A) result in the layout of the input ``like``: gray ones get BT.601 luma (float64 sums)."""
    if like.ndim == 3 and like.shape[2] in (3, 4):
        return out
    f = out[..., :3].astype(np.float64)
    unit = sample_unit(out.dtype)
    gray = f[..., 0] * LUMA[0] + f[..., 1] * LUMA[1] + f[..., 2] * LUMA[2]
    if unit is None:
        gray = gray.astype(np.float32)
    else:
        gray = np.clip(np.round(gray), 0, unit).astype(out.dtype)
    if like.ndim == 2:
        return gray
    if like.shape[2] == 1:
        return gray[:, :, None]
    return np.stack([gray, out[..., 3]], axis=2)


def default_batch(batch: int | None, device: torch.device) -> int:
    """``batch`` checked, or the default: 4 faces per forward on a GPU, 1 on the CPU.

    On the CPU a batch of 512² faces is slower than the same faces one at a time: 0.64× for
    GFPGANv1Clean (narrow 0.5, 2 threads; ``benchmarks/faces.py``), because four faces'
    activations outgrow the caches and the convolutions and element-wise ops run from memory.
    """
    if batch is None:
        return 1 if device.type == "cpu" else 4
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"--batch {batch!r}: expected a whole number of faces >= 1")
    return batch


class FaceRestorer:
    """A loaded face pipeline; ``process(image)`` does the work, ``restorer(image)`` gives the image."""

    def __init__(
        self,
        net: FaceNet,
        background: Background,
        detector: Any = None,
        *,
        aligned: bool = False,
        fidelity: float = 0.0,
        color_fix: bool = True,
        parsenet: Any = None,
        batch: int | None = None,
    ) -> None:
        if not (isinstance(fidelity, int | float) and 0 <= fidelity <= 1):
            raise ConfigError(f"--fidelity {fidelity!r}: expected a number in [0, 1] (0 restored, 1 input)")
        batch = default_batch(batch, net.device)
        self.net, self.background, self.detector = net, background, detector
        self.face_size: int = net.face_size
        self.upscale: float = background.upscale
        self.aligned, self.fidelity, self.color_fix = aligned, float(fidelity), color_fix
        self.parsenet, self.batch = parsenet, batch
        self.notes: list[str] = []

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.process(image).image

    # ------------------------------------------------------------------ steps
    def _finish(self, restored: list[np.ndarray | None], crops: list[np.ndarray]) -> list[np.ndarray | None]:
        """Colour fix (before fidelity, so f = 1 stays exact) and fidelity, as float RGB in [0, 1]."""
        out: list[np.ndarray | None] = []
        for face, crop in zip(restored, crops, strict=True):
            if face is None:
                out.append(None)
                continue
            if self.color_fix:
                face = match_mean_color(face, crop)
            out.append(fidelity_blend(face, crop, self.fidelity))
        return out

    def _restore_crops(self, crops: list[np.ndarray]) -> tuple[list[np.ndarray | None], list[np.ndarray]]:
        """``(float faces or None, faces in the crops' sample type)``; f = 1 gives the crops themselves."""
        floats = [to_float(c) for c in crops]
        if self.fidelity >= 1:  # the input face, exactly: no need to run the network
            return list(floats), [c.copy() for c in crops]
        done = self._finish(self.net.restore(floats, self.batch), floats)
        typed = [c.copy() if f is None else from_float(f, c.dtype) for f, c in zip(done, crops, strict=True)]
        return done, typed

    def _mask(
        self, face: np.ndarray, inverse: np.ndarray, size: tuple[int, int], edges: tuple[bool, ...]
    ) -> np.ndarray:
        """The soft paste mask on a region of ``size`` = (w, h): ParseNet's, or the feathered square;
        ``edges`` are the region's sides on the photo's border (no gray padding pasted there)."""
        if self.parsenet is not None:
            soft = self.parsenet.face_mask(from_float(face, np.dtype(np.uint8)))
            return np.clip(warp_back(soft.astype(np.float32), inverse, size), 0.0, 1.0)
        return square_paste_mask(face.shape[:2], inverse, size, max(self.upscale, 1.0), edges)  # type: ignore[arg-type]

    def _check_aligned(self, rgb: np.ndarray) -> None:
        s = self.face_size
        if rgb.shape[:2] != (s, s):
            raise DataError(
                f"--aligned input: expected an aligned {s}×{s} face (the network's size), "
                f"got {rgb.shape[1]}×{rgb.shape[0]}"
            )

    # ------------------------------------------------------------------ one photo
    def process(
        self, image: np.ndarray, landmark_filter: Callable[[list[Face]], list[Face]] | None = None
    ) -> FaceResult:
        """Restore every face of ``image`` (see the module docstring for the steps and types)."""
        check_samples(image)
        rgb, _ = as_rgb(image)
        if self.aligned:
            return self._process_aligned(image, rgb)
        canvas = self.background(rgb)
        if self.detector is None:
            raise ConfigError("face restorer built without a detector: pass aligned=True for aligned faces")
        faces = list(self.detector(to_uint8(rgb[..., :3]), order="rgb"))
        if landmark_filter is not None:
            faces = list(landmark_filter(faces))
        if not faces:
            return FaceResult(back_to_layout(canvas, image))
        color = np.ascontiguousarray(rgb[..., :3])
        border = _border(color.dtype)
        crops, matrices = [], []
        for f in faces:
            crop, matrix = align_face(color, f.landmarks, self.face_size, border_value=border)
            crops.append(crop)
            matrices.append(matrix)
        floats, typed = self._restore_crops(crops)
        out_h, out_w = canvas.shape[:2]
        sx, sy = out_w / rgb.shape[1], out_h / rgb.shape[0]
        scale = math.sqrt(sx * sy)
        records, failed = [], 0
        for f, face, matrix in zip(faces, floats, matrices, strict=True):
            ok = face is not None
            failed += not ok
            records.append(FaceRecord(
                [float(v) for v in f.box], float(f.score), f.landmarks.astype(float).tolist(), ok
            ))  # fmt: skip
            if not ok or self.fidelity >= 1:
                continue  # the background stays there (f = 1: the upscaled input, exactly)
            inverse = inverse_affine(matrix, scale)
            roi = face_roi(face.shape[:2], inverse, (out_w, out_h))
            if roi is None:
                continue
            local = shifted(inverse, roi[0], roi[1])
            edges = (roi[0] == 0, roi[1] == 0, roi[2] == out_w, roi[3] == out_h)
            mask = self._mask(face, local, (roi[2] - roi[0], roi[3] - roi[1]), edges)
            paste_face_into(canvas, face, local, mask, roi)
        return FaceResult(back_to_layout(canvas, image), records, crops, typed, failed)

    def _process_aligned(self, image: np.ndarray, rgb: np.ndarray) -> FaceResult:
        self._check_aligned(rgb)
        crop = np.ascontiguousarray(rgb[..., :3])
        floats, typed = self._restore_crops([crop])
        ok = floats[0] is not None
        face = typed[0]
        full = face if rgb.shape[2] == 3 else np.concatenate([face, rgb[..., 3:]], axis=2)
        out = self.background(full)
        s = float(self.face_size)
        record = FaceRecord([0.0, 0.0, s, s], 1.0, face_template(self.face_size).tolist(), ok)
        return FaceResult(back_to_layout(out, image), [record], [crop], [face], int(not ok))


def _border(dtype: np.dtype) -> tuple[float, float, float]:
    unit = sample_unit(dtype)
    factor = 1 / 255 if unit is None else unit / 255
    return tuple(v * factor for v in BORDER_GRAY)  # type: ignore[return-value]


def load_face_restorer(
    weights: str | Path | Any,
    *,
    upscale: float = 2,
    bg_weights: str | Path | None = None,
    detector: str = "mtcnn",
    detector_weights: str | Path | None = None,
    only_center_face: bool = False,
    largest: bool = False,
    aligned: bool = False,
    fidelity: float = 0.0,
    color_fix: bool = True,
    parse_weights: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch: int | None = None,
    tile: int = 512,
    tile_overlap: int = 32,
    conf_threshold: float | None = None,
) -> FaceRestorer:
    """A ``FaceRestorer`` from a face-restoration weights file (nothing is ever downloaded).

    ``weights``: GFPGANv1 / GFPGANv1Clean (v1.3, v1.4) / RestoreFormer ``.pth``, a restorekit
    export or checkpoint folder, or a built face module; a non-face model is a one-line
    ``WeightsError`` naming ``restorekit infer``. ``upscale``: output scale of the photo.
    ``bg_weights``: an SR model for the background (tiled by ``tile`` / ``tile_overlap``), else
    Lanczos. ``fidelity`` in [0, 1]: 0 the restored face, 1 the input face (linear-light blend).
    ``color_fix``: keep the input face's mean Lab colour. ``parse_weights``: facexlib's
    ``parsing_parsenet.pth`` for a face-shaped paste mask. ``batch``: faces (and background
    tiles) per forward pass; ``None`` picks ``default_batch``'s.
    """
    if not (isinstance(upscale, int | float) and math.isfinite(upscale) and upscale > 0):
        raise ConfigError(f"--upscale {upscale!r}: expected a positive number")
    if not (isinstance(fidelity, int | float) and 0 <= fidelity <= 1):
        raise ConfigError(f"--fidelity {fidelity!r}: expected a number in [0, 1] (0 restored, 1 input)")
    net, notes = FaceNet.load(weights, device=device, precision=precision)
    batch = default_batch(batch, net.device)
    background = Background(
        float(upscale), bg_weights, device=net.device, precision=precision, tile=tile,
        tile_overlap=tile_overlap, batch=batch,
    )  # fmt: skip
    det = None
    if not aligned:
        from restorekit.faces.detect import load_detector

        det = load_detector(
            detector, detector_weights, device=net.device, conf_threshold=conf_threshold,
            only_center_face=only_center_face, only_keep_largest=largest,
        )  # fmt: skip
    parsenet = None
    if parse_weights is not None:
        from restorekit.faces.parsenet import load_parsenet

        parsenet = load_parsenet(parse_weights).to(net.device)
    restorer = FaceRestorer(
        net, background, det, aligned=aligned, fidelity=fidelity, color_fix=color_fix,
        parsenet=parsenet, batch=batch,
    )  # fmt: skip
    restorer.notes = notes + background.notes
    return restorer

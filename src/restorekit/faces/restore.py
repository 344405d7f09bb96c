"""The face network and the background upscaler of ``restorekit faces``.

``FaceNet`` loads a face-restoration file (GFPGANv1, GFPGANv1Clean v1.3/1.4 ``params_ema``,
RestoreFormer; recognised from their keys by ``restorekit.archs.detect``) and restores aligned
crops **in batches** in [-1, 1], as ``GFPGANer.enhance`` prepares them, with fixed noise
(``randomize_noise=False``: the same photo gives the same face twice). Precision is
``resolve_precision``'s, so half precision only runs where the device has it (never the CPU
fp16 crash). A batch whose forward raises is retried face by face; a face that still raises, or
whose output is not finite, is reported as ``None`` and the caller keeps the input crop.

``Background`` upscales the whole photo: a restorekit SR model through ``Upscaler`` (tiled,
resized when its scale is not ``upscale``), on whatever device was asked for (GFPGAN silently
drops its background model on the CPU; this does not), else Lanczos, else (×1) the photo itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from restorekit.archs.info import ArchInfo, find_arch_info
from restorekit.device import pick_device
from restorekit.errors import RestorekitError, WeightsError
from restorekit.faces.blend import from_float
from restorekit.inference.precision import resolve_precision
from restorekit.inference.upscale import Upscaler, arch_name, check_purpose

DEFAULT_FACE_SIZE = 512

MAX_PIXELS = 2**30  # OpenCV's image codecs refuse bigger images


def face_info(net: nn.Module, where: str) -> ArchInfo:
    """The face network's ``ArchInfo``; any other network is one line naming ``restorekit infer``."""
    info = find_arch_info(net)
    if info is None or info.purpose != "face":
        what = "an unregistered" if info is None else f"a {info.purpose}"
        raise WeightsError(
            f"{where}: {arch_name(net)} is {what} network, not a face-restoration one "
            "(GFPGANv1, GFPGANv1Clean, RestoreFormer); image-restoration models run with `restorekit infer`"
        )
    return info


class FaceNet:
    """A face-restoration network on its device and precision; ``restore`` maps crops to crops."""

    def __init__(
        self,
        net: nn.Module,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        where: str = "weights",
    ) -> None:
        self.info = face_info(net, where)
        self.device = pick_device(device)
        self.dtype = resolve_precision(precision, self.device, self.info)
        self.net = net.eval().to(device=self.device, dtype=self.dtype)
        self.face_size = self.info.input_size or DEFAULT_FACE_SIZE

    @classmethod
    def load(cls, weights: str | Path | nn.Module, **options: object) -> tuple[FaceNet, list[str]]:
        """``(FaceNet, notes)`` from a weights file, a checkpoint folder or a built module."""
        if isinstance(weights, nn.Module):
            return cls(weights, **options), []  # type: ignore[arg-type]
        from restorekit.inference.export import load_any

        net, notes = load_any(weights)
        return cls(net, where=str(weights), **options), notes  # type: ignore[arg-type]

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The network on a ``[N, 3, S, S]`` float batch in [-1, 1]; float32 output on the host."""
        x = batch.to(self.device, non_blocking=True).to(self.dtype)
        out = self.net(x, return_rgb=False, randomize_noise=False)
        out = out[0] if isinstance(out, tuple | list) else out
        return out.float().cpu()

    def restore(self, crops: Sequence[np.ndarray], batch: int = 4) -> list[np.ndarray | None]:
        """Restored float32 RGB crops in [0, 1] (``None`` for a face that failed), ``batch`` at a time.

        ``crops`` are float32 RGB in [0, 1] of ``face_size``²; the network sees ``2·x − 1``.
        """
        out: list[np.ndarray | None] = []
        for i in range(0, len(crops), max(1, batch)):
            part = crops[i : i + max(1, batch)]
            x = torch.from_numpy(np.stack(part)).permute(0, 3, 1, 2).mul(2).sub(1)
            try:
                y = self.forward(x)
            except RuntimeError:
                self._release()
                if len(part) == 1:
                    out.append(None)
                    continue
                out.extend(self.restore(part, batch=1))  # find the face that fails; keep the others
                continue
            for face in y:
                ok = bool(torch.isfinite(face).all())
                out.append(face.clamp(-1, 1).add(1).div(2).permute(1, 2, 0).numpy() if ok else None)
        return out

    def _release(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class Background:
    """The photo upscaled ``upscale`` times, in its own sample type and channels (alpha included)."""

    def __init__(
        self,
        upscale: float,
        weights: str | Path | None = None,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int = 512,
        tile_overlap: int = 32,
        batch: int = 4,
    ) -> None:
        self.upscale = upscale
        self.upscaler: Upscaler | None = None
        self.notes: list[str] = []
        if weights is not None:
            from restorekit.inference.export import load_any

            net, self.notes = load_any(weights)
            info = find_arch_info(net)
            if info is not None and info.purpose == "face":
                raise WeightsError(
                    f"--bg-weights {weights}: {arch_name(net)} is a face-restoration network; "
                    "the background takes an image-restoration (super-resolution) model"
                )
            if info is not None:
                check_purpose(net, info, allow_face=False)
            self.upscaler = Upscaler(
                net, device=device, precision=precision, tile=tile, tile_overlap=tile_overlap,
                batch=batch, outscale=upscale,
            )  # fmt: skip

    def size(self, h: int, w: int) -> tuple[int, int]:
        """The output ``(height, width)`` of an ``h × w`` photo."""
        return max(1, round(h * self.upscale)), max(1, round(w * self.upscale))

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """``img`` (HWC, 3 or 4 channels) upscaled: SR model, Lanczos, or a copy at ×1."""
        h, w = img.shape[:2]
        size = self.size(h, w)
        if size[0] * size[1] > MAX_PIXELS:  # before the allocation that would fail or swap
            raise RestorekitError(
                f"upscale {self.upscale:g}: a {w}×{h} photo would become {size[1]}×{size[0]} px, over "
                f"the 2^30 pixels an image file holds; use a smaller --upscale"
            )
        if self.upscaler is not None:
            try:
                out = self.upscaler.restore(img).merged()
            except RuntimeError as exc:
                what = f"the background model failed on a {w}×{h} image"
                raise RestorekitError(f"--bg-weights: {what} ({exc})") from None
            if out.shape[:2] != size:
                out = cv2.resize(out, (size[1], size[0]), interpolation=cv2.INTER_LANCZOS4)
            return from_float(out, img.dtype)
        if size == (h, w):
            return img.copy()
        out = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LANCZOS4)
        if img.dtype.kind == "f":
            out = np.clip(out, 0.0, 1.0)
        return out

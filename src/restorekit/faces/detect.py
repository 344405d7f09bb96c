"""One way to get faces out of a photo, whichever detector finds them.

``load_detector`` builds a ``FaceDetector``: a detector network (MTCNN from facenet-pytorch's
shipped weights, or RetinaFace from facexlib's file) plus the filtering GFPGAN's pipeline does
around it (``FaceRestoreHelper.get_face_landmarks_5`` as ``GFPGANer.enhance`` calls it):

* a confidence threshold (the detector's own by default: MTCNN's last stage keeps > 0.7,
  facexlib's helper asks RetinaFace for > 0.97);
* faces whose eyes are closer than ``eye_dist_threshold`` (5 px, GFPGAN's value) are dropped:
  side views and tiny faces that alignment would blow up into noise;
* photos bigger than ``max_side`` are detected on a downscaled copy and the boxes and points
  scaled back. Detection cost grows with the pixel count while a face's landmarks need only a
  few dozen pixels, and RetinaFace on a 24 MP photo needs more memory than most GPUs have;
* ``only_center_face`` / ``only_keep_largest`` keep one face, as facexlib's helpers pick it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import torch

from restorekit.errors import ConfigError, WeightsError, did_you_mean
from restorekit.faces.types import Face

__all__ = ["DETECTORS", "Detector", "Face", "FaceDetector", "center_face", "largest_face", "load_detector"]

DETECTORS = ("mtcnn", "retinaface_resnet50", "retinaface_mobile0.25")
EYE_DIST_THRESHOLD = 5.0
MAX_SIDE = 1600


@runtime_checkable
class Detector(Protocol):
    """What a detector network offers: faces of one image, in its pixels, best score first."""

    def detect(self, image: np.ndarray, order: str = "bgr") -> list[Face]: ...


@dataclass
class FaceDetector:
    """A detector network plus GFPGAN's filtering around it; call it on an H×W×3 image."""

    model: Detector
    name: str = "mtcnn"
    conf_threshold: float | None = None
    eye_dist_threshold: float | None = EYE_DIST_THRESHOLD
    max_side: int | None = MAX_SIDE
    only_center_face: bool = False
    only_keep_largest: bool = False
    last_scale: tuple[float, float] = field(default=(1.0, 1.0), init=False, repr=False)

    def __post_init__(self) -> None:
        if self.conf_threshold is not None and not 0 <= self.conf_threshold <= 1:
            raise ConfigError(
                f"face confidence threshold {self.conf_threshold!r}: expected a number in [0, 1]"
            )
        if self.eye_dist_threshold is not None and self.eye_dist_threshold < 0:
            raise ConfigError(f"eye distance threshold {self.eye_dist_threshold!r}: expected pixels >= 0")
        if self.max_side is not None and (not isinstance(self.max_side, int) or self.max_side < 64):
            raise ConfigError(
                f"detection max side {self.max_side!r}: expected a whole number of pixels >= 64"
            )

    def __call__(self, image: np.ndarray, order: str = "bgr") -> list[Face]:
        """Faces of ``image`` in its own pixels, best score first (or the one kept face)."""
        small, (sx, sy) = downscale(image, self.max_side)
        self.last_scale = (sx, sy)
        faces = self.model.detect(small, order=order)
        if (sx, sy) != (1.0, 1.0):
            faces = [to_full_size(f, sx, sy) for f in faces]
        faces = filter_faces(faces, self.conf_threshold, self.eye_dist_threshold)
        h, w = image.shape[:2]
        if faces and self.only_keep_largest:
            faces = [largest_face(faces, h, w)]
        elif faces and self.only_center_face:
            faces = [center_face(faces, h, w)]
        return faces


def downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, tuple[float, float]]:
    """``image`` itself, or a copy whose longer side is ``max_side`` (area resize); and its (x, y) scales.

    The two scales are reported apart: rounding to whole pixels makes them differ slightly.
    """
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image, (1.0, 1.0)
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if small.ndim == 2 and image.ndim == 3:  # cv2 drops a single channel axis
        small = small[:, :, None]
    return small, (size[0] / w, size[1] / h)


def to_full_size(face: Face, sx: float, sy: float) -> Face:
    """A face found on a copy resized by (sx, sy), in the original's pixels.

    Pixel centres are at whole coordinates (as ``cv2.warpAffine`` reads landmarks) and
    ``cv2.resize`` aligns pixel centres, so x maps back as ``(x + 0.5) / sx - 0.5``: a plain
    ``x / sx`` would put every point ``0.5 · (1/sx − 1)`` px up and left (1.5 px at a quarter size).
    """
    s = np.array([sx, sy], dtype=np.float64)
    box = (face.box.reshape(2, 2).astype(np.float64) + 0.5) / s - 0.5
    points = (face.landmarks.astype(np.float64) + 0.5) / s - 0.5
    return Face(box.reshape(4), face.score, points)


def filter_faces(
    faces: list[Face], conf_threshold: float | None, eye_dist_threshold: float | None
) -> list[Face]:
    """Faces with score ≥ ``conf_threshold`` and eye distance ≥ ``eye_dist_threshold`` (None: no test)."""
    return [
        f
        for f in faces
        if (conf_threshold is None or f.score >= conf_threshold)
        and (eye_dist_threshold is None or f.eye_distance >= eye_dist_threshold)
    ]


def largest_face(faces: list[Face], height: int, width: int) -> Face:
    """The face whose box, clipped to the image, has the largest area (facexlib's ``get_largest_face``)."""

    def clipped_area(f: Face) -> float:
        x1, x2 = np.clip(f.box[[0, 2]], 0, width)
        y1, y2 = np.clip(f.box[[1, 3]], 0, height)
        return float((x2 - x1) * (y2 - y1))

    return max(faces, key=clipped_area)


def center_face(
    faces: list[Face], height: int, width: int, center: tuple[float, float] | None = None
) -> Face:
    """The face whose box centre is nearest ``center`` (the image centre by default; facexlib's rule)."""
    c = np.array(center if center is not None else (width / 2, height / 2), dtype=np.float64)

    def distance(f: Face) -> float:
        mid = np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2], dtype=np.float64)
        return float(np.linalg.norm(mid - c))

    return min(faces, key=distance)


def load_detector(
    name: str = "mtcnn",
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    conf_threshold: float | None = None,
    eye_dist_threshold: float | None = EYE_DIST_THRESHOLD,
    max_side: int | None = MAX_SIDE,
    only_center_face: bool = False,
    only_keep_largest: bool = False,
) -> FaceDetector:
    """A ``FaceDetector`` by name. Weights are never downloaded.

    ``mtcnn``: ``weights`` is a folder holding ``pnet.pt``, ``rnet.pt``, ``onet.pt``; None means
    the installed facenet-pytorch wheel's ``data`` folder. ``retinaface_resnet50`` /
    ``retinaface_mobile0.25``: ``weights`` is facexlib's ``detection_*.pth`` file, required. A
    missing file is one ``WeightsError`` line naming it and ``--detector-weights``.
    """
    if name == "mtcnn":
        from restorekit.faces.mtcnn import load_mtcnn

        model: Detector = load_mtcnn(weights, device=device)
    elif name in DETECTORS:
        from restorekit.faces.retinaface import WEIGHT_FILES, canonical_network, load_retinaface

        network = canonical_network(name)
        if weights is None:
            raise WeightsError(
                f"face detector {name}: pass --detector-weights PATH to {WEIGHT_FILES[network]} "
                "(restorekit never downloads)"
            )
        model = load_retinaface(weights, network).to(device)
    else:
        choices = ", ".join(DETECTORS)
        raise ConfigError(f"face detector {name!r}: expected one of {choices}{did_you_mean(name, DETECTORS)}")
    return FaceDetector(
        model,
        name,
        conf_threshold=conf_threshold,
        eye_dist_threshold=eye_dist_threshold,
        max_side=max_side,
        only_center_face=only_center_face,
        only_keep_largest=only_keep_largest,
    )

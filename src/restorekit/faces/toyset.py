"""A small aligned-face set built offline from photos that ship inside installed packages.

Why: the face task (GFPGAN) needs aligned faces plus eye/mouth boxes, and FFHQ is neither here
nor downloadable. Three faces are on disk in every environment that has scikit-image and
matplotlib: ``skimage.data.astronaut()`` (Eileen Collins), matplotlib's ``grace_hopper.jpg`` and
``skimage.data.lfw_subset()`` (200 gray 25² crops, the first 100 faces). That is enough for a toy
that checks the whole pipeline learns something, not for a useful restorer.

**Layout** under ``root``:

- ``train/``: ``JITTERS`` alignments of each photo (MTCNN's 5 points, moved by a small seeded
  random similarity before ``align_face``, so each crop is a slightly different view) and LFW
  faces 0..79 resized to ``size`` (gray copied to 3 channels);
- ``val/gt`` and ``val/lq``: LFW faces 80..99 and a fixed degradation of each (downscale x4 by
  area, JPEG q 60, bicubic back up), so validation is deterministic and held out;
- ``landmarks.pth``: GFPGAN's eye/mouth table keyed by each training image's stem (what
  ``face_components.entry_key`` looks up first), from ``landmarks.face_entry`` (the rule
  ``restorekit data face-landmarks`` uses too). Photo crops use the detected points mapped into
  the crop; LFW crops are roughly aligned already, so they get the template's points;
- ``vgg19_random.pth``: a torchvision-layout VGG19 (features up to ``conv3_4``) with seeded random
  weights, so ``PerceptualLoss`` runs without ImageNet weights. It measures nothing meaningful.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from restorekit.errors import DataError, guarded_write

JITTERS = 60  # alignments per photo
LFW_TRAIN = range(0, 80)
LFW_VAL = range(80, 100)
VGG_FILE = "vgg19_random.pth"
VGG_LAST_LAYER = "conv3_4"  # the deepest layer configs/gfpgan_toy.yml reads


def _photos() -> dict[str, np.ndarray]:
    """The two colour photos as BGR uint8 (what the detector and cv2.imwrite take)."""
    import matplotlib
    import skimage.data

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    grace = cv2.imread(str(hopper))
    if grace is None:
        raise DataError(f"make-faces: {hopper} cannot be read (is matplotlib's sample data installed?)")
    return {"astronaut": np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1]), "hopper": grace}


def jitter_points(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``points`` moved by a random similarity about their centroid: rotation within ±6°, scale
    0.94..1.06, shift within ±4% of the eye distance. Small enough that the crop is still an
    aligned face; large enough that the 60 crops of one photo are not the same image."""
    pts = np.asarray(points, dtype=np.float64)
    centre = pts.mean(axis=0)
    eye = math.hypot(*(pts[1] - pts[0]))
    a = math.radians(rng.uniform(-6.0, 6.0))
    s = rng.uniform(0.94, 1.06)
    rot = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    shift = rng.uniform(-0.04, 0.04, size=2) * eye
    return (pts - centre) @ rot.T + centre + shift


def degrade_val(gt: np.ndarray) -> np.ndarray:
    """The fixed validation LQ: x4 area downscale, JPEG quality 60, bicubic back to full size."""
    h, w = gt.shape[:2]
    small = cv2.resize(gt, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 60])
    if not ok:
        raise DataError("make-faces: JPEG encoding failed")
    return cv2.resize(cv2.imdecode(buf, cv2.IMREAD_COLOR), (w, h), interpolation=cv2.INTER_CUBIC)


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not guarded_write(path, lambda: cv2.imwrite(str(path), img)):
        raise DataError(f"{path}: cannot be written")


def write_random_vgg19(path: Path, seed: int = 0) -> Path:
    """A torchvision-layout VGG19 ``features.N.*`` file up to ``VGG_LAST_LAYER``, random weights."""
    from restorekit.archs.vgg import VGGFeatures

    torch.manual_seed(seed)
    net = VGGFeatures("vgg19", layers=[VGG_LAST_LAYER], use_input_norm=False)
    state = {f"features.{k}": v.clone() for k, v in net.features.state_dict().items()}
    guarded_write(path, lambda: torch.save(state, path))
    return path


def make_faces(root: Path, size: int = 64, seed: int = 0, jitters: int = JITTERS) -> dict[str, int]:
    """Build the set under ``root``; returns the image counts. Deterministic for a seed."""
    import skimage.data

    from restorekit.data.face_components import save_components
    from restorekit.faces.align import align_face, transform_points
    from restorekit.faces.detect import load_detector
    from restorekit.faces.landmarks import face_entry

    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or jitters < 1:
        raise DataError(
            f"make-faces: expected --size >= 32 and jitters >= 1, got size {size}, jitters {jitters}"
        )
    root = Path(root)
    table: dict[str, dict[str, tuple[float, float, float]]] = {}
    rng = np.random.default_rng(seed)
    detector = load_detector("mtcnn", only_keep_largest=True)
    for name, photo in _photos().items():
        faces = detector(photo, order="bgr")
        if not faces:
            raise DataError(f"make-faces: MTCNN found no face in {name}")
        points = faces[0].landmarks.astype(np.float64)
        for j in range(jitters):
            crop, matrix = align_face(photo, jitter_points(points, rng), face_size=size)
            stem = f"{name}_{j:03d}"
            _write(root / "train" / f"{stem}.png", crop)
            table[stem] = face_entry(transform_points(points, matrix), size, size)
    lfw = skimage.data.lfw_subset()
    for i in [*LFW_TRAIN, *LFW_VAL]:
        gray = np.clip(np.rint(lfw[i] * 255), 0, 255).astype(np.uint8)
        face = cv2.cvtColor(cv2.resize(gray, (size, size), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
        stem = f"lfw_{i:03d}"
        if i in LFW_TRAIN:
            _write(root / "train" / f"{stem}.png", face)
            table[stem] = face_entry(None, size, size)
        else:
            _write(root / "val" / "gt" / f"{stem}.png", face)
            _write(root / "val" / "lq" / f"{stem}.png", degrade_val(face))
    save_components(root / "landmarks.pth", table)
    write_random_vgg19(root / VGG_FILE, seed)
    return {"train": len(table), "val": len(LFW_VAL)}

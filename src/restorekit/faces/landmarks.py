"""GFPGAN's eye/mouth landmarks file for a folder of aligned faces (``restorekit data face-landmarks``).

Why: the face task's component discriminators need each training face's eye and mouth boxes,
and GFPGAN only ships them for FFHQ (``FFHQ_eye_mouth_landmarks_512.pth``, made from FFHQ's
68-point JSON by ``scripts/parse_landmark.py``); how to get them for one's own faces is GFPGAN's
most repeated training question (#91, #277, #16). Here they come from the offline detector:

* every image of the folder (sorted, as ``scan_images`` lists them) is an aligned square face of
  any side ``S``; the detector's five points (``FaceDetector`` with ``only_center_face``: in an
  aligned crop the face is the one in the middle) are scaled by ``size / S`` and turned into an
  entry by ``components_from_5`` with ``min_half`` = 16 px at 512, scaled the same way. The
  entries are in pixels of a ``size``² face: the dataset uses them at its ``out_size`` unscaled,
  so ``size`` must be the training ``out_size`` (GFPGAN's file: 512);
* a face where nothing is found, or whose points sit farther than ``MAX_OFFSET`` eye distances
  (mean over the five points) from the FFHQ template, gets the template's entry instead: the
  images are aligned to that template, so it is the right prior, and a detection that far off is
  a false one (a background face, a pattern) rather than a badly aligned face;
* ``source``: GFPGAN's own file instead of the detector. Each image's entry is found as the
  dataset finds it (``entry_key``: stem, stem as 8 digits, index) and scaled by ``size / 512``;
  an image without one is an error, since inventing boxes for it would hide a wrong folder.

Keys: ``stem`` (default) keys each entry by the file's stem, which restorekit looks up first, so
the file stays right when images are added or removed. ``index`` keys them as GFPGAN's own
loader does (``f"{index:08d}"`` of the sorted position), for GFPGAN's code on the same folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from restorekit.data.face_components import (
    FFHQ_TEMPLATE_512,
    MIN_HALF,
    Components,
    components_from_5,
    entry_key,
    load_components,
    save_components,
)
from restorekit.errors import DataError

KeyStyle = Literal["stem", "index"]
KEY_STYLES = ("stem", "index")
MAX_OFFSET = 0.5  # eye distances between detected points and the template beyond which a detection is false
GFPGAN_SIZE = 512  # the face side GFPGAN's file is in


@dataclass
class LandmarksSummary:
    """What ``build_landmarks`` did: counts, and the images that fell back to the template."""

    images: int = 0
    detected: int = 0
    from_template: list[str] = field(default_factory=list)
    from_file: int = 0
    path: Path | None = None

    def line(self) -> str:
        """The CLI's one-line report."""
        if self.from_file:
            return f"{self.path}: {self.images} images, {self.from_file} entries from the given file"
        shown = ", ".join(self.from_template[:3]) + (" ..." if len(self.from_template) > 3 else "")
        tail = f" ({shown})" if shown else ""
        return (
            f"{self.path}: {self.images} images, {self.detected} detected, "
            f"{len(self.from_template)} from the FFHQ template{tail}"
        )


def face_entry(points: np.ndarray | None, image_size: int, size: int) -> Components:
    """The entry of an aligned ``image_size``² face with 5 landmarks ``points`` (None: the
    template's), in pixels of a ``size``² face; ``min_half`` scales with ``size`` as GFPGAN's 16 px
    at 512 does. The one rule the toy set and ``face-landmarks`` share."""
    if points is None:
        pts = FFHQ_TEMPLATE_512 * (size / GFPGAN_SIZE)
    else:
        pts = np.asarray(points, np.float64) * (size / image_size)
    return components_from_5(pts, min_half=MIN_HALF * size / GFPGAN_SIZE)


def plausible(points: np.ndarray, image_size: int, max_offset: float = MAX_OFFSET) -> bool:
    """True when the five points are within ``max_offset`` eye distances of the template (mean)."""
    template = FFHQ_TEMPLATE_512 * (image_size / GFPGAN_SIZE)
    eye = float(np.linalg.norm(template[1] - template[0]))
    offset = float(np.linalg.norm(np.asarray(points, np.float64) - template, axis=1).mean())
    return offset <= max_offset * eye


def _keys(images: list[Path], style: str) -> list[str]:
    if style not in KEY_STYLES:
        raise DataError(f"--keys {style!r}: expected one of {', '.join(KEY_STYLES)}")
    if style == "index":
        return [f"{i:08d}" for i in range(len(images))]
    keys = [p.stem for p in images]
    seen: dict[str, Path] = {}
    for p, k in zip(images, keys, strict=True):
        if k in seen:
            raise DataError(
                f"{p}: same stem as {seen[k].name}, so their entries would share one key; "
                "rename one or use --keys index"
            )
        seen[k] = p
    return keys


def _read_bgr(path: Path) -> np.ndarray:
    """An image as 8-bit BGR (what the detectors take); gray is copied to 3 channels."""
    import cv2

    from restorekit.data.io import read_image_raw

    img = read_image_raw(path).img
    if img.dtype != np.uint8:
        top = 65535.0 if img.dtype == np.uint16 else 1.0
        img = np.clip(np.rint(img.astype(np.float64) / top * 255), 0, 255).astype(np.uint8)
    if img.shape[2] in (1, 2):
        img = cv2.cvtColor(np.ascontiguousarray(img[:, :, 0]), cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    h, w = img.shape[:2]
    if h != w:
        raise DataError(f"{path}: {w}x{h}, expected a square aligned face")
    return np.ascontiguousarray(img)


def _check_output(out: Path, force: bool) -> None:
    if out.is_dir():
        raise DataError(f"-o {out}: is a folder, expected the landmarks file to write")
    if out.exists() and not force:
        raise DataError(f"-o {out}: already exists; pass --force to replace it")


def build_landmarks(
    faces_dir: str | Path,
    out: str | Path,
    size: int = GFPGAN_SIZE,
    detector: str = "mtcnn",
    detector_weights: str | Path | None = None,
    source: str | Path | None = None,
    keys: str = "stem",
    force: bool = False,
    device: str = "cpu",
) -> LandmarksSummary:
    """Write the landmarks file of the aligned faces in ``faces_dir`` to ``out`` (see the module doc)."""
    from restorekit.data.io import scan_images

    out = Path(out)
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise DataError(f"--size {size!r}: expected the training out_size in pixels (>= 16)")
    _check_output(out, force)
    images = scan_images(faces_dir)
    names = _keys(images, keys)
    summary = LandmarksSummary(images=len(images), path=out)
    table: dict[str, Components] = {}
    if source is not None:
        given = load_components(source, "--from")
        scale = size / GFPGAN_SIZE
        missing = []
        for i, (p, name) in enumerate(zip(images, names, strict=True)):
            key = entry_key(i, p.stem, given)
            if key is None:
                missing.append(p.name)
                continue
            table[name] = {part: (x * scale, y * scale, h * scale) for part, (x, y, h) in given[key].items()}
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise DataError(
                f"--from {source}: no entry for {len(missing)} of {len(images)} images "
                f"(looked up by stem, then by index as 8 digits): {', '.join(missing[:3])}{more}"
            )
        summary.from_file = len(table)
    else:
        from restorekit.faces.detect import load_detector

        det = load_detector(detector, detector_weights, device=device, only_center_face=True)
        for p, name in zip(images, names, strict=True):
            img = _read_bgr(p)
            faces = det(img, order="bgr")
            side = img.shape[0]
            points = faces[0].landmarks if faces else None
            if points is not None and not plausible(points, side):
                points = None
            if points is None:
                summary.from_template.append(p.name)
            else:
                summary.detected += 1
            table[name] = face_entry(points, side, size)
    _check_output(out, force)  # a file that appeared while detecting is still not replaced
    save_components(out, table)
    load_components(out, "-o")  # what training will do with it
    return summary

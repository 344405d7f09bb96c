"""Eye and mouth boxes of aligned faces: GFPGAN's landmarks file, and boxes from 5 landmarks.

**The file** (``FFHQ_eye_mouth_landmarks_512.pth``, written by GFPGAN's ``scripts/parse_landmark.py``)
is a ``torch.save``'d dict ``{"00000000": {"left_eye": [x, y, half], "right_eye": [...],
"mouth": [...]}, ...}``: one entry per image, keyed by its index as 8 digits, each part its centre
and half side in pixels of the aligned 512² face, the three numbers ``numpy.float64`` scalars.
``parse_landmark.py`` derives them from FFHQ's 68 landmarks (``components_from_68``): centre =
mean of the part's points (eyes 36–41 / 42–47, mouth 48–67), half = half the larger side of their
bounding box, at least 16 px. ``load_components`` reads such a file without unpickling code
(``weights_only`` with the numpy scalar types allowed); ``save_components`` writes the same layout,
numpy scalars included, because GFPGAN's own loader does arithmetic on ``entry[0:2]`` that only
works when the numbers are numpy scalars.

**Boxes** (``component_boxes``): ``[x − h + 1, y − h + 1, x + h, y + h]`` with ``h`` the half side
(times ``eye_enlarge_ratio`` for the eyes: GFPGAN's 1.4 gives the eye discriminators some
context). Under a horizontal flip the eyes swap names (the image-left eye of the flipped face is
the old right one) and every centre moves to ``out_size − x``, exactly as GFPGAN's
``get_component_coordinates`` does (the mirror of pixel x is ``out_size − 1 − x``, so a flipped box
sits one pixel right of the exact mirror; kept, because GFPGAN's discriminators were trained so).
GFPGAN also writes the flipped entry back into its table, so after an odd number of flips an
unflipped draw gets mirrored boxes; here the table is never modified.

**From 5 landmarks** (``components_from_5``), for faces whose 68 points are unknown and a 5-point
detector (RetinaFace: eye centres, nose tip, mouth corners) is all there is: eye centres = the eye
points, mouth centre = the mouth corners' midpoint, half sides = ratios of the eye distance ``d``.
The ratios were calibrated on GFPGAN's ``tests/data/test_eye_mouth_landmarks.pth`` (FFHQ image
00000000) against the FFHQ 5-point template at 512 px (``d`` = 125.92 px): the file's eye halves
28.57 and 23.69 px give 0.2269 and 0.1882 of ``d`` (mean ``EYE_HALF_RATIO`` = 0.2075); its mouth
half 42.21 px gives ``MOUTH_HALF_RATIO`` = 0.3352 of ``d`` (0.3775 of the template's mouth width).
One face is a small sample: the centres of that face sit (−1.4, +2.3), (+0.6, +6.9) and
(+10.6, −15.4) px from the template's points, so no offset is applied.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from restorekit.errors import DataError, guarded_write

PARTS = ("left_eye", "right_eye", "mouth")
MIN_HALF = 16.0  # parse_landmark.py's smallest half side, in pixels of the 512² face
EYE_HALF_RATIO = 0.2075  # half side of an eye box / eye distance (see the module doc)
MOUTH_HALF_RATIO = 0.3352  # half side of the mouth box / eye distance
# FFHQ's 5-point template for 512² faces (facexlib): image-left eye, image-right eye, nose,
# left and right mouth corner, (x, y) in pixels.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)
# 68-point indices of each part (dlib / FFHQ's JSON numbering)
LANDMARKS_68 = {"left_eye": range(36, 42), "right_eye": range(42, 48), "mouth": range(48, 68)}

Component = tuple[float, float, float]  # centre x, centre y, half side
Components = dict[str, Component]


# ----------------------------------------------------------------------------- the file
def _safe_globals() -> list[object]:
    """What a landmarks file may reference: numpy scalars / arrays, under numpy 1 and 2 names."""
    try:
        from numpy._core import multiarray  # numpy 2's home of the pickling helpers
    except ImportError:  # numpy 1
        from numpy.core import multiarray

    allowed: list[object] = [np.dtype, np.ndarray]
    for name in ("scalar", "_reconstruct"):
        fn = getattr(multiarray, name)
        allowed += [(fn, f"numpy.core.multiarray.{name}"), (fn, f"numpy._core.multiarray.{name}")]
    allowed += [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32)]
    return allowed


_BOILERPLATE = (
    "Weights only load failed",
    "In PyTorch",
    "Please file",
    "Check the documentation",
    "(1)",
    "(2)",
)


def _reason(exc: BaseException) -> str:
    """The informative line of a ``torch.load`` failure (its message is mostly advice)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(_BOILERPLATE)]
    text = (useful or lines or [type(exc).__name__])[0].removeprefix("WeightsUnpickler error:").strip()
    return (text or type(exc).__name__)[:200]


def _as_component(value: object, where: str) -> Component:
    try:
        arr = np.asarray(value.tolist() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.shape != (3,) or not np.isfinite(arr).all() or arr[2] <= 0:
        raise DataError(f"{where}: expected [x, y, half side > 0], got {value!r}")
    return float(arr[0]), float(arr[1]), float(arr[2])


def load_components(path: str | Path, key: str = "component_path") -> dict[str, Components]:
    """The entries of a GFPGAN landmarks file, checked; one-line DataErrors name ``key`` and the file."""
    p = Path(path)
    if not p.is_file():
        what = "is a folder" if p.is_dir() else "does not exist"
        raise DataError(
            f"{key}: {p} {what} (expected GFPGAN's eye/mouth landmarks file, "
            "e.g. FFHQ_eye_mouth_landmarks_512.pth from scripts/parse_landmark.py)"
        )
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            table = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{key}: {p} is not a readable landmarks file ({_reason(exc)})") from None
    if not isinstance(table, Mapping) or not table:
        raise DataError(
            f"{key}: {p} holds {type(table).__name__}, expected a non-empty dict of image entries"
        )
    out: dict[str, Components] = {}
    for name, entry in table.items():
        if not isinstance(entry, Mapping) or any(part not in entry for part in PARTS):
            raise DataError(f"{key}: {p}: entry {name!r} must have {', '.join(PARTS)}")
        out[str(name)] = {part: _as_component(entry[part], f"{key}: {p}: {name}.{part}") for part in PARTS}
    return out


def save_components(path: str | Path, table: Mapping[str, Mapping[str, Sequence[float]]]) -> Path:
    """Write ``table`` in GFPGAN's layout (lists of ``numpy.float64``), readable by GFPGAN itself."""
    data = {
        str(name): {part: [np.float64(v) for v in entry[part]] for part in PARTS}
        for name, entry in table.items()
    }
    p = Path(path)
    guarded_write(p, lambda: torch.save(data, p))
    return p


def entry_key(index: int, stem: str, table: Mapping[str, object]) -> str | None:
    """Which entry belongs to an image: its stem when the table has it, the stem read as a number
    in GFPGAN's 8 digits (FFHQ's ``00042.png`` → ``00000042``), else GFPGAN's own rule, the
    dataset index in 8 digits; None when none of them is in the table.

    The stem comes first so that a folder holding part of FFHQ still gets each face's own boxes;
    for the whole data set, sorted, all three rules agree."""
    keys = [stem]
    if stem.isdigit():
        keys.append(f"{int(stem):08d}")
    keys.append(f"{index:08d}")
    return next((k for k in keys if k in table), None)


# ----------------------------------------------------------------------------- boxes
def flip_components(entry: Components, out_size: int) -> Components:
    """The entry of the horizontally flipped face: eyes swapped, centres at ``out_size − x``."""
    left, right, mouth = entry["right_eye"], entry["left_eye"], entry["mouth"]
    return {
        "left_eye": (out_size - left[0], left[1], left[2]),
        "right_eye": (out_size - right[0], right[1], right[2]),
        "mouth": (out_size - mouth[0], mouth[1], mouth[2]),
    }


def component_boxes(
    entry: Components, out_size: int, hflip: bool = False, eye_enlarge_ratio: float = 1.0
) -> dict[str, np.ndarray]:
    """``{part: [x1, y1, x2, y2]}`` (float32) as GFPGAN's ``get_component_coordinates`` gives them."""
    if hflip:
        entry = flip_components(entry, out_size)
    boxes = {}
    for part in PARTS:
        x, y, half = entry[part]
        if part != "mouth":
            half *= eye_enlarge_ratio
        boxes[part] = np.array([x - half + 1, y - half + 1, x + half, y + half], dtype=np.float32)
    return boxes


# ----------------------------------------------------------------------------- from landmarks
def components_from_68(landmarks: np.ndarray, scale: float = 1.0, min_half: float = MIN_HALF) -> Components:
    """``parse_landmark.py``'s entry from 68 landmarks (x, y) given at ``1/scale`` of the face
    (FFHQ's JSON is at 1024 px: ``scale=0.5`` for 512² faces)."""
    lm = np.asarray(landmarks, dtype=np.float64) * scale
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 (x, y) landmarks, got shape {lm.shape}")
    out: Components = {}
    for part, idx in LANDMARKS_68.items():
        pts = lm[list(idx)]
        centre = pts.mean(axis=0)
        half = max(float((pts.max(axis=0) - pts.min(axis=0)).max()) / 2, min_half)
        out[part] = (float(centre[0]), float(centre[1]), half)
    return out


def components_from_5(
    landmarks: np.ndarray,
    eye_ratio: float = EYE_HALF_RATIO,
    mouth_ratio: float = MOUTH_HALF_RATIO,
    min_half: float = MIN_HALF,
) -> Components:
    """An entry from 5 landmarks (image-left eye, image-right eye, nose, left and right mouth
    corner), half sides ``ratio × eye distance`` but at least ``min_half`` (16 px at 512²; scale it
    with the face size). See the module doc for where the ratios come from."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (5, 2):
        raise ValueError(f"expected 5 (x, y) landmarks, got shape {lm.shape}")
    d = math.hypot(*(lm[1] - lm[0]))
    mouth = (lm[3] + lm[4]) / 2
    eye_half, mouth_half = max(eye_ratio * d, min_half), max(mouth_ratio * d, min_half)
    return {
        "left_eye": (float(lm[0, 0]), float(lm[0, 1]), eye_half),
        "right_eye": (float(lm[1, 0]), float(lm[1, 1]), eye_half),
        "mouth": (float(mouth[0]), float(mouth[1]), mouth_half),
    }

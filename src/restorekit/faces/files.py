"""``restorekit faces``: photos, folders, globs and videos in; GFPGAN's output layout out.

Layout (``inference_gfpgan.py``'s, with ``--suffix S`` giving ``NAME_S`` as GFPGAN does):
``OUT/restored_imgs/NAME.ext``; with ``save_faces``: ``OUT/cropped_faces/NAME_00.png`` and
``OUT/restored_faces/NAME_00.png``; with ``compare``: ``OUT/cmp/NAME_00.png`` (input crop |
restored face); videos: ``OUT/restored_videos/NAME.ext`` (same container as the input).

Images keep their format: 16-bit stays 16-bit (PNG/TIFF), alpha is kept (the pipeline pastes
RGB and carries alpha), and a **gray** photo is restored as RGB (the network and the detector
need three channels) and written back gray (BT.601 luma, OpenCV's weights): a colour face
pasted into a gray photo would be a visible patch, and ``restorekit infer`` keeps gray too.
An image with no face is still written (the background upscale) and counted.

Every output path of the images and videos is decided, and checked against existing files,
before the networks are loaded (``--overwrite`` to replace); files are written to a temporary
name and renamed (``inference.files.write_atomic``).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restorekit.data.io import IMG_EXTENSIONS, is_image_file, read_image_raw
from restorekit.errors import DataError, RestorekitError
from restorekit.faces.video import VIDEO_EXTENSIONS, is_video_file
from restorekit.inference.files import EXT_CHOICES, _glob_files, final_path, save_restored, write_atomic
from restorekit.inference.gray_alpha import is_gray_alpha_png
from restorekit.inference.upscale import Restored

_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # OpenCV's RGB → gray weights


def collect_face_inputs(spec: str) -> tuple[list[Path], list[Path]]:
    """``(images, videos)`` named by a file, a folder (not recursive) or a glob pattern."""
    p = Path(spec)
    if p.is_file():
        if is_video_file(p):
            return [], [p]
        if is_image_file(p):
            return [p], []
        kinds = ", ".join(IMG_EXTENSIONS + VIDEO_EXTENSIONS)
        raise DataError(f"{p}: not an image or video file (expected one of {kinds})")
    if p.is_dir():
        found = sorted(q for q in p.iterdir() if q.is_file())
    elif set("*?[") & set(spec):
        found = sorted(_glob_files(spec))
    else:
        raise DataError(f"{spec}: input does not exist (expected an image or video file, a folder or a glob)")
    images = [q for q in found if is_image_file(q)]
    videos = [q for q in found if is_video_file(q)]
    if not images and not videos:
        raise DataError(f"{spec}: no image or video files found")
    return images, videos


def _name(stem: str, suffix: str | None) -> str:
    return f"{stem}_{suffix}" if suffix else stem


def plan(
    images: list[Path],
    videos: list[Path],
    out: Path,
    ext: str,
    suffix: str | None,
    overwrite: bool,
    crops_named: bool = True,
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """Output paths of images and videos; collisions and (without ``overwrite``) existing files refused.

    ``crops_named`` (``--save-faces`` / ``--compare``): face crops are named by the input's stem,
    so two inputs with one stem (``a.png``, ``a.jpg``) are refused only then."""
    if ext not in EXT_CHOICES:
        raise RestorekitError(f"--ext {ext}: expected one of {', '.join(EXT_CHOICES)}")
    if out.is_file():
        raise RestorekitError(f"{out}: is a file; the output of `restorekit faces` is a folder")
    img_pairs = [
        (p, out / "restored_imgs" / (_name(p.stem, suffix) + (p.suffix if ext == "auto" else "." + ext)))
        for p in images
    ]
    vid_pairs = [(p, out / "restored_videos" / (_name(p.stem, suffix) + p.suffix.lower())) for p in videos]
    seen: dict[Path, Path] = {}
    stems: dict[str, Path] = {}
    for src, dst in img_pairs + vid_pairs:
        key = dst.resolve()
        if key == src.resolve():
            raise RestorekitError(f"{dst}: output would replace its input; choose another -o")
        if key in seen:
            raise RestorekitError(f"{seen[key]} and {src} would both be written to {dst}")
        if crops_named and src in dict(img_pairs) and src.stem in stems:  # face crops are named by stem
            raise RestorekitError(f"{stems[src.stem]} and {src} would share face crop names {src.stem}_NN")
        seen[key] = src
        stems[src.stem] = src
    existing = [dst for _, dst in img_pairs + vid_pairs if dst.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise RestorekitError(f"{existing[0]}: already exists{more}; pass --overwrite to replace")
    return img_pairs, vid_pairs


@dataclass
class Loaded:
    """An image as the pipeline takes it (RGB or RGBA, the file's sample type) and what it was."""

    rgb: np.ndarray
    bit_depth: int
    has_alpha: bool
    gray: bool


def load(path: Path) -> Loaded:
    """Decode ``path`` into RGB(A): gray → three equal channels, gray + alpha → RGBA."""
    raw = read_image_raw(path, orient=True)  # a phone photo upright, as a viewer shows it
    img = raw.img
    if img.dtype == np.float64:
        img = img.astype(np.float32)
    c = img.shape[2]
    gray = raw.is_gray or (c == 4 and is_gray_alpha_png(path))
    if c == 1:
        rgb = np.repeat(img, 3, axis=2)
    elif c == 2:
        rgb = img[..., [0, 0, 0, 1]]
    elif c == 3:
        rgb = img[..., ::-1]
    else:
        rgb = img[..., [2, 1, 0, 3]]
    return Loaded(np.ascontiguousarray(rgb), raw.bit_depth, raw.has_alpha, gray)


def to_unit(img: np.ndarray) -> np.ndarray:
    """Samples as float32 in [0, 1] (what ``save_restored`` quantises)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def as_restored(img: np.ndarray, gray: bool) -> Restored:
    """A pipeline output (RGB(A), any sample type) as ``Restored`` planes; gray inputs back to gray."""
    f = to_unit(img)
    color, alpha = (f[..., :3], f[..., 3:4]) if f.shape[2] == 4 else (f, None)
    if gray:
        color = (color @ _GRAY)[..., None]
    return Restored(np.ascontiguousarray(color), alpha)


@dataclass
class Summary:
    """What ``--json`` writes, gathered as the files are done."""

    images: list[dict[str, Any]] = field(default_factory=list)
    videos: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def as_dict(self, settings: dict[str, Any]) -> dict[str, Any]:
        faces = sum(len(r["faces"]) for r in self.images)
        return {
            "settings": settings,
            "images": self.images,
            "videos": self.videos,
            "counts": {
                "images": len(self.images),
                "faces": faces,
                "failed_faces": sum(r["failed"] for r in self.images),
                "images_without_faces": sum(1 for r in self.images if not r["faces"]),
                "videos": len(self.videos),
                "frames": sum(v["frames"] for v in self.videos),
                "video_faces": sum(v["faces"] for v in self.videos),
            },
            "elapsed_s": round(time.perf_counter() - self.started, 3),
        }


def face_records(result: Any) -> list[dict[str, Any]]:
    return [
        {
            "box": [round(float(v), 2) for v in f.box],
            "score": round(float(f.score), 5),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in f.landmarks],
            "restored": bool(f.restored),
        }
        for f in result.faces
    ]


def _write_png(path: Path, img: np.ndarray, gray: bool, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise RestorekitError(f"{path}: already exists; pass --overwrite to replace")
    return save_restored(path, as_restored(img, gray), 16 if img.dtype == np.uint16 else 8)


def restore_faces_files(
    restorer: Any,
    img_pairs: list[tuple[Path, Path]],
    vid_pairs: list[tuple[Path, Path]],
    out: Path,
    *,
    forced_ext: bool,
    suffix: str | None = None,
    save_faces: bool = False,
    compare: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
) -> Summary:
    """Run ``restorer`` (a ``FaceRestorer``) on every planned input and write its outputs."""
    from tqdm import tqdm

    summary = Summary()
    inputs = {src.resolve() for src, _ in img_pairs}
    show = not quiet and sys.stderr.isatty()
    for src, planned in tqdm(img_pairs, unit="img", desc="images", disable=not show or not img_pairs):
        loaded = load(src)
        dst, note = final_path(planned, loaded.bit_depth, loaded.has_alpha, forced_ext)
        if dst != planned and ((dst.exists() and not overwrite) or dst.resolve() in inputs):
            raise RestorekitError(f"{dst}: already exists; pass --overwrite to replace")
        if note and not quiet:
            tqdm.write(note, file=sys.stderr)
        result = restorer.process(loaded.rgb)
        save_restored(dst, as_restored(result.image, loaded.gray), loaded.bit_depth)
        for i, (crop, face) in enumerate(zip(result.cropped, result.restored, strict=True)):
            if save_faces:
                _write_png(out / "cropped_faces" / f"{src.stem}_{i:02d}.png", crop, loaded.gray, overwrite)
                name = _name(f"{src.stem}_{i:02d}", suffix) + ".png"
                _write_png(out / "restored_faces" / name, face, loaded.gray, overwrite)
            if compare:
                side = np.concatenate([crop, face], axis=1)
                _write_png(out / "cmp" / f"{src.stem}_{i:02d}.png", side, loaded.gray, overwrite)
        summary.images.append({
            "input": str(src), "output": str(dst), "size": list(loaded.rgb.shape[:2]),
            "faces": face_records(result), "failed": int(result.failed),
        })  # fmt: skip
    for src, dst in vid_pairs:
        summary.videos.append(restore_faces_video(restorer, src, dst, overwrite=overwrite, quiet=quiet))
    return summary


def restore_faces_video(
    restorer: Any, src: Path, dst: Path, *, overwrite: bool = False, quiet: bool = False
) -> dict[str, Any]:
    """Faces of every frame restored, landmarks smoothed over time (``LandmarkSmoother``)."""
    from restorekit.faces.smoothing import LandmarkSmoother
    from restorekit.faces.video import probe_video, restore_video

    smoother = LandmarkSmoother(fps=probe_video(src)["fps"] or 25.0)
    counts = {"faces": 0, "failed": 0, "frames_without_faces": 0}

    def frame(img: np.ndarray) -> np.ndarray:
        result = restorer.process(img, landmark_filter=smoother)
        counts["faces"] += len(result.faces)
        counts["failed"] += int(result.failed)
        counts["frames_without_faces"] += not result.faces
        return result.image

    def frame_time(t: float | None) -> None:
        smoother.time = t

    info = restore_video(src, dst, frame, progress=not quiet, overwrite=overwrite, on_frame_time=frame_time)
    return {**info, **counts}


def write_summary(path: Path, data: dict[str, Any], overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise RestorekitError(f"{path}: already exists; pass --overwrite to replace")
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())

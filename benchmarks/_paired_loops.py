"""The dataloader benchmark's side-by-side: BasicSR's per-sample path written out, and its timer.

``BasicSRLoop`` repeats what BasicSR's ``PairedImageDataset`` does for a training sample (disk
backend, ``gt_size`` set, flips and rotations), so restorekit's loader can be compared with it on
the same folders in the same run, without BasicSR installed.
"""

from __future__ import annotations

import gc
import io
import random
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from restorekit.engine.sampler import ResumableSampler


class BasicSRLoop(Dataset):
    """What BasicSR's ``PairedImageDataset`` does per sample, written out here: read the bytes,
    ``cv2.imdecode`` (BGR), the whole image → float32 / 255, paired random crop, flips with
    ``cv2.flip`` and a transpose on the float patches, BGR → RGB and HWC → CHW on the patch."""

    def __init__(self, gt_dir: Path, lq_dir: Path, gt_size: int, scale: int) -> None:
        self.paths = [(str(p), str(lq_dir / p.name)) for p in sorted(gt_dir.glob("*.png"))]
        self.gt_size, self.scale = gt_size, scale

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        rnd = random.Random(seed)  # BasicSR uses the global `random`; seeded here for fairness
        gt_path, lq_path = self.paths[index]
        gt, lq = (self._read(p) for p in (gt_path, lq_path))
        s, size, lq_size = self.scale, self.gt_size, self.gt_size // self.scale
        if gt.shape[0] != lq.shape[0] * s or gt.shape[1] != lq.shape[1] * s:
            raise ValueError(f"{gt_path}: GT is not {s}x the LQ")
        top, left = rnd.randint(0, lq.shape[0] - lq_size), rnd.randint(0, lq.shape[1] - lq_size)
        lq = lq[top : top + lq_size, left : left + lq_size, ...]
        gt = gt[top * s : top * s + size, left * s : left * s + size, ...]
        hflip, vflip, rot90 = (rnd.random() < 0.5 for _ in range(3))
        out = []
        for img in (gt, lq):
            if hflip:
                cv2.flip(img, 1, img)
            if vflip:
                cv2.flip(img, 0, img)
            if rot90:
                img = img.transpose(1, 0, 2)
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            out.append(torch.from_numpy(img.transpose(2, 0, 1)).float())
        return {"lq": out[1], "gt": out[0], "lq_path": lq_path, "gt_path": gt_path}

    @staticmethod
    def _read(path: str) -> np.ndarray:
        with open(path, "rb") as f:
            buf = f.read()
        return cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR).astype(np.float32) / 255.0


def time_loop(ds: Dataset, workers: int, batch: int, batches: int) -> float:
    """Samples/s of a fresh loader with the trainer's settings, the same for every dataset."""
    loader = DataLoader(
        ds, batch_size=batch, sampler=ResumableSampler(len(ds), seed=0), num_workers=workers,
        persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
    )  # fmt: skip
    it = iter(loader)
    for _ in range(1 + 2 * workers):
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    seconds = time.perf_counter() - t0
    if workers:
        it._shutdown_workers()  # type: ignore[attr-defined]
    del it, loader
    gc.collect()
    return batches * batch / seconds


def _median_ms(fn: Any, items: list[Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        times.append((time.perf_counter() - t0) * 1e3 / len(items))
    return statistics.median(times)


def decode_lines(gt_dir: Path, lq_dir: Path, gt_size: int, rounds: int) -> list[str]:
    """Where the time goes: the ceiling that whole-image decoding puts on the ratio, and OpenCV vs
    Pillow PNG decode — whole, and Pillow stopped after a random crop's rows (``data.png_rows``)."""
    rounds = max(rounds, 3)
    names = sorted(p.name for p in gt_dir.glob("*.png"))
    pairs = [(np.fromfile(gt_dir / n, np.uint8), np.fromfile(lq_dir / n, np.uint8)) for n in names]
    decoded = [tuple(cv2.imdecode(b, cv2.IMREAD_COLOR) for b in pair) for pair in pairs]
    dec = _median_ms(lambda pair: [cv2.imdecode(b, cv2.IMREAD_COLOR) for b in pair], pairs, rounds)
    to_float = _median_ms(lambda pair: [a.astype(np.float32) / 255.0 for a in pair], decoded, rounds)
    lines = [
        f"Per sample, OpenCV decoding of the whole GT + LQ took {dec:.2f} ms and BasicSR's whole-image "
        f"float32 conversion {to_float:.2f} ms (medians of {rounds} rounds): a loader that decodes whole "
        f"images with OpenCV and does nothing else is at most {(dec + to_float) / dec:.2f}× the loop. "
        "Decoding only the rows down to the patch (8-bit gray/RGB PNG, bit-identical) is what takes "
        "restorekit past that.",
    ]
    try:
        from PIL import Image
    except ImportError:
        return [*lines, "", "PNG decode: Pillow is not installed, so every image was decoded by OpenCV."]
    from restorekit.data.png_rows import decode_png_rows

    gts = [g for g, _ in pairs]
    height = decoded[0][0].shape[0]
    rng = np.random.default_rng(0)
    need = [int(rng.integers(0, height - gt_size + 1)) + gt_size for _ in gts]  # rows down to a crop
    same = all(np.array_equal(cv2.imdecode(b, cv2.IMREAD_UNCHANGED)[:, :, ::-1], _pil(Image, b)) for b in gts)
    for b, n in zip(gts, need):
        same &= np.array_equal(decode_png_rows(b, n), cv2.imdecode(b, cv2.IMREAD_UNCHANGED)[:n])
    ms: dict[str, list[float]] = {"cv": [], "pil": [], "rows": []}
    for _ in range(rounds):  # alternating, one pass over the files each
        ms["cv"].append(_median_ms(lambda b: cv2.imdecode(b, cv2.IMREAD_UNCHANGED), gts, 1))
        ms["pil"].append(_median_ms(lambda b: _pil(Image, b), gts, 1))
        ms["rows"].append(_median_ms(lambda bn: decode_png_rows(*bn), list(zip(gts, need)), 1))
    cv, pil, rows = (statistics.median(v) for v in ms.values())
    return [
        *lines,
        "",
        f"PNG decode of the {len(gts)} GT files, median ms per image: OpenCV {cv:.2f}, Pillow {pil:.2f}, "
        f"Pillow stopped after a random {gt_size}-row crop's rows {rows:.2f} (all bit-identical to "
        f"OpenCV on these files: {'yes' if same else 'NO'}). Whole images are decoded by OpenCV (the "
        f"{'faster' if cv <= pil else 'slower'} here, and it keeps 16-bit RGB PNGs, which Pillow reads "
        "as 8-bit); Pillow is used only to stop early, where that is bit-identical (`data/png_rows.py`).",
    ]


def _pil(image: Any, buf: np.ndarray) -> np.ndarray:
    return np.asarray(image.open(io.BytesIO(buf.tobytes())))

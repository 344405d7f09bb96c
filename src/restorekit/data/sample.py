"""The bundled sample dataset: a tiny SR train/val set built offline from scikit-image's images.

scikit-image ships a handful of natural photographs inside its wheel (``skimage/data``). They
are public domain or CC0 (see ``PROVENANCE``), so they make a dataset that any test, tutorial
or quickstart config can build without a download. Only files already on disk are read — never
skimage's network fetchers. The layout matches what ``PairedImageDataset`` expects::

    root/train/GT/*.png, root/train/LQ_x{s}/*.png, root/val/GT/*.png, root/val/LQ_x{s}/*.png

GT images are shrunk so no side exceeds ``MAX_SIDE`` (cheap CPU training) and mod-cropped to
12, the least common multiple of 2, 3 and 4, as BasicSR's benchmark scripts do; LQ images are
MATLAB-bicubic ``imresize(gt, 1/s)`` rounded to 8 bits, like the benchmark LR sets.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from restorekit.data.io import read_image, write_image
from restorekit.data.transforms import mod_crop
from restorekit.errors import DataError, RestorekitError

MAX_SIDE = 512
MOD = 12

# file in skimage/data -> output stem. Validation images are held out from training.
TRAIN_IMAGES: dict[str, str] = {
    "hubble_deep_field.jpg": "hubble_deep_field",
    "ihc.png": "ihc",
    "motorcycle_left.png": "motorcycle_left",
    "motorcycle_right.png": "motorcycle_right",
    "rocket.jpg": "rocket",
    "retina.jpg": "retina",
}
VAL_IMAGES: dict[str, str] = {
    "astronaut.png": "astronaut",
    "chelsea.png": "chelsea",
    "coffee.png": "coffee",
}

_MIDDLEBURY = (
    "Middlebury 2014 stereo benchmark (Scharstein et al., GCPR 2014), 4x downsampled and"
    " redistributed by scikit-image; terms not stated there, cite the benchmark when publishing"
)

# Sources and terms as stated in the scikit-image docstrings of skimage.data (the README in the
# wheel does not list them).
PROVENANCE: dict[str, str] = {
    "astronaut": "Eileen Collins, NASA Great Images database; public domain",
    "chelsea": "Chelsea the cat, photo by Stefan van der Walt; CC0",
    "coffee": "Coffee cup, photo by Rachel Michetti, courtesy of Pikolo Espresso Bar; CC0",
    "hubble_deep_field": "Hubble eXtreme Deep Field, NASA (HubbleSite); public domain",
    "ihc": "IHC staining, Center for Microscopy And Molecular Imaging (CMMI); no known copyright"
    " restrictions",
    "motorcycle_left": _MIDDLEBURY,
    "motorcycle_right": _MIDDLEBURY,
    "rocket": "DSCOVR launch on Falcon 9, SpaceX photos; released into the public domain",
    "retina": "Fundus photograph, Mikael Häggström, Wikimedia Commons; CC0 1.0",
}


def skimage_data_dir() -> Path:
    """The ``skimage/data`` folder of the installed wheel, found without importing skimage."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RestorekitError(
            "the sample dataset is built from scikit-image's bundled images: pip install scikit-image"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _shrink(img: np.ndarray) -> np.ndarray:
    """Area-downscale so the longer side is at most MAX_SIDE, then round to 8 bits."""
    h, w = img.shape[:2]
    f = MAX_SIDE / max(h, w)
    if f < 1:
        size = (max(1, round(w * f)), max(1, round(h * f)))  # cv2 wants (width, height)
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        if img.ndim == 2:
            img = img[:, :, None]
    return (np.round(np.clip(img, 0, 1) * 255) / 255).astype(np.float32)


def _readme(scales: Sequence[int]) -> str:
    lines = [
        "restorekit sample dataset",
        "",
        "Built by restorekit.data.sample.make_sample_dataset from the images bundled in the",
        "scikit-image wheel (skimage/data). GT: area-downscaled so no side exceeds "
        f"{MAX_SIDE} px, mod-cropped to {MOD}.",
        f"LQ_x{{s}} for s in {list(scales)}: MATLAB-compatible bicubic imresize(GT, 1/s), rounded to 8 bit.",
        f"train: {', '.join(TRAIN_IMAGES.values())}",
        f"val: {', '.join(VAL_IMAGES.values())}",
        "",
        "Sources and terms (from the scikit-image documentation of skimage.data):",
        *(f"  {name}: {src}" for name, src in PROVENANCE.items()),
        "Check these terms yourself before redistributing the images or models trained on them.",
        "",
    ]
    return "\n".join(lines)


def _expected(root: Path, scales: Sequence[int]) -> dict[str, Any]:
    layout: dict[str, Any] = {"root": root}
    for split in ("train", "val"):
        layout[f"{split}_gt"] = root / split / "GT"
        layout[f"{split}_lq"] = {s: root / split / f"LQ_x{s}" for s in scales}
    return layout


def make_sample_dataset(
    root: Path | str, scales: Sequence[int] = (2, 3, 4), overwrite: bool = False
) -> dict[str, Any]:
    """Build (or find complete) the sample dataset under ``root``; returns its layout.

    The result maps ``root``, ``train_gt``/``val_gt`` (folders), ``train_lq``/``val_lq``
    ({scale: folder}), ``num_train``, ``num_val`` and ``created`` (False when everything was
    already there). Only missing files are written unless ``overwrite`` is set.
    """
    from restorekit.data.degradations import imresize  # sibling package, imported late

    root = Path(root)
    scales = tuple(int(s) for s in scales)
    bad = [s for s in scales if s < 1 or MOD % s]
    if bad:
        raise RestorekitError(f"scales: {bad} do not divide {MOD}; the sample GT is mod-cropped to {MOD}")
    src_dir = skimage_data_dir()
    layout = _expected(root, scales)
    layout.update(num_train=len(TRAIN_IMAGES), num_val=len(VAL_IMAGES), created=False)

    for split, images in (("train", TRAIN_IMAGES), ("val", VAL_IMAGES)):
        for fname, stem in images.items():
            gt_path = layout[f"{split}_gt"] / f"{stem}.png"
            lq_paths = {s: layout[f"{split}_lq"][s] / f"{stem}.png" for s in scales}
            todo = [p for p in (gt_path, *lq_paths.values()) if overwrite or not p.is_file()]
            if not todo:
                continue
            layout["created"] = True
            if gt_path in todo:
                src = src_dir / fname
                if not src.is_file():
                    raise DataError(f"{src}: missing from the installed scikit-image; reinstall it")
                gt = mod_crop(_shrink(read_image(src)), MOD)
                write_image(gt_path, gt)
            else:
                gt = read_image(gt_path)
            for s, lq_path in lq_paths.items():
                if lq_path in todo:
                    lq = np.asarray(imresize(gt, 1.0 / s), dtype=np.float32)
                    want = (math.ceil(gt.shape[0] / s), math.ceil(gt.shape[1] / s))
                    if lq.shape[:2] != want:
                        raise RuntimeError(f"imresize gave {lq.shape[:2]} for {gt.shape[:2]} at 1/{s}")
                    write_image(lq_path, lq)  # write_image clips and rounds to 8 bit
    readme = root / "README.txt"
    if overwrite or not readme.is_file():
        readme.parent.mkdir(parents=True, exist_ok=True)
        readme.write_text(_readme(scales), encoding="utf-8")
    return layout

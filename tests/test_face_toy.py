"""The face toy: the offline face set (``restorekit data make-faces``) and configs/gfpgan_toy.yml."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from restorekit.data.face_components import EYE_HALF_RATIO, entry_key, load_components
from restorekit.errors import DataError
from restorekit.faces.align import face_template
from restorekit.faces.toyset import VGG_FILE, degrade_val, jitter_points, make_faces

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gfpgan_toy.yml"


def test_builder_writes_aligned_faces_boxes_and_a_fixed_held_out_set(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    counts = make_faces(root, size=64, seed=0, jitters=3)
    assert counts == {"train": 2 * 3 + 80, "val": 20}
    train = sorted((root / "train").glob("*.png"))
    assert len(train) == 86
    assert {p.stem for p in train if not p.stem.startswith("lfw")} == {
        f"{n}_{j:03d}" for n in ("astronaut", "hopper") for j in range(3)
    }
    # held out: LFW 80..99 in val only, never in train
    val_gt = sorted(p.name for p in (root / "val" / "gt").glob("*.png"))
    assert val_gt == [f"lfw_{i:03d}.png" for i in range(80, 100)]
    assert val_gt == sorted(p.name for p in (root / "val" / "lq").glob("*.png"))
    assert not {p.name for p in train} & set(val_gt)
    for p in [*train[:3], root / "val" / "gt" / val_gt[0]]:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    gt = cv2.imread(str(root / "val" / "gt" / val_gt[0]))
    lq = cv2.imread(str(root / "val" / "lq" / val_gt[0]))
    assert np.array_equal(lq, degrade_val(gt)) and not np.array_equal(lq, gt)

    # every training image has its own entry; boxes lie inside the 64 px face, near the template
    table = load_components(root / "landmarks.pth")
    assert set(table) == {p.stem for p in train}
    assert all(entry_key(i, p.stem, table) == p.stem for i, p in enumerate(train))
    tpl = face_template(64)
    d = math.hypot(*(tpl[1] - tpl[0]))
    for stem, entry in table.items():
        for part, ref in (("left_eye", tpl[0]), ("right_eye", tpl[1]), ("mouth", (tpl[3] + tpl[4]) / 2)):
            x, y, half = entry[part]
            assert 2.0 <= half < 10, (stem, part, half)
            assert half < x < 64 - half and half < y < 64 - half, (stem, part, x, y)
            # the jitter moves a detected point by a few percent of the eye distance, no more
            assert math.hypot(x - ref[0], y - ref[1]) < 0.35 * d, (stem, part)
    assert table["lfw_000"]["left_eye"][2] == pytest.approx(EYE_HALF_RATIO * d)

    vgg = torch.load(root / VGG_FILE, weights_only=True)
    assert "features.16.weight" in vgg and "features.18.weight" not in vgg  # conv1_1 .. conv3_4, no deeper


def test_jitter_is_a_small_seeded_similarity() -> None:
    pts = face_template(64)
    a = jitter_points(pts, np.random.default_rng(3))
    assert np.array_equal(a, jitter_points(pts, np.random.default_rng(3)))
    assert not np.allclose(a, pts)
    d0, d1 = math.dist(pts[0], pts[1]), math.dist(a[0], a[1])
    assert 0.94 <= d1 / d0 <= 1.06  # a similarity: one scale for every distance
    assert math.dist(a[2], a[3]) / math.dist(pts[2], pts[3]) == pytest.approx(d1 / d0)
    assert np.abs(a.mean(0) - pts.mean(0)).max() <= 0.04 * d0 + 1e-9


def test_builder_rejects_a_tiny_size(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--size"):
        make_faces(tmp_path, size=16)


# Not here yet: training configs/gfpgan_toy.yml through the CLI. One iteration took 12-20 s on the
# loaded 2-core machine, so the toy does not yet run in a few minutes (issue 11 closing note).

"""Data folders a hostile tester builds: symlink loops, links to a parent folder, one gray image
in a colour training set."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import tiny_config, write_config
from restorekit.cli import main
from restorekit.data.collate import collate
from restorekit.data.datasets import PairedImageDataset
from restorekit.errors import DataError
from restorekit.inference.files import collect_inputs


def pairs(root: Path) -> tuple[Path, Path]:
    gt, lq = root / "gt", root / "lq"
    gt.mkdir(parents=True)
    lq.mkdir(parents=True)
    cv2.imwrite(str(gt / "a.png"), np.zeros((16, 16, 3), np.uint8))
    cv2.imwrite(str(lq / "a.png"), np.zeros((8, 8, 3), np.uint8))
    return gt, lq


def test_a_symlink_loop_in_a_data_folder_is_not_an_image(tmp_path: Path) -> None:
    gt, lq = pairs(tmp_path)
    os.symlink("b.png", gt / "b.png")  # b.png -> b.png: ELOOP on every stat
    os.symlink("b.png", lq / "b.png")
    ds = PairedImageDataset(str(gt), str(lq), scale=2)  # was an OSError traceback while pairing
    assert len(ds) == 1 and ds[0]["gt"].shape == (3, 16, 16)


def test_a_glob_over_a_link_to_the_parent_terminates(tmp_path: Path) -> None:
    gt, _ = pairs(tmp_path)
    os.symlink("..", gt / "up")  # a loop for any search that follows links to folders
    os.symlink(".", gt / "here")
    (gt / "sub").mkdir()
    cv2.imwrite(str(gt / "sub" / "c.png"), np.zeros((4, 4, 3), np.uint8))
    found, single = collect_inputs(f"{gt}/**/*.png")
    assert [p.relative_to(gt).as_posix() for p in found] == ["a.png", "sub/c.png"] and not single


def test_one_gray_image_in_a_colour_set_is_converted_and_others_are_one_line() -> None:
    rgb = {"gt": torch.rand(3, 4, 4), "gt_path": "a.png"}
    gray = {"gt": torch.rand(1, 4, 4), "gt_path": "g.png"}
    batch = collate([rgb, dict(gray)])
    assert batch["gt"].shape == (2, 3, 4, 4)
    assert torch.equal(batch["gt"][1, 0], batch["gt"][1, 2]) and torch.equal(batch["gt"][1, 0], gray["gt"][0])
    rgba = {"gt": torch.rand(4, 4, 4), "gt_path": "x.png"}
    with pytest.raises(
        DataError, match=r"^x\.png: gt has shape \(4, 4, 4\), other images of its batch \(3, 4, 4\)"
    ):
        collate([rgb, rgba])


def test_training_on_a_set_with_one_gray_image(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{"train.total_iter": 4, "val.freq": None, "data.val": {}})
    gt_dir = Path(cfg["data"]["train"]["dataset"]["dataroot_gt"])
    lq_dir = Path(cfg["data"]["train"]["dataset"]["dataroot_lq"])
    for folder in (gt_dir, lq_dir):  # the first pair becomes gray on both sides
        img = cv2.imread(str(folder / "img000.png"))
        cv2.imwrite(str(folder / "img000.png"), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    cfg["data"]["train"]["batch_size"] = 6  # every batch holds the gray pair
    assert main(["train", "-c", str(write_config(tmp_path / "g.yml", cfg))]) == 0

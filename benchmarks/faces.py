#!/usr/bin/env python
"""faces: faces/s of detect + align + restore + paste at 512, batched vs one face at a time.

What ``restorekit faces`` runs per photo (``restorekit.faces.pipeline.FaceRestorer.process``):
MTCNN detection (the facenet-pytorch wheel's weights), alignment to the 512 FFHQ template,
the face network, colour fix, inverse warp and soft-mask paste onto a Lanczos ×2 background. The
network is a randomly initialised GFPGANv1Clean in v1.4's layout (``channel_multiplier 2``,
``--narrow`` 1 = the release's size; no real weights exist offline, and the speed does not
depend on the values). The photo is a canvas of ``--faces`` astronaut heads (scikit-image),
each ~200 px wide.

Two configurations of the same pipeline, interleaved in rounds (median reported), so a busy
spell on a shared machine hits both alike: ``batch 4`` (faces through the network four at a
time) and ``batch 1`` (every stage done one face at a time). The ratio is what batching buys.
It decides ``faces.pipeline.default_batch``: 4 on a GPU, 1 on the CPU, where it measured < 1.

Run ``python benchmarks/faces.py --threads 2`` (≈ minutes on 2 CPU cores at narrow 1; ``--narrow
0.5`` for a quarter of the network's work), ``--quick`` for a smoke run that writes nothing.
The table replaces the ``## faces`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import check_device, load_average, machine, sync, write_section

from restorekit.archs.gfpgan_clean import GFPGANv1Clean
from restorekit.faces.pipeline import load_face_restorer


def canvas(faces: int) -> np.ndarray:
    """``faces`` astronaut heads (256² crops around the face) in a row on a flat RGB canvas."""
    head = cv2.resize(skimage.data.astronaut()[0:320, 80:400], (256, 256), interpolation=cv2.INTER_AREA)
    img = np.full((288, 16 + faces * 272, 3), (190, 205, 200), np.uint8)
    for i in range(faces):
        img[16:272, 16 + i * 272 : 272 + i * 272] = head if i % 2 == 0 else head[:, ::-1]
    return img


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--faces", type=int, default=4, help="faces on the canvas (4)")
    p.add_argument("--narrow", type=float, default=1.0, help="GFPGANv1Clean width; 1 = v1.4 (1)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up (3)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run; writes no results")
    p.add_argument("--results", type=Path, help="RESULTS.md to update (default: benchmarks/RESULTS.md)")
    args = p.parse_args()
    check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    size, cm = 512, 2
    if args.quick:
        size, cm, args.narrow, args.rounds, args.faces = 64, 1, 0.125, 1, 2
    started = time.perf_counter()
    torch.manual_seed(0)
    net = GFPGANv1Clean(
        out_size=size, num_style_feat=512 if size == 512 else 32, channel_multiplier=cm, num_mlp=8,
        narrow=args.narrow, input_is_latent=True, different_w=True, sft_half=True,
    )  # fmt: skip
    img = canvas(args.faces)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "gfpgan_random.pth"
        torch.save({"params_ema": net.state_dict()}, weights)
        configs = {b: load_face_restorer(weights, upscale=2, device=args.device, batch=b) for b in (4, 1)}
    found = len(configs[4].process(img).faces)  # also the warm-up
    configs[1].process(img)
    times: dict[int, list[float]] = {4: [], 1: []}
    for r in range(args.rounds):
        for b in (4, 1) if r % 2 == 0 else (1, 4):
            sync(args.device)
            t0 = time.perf_counter()
            result = configs[b].process(img)
            sync(args.device)
            times[b].append(time.perf_counter() - t0)
            assert len(result.faces) == found
    rows = ["| faces per forward | s per canvas (median) | faces/s |", "|---|---|---|"]
    rate = {}
    for b in (4, 1):
        t = statistics.median(times[b])
        rate[b] = found / t
        rows.append(f"| {b} | {t:.2f} | {rate[b]:.2f} |")
    text = "\n".join([
        "## faces",
        "",
        f"`python benchmarks/faces.py{''.join(' ' + a for a in sys.argv[1:])}` — {date.today()}, "
        f"{machine(args.device)}, {torch.get_num_threads()} torch threads, load average "
        f"{load_average()} at the end, {time.perf_counter() - started:.0f} s in all.",
        "",
        f"`FaceRestorer.process` (MTCNN detect + align + GFPGANv1Clean {size} restore, "
        f"channel_multiplier {cm}, narrow {args.narrow}, random weights, fp32 + colour fix + paste on "
        f"a Lanczos ×2 background) on a {img.shape[1]}×{img.shape[0]} canvas with {found} faces; "
        f"median of {args.rounds} interleaved rounds after a warm-up.",
        "",
        *rows,
        "",
        f"Batching ratio (batch 4 ÷ batch 1): **{rate[4] / rate[1]:.2f}×**.",
    ])  # fmt: skip
    print(text)
    if not args.quick:
        write_section("faces", text, args.results or Path(__file__).resolve().parent / "RESULTS.md")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""SwinIR attention: fused ``scaled_dot_product_attention`` vs the plain softmax formula.

Inference ms per image of SwinIR-M ×2 (the classical release: embed 180, 6 RSTBs × 6 blocks,
window 8, random weights) at ``--size``² on the CPU, with every block's attention switched
between SDPA (the default path) and the plain reference (``SwinIR.set_fused_attention``). The two
paths run interleaved in rounds (order swapped each round) and the median per path is reported,
so a slow spell of a shared machine hits both alike; the first round is a warm-up.

Run ``python benchmarks/swinir.py`` (256² takes about a minute per image on 2 shared cores:
``--size 128`` is the default there), ``--quick`` for a smoke run with a tiny model. The table
replaces the ``## SwinIR attention`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, write_section

import restorekit.archs  # noqa: F401  (registration)
from restorekit.archs.swinir import SwinIR
from restorekit.registry import ARCHS

SECTION = "SwinIR attention"
SWINIR_M_X2 = dict(
    upscale=2, in_chans=3, img_size=64, window_size=8, img_range=1.0, depths=(6,) * 6, embed_dim=180,
    num_heads=(6,) * 6, mlp_ratio=2.0, upsampler="pixelshuffle", resi_connection="1conv",
)  # fmt: skip
TINY = SWINIR_M_X2 | dict(img_size=16, depths=(2,), num_heads=(2,), embed_dim=16, window_size=4)


def time_paths(model: SwinIR, x: torch.Tensor, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"sdpa": [], "plain": []}
    with torch.inference_mode():
        for r in range(rounds + 1):  # round 0 warms up
            order = ["sdpa", "plain"] if r % 2 == 0 else ["plain", "sdpa"]
            for path in order:
                model.set_fused_attention(path == "sdpa")
                t = time.perf_counter()
                model(x)
                if r:
                    times[path].append((time.perf_counter() - t) * 1000)
    return times


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128, help="input side in pixels (256 on a fast machine)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (after one warm-up)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="tiny model and image: a smoke run")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec, size, rounds = (TINY, 24, 1) if args.quick else (SWINIR_M_X2, args.size, args.rounds)
    torch.manual_seed(0)
    model = ARCHS.build({"type": "SwinIR", **spec}).eval()
    x = torch.rand(1, 3, size, size)
    with torch.inference_mode():
        model.set_fused_attention(True)
        a = model(x)
        model.set_fused_attention(False)
        diff = float((model(x) - a).abs().max())
    times = time_paths(model, x, rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    speedup = med["plain"] / med["sdpa"]
    name = "tiny SwinIR (smoke run)" if args.quick else "SwinIR-M x2"
    lines = [
        f"## {SECTION}",
        "",
        f"{name}, random weights, one {size}² RGB image, CPU, {torch.get_num_threads()} threads; "
        f"median of {rounds} interleaved rounds after a warm-up ({date.today()}).",
        f"Machine: {machine()}. Load average before: {load_average()}.",
        "",
        "| attention | ms / image | vs plain |",
        "|---|---:|---:|",
        f"| SDPA (`F.scaled_dot_product_attention`) | {med['sdpa']:.0f} | {speedup:.2f}× |",
        f"| plain (`softmax(q·kᵀ + bias + mask)·v`, fp32 softmax) | {med['plain']:.0f} | 1.00× |",
        "",
        f"max |SDPA − plain| over the output: {diff:.1e}.",
    ]
    text = "\n".join(lines) + "\n"
    if args.quick:
        print(text)
        return
    write_section(SECTION, text, args.results)
    print(text)


if __name__ == "__main__":
    main()

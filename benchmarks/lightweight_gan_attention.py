#!/usr/bin/env python
"""lightweight_gan_attention: what lightweight-gan's attention costs a small discriminator on a CPU.

Every ``LightweightGANDiscriminator`` holds a 32×32 side discriminator with two attention blocks
of 8 heads × 64 (lightweight-gan's fixed width), whatever the image size and ``fmap_max``. This
times one forward + backward of the toy's D (32 px, fmap_max 64, batch 16) and of its side
discriminator alone, for:

* 8 × 64 in one pass over the batch (how the reference computes it);
* 8 × 64 in cache-sized slices of (batch × heads), what ``LinearAttention`` does on a CPU;
* 2 × 16 (``attn_heads: 2, attn_dim_head: 16``), the toy config's width.

Minimum of ``--repeats`` runs after one warm-up, each case alternated so drift hits all alike.
The table replaces the ``## lightweight_gan_attention`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import torch
from _common import RESULTS, load_average, machine, write_section

import restorekit.archs  # noqa: F401  (registration)
from restorekit.archs.layers import lightweight_gan_blocks as blocks
from restorekit.registry import ARCHS

SECTION = "lightweight_gan_attention"
CASES = {
    "8 × 64, one pass": (8, 64, 1 << 40),
    "8 × 64, CPU slices": (8, 64, blocks._CPU_CHUNK),
    "2 × 16 (toy)": (2, 16, blocks._CPU_CHUNK),
}


def fwd_bwd(module: torch.nn.Module, x: torch.Tensor) -> float:
    t = time.perf_counter()
    out = module(x)
    parts = out if isinstance(out, tuple) else (out,)
    sum(p.float().sum() for p in parts if isinstance(p, torch.Tensor)).backward()
    return time.perf_counter() - t


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (batch 2, one repeat)")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.repeats = 2, 1
    torch.set_num_threads(args.threads)
    before = load_average()
    nets = {}
    for name, (heads, dim_head, _) in CASES.items():
        torch.manual_seed(0)
        spec = {"type": "LightweightGANDiscriminator", "image_size": 32, "fmap_max": 64}
        nets[name] = ARCHS.build(
            {**spec, "disc_output_size": 1, "attn_heads": heads, "attn_dim_head": dim_head}
        )
    x = torch.rand(args.batch, 3, 32, 32)
    side_in = torch.nn.functional.interpolate(x, size=(32, 32))
    times: dict[str, dict[str, list[float]]] = {n: {"D": [], "side": []} for n in CASES}
    for rep in range(args.repeats + 1):
        for name, (_, _, chunk) in CASES.items():
            blocks._CPU_CHUNK = chunk
            d, s = fwd_bwd(nets[name], x), fwd_bwd(nets[name].to_shape_disc_out, side_in)
            if rep:  # the first round warms up
                times[name]["D"].append(d)
                times[name]["side"].append(s)
    base = min(times["8 × 64, one pass"]["D"])
    rows = [
        f"| {name} | {min(t['D']) * 1e3:.0f} | {min(t['side']) * 1e3:.0f} | {base / min(t['D']):.1f}× |"
        for name, t in times.items()
    ]
    text = "\n".join(
        [
            f"## {SECTION}",
            "",
            f"`python benchmarks/lightweight_gan_attention.py` — {date.today().isoformat()}, {machine()}; "
            f"{args.threads} torch thread(s); load average {before} before, {load_average()} after.",
            "",
            f"One forward + backward of the toy's `LightweightGANDiscriminator` (32 px, fmap_max 64, "
            f"batch {args.batch}) and of its 32×32 side discriminator alone; minimum of {args.repeats}.",
            "",
            "| attention (heads × dim_head) | D fwd+bwd (ms) | side disc. (ms) | D speed-up |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )
    print(text)
    write_section(SECTION, text, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

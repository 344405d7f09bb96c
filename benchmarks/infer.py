#!/usr/bin/env python
"""infer: whole-image vs tiled inference — throughput and peak memory.

Two measurements, both through ``restorekit.inference.upscale.Upscaler`` (what ``restorekit
infer`` and ``restorekit.load_model`` run):

1. **Throughput** (input megapixels per second) of an SRVGGNetCompact ×4 (16 features, 4 body
   convs, random weights) on a ``--size``² RGB image: whole image, tiles of 512/256/128 with the
   default overlap of 32, and tiles of 128 in batches of 4. All configurations run in one process,
   interleaved in rounds (order rotated each round), and the median per configuration is
   reported, so a slow spell of a shared machine hits every configuration alike. The first
   round is a warm-up and is not counted.
2. **Peak memory**, one fresh subprocess per configuration, for an SRVGGNetCompact ×1 (8
   features, 2 body convs: the memory probe; ×1 so that an 8000×8000 canvas fits on a small
   machine) at 1000² … 8000². On the CPU the number is the process's peak resident set during
   the call (the kernel's ``VmHWM``, reset through ``/proc/self/clear_refs`` just before; the
   lifetime ``ru_maxrss`` where that is unavailable) minus its resident set just before it, with
   the network built and the input in memory: what inference itself added. Of that, the float32
   output canvas is unavoidable; "beyond canvas" is the rest — activations, tiles, blending —
   which is what a GPU would have to hold. With ``--device cuda`` it is
   ``torch.cuda.max_memory_allocated`` (device memory; the canvas is on the host).
   tracemalloc is not used: it sees only Python-allocator memory, not torch's tensors.

Run ``python benchmarks/infer.py`` (≈3 minutes on 2 CPU cores), ``--quick`` for a smoke run.
The table replaces the ``## infer`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import check_device, load_average, machine, sync, write_section

import restorekit.archs  # noqa: F401  (registration)
from restorekit.inference.tiling import count_tiles
from restorekit.inference.upscale import Upscaler
from restorekit.registry import ARCHS

SPEED_NET = {"type": "SRVGGNetCompact", "num_feat": 16, "num_conv": 4, "upscale": 4}
MEMORY_NET = {"type": "SRVGGNetCompact", "num_feat": 8, "num_conv": 2, "upscale": 1}
OVERLAP = 32
# (label, tile, batch)
SPEED_CONFIGS = [
    ("whole image", 0, 1),
    ("tile 512", 512, 1),
    ("tile 256", 256, 1),
    ("tile 128", 128, 1),
    ("tile 128, batch 4", 128, 4),
]


def build(spec: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ARCHS.build(dict(spec)).eval()


def image(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((size, size, 3), dtype=np.float32)


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak() -> int:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS, which is returned."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not Linux ≥ 4.0: the lifetime peak (ru_maxrss) still bounds from above
        pass
    return _status("VmRSS")


def peak_bytes() -> int:
    try:
        return _status("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure_memory(size: int, tile: int, device: str) -> dict:
    """Run in a fresh process: one restore, peak memory added by it, wall time."""
    net = build(MEMORY_NET)
    up = Upscaler(net, device=device, precision="fp32", tile=tile, tile_overlap=OVERLAP)
    warm = image(40)
    up.restore(warm)  # load kernels / allocator pools outside the measurement
    img = image(size)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = reset_peak()
    t0 = time.perf_counter()
    out = up.restore(img)
    sync(device)
    seconds = time.perf_counter() - t0
    peak = peak_bytes()
    result = {"seconds": seconds, "canvas": out.color.nbytes, "host_added": max(0, peak - before)}
    if device == "cuda":
        result["device_peak"] = torch.cuda.max_memory_allocated()
    return result


def memory_table(sizes: list[int], whole_up_to: int, device: str, threads: int | None) -> list[str]:
    rows = [
        "| input | mode | time (s) | peak added (MiB) | canvas (MiB) | beyond canvas (MiB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    if device == "cuda":
        rows[0] = "| input | mode | time (s) | device peak (MiB) | canvas on host (MiB) | host added (MiB) |"
    for size in sizes:
        for tile in ([0] if size <= whole_up_to else []) + [512]:
            cmd = [sys.executable, __file__, "--_memory", f"{size},{tile},{device}"]
            cmd += ["--threads", str(threads)] if threads else []
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                rows.append(f"| {size}² | {'whole' if tile == 0 else f'tile {tile}'} | failed: "
                            f"{proc.stderr.strip().splitlines()[-1][:80]} | | | |")  # fmt: skip
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            mib = 2**20
            mode = "whole" if tile == 0 else f"tile {tile}"
            if device == "cuda":
                rows.append(
                    f"| {size}² | {mode} | {r['seconds']:.1f} | {r['device_peak'] / mib:.0f} | "
                    f"{r['canvas'] / mib:.0f} | {r['host_added'] / mib:.0f} |"
                )
            else:
                beyond = max(0, r["host_added"] - r["canvas"])
                rows.append(
                    f"| {size}² | {mode} | {r['seconds']:.1f} | {r['host_added'] / mib:.0f} | "
                    f"{r['canvas'] / mib:.0f} | {beyond / mib:.0f} |"
                )
            print(rows[-1], flush=True)
    return rows


def speed_table(size: int, rounds: int, device: str, configs: list[tuple[str, int, int]]) -> list[str]:
    net = build(SPEED_NET)
    img = image(size)
    ups = [
        Upscaler(net, device=device, precision="fp32", tile=t, tile_overlap=OVERLAP, batch=b)
        for _, t, b in configs
    ]
    times: list[list[float]] = [[] for _ in configs]
    for r in range(rounds + 1):  # round 0 warms up
        order = list(range(len(configs)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            t0 = time.perf_counter()
            ups[i].restore(img)
            sync(device)
            if r > 0:
                times[i].append(time.perf_counter() - t0)
        if r > 0:
            print(
                f"round {r}: " + ", ".join(f"{configs[i][0]} {times[i][-1]:.2f}s" for i in order), flush=True
            )
    mpx = size * size / 1e6
    base = mpx / statistics.median(times[0])
    rows = [
        "| configuration | tiles | median time (s) | input Mpx/s | vs whole image |",
        "|---|---:|---:|---:|---:|",
    ]
    for (label, tile, _), ts in zip(configs, times):
        speed = mpx / statistics.median(ts)
        rows.append(
            f"| {label} | {count_tiles(size, size, tile, OVERLAP)} | {statistics.median(ts):.2f} | "
            f"{speed:.3f} | {speed / base:.2f}× |"
        )
    if configs[1][1] == 512:
        ratio = statistics.median(times[0]) / statistics.median(times[1])
        verdict = "met" if ratio >= 0.85 else "NOT met"
        rows += ["", f"Target (tile 512 within 15 % of whole-image throughput): {ratio:.2f}×, {verdict}."]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--size", type=int, default=1024, help="throughput image side (1024)")
    p.add_argument("--rounds", type=int, default=2, help="timed rounds after the warm-up (2)")
    p.add_argument("--memory-sizes", default="1000,2000,4000,8000")
    p.add_argument("--whole-up-to", type=int, default=2000, help="largest side also run whole (2000)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run; writes no results")
    p.add_argument("--results", type=Path, help="RESULTS.md to update (default: benchmarks/RESULTS.md)")
    p.add_argument("--_memory", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._memory:
        size, tile, device = args._memory.split(",")
        print(json.dumps(measure_memory(int(size), int(tile), device)))
        return
    check_device(args.device)
    configs = SPEED_CONFIGS
    if args.quick:
        args.size, args.rounds, args.memory_sizes, args.whole_up_to = 600, 1, "500,1000", 1000
        configs = SPEED_CONFIGS[:3]
    started = time.perf_counter()
    speed = speed_table(args.size, args.rounds, args.device, configs)
    sizes = [int(s) for s in args.memory_sizes.split(",")]
    memory = memory_table(sizes, args.whole_up_to, args.device, args.threads)
    text = "\n".join(
        [
            "## infer",
            "",
            f"`python benchmarks/infer.py{''.join(' ' + a for a in sys.argv[1:])}` — {date.today()}, "
            f"{machine(args.device)}, {torch.get_num_threads()} torch threads, load average "
            f"{load_average()} at the end, {time.perf_counter() - started:.0f} s in all.",
            "",
            f"Throughput: SRVGGNetCompact ×4 (16 features, 4 convs), {args.size}×{args.size} RGB input, "
            f"overlap {OVERLAP}, fp32, median of {args.rounds} interleaved rounds after a warm-up.",
            "",
            *speed,
            "",
            "Peak memory: SRVGGNetCompact ×1 (8 features, 2 convs), one subprocess per row; "
            + (
                "device peak = `torch.cuda.max_memory_allocated`."
                if args.device == "cuda"
                else "peak added = peak resident set during the call (`VmHWM`, reset before it) − resident "
                "set before it; canvas = the float32 output "
                "array; beyond canvas = activations, tiles and blending (what a GPU would hold)."
            ),
            "",
            *memory,
        ]
    )
    print(text)
    if not args.quick:
        write_section("infer", text, args.results or Path(__file__).resolve().parent / "RESULTS.md")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""swinir_train: the restoration task's training iteration on SwinIR-light x4 against a bare loop.

The network is the lightweight release (``002_lightweightSR_DIV2K_s64w8_SwinIR-S_x4``: embed 60,
4 RSTBs × 6 blocks, 6 heads, window 8, mlp ratio 2, ``pixelshuffledirect``, random weights), so
the step is dominated by window attention, LayerNorm and small matmuls rather than by the big
convolutions of ``train_step.py``'s EDSR/MSRResNet — a different mix of many small kernels, where
a framework's per-iteration Python costs would show more.

What is compared, with the machinery of ``speed_options.py`` (which builds on ``train_step.py``):

* **trainer** — the real ``Trainer.fit`` loop built from a config made in code (task
  ``restoration``, the registered ``L1Loss``, Adam with BasicSR's SR settings, the AMP helper,
  reporter, cadence checks, a log flush every ``--print-freq`` iterations); its data loader is
  replaced by a cycle over pre-made in-memory batches;
* **bare** — ``out = net(lq); F.l1_loss(out, gt).backward(); adam.step(); adam.zero_grad()``
  (under ``torch.autocast`` for bf16) on a copy of the same network and weights, the same Adam
  settings and the very same batch tensors.

Timed blocks alternate bare, trainer, bare, …, bare in one process; each trainer block is
divided by the mean of the two bare blocks around it and the median of those ratios is
reported (wall time and this process's CPU time), with the min–max. Target: ≤ 1.05. EMA is off on
both sides (``train_step.py`` measures EMA's own cost separately).

Sizes: the release was trained on LR patches of 64 (GT 256) with a global batch of 64, on
GPUs. On a 2-core CPU one such step would take about two minutes (256× the pixels of the CPU
default), so the CPU default is LR patch 16 (GT 64; still 2×2 windows, so the shifted-window mask
takes part) and batch 4, one torch thread — about 0.4 s a step on an idle machine.
``--device cuda`` uses LR patch 64 and batch 16 and adds a bf16 row.

Run ``python benchmarks/swinir_train.py`` (CPU: under a minute on an idle 2-core machine, about
65 s per precision at load 5; ``--precision fp32 bf16`` adds a bf16 autocast row) or ``--device cuda``;
``--quick`` is a seconds-long smoke run with a tiny SwinIR. The table replaces the
``## swinir_train`` section of ``benchmarks/RESULTS.md`` (``--results`` elsewhere).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import torch
from _common import RESULTS, load_average, machine, run_section
from speed_options import VARIANTS, BlockTimer, trainer_vs_bare
from train_step import ADAM, SCALE

SECTION = "swinir_train"
NETWORK = "SwinIR-light x4"
SWINIR_LIGHT_X4: dict[str, Any] = {
    "type": "SwinIR", "upscale": SCALE, "in_chans": 3, "img_size": 64, "window_size": 8,
    "img_range": 1.0, "depths": [6, 6, 6, 6], "embed_dim": 60, "num_heads": [6, 6, 6, 6],
    "mlp_ratio": 2.0, "upsampler": "pixelshuffledirect", "resi_connection": "1conv",
}  # fmt: skip
TINY = {**SWINIR_LIGHT_X4, "img_size": 16, "window_size": 4, "depths": [2], "embed_dim": 16, "num_heads": [2]}

# One torch thread on CPU: the ratio is about the loop, not OpenMP's scaling, and on a busy shared
# machine OpenMP threads stall at every barrier. Log flush every iteration on CPU (100x BasicSR's
# cadence: a pessimistic setting); every 100 on CUDA, where each flush is a device sync.
FULL_CPU = {"blocks": 20, "iters": 2, "warmup": 2, "batch": 4, "patch": 16, "print_freq": 1}
FULL_CUDA = {"blocks": 5, "iters": 20, "warmup": 5, "batch": 16, "patch": 64, "print_freq": 100}
QUICK = {"blocks": 2, "iters": 2, "warmup": 1, "batch": 2, "patch": 8, "print_freq": 1}


def table(timers: dict[str, BlockTimer], args: argparse.Namespace) -> str:
    med = statistics.median
    reduced = (
        " (--quick: tiny SwinIR, not a measurement)"
        if args.quick
        else " — CPU run: patch and batch reduced from the release's LR 64 / batch 64 so that a step "
        "takes well under a second on 2 cores"
        if args.device == "cpu"
        else ""
    )
    lines = [
        f"## {SECTION}",
        "",
        f"Issue 13: `python benchmarks/swinir_train.py{args.command}`. Machine: {machine(args.device)}; "
        f"device {args.device}, {torch.get_num_threads()} torch thread(s). "
        f"Load average before / after: {args.load_before} → {args.load_after}. "
        f"Date: {date.today().isoformat()}; {args.seconds:.0f} s in all.",
        f"Setup: {args.network} (embed {args.spec['embed_dim']}, depths {args.spec['depths']}, heads "
        f"{args.spec['num_heads'][0]}, window {args.spec['window_size']}, {args.spec['upsampler']}, "
        f"random weights), batch {args.batch}, LR patch {args.patch} (GT {args.patch * SCALE}){reduced}; "
        f"L1, Adam (lr {ADAM['lr']}, betas {tuple(ADAM['betas'])}), EMA off; restoration task's "
        f"`Trainer.fit` vs a bare loop in {args.blocks} alternating blocks of {args.iters} iterations "
        f"after {args.warmup} warm-up iteration(s); trainer log flush every {args.print_freq} "
        "iteration(s); in-memory batches on both sides.",
        "Columns: median per-iteration time of the bare loop's and of the trainer's blocks; "
        "trainer/bare = median over blocks of (trainer block / mean of the two bare blocks around it), "
        "in wall time and in this process's CPU time; spread = min–max over blocks. Target ≤ 1.05.",
        "",
        "| precision | bare ms/step | trainer ms/iter | trainer samples/s | trainer/bare wall | spread | "
        "trainer/bare CPU | spread |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for name, t in timers.items():
        bare_ms = med(b[0] for b in t.bare_times) * 1e3
        tr_ms = med(b[0] for b in t.trainer_times) * 1e3
        cells = [name, f"{bare_ms:.1f}", f"{tr_ms:.1f}", f"{args.batch / tr_ms * 1e3:.1f}"]
        for kind in (0, 1):
            ratios = t.ratios(kind)
            cells += [f"{med(ratios):.3f}", f"{min(ratios):.3f}–{max(ratios):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if args.device == "cpu" and not args.quick:
        lines += [
            "",
            "No GPU was available to the session that ran this; the release's sizes (LR patch 64) and "
            "the GPU rows await `python benchmarks/swinir_train.py --device cuda` on a CUDA machine.",
        ]
    return "\n".join(lines) + "\n"


def command_line(argv: Sequence[str]) -> str:
    """The flags as given, for the section's first line, less ``--results`` (where it was written)."""
    out, skip = [], False
    for a in argv:
        if not skip and not a.startswith("--results"):
            out.append(f" {a}")
        skip = a == "--results"
    return "".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=f"defaults: CPU {FULL_CPU}; cuda {FULL_CUDA}; --quick {QUICK}",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--precision", nargs="+", choices=["fp32", "bf16"], help="default: fp32 on CPU, fp32 and bf16 on cuda"
    )
    for name, what in [
        ("blocks", "alternating timed blocks per side"),
        ("iters", "iterations per block"),
        ("warmup", "untimed warm-up iterations per side"),
        ("batch", "batch size"),
        ("patch", "LR patch size; GT is 4x"),
        ("print-freq", "trainer log flush interval"),
    ]:
        p.add_argument(f"--{name}", type=int, help=what)
    p.add_argument(
        "--threads", type=int, help="torch.set_num_threads (default: 1 on CPU, torch's choice on cuda)"
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to write the table to")
    p.add_argument("--quick", action="store_true", help="tiny SwinIR and sizes: a seconds-long smoke run")
    args = p.parse_args(argv)
    args.command = command_line(sys.argv[1:] if argv is None else argv)
    if args.device == "cpu" and args.threads is None:
        args.threads = 1
    defaults = QUICK if args.quick else FULL_CUDA if args.device == "cuda" else FULL_CPU
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.blocks, args.iters, args.warmup, args.batch, args.patch, args.print_freq) < 1:
        p.error("--blocks, --iters, --warmup, --batch, --patch and --print-freq must be >= 1")
    if args.precision is None:
        args.precision = ["fp32", "bf16"] if args.device == "cuda" else ["fp32"]
    args.warmup_for = lambda v: args.warmup  # speed_options' hook (longer warm-ups for compile)
    args.spec = TINY if args.quick else SWINIR_LIGHT_X4
    args.network = "tiny SwinIR x4" if args.quick else NETWORK
    return args


def measure(args: argparse.Namespace) -> str:
    """Trainer against bare loop for each precision; the section's text."""
    args.load_before = load_average()
    start = time.perf_counter()
    timers: dict[str, BlockTimer] = {}
    with tempfile.TemporaryDirectory(prefix="rk_bench_") as tmp:
        for name in args.precision:
            t0 = time.perf_counter()
            torch.manual_seed(0)  # the same initial weights for every precision
            timers[name] = t = trainer_vs_bare(Path(tmp), args.spec, VARIANTS[name], args)
            print(
                f"{name:5s} bare {statistics.median(b[0] for b in t.bare_times) * 1e3:7.1f} ms  "
                f"trainer/bare wall {statistics.median(t.ratios(0)):.3f}  "
                f"CPU {statistics.median(t.ratios(1)):.3f}  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    args.load_after = load_average()
    args.seconds = time.perf_counter() - start
    return table(timers, args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_section(parse_args(argv), SECTION, measure)


if __name__ == "__main__":
    sys.exit(main())

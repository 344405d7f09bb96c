#!/usr/bin/env python
"""dataloader: samples/s of the training data path alone, as the trainer builds it.

Variants: ``PairedImageDataset`` (GT and LQ PNGs decoded and cropped), ``BicubicDataset`` with
``data.degrade_on: host`` (GT decoded and cropped, LQ made by MATLAB bicubic in the worker) and
with ``degrade_on: device`` (the worker only decodes and crops; the task's batched bicubic makes
the LQ on the training device, and is timed here as part of the path), each with 0 and 2 loader
workers. The loader is the trainer's own (``Trainer._train_loader``: resumable sampler, persistent
workers, prefetch factor 4, the CUDA prefetcher on GPU), built from a real config, so what is
measured is what a training run gets; on ``--device cuda`` the host→device copy is included.

Timing. Each block starts a fresh loader (its worker start-up untimed), takes ``1 + 2·workers``
warm-up batches so the time lies in the steady state rather than in the batches prefetched
during start-up, times ``--batches`` batches (synced on the device) and shuts the workers down,
so no variant's prefetching runs behind another's measurement. Blocks of all variants alternate
in rounds, and the ratios (2 workers / 0 workers, device / host degradation) are taken within a
round, then their median over rounds — steadier than ratios of medians on a shared machine.

Data: ``--images`` generated 480×480 PNGs (smooth structure plus noise, so they compress like
photographs rather than like flat colour or white noise) and their x4 LQ; GT patch 96, batch 16,
flips and rotations on. Run ``python benchmarks/dataloader.py`` (≈2–3 minutes on 2 cores) or
``--device cuda``; ``--quick`` is a seconds-long smoke run. The table replaces the
``## dataloader`` section of ``benchmarks/RESULTS.md``.

Side by side with BasicSR (issue 15). A second table compares ``PairedImageDataset`` (crop first,
convert after; with and without ``cache_images``) with a loop written in ``_paired_loops.py`` that
does what BasicSR's ``PairedImageDataset`` does (cv2 decode → float32 whole image → paired crop →
flip/rot → CHW tensor), on the same folders (``--pair-images`` 512² PNGs with x2 LQ), through the
same ``DataLoader`` settings, rows alternating within each of ``--rounds-pair`` rounds. Under it:
the decode-bound ceiling of that ratio without the cache, and OpenCV vs Pillow PNG decode.
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from _common import (
    RESULTS,
    load_average,
    machine,
    parallel_speedup,
    run_section,
    sync,
)
from _paired_loops import BasicSRLoop, decode_lines, time_loop

import restorekit.archs
import restorekit.data
import restorekit.losses
import restorekit.tasks  # noqa: F401  (registration, as the CLI does)
from restorekit.config import validate_config
from restorekit.data import PairedImageDataset
from restorekit.engine.trainer import Trainer
from restorekit.tasks.restoration import bicubic_lq_batch

SECTION = "dataloader"
SCALE = 4
PAIR_SCALE = 2  # the side-by-side uses the setup: x2 LQ


@dataclass(frozen=True)
class Variant:
    dataset: str
    degrade_on: str
    workers: int

    @property
    def name(self) -> str:
        where = "" if self.dataset == "PairedImageDataset" else f", LQ on {self.degrade_on}"
        return f"{self.dataset}{where}, {self.workers} workers"


def variants(workers: Sequence[int]) -> list[Variant]:
    kinds = [("PairedImageDataset", "host"), ("BicubicDataset", "host"), ("BicubicDataset", "device")]
    return [Variant(d, g, w) for d, g in kinds for w in workers]


def make_images(root: Path, n: int, size: int, seed: int = 0, scale: int = SCALE) -> tuple[Path, Path]:
    """``n`` photograph-like GT PNGs of ``size``² and their area-downscaled x``scale`` LQ."""
    rng = np.random.default_rng(seed)
    gt_dir, lq_dir = root / "GT", root / "LQ"
    gt_dir.mkdir(parents=True)
    lq_dir.mkdir(parents=True)
    for i in range(n):
        base = rng.random((size // 16 + 2, size // 16 + 2, 3)).astype(np.float32)
        img = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
        img += 0.05 * rng.standard_normal((size, size, 3)).astype(np.float32)
        gt = np.clip(img * 255, 0, 255).round().astype(np.uint8)
        lq = cv2.resize(gt, (size // scale, size // scale), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(gt_dir / f"{i:04d}.png"), gt)
        cv2.imwrite(str(lq_dir / f"{i:04d}.png"), lq)
    return gt_dir, lq_dir


def build_trainer(root: Path, data: tuple[Path, Path], v: Variant, args: argparse.Namespace) -> Trainer:
    """A Trainer (tiny network: only its data path is used) with the variant's data settings."""
    dataset: dict[str, Any] = {
        "type": v.dataset,
        "dataroot_gt": str(data[0]),
        "gt_size": args.gt_size,
        "use_hflip": True,
        "use_rot": True,
    }
    if v.dataset == "PairedImageDataset":
        dataset["dataroot_lq"] = str(data[1])
    name = f"{v.dataset}_{v.degrade_on}_{v.workers}"
    raw = {
        "name": name,
        "scale": SCALE,
        "device": args.device,
        "experiments_root": str(root),
        "network_g": {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_block": 1},
        "data": {
            "train": {"dataset": dataset, "batch_size": args.batch, "num_workers": v.workers},
            "degrade_on": v.degrade_on,
        },
        "train": {
            "total_iter": 1,
            "optim_g": {"type": "Adam", "lr": 1e-4},
            "losses": {"l1": {"type": "L1Loss"}},
        },
        "logger": {"progress_bar": False, "tensorboard": False},
    }
    run_dir = root / name
    run_dir.mkdir(parents=True)
    trainer = Trainer(validate_config(raw, source="dataloader benchmark"), run_dir)
    trainer.reporter.stream = io.StringIO()
    return trainer


def fetch(prefetcher: Any, v: Variant) -> torch.Tensor:
    """One training input batch: the loader's LQ, or — LQ on device — the task's bicubic of GT."""
    batch = prefetcher.next()
    if v.degrade_on == "device":  # what RestorationTask does with an LQ-less batch
        return bicubic_lq_batch(batch["gt"], SCALE)
    return batch["lq"]


def time_block(trainer: Trainer, v: Variant, args: argparse.Namespace) -> float:
    """Samples/s of one fresh loader's steady state (see the module docstring)."""
    prefetcher = trainer._train_loader()
    for _ in range(1 + 2 * v.workers):
        fetch(prefetcher, v)
    sync(args.device)
    t0 = time.perf_counter()
    for _ in range(args.batches):
        fetch(prefetcher, v)
    sync(args.device)
    seconds = time.perf_counter() - t0
    loader_iter = getattr(prefetcher.loader, "_iterator", None)
    if loader_iter is not None:  # persistent workers: stop them now, not at garbage collection
        loader_iter._shutdown_workers()
    del prefetcher, loader_iter
    gc.collect()
    return args.batches * args.batch / seconds


# ---------------------------------------------------------------- side by side with BasicSR's path
LOOPS = ("BasicSR-style loop", "restorekit", "restorekit, cache_images")


def loop_dataset(kind: str, data: tuple[Path, Path], args: argparse.Namespace) -> Any:
    if kind == LOOPS[0]:
        return BasicSRLoop(*data, args.gt_size, PAIR_SCALE)
    return PairedImageDataset(
        str(data[0]), str(data[1]), PAIR_SCALE, gt_size=args.gt_size, use_hflip=True, use_rot=True,
        cache_images=kind == LOOPS[2],
    )  # fmt: skip


def side_by_side(root: Path, args: argparse.Namespace) -> list[str]:
    data = make_images(root, args.pair_images, args.pair_size, seed=1, scale=PAIR_SCALE)
    order = [(k, w) for w in sorted(set(args.workers)) for k in LOOPS]
    sets = {k: loop_dataset(k, data, args) for k in LOOPS}
    rates: dict[tuple[str, int], list[float]] = {v: [] for v in order}
    for r in range(args.rounds_pair):
        for kind, w in order if r % 2 == 0 else order[::-1]:
            rates[(kind, w)].append(time_loop(sets[kind], w, args.batch, args.pair_batches))
            print(f"round {r + 1}: {kind}, {w} workers: {rates[(kind, w)][-1]:8.1f} samples/s", flush=True)
    cached = sets[LOOPS[2]]
    lines = [
        f"### Side by side with BasicSR's per-sample path ({args.pair_images} GT {args.pair_size}² PNGs, "
        f"x{PAIR_SCALE} LQ, GT patch {args.gt_size}, batch {args.batch}, flips and rotations)",
        "",
        f"Each row is a plain `DataLoader` with the trainer's settings (persistent workers, prefetch "
        f"factor 4) on the same folders; {args.rounds_pair} alternating rounds of one "
        f"{args.pair_batches}-batch block per row, ratios = medians of within-round ratios. "
        f"`cache_images` held {cached.cache_bytes / 2**20:.1f} MiB (uint8 as decoded; float32 would "
        f"be {4 * cached.cache_bytes / 2**20:.1f} MiB), filled before the workers start.",
        "",
        "| loader | workers | samples/s (median) | min–max | vs BasicSR-style loop | target |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for kind, w in order:
        xs, base = rates[(kind, w)], rates[(LOOPS[0], w)]
        r = statistics.median(x / y for x, y in zip(xs, base))
        target = {LOOPS[0]: "", LOOPS[1]: "≥ 1.3×", LOOPS[2]: "≥ 3×"}[kind]
        met = "" if not target else (" met" if r >= float(target[2:-1]) else " not met")
        cells = [kind, str(w), f"{statistics.median(xs):.1f}", f"{min(xs):.1f}–{max(xs):.1f}", f"{r:.2f}×"]
        lines.append("| " + " | ".join([*cells, target + met]) + " |")
    return [*lines, "", *decode_lines(*data, args.gt_size, args.rounds_pair)]


def ratio(rates: dict[Variant, list[float]], a: Variant, b: Variant) -> str:
    if a not in rates or b not in rates:
        return "–"
    return f"{statistics.median(x / y for x, y in zip(rates[a], rates[b])):.2f}×"


def parallel_line(args: argparse.Namespace) -> list[str]:
    if args.parallel[0] is None:
        return []
    before, after = (f"{x:.2f}×" for x in args.parallel)
    return [
        f"Parallelism available (CPU work done by {max(args.workers)} processes ÷ by 1, PNG-decode "
        f"probe, before → after): {before} → {after} — the ceiling for the 'vs 0 workers' column.",
    ]


def table(rates: dict[Variant, list[float]], args: argparse.Namespace) -> str:
    lines = [
        f"## {SECTION}",
        "",
        f"Machine: {machine(args.device)}; device {args.device}, main process {torch.get_num_threads()} "
        f"torch thread(s), 1 per worker. Load average before / after: {args.load_before} → "
        f"{args.load_after}. Date: {date.today().isoformat()}.",
        f"Setup: {args.images} generated {args.size}×{args.size} PNGs (+ x4 LQ for the paired set), GT "
        f"patch {args.gt_size}, batch {args.batch}, flips and rotations; the trainer's own loader; "
        f"{args.rounds} alternating rounds of one {args.batches}-batch block per variant (fresh "
        "workers, 1 + 2·workers warm-up batches untimed); LQ on device = the task's batched MATLAB "
        "bicubic of the GT batch, timed with the loader"
        + (" (--quick: not a measurement)" if args.quick else "")
        + ".",
        "Ratios are medians over rounds of within-round ratios.",
        *parallel_line(args),
        "",
        "| variant | samples/s (median) | min–max | vs 0 workers | LQ on device / on host |",
        "|---|---:|---|---:|---:|",
    ]
    zero = min(v.workers for v in rates)
    for v, xs in rates.items():
        base = Variant(v.dataset, v.degrade_on, zero)
        host = Variant(v.dataset, "host", v.workers)
        cells = [
            v.name,
            f"{statistics.median(xs):.1f}",
            f"{min(xs):.1f}–{max(xs):.1f}",
            ratio(rates, v, base) if v.workers != zero else "1",
            ratio(rates, v, host) if v.degrade_on == "device" else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if args.device == "cpu" and not args.quick:
        lines += [
            "",
            'On CPU the "device" is the same two cores: device-side LQ moves the bicubic from the '
            "workers into the training process, where it competes with the step; the GPU case "
            "(`--device cuda`) is what the option is for and awaits a session with a GPU.",
        ]
    lines += ["", *args.side_lines]
    return "\n".join(lines) + "\n"


FULL = {
    "images": 32, "size": 480, "gt_size": 96, "batch": 16, "batches": 6, "rounds": 3,
    "pair_images": 20, "pair_size": 512, "pair_batches": 20, "rounds_pair": 5,
}  # fmt: skip
QUICK = {
    "images": 4, "size": 64, "gt_size": 32, "batch": 2, "batches": 2, "rounds": 1,
    "pair_images": 4, "pair_size": 64, "pair_batches": 2, "rounds_pair": 1,
}  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0], epilog=f"defaults: {FULL}; --quick {QUICK}"
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="loader worker counts (0 2)")
    p.add_argument(
        "--threads", type=int, help="torch threads of the main process (default: 1 on CPU, torch's on cuda)"
    )
    for key, what in [
        ("images", "generated images"),
        ("size", "image side in pixels"),
        ("gt-size", "GT patch side"),
        ("batch", "batch size"),
        ("batches", "timed batches per block"),
        ("rounds", "alternating rounds"),
        ("pair-images", "side by side: generated images"),
        ("pair-size", "side by side: image side"),
        ("pair-batches", "side by side: timed batches per block"),
        ("rounds-pair", "side by side: alternating rounds"),
    ]:
        p.add_argument(f"--{key}", type=int, help=what)
    p.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to write the table to")
    p.add_argument("--quick", action="store_true", help="tiny images and counts: a seconds-long smoke run")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    counts = (args.images, args.batch, args.batches, args.rounds, args.pair_images, args.pair_batches)
    if min(*counts, args.rounds_pair) < 1 or min(args.workers) < 0:
        p.error("image, batch and round counts must be >= 1 and --workers >= 0")
    if args.threads is None and args.device == "cpu":
        # One thread, like each worker: on a busy shared machine OpenMP threads stall at every
        # barrier, which would charge the 0-worker rows for the machine's load, not the data path.
        args.threads = 1
    if args.gt_size % SCALE or args.gt_size > min(args.size, args.pair_size):
        p.error(f"--gt-size must be a multiple of {SCALE} and at most --size and --pair-size")
    return args


def probe(args: argparse.Namespace) -> float | None:
    """The machine's parallelism now (see ``_common.parallel_speedup``): the 2-worker ceiling."""
    n = max(args.workers)
    return parallel_speedup(n, seconds=0.3 if args.quick else 2.0, rounds=1) if n > 1 else None


def measure(args: argparse.Namespace) -> str:
    args.load_before = load_average()
    args.parallel = [probe(args)]
    order = variants(sorted(set(args.workers)))
    rates: dict[Variant, list[float]] = {v: [] for v in order}
    with tempfile.TemporaryDirectory(prefix="rk_bench_") as tmp:
        root = Path(tmp)
        data = make_images(root / "data", args.images, args.size)
        trainers = {v: build_trainer(root / "runs", data, v, args) for v in order}
        for r in range(args.rounds):
            for v in order if r % 2 == 0 else order[::-1]:  # no variant always first
                rates[v].append(time_block(trainers[v], v, args))
                print(f"round {r + 1}: {v.name:50s} {rates[v][-1]:8.1f} samples/s", flush=True)
        args.side_lines = side_by_side(root / "pairs", args)
    args.load_after = load_average()
    args.parallel.append(probe(args))
    return table(rates, args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_section(parse_args(argv), SECTION, measure)


if __name__ == "__main__":
    sys.exit(main())

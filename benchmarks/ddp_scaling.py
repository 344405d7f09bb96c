#!/usr/bin/env python
"""ddp_scaling: samples/s of real training runs with 1 and 2 DDP processes under torchrun.

Each measurement is a whole ``restorekit train`` run launched the way a user launches it
(``python -m torch.distributed.run --standalone --nproc_per_node N -m restorekit train -c CFG``,
the command ``restorekit train --nproc N`` builds; gloo on CPU, NCCL on GPU). Its speed is read
from the run's own ``stats.jsonl``: ``it_per_s`` of each log interval after the first (the first
holds start-up: process group, loader, first allocations). Weak scaling: the per-process batch is
fixed, so N processes consume N × batch samples per iteration and

    samples/s = N × batch × it/s,    efficiency = samples/s(N) / (N × samples/s(1)).

On CPU there are two series, told apart by threads per process (``OMP_NUM_THREADS``):

* **1 thread per process** (``--series scaling``, the default) — the scaling series proper: does
  a second process add a second process's worth of samples/s? Efficiency < 1 measures DDP's cost
  (the gradient all-reduce, which gloo runs on the same cores, and the wait for the slower
  process at every step) plus the contention of the processes for caches, memory bandwidth and —
  on a shared machine — the cores themselves;
* **all cores** (``--series cores`` or ``both``: cores ÷ N threads each) — the practical question
  on one machine: give the cores to one process's intra-op threads or to N DDP processes? Not in
  the default run because on a busy shared machine a multi-threaded process stalls at every
  OpenMP barrier and its runs take minutes.

Runs of all variants alternate in rounds (the order reversed every other round) and the ratios are
medians of within-round ratios. On ``--device cuda`` one process per GPU is used, so 2 processes
need 2 GPUs; with fewer the table says what was skipped. Run ``python benchmarks/ddp_scaling.py``
(≈2–3 minutes on 2 cores) or ``--quick`` for a smoke run; the table replaces the
``## ddp_scaling`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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
import yaml
from _common import (
    RESULTS,
    check_device,
    load_average,
    machine,
    parallel_speedup,
    usable_cores,
    write_section,
)

SECTION = "ddp_scaling"
SCALE = 4
SRC = Path(__file__).resolve().parents[1] / "src"
EDSR_BASELINE = {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 16}
TINY = {**EDSR_BASELINE, "num_feat": 8, "num_block": 1}


@dataclass(frozen=True)
class Variant:
    nproc: int
    threads: int  # per process

    @property
    def name(self) -> str:
        return f"{self.nproc} proc × {self.threads} thread{'s' if self.threads > 1 else ''}"


def plan(args: argparse.Namespace) -> tuple[list[Variant], list[str]]:
    """The variants to run and notes on the ones that cannot run here."""
    cores, notes = usable_cores(), []
    nprocs = sorted(set(args.nproc))
    if args.device == "cuda":
        gpus = torch.cuda.device_count()
        if any(n > gpus for n in nprocs):
            notes.append(
                f"{[n for n in nprocs if n > gpus]} processes skipped: one process per GPU, {gpus} visible"
            )
        return [Variant(n, max(1, cores // n)) for n in nprocs if n <= gpus], notes
    out: list[Variant] = []
    if args.series in ("both", "scaling"):
        out += [Variant(n, 1) for n in nprocs]
    if args.series in ("both", "cores"):
        out += [Variant(n, max(1, cores // n)) for n in nprocs]
    return list(dict.fromkeys(out)), notes


def make_data(root: Path, n: int, gt: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    gt_dir, lq_dir = root / "GT", root / "LQ"
    gt_dir.mkdir(parents=True)
    lq_dir.mkdir(parents=True)
    for i in range(n):
        img = rng.integers(0, 256, (gt, gt, 3), dtype=np.uint8)
        cv2.imwrite(str(gt_dir / f"{i:03d}.png"), img)
        cv2.imwrite(
            str(lq_dir / f"{i:03d}.png"), cv2.resize(img, (gt // SCALE,) * 2, interpolation=cv2.INTER_AREA)
        )
    return gt_dir, lq_dir


def write_run_config(root: Path, name: str, data: tuple[Path, Path], args: argparse.Namespace) -> Path:
    """Decoded images are cached and loaded in-process, so the data path is a small, equal
    per-process cost and the measurement is of the step and its all-reduce."""
    cfg: dict[str, Any] = {
        "name": name,
        "scale": SCALE,
        "seed": 0,
        "device": args.device,
        "experiments_root": str(root / "experiments"),
        "network_g": args.spec,
        "data": {
            "train": {
                "dataset": {
                    "type": "PairedImageDataset",
                    "dataroot_gt": str(data[0]),
                    "dataroot_lq": str(data[1]),
                    "gt_size": args.patch * SCALE,
                    "use_hflip": True,
                    "use_rot": True,
                    "cache_images": True,
                },
                "batch_size": args.batch,
                "num_workers": 0,
            }
        },
        "train": {
            "total_iter": args.print_freq * (1 + args.intervals),
            "optim_g": {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.99]},
            "losses": {"pixel": {"type": "L1Loss"}},
        },
        "logger": {
            "print_freq": args.print_freq,
            "save_checkpoint_freq": 10**9,
            "progress_bar": False,
            "tensorboard": False,
        },
    }
    path = root / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def run_once(root: Path, v: Variant, name: str, data: tuple[Path, Path], args: argparse.Namespace) -> float:
    """One training run; returns its it/s after the first log interval."""
    cfg = write_run_config(root, name, data, args)
    env = {k: val for k, val in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = str(v.threads)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={v.nproc}",
        "-m",
        "restorekit",
        "train",
        "-c",
        str(cfg),
    ]
    run_dir = root / "experiments" / name
    if launch(cmd, env, run_dir, root / f"{name}.log", v, args):
        args.hung.append(v.name)
    rows = [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]
    rates = [r["it_per_s"] for r in rows if r.get("kind") == "train"][1:]
    if len(rates) != args.intervals:
        raise SystemExit(f"{v.name}: expected {args.intervals} timed log intervals, found {len(rates)}")
    seconds = sum(args.print_freq / r for r in rates)  # the intervals' own wall time
    return args.print_freq * len(rates) / seconds


def launch(
    cmd: list[str], env: dict[str, str], run_dir: Path, log: Path, v: Variant, args: argparse.Namespace
) -> bool:
    """Run torchrun to completion; True when it had to be stopped after the run had finished.

    A finished run (rank 0 has exported ``model.safetensors``) that does not exit within
    ``--grace`` seconds is stuck in the process-group teardown — an intermittent gloo hang seen
    here on a busy machine (a rank blocks joining gloo's thread in ``~ProcessGroupGloo``, cf.
    pytorch/pytorch#75097). Its numbers are complete, so it is stopped with SIGTERM (torchrun
    passes it on to its workers, which run in sessions of their own) and counted in the table.
    """
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        t0, done_at = time.monotonic(), None
        while proc.poll() is None:
            time.sleep(0.5)
            now = time.monotonic()
            if done_at is None and (run_dir / "model.safetensors").exists():
                done_at = now
            if (done_at is not None and now - done_at > args.grace) or now - t0 > args.timeout:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                if done_at is None:
                    raise SystemExit(
                        f"{v.name}: no result after {args.timeout} s; see the log:\n"
                        + log.read_text(encoding="utf-8")[-3000:]
                    )
                return True
    if proc.returncode != 0:
        raise SystemExit(f"{v.name}: the training run failed:\n" + log.read_text(encoding="utf-8")[-3000:])
    return False


def probe(args: argparse.Namespace) -> float | None:
    """The machine's parallelism now (``_common.parallel_speedup``): the CPU scaling ceiling."""
    n = max(args.nproc)
    if args.device != "cpu" or n < 2:
        return None
    return parallel_speedup(n, seconds=0.3 if args.quick else 2.0, rounds=1)


def within_round(its: dict[Variant, list[float]], a: Variant, b: Variant) -> float:
    """Median over rounds of samples/s(a) / samples/s(b)."""
    return statistics.median((x * a.nproc) / (y * b.nproc) for x, y in zip(its[a], its[b]))


def table(its: dict[Variant, list[float]], notes: list[str], args: argparse.Namespace) -> str:
    lines = [
        f"## {SECTION}",
        "",
        f"Machine: {machine(args.device)}; device {args.device}. Load average before / after: "
        f"{args.load_before} → {args.load_after}. Date: {date.today().isoformat()}.",
        f"Setup: {args.network}, per-process batch {args.batch} (weak scaling), LR patch {args.patch} "
        f"(GT {args.patch * SCALE}), L1, Adam, fp32, in-process data (cached PNGs); real "
        f"`restorekit train` runs under torchrun ({'NCCL' if args.device == 'cuda' else 'gloo'}), "
        f"{args.print_freq * (1 + args.intervals)} iterations each, it/s from the run's stats.jsonl over "
        f"the last {args.intervals} log intervals of {args.print_freq}; {args.rounds} alternating "
        "round(s) of all variants"
        + (" (--quick: tiny network, not a measurement)" if args.quick else "")
        + ".",
        "samples/s = processes × batch × it/s (median over rounds); efficiency = samples/s ÷ "
        "(processes × samples/s of 1 process with the same threads per process); vs 1 process on "
        "all cores (when that series ran) = samples/s ÷ that of one process using every core. "
        "Ratios are medians of within-round ratios.",
    ]
    if args.parallel[0] is not None:
        before, after = (f"{x:.2f}×" for x in args.parallel)
        lines.append(
            f"Parallelism available (CPU work done by {max(args.nproc)} processes ÷ by 1, PNG-decode "
            f"probe, before → after): {before} → {after} — the ceiling for {max(args.nproc)} × "
            "efficiency."
        )
    lines.append("")
    cores = usable_cores()
    all_cores = Variant(1, cores)
    with_cores = args.device == "cpu" and args.series != "scaling" and all_cores in its
    lines += [
        "| variant | global batch | it/s | samples/s | min–max | efficiency |"
        + (" vs 1 process on all cores |" if with_cores else ""),
        "|---|---:|---:|---:|---|---:|" + ("---:|" if with_cores else ""),
    ]
    for v, xs in its.items():
        rates = [x * v.nproc * args.batch for x in xs]
        one = Variant(1, v.threads)
        eff = f"{within_round(its, v, one) / v.nproc:.2f}" if one in its and v != one else "–"
        cells = [
            v.name,
            str(v.nproc * args.batch),
            f"{statistics.median(xs):.3f}",
            f"{statistics.median(rates):.2f}",
            f"{min(rates):.2f}–{max(rates):.2f}",
            eff,
        ]
        if with_cores:
            cells.append(f"{within_round(its, v, all_cores):.2f}×" if v != all_cores else "–")
        lines.append("| " + " | ".join(cells) + " |")
    hung = getattr(args, "hung", [])
    if hung:
        notes = [
            *notes,
            f"{len(hung)} finished run(s) ({', '.join(sorted(set(hung)))}) did not exit "
            f"within {args.grace} s, stuck in the gloo process-group teardown (cf. pytorch/pytorch"
            "#75097), and were stopped; their numbers are complete and counted",
        ]
    if notes:
        lines += ["", *(f"Note: {n}." for n in notes)]
    if with_cores and args.device == "cpu":
        lines += [
            "",
            "Threads: when other processes keep the cores busy, the OpenMP threads of one process "
            "wait for each other at every parallel region, so a process with several threads can "
            "be slower than with one; compare the load average before reading the last column.",
        ]
    if args.device == "cpu" and not args.quick:
        lines += [
            "",
            f"Why below 2×: the two processes share this machine's {cores} cores with whatever else "
            "runs on it (the load average; the parallelism line says how much more CPU work two "
            "processes could get done at all), so they rarely get a core each to themselves; "
            "every step ends in a "
            "gloo all-reduce of all gradients, computed on those same cores, and a wait for the "
            "slower process; and the two processes share caches and memory bandwidth that one "
            "process had alone. No GPU was available to the session that ran this: `--device cuda` "
            "(one process per GPU, 2 GPUs for the 2-process run) awaits a GPU machine.",
        ]
    return "\n".join(lines) + "\n"


FULL = {"batch": 4, "patch": 16, "print_freq": 4, "intervals": 3, "rounds": 3, "images": 16}
FULL_CUDA = {"batch": 16, "patch": 48, "print_freq": 20, "intervals": 5, "rounds": 2, "images": 64}
QUICK = {"batch": 2, "patch": 8, "print_freq": 2, "intervals": 1, "rounds": 1, "images": 4}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=f"defaults: CPU {FULL}; cuda {FULL_CUDA}; --quick {QUICK}",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts (1 2)")
    p.add_argument(
        "--series",
        choices=["both", "scaling", "cores"],
        default=None,
        help="CPU: 1 thread per process (scaling), cores/N threads (cores) or both (default; "
        "scaling with --quick)",
    )
    for key, what in [
        ("batch", "per-process batch"),
        ("patch", "LR patch side (GT 4x)"),
        ("print-freq", "log interval in iterations"),
        ("intervals", "timed log intervals"),
        ("rounds", "alternating rounds"),
        ("images", "generated training images"),
    ]:
        p.add_argument(f"--{key}", type=int, help=what)
    p.add_argument("--timeout", type=int, default=900, help="seconds allowed per training run")
    p.add_argument(
        "--grace", type=int, default=60, help="seconds a finished run may take to exit before it is stopped"
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to write the table to")
    p.add_argument("--quick", action="store_true", help="tiny network, few iterations: a smoke run")
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else FULL_CUDA if args.device == "cuda" else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.series is None:
        args.series = "scaling"
    if (
        min(args.batch, args.patch, args.print_freq, args.intervals, args.rounds, args.images, *args.nproc)
        < 1
    ):
        p.error("--batch, --patch, --print-freq, --intervals, --rounds, --images and --nproc must be >= 1")
    args.spec = TINY if args.quick else EDSR_BASELINE
    args.network = "EDSR tiny x4" if args.quick else "EDSR-baseline x4"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_device(args.device)
    variants, notes = plan(args)
    if not variants:
        raise SystemExit("no variant can run here: " + "; ".join(notes))
    args.load_before = load_average()
    args.parallel = [probe(args)]
    args.hung = []
    its: dict[Variant, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="rk_bench_") as tmp:
        root = Path(tmp)
        data = make_data(root / "data", args.images, args.patch * SCALE * 2)
        for r in range(args.rounds):
            for v in variants if r % 2 == 0 else variants[::-1]:  # no variant always first
                t0 = time.perf_counter()
                its[v].append(run_once(root, v, f"r{r}_n{v.nproc}_t{v.threads}", data, args))
                print(
                    f"round {r + 1}: {v.name:22s} {its[v][-1]:.3f} it/s  "
                    f"({time.perf_counter() - t0:.0f} s with start-up)",
                    flush=True,
                )
    args.load_after = load_average()
    args.parallel.append(probe(args))
    text = table(its, notes, args)
    write_section(SECTION, text, args.results)
    print(f"\n{text}\nwritten to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""train_step: the trainer's iteration against a bare PyTorch loop of the same network.

What is compared, per network (EDSR-baseline x4, MSRResNet x4) and with EMA off and on:

* **trainer** — the real ``restorekit.engine.trainer.Trainer.fit`` loop, unchanged: fetch the
  micro-batch list, ``task.train_step`` (forward, the registered ``L1Loss``, backward, AMP helper,
  Adam step, ``zero_grad``, scheduler step, EMA update, scalar dict), ``reporter.report``, progress
  bar, the log / validation / checkpoint cadence checks and, every ``--print-freq`` iterations, a
  log flush (device read-back, ``stats.jsonl``, console line);
* **bare** — ``out = net(lq); F.l1_loss(out, gt).backward(); adam.step(); adam.zero_grad()`` (plus
  a hand-written ``torch._foreach_lerp_`` EMA when EMA is on), on a copy of the same network with
  the same initial weights, the same ``torch.optim.Adam`` settings and the same data tensors.

Why in-memory batches rather than a PNG data set on both sides: the data path (decode, crop,
flip, collate) would cost the same on both sides and only dilute the ratio, and here it would
also steal the two cores from the step. So the trainer's data loader is replaced by a cycle over
pre-made batches (the trainer still calls ``prefetcher.next()`` each iteration as usual), and the
bare loop cycles over the very same tensors. What remains is exactly the framework's overhead.

How it is timed, in one process, alternating: ``task.train_step`` is wrapped by a timer that
records the time between successive calls — one full loop iteration of ``fit``, whatever the
loop does around the step — and that, at the start of each timed trainer block, first runs a
timed block of the bare loop. The sequence is B0 T0 B1 T1 … T(n-1) Bn, so each trainer block is
compared with the mean of the bare blocks on either side of it, which cancels slow drifts of the
machine (other processes, frequency changes). Warm-up steps (allocator, Adam state) are untimed.

Run ``python benchmarks/train_step.py`` (about 2–3 minutes on an idle 2-core CPU, longer when
other processes share it; one torch thread by default, see ``FULL``); ``--blocks``/``--iters`` for
more samples, ``--quick`` for a seconds-long smoke run with tiny networks. The results table
replaces the ``## train_step`` section of ``benchmarks/RESULTS.md`` (``--results`` elsewhere).
"""

from __future__ import annotations

import argparse
import copy
import io
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from _common import RESULTS, load_average, machine, write_section

import restorekit.archs
import restorekit.data
import restorekit.losses
import restorekit.tasks  # noqa: F401  (registration, as the CLI does)
from restorekit.config import validate_config
from restorekit.engine.trainer import Trainer

SECTION = "train_step"
SCALE = 4
ADAM = {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.99]}  # BasicSR's SR settings
EMA_DECAY = 0.999
NETWORKS: dict[str, dict[str, Any]] = {
    "EDSR-baseline x4": {
        "type": "EDSR",
        "num_in_ch": 3,
        "num_out_ch": 3,
        "num_feat": 64,
        "num_block": 16,
        "res_scale": 1.0,
    },
    "MSRResNet x4": {"type": "MSRResNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 16},
}
QUICK_NETWORKS: dict[str, dict[str, Any]] = {
    f"{spec['type']} tiny x4": {**spec, "num_feat": 8, "num_block": 1} for spec in NETWORKS.values()
}


# ----------------------------------------------------------------------------- the two sides
class CycleBatches:
    """Stands in for the trainer's prefetcher: ``next()`` cycles over pre-made batches."""

    def __init__(self, batches: Sequence[dict[str, torch.Tensor]]) -> None:
        self._it = itertools.cycle(batches)

    def next(self) -> dict[str, torch.Tensor]:
        return next(self._it)


class BareLoop:
    """The plain PyTorch loop a person would write for the same network, loss and optimizer."""

    def __init__(self, net: torch.nn.Module, batches: Sequence[dict[str, torch.Tensor]], ema: bool) -> None:
        self.net = net
        self.opt = torch.optim.Adam(net.parameters(), lr=ADAM["lr"], betas=tuple(ADAM["betas"]))
        self.data = itertools.cycle(batches)
        self.ema_seconds: list[float] = []  # wall time of each EMA update
        self.ema_pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        if ema:
            ema_net = copy.deepcopy(net).requires_grad_(False)
            src = [t for t in itertools.chain(net.parameters(), net.buffers()) if t.is_floating_point()]
            dst = [
                t for t in itertools.chain(ema_net.parameters(), ema_net.buffers()) if t.is_floating_point()
            ]
            self.ema_pairs = (dst, src)

    def step(self) -> None:
        batch = next(self.data)
        out = self.net(batch["lq"])
        F.l1_loss(out, batch["gt"]).backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.ema_pairs is not None:
            t0 = time.perf_counter()
            with torch.no_grad():
                torch._foreach_lerp_(self.ema_pairs[0], self.ema_pairs[1], 1.0 - EMA_DECAY)
            self.ema_seconds.append(time.perf_counter() - t0)

    def timed_block(self, n: int) -> list[tuple[float, float]]:
        times = []
        for _ in range(n):
            t0 = clock()
            self.step()
            times.append(since(t0))
        return times


def clock() -> tuple[float, float]:
    """(wall, CPU) seconds. CPU time of this process is the steadier number on a shared machine:
    other processes that steal the cores stretch the wall time but not the work done here."""
    return time.perf_counter(), time.process_time()


def since(t0: tuple[float, float]) -> tuple[float, float]:
    t1 = clock()
    return t1[0] - t0[0], t1[1] - t0[1]


@dataclass
class Interleaver:
    """Wraps ``task.train_step``: times whole loop iterations and runs the bare blocks between.

    Iterations 1..warmup are untimed; block b covers iterations warmup+1+b*iters ..
    warmup+(b+1)*iters. The time of iteration j is measured from the entry of call j to the entry
    of call j+1, so it holds one of everything ``fit`` does per iteration. Bare block b runs at the
    entry of the first call of trainer block b (outside any measured interval); the last bare
    block runs at the entry of the final, untimed iteration.
    """

    step_fn: Callable[..., dict[str, torch.Tensor]]
    bare: BareLoop
    warmup: int
    iters: int
    blocks: int
    trainer_times: list[list[tuple[float, float]]] = field(default_factory=list)
    bare_times: list[list[tuple[float, float]]] = field(default_factory=list)
    _t_prev: tuple[float, float] | None = None

    def _block(self, it: int) -> int | None:
        b = (it - self.warmup - 1) // self.iters
        return b if it > self.warmup and b < self.blocks else None

    def __call__(self, batches: Sequence[Any], it: int) -> dict[str, torch.Tensor]:
        prev = self._block(it - 1)
        if prev is not None and self._t_prev is not None:
            self.trainer_times[prev].append(since(self._t_prev))
        if it == 1:
            self.bare.timed_block(self.warmup)  # the bare loop's own warm-up
        if (
            it > self.warmup
            and (it - self.warmup - 1) % self.iters == 0
            and len(self.bare_times) <= self.blocks
        ):
            self.bare_times.append(self.bare.timed_block(self.iters))
            if len(self.trainer_times) < self.blocks:
                self.trainer_times.append([])
        self._t_prev = clock()
        return self.step_fn(batches, it)


# ----------------------------------------------------------------------------- one case
WALL, CPU = 0, 1  # index into the (wall, CPU) pairs


@dataclass
class CaseResult:
    network: str
    ema: bool
    bare: list[list[tuple[float, float]]]  # per block, per step: (wall, CPU) seconds
    trainer: list[list[tuple[float, float]]]
    ema_bare: list[float] = field(default_factory=list)  # wall seconds of each EMA update
    ema_trainer: list[float] = field(default_factory=list)

    def median(self, side: str, kind: int) -> float:
        blocks = self.bare if side == "bare" else self.trainer
        return statistics.median(t[kind] for block in blocks for t in block)

    def ratio(self, kind: int) -> float:
        """The median of the paired block ratios: robust to drift and to a single disturbed block."""
        return statistics.median(self.block_ratios(kind))

    def block_ratios(self, kind: int) -> list[float]:
        """Trainer block b against the mean of the bare blocks b and b+1 around it."""
        bare = [statistics.median(t[kind] for t in block) for block in self.bare]
        return [
            statistics.median(t[kind] for t in block) / ((bare[b] + bare[b + 1]) / 2)
            for b, block in enumerate(self.trainer)
        ]

    def line(self) -> str:
        return (
            f"{self.network:18s} EMA {'on ' if self.ema else 'off'}  "
            f"bare {self.median('bare', WALL) * 1e3:7.1f} ms  "
            f"trainer {self.median('trainer', WALL) * 1e3:7.1f} ms"
            f"  ratio wall {self.ratio(WALL):.3f}  CPU {self.ratio(CPU):.3f}"
        )


def make_batches(n: int, batch: int, patch: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "lq": torch.rand(batch, 3, patch, patch, generator=g),
            "gt": torch.rand(batch, 3, patch * SCALE, patch * SCALE, generator=g),
        }
        for _ in range(n)
    ]


def build_trainer(
    root: Path, spec: dict[str, Any], ema: bool, total: int, batch: int, patch: int, print_freq: int
) -> Trainer:
    """A real Trainer from a config built in code (its PNG data set is built but never read)."""
    gt_dir, lq_dir = root / "GT", root / "LQ"
    if not gt_dir.exists():
        gt_dir.mkdir(parents=True)
        lq_dir.mkdir(parents=True)
        rng = np.random.default_rng(0)
        cv2.imwrite(str(gt_dir / "a.png"), rng.integers(0, 256, (patch * SCALE,) * 2 + (3,), dtype=np.uint8))
        cv2.imwrite(str(lq_dir / "a.png"), rng.integers(0, 256, (patch, patch, 3), dtype=np.uint8))
    name = f"{spec['type']}_ema{int(ema)}"
    raw = {
        "name": name,
        "scale": SCALE,
        "device": "cpu",
        "experiments_root": str(root),
        "network_g": spec,
        "data": {
            "train": {
                "dataset": {
                    "type": "PairedImageDataset",
                    "dataroot_gt": str(gt_dir),
                    "dataroot_lq": str(lq_dir),
                    "gt_size": patch * SCALE,
                    "cache_images": True,
                },
                "batch_size": batch,
                "num_workers": 0,
            }
        },
        "train": {
            "total_iter": total,
            "optim_g": ADAM,
            "losses": {"pixel": {"type": "L1Loss"}},
            "ema_decay": EMA_DECAY if ema else 0.0,
        },
        "logger": {
            "print_freq": print_freq,
            "save_checkpoint_freq": 10**9,
            "progress_bar": False,
            "tensorboard": False,
        },
    }
    run_dir = root / name
    run_dir.mkdir(parents=True)
    trainer = Trainer(validate_config(raw, source="train_step benchmark"), run_dir)
    trainer.reporter.stream = io.StringIO()  # keep the log lines (still written) off the console
    return trainer


def run_case(root: Path, label: str, spec: dict[str, Any], ema: bool, args: argparse.Namespace) -> CaseResult:
    batches = make_batches(4, args.batch, args.patch)
    total = args.warmup + args.blocks * args.iters + 1
    trainer = build_trainer(root, spec, ema, total, args.batch, args.patch, args.print_freq)
    trainer._train_loader = lambda: CycleBatches(batches)  # type: ignore[method-assign]
    net = trainer.task.networks["net_g"]
    bare = BareLoop(copy.deepcopy(net), batches, ema)
    timer = Interleaver(trainer.task.train_step, bare, args.warmup, args.iters, args.blocks)
    trainer.task.train_step = timer  # type: ignore[method-assign]
    ema_trainer: list[float] = []
    task_ema = getattr(trainer.task, "ema", None)
    if task_ema is not None:  # EMA's own share of an iteration, timed on both sides
        update = task_ema.update

        def timed_update(model: torch.nn.Module) -> None:
            t0 = time.perf_counter()
            update(model)
            ema_trainer.append(time.perf_counter() - t0)

        task_ema.update = timed_update
    trainer.fit()  # ends with one checkpoint and an export, outside the timed iterations
    assert len(timer.bare_times) == args.blocks + 1 and all(len(b) == args.iters for b in timer.trainer_times)
    return CaseResult(label, ema, timer.bare_times, timer.trainer_times, bare.ema_seconds, ema_trainer)


# ----------------------------------------------------------------------------- reporting
def table(results: Sequence[CaseResult], args: argparse.Namespace) -> str:
    lines = [
        f"## {SECTION}",
        "",
        f"Machine: {machine()}, {torch.get_num_threads()} torch thread(s). "
        f"Load average before the run: {args.load}. Date: {date.today().isoformat()}.",
        f"Setup: batch {args.batch}, LR patch {args.patch} (GT {args.patch * SCALE}), L1, Adam "
        f"(lr {ADAM['lr']}, betas {tuple(ADAM['betas'])}), fp32, EMA decay {EMA_DECAY} when on; "
        f"{args.blocks} alternating blocks of {args.iters} iterations per side after {args.warmup} "
        f"warm-up iteration(s); trainer log flush every {args.print_freq} iterations"
        + (" (--quick: tiny networks, not a measurement)" if args.quick else "")
        + ".",
        "Times: median per step. Ratio: for each trainer block, its median over the mean of the medians "
        "of the two bare blocks around it; the table gives the median of these paired ratios and "
        "their min–max, in wall time and in this process's CPU time (less sensitive to other "
        "processes on the cores, though not immune: they also evict caches). Target ≤ 1.05.",
        "",
        "| network | EMA | bare ms/step | trainer ms/iter | trainer/bare wall | spread | "
        "trainer/bare CPU | spread |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for r in results:
        cells = [r.network, "on" if r.ema else "off"]
        cells += [f"{r.median('bare', WALL) * 1e3:.1f}", f"{r.median('trainer', WALL) * 1e3:.1f}"]
        for kind in (WALL, CPU):
            ratios = r.block_ratios(kind)
            cells += [f"{r.ratio(kind):.3f}", f"{min(ratios):.3f}–{max(ratios):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    ema_rows = [r for r in results if r.ema_trainer and r.ema_bare]
    if ema_rows:
        lines += [
            "",
            "EMA's own cost, timed around each update (median): restorekit's `EMA.update` in the "
            "trainer against the bare loop's `torch._foreach_lerp_`, and as a share of the iteration.",
            "",
            "| network | trainer EMA.update ms | bare foreach_lerp ms | share of trainer iteration |",
            "|---|---:|---:|---:|",
        ]
        for r in ema_rows:
            upd, lerp = statistics.median(r.ema_trainer), statistics.median(r.ema_bare)
            share = upd / r.median("trainer", WALL)
            lines.append(f"| {r.network} | {upd * 1e3:.2f} | {lerp * 1e3:.2f} | {share * 100:.2f} % |")
    return "\n".join(lines) + "\n"


# One torch thread by default: the ratio measures the trainer's per-iteration work, which is serial
# Python either way, and on a shared machine a second OpenMP thread waits at every barrier for a
# core another process holds, which made 2-thread steps 10x slower and erratic here. With one
# thread a step is slower, so a fixed overhead is a smaller fraction of it: on a dedicated machine
# run with --threads $(nproc) as well.
# The trainer flushes its log (device read-back, stats.jsonl, console line) every iteration by
# default, 100x BasicSR's cadence: a pessimistic setting, so the ratio is an upper bound.
FULL = {"blocks": 6, "iters": 1, "warmup": 1, "batch": 16, "patch": 24, "print_freq": 1, "threads": 1}
QUICK = {"blocks": 2, "iters": 2, "warmup": 1, "batch": 2, "patch": 8, "print_freq": 1, "threads": 1}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--blocks", type=int, help=f"alternating timed blocks per side (default {FULL['blocks']})")
    p.add_argument("--iters", type=int, help=f"iterations per block (default {FULL['iters']})")
    p.add_argument("--warmup", type=int, help="untimed warm-up iterations per side (default 1)")
    p.add_argument("--batch", type=int, help=f"batch size (default {FULL['batch']})")
    p.add_argument("--patch", type=int, help=f"LR patch size; GT is 4x (default {FULL['patch']})")
    p.add_argument(
        "--print-freq", type=int, help=f"trainer log flush interval (default {FULL['print_freq']})"
    )
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default 1; 0 = torch's own choice)")
    p.add_argument("--ema", choices=["both", "off", "on"], default="both")
    p.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    p.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to write the table to")
    p.add_argument("--quick", action="store_true", help="tiny networks and sizes: a seconds-long smoke run")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if (
        min(args.blocks, args.iters, args.warmup, args.batch, args.patch, args.print_freq, args.threads or 1)
        < 1
    ):
        p.error("--blocks, --iters, --warmup, --batch, --patch and --print-freq must be >= 1, --threads >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.load = load_average()
    specs = QUICK_NETWORKS if args.quick else {k: NETWORKS[k] for k in args.networks}
    emas = {"both": [False, True], "off": [False], "on": [True]}[args.ema]
    results = []
    with tempfile.TemporaryDirectory(prefix="rk_bench_") as tmp:
        for label, spec in specs.items():
            for ema in emas:
                t0 = time.perf_counter()
                results.append(run_case(Path(tmp), label, spec, ema, args))
                print(f"{results[-1].line()}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    text = table(results, args)
    write_section(SECTION, text, args.results)
    print(f"\n{text}\nwritten to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

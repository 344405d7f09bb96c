#!/usr/bin/env python
"""speed_options: the trainer against a bare loop with each speed option, on EDSR-baseline x4.

Two questions, each answered with ratios measured in one run:

1. **Does the trainer keep the speed an option buys?** For each variant (fp32, bf16 autocast,
   channels_last, bf16 + channels_last, fp16 on CUDA, torch.compile on request) the real
   ``Trainer.fit`` loop runs with ``train.amp`` / ``train.channels_last`` / ``train.compile`` set,
   and a bare PyTorch loop with the same option (``torch.autocast``, a ``GradScaler`` for fp16,
   ``channels_last`` input and weights, ``torch.compile``) runs on a copy of the same network
   with the same Adam settings and the same batches. As in ``train_step.py`` (whose bare loop,
   batches and data stand-in this script reuses), the trainer's loader is replaced by a cycle over
   pre-made batches; timed blocks alternate bare / trainer / bare … and each trainer block is
   compared with the mean of the two bare blocks around it. Blocks are timed as a whole with a
   device sync at their ends only, so on a GPU the trainer keeps its asynchronous pipelining (a
   per-step sync would expose host overhead that a real run hides). Target: ≤ 1.05.
2. **What does each option buy?** All bare-loop variants, built side by side, step in round-robin
   rounds (fp32, bf16, …, fp32, bf16, …), and each variant's speed-up over fp32 is the ratio of
   their median times — alternation cancels the drift of a shared machine. The trainer's speed-up
   follows as bare speed-up × (fp32 trainer/bare) / (variant trainer/bare). Target on GPU:
   bf16 + channels_last ≥ 1.5× fp32.

``torch.compile`` is off by default on CPU (``--compile`` adds the compile variants): inductor
compiles EDSR's forward and backward into C++ three times per variant (trainer, bare loop, round
robin) — measured here at about 40 s for one variant on an idle 2-core machine and several
minutes under load, for a speed-up measured at about 1.05× here; on ``--device cuda`` the compile
variants are on by default.

Run ``python benchmarks/speed_options.py`` (CPU, ≈0.5–1.5 minutes on 2 cores) or ``--device cuda``
(larger default batch/patch); ``--quick`` is a seconds-long smoke run with a tiny network. The
table replaces the ``## speed_options`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import copy
import io
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
from _common import RESULTS, load_average, machine, run_section, sync
from train_step import ADAM, NETWORKS, SCALE, BareLoop, CycleBatches, clock, make_batches, since

from restorekit.config import validate_config
from restorekit.engine.trainer import Trainer

SECTION = "speed_options"
NETWORK = "EDSR-baseline x4"
TINY = {**NETWORKS[NETWORK], "num_feat": 8, "num_block": 1}


@dataclass(frozen=True)
class Variant:
    name: str
    amp: str = "off"  # train.amp
    channels_last: bool = False
    compile: str = "off"  # train.compile


VARIANTS = {
    v.name: v
    for v in [
        Variant("fp32"),
        Variant("bf16", amp="bf16"),
        Variant("fp16", amp="fp16"),
        Variant("channels_last", channels_last=True),
        Variant("bf16+channels_last", amp="bf16", channels_last=True),
        Variant("compile", compile="default"),
        Variant("bf16+channels_last+compile", amp="bf16", channels_last=True, compile="default"),
    ]
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


# ----------------------------------------------------------------------------- bare loop
class OptionsBareLoop(BareLoop):
    """``train_step.BareLoop`` with the option applied the way a person would write it."""

    def __init__(
        self, net: torch.nn.Module, batches: Sequence[dict[str, torch.Tensor]], v: Variant, device: str
    ) -> None:
        if v.channels_last:
            net = net.to(memory_format=torch.channels_last)
        super().__init__(net, batches, ema=False)
        self.v, self.device = v, device
        self.fwd = torch.compile(net) if v.compile != "off" else net
        self.scaler = torch.amp.GradScaler(device, enabled=v.amp == "fp16")

    def step(self) -> None:
        batch = next(self.data)
        x = batch["lq"]
        if self.v.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device, dtype=DTYPES.get(self.v.amp), enabled=self.v.amp != "off"):
            out = self.fwd(x)
        loss = F.l1_loss(out.float(), batch["gt"])
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)

    def block(self, n: int) -> tuple[float, float]:
        """Mean (wall, CPU) seconds per step over ``n`` steps, synced at both ends."""
        sync(self.device)
        t0 = clock()
        for _ in range(n):
            self.step()
        sync(self.device)
        wall, cpu = since(t0)
        return wall / n, cpu / n


# ----------------------------------------------------------------------------- trainer vs bare
@dataclass
class BlockTimer:
    """Wraps ``task.train_step``; runs bare blocks between timed trainer blocks.

    Iterations 1..warmup are untimed (compile, allocator, Adam state). Trainer block b spans
    iterations warmup+1+b·iters … warmup+(b+1)·iters, timed from the entry of its first call to
    the entry of the call after its last, so it holds everything ``fit`` does per iteration. Bare
    block b runs at the entry of trainer block b's first call, outside the trainer's interval;
    the last bare block runs at the entry of the final, untimed iteration.
    """

    step_fn: Callable[..., dict[str, torch.Tensor]]
    bare: OptionsBareLoop
    device: str
    warmup: int
    iters: int
    blocks: int
    bare_times: list[tuple[float, float]] = field(default_factory=list)
    trainer_times: list[tuple[float, float]] = field(default_factory=list)
    _t0: tuple[float, float] | None = None

    def __call__(self, batches: Sequence[Any], it: int) -> dict[str, torch.Tensor]:
        if it == 1:
            self.bare.block(self.warmup)  # the bare loop's own warm-up (and compile)
        k = it - self.warmup - 1
        if k >= 0 and k % self.iters == 0 and k // self.iters <= self.blocks:
            if self._t0 is not None:
                sync(self.device)
                wall, cpu = since(self._t0)
                self.trainer_times.append((wall / self.iters, cpu / self.iters))
            self.bare_times.append(self.bare.block(self.iters))
            if k // self.iters < self.blocks:
                sync(self.device)
                self._t0 = clock()
        return self.step_fn(batches, it)

    def ratios(self, kind: int) -> list[float]:
        """Trainer block b / mean of bare blocks b and b+1."""
        return [
            t[kind] / ((self.bare_times[b][kind] + self.bare_times[b + 1][kind]) / 2)
            for b, t in enumerate(self.trainer_times)
        ]


def build_trainer(root: Path, spec: dict[str, Any], v: Variant, args: argparse.Namespace) -> Trainer:
    """A real Trainer with the variant's options (its one-image PNG data set is never read)."""
    gt_dir, lq_dir = root / "GT", root / "LQ"
    if not gt_dir.exists():
        gt_dir.mkdir(parents=True)
        lq_dir.mkdir(parents=True)
        rng = np.random.default_rng(0)
        p = args.patch
        cv2.imwrite(str(gt_dir / "a.png"), rng.integers(0, 256, (p * SCALE, p * SCALE, 3), dtype=np.uint8))
        cv2.imwrite(str(lq_dir / "a.png"), rng.integers(0, 256, (p, p, 3), dtype=np.uint8))
    name = v.name.replace("+", "_")
    raw = {
        "name": name,
        "scale": SCALE,
        "device": args.device,
        "experiments_root": str(root),
        "network_g": spec,
        "data": {
            "train": {
                "dataset": {
                    "type": "PairedImageDataset",
                    "dataroot_gt": str(gt_dir),
                    "dataroot_lq": str(lq_dir),
                    "gt_size": args.patch * SCALE,
                },
                "batch_size": args.batch,
                "num_workers": 0,
            }
        },
        "train": {
            "total_iter": args.warmup_for(v) + args.blocks * args.iters + 1,
            "optim_g": ADAM,
            "losses": {"pixel": {"type": "L1Loss"}},
            "amp": v.amp,
            "channels_last": v.channels_last,
            "compile": v.compile,
        },
        "logger": {
            "print_freq": args.print_freq,
            "save_checkpoint_freq": 10**9,
            "progress_bar": False,
            "tensorboard": False,
        },
    }
    run_dir = root / name
    run_dir.mkdir(parents=True)
    trainer = Trainer(validate_config(raw, source="speed_options benchmark"), run_dir)
    trainer.reporter.stream = io.StringIO()  # log lines still go to log.txt, not the console
    return trainer


def to_device(batches: list[dict[str, torch.Tensor]], device: str) -> list[dict[str, torch.Tensor]]:
    return [{k: t.to(device) for k, t in b.items()} for b in batches]


def trainer_vs_bare(root: Path, spec: dict[str, Any], v: Variant, args: argparse.Namespace) -> BlockTimer:
    batches = to_device(make_batches(4, args.batch, args.patch), args.device)
    trainer = build_trainer(root, spec, v, args)
    trainer._train_loader = lambda: CycleBatches(batches)  # type: ignore[method-assign]
    bare = OptionsBareLoop(copy.deepcopy(trainer.task.networks["net_g"]), batches, v, args.device)
    timer = BlockTimer(
        trainer.task.train_step, bare, args.device, args.warmup_for(v), args.iters, args.blocks
    )
    trainer.task.train_step = timer  # type: ignore[method-assign]
    trainer.fit()  # ends with a checkpoint and an export, after the timed iterations
    assert len(timer.bare_times) == args.blocks + 1 and len(timer.trainer_times) == args.blocks
    return timer


# ----------------------------------------------------------------------------- round robin
def round_robin(
    spec: dict[str, Any], variants: Sequence[Variant], args: argparse.Namespace
) -> dict[str, list[float]]:
    """Bare-loop wall seconds per step of every variant, in alternating rounds (same weights)."""
    from restorekit.registry import ARCHS

    torch.manual_seed(0)
    net = ARCHS.build(spec, "network_g", upscale=SCALE, scale=SCALE).to(args.device)
    batches = to_device(make_batches(4, args.batch, args.patch), args.device)
    loops = {v.name: OptionsBareLoop(copy.deepcopy(net), batches, v, args.device) for v in variants}
    for v in variants:
        loops[v.name].block(args.warmup_for(v))
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(args.rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:  # no variant always first
            times[v.name].append(loops[v.name].block(args.iters)[0])
    return times


# ----------------------------------------------------------------------------- report
def table(timers: dict[str, BlockTimer], rr: dict[str, list[float]], args: argparse.Namespace) -> str:
    med = statistics.median
    wall_ratio = {n: med(t.ratios(0)) for n, t in timers.items()}
    base = med(rr["fp32"]) if "fp32" in rr else None
    lines = [
        f"## {SECTION}",
        "",
        f"Machine: {machine(args.device)}; device {args.device}, {torch.get_num_threads()} torch "
        f"thread(s). Load average before / after: {args.load_before} → {args.load_after}. "
        f"Date: {date.today().isoformat()}.",
        f"Setup: {args.network}, batch {args.batch}, LR patch {args.patch} (GT {args.patch * SCALE}), L1, "
        f"Adam; trainer vs bare loop in {args.blocks} alternating blocks of {args.iters} iterations "
        f"after {args.warmup} warm-up iteration(s) "
        f"(compile variants: {args.warmup_for(VARIANTS['compile'])}); "
        f"speed-ups from {args.rounds} round-robin rounds of {args.iters} bare steps per variant"
        + (
            ""
            if args.compile
            else "; torch.compile not measured (off on CPU by default: inductor's CPU compiles "
            "take from a minute to several on a busy 2-core machine; `--compile` adds it)"
        )
        + (" (--quick: tiny network, not a measurement)" if args.quick else "")
        + ".",
        "Columns: median per-iteration time of the bare loop and of the trainer; trainer/bare = median "
        "over blocks of (trainer block / mean of the two bare blocks around it), wall and this "
        "process's CPU time, spread = min–max over blocks (target ≤ 1.05); speed-up over fp32 from the "
        "round-robin bare loops, and for the trainer × (fp32 trainer/bare ÷ variant trainer/bare).",
        "",
        "| option | bare ms/step | trainer ms/iter | trainer samples/s | trainer/bare wall | spread | "
        "trainer/bare CPU | bare speed-up vs fp32 | trainer speed-up vs fp32 |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, t in timers.items():
        bare_ms = med(b[0] for b in t.bare_times) * 1e3
        tr_ms = med(b[0] for b in t.trainer_times) * 1e3
        ratios = t.ratios(0)
        cells = [name, f"{bare_ms:.1f}", f"{tr_ms:.1f}", f"{args.batch / tr_ms * 1e3:.1f}"]
        cells += [
            f"{wall_ratio[name]:.3f}",
            f"{min(ratios):.3f}–{max(ratios):.3f}",
            f"{med(t.ratios(1)):.3f}",
        ]
        if base is not None and name in rr:
            speed = base / med(rr[name])
            cells.append(f"{speed:.2f}×")
            cells.append(f"{speed * wall_ratio['fp32'] / wall_ratio[name]:.2f}×" if "fp32" in timers else "–")
        else:
            cells += ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    if args.device == "cpu" and not args.quick:
        lines += [
            "",
            "No GPU was available to the session that ran this; the GPU numbers (and the 1.5× "
            "bf16+channels_last target, a GPU target) await `python benchmarks/speed_options.py "
            "--device cuda` on a CUDA machine.",
        ]
    return "\n".join(lines) + "\n"


FULL_CPU = {"blocks": 6, "iters": 2, "warmup": 2, "rounds": 4, "batch": 4, "patch": 16, "print_freq": 10}
FULL_CUDA = {"blocks": 5, "iters": 20, "warmup": 5, "rounds": 5, "batch": 16, "patch": 48, "print_freq": 100}
QUICK = {"blocks": 2, "iters": 2, "warmup": 1, "rounds": 2, "batch": 2, "patch": 8, "print_freq": 3}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=f"defaults: CPU {FULL_CPU}; cuda {FULL_CUDA}; --quick {QUICK}",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), help="default: all but fp16 on CPU, no compile"
    )
    p.add_argument("--compile", action="store_true", help="add the torch.compile variants (default on cuda)")
    for name, what in [
        ("blocks", "alternating timed blocks per side"),
        ("iters", "iterations per block"),
        ("warmup", "untimed warm-up iterations (at least 3 for compile variants)"),
        ("rounds", "round-robin rounds of the bare loops"),
        ("batch", "batch size"),
        ("patch", "LR patch size; GT is 4x"),
        ("print-freq", "trainer log interval"),
    ]:
        p.add_argument(f"--{name}", type=int, help=what)
    p.add_argument(
        "--threads", type=int, help="torch.set_num_threads (default: 1 on CPU, torch's choice on cuda)"
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to write the table to")
    p.add_argument("--quick", action="store_true", help="tiny network and sizes: a seconds-long smoke run")
    args = p.parse_args(argv)
    if args.device == "cpu" and args.threads is None:
        # One thread: the ratios are about the step, not OpenMP's scaling, and OpenMP threads on
        # a busy shared machine stall at every barrier (measured: 3-4x slower, 5x noisier).
        args.threads = 1
    defaults = QUICK if args.quick else FULL_CUDA if args.device == "cuda" else FULL_CPU
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.blocks, args.iters, args.warmup, args.rounds, args.batch, args.patch, args.print_freq) < 1:
        p.error("--blocks, --iters, --warmup, --rounds, --batch, --patch and --print-freq must be >= 1")
    args.compile = args.compile or (args.device == "cuda" and not args.quick)
    if args.variants is None:
        args.variants = ["fp32", "bf16", "channels_last", "bf16+channels_last"]
        if args.device == "cuda":
            args.variants.insert(2, "fp16")
        if args.compile:
            args.variants += ["compile", "bf16+channels_last+compile"]
    args.compile = any(VARIANTS[n].compile != "off" for n in args.variants)
    args.warmup_for = lambda v: max(args.warmup, 3) if v.compile != "off" else args.warmup
    args.network = "EDSR tiny x4" if args.quick else NETWORK
    return args


def measure(args: argparse.Namespace) -> str:
    """Run every variant, trainer against bare loop, then the round robin; the table's text."""
    spec = TINY if args.quick else NETWORKS[NETWORK]
    variants = [VARIANTS[n] for n in args.variants]
    args.load_before = load_average()
    timers: dict[str, BlockTimer] = {}
    with tempfile.TemporaryDirectory(prefix="rk_bench_") as tmp:
        for v in variants:
            t0 = time.perf_counter()
            timers[v.name] = t = trainer_vs_bare(Path(tmp), spec, v, args)
            print(
                f"{v.name:28s} trainer/bare wall {statistics.median(t.ratios(0)):.3f}  "
                f"CPU {statistics.median(t.ratios(1)):.3f}  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    rr = round_robin(spec, variants, args)
    args.load_after = load_average()
    return table(timers, rr, args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_section(parse_args(argv), SECTION, measure)


if __name__ == "__main__":
    sys.exit(main())

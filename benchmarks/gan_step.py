#!/usr/bin/env python
"""gan_step: the adversarial task's iteration against a bare PyTorch GAN loop of the same networks.

What is compared, per discriminator (Real-ESRGAN's U-Net with spectral norm, vanilla GAN; ESRGAN's
VGG-style one at 128 px, relativistic GAN):

* **task** — ``AdversarialTask.train_step`` as the trainer calls it: G step (L1 + GAN loss
  through the frozen D, AMP helper, Adam, ``zero_grad``), D step (real and fake backward passes),
  both schedules, the EMA update and the scalar dict (no host sync);
* **bare** — the same arithmetic written out by hand in the usual way (``requires_grad_`` toggles,
  ``F.l1_loss``, ``F.binary_cross_entropy_with_logits``, two ``torch.optim.Adam``, a
  ``torch._foreach_lerp_`` EMA) on copies of the same networks with the same initial weights and
  the same data tensors.

Timing alternates blocks in one process, B0 T0 B1 T1 … Bn, and compares each task block with the
mean of the bare blocks on either side of it, which cancels slow drifts of a shared machine.
The ratio task / bare is the framework's overhead; 1.00× means none.

Run ``python benchmarks/gan_step.py`` (about 2 minutes on an idle 2-core CPU; ``--quick`` for a
smoke run, ``--device cuda`` on a GPU). The table replaces the ``## gan_step`` section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import RESULTS, check_device, interleaved, load_average, machine, sync, write_section

import restorekit.archs
import restorekit.losses
import restorekit.tasks  # noqa: F401  (registration)
from restorekit.config import validate_config
from restorekit.registry import TASKS

SECTION = "gan_step"
GENERATOR = {
    "type": "RRDBNet",
    "num_in_ch": 3,
    "num_out_ch": 3,
    "num_feat": 32,
    "num_block": 2,
    "num_grow_ch": 16,
}
CASES: dict[str, dict[str, Any]] = {
    "UNetDiscriminatorSN, vanilla": {
        "network_d": {"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 32},
        "gan_type": "vanilla",
        "gt": 64,
    },
    "VGGStyleDiscriminator 128, ragan": {
        "network_d": {"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 16, "input_size": 128},
        "gan_type": "ragan",
        "gt": 128,
    },
}


def config(case: dict[str, Any], device: str) -> Any:
    gt = case["gt"]
    return validate_config(
        {
            "name": "bench",
            "task": "adversarial",
            "scale": 4,
            "device": device,
            "network_g": GENERATOR,
            "network_d": case["network_d"],
            "data": {
                "train": {
                    "dataset": {
                        "type": "PairedImageDataset",
                        "dataroot_gt": "-",
                        "dataroot_lq": "-",
                        "gt_size": gt,
                    }
                }
            },
            "train": {
                "total_iter": 1000,
                "optim_g": {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99]},
                "optim_d": {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99]},
                "losses": {
                    "pixel": {"type": "L1Loss"},
                    "gan": {"type": "GANLoss", "gan_type": case["gan_type"], "loss_weight": 0.1},
                },
                "ema_decay": 0.999,
            },
        }
    )


class Bare:
    """The hand-written loop: what one would write without a framework."""

    def __init__(self, net_g: torch.nn.Module, net_d: torch.nn.Module, relativistic: bool) -> None:
        self.g, self.d = copy.deepcopy(net_g).train(), copy.deepcopy(net_d).train()
        self.ema = [p.detach().clone() for p in self.g.parameters()]
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=1e-4, betas=(0.9, 0.99))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=1e-4, betas=(0.9, 0.99))
        self.rel = relativistic

    @staticmethod
    def bce(x: torch.Tensor, real: bool) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(x, torch.full_like(x, float(real)))

    def step(self, lq: torch.Tensor, gt: torch.Tensor) -> None:
        self.d.requires_grad_(False)
        out = self.g(lq)
        if self.rel:
            real = self.d(gt).detach()
            fake = self.d(out)
            gan = (self.bce(real - fake.mean(), False) + self.bce(fake - real.mean(), True)) / 2
        else:
            gan = self.bce(self.d(out), True)
        (F.l1_loss(out, gt) + 0.1 * gan).backward()
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        self.d.requires_grad_(True)
        fake_in = out.detach()
        if self.rel:
            with torch.no_grad():
                fake_ref = self.d(fake_in)
            real = self.d(gt)
            (self.bce(real - fake_ref.mean(), True) * 0.5).backward()
            fake = self.d(fake_in)
            (self.bce(fake - real.detach().mean(), False) * 0.5).backward()
        else:
            self.bce(self.d(gt), True).backward()
            self.bce(self.d(fake_in), False).backward()
        self.opt_d.step()
        self.opt_d.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, [p.detach() for p in self.g.parameters()], 0.001)


def measure(name: str, case: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    task = TASKS.get("adversarial")(config(case, args.device), device)
    task.train(True)
    bare = Bare(task.networks["net_g"], task.networks["net_d"], case["gan_type"] == "ragan")
    gt_size = case["gt"]
    batches = [
        {
            "lq": torch.rand(args.batch, 3, gt_size // 4, gt_size // 4, device=device),
            "gt": torch.rand(args.batch, 3, gt_size, gt_size, device=device),
        }
        for _ in range(2)
    ]
    it = 0

    def run_task(n: int) -> float:
        nonlocal it
        sync(device)
        t = time.perf_counter()
        for _ in range(n):
            it += 1
            task.train_step([batches[it % 2]], it)
        sync(device)
        return (time.perf_counter() - t) / n

    def run_bare(n: int) -> float:
        sync(device)
        t = time.perf_counter()
        for i in range(n):
            b = batches[i % 2]
            bare.step(b["lq"], b["gt"])
        sync(device)
        return (time.perf_counter() - t) / n

    task_times, bare_times, ratios = interleaved(run_task, run_bare, args.warmup, args.iters, args.blocks)
    return {
        "name": name,
        "task_ms": 1000 * statistics.median(task_times),
        "bare_ms": 1000 * statistics.median(bare_times),
        "ratio": statistics.median(ratios),
        "spread": (min(ratios), max(ratios)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared CPU)")
    p.add_argument("--quick", action="store_true", help="a few seconds: 1 block of 1 iteration, batch 1")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    check_device(args.device)
    if args.quick:
        args.blocks, args.iters, args.warmup, args.batch = 1, 1, 1, 1
    torch.set_num_threads(args.threads)
    load_before = load_average()
    start = time.perf_counter()
    rows = [measure(name, case, args) for name, case in CASES.items()]
    total = time.perf_counter() - start
    g = GENERATOR
    lines = [
        f"## {SECTION}",
        "",
        f"`python benchmarks/gan_step.py{' --quick' if args.quick else ''}` — {date.today()}, "
        f"{machine(args.device)}; device {args.device}, {args.threads} torch thread(s); "
        f"load average {load_before} before, {load_average()} after; {total:.0f} s in all.",
        "",
        "One adversarial iteration (G step + D step + EMA): `AdversarialTask.train_step` vs a "
        "hand-written loop of the same networks and data. Generator RRDBNet x4 "
        f"({g['num_feat']} features, {g['num_block']} blocks), batch {args.batch}, L1 + GAN x 0.1, "
        f"Adam for both; medians of {args.blocks} alternating blocks of {args.iters} iterations "
        f"after {args.warmup} warm-up iterations.",
        "",
        "| discriminator, GAN | task (ms/it) | bare (ms/it) | task / bare | range |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lo, hi = r["spread"]
        times = f"{r['task_ms']:.1f} | {r['bare_ms']:.1f}"
        lines.append(f"| {r['name']} | {times} | {r['ratio']:.2f}× | {lo:.2f}–{hi:.2f}× |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(SECTION, text, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

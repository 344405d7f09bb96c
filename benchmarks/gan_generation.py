#!/usr/bin/env python
"""gan_generation: the generation task's G+D iteration against a bare PyTorch loop of the same networks.

What is compared, per image size (lightweight-gan's ``LightweightGANGenerator`` and
``LightweightGANDiscriminator``):

* **task** — ``GenerationTask.train_step`` then ``end_iteration``, as ``Trainer.fit`` calls them:
  the D step (fakes from fresh latents without a graph, DiffAugment on both batches, the flipped
  hinge on both heads, the reconstruction MSE of the real batch, the gradient penalty every 4th
  iteration, the AMP helper, Adam), the G step through the frozen D, the scalar dict (no host
  sync), then the schedules and the EMA bookkeeping;
* **bare** — the same arithmetic written out by hand: ``torch.randn`` latents, the networks called
  directly, ``F.relu`` hinges, ``F.mse_loss``, ``torch.autograd.grad`` for the penalty, two
  ``torch.optim.Adam`` and ``requires_grad_`` toggles, on copies of the same networks with the
  same initial weights and the same real images. The augmentation is the same
  ``DiffAugment`` op on both sides (it is part of the model's arithmetic, not of the framework).

Both sides use lightweight-gan's defaults: Adam (2e-4, betas (0.5, 0.9)), translation + cutout at a
fixed p (0.3, what ``prob: auto`` gives a few hundred images), GP weight 10 every 4 iterations.
The EMA starts at lightweight-gan's 20k iterations, so it never updates inside the window on
either side (``end_iteration`` still runs its checks). Blocks are a multiple of 4 iterations
long, so every block holds exactly one gradient-penalty iteration on each side.

Timing alternates blocks in one process, B0 T0 B1 T1 … Bn, and compares each task block with the
mean of the bare blocks on either side of it, which cancels slow drifts of a shared machine.

CPU sizes are 32 and 64 px with small networks: one lightweight-gan D step at 256 px (its
default widths) takes minutes on 2 cores, so 128 and 256 px (lightweight-gan's default widths)
run only with ``--device cuda``. ``--quick`` is a seconds-long smoke run with tiny networks.
The default CPU run takes about 8 minutes on a 2-core CPU (1 torch thread).
The table replaces the ``## gan_generation`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Sequence
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
from restorekit.data.degradations.diffaugment import DiffAugment
from restorekit.registry import TASKS

SECTION = "gan_generation"
GP_EVERY = 4
GP_WEIGHT = 10.0
AUG_TYPES = ("translation", "cutout")
AUG_P = 0.3
LR, BETAS = 2e-4, (0.5, 0.9)
# size: (latent_dim, fmap_max, batch). CPU: the toy config's widths; CUDA: lightweight-gan's defaults.
CPU_CASES = {32: (64, 64, 4), 64: (64, 64, 4)}
CUDA_CASES = {32: (256, 512, 32), 64: (256, 512, 32), 128: (256, 512, 32), 256: (256, 512, 16)}
QUICK_CASES = {32: (8, 8, 1)}


def config(size: int, latent: int, fmap: int, device: str) -> Any:
    net = {"image_size": size, "fmap_max": fmap}
    return validate_config(
        {
            "name": "bench",
            "task": "generation",
            "device": device,
            "network_g": {"type": "LightweightGANGenerator", "latent_dim": latent, **net},
            "network_d": {"type": "LightweightGANDiscriminator", "disc_output_size": 1, **net},
            "data": {"train": {"dataset": {"type": "ImageFolderDataset", "dataroot": "-"}, "batch_size": 1}},
            "train": {
                "total_iter": 10**6,
                "optim_g": {"type": "Adam", "lr": LR, "betas": list(BETAS)},
                "optim_d": {"type": "Adam", "lr": LR, "betas": list(BETAS)},
                "augment": {"types": list(AUG_TYPES), "prob": AUG_P},
                "gp_every": GP_EVERY,
                "gp_weight": GP_WEIGHT,
            },
        },
        source="gan_generation benchmark",
    )


class Bare:
    """The hand-written lightweight-gan iteration: what one would write without a framework."""

    def __init__(self, net_g: torch.nn.Module, net_d: torch.nn.Module, latent: int, device: torch.device):
        self.g, self.d = copy.deepcopy(net_g).train(), copy.deepcopy(net_d).train()
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=LR, betas=BETAS)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=LR, betas=BETAS)
        self.aug = DiffAugment(AUG_TYPES, AUG_P)
        self.gen = torch.Generator(device).manual_seed(1)
        self.latent, self.device, self.it = latent, device, 0

    def z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent, generator=self.gen, device=self.device)

    def step(self, real: torch.Tensor) -> None:
        self.it += 1
        gp_now = self.it % GP_EVERY == 0
        n = real.shape[0]
        # D step
        with torch.no_grad():
            fake = self.g(self.z(n), self.gen)
        real_in = real.detach().requires_grad_(gp_now)
        fake_aug = self.aug(fake, self.gen).requires_grad_(gp_now)
        d_fake = self.d(fake_aug)
        real_aug = self.aug(real_in, self.gen)
        d_real = self.d(real_aug, reconstruct=True, generator=self.gen)
        heads = [(d_real.logits, d_fake.logits), (d_real.side_logits, d_fake.side_logits)]
        loss = sum(F.relu(1 + r).mean() + F.relu(1 - f).mean() for r, f in heads)
        recon = d_real.recon_whole
        loss = loss + F.mse_loss(recon, F.interpolate(real_aug, size=recon.shape[-2:]))
        if gp_now:
            total = sum(t.sum() for pair in heads for t in pair)
            grads = torch.autograd.grad(total, [real_in, fake_aug], create_graph=True)
            loss = loss + GP_WEIGHT * torch.cat([g.flatten(1).pow(2).sum(1) for g in grads]).mean()
        loss.backward()
        self.opt_d.step()
        self.opt_d.zero_grad(set_to_none=True)
        # G step through the frozen D
        self.d.requires_grad_(False)
        out = self.d(self.aug(self.g(self.z(n), self.gen), self.gen))
        (out.logits.mean() + out.side_logits.mean()).backward()
        self.d.requires_grad_(True)
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)


def measure(size: int, case: tuple[int, int, int], args: argparse.Namespace) -> dict[str, Any]:
    latent, fmap, batch = case
    batch = args.batch or batch
    device = torch.device(args.device)
    torch.manual_seed(0)
    task = TASKS.get("generation")(config(size, latent, fmap, args.device), device)
    task.train(True)
    bare = Bare(task.networks["net_g"], task.networks["net_d"], latent, device)
    reals = [torch.rand(batch, 3, size, size, device=device) for _ in range(2)]
    it = 0

    def run_task(n: int) -> float:
        nonlocal it
        sync(device)
        t = time.perf_counter()
        for _ in range(n):
            it += 1
            task.train_step([{"gt": reals[it % 2]}], it)
            task.end_iteration(it)
        sync(device)
        return (time.perf_counter() - t) / n

    def run_bare(n: int) -> float:
        sync(device)
        t = time.perf_counter()
        for _ in range(n):
            bare.step(reals[(bare.it + 1) % 2])
        sync(device)
        return (time.perf_counter() - t) / n

    def report(task_s: float, ratio: float) -> None:
        print(f"  {size} px block: task {task_s:.2f} s/it, ratio {ratio:.3f}")

    task_times, bare_times, ratios = interleaved(
        run_task, run_bare, args.warmup, args.iters, args.blocks, on_block=report
    )
    task_s, bare_s = statistics.median(task_times), statistics.median(bare_times)
    return {
        "size": size,
        "nets": f"latent {latent}, fmap_max {fmap}",
        "batch": batch,
        "task_ms": 1000 * task_s,
        "bare_ms": 1000 * bare_s,
        "task_ips": batch / task_s,
        "bare_ips": batch / bare_s,
        "ratio": statistics.median(ratios),
        "spread": (min(ratios), max(ratios)),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--sizes", type=int, nargs="+", help="image sides (default 32 64; CUDA up to 256)")
    p.add_argument("--batch", type=int, help="batch size for every size (default: per size, CPU_CASES)")
    p.add_argument("--blocks", type=int, default=5, help="alternating timed blocks per side")
    p.add_argument("--iters", type=int, default=2 * GP_EVERY, help=f"iterations per block (k * {GP_EVERY})")
    p.add_argument(
        "--warmup", type=int, default=GP_EVERY, help=f"untimed iterations per side (k * {GP_EVERY})"
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared CPU)")
    p.add_argument("--toy-note", default="", help="an extra line for the section (e.g. a toy-config timing)")
    p.add_argument("--quick", action="store_true", help="seconds: tiny networks, 32 px, batch 1, one block")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.iters % GP_EVERY or args.warmup % GP_EVERY or min(args.blocks, args.iters, args.warmup) < 1:
        p.error(f"--iters and --warmup must be positive multiples of {GP_EVERY}, --blocks >= 1")
    if args.batch is not None and args.batch < 1:
        p.error("--batch must be >= 1")
    cases = QUICK_CASES if args.quick else CUDA_CASES if args.device == "cuda" else CPU_CASES
    if args.quick:
        args.blocks, args.iters, args.warmup = 1, GP_EVERY, GP_EVERY
    sizes = args.sizes or list(cases)
    bad = [s for s in sizes if s not in cases]
    if bad:
        p.error(f"--sizes: {bad[0]} is not one of {sorted(cases)} on {args.device}{' --quick' * args.quick}")
    args.cases = {s: cases[s] for s in sizes}
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_device(args.device)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    load_before = load_average()
    start = time.perf_counter()
    try:
        rows = [measure(size, case, args) for size, case in args.cases.items()]
    finally:
        torch.set_num_threads(threads)
    total = time.perf_counter() - start
    reduced = (
        "CPU run: sizes reduced to 32/64 px with the toy config's widths, because one lightweight-gan "
        "D step at 256 px takes minutes on 2 cores; 128/256 px at lightweight-gan's default widths "
        "run with `--device cuda`."
        if args.device == "cpu"
        else "CUDA run: lightweight-gan's default widths (latent 256, fmap_max 512)."
    )
    lines = [
        f"## {SECTION}",
        "",
        f"`python benchmarks/gan_generation.py{' --quick' if args.quick else ''}` — {date.today()}, "
        f"{machine(args.device)}; device {args.device}, {args.threads} torch thread(s); "
        f"load average {load_before} before, {load_average()} after; {total:.0f} s in all.",
        "",
        "One lightweight-gan iteration (D step with hinge on both heads + reconstruction MSE + GP every "
        "4th, then the G step): `GenerationTask.train_step` + `end_iteration` vs a hand-written loop "
        f"of the same networks, losses and real images. DiffAugment {'+'.join(AUG_TYPES)} at p {AUG_P}, "
        f"Adam (lr {LR}, betas {BETAS}), fp32; medians of {args.blocks} alternating blocks of "
        f"{args.iters} iterations after {args.warmup} warm-up iterations per side. Target task / bare ≤ 1.05."
        + (" (--quick: tiny networks, not a measurement)" if args.quick else ""),
        reduced,
        "",
        "| size | networks | batch | task (ms/it) | bare (ms/it) | task img/s | bare img/s "
        "| task / bare | range |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lo, hi = r["spread"]
        lines.append(
            f"| {r['size']} px | {r['nets']} | {r['batch']} | {r['task_ms']:.0f} | {r['bare_ms']:.0f} | "
            f"{r['task_ips']:.2f} | {r['bare_ips']:.2f} | {r['ratio']:.3f}× | {lo:.3f}–{hi:.3f}× |"
        )
    if args.toy_note:
        lines += ["", args.toy_note]
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(SECTION, text, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""face_step: the face task's (GFPGAN's) iteration against a bare PyTorch loop of the same networks.

What is compared, at 128 px with ``configs/gfpgan_toy.yml``'s networks and losses (GFPGANv1Clean,
StyleGAN2Discriminator, the three FacialComponentDiscriminators, the frozen ArcFace and the VGG19
of the perceptual loss; every GFPGAN loss on):

* **task** — ``FaceTask.train_step`` then ``end_iteration`` as the trainer calls them: the G step
  (pixel, pyramid, perceptual + Gram style, global GAN, three component GANs and their Gram style,
  identity), the global D step (R1 every ``net_d_reg_every`` = 16 iterations), the three
  component D steps, the schedules, the EMA update and the scalar dict (no host sync);
* **bare** — the same arithmetic written out by hand (``requires_grad_`` toggles, ``F.l1_loss``,
  ``F.softplus``, ``F.binary_cross_entropy_with_logits``, ``torch.autograd.grad`` for R1, five
  optimizers built from the task's own settings, a ``torch._foreach_lerp_`` EMA) on copies of the
  same networks with the same initial weights and the same data tensors. Shared with the task,
  because a hand-written loop would import them too: the frozen VGG inside ``PerceptualLoss``
  (called through ``components``), the frozen ArcFace and the ``roi_align`` op.

Timing alternates blocks in one process, B0 T0 B1 T1 … Bn (with the same R1 rhythm on both
sides), and compares each task block with the mean of the bare blocks on either side of it, which
cancels slow drifts of a shared machine. The ratio task / bare is the framework's overhead.
``--profile`` adds a cProfile of a few task steps (top functions by own time) to find it.

Run ``python benchmarks/face_step.py`` (a few minutes on a 2-core CPU; ``--quick`` for a short
run, ``--device cuda`` on a GPU). The table replaces the ``## face_step`` section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from _common import RESULTS, check_device, interleaved, load_average, machine, sync, write_section

import restorekit.archs
import restorekit.losses
import restorekit.tasks  # noqa: F401  (registration)
from restorekit.config import validate_config
from restorekit.data.face_components import FFHQ_TEMPLATE_512, component_boxes, components_from_5
from restorekit.faces.toyset import write_random_vgg19
from restorekit.losses.face import crop_components, gray_for_identity
from restorekit.losses.perceptual import gram_matrix
from restorekit.tasks.face import FaceTask

SECTION = "face_step"
TOY = Path(__file__).resolve().parents[1] / "configs" / "gfpgan_toy.yml"
SIZE = 128
PARTS = ("left_eye", "right_eye", "mouth")


def config(size: int, device: str, vgg: Path) -> Any:
    """``configs/gfpgan_toy.yml`` at ``size`` px, without validation sets, VGG from ``vgg``."""
    raw = yaml.safe_load(TOY.read_text(encoding="utf-8"))
    raw["device"] = device
    raw["network_g"]["out_size"] = raw["network_d"]["out_size"] = size
    ds = raw["data"]["train"]["dataset"]
    ds.update(out_size=size, dataroot_gt="-", component_path=None, crop_components=True)
    raw["data"].pop("val")
    losses = raw["train"]["losses"]
    losses["perceptual"]["weights_path"] = str(vgg)
    # GFPGAN's own weights for the terms the bare loop writes as literals (the toy re-weights them)
    losses["pixel"]["loss_weight"], losses["gan"]["loss_weight"] = 0.1, 0.1
    losses["gan_component"]["loss_weight"] = 1.0
    raw["train"]["pyramid_loss_weight"] = 1.0
    return validate_config(raw)


def make_batches(n: int, size: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Two batches in [-1, 1] with the template's component boxes (GFPGAN's eye enlargement 1.4)."""
    entry = components_from_5(FFHQ_TEMPLATE_512 * size / 512, min_half=16 * size / 512)
    boxes = component_boxes(entry, size, False, 1.4)
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(2):
        gt = torch.rand(n, 3, size, size, generator=g) * 2 - 1
        b = {"gt": gt, "lq": (gt + 0.2 * torch.randn(n, 3, size, size, generator=g)).clamp(-1, 1)}
        b.update({f"loc_{p}": torch.tensor(boxes[p]).repeat(n, 1) for p in PARTS})
        out.append({k: v.to(device) for k, v in b.items()})
    return out


def _like(opt: torch.optim.Optimizer, params: Any) -> torch.optim.Optimizer:
    """A fresh optimizer of ``opt``'s class and settings (lr and betas as the task corrected them)."""
    group = {k: opt.param_groups[0][k] for k in opt.defaults}  # not the scheduler's initial_lr
    return type(opt)(params, **group)


class Bare:
    """The hand-written GFPGAN iteration: what one would write without a framework."""

    def __init__(self, task: FaceTask) -> None:
        cfg = task.cfg.train
        assert cfg is not None
        self.cfg, self.noise_kw = cfg, dict(task.noise_kw)
        self.g = copy.deepcopy(task.networks["net_g"]).train()
        self.d = copy.deepcopy(task.networks["net_d"]).train()
        self.comps = {c: copy.deepcopy(task.networks[f"net_d_{c}"]).train() for c in PARTS}
        self.identity, self.percep = task.identity, task.losses["perceptual"]
        self.sides = (task.eye_side, task.mouth_side, task.crop_factor)
        self.ema = [p.detach().clone() for p in self.g.parameters()]
        self.decay = cfg.ema_decay
        self.opt_g = _like(task.g.optimizer, self.g.parameters())  # type: ignore[arg-type]
        self.opt_d = _like(task.d.optimizer, self.d.parameters())  # type: ignore[arg-type]
        self.opt_c = {
            c: _like(task.components[c].optimizer, m.parameters())  # type: ignore[arg-type]
            for c, m in self.comps.items()
        }
        self.it = 0

    def crops(self, img: torch.Tensor, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        n = img.shape[0]
        idx = torch.arange(n, dtype=torch.float32, device=img.device)[:, None]
        eyes = torch.stack(
            [torch.cat([idx, b["loc_left_eye"]], 1), torch.cat([idx, b["loc_right_eye"]], 1)], 1
        ).reshape(2 * n, 5)
        return crop_components(img, eyes, torch.cat([idx, b["loc_mouth"]], 1), *self.sides)

    def step(self, b: dict[str, torch.Tensor]) -> None:
        self.it += 1
        cfg, lq, gt = self.cfg, b["lq"], b["gt"]
        for d in (self.d, *self.comps.values()):
            d.requires_grad_(False)
        out, rgbs = self.g(lq, return_rgb=True, **self.noise_kw)
        loss = 0.1 * F.l1_loss(out, gt)
        target = gt
        for rgb in reversed(rgbs):  # pyramid, finest first
            loss = loss + F.l1_loss(rgb, target)
            target = F.interpolate(target, scale_factor=0.5, mode="bilinear", align_corners=False)
        percep, style = self.percep.components(out, gt)  # type: ignore[operator]
        loss = loss + percep + style + 0.1 * F.softplus(-self.d(out)).mean()
        crops, crops_gt = self.crops(out, b), self.crops(gt, b)
        for c, net in self.comps.items():
            pred, feats = net(crops[c], return_feats=True)
            _, real = net(crops_gt[c], return_feats=True)
            loss = loss + F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred))
            style_c = 0.5 * F.l1_loss(gram_matrix(feats[0]), gram_matrix(real[0].detach()))
            style_c = style_c + F.l1_loss(gram_matrix(feats[1]), gram_matrix(real[1].detach()))
            loss = loss + cfg.comp_style_weight * style_c
        emb_gt = self.identity(gray_for_identity(gt)).detach()  # type: ignore[misc]
        loss = loss + cfg.identity_weight * F.l1_loss(self.identity(gray_for_identity(out)), emb_gt)  # type: ignore[misc]
        self.g_loss = loss.detach()  # for the equivalence check in tests / by hand
        loss.backward()
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        for d in (self.d, *self.comps.values()):
            d.requires_grad_(True)
        fake = out.detach()
        l_fake = F.softplus(self.d(fake)).mean()
        r1_now = self.it % cfg.net_d_reg_every == 0
        real = gt.detach().requires_grad_(r1_now)
        real_pred = self.d(real)
        l_real = F.softplus(-real_pred).mean()
        if r1_now:
            (grad,) = torch.autograd.grad(real_pred.sum(), real, create_graph=True)
            r1 = grad.pow(2).flatten(1).sum(1).mean()
            l_real = l_real + cfg.r1_reg_weight / 2 * r1 * cfg.net_d_reg_every
        (l_fake + l_real).backward()  # one backward, as GFPGAN's l_d.backward()
        self.opt_d.step()
        self.opt_d.zero_grad(set_to_none=True)
        fake_crops, real_crops = self.crops(fake, b), self.crops(gt, b)
        for c, net in self.comps.items():
            fake_pred, _ = net(fake_crops[c])
            l_fake = F.softplus(fake_pred).mean()  # GFPGAN's quirk: the global GAN loss
            real_pred, _ = net(real_crops[c])
            l_real = F.binary_cross_entropy_with_logits(real_pred, torch.ones_like(real_pred))
            (l_fake + l_real).backward()
            self.opt_c[c].step()
            self.opt_c[c].zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, [p.detach() for p in self.g.parameters()], 1 - self.decay)


def build(args: argparse.Namespace, tmp: Path) -> tuple[FaceTask, Bare, list[dict[str, torch.Tensor]]]:
    device = torch.device(args.device)
    vgg = write_random_vgg19(tmp / "vgg19_random.pth")
    cfg = config(args.size, args.device, vgg)
    torch.manual_seed(0)
    task = FaceTask(cfg, device)
    task.train(True)
    return task, Bare(task), make_batches(args.batch, args.size, device)


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    task, bare, batches = build(args, tmp)
    device = torch.device(args.device)
    it = 0

    def run_task(n: int) -> float:
        nonlocal it
        sync(device)
        t = time.perf_counter()
        for _ in range(n):
            it += 1
            task.train_step([batches[it % 2]], it)
            task.end_iteration(it)
        sync(device)
        return (time.perf_counter() - t) / n

    def run_bare(n: int) -> float:
        sync(device)
        t = time.perf_counter()
        for _ in range(n):
            bare.step(batches[(bare.it + 1) % 2])
        sync(device)
        return (time.perf_counter() - t) / n

    task_times, bare_times, ratios = interleaved(run_task, run_bare, args.warmup, args.iters, args.blocks)
    result = {
        "task_ms": 1000 * statistics.median(task_times),
        "bare_ms": 1000 * statistics.median(bare_times),
        "ratio": statistics.median(ratios),
        "spread": (min(ratios), max(ratios)),
        "iters": it,
        "r1": task.phases["r1"].runs,
    }
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run_task(args.profile)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
        result["profile"] = buf.getvalue()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--size", type=int, default=SIZE, help="face side (128)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--iters", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared CPU)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile N more task steps")
    p.add_argument("--quick", action="store_true", help="a short run: 3 blocks of 2 iterations, batch 1")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    check_device(args.device)
    if args.quick:
        args.blocks, args.iters, args.warmup, args.batch = 3, 2, 1, 1
    torch.set_num_threads(args.threads)
    load_before = load_average()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args, Path(tmp))
    total = time.perf_counter() - start
    lo, hi = r["spread"]
    lines = [
        f"## {SECTION}",
        "",
        f"`{' '.join(['python benchmarks/face_step.py', *(sys.argv[1:] if argv is None else argv)])}` — "
        f"{date.today()}, "
        f"{machine(args.device)}; device {args.device}, {args.threads} torch thread(s); "
        f"load average {load_before} before, {load_average()} after; {total:.0f} s in all. "
        "The machine was shared with other sessions' jobs: compare the ratio (task and bare blocks "
        "alternate in one process), not the absolute times.",
        "",
        f"One GFPGAN iteration at {args.size} px, batch {args.batch} (configs/gfpgan_toy.yml's networks "
        "and every loss; random VGG19 and ArcFace): `FaceTask.train_step` + `end_iteration` vs a "
        f"hand-written loop of the same networks and data. Medians of {args.blocks} alternating blocks "
        f"of {args.iters} iterations after {args.warmup} warm-up iterations ({r['iters']} task "
        f"iterations, {r['r1']} with R1).",
        "",
        "| task (ms/it) | bare (ms/it) | task / bare | range |",
        "|---:|---:|---:|---:|",
        f"| {r['task_ms']:.0f} | {r['bare_ms']:.0f} | {r['ratio']:.3f}× | {lo:.3f}–{hi:.3f}× |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if "profile" in r:
        print(r["profile"])
    write_section(SECTION, text, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

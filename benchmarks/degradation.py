#!/usr/bin/env python
"""degradation: Real-ESRGAN's second-order degradation, batched in torch vs per sample in cv2.

What is compared, on the same GT images (256², RGB) and the same pre-sampled kernels:

* **batched** — ``RealESRGANDegradation(gt, kernel1, kernel2, sinc_kernel, generator)`` on a
  whole batch (8 and 16) on ``--device`` (CPU by default; ``--device cuda`` on a GPU machine):
  USM, per-sample blur, resize, Gaussian/Poisson noise, DiffJPEG, second stage, final
  [resize + sinc] / JPEG in either order, rounding. Batch-wide choices are one per batch, as in
  Real-ESRGAN.
* **per-sample** — the same steps written here with numpy and OpenCV, one image at a time, in
  ``--workers`` processes (2 by default, one OpenCV thread each), as a CPU data-loader pipeline
  would do it (MMagic's way): ``cv2.GaussianBlur`` USM, ``cv2.filter2D``, ``cv2.resize`` (area /
  bilinear / bicubic), numpy noise, ``cv2.imencode``/``imdecode`` JPEG. Every choice is drawn
  per sample, which is more varied than a batch but costs the same.

Kernel sampling happens in the data workers in both designs and costs the same, so it is left
out of both. Both sides get the same cores: the batched run is timed with ``--threads`` torch
intra-op threads (1 and ``--workers`` by default), the per-sample run with one process per core.
Both thread counts are reported because on a machine shared with other busy processes torch's
OpenMP threads wait for each other at every parallel region: there one thread can be many times
faster than two (the load average is printed with the results for that reason). The measurements
alternate (each batch and thread count, then per-sample, repeated ``--rounds`` times) and the
median of each is reported, which damps the drift of a shared machine.

Run ``python benchmarks/degradation.py`` (≈2 minutes on a 2-core CPU); ``--quick`` for a
seconds-long smoke run. The table replaces the ``## degradation`` section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from datetime import date
from typing import Any

import cv2
import numpy as np
import torch
from _common import check_device, load_average, machine, sync, write_section

from restorekit.data.degradations import BlurKernelOptions, RealESRGANDegradation, sample_final_sinc

SECTION = "degradation"


# ----------------------------------------------------------------------------- data
def make_samples(n: int, size: int, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """``n`` (gt HWC RGB float32, kernel1, kernel2, sinc) with structure at several scales."""
    rng = np.random.default_rng(seed)
    k1_opts, k2_opts = BlurKernelOptions(), BlurKernelOptions(blur_sigma=(0.2, 1.5))
    out = []
    for _ in range(n):
        base = rng.random((size // 8 + 2, size // 8 + 2, 3)).astype(np.float32)
        img = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + 0.05 * rng.standard_normal(img.shape).astype(np.float32), 0, 1)
        img = np.round(img * 255) / 255
        out.append((img, k1_opts.sample(rng), k2_opts.sample(rng), sample_final_sinc(rng, 0.8)))
    return out


# ----------------------------------------------------------------------------- per-sample (cv2)
_INTERP = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)
_WORKER: dict[str, Any] = {}


def _usm(img: np.ndarray, weight: float = 0.5, threshold: float = 10) -> np.ndarray:
    residual = img - cv2.GaussianBlur(img, (51, 51), 0)
    mask = (np.abs(residual) * 255 > threshold).astype(np.float32)
    soft = cv2.GaussianBlur(mask, (51, 51), 0)
    return soft * np.clip(img + weight * residual, 0, 1) + (1 - soft) * img


def _resize_factor(rng: np.random.Generator, prob: tuple, bounds: tuple) -> float:
    kind = rng.choice(3, p=prob)
    return (
        float(rng.uniform(1, bounds[1]))
        if kind == 0
        else float(rng.uniform(bounds[0], 1))
        if kind == 1
        else 1.0
    )


def _noise(img: np.ndarray, rng: np.random.Generator, o: dict, sfx: str) -> np.ndarray:
    gray = rng.random() < o[f"gray_noise_prob{sfx}"]
    if rng.random() < o[f"gaussian_noise_prob{sfx}"]:
        sigma = rng.uniform(*o[f"noise_range{sfx}"]) / 255
        shape = (*img.shape[:2], 1) if gray else img.shape
        noise = (rng.standard_normal(shape) * sigma).astype(np.float32)
    else:
        scale = rng.uniform(*o[f"poisson_scale_range{sfx}"])
        src = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None] if gray else img
        q = np.clip(np.round(src * 255), 0, 255) / 255
        vals = 2 ** np.ceil(np.log2(len(np.unique(q))))
        noise = ((rng.poisson(q * vals) / vals - q) * scale).astype(np.float32)
    return np.clip(img + noise, 0, 1)


def _jpeg(img: np.ndarray, rng: np.random.Generator, bounds: tuple) -> np.ndarray:
    quality = int(rng.uniform(*bounds))
    bgr = np.clip(np.round(img[:, :, ::-1] * 255), 0, 255).astype(np.uint8)
    _ok, enc = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255


def degrade_cv2(
    gt: np.ndarray, k1: np.ndarray, k2: np.ndarray, sinc: np.ndarray, seed: int, o: dict
) -> np.ndarray:
    """The batched pipeline's steps for one HWC image, numpy/OpenCV only."""
    rng = np.random.default_rng(seed)
    h, w = gt.shape[:2]
    s = o["scale"]
    out = cv2.filter2D(_usm(gt), -1, k1)  # BORDER_REFLECT_101 by default
    f = _resize_factor(rng, o["resize_prob"], o["resize_range"])
    out = cv2.resize(out, (max(1, int(w * f)), max(1, int(h * f))), interpolation=_INTERP[rng.integers(3)])
    out = _jpeg(_noise(out, rng, o, ""), rng, o["jpeg_range"])
    if rng.random() < o["second_blur_prob"]:
        out = cv2.filter2D(out, -1, k2)
    f = _resize_factor(rng, o["resize_prob2"], o["resize_range2"])
    size = (max(1, int(w / s * f)), max(1, int(h / s * f)))
    out = _noise(cv2.resize(out, size, interpolation=_INTERP[rng.integers(3)]), rng, o, "2")
    final = (w // s, h // s)
    if rng.random() < 0.5:
        out = cv2.filter2D(cv2.resize(out, final, interpolation=_INTERP[rng.integers(3)]), -1, sinc)
        out = _jpeg(out, rng, o["jpeg_range2"])
    else:
        out = _jpeg(out, rng, o["jpeg_range2"])
        out = cv2.filter2D(cv2.resize(out, final, interpolation=_INTERP[rng.integers(3)]), -1, sinc)
    return np.clip(np.round(out * 255), 0, 255) / 255


def _init_worker(n: int, size: int, options: dict) -> None:
    cv2.setNumThreads(1)  # one core per process: the pool is the parallelism
    _WORKER["samples"] = make_samples(n, size)
    _WORKER["options"] = options


def _work(job: tuple[int, int]) -> tuple[int, ...]:
    index, seed = job
    gt, k1, k2, sinc = _WORKER["samples"][index]
    return degrade_cv2(gt, k1, k2, sinc, seed, _WORKER["options"]).shape


# ----------------------------------------------------------------------------- timing
def time_batched(
    deg: RealESRGANDegradation, samples: list, batch: int, reps: int, device: str, seed: int
) -> float:
    """Samples per second of the batched pipeline (inputs already on the device)."""
    gt = torch.stack([torch.from_numpy(s[0].transpose(2, 0, 1)) for s in samples[:batch]]).to(device)
    ks = [torch.from_numpy(np.stack([s[i] for s in samples[:batch]])).to(device) for i in (1, 2, 3)]
    gen = torch.Generator(device).manual_seed(seed)
    deg(gt, *ks, gen)  # warm-up: allocator, USM matrices
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        deg(gt, *ks, gen)
    sync(device)
    return batch * reps / (time.perf_counter() - start)


def time_per_sample(pool: Any, n_jobs: int, n_samples: int, seed: int) -> float:
    jobs = [(i % n_samples, seed * 100_000 + i) for i in range(n_jobs)]
    start = time.perf_counter()
    pool.map(_work, jobs, chunksize=max(1, n_jobs // 16))
    return n_jobs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", type=int, default=256, help="GT size (pixels, square)")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=None, help="default: 1 and --workers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run; writes nothing")
    args = parser.parse_args()
    check_device(args.device)
    if args.quick:
        args.size, args.batches, args.rounds = 64, [4], 1
    deg = RealESRGANDegradation(scale=4, gt_size=None).to(args.device)
    options = {k: getattr(deg, k) for k in vars(deg) if not k.startswith("_") and k != "training"}
    n_samples = max(args.batches)
    samples = make_samples(n_samples, args.size)
    load = load_average()
    threads = args.threads or sorted({1, args.workers})
    batched: dict[tuple[int, int], list[float]] = {(b, t): [] for b in args.batches for t in threads}
    per_sample: list[float] = []
    n_jobs = 8 if args.quick else 64
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers, initializer=_init_worker, initargs=(n_samples, args.size, options)) as pool:
        time_per_sample(pool, 2 * args.workers, n_samples, seed=0)  # warm-up: imports, data
        for r in range(args.rounds):
            for b, t in batched:
                torch.set_num_threads(t)
                reps = 1 if args.quick else max(1, 16 // b)
                batched[b, t].append(time_batched(deg, samples, b, reps, args.device, seed=r))
                print(f"round {r}: batched {b}, {t} threads: {batched[b, t][-1]:.1f} samples/s", flush=True)
            per_sample.append(time_per_sample(pool, n_jobs, n_samples, seed=r + 1))
            print(f"round {r}: per-sample cv2 x{args.workers}: {per_sample[-1]:.1f} samples/s", flush=True)
    ref = statistics.median(per_sample)
    rows = [
        f"| batched torch, batch {b}, {args.device}, {t} thread{'s' if t > 1 else ''} | "
        f"{statistics.median(v):.1f} | {statistics.median(v) / ref:.2f}× |"
        for (b, t), v in batched.items()
    ]
    rows.append(f"| per-sample numpy/cv2, {args.workers} worker processes | {ref:.1f} | 1.00× |")
    text = "\n".join(
        [
            f"## {SECTION}",
            "",
            f"Real-ESRGAN second-order degradation of {args.size}² RGB GT to {args.size // 4}² LQ (x4 "
            "defaults of train_realesrgan_x4plus.yml), samples per second, median of "
            f"{args.rounds} alternating rounds; kernels pre-sampled for both sides.",
            "",
            f"Machine: {machine(args.device)}. Load average before the run: {load}. "
            f"Date: {date.today().isoformat()}.",
            "",
            "On a machine whose load average exceeds its core count, torch's OpenMP threads wait for "
            "each other at every parallel region, so the multi-thread rows drop far below the 1-thread "
            "ones; the per-sample row uses one process per core either way.",
            "",
            "| pipeline | samples/s | vs per-sample |",
            "|---|---:|---:|",
            *rows,
            "",
        ]
    )
    print(text)
    if not args.quick:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""metrics: PSNR/SSIM, MATLAB bicubic and FID features — batched torch vs per-image numpy.

What is compared, on the same 512² RGB images (``--images`` of them, 8 by default):

* **PSNR / SSIM** (``crop_border=4``, RGB and ``test_y_channel``), images/s:
  - *numpy, metric only* — ``calculate_psnr`` / ``calculate_ssim`` (BasicSR's code path,
    OpenCV's ``filter2D`` for SSIM) one image at a time on uint8 BGR arrays made beforehand;
  - *numpy, BasicSR validation* — the same plus ``tensor2img`` of output and GT per image, which
    is what BasicSR's validation loop does for every image;
  - *torch batched* — ``psnr_batch`` / ``ssim_batch`` on the NCHW float batch (quantisation
    included), with 1 and 2 intra-op threads.
* **MATLAB bicubic** ×1/4 with antialiasing, images/s: ``imresize`` on the batch (dense resize
  matrices, two matrix products) against a per-image numpy implementation of the same formula
  written here (per-tap gather and weighted sum, as BasicSR's ``matlab_functions`` does in torch);
  the two outputs are checked to agree to float32 precision.
* **FID features**: the pytorch-fid InceptionV3 (random weights — speed does not depend on them)
  on the batch, images/s, resize to 299 included, for batch sizes 1 and ``--images``.

Both sides get the same core budget: numpy/OpenCV run with one OpenCV thread (numpy is single
threaded here) and torch with one intra-op thread by default. ``--threads 1,2`` adds two-thread
runs; on a machine shared with other busy processes OpenMP threads wait for each other at every
parallel region and two threads were up to 100x *slower* than one there (the load average is
printed for that reason). Measurements alternate, ``--rounds`` times, and the median is reported.
For the record, the SSIM group also times the previous torch filter (one dense ``(H-10, H)``
band matrix per axis), which the tiled filter replaced.

Run ``python benchmarks/metrics.py`` (about 2 minutes on a 2-core CPU); ``--quick`` for a smoke
run. The table replaces the ``## metrics`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from datetime import date

import cv2
import numpy as np
import torch
from _common import check_device, load_average, machine, sync, write_section

from restorekit.archs.inception import FIDInception
from restorekit.data.degradations import imresize
from restorekit.metrics import calculate_psnr, calculate_ssim, psnr_batch, ssim_batch
from restorekit.metrics import psnr_ssim_torch as pst

SECTION = "metrics"
CROP = 4


# ----------------------------------------------------------------------------- data
def make_batch(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, gt): smooth RGB images in [0, 1] and a noisy version partly outside [0, 1]."""
    rng = np.random.default_rng(seed)
    base = rng.random((n, size // 8 + 2, size // 8 + 2, 3)).astype(np.float32)
    gt = np.stack([cv2.resize(b, (size, size), interpolation=cv2.INTER_CUBIC) for b in base])
    gt = np.clip(gt, 0, 1)
    out = gt + 0.04 * rng.standard_normal(gt.shape).astype(np.float32)
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    return to_t(out), to_t(gt)


def tensor2img(t: torch.Tensor) -> np.ndarray:
    """BasicSR's ``tensor2img`` for one RGB CHW tensor: clamp, RGB→BGR, *255, round, uint8."""
    x = t.detach().float().cpu().clamp_(0, 1).numpy().transpose(1, 2, 0)[:, :, ::-1]
    return (x * 255.0).round().astype(np.uint8)


def ssim_dense_band(output: torch.Tensor, gt: torch.Tensor, crop: int, y: bool) -> torch.Tensor:
    """The previous ``ssim_batch``: the 'valid' Gaussian as one dense band matrix per axis."""
    a, b = pst._prepare(output, gt, crop, y)
    a, b = a.double(), b.double()

    def band(n: int) -> torch.Tensor:
        g = pst._tile_band(a.device)[0, :11]
        m = torch.zeros(n - 10, n, dtype=torch.float64, device=a.device)
        for i in range(n - 10):
            m[i, i : i + 11] = g
        return m

    bh, bw = band(a.shape[-2]), band(a.shape[-1])
    c = a.shape[1]
    mom = torch.matmul(torch.matmul(bh, torch.cat([a, b, a * a, b * b, a * b], 1)), bw.T)
    mu1, mu2, e11, e22, e12 = mom.split(c, 1)
    m12, m11, m22 = mu1 * mu2, mu1 * mu1, mu2 * mu2
    ssim = ((2 * m12 + pst._C1) * (2 * (e12 - m12) + pst._C2)) / (
        (m11 + m22 + pst._C1) * ((e11 - m11) + (e22 - m22) + pst._C2)
    )
    return ssim.mean(dim=(2, 3)).mean(dim=1)


# ----------------------------------------------------------------------------- numpy bicubic
def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def np_contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's weights (out, P) and mirrored 0-based indices for an antialiased resize."""
    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(math.ceil(width) + 2)[None, :]
    w = scale * _cubic(scale * (u[:, None] - idx)) if scale < 1 else _cubic(u[:, None] - idx)
    w /= w.sum(axis=1, keepdims=True)
    m = np.mod(idx.astype(np.int64) - 1, 2 * in_len)
    m = np.where(m >= in_len, 2 * in_len - 1 - m, m)
    return w.astype(np.float32), m


def np_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """Per-image MATLAB bicubic of an HWC float32 image: gather the taps, weight, sum; H then W."""
    h, w = img.shape[:2]
    wh, ih = np_contributions(h, math.ceil(h * scale), scale)
    ww, iw = np_contributions(w, math.ceil(w * scale), scale)
    rows = np.einsum("op,opwc->owc", wh, img[ih])
    return np.einsum("op,hopc->hoc", ww, rows[:, iw])


# ----------------------------------------------------------------------------- timing
def timed(fn: Callable[[], object], device: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    sync(device)
    t, c = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - t, time.process_time() - c


Cases = dict[str, tuple[Callable[[], object], int, int]]


def run_cases(cases: Cases, rounds: int, device: str) -> dict[str, tuple[float, float]]:
    """Alternate all cases ``rounds`` times; median (images/s, images per CPU-second) of each.

    A case is (fn, torch threads, images). With one thread, images per CPU-second is what an
    idle core would give: it hardly moves when other processes share the machine, wall time does.
    """
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
    for fn, threads, _ in cases.values():  # warm-up (caches, lazy init)
        torch.set_num_threads(threads)
        fn()
    for _ in range(rounds):
        for name, (fn, threads, _) in cases.items():
            torch.set_num_threads(threads)
            times[name].append(timed(fn, device))
    out = {}
    for k, v in times.items():
        n = cases[k][2]
        out[k] = (n / statistics.median(t[0] for t in v), n / statistics.median(t[1] for t in v))
    return out


def rows(what: str, ips: dict[str, tuple[float, float]], base: str) -> list[str]:
    """Table rows; the ratio is per CPU-second, against the case ``base``."""
    ref = ips[base][1]
    return [f"| {what} | {name} | {w:.1f} | {c:.1f} | {c / ref:.2f}× |" for name, (w, c) in ips.items()]


def best_ratio(ips: dict[str, tuple[float, float]], base: str) -> float:
    return max(c for k, (_, c) in ips.items() if k.startswith("torch")) / ips[base][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", default="1", help="torch thread counts to time, e.g. 1,2 (CPU)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round, nothing written")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    check_device(args.device)
    if args.quick:
        args.images, args.size, args.rounds = 2, 128, 1
    cv2.setNumThreads(1)
    dev, n = args.device, args.images
    load = load_average()
    out, gt = make_batch(n, args.size)
    out_d, gt_d = out.to(dev), gt.to(dev)
    bgr = [(tensor2img(o), tensor2img(g)) for o, g in zip(out, gt)]
    threads = [int(t) for t in args.threads.split(",")] if dev == "cpu" else [torch.get_num_threads()]

    sections = []
    ratio_rows = []
    for metric, np_fn, t_fn in (("PSNR", calculate_psnr, psnr_batch), ("SSIM", calculate_ssim, ssim_batch)):
        for y in (False, True):
            label = f"{metric}{' (Y)' if y else ' (RGB)'}"
            cases: Cases = {
                "numpy, metric only": (
                    lambda f=np_fn, y=y: [f(a, b, CROP, test_y_channel=y) for a, b in bgr],
                    1,
                    n,
                ),
                "numpy, BasicSR validation (tensor2img + metric)": (
                    lambda f=np_fn, y=y: [
                        f(tensor2img(o), tensor2img(g), CROP, test_y_channel=y) for o, g in zip(out, gt)
                    ],
                    1,
                    n,
                ),
            }
            for k in threads:
                cases[f"torch batched ({n}), {dev}, {k} thread{'s' * (k > 1)}"] = (
                    lambda f=t_fn, y=y: f(out_d, gt_d, CROP, y),
                    k,
                    n,
                )
            if metric == "SSIM":
                k = threads[0]
                cases[f"previous torch (dense band), {dev}, {k} thread{'s' * (k > 1)}"] = (
                    lambda y=y: ssim_dense_band(out_d, gt_d, CROP, y),
                    k,
                    n,
                )
            ips = run_cases(cases, args.rounds, dev)
            sections += rows(label, ips, "numpy, metric only")
            basicsr = "numpy, BasicSR validation (tensor2img + metric)"
            ratio_rows.append((label, best_ratio(ips, "numpy, metric only"), best_ratio(ips, basicsr)))
            # The batched numbers are the numpy numbers (checked in tests; a sanity check here).
            ref = np.array([np_fn(a, b, CROP, test_y_channel=y) for a, b in bgr])
            assert np.allclose(t_fn(out_d, gt_d, CROP, y).cpu().numpy(), ref, rtol=0, atol=1e-9)

    # MATLAB bicubic x1/4.
    imgs_np = [np.ascontiguousarray(g.permute(1, 2, 0).numpy()) for g in gt]
    ref = np.stack([np_imresize(im, 0.25) for im in imgs_np])
    got = imresize(gt_d, 0.25).permute(0, 2, 3, 1).cpu().numpy()
    max_diff = float(np.abs(got - ref).max())
    assert max_diff < 1e-5, max_diff
    per_image = "numpy per image (gather + weighted sum)"
    cases = {per_image: (lambda: [np_imresize(im, 0.25) for im in imgs_np], 1, n)}
    for k in threads:
        cases[f"torch batched ({n}), {dev}, {k} thread{'s' * (k > 1)}"] = (lambda: imresize(gt_d, 0.25), k, n)
    ips = run_cases(cases, args.rounds, dev)
    bic_rows = rows("bicubic ×1/4", ips, per_image)
    best_bicubic = best_ratio(ips, per_image)

    # FID features (pool3, 2048-d) with random weights.
    torch.manual_seed(0)
    model = FIDInception(dims=2048).to(dev)
    cases: Cases = {}
    for k in threads:
        for bs in sorted({1, n}):
            cases[f"batch {bs}, {dev}, {k} thread{'s' * (k > 1)}"] = (
                lambda bs=bs: [model(out_d[i : i + bs].clamp(0, 1)) for i in range(0, n, bs)],
                k,
                n,
            )
    with torch.inference_mode():
        fid_ips = run_cases(cases, args.rounds, dev)
    fid_rows = rows("FID features", fid_ips, next(iter(fid_ips)))

    ratios = "; ".join(f"{lbl} {a:.2f}× ({b:.2f}×)" for lbl, a, b in ratio_rows)
    text = "\n".join(
        [
            f"## {SECTION}",
            "",
            f"Images/s on {n} images of {args.size}² RGB (PSNR/SSIM with crop_border={CROP}), median of "
            f"{args.rounds} alternating rounds; numpy/OpenCV single-threaded, torch with the threads shown. "
            "Images per CPU-second (process time) is the load-robust number on a shared machine; the last "
            "column compares it with the first row of the group.",
            "",
            f"Machine: {machine(dev)}. Load average before the run: {load}. Date: {date.today()}.",
            "",
            "| what | path | images/s (wall) | images per CPU-s | vs first |",
            "|---|---|---:|---:|---:|",
            *sections,
            *bic_rows,
            *fid_rows,
            "",
            "Best batched torch vs per-image numpy per CPU-second (metric only, and in brackets vs BasicSR's "
            f"tensor2img + metric): {ratios}; bicubic {best_bicubic:.2f}×. "
            f"Batched and numpy outputs agree (PSNR/SSIM to 1e-9, bicubic max |diff| {max_diff:.1e}).",
            "",
        ]
    )
    print(text)
    if not (args.quick or args.no_write):
        write_section(SECTION, text)


if __name__ == "__main__":
    main()

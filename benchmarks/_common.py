"""Helpers shared by the benchmark scripts: the machine line, the load, device syncs, RESULTS.md.

Every script writes one ``## <name>`` section of ``RESULTS.md`` and replaces only that section
when it runs again, so scripts (and people) can re-measure one thing without losing the rest.
A number without the machine it was measured on means little, hence :func:`machine`: CPU model,
cores, torch and, for a CUDA run, the GPU by name.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = (
    "# Benchmark results\n\n"
    "Each section below is written by the benchmark script of the same name in this folder "
    "(see README.md for how to run them) and replaced when that script runs again.\n"
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine(device: str = "cpu") -> str:
    """One line: CPU, cores, torch, Python and — for a CUDA run — the GPU that did the work."""
    text = (
        f"{cpu_model()}, {os.cpu_count()} logical CPUs ({usable_cores()} usable), "
        f"torch {torch.__version__}, Python {platform.python_version()}, {platform.system()}"
    )
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        text += (
            f"; GPU: {props.name} ({props.total_memory / 2**30:.0f} GiB, "
            f"{torch.cuda.device_count()} visible, CUDA {torch.version.cuda})"
        )
    return text


def load_average() -> str:
    """1/5/15-minute load: other processes on a shared machine stretch wall times."""
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def check_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available on this machine")


def sync(device: str | torch.device) -> None:
    """Wait for queued GPU work: CUDA calls return before the work is done, so a clock read
    without a sync measures the launch, not the computation. A no-op on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    run_task: Callable[[int], float],
    run_bare: Callable[[int], float],
    warmup: int,
    iters: int,
    blocks: int,
    on_block: Callable[[float, float], object] | None = None,
) -> tuple[list[float], list[float], list[float]]:
    """Time task and bare loop in alternating blocks of ``iters`` steps after ``warmup`` each.

    Each task block's ratio is taken against the mean of the bare blocks on either side of it,
    so a change in machine load during the run shifts both sides alike. Returns (task seconds
    per step, bare seconds per step, ratios); ``on_block(task_s, ratio)`` is called per block.
    """
    run_task(warmup)
    run_bare(warmup)
    bare_times = [run_bare(iters)]
    task_times: list[float] = []
    ratios: list[float] = []
    for _ in range(blocks):
        task_times.append(run_task(iters))
        bare_times.append(run_bare(iters))
        ratios.append(task_times[-1] / ((bare_times[-2] + bare_times[-1]) / 2))
        if on_block is not None:
            on_block(task_times[-1], ratios[-1])
    return task_times, bare_times, ratios


def write_section(section: str, text: str, path: Path = RESULTS) -> None:
    """Replace the ``## <section>`` part of ``path`` with ``text`` (or append it); the file's other
    sections stay as they are."""
    old = path.read_text(encoding="utf-8") if path.exists() else HEADER
    out, skipping, replaced = [], False, False
    for line in old.splitlines(keepends=True):
        if line.startswith("## "):
            skipping = line.strip() == f"## {section}"
            if skipping and not replaced:
                out.append(text.rstrip("\n") + "\n\n")
                replaced = True
        if not skipping:
            out.append(line)
    body = "".join(out)
    if not replaced:
        body = body.rstrip("\n") + "\n\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body.rstrip("\n") + "\n", encoding="utf-8")


def run_section(args: Any, section: str, measure: Callable[[Any], str]) -> int:
    """Shared ``main()`` body: device check, ``--threads``, measure, write the section, print it.

    The thread count is restored afterwards because the smoke tests call ``main()`` in-process.
    """
    check_device(args.device)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        text = measure(args)
    finally:
        torch.set_num_threads(threads)
    write_section(section, text, args.results)
    print(f"\n{text}\nwritten to {args.results}")
    return 0


def _decode_rate(seconds: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    """PNG decodes per second of one single-threaded process (a typical data-loader task)."""
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    buf = cv2.imencode(".png", img)[1]
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        cv2.imdecode(buf, cv2.IMREAD_COLOR)
        n += 1
    queue.put(n / elapsed)


def parallel_speedup(nproc: int = 2, seconds: float = 2.0, rounds: int = 2) -> float:
    """How much more CPU work ``nproc`` processes get done than one, on this machine right now.

    Total PNG-decode throughput of ``nproc`` concurrent processes ÷ that of one, alternating
    (1, n, 1, n, …) and taking the median of within-round ratios. On an idle machine with
    ``nproc`` free cores it is close to ``nproc``; on a machine shared with other busy processes
    (or whose virtual CPUs share physical ones) it can be close to 1. It is the ceiling for any
    ``nproc``-process speed-up measured at the same time — loader workers, DDP processes — so the
    benchmarks print it beside their scaling numbers.
    """
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")

    def total(n: int) -> float:
        queue = ctx.Queue()
        procs = [ctx.Process(target=_decode_rate, args=(seconds, queue)) for _ in range(n)]
        for p in procs:
            p.start()
        rates = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        return sum(rates)

    ratios = []
    for _ in range(rounds):
        one = total(1)
        ratios.append(total(nproc) / one)
    return statistics.median(ratios)

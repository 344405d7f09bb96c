#!/usr/bin/env python
"""reliability: issue 14's fault campaign on a tiny run, as a table of tried / handled.

Four groups, each checked against what the toolkit promises:

* **kills**: ``SIGKILL`` a training run again and again — right after a checkpoint (the trainer's
  ``RESTOREKIT_TEST_KILL_AFTER_SAVE`` hook), inside a checkpoint write (the moment its temporary
  folder appears: no sleep hook exists, so this script watches the folder) and at random times —
  ``--resume auto`` after each, and compare every later checkpoint and the export with an
  uninterrupted run of the same config, tensor by tensor;
* **corruption**: damage the newest checkpoint (truncated, emptied, flipped tensor bytes, an
  older ``net_g`` swapped in, ...) and expect ``--resume auto`` to fall back with one line;
* **disk-full**: an injected ``ENOSPC``/``EROFS`` at each write site (the code has no env-var
  fault hook for these, so they run in this process with the writer replaced), plus, when run
  as root, a real 256 KiB tmpfs; expect ``error: PATH: no space left on device (needed ~N MB)``;
* **numeric**: diverging learning rates, a transient NaN, non-finite loss weights and weights.

Run from the repository root: ``OMP_NUM_THREADS=1 python benchmarks/reliability.py`` (about 5
minutes on 2 cores; ``--kills N`` random kills, ``--mid-save N``, ``--after-save N``, ``--iters N``,
``--seed S``; ``--quick`` for a smoke run). It prints the table and writes it between the markers
of ``docs/reliability.md`` (``--out``); it exits 1 when a row is not handled.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _faults as faults  # noqa: E402
from _common import load_average, machine  # noqa: E402
from _faults import ROWS, config, record, run_dir, same_weights  # noqa: E402

BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"
KILL_HOOK = "RESTOREKIT_TEST_KILL_AFTER_SAVE"


# ------------------------------------------------------------------ (a) kills
def launch(cfg: Path, resume: bool, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "restorekit", "train", "-c", str(cfg)]
    with open(log, "wb") as f:
        return subprocess.Popen([*cmd, *(["--resume", "auto"] if resume else [])], env=env, stdout=f,
                                stderr=subprocess.STDOUT)  # fmt: skip


def newest(run: Path) -> int:
    from restorekit.ckptdir import list_checkpoints

    found = list_checkpoints(run)
    return found[-1][0] if found else 0


def phase_after_kill(run: Path, loops_before: int, name: str, resumed: bool, total: int) -> str:
    """Where the SIGKILL landed, from what it left behind."""
    tmp = sorted(p.name for p in run.glob("checkpoints/.tmp_iter_*"))
    if tmp:
        return f"inside the checkpoint write of iteration {tmp[0].split('_')[2]}"
    if (run / ".model.safetensors.tmp").exists():
        return "inside the export"
    log = (run / "log.txt").read_text() if (run / "log.txt").is_file() else ""
    if log.count(f"training {name}:") == loops_before:
        return "in the start-up of a resumed run" if resumed else "in start-up (before the loop)"
    last = newest(run)
    if last == total:
        return "after the final checkpoint (validating or exporting)"
    return f"between saves (newest iter_{last})" if last else "before the first checkpoint"


def wait_for_save(proc: subprocess.Popen[bytes], run: Path, at_least: int) -> None:
    """SIGKILL ``proc`` the moment a checkpoint of iteration ≥ ``at_least`` is being written: its
    temporary folder exists (a save of this tiny run takes a few milliseconds; polled at ~0.3 ms)."""
    root = run / "checkpoints"
    while proc.poll() is None:
        with contextlib.suppress(OSError):
            for entry in os.scandir(root):
                if entry.name.startswith(".tmp_iter_") and int(entry.name.split("_")[2]) >= at_least:
                    proc.send_signal(signal.SIGKILL)
                    return
        time.sleep(0.0003)


def wait_for_iteration(proc: subprocess.Popen[bytes], run: Path, target: int) -> None:
    """Return once ``proc`` has logged iteration ``target`` (``stats.jsonl``, a row per iteration)."""
    stats = run / "stats.jsonl"
    start = stats.stat().st_size if stats.is_file() else 0  # rows of earlier launches do not count
    while proc.poll() is None:
        rows = stats.read_bytes()[start:].decode(errors="replace") if stats.is_file() else ""
        done = [int(x) for x in re.findall(r'"iter": (\d+), "time": [\d.]+, "kind": "train"', rows)]
        if done and max(done) >= target:
            return
        time.sleep(0.002)


def reference(env: dict[str, str], changes: dict[str, Any]) -> tuple[Path, float, float]:
    """The uninterrupted run: (run folder, seconds of start-up, seconds of the training loop)."""
    straight = config(faults.WORK / "kills", "straight", **changes)
    start, log = time.monotonic(), run_dir(straight) / "log.txt"
    proc, marks = launch(straight, False, env, faults.WORK / "kills/straight.out"), [0.0, 0.0]
    last = f"iter {changes['train.total_iter']:>7d}"
    while proc.poll() is None:
        text = log.read_text() if log.is_file() else ""
        for i, mark in enumerate(("training straight:", last)):
            if not marks[i] and mark in text:
                marks[i] = time.monotonic() - start
        time.sleep(0.01)
    if proc.returncode != 0 or not all(marks):
        raise SystemExit(f"the uninterrupted run failed; see {faults.WORK}/kills/straight.out (--keep)")
    return run_dir(straight), marks[0], marks[1] - marks[0]


def kill_campaign(args: argparse.Namespace) -> None:
    """Chains of kills and ``--resume auto``; each kill judged by the launches after it."""
    rng = random.Random(args.seed)
    env = {k: v for k, v in os.environ.items() if k != KILL_HOOK}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    changes = {"train.total_iter": args.iters, "logger.save_checkpoint_freq": 4, "logger.keep_last": 10**6,
               "val.freq": max(10, args.iters // 3), "logger.print_freq": 1}  # fmt: skip
    ref, startup, loop = reference(env, changes)
    saves = list(range(4, args.iters + 1, 4))
    # (kind, iteration): the hook's checkpoint, or the save to kill inside; spread over the run
    plan = [("hook", saves[len(saves) * k // (args.after_save + 1)]) for k in range(1, args.after_save + 1)]
    plan += [("mid-save", it) for it in sorted(rng.sample(saves, min(args.mid_save, len(saves))))]
    plan += [("random", 0)] * args.kills
    kills: list[dict[str, Any]] = []
    chain = 0
    while len(kills) < len(plan):
        chain, first = chain + 1, len(kills)
        name = f"killed{chain}"
        cfg = config(faults.WORK / "kills", name, **changes)
        run, n = run_dir(cfg), 0
        while True:
            n += 1
            log = run / "log.txt"
            loops = log.read_text().count(f"training {name}:") if log.exists() else 0
            kind, it = plan[len(kills)] if len(kills) < len(plan) else ("none", 0)
            if kind != plan[first][0] or len(kills) - first == 3:  # a new chain: this one is far along
                kind = "none"
            at = newest(run)
            out = faults.WORK / f"kills/{name}.{n}.out"
            proc = launch(cfg, n > 1, {**env, KILL_HOOK: str(it)} if kind == "hook" else env, out)
            if kind == "mid-save":
                wait_for_save(proc, run, max(it, at + 1))
            elif kind == "random" and (at >= args.iters or rng.random() < 0.25):  # in start-up
                it = 0
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=rng.uniform(0.1, startup))
                proc.send_signal(signal.SIGKILL)
            elif kind == "random":  # at a random iteration of the rest, a random moment within it
                it = rng.randint(at + 1, args.iters)
                wait_for_iteration(proc, run, it)
                time.sleep(rng.uniform(0, loop / args.iters))
                proc.send_signal(signal.SIGKILL)
            rc = proc.wait()
            if rc == 0:
                break
            if rc != -signal.SIGKILL:
                raise SystemExit(f"{name}: rc {rc}; see {out} (--keep)")
            what = (f"right after checkpoint {it} (hook)" if kind == "hook"
                    else phase_after_kill(run, loops, name, n > 1, args.iters))  # fmt: skip
            what += f", just after iteration {it}" if kind == "random" and it else ""
            kills.append({"run": run, "what": what, "name": name, "n": n, "newest": newest(run)})
    for k in kills:
        check_resumed(k, ref)


def check_resumed(kill: dict[str, Any], ref: Path) -> None:
    """The first launch after the kill that got going resumed from the newest intact checkpoint
    (or restarted: none yet), removed a stale temp folder when the kill left one, and every
    checkpoint written after that point, and the export, equal the uninterrupted run's."""
    run, name, n = kill["run"], kill["name"], kill["n"] + 1
    text = ""
    while (faults.WORK / f"kills/{name}.{n}.out").is_file():  # a start-up killed again says nothing
        text = (faults.WORK / f"kills/{name}.{n}.out").read_text(errors="replace")
        if "resumed from" in text or f"training {name}:" in text:
            break
        n += 1
    m = re.search(r"resumed from \S*iter_(\d+) at iteration \d+", text)
    after = int(m.group(1)) if m else 0
    mid_save = "checkpoint write" in kill["what"]
    ok = after == kill["newest"] and (m is not None or f"training {name}:" in text)
    ok = ok and (not mid_save or "unfinished save" in text)  # the stale temp folder was removed
    later = [p for p in run.glob("checkpoints/iter_*") if int(p.name[5:]) > after]
    pairs = [(p / f, ref / "checkpoints" / p.name / f) for p in later for f in ("net_g.safetensors",
             "net_g_ema.safetensors")] + [(run / "model.safetensors", ref / "model.safetensors")]  # fmt: skip
    equal = all(same_weights(a, b) for a, b in pairs)
    what = f"resumed from iter_{after}" if m else "restarted (no checkpoint yet)"
    what += ", removed the stale temp folder" if mid_save else ""
    what += f"; {len(later)} later checkpoints and the export " + ("bitwise equal" if equal else "DIFFER")
    record("kill", f"SIGKILL {kill['what']}", ok and equal, what)


# ------------------------------------------------------------------ the table
def table(args: argparse.Namespace, seconds: float) -> str:
    groups = dict.fromkeys(r[0] for r in ROWS)
    summary = ", ".join(
        f"{g} {sum(r[3] for r in ROWS if r[0] == g)}/{sum(r[0] == g for r in ROWS)}" for g in groups
    )
    flags = (
        f"--kills {args.kills} --after-save {args.after_save} --mid-save {args.mid_save} --iters {args.iters}"
    )
    flags += f" --seed {args.seed}"
    lines = [
        f"`OMP_NUM_THREADS=1 python benchmarks/reliability.py {flags}` — {date.today()}, {machine()}; "
        f"load average {load_average()}; {seconds:.0f} s. Handled: {summary}.", "",
        "| group | fault tried | what happened | handled |", "|---|---|---|---|",
    ]  # fmt: skip
    lines += [f"| {g} | {f} | {w} | {'yes' if ok else '**no**'} |" for g, f, w, ok in ROWS]
    return "\n".join(lines) + "\n"


def write_doc(path: Path, text: str) -> None:
    old = path.read_text(encoding="utf-8") if path.exists() else f"# Reliability\n\n{BEGIN}\n{END}\n"
    if BEGIN not in old or END not in old:
        old = old.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = old.split(BEGIN, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}{BEGIN}\n{text}{END}{rest.split(END, 1)[1]}", encoding="utf-8")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=8, help="SIGKILLs at random times (8)")
    p.add_argument("--after-save", type=int, default=3, help="SIGKILLs right after a checkpoint (3)")
    p.add_argument("--mid-save", type=int, default=4, help="SIGKILLs inside a checkpoint write (4)")
    p.add_argument("--iters", type=int, default=200, help="iterations of the killed run (200)")
    p.add_argument("--seed", type=int, default=0, help="draws the random kill times (0)")
    p.add_argument("--only", nargs="+", choices=["kills", "corruption", "disk", "numeric"])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    p.add_argument("--quick", action="store_true", help="4 kills of a 40-iteration run: a smoke run")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)
    if args.quick:
        args.kills, args.after_save, args.mid_save, args.iters = 2, 1, 1, 40
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    faults.WORK = work = Path(tempfile.mkdtemp(prefix="rk_reliability_"))
    start = time.monotonic()
    steps = {"kills": lambda: kill_campaign(args), "corruption": faults.corruption_matrix,
             "disk": faults.disk_matrix, "numeric": faults.numeric_matrix}  # fmt: skip
    try:
        for name in args.only or steps:
            steps[name]()
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = table(args, time.monotonic() - start)
    print(text)
    write_doc(args.out, text)
    return 0 if all(r[3] for r in ROWS) else 1


if __name__ == "__main__":
    raise SystemExit(main())

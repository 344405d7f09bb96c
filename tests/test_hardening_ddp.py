"""Hardening of multi-process runs and of full disks (issue 14).

* a killed launcher takes its torchrun workers with it (no orphans training into the run folder);
* a stuck rank ends the job after ``train.dist_timeout`` with one line naming it;
* a full or read-only disk while saving or logging is one ``error:`` line, and the previous
  checkpoint stays intact.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tiny_config, write_config

SRC = str(Path(__file__).resolve().parents[1] / "src")


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}
    return {**base, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", **extra}


def alive(pid: int) -> bool:
    """Running (not a zombie waiting for whoever adopted it to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_mentioning(text: str) -> dict[int, str]:
    """pid → command line of every live process whose command line contains ``text``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and alive(int(entry.name)):
            found[int(entry.name)] = cmdline
    return found


def wait_for(cond, timeout: float, step: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


@pytest.mark.slow
def test_killing_the_launcher_stops_its_workers(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path,
        name="orphans",
        **{"train.total_iter": 10**6, "logger.print_freq": 1, "logger.save_checkpoint_freq": 10**6,
           "val.freq": 10**6},
    )  # fmt: skip
    path = write_config(tmp_path / "orphans.yml", cfg)
    run = Path(cfg["experiments_root"]) / "orphans"
    with open(tmp_path / "out.txt", "w") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "restorekit", "train", "-c", str(path), "--nproc", "2"],
            env=env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    others: dict[int, str] = {}
    try:
        assert wait_for(lambda: (run / "stats.jsonl").is_file() and (run / "stats.jsonl").stat().st_size, 120)
        others = {p: c for p, c in processes_mentioning(str(path)).items() if p != launcher.pid}
        workers = [p for p, c in others.items() if "torch.distributed.run" not in c]
        assert len(workers) == 2, others  # and torchrun's agent besides them
        os.kill(launcher.pid, signal.SIGKILL)  # the launcher only: not its process group
        launcher.wait(timeout=10)
        assert wait_for(lambda: not any(alive(p) for p in others), 15), {
            p: c for p, c in others.items() if alive(p)
        }
        size = (run / "stats.jsonl").stat().st_size
        time.sleep(1.5)
        assert (run / "stats.jsonl").stat().st_size == size  # nobody writes into the folder any more
    finally:
        for pid in [launcher.pid, *others]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        launcher.wait(timeout=10)


@pytest.mark.slow
def test_a_stuck_rank_ends_the_job_with_a_line_naming_it(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, name="stuck", **{"train.total_iter": 4, "train.dist_timeout": 5})
    path = write_config(tmp_path / "stuck.yml", cfg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    start = time.monotonic()
    r = subprocess.run(
        [*cmd, "-m", "restorekit", "train", "-c", str(path)],
        env=env(RESTOREKIT_TEST_HANG_RANK="1"), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    took = time.monotonic() - start
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert lines == [
        "error: rank 0: rank 1 did not take part in all_gather_object within train.dist_timeout=5 s "
        "(stuck or died; its own output says why)"
    ], r.stderr[-3000:]
    assert took < 120, took
    assert not (Path(cfg["experiments_root"]) / "stuck" / "checkpoints").exists()

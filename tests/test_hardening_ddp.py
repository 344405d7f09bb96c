"""Hardening of multi-process runs (issue 14); full disks are ``test_hardening_diskfull.py``'s.

* a killed launcher takes its torchrun workers with it (no orphans training into the run folder);
* a rank stuck at start-up, or stopped inside DDP's gradient all-reduce, ends the job after
  ``train.dist_timeout`` with one line naming it;
* ``validate`` bounds its process group by ``train.dist_timeout`` as ``train`` does.
"""

from __future__ import annotations

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


def worker_ranks(config: Path) -> dict[int, int]:
    """rank → pid of the live torchrun workers training ``config``."""
    found = {}
    for pid in processes_mentioning(str(config)):
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        environ = dict(x.split("=", 1) for x in raw.split("\0") if "=" in x)
        if "TORCHELASTIC_RUN_ID" in environ and "RANK" in environ:
            found[int(environ["RANK"])] = pid
    return found


def sigterm_pending(pid: int) -> bool:
    """torchrun's agent has sent SIGTERM to this (stopped) process: it acts on it once continued."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    masks = [
        int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd", "ShdPnd"))
    ]
    return any(m & (1 << (signal.SIGTERM - 1)) for m in masks)


@pytest.mark.slow
def test_a_stopped_rank_in_the_gradient_all_reduce_is_one_line_naming_it(tmp_path: Path) -> None:
    """SIGSTOP rank 1 mid-training: rank 0 waits in DDP's gradient all-reduce (inside backward(),
    not a collective restorekit calls), which used to end in gloo's "Timed out waiting 5000ms for
    recv" under a traceback on every rank."""
    cfg = tiny_config(
        tmp_path,
        name="stopped",
        **{"train.total_iter": 10**6, "train.dist_timeout": 5, "logger.print_freq": 10**6,
           "logger.save_checkpoint_freq": 10**6, "val.freq": 10**6},
    )  # fmt: skip
    path = write_config(tmp_path / "stopped.yml", cfg)
    log = Path(cfg["experiments_root"]) / "stopped" / "log.txt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    job = subprocess.Popen(
        [*cmd, "-m", "restorekit", "train", "-c", str(path)],
        env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    ranks: dict[int, int] = {}
    try:
        assert wait_for(lambda: log.is_file() and "training stopped" in log.read_text(), 120)
        ranks = worker_ranks(path)
        assert sorted(ranks) == [0, 1], ranks
        time.sleep(1)  # well into the loop: only DDP's own collectives run (no logging, saving, val)
        os.kill(ranks[1], signal.SIGSTOP)
        assert wait_for(lambda: not alive(ranks[0]), 60)
        assert wait_for(lambda: sigterm_pending(ranks[1]), 30)  # the agent is stopping the job
        os.kill(ranks[1], signal.SIGCONT)
        _, err = job.communicate(timeout=60)
    finally:
        for pid in ranks.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if job.poll() is None:
            job.kill()
            job.communicate()
    assert job.returncode != 0
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith(
        "error: rank 0: rank 1 did not take part in the gradient all-reduce of iteration "
    )
    assert lines[0].endswith("within train.dist_timeout=5 s (stuck or died; its own output says why)")
    assert "[rank0]: Traceback" not in err and "Timed out waiting" not in err


def test_validate_bounds_its_process_group_by_train_dist_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from restorekit.cli import main
    from restorekit.config import validate_config
    from restorekit.engine import distributed, run
    from restorekit.errors import RestorekitError

    seen: list[float] = []

    def fake_init(device_kind: str, timeout: float = -1.0) -> distributed.DistInfo:
        seen.append(timeout)
        raise RestorekitError("stop here")  # the process group is all this test is about

    monkeypatch.setattr(distributed, "init_distributed", fake_init)
    monkeypatch.setattr(run, "init_distributed", fake_init)
    cfg = tiny_config(tmp_path, **{"train.dist_timeout": 42})
    path = write_config(tmp_path / "v.yml", cfg)
    assert main(["validate", "-c", str(path), "--weights", str(tmp_path / "none.safetensors")]) == 2
    assert capsys.readouterr().err == "error: stop here\n"
    without_train = {k: v for k, v in cfg.items() if k != "train"}
    with pytest.raises(RestorekitError):
        run.validate_run(validate_config(without_train), str(tmp_path / "none.safetensors"))
    assert seen == [42.0, 600.0]  # the config's value; the option's default without a train section

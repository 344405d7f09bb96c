"""Hardening of multi-process runs and of full disks (issue 14).

* a killed launcher takes its torchrun workers with it (no orphans training into the run folder);
* a stuck rank ends the job after ``train.dist_timeout`` with one line naming it;
* a full or read-only disk while saving or logging is one ``error:`` line, and the previous
  checkpoint stays intact.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# ------------------------------------------------------------------ full or read-only disks
def full(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def read_only(*_: object, **__: object) -> None:
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


def checkpoint_dirs(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def train_cli(path: Path, *extra: str) -> int:
    from restorekit.cli import main

    return main(["train", "-c", str(path), *extra])


@pytest.mark.parametrize(
    ("writer", "fail", "what"),
    [
        ("save_file", full, "no space left on device (needed ~1 MB)"),
        ("write_manifest", read_only, "read-only file system"),
    ],
)
def test_a_full_disk_while_saving_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], one_thread: None,
    writer: str, fail: Callable[..., None], what: str,
) -> None:  # fmt: skip
    from restorekit.ckptdir import verify_checkpoint
    from restorekit.engine import checkpoint

    cfg = tiny_config(tmp_path, name="full")
    path = write_config(tmp_path / "full.yml", cfg)
    run = Path(cfg["experiments_root"]) / "full"
    real = getattr(checkpoint, writer)

    def second_save_fails(*args: object, **kwargs: object) -> object:
        if ".tmp_iter_20_" in str(args[-1] if writer == "write_manifest" else args[1]):
            fail()
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, writer, second_save_fails)
    assert train_cli(path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {run / 'checkpoints' / 'iter_20'}: {what}"
    assert checkpoint_dirs(run) == ["iter_10"]  # the temp folder is gone, the last save is whole
    verify_checkpoint(run / "checkpoints" / "iter_10")


def tiny_networks() -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    return {"net_g": torch.nn.Linear(64, 64)}


def test_torch_save_running_out_of_space_mid_write_names_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import torch

    from restorekit.engine import checkpoint
    from restorekit.errors import RestorekitError

    def torn(obj: object, f: object) -> None:
        Path(f).write_bytes(b"x" * 100)  # type: ignore[arg-type]
        raise RuntimeError("[enforce fail at inline_container.cc:783] . unexpected pos 70976 vs 70868")

    monkeypatch.setattr(torch, "save", torn)
    state = {"iter": 1, "w": torch.zeros(1000)}
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage._replace(free=10))
    with pytest.raises(RestorekitError) as exc:
        checkpoint.save_checkpoint(tmp_path, 1, tiny_networks(), state, "name: x\n")
    assert str(exc.value) == f"{tmp_path / 'checkpoints' / 'iter_1'}: no space left on device (needed ~1 MB)"
    assert checkpoint_dirs(tmp_path) == []
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage._replace(free=10**12))
    with pytest.raises(RestorekitError) as exc:
        checkpoint.save_checkpoint(tmp_path, 1, tiny_networks(), state, "name: x\n")
    assert str(exc.value) == (
        f"{tmp_path / 'checkpoints' / 'iter_1' / 'training_state.pt'}: cannot be written "
        "([enforce fail at inline_container.cc:783] . unexpected pos 70976 vs 70868)"
    )
    assert checkpoint_dirs(tmp_path) == []


def test_stats_and_tensorboard_write_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    from restorekit.engine import logging
    from restorekit.errors import RestorekitError

    reporter = logging.Reporter(tmp_path, stream=io.StringIO())
    reporter.write_scalars(1, {"l": 1.0}, prefix="train")
    real_open = builtins.open

    def no_room(file: object, *args: object, **kwargs: object) -> object:
        if str(file).endswith(logging.STATS_FILE):
            full()
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", no_room)
    with pytest.raises(RestorekitError) as exc:
        reporter.write_scalars(2, {"l": 1.0}, prefix="train")
    assert str(exc.value) == f"{tmp_path / 'stats.jsonl'}: no space left on device (needed ~1 MB)"
    monkeypatch.setattr(builtins, "open", real_open)

    class ReadOnlyBoard:
        def add_scalar(self, *args: object) -> None:
            read_only()

        def close(self) -> None:
            read_only()

    reporter.tb = ReadOnlyBoard()
    with pytest.raises(RestorekitError) as exc:
        reporter.write_scalars(3, {"l": 1.0}, prefix="train")
    assert str(exc.value) == f"{tmp_path / 'tb'}: read-only file system"
    reporter.close()  # a failing flush at close never hides the error that stopped the run
    rows = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [1, 3]  # the failed row left no torn line


def test_low_space_prunes_old_checkpoints_before_saving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from restorekit.engine import checkpoint

    config = "logger:\n  keep_last: 2\nval:\n  save_best: true\n"
    best = {"best": {"tinyval": {"iter": 1, "psnr": 30.0}}}
    for it in range(1, 6):
        checkpoint.save_checkpoint(
            tmp_path, it, tiny_networks(), {"iter": it, **best}, "logger: {keep_last: 9}\n"
        )
    seen: list[list[str]] = []
    real = checkpoint.save_file

    def record(state: object, file: str) -> None:
        seen.append([n for n in checkpoint_dirs(tmp_path) if not n.startswith(".")])
        real(state, file)  # type: ignore[arg-type]

    monkeypatch.setattr(checkpoint, "save_file", record)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage._replace(free=10**12))
    checkpoint.save_checkpoint(tmp_path, 6, tiny_networks(), {"iter": 6, **best}, config)
    assert seen[-1] == [f"iter_{i}" for i in range(1, 6)]  # room enough: nothing pruned before saving
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage._replace(free=100))
    checkpoint.save_checkpoint(tmp_path, 7, tiny_networks(), {"iter": 7, **best}, config)
    # newest keep_last (5, 6) and the best (1) stayed; 2, 3, 4 went before the new files were written
    assert seen[-1] == ["iter_1", "iter_5", "iter_6"]
    assert checkpoint_dirs(tmp_path) == ["iter_1", "iter_5", "iter_6", "iter_7"]


def test_a_disk_full_of_old_checkpoints_recovers_with_a_smaller_keep_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    import shutil

    from restorekit.engine import checkpoint

    changes = {"train.total_iter": 25, "logger.save_checkpoint_freq": 5, "logger.keep_last": 9}
    cfg = tiny_config(tmp_path, name="disk", **changes)
    path = write_config(tmp_path / "disk.yml", cfg)
    run = Path(cfg["experiments_root"]) / "disk"
    real = checkpoint.save_file

    def disk_of_four(state: object, file: str) -> None:  # room for four checkpoints, no more
        if len([n for n in checkpoint_dirs(run) if not n.startswith(".")]) >= 4:
            full()
        real(state, file)  # type: ignore[arg-type]

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoint, "save_file", disk_of_four)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    assert train_cli(path) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"{run / 'checkpoints' / 'iter_25'}: no space left on device (needed ~1 MB)")
    )
    assert checkpoint_dirs(run) == ["iter_10", "iter_15", "iter_20", "iter_5"]
    assert train_cli(path, "--resume", "auto", "logger.keep_last=2") == 0, capsys.readouterr().err
    names = checkpoint_dirs(run)
    assert "iter_25" in names and len(names) <= 3 and (run / "model.safetensors").is_file()

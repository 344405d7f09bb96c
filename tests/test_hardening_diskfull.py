"""A full or read-only disk at every write site is one line stating what the write needed (issue 14).

``PATH: no space left on device (needed ~N MB)``: the export (``restorekit export`` and the
trainer's final ``model.safetensors``), a checkpoint whose ``save_file`` fails the way
safetensors really reports a full disk (its own ``SafetensorError``, not an ``OSError``),
TensorBoard (whose writer thread must not print a traceback of its own), ``log.txt`` and the
validation results.
Then the checkpoint and ``stats.jsonl`` sites end to end, the previous checkpoint staying intact,
and pruning before a save when space is short.
"""

from __future__ import annotations

import errno
import io
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import SafetensorError

from conftest import tiny_config, write_config
from restorekit.archs.export import export_network
from restorekit.cli import main
from restorekit.engine import logging as rk_logging
from restorekit.errors import RestorekitError, WeightsError
from restorekit.registry import ARCHS

#: 5.23 MiB of float32 tensors (72 of them): "needed ~6 MB"
BIG = {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 16, "upscale": 2}


def raiser(code: int) -> Any:
    def fail(*_: object, **__: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


def safetensors_full(*_: object, **__: object) -> None:
    """What safetensors raises on a real full disk (seen on a 256 KB tmpfs)."""
    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def big_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return ARCHS.build(BIG)


def test_os_error_of_unwraps_library_errors() -> None:
    err = rk_logging.os_error_of(SafetensorError("I/O error: Read-only file system (os error 30)"))
    assert err is not None and err.errno == errno.EROFS
    assert rk_logging.os_error_of(RuntimeError("unexpected pos 640 vs 534")) is None
    with pytest.raises(OSError) as exc:
        rk_logging.raising_os_errors(safetensors_full)
    assert exc.value.errno == errno.ENOSPC


@pytest.mark.parametrize(
    ("fail", "what"),
    [
        (raiser(errno.ENOSPC), "no space left on device (needed ~6 MB)"),
        (safetensors_full, "no space left on device (needed ~6 MB)"),
        (raiser(errno.EDQUOT), "disk quota exceeded (needed ~6 MB)"),
        (raiser(errno.EROFS), "read-only file system"),
    ],
)
def test_export_on_a_full_disk_states_the_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: Any, what: str
) -> None:
    from restorekit.archs import export

    monkeypatch.setattr(export, "save_file", fail)
    out = tmp_path / "model.safetensors"
    with pytest.raises(WeightsError) as exc:
        export_network(big_net(), out)
    assert str(exc.value) == f"{out}: {what}"
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_restorekit_export_on_a_full_disk_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from restorekit.archs import export

    src = tmp_path / "src.safetensors"
    export_network(big_net(), src)
    monkeypatch.setattr(export, "save_file", safetensors_full)
    out = tmp_path / "out" / "copy.safetensors"
    assert main(["export", str(src), "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {out}: no space left on device (needed ~6 MB)\n"
    assert list((tmp_path / "out").iterdir()) == []


def test_the_final_export_of_a_training_run_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    from restorekit.archs import export

    cfg = tiny_config(tmp_path, **{"train.total_iter": 4, "logger.save_checkpoint_freq": 4, "val.freq": None})
    path = write_config(tmp_path / "tiny.yml", cfg)
    monkeypatch.setattr(export, "save_file", raiser(errno.ENOSPC))
    assert main(["train", "-c", str(path)]) == 2
    run = Path(cfg["experiments_root"]) / "tiny"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {run / 'model.safetensors'}: no space left on device (needed ~1 MB)"]
    assert (run / "checkpoints" / "iter_4" / "manifest.json").is_file()  # the last save is whole
    assert not list(run.glob("*.tmp"))


def test_a_checkpoint_failing_as_safetensors_really_fails_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from restorekit.engine import checkpoint

    monkeypatch.setattr(checkpoint, "save_file", safetensors_full)
    with pytest.raises(RestorekitError) as exc:
        checkpoint.save_checkpoint(tmp_path, 3, {"net_g": big_net()}, {"iter": 3}, "name: x\n")
    assert str(exc.value) == f"{tmp_path / 'checkpoints' / 'iter_3'}: no space left on device (needed ~6 MB)"
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_tensorboard_on_a_full_disk_is_one_line_without_a_thread_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    printed: list[Any] = []  # what Python's default hook would print as "Exception in thread"
    monkeypatch.setattr(threading, "excepthook", printed.append)  # restored after the test
    reporter = rk_logging.Reporter(tmp_path, tensorboard=True, stream=io.StringIO())
    events = reporter.tb._get_file_writer().event_writer._async_writer
    monkeypatch.setattr(events._writer._writer, "write", raiser(errno.ENOSPC))  # the event file
    reporter.write_scalars(1, {"l": 1.0}, prefix="train")  # queued; the writer thread fails on it
    events._worker.join(timeout=30)
    assert not events._worker.is_alive()
    with pytest.raises(RestorekitError) as exc:  # the next add_scalar re-raises the thread's error
        reporter.write_scalars(2, {"l": 1.0}, prefix="train")
    assert str(exc.value) == f"{tmp_path / 'tb'}: no space left on device (needed ~1 MB)"
    reporter.close()
    assert printed == [] and "Traceback" not in capsys.readouterr().err  # the thread kept quiet
    other = threading.ExceptHookArgs([ValueError, ValueError("bug"), None, events._worker])
    threading.excepthook(other)
    assert printed == [other]  # any other error of that thread is still printed


def test_tensorboard_sample_images_and_log_lines_state_the_size(tmp_path: Path) -> None:
    class FullBoard:
        def add_images(self, *_: object) -> None:
            raiser(errno.ENOSPC)()

        def close(self) -> None:
            pass

    reporter = rk_logging.Reporter(tmp_path, stream=io.StringIO())
    reporter.tb = FullBoard()
    with pytest.raises(RestorekitError) as exc:
        reporter.add_images(1, "samples", torch.zeros(8, 3, 256, 256))  # 6 MiB of float32
    assert str(exc.value) == f"{tmp_path / 'tb'}: no space left on device (needed ~6 MB)"

    class FullFile(io.StringIO):
        def write(self, *_: object) -> int:
            raiser(errno.ENOSPC)()
            return 0

    reporter._log_file = FullFile()
    with pytest.raises(RestorekitError) as exc:
        reporter.log("iter 1")
    assert str(exc.value) == f"{tmp_path / 'log.txt'}: no space left on device (needed ~1 MB)"
    reporter.close()


def test_validation_results_on_a_full_disk_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    from restorekit.engine.validation import write_result
    from restorekit.tasks.evaluation import SetResult

    real_open = builtins.open

    def full_csv(file: object, *args: object, **kwargs: object) -> object:
        if str(file).endswith(".csv"):
            raiser(errno.ENOSPC)()
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", full_csv)
    result = SetResult({"psnr": 30.0}, [("a.png", {"psnr": 30.0})])
    with pytest.raises(RestorekitError) as exc:
        write_result(tmp_path / "val" / "set", "iter_5", result)  # the run writes it before its save
    assert str(exc.value) == f"{tmp_path / 'val' / 'set'}: no space left on device (needed ~1 MB)"


def test_write_error_names_other_failures_without_a_size(tmp_path: Path) -> None:
    err = rk_logging.write_error(OSError(errno.EACCES, "Permission denied"), tmp_path, 10**9)
    assert str(err) == f"{tmp_path}: cannot be written (Permission denied)"
    err = rk_logging.write_error(OSError(errno.ENOSPC, "x"), tmp_path, 3 * 2**20 + 1, WeightsError)
    assert isinstance(err, WeightsError) and str(err) == f"{tmp_path}: no space left on device (needed ~4 MB)"


# ------------------------------------------------------------------ checkpoints and stats end to end
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


@pytest.mark.parametrize(
    "code, words", [(errno.EROFS, "read-only file system"), (errno.ENOSPC, "no space left")]
)
def test_an_unwritable_experiments_root_at_start_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    cfg = tiny_config(tmp_path)
    path = write_config(tmp_path / "c.yml", cfg)
    run_dir = Path(cfg["experiments_root"]) / cfg["name"]
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if self == run_dir:
            raise OSError(code, os.strerror(code), str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert main(["train", "-c", str(path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run_dir}: {words}"), err
    assert "Traceback" not in err[0]


def test_a_resume_short_of_space_prunes_to_the_new_keep_last_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--resume auto logger.keep_last=1`` on a full disk: room is made before anything is
    written (log, validation CSV), keeping the checkpoint resumed from and the best one."""
    from restorekit.engine import checkpoint

    best = {"best": {"tinyval/psnr": {"iter": 2, "value": 30.0}}}
    for it in range(1, 6):
        checkpoint.save_checkpoint(
            tmp_path, it, tiny_networks(), {"iter": it, **best}, "logger: {keep_last: 9}\n"
        )
    # the newest is damaged, so the resume source is iter_4, not the newest
    (tmp_path / "checkpoints" / "iter_5" / "training_state.pt").write_bytes(b"")
    config = "logger:\n  keep_last: 1\nval:\n  save_best: true\n"
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage._replace(free=10**12))
    checkpoint.prune_before_resume(tmp_path, tmp_path / "checkpoints" / "iter_4", config)
    assert len(checkpoint_dirs(tmp_path)) == 5  # room to spare: nothing goes before the run starts
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage._replace(free=100))
    checkpoint.prune_before_resume(tmp_path, tmp_path / "checkpoints" / "iter_4", config)
    assert checkpoint_dirs(tmp_path) == ["iter_2", "iter_4", "iter_5"]  # best, resume source, newest

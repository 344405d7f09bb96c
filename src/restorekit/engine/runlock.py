"""One process at a time per run folder: an advisory ``flock`` on ``<run>/.lock``.

Two trainings of one folder (a second ``--resume auto`` while the first still runs, or two fresh
runs started together) used to run side by side and overwrite each other's checkpoints and logs.
Rank 0 takes an exclusive, non-blocking ``flock`` right after creating the folder and holds it
for the whole run; the kernel drops it when the process dies, however it dies, so a crashed run
never leaves a stale lock to clean up (a pid file alone would). The pid written into the file is
only there to name the holder in the refusal. The file itself is never deleted: unlinking a lock
file lets a late opener lock an orphaned inode while a newcomer locks a fresh one.

``flock`` is advisory and local: processes on other machines sharing the folder over NFS are
covered only where the NFS client maps it to byte-range locks (Linux does).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from restorekit.errors import RestorekitError

try:
    import fcntl
except ImportError:  # Windows: no flock; the run goes unlocked
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
#: descriptors of the locks this process holds. A forked child (a DataLoader worker) shares the
#: open file and with it the lock, which would then outlive a killed trainer until the worker
#: noticed; children close their copies (closing a copy leaves the parent's lock in place).
_HELD: set[int] = set()


def _close_in_child() -> None:
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` names a running process (of any user)."""
    if pid <= 0:  # 0 and negatives address process groups in kill(2)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    except OSError:
        return False
    return True


class RunLockedError(RestorekitError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """The exclusive lock of one run folder, held from ``acquire`` until ``release`` or exit."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise ``RunLockedError`` naming the holder's pid; never waits."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f"process {holder}" if holder else "another process"
                raise RunLockedError(
                    f"{self.path.parent}: run folder is in use by {who} (lock {self.path}); "
                    "wait for it to finish or stop it, or start a new run with another name (name=NEW)"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        _HELD.add(fd)
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases it); the file stays (see the module doc)."""
        if self._fd is not None:
            _HELD.discard(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int, wait_s: float = 1.0) -> int | None:
    """The holder's pid; it writes it just after locking, so an empty file is re-read briefly."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            return None
        if text.isdigit():
            return int(text)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def folder_in_use(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds anything but its lock file (left alone by a run that never started)."""
    return run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir())

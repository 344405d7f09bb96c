"""Process-group set-up for ``torchrun`` (DDP): NCCL on GPUs, gloo on CPU.

A run is distributed exactly when torchrun's environment (``WORLD_SIZE`` > 1) says so; the same
config runs unchanged on one process. Only rank 0 logs and writes files.

Two failure modes of a multi-process job are made loud here instead of silent:

* **The launcher dies** (``restorekit train --nproc N`` or torchrun's agent is SIGKILLed): a
  worker would keep training as an orphan, writing into the run folder that a new run may
  already use. Each worker asks the kernel for SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``) and, because that signal follows the parent *thread* and can be missed
  if the parent died before the call, also polls ``os.getppid()`` once a second (``watch_parent``).
* **A rank hangs or dies**: the others would wait forever in a collective. ``train.dist_timeout``
  bounds every collective, and a timed-out collective becomes one ``RestorekitError`` naming the
  ranks that never arrived (``dist_error``), found through the job's key-value store: for the
  collectives called here, and, through ``collectives()``, for those DDP runs inside a training
  step (the gradient all-reduce) and the NaN guard's count.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from restorekit.errors import RestorekitError

T = TypeVar("T")
HANG_RANK_ENV = "RESTOREKIT_TEST_HANG_RANK"  # tests: this rank sleeps after joining the group
PR_SET_PDEATHSIG = 1
_watching = False


def parent_death_setter(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A function that makes the calling process receive ``sig`` when its parent dies (Linux).

    Resolved here, before any fork, so that calling it in a ``preexec_fn`` does no library
    loading in the child. None where ``prctl`` does not exist (macOS, Windows): nothing to do.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)  # a failure leaves the watchdog, nothing worse

    return arm


def watch_parent(poll_s: float = 1.0) -> None:
    """Stop this process (SIGTERM to itself) once its parent, torchrun's agent, is gone.

    The parent-death signal covers the common case at once; the watchdog thread covers a parent
    that died before we asked and a parent thread that was not the main one (the signal then
    follows that thread, not the process). Idempotent.
    """
    global _watching
    if _watching:
        return
    _watching = True
    start_parent = os.getppid()
    setter = parent_death_setter()
    if setter is not None:
        setter()
    if os.getppid() != start_parent:  # died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)

    def poll() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != start_parent:
                print(f"error: rank process {os.getpid()}: the launcher died; stopping", file=sys.stderr)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=poll, name="restorekit-parent-watch", daemon=True).start()


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    timeout: float = 600.0  # seconds a collective may wait (train.dist_timeout)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_kind: str, timeout: float = 600.0) -> DistInfo:
    """Join torchrun's process group if there is one; a plain run gets rank 0 of 1.

    ``timeout`` (``train.dist_timeout``, seconds) bounds every collective: a stuck rank ends the
    job with an error after that long instead of a hang.
    """
    if "TORCHELASTIC_RUN_ID" in os.environ:  # started by torchrun: never outlive it
        watch_parent()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(timeout=timeout)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))
    if os.environ.get(HANG_RANK_ENV) == str(rank):
        time.sleep(3600)  # a stuck rank, for tests; the others must not wait for it forever
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, timeout=timeout)


_FAILED_KEY = "restorekit/collective_failed/"


def missing_ranks(info: DistInfo, grace_s: float = 5.0) -> list[int] | None:
    """Ranks that did not also see the failed collective, via the job's store; None if unknown.

    Every rank whose collective failed marks itself in the store, then waits ``grace_s`` for the
    others: a rank that never marks itself is the stuck (or dead) one.
    """
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set(f"{_FAILED_KEY}{info.rank}", "1")
        others = [r for r in range(info.world_size) if r != info.rank]
        deadline = time.monotonic() + grace_s
        while True:
            missing = [r for r in others if not store.check([f"{_FAILED_KEY}{r}"])]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.2)
    except Exception:  # the store went with the agent, or a private API changed: say less
        return None


def dist_error(exc: BaseException, info: DistInfo, what: str) -> RestorekitError | None:
    """One line for a collective that timed out or lost a peer; None for any other error."""
    text = str(exc)
    lowered = text.lower()
    if not any(k in lowered for k in ("timed out", "timeout", "connection closed", "connection reset")):
        return None
    missing = missing_ranks(info)
    who = (
        f"rank {', '.join(map(str, missing))}"
        if missing
        else "another rank"  # every rank failed, or the store is gone
    )
    return RestorekitError(
        f"rank {info.rank}: {who} did not take part in {what} within train.dist_timeout="
        f"{info.timeout:g} s (stuck or died; its own output says why)"
    )


@contextmanager
def collectives(info: DistInfo, what: str) -> Iterator[None]:
    """Turn a collective inside the block that timed out or lost a peer into ``dist_error``'s line.

    For collectives restorekit does not call itself: DDP all-reduces the gradients inside
    ``backward()`` (and broadcasts buffers in ``forward``), so a stopped rank surfaced as gloo's
    ``Timed out waiting 5000ms for recv operation to complete`` under a 40-line traceback on
    every rank. ``what`` names the step in the message. A no-op in a one-process run.
    """
    if not info.distributed:
        yield
        return
    try:
        yield
    except RuntimeError as exc:  # DistBackendError is a RuntimeError
        err = dist_error(exc, info, what)
        if err is None:
            raise
        raise err from None


def _collective(info: DistInfo, what: str, fn: Callable[[], T]) -> T:
    with collectives(info, what):
        return fn()


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    _collective(info, "all_gather_object", lambda: dist.all_gather_object(out, obj))
    return out


def mean_over_ranks(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if not info.distributed:
        return t
    t = t.clone()
    _collective(info, "all_reduce", lambda: dist.all_reduce(t, op=dist.ReduceOp.SUM))
    return t / info.world_size


def barrier(info: DistInfo) -> None:
    if info.distributed:
        _collective(info, "barrier", dist.barrier)


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()

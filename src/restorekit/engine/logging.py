"""Scalar reporting: accumulate on the device, flush at log time.

``report()`` adds detached tensors without reading them back, so the training loop never waits
for the device; ``flush()`` does one host transfer for all scalars and writes the console line,
``stats.jsonl``, TensorBoard and W&B (each optional). Only rank 0 writes.

``stats.jsonl`` is strict JSON lines: a NaN or infinite value is written as ``null`` (Python's
``NaN`` token is not JSON, and strict readers such as ``jq`` or JavaScript reject the whole
file), and a line torn by a crash mid-write is cut off when a resumed run opens the file, so
the next row does not glue onto it.

A write that fails (full disk, read-only file system) is one ``RestorekitError`` naming the
file and the size the write needed (``errors.write_error``, re-exported here), not a traceback
from deep inside the training loop; checkpoints, validation results and exports use the same
wording. TensorBoard's writer thread is kept from printing its own traceback for it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor
from tqdm import tqdm

from restorekit.errors import (  # the shared wording of a failed write; re-exported here
    DISK_ERRORS,
    guarded_write,
    os_error_of,
    raising_os_errors,
    size_mb,
    write_error,
)

STATS_FILE = "stats.jsonl"
#: bytes a small write takes at most (a log line, a TensorBoard event, an event file's header):
#: stated as the minimum "~1 MB", which is what such a write needs to be retried with
SMALL_WRITE = 4096
__all__ = [
    "DISK_ERRORS",
    "SMALL_WRITE",
    "STATS_FILE",
    "Reporter",
    "guarded_write",
    "json_safe",
    "os_error_of",
    "quiet_writer_thread_disk_errors",
    "raising_os_errors",
    "repair_jsonl",
    "size_mb",
    "write_error",
]


def quiet_writer_thread_disk_errors() -> None:
    """Keep Python from printing a traceback when TensorBoard's writer thread hits a full disk.

    TensorBoard writes events from a background thread, which stores the ``OSError`` and then
    re-raises it, so ``threading`` prints a thread traceback; the same exception is raised again
    in the training thread at its next ``add_scalar``, where ``write_scalars`` turns it into the
    one line. Only disk errors of that writer thread are silenced; anything else still prints.
    """
    previous = threading.excepthook
    if getattr(previous, "_restorekit_quiet", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        exc = args.exc_value
        writer_thread = type(args.thread).__name__ == "_AsyncWriterThread"
        if writer_thread and isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
            return
        previous(args)

    hook._restorekit_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def json_safe(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every non-finite float as None (JSON has no NaN or Infinity)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}


def repair_jsonl(path: Path) -> str | None:
    """Cut a torn last line (no newline: the writer died mid-line) off ``path``; a note when it did."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return None
        # the last newline: read back from the end in blocks (the torn line is short)
        end, keep = size, 0
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            block = f.read(end - start)
            i = block.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            end = start
        f.truncate(keep)
    return f"note: {path}: removed a torn last line ({size - keep} bytes, written when a run died)"


class Reporter:
    def __init__(
        self,
        run_dir: Path | None,
        tensorboard: bool = False,
        wandb_project: str | None = None,
        run_name: str = "",
        config: dict[str, Any] | None = None,
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.enabled = enabled
        self.run_dir = run_dir
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}
        self.stream = stream or sys.stdout
        self.tb: Any = None
        self.wandb: Any = None
        self._log_file: TextIO | None = None
        if not enabled or run_dir is None:
            return
        self._log_file = guarded_write(
            run_dir / "log.txt",
            lambda: open(run_dir / "log.txt", "a", encoding="utf-8"),  # noqa: SIM115
            SMALL_WRITE,
        )
        note = guarded_write(run_dir / STATS_FILE, lambda: repair_jsonl(run_dir / STATS_FILE), SMALL_WRITE)
        if note:
            self.log(note)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = guarded_write(
                    run_dir / "tb", lambda: SummaryWriter(log_dir=str(run_dir / "tb")), SMALL_WRITE
                )
                quiet_writer_thread_disk_errors()
            except ImportError:
                self.log("TensorBoard is not installed (pip install tensorboard); logging without it")
        if wandb_project:
            try:
                import wandb

                self.wandb = wandb.init(project=wandb_project, name=run_name, config=config, dir=str(run_dir))
            except ImportError:
                self.log("wandb is not installed (pip install wandb); logging without it")

    def report(self, scalars: dict[str, Tensor | float]) -> None:
        """Accumulate scalars (device tensors stay on the device)."""
        for k, v in scalars.items():
            t = v.detach() if isinstance(v, Tensor) else torch.tensor(float(v))
            self._sums[k] = self._sums[k] + t if k in self._sums else t.clone()
            self._counts[k] = self._counts.get(k, 0) + 1

    def flush(self, it: int, extra: dict[str, float] | None = None) -> dict[str, float]:
        """Means since the last flush, read back in one go, written everywhere."""
        if not self._sums:
            return {}
        keys = list(self._sums)
        stacked = torch.stack([self._sums[k].float().cpu() / self._counts[k] for k in keys])
        means = dict(zip(keys, stacked.tolist()))
        self._sums.clear()
        self._counts.clear()
        means.update(extra or {})
        self.write_scalars(it, means, prefix="train")
        return means

    def write_scalars(
        self, it: int, values: dict[str, float], prefix: str, extra: dict[str, Any] | None = None
    ) -> None:
        """``values`` to every sink; ``extra`` (e.g. each FID's protocol) to ``stats.jsonl`` only."""
        if not self.enabled:
            return
        if self.run_dir is not None:
            row = json_safe({"iter": it, "time": time.time(), "kind": prefix, **values, **(extra or {})})
            line = json.dumps(row, allow_nan=False) + "\n"
            path = self.run_dir / STATS_FILE
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(line)
            except OSError as exc:
                raise write_error(exc, path, len(line)) from None
        if self.tb is not None:
            try:
                for k, v in values.items():
                    self.tb.add_scalar(f"{prefix}/{k}", v, it)
            except OSError as exc:
                raise write_error(exc, self._tb_dir, SMALL_WRITE * len(values)) from None
        if self.wandb is not None:
            self.wandb.log({f"{prefix}/{k}": v for k, v in values.items()}, step=it)

    def add_images(self, it: int, tag: str, images: Tensor) -> None:
        """Sample images (NCHW in [0,1]) to TensorBoard/W&B."""
        if not self.enabled:
            return
        if self.tb is not None:
            try:
                self.tb.add_images(tag, images.clamp(0, 1).cpu(), it)
            except OSError as exc:
                raise write_error(exc, self._tb_dir, images.nbytes) from None
        if self.wandb is not None:
            import wandb

            self.wandb.log(
                {tag: [wandb.Image(img.permute(1, 2, 0).cpu().numpy()) for img in images]}, step=it
            )

    def log(self, line: str) -> None:
        """A message to the console and log.txt."""
        if not self.enabled:
            return
        tqdm.write(line, file=self.stream)  # keeps a live progress bar intact
        if self._log_file is not None:
            text = time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n"
            try:
                self._log_file.write(text)
                self._log_file.flush()
            except OSError as exc:
                raise write_error(exc, self.log_path, len(text)) from None

    @property
    def log_path(self) -> Path:
        return Path(self.run_dir or ".") / "log.txt"

    @property
    def _tb_dir(self) -> Path:
        return Path(self.run_dir or ".") / "tb"

    def close(self) -> None:
        """Close every writer; never raises for a failed flush (the failing write already said so,
        and an error here would hide the one that stopped the run)."""
        tb, self.tb = self.tb, None
        log_file, self._log_file = self._log_file, None
        if tb is not None:
            with contextlib.suppress(OSError):
                tb.close()
        if self.wandb is not None:
            self.wandb.finish()
        if log_file is not None:
            with contextlib.suppress(OSError):
                log_file.close()

"""Batch prefetchers: hide host→device copies behind the previous step's compute.

``CPUPrefetcher`` is a plain iterator with BasicSR's ``next()``/``reset()`` interface so the
trainer's loop is the same on every device. ``CUDAPrefetcher`` issues the copy of batch N+1 on
a side stream while the model works on batch N. For the copy to be truly asynchronous the
source must be page-locked (``DataLoader(pin_memory=True)``); without it the copy silently
becomes synchronous, so the prefetcher warns. The consuming stream waits on the copy stream,
and every tensor is marked with ``record_stream`` so the caching allocator does not hand its
memory to another tensor while the consuming stream may still read it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from restorekit.errors import RestorekitError

log = logging.getLogger(__name__)


#: batch entries that stay on the host: read there every step (seeds), so moving them to the
#: device would cost a device-to-host sync per step to read them back
HOST_KEYS = frozenset({"noise_seed"})


def move_to(batch: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """Copy every tensor in a nested dict/list/tuple to ``device`` (``HOST_KEYS`` entries of a dict
    stay where they are); other values pass through."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: v if k in HOST_KEYS else move_to(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to(v, device, non_blocking) for v in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(move_to(v, device, non_blocking) for v in batch)
    return batch


def iter_tensors(batch: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside a nested dict/list/tuple, depth first."""
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, dict):
        for v in batch.values():
            yield from iter_tensors(v)
    elif isinstance(batch, list | tuple):
        for v in batch:
            yield from iter_tensors(v)


class CPUPrefetcher:
    """Iterate a loader with ``next()`` (None at the end) and ``reset()`` (new epoch)."""

    def __init__(self, loader: Iterable[Any]) -> None:
        self.loader = loader
        self._it: Iterator[Any] = iter(loader)

    def next(self) -> Any | None:
        try:
            return next(self._it)
        except StopIteration:
            return None

    def reset(self) -> None:
        self._it = iter(self.loader)

    def __iter__(self) -> Iterator[Any]:
        while (batch := self.next()) is not None:
            yield batch


class CUDAPrefetcher:
    """Prefetch the next batch onto a CUDA device on a side stream.

    Constructing it never touches CUDA, so configs and tests can build it anywhere; the first
    ``next()``/``reset()`` on a machine without CUDA raises a one-line error.
    """

    def __init__(self, loader: Iterable[Any], device: torch.device | str = "cuda") -> None:
        self.loader = loader
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise RestorekitError(f"CUDAPrefetcher needs a CUDA device, got {self.device}")
        if getattr(loader, "pin_memory", True) is False:
            log.warning("CUDAPrefetcher: the DataLoader has pin_memory=False, so copies are synchronous")
        self._stream: Any = None
        self._it: Iterator[Any] | None = None
        self._next: Any = None

    def _require_cuda(self) -> None:
        if not torch.cuda.is_available():
            raise RestorekitError(
                "CUDAPrefetcher was used but CUDA is not available; use the CPU prefetcher "
                "(prefetch_mode: cpu) or run on a GPU machine"
            )
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=self.device)

    def _preload(self) -> None:
        assert self._it is not None
        try:
            batch = next(self._it)
        except StopIteration:
            self._next = None
            return
        with torch.cuda.stream(self._stream):
            self._next = move_to(batch, self.device, non_blocking=True)

    def reset(self) -> None:
        self._require_cuda()
        self._it = iter(self.loader)
        self._preload()

    def next(self) -> Any | None:
        if self._it is None:
            self.reset()
        current = torch.cuda.current_stream(self.device)
        current.wait_stream(self._stream)
        batch = self._next
        if batch is not None:
            for t in iter_tensors(batch):
                t.record_stream(current)
            self._preload()
        return batch

    def __iter__(self) -> Iterator[Any]:
        while (batch := self.next()) is not None:
            yield batch

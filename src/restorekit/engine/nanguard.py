"""The NaN/Inf guard: notice a diverging run on the device, act on it at the trainer's sync points.

A non-finite loss used to train on to the end with rc 0, keep a NaN round as "best" and export a
model full of NaNs. Checking ``loss.isfinite()`` on the host every step would stall a GPU, so the
guard only *counts* non-finite scalars on the device (a few tiny kernels, no transfer); the
trainer reads the count where it synchronises anyway — at each log line, before validating and
before saving — all-reduced over ranks so every rank agrees. A positive count (or a non-finite
weight found before a save) makes the trainer roll back to the last good state and retry with
fresh random draws, up to ``train.nan_retries`` times; then it stops with one line. A checkpoint
or an export with non-finite weights is therefore never written.

The last good state is the newest checkpoint on disk, or, before the first one, an in-memory
:class:`Snapshot` of the starting state.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


class NanGuard:
    """A device-side count of non-finite scalars reported by the task since the last check."""

    def __init__(self, device: torch.device) -> None:
        self.count = torch.zeros((), dtype=torch.long, device=device)

    def watch(self, scalars: Mapping[str, Any]) -> None:
        values = [v.detach().reshape(-1).float() for v in scalars.values() if isinstance(v, Tensor)]
        if values:
            self.count += (~torch.isfinite(torch.cat(values))).sum()

    def pending(self, distributed: bool) -> int:
        """The count over all ranks since the last ``reset`` (one small transfer)."""
        count = self.count.clone()
        if distributed:
            dist.all_reduce(count, op=dist.ReduceOp.SUM)
        return int(count.item())

    def reset(self) -> None:
        self.count.zero_()


def non_finite_networks(networks: Mapping[str, nn.Module]) -> list[str]:
    """Names of the networks holding a NaN or Inf in a floating-point parameter or buffer."""
    bad = []
    for name, module in networks.items():
        tensors = [t for t in module.state_dict().values() if t.is_floating_point()]
        if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
            bad.append(name)
    return bad


@dataclass
class Snapshot:
    """Everything a checkpoint holds, kept in memory (the rollback target before the first save)."""

    networks: dict[str, dict[str, Tensor]]
    state: dict[str, Any]

    @classmethod
    def capture(cls, networks: Mapping[str, nn.Module], state: Mapping[str, Any]) -> Snapshot:
        """Copied to host memory: keeping it on the device would double a GPU run's footprint."""
        weights = {
            k: {n: t.detach().cpu().clone() for n, t in m.state_dict().items()} for k, m in networks.items()
        }
        return cls(weights, _to_cpu(copy.deepcopy(dict(state))))


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj

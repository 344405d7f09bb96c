"""The Task contract: what is learned, as opposed to how the loop runs (that is the Trainer).

A task owns its networks, losses, optimizers, schedulers and EMA copies, and knows how to do one
training step and one evaluation step. Everything a GAN needs (two networks, alternating updates)
fits the same contract, because ``train_step`` does its own backward passes and optimizer steps.

``train_step`` receives a *list* of micro-batches (length ``train.accum_iter``) so gradient
accumulation stays a detail of the step: gradients of all but the last micro-batch are
accumulated without a DDP all-reduce, then one optimizer step is taken.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from restorekit.config import Config

Batch = Mapping[str, Any]


class AmpHelper:
    """Autocast, fp16 loss scaling and gradient clipping for one optimizer step.

    bf16 needs no scaler; fp16 uses a GradScaler whose skipped steps (inf/NaN gradients) are
    counted on the device — reading that count is left to log time, never the hot loop.
    """

    def __init__(self, mode: str, device: torch.device, grad_clip: float | None) -> None:
        self.device = device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        self.grad_clip = grad_clip
        self.scaler = torch.amp.GradScaler(device.type, enabled=mode == "fp16")
        self.skipped_steps = torch.zeros((), device=device, dtype=torch.long)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, params: Sequence[Tensor]) -> None:
        """Unscale, clip, step (skipped by the scaler on inf/NaN) and clear the gradients."""
        if self.grad_clip is not None:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        if self.scaler.is_enabled():
            # GradScaler halves its scale exactly when it skips a step; comparing the (private)
            # device tensor before and after counts skips without a host sync.
            before = self.scaler._scale.clone()
            self.scaler.step(optimizer)
            self.scaler.update()
            self.skipped_steps += (self.scaler._scale < before).long()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict(), "skipped_steps": self.skipped_steps.cpu()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.skipped_steps.copy_(state["skipped_steps"])


class Task:
    """Base class: networks, optimizers, schedulers and the two steps."""

    #: name → unwrapped module, as saved in checkpoints (EMA copies included, e.g. ``net_g_ema``)
    networks: dict[str, nn.Module]
    #: name → the module used for training forward passes (DDP/compiled wrappers of ``networks``)
    trainable: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]

    def __init__(self, cfg: Config, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        self.networks = {}
        self.trainable = {}
        self.optimizers = {}
        self.schedulers = {}
        #: one-line messages for the user (e.g. an option the architecture cannot honour)
        self.notices: list[str] = []

    @classmethod
    def check_config(cls, cfg: Config) -> None:
        """Check every named part of ``cfg`` this task will build; raise ConfigError by key path."""

    def wrap_trainable(self, wrap: Callable[[str, nn.Module], nn.Module]) -> None:
        """Let the trainer wrap trainable networks (DDP, torch.compile) without owning them."""
        self.trainable = {name: wrap(name, module) for name, module in self.trainable.items()}

    def train_step(self, batches: Sequence[Batch], it: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def eval_step(self, batch: Batch) -> dict[str, Tensor]:
        """Outputs for metrics: at least ``output`` and ``gt`` (NCHW, [0,1])."""
        raise NotImplementedError

    def export_network(self) -> nn.Module:
        """The network a finished run exports (the EMA copy when there is one)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Non-network training state; network weights are saved separately from ``networks``."""
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])

    def train(self, mode: bool = True) -> None:
        for name, module in self.networks.items():
            module.train(mode and not name.endswith("_ema"))


def micro_batches(
    batches: Sequence[Batch], modules: Sequence[nn.Module]
) -> Iterator[tuple[int, Batch, contextlib.AbstractContextManager[Any]]]:
    """Yield (i, batch, ctx): ``ctx`` skips DDP's all-reduce for all but the last micro-batch."""
    last = len(batches) - 1
    for i, batch in enumerate(batches):
        stack = contextlib.ExitStack()
        if i < last:
            for m in modules:
                if hasattr(m, "no_sync"):
                    stack.enter_context(m.no_sync())
        yield i, batch, stack

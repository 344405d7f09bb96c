"""Autocast, fp16 loss scaling and gradient clipping for one role's optimizer step."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


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

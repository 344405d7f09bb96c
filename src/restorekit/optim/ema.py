"""Exponential moving average (EMA) of a network's weights.

An EMA copy of the generator usually validates better than the raw weights, which is why BasicSR
and its descendants keep one (saved as ``params_ema``). BasicSR averages only the *parameters*
and leaves the copy's buffers at their initial values, so a network with BatchNorm evaluates its
EMA copy with stale running statistics. Here buffers are handled too:

* floating-point buffers (BatchNorm ``running_mean`` / ``running_var``, any float state) are
  averaged with the same decay as the parameters — they are smooth functions of the weights;
* integer and bool buffers (``num_batches_tracked``, index tables) are copied, since an average
  of counters or indices is meaningless.

Updates use ``torch._foreach_lerp_`` / ``torch._foreach_copy_`` under ``no_grad``: a few fused
kernels per step, and no host synchronisation (the decay is a Python float, the step count a
Python int).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from restorekit.errors import ConfigError, WeightsError


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside DDP / DataParallel / ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


class EMA:
    """An averaged copy ``ema.module`` of ``model``: ``ema = d * ema + (1 - d) * model`` per update.

    ``decay`` ``d`` must satisfy ``0 <= d < 1`` (0 makes the copy follow the model exactly).
    ``warmup`` (``None`` = off) ramps the decay linearly over the first ``warmup`` updates,
    ``d_t = decay * min(1, t / warmup)`` for update ``t`` (1-based), so the average is not
    dominated by the random initial weights early in training. ``ema.module`` never requires
    grad and stays in eval mode. Build the EMA after the model is on its final device and dtype.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: int | None = None) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ConfigError(f"train.ema_decay: expected a number with 0 <= decay < 1, got {decay!r}")
        if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1):
            raise ConfigError(f"ema warmup: expected an integer >= 1 or null, got {warmup!r}")
        self.decay = float(decay)
        self.warmup = warmup
        self.step = 0
        self.module = copy.deepcopy(unwrap(model))
        self.module.requires_grad_(False)
        self.module.eval()

    def current_decay(self, step: int) -> float:
        """The decay used by update number ``step`` (1-based)."""
        if self.warmup is None:
            return self.decay
        return self.decay * min(1.0, step / self.warmup)

    def _pairs(self, model: nn.Module) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """Matching (ema, model) tensor lists: averaged ones and copied ones."""
        src = unwrap(model)
        ema_p, src_p = list(self.module.parameters()), list(src.parameters())
        ema_b, src_b = list(self.module.buffers()), list(src.buffers())
        if len(ema_p) != len(src_p) or len(ema_b) != len(src_b):
            raise ValueError(
                f"EMA holds {len(ema_p)} parameters and {len(ema_b)} buffers but the model has "
                f"{len(src_p)} and {len(src_b)}; update the EMA with the network it was built from"
            )
        avg_e, avg_s, cp_e, cp_s = [], [], [], []
        for e, s in zip(ema_p + ema_b, src_p + src_b):
            if e.is_floating_point() or e.is_complex():
                avg_e.append(e)
                avg_s.append(s.detach())
            else:
                cp_e.append(e)
                cp_s.append(s.detach())
        return avg_e, avg_s, cp_e, cp_s

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model`` (which may be wrapped in DDP/compile)."""
        self.step += 1
        weight = 1.0 - self.current_decay(self.step)
        avg_e, avg_s, cp_e, cp_s = self._pairs(model)
        if avg_e:
            torch._foreach_lerp_(avg_e, avg_s, weight)
        if cp_e:
            torch._foreach_copy_(cp_e, cp_s)

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Copy ``model`` into the average and restart the step count (e.g. after loading weights)."""
        avg_e, avg_s, cp_e, cp_s = self._pairs(model)
        for dst, src in ((avg_e, avg_s), (cp_e, cp_s)):
            if dst:
                torch._foreach_copy_(dst, src)
        self.step = 0

    def state_dict(self) -> dict[str, Any]:
        """``{"module": averaged state dict (tensors shared, not copied), "step": int}``."""
        return {"module": self.module.state_dict(), "step": self.step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or "module" not in state or "step" not in state:
            raise WeightsError("EMA state: expected a mapping with 'module' and 'step'")
        try:
            self.module.load_state_dict(state["module"], strict=True)
        except RuntimeError as exc:  # torch lists missing/unexpected/mis-shaped keys on lines
            details = "; ".join(line.strip() for line in str(exc).splitlines()[1:] if line.strip())
            raise WeightsError(f"EMA state does not fit the network: {details or exc}") from None
        self.step = int(state["step"])

    def __repr__(self) -> str:
        return f"EMA(decay={self.decay}, warmup={self.warmup}, step={self.step})"

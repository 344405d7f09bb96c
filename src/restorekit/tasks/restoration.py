"""Supervised restoration (super-resolution, denoising): one generator, pixel losses.

The BasicSR ``SRModel`` equivalent: ``net_g`` from ``network_g``, the sum of the configured
losses on (output, gt), one optimizer, one scheduler, an optional EMA copy used for validation
and export.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from restorekit.archs.detect import load_weights_file
from restorekit.config import Config
from restorekit.data.degradations import imresize
from restorekit.errors import ConfigError, WeightsError
from restorekit.optim import EMA, build_optimizer, build_scheduler, check_optimizer, check_scheduler
from restorekit.registry import ARCHS, LOSSES, TASKS
from restorekit.tasks.base import AmpHelper, Batch, Task, micro_batches


def check_common_parts(cfg: Config) -> None:
    """Checks shared by every task that trains ``network_g`` from ``data.train``."""
    ARCHS.check(cfg.network_g, "network_g", **arch_extras(cfg))
    if cfg.train is None:
        return
    check_optimizer(cfg.train.optim_g, "train.optim_g")
    if cfg.train.scheduler is not None:
        check_scheduler(cfg.train.scheduler, "train.scheduler")


def arch_extras(cfg: Config) -> dict[str, Any]:
    """Arguments taken from the top of the config when an architecture has them."""
    return {"upscale": cfg.scale, "scale": cfg.scale}


def load_pretrained(net: nn.Module, path: str, strict: bool) -> None:
    state = load_weights_file(path)
    result = net.load_state_dict(state, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        missing = ", ".join(result.missing_keys[:3])
        unexpected = ", ".join(result.unexpected_keys[:3])
        raise WeightsError(
            f"{path}: does not fit network_g (missing keys: {missing or '-'}; unexpected keys: "
            f"{unexpected or '-'}); set pretrained_strict: false to load what fits"
        )


def bicubic_lq_batch(gt: Tensor, scale: int) -> Tensor:
    """``BicubicDataset``'s LQ for a whole batch on its device (same maths, same 8-bit rounding)."""
    lq = imresize(gt, 1.0 / scale).clamp_(0, 1)
    return torch.round(lq * 255.0) / 255.0


@TASKS.register("restoration")
class RestorationTask(Task):
    """Train ``net_g`` so that net_g(lq) ≈ gt."""

    @classmethod
    def check_config(cls, cfg: Config) -> None:
        check_common_parts(cfg)
        if cfg.train is not None:
            for name, spec in cfg.train.losses.items():
                LOSSES.check(spec, f"train.losses.{name}")
        if cfg.task == "restoration":  # settings only a GAN task reads must not be silently ignored
            train = cfg.train
            unused = [
                ("network_d", cfg.network_d is not None),
                ("pretrained_d", cfg.pretrained_d is not None),
                ("degradation", cfg.degradation is not None),
                ("train.optim_d", train is not None and train.optim_d is not None),
                ("train.scheduler_d", train is not None and train.scheduler_d is not None),
            ]
            for key, present in unused:
                if present:
                    raise ConfigError(
                        f"{key}: only used by task 'adversarial' (this config's task is 'restoration')"
                    )

    def __init__(self, cfg: Config, device: torch.device) -> None:
        super().__init__(cfg, device)
        net_g = ARCHS.build(cfg.network_g, "network_g", **arch_extras(cfg)).to(device)
        if cfg.pretrained:
            load_pretrained(net_g, cfg.pretrained, cfg.pretrained_strict)
        self.networks["net_g"] = net_g
        self.trainable["net_g"] = net_g
        self.ema: EMA | None = None
        self.losses: dict[str, nn.Module] = {}
        self.channels_last = False
        train = cfg.train
        if train is None:  # validation / inference only
            return
        arch = cfg.network_g["type"]
        self.channels_last = train.channels_last and getattr(net_g, "supports_channels_last", True)
        if train.channels_last and not self.channels_last:
            self.notices.append(f"{arch} does not support channels_last; training in contiguous layout")
        if self.channels_last:
            net_g.to(memory_format=torch.channels_last)
        for name, spec in train.losses.items():
            self.losses[name] = LOSSES.build(spec, f"train.losses.{name}").to(device)
        params = [p for p in net_g.parameters() if p.requires_grad]
        self.optimizers["g"] = build_optimizer(params, train.optim_g, "train.optim_g")
        self.schedulers["g"] = build_scheduler(
            self.optimizers["g"], train.scheduler, "train.scheduler", warmup_iter=train.warmup_iter
        )
        if train.ema_decay > 0:
            self.ema = EMA(net_g, train.ema_decay)
            self.networks["net_g_ema"] = self.ema.module
        amp = train.amp
        if amp == "fp16" and not getattr(net_g, "supports_fp16", True):
            amp = "bf16"
            self.notices.append(f"{arch} is not fp16-safe (overflows to NaN); using bf16 autocast instead")
        self.amp = AmpHelper(amp, device, train.grad_clip)

    def _lq(self, batch: Batch) -> Tensor:
        """The LQ input; made here, batched on the device, when the dataset left it out
        (``data.degrade_on: device``): MATLAB bicubic, clipped and rounded to 8 bit like on host."""
        x = batch["lq"] if "lq" in batch else bicubic_lq_batch(batch["gt"], self.cfg.scale)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def train_step(self, batches: Sequence[Batch], it: int) -> dict[str, Tensor]:
        net = self.trainable["net_g"]
        params = [p for group in self.optimizers["g"].param_groups for p in group["params"]]
        totals: dict[str, Tensor] = {}
        n = len(batches)
        for _, batch, ctx in micro_batches(batches, [net]):
            with ctx:
                with self.amp.autocast():
                    out = net(self._lq(batch))
                out = out.float()
                gt = batch["gt"]
                loss = out.new_zeros(())
                for name, crit in self.losses.items():
                    value = crit(out, gt)
                    loss = loss + value
                    totals[f"l_{name}"] = totals.get(f"l_{name}", 0) + value.detach() / n
                self.amp.backward(loss / n)
        self.amp.step(self.optimizers["g"], params)
        self.schedulers["g"].step()
        if self.ema is not None:
            self.ema.update(self.networks["net_g"])
        totals["lr"] = torch.tensor(self.optimizers["g"].param_groups[0]["lr"])
        return totals

    def eval_network(self) -> nn.Module:
        if self.ema is not None and self.cfg.val.use_ema:
            return self.ema.module
        return self.networks["net_g"]

    @torch.no_grad()
    def eval_step(self, batch: Batch) -> dict[str, Tensor]:
        net = self.eval_network()
        was_training = net.training
        net.eval()
        out = net(batch["lq"]).float().clamp_(0, 1)
        net.train(was_training)
        return {"output": out, "gt": batch["gt"]}

    @torch.no_grad()
    def baseline_step(self, batch: Batch, kind: str = "bicubic") -> dict[str, Tensor]:
        """The output of a non-learned baseline on the same batch (MATLAB bicubic upscaling)."""
        if kind != "bicubic":
            raise ConfigError(f"--baseline: unknown baseline {kind!r}; known: bicubic")
        lq = batch["lq"]
        out = lq if self.cfg.scale == 1 else imresize(lq, self.cfg.scale)
        return {"output": out.clamp(0, 1), "gt": batch["gt"]}

    def export_network(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.networks["net_g"]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.cfg.train is not None:
            state["amp"] = self.amp.state_dict()
        if self.ema is not None:  # the averaged weights themselves are saved as net_g_ema
            state["ema_step"] = self.ema.step
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.cfg.train is not None and "amp" in state:
            self.amp.load_state_dict(state["amp"])
        if self.ema is not None:
            self.ema.step = int(state["ema_step"])

"""Supervised restoration (super-resolution, denoising): one generator, pixel losses.

The BasicSR ``SRModel`` equivalent: ``net_g`` from ``network_g``, the sum of the configured
losses on (output, gt), one optimizer, one scheduler, an optional EMA copy used for validation
and export. Validation is the paired loop over every ``data.val`` set (PSNR and SSIM unless a
set names its own metrics), optionally beside a non-learned bicubic baseline.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from restorekit.archs.export import check_buildable
from restorekit.config.sections import RestorationConfig
from restorekit.data.datasets.degraded import jpeg_lq_batch, noisy_lq_batch
from restorekit.data.degradations import imresize
from restorekit.errors import ConfigError
from restorekit.optim import check_optimizer, check_scheduler
from restorekit.registry import DATASETS, LOSSES, TASKS, signature_params
from restorekit.tasks.base import Batch, Pretrained, Role, Task, micro_batches
from restorekit.tasks.evaluation import (
    EvalContext,
    SetResult,
    ValSetup,
    build_val_sets,
    check_val_sets,
    evaluate_pairs,
)

BASELINES = ("bicubic", "input")  # input: the LQ itself (what bicubic is at scale 1)


def arch_extras(cfg: RestorationConfig) -> dict[str, Any]:
    """Arguments taken from the top of the config when an architecture has them."""
    return {"upscale": cfg.scale, "scale": cfg.scale}


def check_train_data(cfg: RestorationConfig) -> None:
    """The training set's spec, and ``degrade_on: device`` only with a dataset that can leave out the LQ."""
    if cfg.data.train is None:
        return
    DATASETS.check(cfg.data.train.dataset, "data.train.dataset", scale=cfg.scale)
    if cfg.data.degrade_on == "device":
        ctor = DATASETS.get(cfg.data.train.dataset["type"], "data.train.dataset.type")
        if "degrade_on" not in signature_params(ctor):
            raise ConfigError(
                f"data.degrade_on: 'device' needs a dataset that makes its LQ on the fly "
                f"(BicubicDataset, NoisyImageDataset, JPEGDataset), not {cfg.data.train.dataset['type']}"
            )


def bicubic_lq_batch(gt: Tensor, scale: int) -> Tensor:
    """``BicubicDataset``'s LQ for a whole batch on its device (same maths, same 8-bit rounding)."""
    lq = imresize(gt, 1.0 / scale).clamp_(0, 1)
    return torch.round(lq * 255.0) / 255.0


def generator_pretrained(cfg: RestorationConfig) -> Pretrained | None:
    if not cfg.pretrained:
        return None
    return Pretrained(cfg.pretrained, cfg.pretrained_strict, cfg.pretrained_param_key, where="pretrained")


@TASKS.register("restoration")
class RestorationTask(Task):
    """Train ``net_g`` so that net_g(lq) ≈ gt."""

    config_model = RestorationConfig
    cfg: RestorationConfig

    @classmethod
    def check_config(cls, cfg: RestorationConfig) -> None:  # type: ignore[override]
        check_buildable(cfg.network_g, "network_g", **arch_extras(cfg))
        check_train_data(cfg)
        check_val_sets(cfg, cls.dataset_extras(cfg), cls.default_metrics(), need_dataset=True)
        if cfg.val.baseline == "input" and cfg.scale != 1:
            raise ConfigError(
                f"val.baseline: 'input' needs scale 1, this config has scale {cfg.scale} (use bicubic)"
            )
        if cfg.train is None:
            return
        check_optimizer(cfg.train.optim_g, "train.optim_g")
        if cfg.train.scheduler is not None:
            check_scheduler(cfg.train.scheduler, "train.scheduler")
        for name, spec in cfg.train.losses.items():
            _, kwargs = LOSSES.check(spec, f"train.losses.{name}")
            weight = kwargs.get("loss_weight", 1.0)
            if isinstance(weight, int | float) and not (math.isfinite(weight) and weight >= 0):
                where = f"train.losses.{name}.loss_weight"
                raise ConfigError(f"{where}: expected a finite number >= 0, got {weight}")

    @classmethod
    def dataset_extras(cls, cfg: RestorationConfig) -> dict[str, Any]:  # type: ignore[override]
        return {"scale": cfg.scale}

    @classmethod
    def default_metrics(cls) -> dict[str, dict[str, Any]]:
        return {"psnr": {}, "ssim": {}}

    def __init__(self, cfg: RestorationConfig, device: torch.device, training: bool = True) -> None:
        super().__init__(cfg, device, training)
        train = cfg.train if self.training else None
        self.g: Role = self.add_network(
            "net_g",
            cfg.network_g,
            "network_g",
            extras=arch_extras(cfg),
            pretrained=generator_pretrained(cfg),
            optim=train.optim_g if train else None,
            optim_where="train.optim_g",
            scheduler=train.scheduler if train else None,
            scheduler_where="train.scheduler",
            warmup_iter=train.warmup_iter if train else 0,
            ema_decay=train.ema_decay if train else 0.0,
        )
        self.losses: dict[str, nn.Module] = {}
        if train is not None:
            for name, spec in train.losses.items():
                self.losses[name] = LOSSES.build(spec, f"train.losses.{name}").to(device)
        self._val_sets: list[ValSetup] | None = None

    @property
    def ema(self) -> Any:
        return self.g.ema

    def attach_train_data(self, dataset: Any) -> None:
        """A noisy-image set that leaves its LQ to the device says how to finish it (a JPEG set
        needs nothing: each sample carries its quality, gray or colour is the GT's channels)."""
        super().attach_train_data(dataset)
        if getattr(dataset, "degrade_on", "host") == "device" and hasattr(dataset, "quantize"):
            self._noise_opts = (bool(dataset.clip), bool(dataset.quantize))

    def _lq(self, batch: Batch) -> Tensor:
        """The LQ input; made here, batched on the device, when the dataset left it out
        (``data.degrade_on: device``): MATLAB bicubic, clipped and rounded to 8 bit like on host,
        Gaussian noise seeded per sample (``NoisyImageDataset``), or the host's JPEG codec at each
        sample's drawn quality (``JPEGDataset``)."""
        if "lq" in batch:
            x = batch["lq"]
        elif "noise_seed" in batch:
            clip, quantize = getattr(self, "_noise_opts", (True, False))
            x = noisy_lq_batch(batch["gt"], batch["sigma"], batch["noise_seed"], clip, quantize)
        elif "quality" in batch:
            x = jpeg_lq_batch(batch["gt"], batch["quality"])
        else:
            x = bicubic_lq_batch(batch["gt"], self.cfg.scale)
        return self.g.as_input(x)

    def train_step(self, batches: Sequence[Batch], it: int) -> dict[str, Tensor]:
        net, amp = self.trainable["net_g"], self.g.amp
        assert amp is not None and self.g.optimizer is not None
        totals: dict[str, Tensor] = {}
        n = len(batches)
        for _, batch, ctx in micro_batches(batches, [net]):
            with ctx:
                with amp.autocast():
                    out = net(self._lq(batch))
                out = out.float()
                gt = batch["gt"]
                loss = out.new_zeros(())
                for name, crit in self.losses.items():
                    value = crit(out, gt)
                    loss = loss + value
                    totals[f"l_{name}"] = totals.get(f"l_{name}", 0) + value.detach() / n
                amp.backward(loss / n)
        amp.step(self.g.optimizer, self.g.params())
        return totals

    # ----------------------------------------------------------------- evaluation
    def eval_network(self) -> nn.Module:
        if self.g.ema is not None and self.cfg.val.use_ema:
            return self.g.ema.module
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
        """The output of a non-learned baseline on the same batch: MATLAB bicubic upscaling, or
        the degraded input itself at scale 1 (denoising, JPEG: what the network must beat)."""
        if kind not in BASELINES:
            raise ConfigError(f"--baseline: unknown baseline {kind!r}; known: {', '.join(BASELINES)}")
        if kind == "input" and self.cfg.scale != 1:
            raise ConfigError(
                f"--baseline input: needs scale 1, this config has scale {self.cfg.scale} (use bicubic)"
            )
        lq = batch["lq"]
        out = lq if self.cfg.scale == 1 else imresize(lq, self.cfg.scale)
        return {"output": out.clamp(0, 1), "gt": batch["gt"]}

    def val_sets(self) -> list[ValSetup]:
        """The validation sets with their metrics, built once (metrics may hold networks)."""
        if self._val_sets is None:
            self._val_sets = build_val_sets(self.cfg, self.dataset_extras(self.cfg), self.default_metrics())
        return self._val_sets

    def evaluates(self) -> bool:
        return bool(self.cfg.data.val)

    def evaluate(self, ctx: EvalContext) -> dict[str, SetResult]:
        results: dict[str, SetResult] = {}
        for vset in self.val_sets():
            save_dir = ctx.image_dir(vset.name) if vset.cfg.save_images else None
            results[vset.name] = evaluate_pairs(self.eval_step, vset, ctx, save_dir)
            if ctx.baseline is not None:
                kind = ctx.baseline
                plain = dataclasses.replace(ctx, collect=None)  # report crops are the model's only
                base = evaluate_pairs(functools.partial(self.baseline_step, kind=kind), vset, plain)
                base.baseline_of = vset.name
                if self.cfg.scale == 1:  # say which degradation the row scores
                    what = getattr(vset.dataset, "describe", lambda: "the LQ images")()
                    base.notes.append(f"baseline {kind!r} at scale 1 is the degraded input itself ({what})")
                results[f"{vset.name}/{kind}"] = base
        return results

    def sample_images(self) -> dict[str, Tensor]:
        """Each set's first image: the output above the GT."""
        images: dict[str, Tensor] = {}
        for vset in self.val_sets():
            sample = vset.dataset[0]
            batch = {k: v[None].to(self.device) for k, v in sample.items() if torch.is_tensor(v)}
            out = self.eval_step(batch)
            images[f"val/{vset.name}/output_gt"] = torch.cat([out["output"], out["gt"]])
        return images

    def export(self) -> nn.Module:
        return self.g.ema.module if self.g.ema is not None else self.networks["net_g"]

    def describe(self) -> str:
        return str(self.cfg.network_g["type"])

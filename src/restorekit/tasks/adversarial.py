"""Adversarial restoration: a generator and a discriminator updated in alternation.

BasicSR's ``SRGANModel`` / ``ESRGANModel`` and Real-ESRGAN's ``RealESRGANModel`` /
``RealESRNetModel`` as one task. ``net_g`` is built and trained as in the restoration task (this
class extends it: same pretrained loading, EMA, AMP, validation and export); ``net_d`` comes from
``network_d`` with its own optimizer (``train.optim_d``) and schedule (``train.scheduler_d``,
by default the generator's, as BasicSR applies one schedule to every optimizer).

The losses in ``train.losses`` take their role from their type: one ``GANLoss`` is the
adversarial loss (it needs ``network_d``, and vice versa); every other loss is a content loss
``crit(output, target)`` of the generator (pixel, perceptual...). With ``gan_type: ragan`` the
relativistic average form of ESRGAN is used.

One iteration ``it`` (1-based, as BasicSR's ``current_iter``) does:

1. the generator step when ``it % net_d_iters == 0 and it > net_d_init_iters`` — content losses
   plus the GAN loss through a frozen D; otherwise the generator only produces fakes, without
   gradients (BasicSR still builds the graph there; the result is the same);
2. the discriminator step: real then fake, each with its own backward pass (BasicSR's order; it
   is also what DistributedDataParallel needs — one forward per backward);
3. every schedule steps and the EMA copy of G is updated (BasicSR does both every iteration).

During the G step the discriminator is the bare module, not its DDP wrapper: it is not being
trained there, so its gradients need no all-reduce (and frozen parameters would stall DDP).

With a ``degradation:`` section, batches come from ``RealESRGANDataset`` (GT + blur kernels) and
the LQ is synthesised on the training device by ``RealESRGANDegradation`` with a training-pair
pool. Its draws come from the task's per-rank generator; the generator and each rank's pool are
saved for every rank (``rank_state_dict``), so a resumed run continues bit for bit.
``train.usm_gt`` names the losses whose target is the
unsharp-masked GT (Real-ESRGAN: L1 and perceptual; the GAN loss sees the plain GT).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from restorekit.archs.export import check_buildable
from restorekit.archs.info import arch_info
from restorekit.config.sections import AdversarialConfig
from restorekit.data.degradations.filters import USMSharp
from restorekit.data.degradations.realesrgan import RealESRGANDegradation
from restorekit.errors import ConfigError, WeightsError
from restorekit.losses.gan import GANLoss, ragan_discriminator_loss, ragan_generator_loss
from restorekit.optim import check_optimizer, check_scheduler
from restorekit.registry import ARCHS, LOSSES, TASKS
from restorekit.tasks.base import Batch, Pretrained, Role, micro_batches
from restorekit.tasks.restoration import RestorationTask

DEGRADED_DATASET = "RealESRGANDataset"  # yields GT + kernels; the LQ is made by the degradation


def is_gan_loss(spec: dict[str, Any]) -> bool:
    ctor = LOSSES.get(spec["type"])
    return isinstance(ctor, type) and issubclass(ctor, GANLoss)


def training_patch_size(cfg: AdversarialConfig) -> int | None:
    """The GT patch size D will see: the degradation's crop, else the dataset's ``gt_size``."""
    if cfg.degradation is not None:
        return cfg.degradation.get("gt_size", 256)
    if cfg.data.train is not None:
        return cfg.data.train.dataset.get("gt_size")
    return None


def _check_discriminator(cfg: AdversarialConfig) -> None:
    assert cfg.network_d is not None
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        net_d = ARCHS.build(cfg.network_d, "network_d")
    size = training_patch_size(cfg)
    where = "degradation.gt_size" if cfg.degradation is not None else "data.train.dataset.gt_size"
    info = arch_info(net_d)
    fixed = info.input_size
    if fixed is not None and size != fixed:
        raise ConfigError(
            f"{where}: {cfg.network_d['type']} with input_size {fixed} needs {fixed}-pixel GT patches, "
            f"got {size}"
        )
    multiple = info.size_multiple
    if size is not None and size % multiple:
        raise ConfigError(
            f"{where}: {cfg.network_d['type']} needs a patch size divisible by {multiple}, got {size}"
        )


def _check_train(cfg: AdversarialConfig) -> None:
    train = cfg.train
    assert train is not None
    gans = [name for name, spec in train.losses.items() if is_gan_loss(spec)]
    if len(gans) > 1:
        raise ConfigError(f"train.losses: one GANLoss at most, got {', '.join(gans)}")
    if gans and cfg.network_d is None:
        raise ConfigError(f"network_d: required by the GAN loss train.losses.{gans[0]}")
    if cfg.network_d is not None and not gans:
        raise ConfigError("train.losses: network_d is set but no loss is a GANLoss to train it with")
    if cfg.network_d is None:
        for key in ("optim_d", "scheduler_d"):
            if getattr(train, key) is not None:
                raise ConfigError(f"train.{key}: set, but there is no network_d to use it")
        if train.net_d_iters != 1 or train.net_d_init_iters != 0:
            raise ConfigError("train.net_d_iters / net_d_init_iters: set, but there is no network_d")
    else:
        if train.optim_d is None:
            raise ConfigError("train.optim_d: required key is missing (the discriminator's optimizer)")
        check_optimizer(train.optim_d, "train.optim_d")
        if train.scheduler_d is not None:
            check_scheduler(train.scheduler_d, "train.scheduler_d")
        _check_discriminator(cfg)
    for i, name in enumerate(train.usm_gt):
        if name not in train.losses:
            raise ConfigError(f"train.usm_gt.{i}: {name!r} is not a loss in train.losses")


def _check_degradation(cfg: AdversarialConfig) -> None:
    kind = cfg.data.train.dataset.get("type") if cfg.data.train is not None else None
    if cfg.degradation is not None:
        RealESRGANDegradation.from_config(cfg.degradation, scale=cfg.scale)
        if kind is not None and kind != DEGRADED_DATASET:
            raise ConfigError(
                f"data.train.dataset.type: the degradation section needs {DEGRADED_DATASET} batches "
                f"(GT + kernels), got {kind}"
            )
        own = cfg.data.train.dataset.get("gt_size") if cfg.data.train is not None else None
        crop = cfg.degradation.get("gt_size", 256)
        if own is not None and own != crop:  # Real-ESRGAN crops after degrading, at degradation.gt_size
            raise ConfigError(
                f"data.train.dataset.gt_size: {own} differs from degradation.gt_size {crop}, which is "
                "the patch size actually trained on; remove one or make them equal"
            )
    elif kind == DEGRADED_DATASET:
        raise ConfigError(
            f"degradation: required with {DEGRADED_DATASET}, which yields GT images and blur kernels; "
            "the LQ is made by the degradation section"
        )


@TASKS.register("adversarial")
class AdversarialTask(RestorationTask):
    """Train ``net_g`` against ``net_d`` (or, without ``network_d``, on degraded data only)."""

    config_model = AdversarialConfig
    cfg: AdversarialConfig

    @classmethod
    def check_config(cls, cfg: AdversarialConfig) -> None:
        super().check_config(cfg)  # network_g, optim_g, scheduler and every loss's arguments
        if cfg.network_d is not None:
            check_buildable(cfg.network_d, "network_d")
        _check_degradation(cfg)
        if cfg.train is not None:
            _check_train(cfg)

    def __init__(self, cfg: AdversarialConfig, device: torch.device, training: bool = True) -> None:
        super().__init__(cfg, device, training)
        self.gan: GANLoss | None = None
        self.gan_name = ""
        self.content: dict[str, nn.Module] = {}
        self.degradation: RealESRGANDegradation | None = None
        self.usm: USMSharp | None = None
        self.d: Role | None = None
        train = cfg.train
        if train is None or not self.training:  # validation / inference: the generator is all there is
            return
        for name, loss in self.losses.items():
            if isinstance(loss, GANLoss):
                self.gan, self.gan_name = loss, name
            else:
                self.content[name] = loss
        self.usm_gt = frozenset(train.usm_gt)
        self.phases.add("g", every=train.net_d_iters, start=train.net_d_init_iters, where="train.net_d_iters")
        if cfg.network_d is not None:
            pretrained = None
            if cfg.pretrained_d:
                pretrained = Pretrained(
                    cfg.pretrained_d,
                    cfg.pretrained_d_strict,
                    cfg.pretrained_d_param_key,
                    where="pretrained_d",
                )
            # the discriminator follows the generator's schedule unless it has its own (BasicSR)
            sched, where = train.scheduler_d, "train.scheduler_d"
            if sched is None:
                sched, where = train.scheduler, "train.scheduler"
            self.d = self.add_network(
                "net_d",
                cfg.network_d,
                "network_d",
                pretrained=pretrained,
                optim=train.optim_d,
                optim_where="train.optim_d",
                scheduler=sched,
                scheduler_where=where,
                warmup_iter=train.warmup_iter,
            )
        if cfg.degradation is not None:
            # draws come from the task's per-rank generator, saved for every rank
            self.degradation = RealESRGANDegradation.from_config(cfg.degradation, scale=cfg.scale).to(device)
            self.pool = self.degradation.make_pool()
        elif self.usm_gt:
            self.usm = USMSharp().to(device)

    # ----------------------------------------------------------------- data
    def _as_input(self, x: Tensor) -> Tensor:
        return self.d.as_input(x) if self.d is not None else x

    @torch.no_grad()
    def _training_pair(self, batch: Batch) -> dict[str, Tensor]:
        """{"lq", "gt"(, "gt_usm")} for one micro-batch: synthesised, or as loaded (+ USM)."""
        if self.degradation is not None:
            out = self.degradation.synthesize(batch, self.generator, self.pool)
            return {"lq": self.g.as_input(out["lq"]), "gt": out["gt"], "gt_usm": out["gt_usm"]}
        pair = {"lq": self._lq(batch), "gt": batch["gt"]}
        if self.usm is not None:
            pair["gt_usm"] = self.usm(batch["gt"].float())
        return pair

    def _target(self, pair: dict[str, Tensor], loss_name: str) -> Tensor:
        return pair["gt_usm"] if loss_name in self.usm_gt else pair["gt"]

    # ----------------------------------------------------------------- the step
    def train_step(self, batches: Sequence[Batch], it: int) -> dict[str, Tensor]:
        train = self.cfg.train
        assert train is not None
        n = len(batches)
        totals: dict[str, Tensor] = {}

        def add(key: str, value: Tensor) -> None:
            totals[key] = totals.get(key, 0) + value.detach().float() / n

        pairs = [self._training_pair(b) for b in batches]
        net_g = self.trainable["net_g"]
        net_d = self.networks.get("net_d")
        fakes: list[Tensor] = []
        amp = self.g.amp
        assert amp is not None and self.g.optimizer is not None
        if self.phases.run("g", it):
            if net_d is not None:
                net_d.requires_grad_(False)
            for _, pair, ctx in micro_batches(pairs, [net_g]):
                with ctx:
                    with amp.autocast():
                        out = net_g(pair["lq"])
                        loss = self._generator_loss(out, pair, add)
                    amp.backward(loss / n)
                fakes.append(out.detach())
            amp.step(self.g.optimizer, self.g.params())
        elif net_d is not None:  # D warm-up or an off-beat iteration: fakes without gradients
            with torch.no_grad(), amp.autocast():
                fakes = [net_g(pair["lq"]).detach() for pair in pairs]
        if net_d is not None:
            net_d.requires_grad_(True)
            self._discriminator_step(pairs, fakes, add)
        return totals

    def _generator_loss(
        self, out: Tensor, pair: dict[str, Tensor], add: Callable[[str, Tensor], None]
    ) -> Tensor:
        total = out.new_zeros((), dtype=torch.float32)
        out_f = out.float()  # pixel losses in float32 even under autocast
        for name, crit in self.content.items():
            value = crit(out_f, self._target(pair, name))
            total = total + value
            add(f"l_g_{name}", value)
        if self.gan is not None:
            net_d = self.networks["net_d"]  # the bare module: D is frozen in this step
            if self.gan.relativistic:  # real first, as ESRGANModel (D's running state sees that order)
                real_pred = net_d(self._as_input(self._target(pair, self.gan_name))).detach()
                value = ragan_generator_loss(self.gan, real_pred, net_d(self._as_input(out)))
            else:
                value = self.gan(net_d(self._as_input(out)), True, is_disc=False)
            total = total + value
            add(f"l_g_{self.gan_name}", value)
        return total

    def _discriminator_step(
        self, pairs: list[dict[str, Tensor]], fakes: list[Tensor], add: Callable[[str, Tensor], None]
    ) -> None:
        assert self.gan is not None and self.d is not None and self.d.amp is not None
        net_d, gan, amp = self.trainable["net_d"], self.gan, self.d.amp
        for i, pair, ctx in micro_batches(pairs, [net_d]):
            real = self._as_input(self._target(pair, self.gan_name))
            fake = self._as_input(fakes[i])
            with ctx:
                if gan.relativistic:  # ESRGAN: each side judged relative to the other's mean
                    with torch.no_grad(), amp.autocast():
                        fake_ref = net_d(fake)
                    with amp.autocast():
                        real_pred = net_d(real)
                    l_real = ragan_discriminator_loss(gan, real_pred, fake_ref, True)
                    amp.backward(l_real / len(pairs))
                    with amp.autocast():
                        fake_pred = net_d(fake)
                    l_fake = ragan_discriminator_loss(gan, fake_pred, real_pred, False)
                else:
                    with amp.autocast():
                        real_pred = net_d(real)
                    l_real = gan(real_pred, True, is_disc=True)
                    amp.backward(l_real / len(pairs))
                    with amp.autocast():
                        fake_pred = net_d(fake)
                    l_fake = gan(fake_pred, False, is_disc=True)
                amp.backward(l_fake / len(pairs))
            add("l_d_real", l_real)
            add("l_d_fake", l_fake)
            add("out_d_real", real_pred.detach().mean())
            add("out_d_fake", fake_pred.detach().mean())
        assert self.d.optimizer is not None
        amp.step(self.d.optimizer, self.d.params())

    # ----------------------------------------------------------------- state
    def rank_state_dict(self) -> dict[str, Any]:
        state = super().rank_state_dict()
        if self.degradation is not None:  # each rank's pool holds its own training pairs
            state["pool"] = self.pool.state_dict()
        return state

    def load_rank_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_rank_state_dict(state)
        if self.degradation is not None:
            if "pool" not in state:
                raise WeightsError(
                    "training state has no degradation pool; it was saved by a run without a degradation"
                )
            self.pool.load_state_dict(state["pool"])

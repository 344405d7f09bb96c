"""Unconditional image generation (lucidrains' lightweight-gan / FastGAN) in the shared trainer.

``net_g`` (``LightweightGANGenerator``) maps latents to images, ``net_d``
(``LightweightGANDiscriminator``) scores them and reconstructs real images from its features.
One iteration ``it`` is lightweight-gan's ``train`` step:

1. **D step**, per micro-batch: fakes from fresh latents (no graph), real and fake batches each
   through DiffAugment (with probability p: fixed, ``auto`` from the data-set size, or ADA's
   adaptive p), lightweight-gan's flipped hinge (or the dual contrastive loss) on both heads,
   plus the reconstruction MSE of real images; every ``gp_every`` iterations the gradient
   penalty on the real and fake inputs, computed on unscaled gradients under fp16.
2. **G step**, per micro-batch: fresh latents through G and the (frozen, bare) D.
3. ``end_iteration``: the EMA copy updates every ``ema.every`` iterations after ``ema.start``,
   and is reset to G every ``ema.reset_every`` iterations below ``ema.reset_until``.

Every draw (latents, G's noise, augmentation decisions, D's reconstruction quadrant) comes from
the task's per-rank generator, saved per rank in checkpoints; the augmentation p (ADA) and the
fixed sample latents are part of the task state. So a resumed run continues bit for bit, which
lightweight-gan (it loses the Adam moments on every resume) cannot.

Evaluation: FID/KID (set metrics) of EMA samples against real images prepared exactly like the
training images (or a reference statistics file), generated in fixed chunks that ranks share
out, so sharded numbers equal one process; fakes reach Inception as 8-bit tensors in memory,
exactly as the reals do (no JPEG). ``sample_images`` is the grid of the fixed latents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from restorekit.archs.export import check_buildable
from restorekit.archs.info import arch_info
from restorekit.archs.lightweight_gan import read_lightweight_gan_checkpoint
from restorekit.config.generation import GenerationConfig
from restorekit.data.degradations.diffaugment import AdaptiveP, DiffAugment, auto_aug_prob, check_types
from restorekit.data.io import write_image
from restorekit.data.latents import grid, latent_bank
from restorekit.errors import ConfigError
from restorekit.losses.lightweight_gan import (
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    reconstruction_loss,
)
from restorekit.optim import check_optimizer
from restorekit.registry import DATASETS, TASKS
from restorekit.tasks.base import Batch, Task, micro_batches
from restorekit.tasks.evaluation import (
    EvalContext,
    SetResult,
    ValSetup,
    build_val_sets,
    check_val_sets,
    finish_set_metrics,
)
from restorekit.weights import load_into

CHUNK = 16  # images generated per forward in evaluation; chunk c is rank c % world's


@TASKS.register("generation")
class GenerationTask(Task):
    """Train ``net_g`` to generate the images of a folder; validate with FID/KID of EMA samples."""

    config_model = GenerationConfig
    cfg: GenerationConfig

    @classmethod
    def check_config(cls, cfg: GenerationConfig) -> None:  # type: ignore[override]
        check_buildable(cfg.network_g, "network_g")
        check_buildable(cfg.network_d, "network_d")
        g_info, d_info = arch_info(cfg.network_g), arch_info(cfg.network_d)
        if g_info.purpose != "generator" or d_info.purpose != "discriminator":
            raise ConfigError(
                f"network_g / network_d: task generation needs a generator and a discriminator, got "
                f"{cfg.network_g['type']} ({g_info.purpose}) and {cfg.network_d['type']} ({d_info.purpose})"
            )
        size_g, size_d = cfg.network_g["image_size"], cfg.network_d["image_size"]
        if size_g != size_d:
            raise ConfigError(f"network_d.image_size: {size_d} differs from network_g.image_size {size_g}")
        if cfg.data.train is not None:
            DATASETS.check(cfg.data.train.dataset, "data.train.dataset", **cls.dataset_extras(cfg))
        check_val_sets(cfg, cls.dataset_extras(cfg), cls.default_metrics(), need_dataset=False)
        if cfg.train is not None:
            check_optimizer(cfg.train.optim_g, "train.optim_g")
            check_optimizer(cfg.train.optim_d, "train.optim_d")
            check_types(cfg.train.augment.types, "train.augment.types")
            if cfg.train.dual_contrast_loss and d_info.out_channels != 1:
                raise ConfigError("train.dual_contrast_loss: needs network_d.disc_output_size 1")

    @classmethod
    def dataset_extras(cls, cfg: GenerationConfig) -> dict[str, Any]:  # type: ignore[override]
        return {"image_size": cfg.network_g["image_size"]}

    @classmethod
    def default_metrics(cls) -> dict[str, dict[str, Any]]:
        return {"fid": {"num_images": 1000}}

    def __init__(self, cfg: GenerationConfig, device: torch.device, training: bool = True) -> None:
        super().__init__(cfg, device, training)
        train = cfg.train if self.training else None
        ema = train.ema if train else None
        self.g = self.add_network(
            "net_g",
            cfg.network_g,
            "network_g",
            optim=train.optim_g if train else None,
            optim_where="train.optim_g",
            ema_decay=ema.decay if ema else 0.0,
            ema_every=ema.every if ema else 1,
            ema_start=ema.start if ema else 0,
        )
        self.latent_dim = int(arch_info(self.g.module).latent_dim or 0)
        self._it = 0  # the last finished iteration (the EMA schedule's clock)
        #: the sample grid's latents: fixed at the start, kept in the checkpoint
        self.fixed = latent_bank(cfg.samples.num, self.latent_dim, cfg.samples.seed).to(device)
        self._val: list[ValSetup] | None = None
        self.d = None
        if train is None:
            return
        self.d = self.add_network(
            "net_d", cfg.network_d, "network_d", optim=train.optim_d, optim_where="train.optim_d"
        )
        if cfg.pretrained:
            self._load_lightweight_gan(cfg.pretrained)
        self.phases.add("gp", every=train.gp_every, where="train.gp_every")
        aug = train.augment
        self.augment = DiffAugment(aug.types, 0.0)
        self.aug_p: float | Tensor = 0.0 if aug.prob == "auto" else float(aug.prob)
        self.ada: AdaptiveP | None = None
        if aug.ada_target is not None:
            assert cfg.data.train is not None
            world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
            batch = cfg.data.train.batch_size * train.accum_iter * world  # ADA's: over all ranks
            real_positive = train.dual_contrast_loss  # lightweight-gan's hinge drives D(real) negative
            self.ada = AdaptiveP(
                batch, aug.ada_target, aug.ada_interval, real_positive=real_positive, device=device
            )

    def _load_lightweight_gan(self, path: str) -> None:
        """G, D and GE of a lightweight-gan ``model_N.pt``, strictly by key; the optimizers start fresh."""
        parts = read_lightweight_gan_checkpoint(path)
        load_into(self.g.module, parts["G"], "strict", f"{path} (G)")
        assert self.d is not None
        load_into(self.d.module, parts["D"], "strict", f"{path} (D)")
        if self.g.ema is not None:
            load_into(self.g.ema.module, parts.get("GE", parts["G"]), "strict", f"{path} (GE)")
        self.notices.append(
            f"pretrained: G, D and GE loaded from {path}; the optimizers start fresh "
            "(lightweight-gan does not save them)"
        )

    def attach_train_data(self, dataset: Any) -> None:
        """``augment.prob: auto`` — lightweight-gan's rule from the number of training images."""
        if self.cfg.train is not None and self.cfg.train.augment.prob == "auto":
            self.aug_p = auto_aug_prob(len(dataset))

    # ----------------------------------------------------------------- training
    def _latents(self, n: int) -> Tensor:
        return torch.randn(n, self.latent_dim, generator=self.generator, device=self.device)

    def _aug(self, x: Tensor) -> Tensor:
        p = self.ada.p if self.ada is not None else self.aug_p
        return self.augment(x, self.generator, p)

    def train_step(self, batches: Sequence[Batch], it: int) -> dict[str, Tensor]:
        train = self.cfg.train
        assert train is not None and self.d is not None and self.d.amp is not None and self.g.amp is not None
        net_g, net_d = self.trainable["net_g"], self.trainable["net_d"]
        d_amp, g_amp, n = self.d.amp, self.g.amp, len(batches)
        out: dict[str, Tensor] = {}

        def add(key: str, value: Tensor) -> None:
            out[key] = out.get(key, 0) + value.detach().float() / n

        gp_now = self.phases.run("gp", it)
        for _, batch, ctx in micro_batches(batches, [net_d]):
            real = self.d.as_input(batch["gt"])
            with torch.no_grad(), g_amp.autocast():
                fake = net_g(self._latents(real.shape[0]), self.generator).float()
            with ctx:
                real_in = real.detach().requires_grad_(gp_now)
                with d_amp.autocast():
                    fake_aug = self._aug(fake).requires_grad_(gp_now)
                    d_fake = net_d(fake_aug)
                    real_aug = self._aug(real_in)
                    d_real = net_d(real_aug, reconstruct=True, generator=self.generator)
                    heads_real = (d_real.logits, d_real.side_logits)
                    heads_fake = (d_fake.logits, d_fake.side_logits)
                    loss = discriminator_loss(heads_real, heads_fake, train.dual_contrast_loss)
                    aux = reconstruction_loss(
                        real_aug, d_real.recon_whole, d_real.recon_quadrant, d_real.quadrant
                    )
                loss = loss.float() + aux.float()
                if gp_now:
                    scale = d_amp.scaler.get_scale() if d_amp.scaler.is_enabled() else None
                    gp = gradient_penalty(
                        [*heads_real, *heads_fake], [real_in, fake_aug], train.gp_weight, scale
                    )
                    loss = loss + gp
                    shown = gp.detach()
                    if d_amp.scaler.is_enabled():
                        shown = torch.nan_to_num(shown, nan=0.0, posinf=0.0, neginf=0.0)
                    add("l_gp", shown)
                d_amp.backward(loss / n)
            if self.ada is not None:
                self.ada.accumulate(d_real.logits)
            if d_amp.scaler.is_enabled():  # fp16: an overflowing GP is the scaler's to skip, not the guard's
                loss = torch.nan_to_num(loss.detach(), nan=0.0, posinf=0.0, neginf=0.0)
            add("l_d", loss)
            add("l_aux", aux)
        d_amp.step(self.d.optimizer, self.d.params())
        if self.ada is not None:
            self.ada.step()
        bare_d = self.networks["net_d"]  # frozen in G's step: no DDP all-reduce of D's gradients
        bare_d.requires_grad_(False)
        for _, batch, ctx in micro_batches(batches, [net_g]):
            with ctx:
                with g_amp.autocast():
                    fake = net_g(self._latents(batch["gt"].shape[0]), self.generator)
                    d_fake = bare_d(self._aug(fake))
                    heads_real = None
                    if train.dual_contrast_loss:
                        with torch.no_grad():
                            d_real = bare_d(self._aug(self.d.as_input(batch["gt"])))
                        heads_real = (d_real.logits, d_real.side_logits)
                    loss = generator_loss(
                        (d_fake.logits, d_fake.side_logits), heads_real, train.dual_contrast_loss
                    )
                g_amp.backward(loss.float() / n)
            add("l_g", loss)
        bare_d.requires_grad_(True)
        g_amp.step(self.g.optimizer, self.g.params())
        if self.ada is not None:
            out["aug_p"] = self.ada.p.detach().clone()
        return out

    def end_iteration(self, it: int) -> None:
        self._it = it
        super().end_iteration(it)  # EMA updates every ema.every after ema.start
        ema, schedule = self.g.ema, self.cfg.train.ema if self.cfg.train else None
        if (
            ema is not None
            and schedule is not None
            and it % schedule.reset_every == 0
            and it < schedule.reset_until
        ):
            ema.reset(self.g.module)  # lightweight-gan: GE := G every 1000 steps before 25k

    # ----------------------------------------------------------------- evaluation
    def _ema_ready(self) -> bool:
        """The EMA copy has been reset to or averaged with G at least once (by ``self._it``);
        before that it is the random initialisation, never what to sample, judge or ship."""
        schedule = self.cfg.train.ema if self.cfg.train else None
        if self.g.ema is None or schedule is None:
            return self.g.ema is not None
        return self._it >= schedule.reset_every or self._it > schedule.start

    def eval_network(self) -> nn.Module:
        if self.g.ema is not None and self.cfg.val.use_ema and self._ema_ready():
            return self.g.ema.module
        return self.networks["net_g"]

    @torch.no_grad()
    def generate(self, latents: Tensor, seed: int = 0, raw: bool = False) -> Tensor:
        """Images in [0, 1] from ``latents`` (EMA weights unless ``raw``); G's noise from ``seed``."""
        net = self.networks["net_g"] if raw else self.eval_network()
        was = net.training
        net.eval()
        noise = torch.Generator(self.device).manual_seed(seed)
        images = net(latents.to(self.device), noise).float().clamp_(0, 1)
        net.train(was)
        return images

    def evaluates(self) -> bool:
        return bool(self.cfg.data.val)

    def _reals(self, vset: ValSetup) -> Any:
        if vset.dataset is not None:
            return vset.dataset
        if self.cfg.data.train is None:
            return None
        spec = {**self.cfg.data.train.dataset}
        spec.pop("dataset_aug_prob", None)  # reals as the model sees them, without random crops
        return DATASETS.build(spec, "data.train.dataset", **self.dataset_extras(self.cfg))

    def evaluate(self, ctx: EvalContext) -> dict[str, SetResult]:
        if self._val is None:
            self._val = build_val_sets(self.cfg, self.dataset_extras(self.cfg), self.default_metrics())
            self._real_sets = {v.name: self._reals(v) for v in self._val}
        if ctx.world_size > 1:
            # every rank generates with rank 0's (the checkpointed) weights: per-rank BatchNorm
            # statistics differ on CPU, where there is no SyncBatchNorm
            net = self.eval_network()
            state = ctx.gather({k: v.cpu() for k, v in net.state_dict().items()} if ctx.is_main else None)[0]
            net.load_state_dict(state)
        results = {}
        folder = ctx.image_dir("samples") if ctx.is_main else None
        if folder is not None:  # the fixed-latent grids (EMA and raw), beside the numbers
            for tag, images in self.sample_images().items():
                write_image(folder / f"{tag.rsplit('/', 1)[-1]}.png", grid(images))
        for vset in self._val:
            for metric in vset.metrics.values():
                metric.reset()
            reals = self._real_sets[vset.name]
            sizes = [int(getattr(m, "num_images", 0) or 0) for m in vset.metrics.values()]
            total = max(sizes, default=0) if vset.metrics else 0
            for c, start in enumerate(range(0, total, CHUNK)):
                if c % ctx.world_size != ctx.rank:
                    continue
                idx = list(range(start, min(start + CHUNK, total)))
                fakes = self.generate(
                    latent_bank(len(idx), self.latent_dim, self.cfg.seed + 1, start), seed=c
                )
                gt = None
                if reals is not None:
                    gt = torch.stack([reals[i % len(reals)]["gt"] for i in idx]).to(self.device)
                for metric in vset.metrics.values():
                    metric.update(fakes, gt, idx)
            notes, protocols = list(vset.notes), {}
            means = finish_set_metrics(vset.metrics, ctx, notes, protocols)
            results[vset.name] = SetResult(means, notes=notes, protocols=protocols)
        return results

    def wrap_trainable(self, wrap: Any) -> None:
        """Under DDP on GPUs, G's BatchNorm becomes SyncBatchNorm (as lightweight-gan does), so
        every rank normalises with the statistics of the global batch."""
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed and self.device.type == "cuda" and "net_g" in self.trainable:
            # replaces the BatchNorm children in place; their parameters are the optimizer's
            self.trainable["net_g"] = nn.SyncBatchNorm.convert_sync_batchnorm(self.trainable["net_g"])
        super().wrap_trainable(wrap)

    def sample_images(self) -> dict[str, Tensor]:
        images = {"samples/ema": self.generate(self.fixed)}
        if self.g.ema is not None:
            images["samples/raw"] = self.generate(self.fixed, raw=True)
        return images

    def export(self) -> nn.Module:
        if self.g.ema is not None and self._ema_ready():
            return self.g.ema.module
        return self.networks["net_g"]  # a run shorter than the EMA schedule ships G itself

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["fixed_latents"] = self.fixed.cpu()
        state["aug_p"] = float(self.aug_p)
        state["it"] = self._it
        if self.ada is not None:  # p and its clock are shared; the partial sums are per rank
            ada = self.ada.state_dict()
            state["ada"] = {"p": ada["p"], "iteration": ada["iteration"]}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.fixed = state["fixed_latents"].to(self.device)
        self.aug_p = float(state["aug_p"])
        self._it = int(state.get("it", 0))
        if self.ada is not None and "ada" in state:
            self.ada.load_state_dict({**state["ada"], "sign_sum": 0.0, "count": 0})

    def rank_state_dict(self) -> dict[str, Any]:
        state = super().rank_state_dict()
        if self.ada is not None:  # its partial sums of sign(D(real)) are this rank's
            ada = self.ada.state_dict()
            state["ada_sums"] = {"sign_sum": ada["sign_sum"], "count": ada["count"]}
        return state

    def load_rank_state_dict(self, state: Any) -> None:
        super().load_rank_state_dict(state)
        if self.ada is not None and "ada_sums" in state:
            shared = self.ada.state_dict()
            self.ada.load_state_dict(
                {"p": shared["p"], "iteration": shared["iteration"], **state["ada_sums"]}
            )

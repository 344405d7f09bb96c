"""Blind face restoration (GFPGAN's ``GFPGANModel``) as a task: ``task: face``.

Roles: ``net_g`` (GFPGANv1 / GFPGANv1Clean / RestoreFormer, with an EMA copy at
0.5^(32/10000) every iteration), ``net_d`` (StyleGAN2Discriminator, with StyleGAN2's lazy-R1
lr/betas correction), optionally the three ``net_d_left_eye`` / ``net_d_right_eye`` /
``net_d_mouth`` (FacialComponentDiscriminator, betas (0.9, 0.99)) and a frozen
``net_identity`` (ResNetArcFace). Each trainable role has its own optimizer and the shared
schedule.

One iteration ``it`` (1-based) does what ``GFPGANModel.optimize_parameters`` does:

1. the G step when ``it % net_d_iters == 0 and it > net_d_init_iters``: pixel L1, the pyramid
   L1 of every intermediate RGB (weight 1e-12 after ``remove_pyramid_loss``), VGG perceptual +
   Gram style, the global ``wgan_softplus`` loss, the three component GAN losses and their
   Gram-style loss, and the identity loss (ArcFace on 128² gray crops) — Ds frozen and used
   bare, so no DDP all-reduce of their gradients;
2. the global D step: fake and real judged, then one backward per micro-batch (GFPGAN's
   ``l_d.backward()``), so DDP all-reduces each micro-batch's gradient once and two processes
   sum what one process with ``accum_iter: 2`` sums, bit for bit (docs/design.md, item 19);
   on R1 iterations the real forward also carries ``r1_reg_weight / 2 · R1 · net_d_reg_every``
   (GFPGAN's third forward on the same weights: equal value and gradient);
3. each component D step on the crops of the detached output and of the GT; the fake term uses
   the global GAN loss unless ``component_d_fake_loss: component`` (GFPGAN's quirk kept by default).

Mixed precision: the networks' forwards run under ``train.amp``; the losses, the ROI crops and
the identity embeddings are computed in float32, and an R1 iteration runs D's real forward in
float32 (a double backward through fp16 activations underflows, and GradScaler does not scale
``autograd.grad``).

Training batches are in G's range [-1, 1]; val sets may be [0, 1] (their ``value_range`` says);
metrics see [0, 1]. Validation runs G with fixed noise: a face scores the same in any shard.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from restorekit.archs.info import arch_info
from restorekit.config.face import COMPONENTS, FaceConfig
from restorekit.errors import ConfigError
from restorekit.losses.face import (
    component_rois,
    component_sizes,
    component_style_loss,
    crop_components,
    gray_for_identity,
    pyramid_losses,
)
from restorekit.losses.gan import GANLoss, r1_penalty
from restorekit.losses.pixel import L1Loss
from restorekit.registry import LOSSES, TASKS
from restorekit.tasks.base import Batch, Pretrained, Role, Task, micro_batches, spec_type
from restorekit.tasks.evaluation import EvalContext, SetResult, ValSetup, build_val_sets, evaluate_pairs
from restorekit.tasks.face_checks import check_face_config
from restorekit.tasks.phases import StepValue

PYRAMID_OFF = 1e-12  # GFPGAN keeps the term at this weight "to avoid unused param error"
LOC_KEYS = {c: f"loc_{c}" for c in COMPONENTS}


def _unit(x: Tensor, value_range: tuple[float, float]) -> Tensor:
    return (x + 1) / 2 if tuple(value_range) == (-1.0, 1.0) else x


def _signed(x: Tensor, value_range: tuple[float, float]) -> Tensor:  # [0, 1] into the net's range
    return x * 2 - 1 if tuple(value_range) == (-1.0, 1.0) else x


@TASKS.register("face")
class FaceTask(Task):
    """Train a face restorer as GFPGAN does."""

    config_model = FaceConfig
    cfg: FaceConfig

    @classmethod
    def check_config(cls, cfg: FaceConfig) -> None:  # type: ignore[override]
        check_face_config(cfg, cls.dataset_extras(cfg), cls.default_metrics())

    @classmethod
    def dataset_extras(cls, cfg: FaceConfig) -> dict[str, Any]:  # type: ignore[override]
        return {"scale": 1}

    @classmethod
    def default_metrics(cls) -> dict[str, dict[str, Any]]:
        return {"psnr": {}, "ssim": {}}

    def __init__(self, cfg: FaceConfig, device: torch.device, training: bool = True) -> None:
        super().__init__(cfg, device, training)
        train = cfg.train if self.training else None
        pre = None
        if cfg.pretrained:
            pre = Pretrained(
                cfg.pretrained, cfg.pretrained_strict, cfg.pretrained_param_key, where="pretrained"
            )
        self.g: Role = self.add_network(
            "net_g", cfg.network_g, "network_g", pretrained=pre,
            optim=train.optim_g if train else None, optim_where="train.optim_g",
            scheduler=train.scheduler if train else None, scheduler_where="train.scheduler",
            warmup_iter=train.warmup_iter if train else 0, ema_decay=train.ema_decay if train else 0.0,
        )  # fmt: skip
        self.value_range = arch_info(self.networks["net_g"]).value_range
        self._val_sets: list[ValSetup] | None = None
        self.components: dict[str, Role] = {}
        self.identity: nn.Module | None = None
        if train is None:
            return
        self.out_size = int(arch_info(self.networks["net_g"]).input_size or 512)
        forward = inspect.signature(self.networks["net_g"].forward).parameters
        self.noise_kw = {"randomize_noise": train.randomize_noise} if "randomize_noise" in forward else {}
        self.eye_side, self.mouth_side, self.crop_factor = component_sizes(
            self.out_size, train.eye_size, train.mouth_size
        )
        self.losses = {
            name: LOSSES.build(spec, f"train.losses.{name}").to(device) for name, spec in train.losses.items()
        }
        self.l1: nn.Module = self.losses.get("l1") or L1Loss(loss_weight=1.0).to(device)
        self.gan: GANLoss = self.losses["gan"]  # type: ignore[assignment]
        self.pyramid = StepValue(
            train.pyramid_loss_weight,
            {train.remove_pyramid_loss: PYRAMID_OFF}
            if train.remove_pyramid_loss is not None and train.pyramid_loss_weight > 0
            else None,
        )
        self.phases.add("g", every=train.net_d_iters, start=train.net_d_init_iters, where="train.net_d_iters")
        self.phases.add("r1", every=train.net_d_reg_every, where="train.net_d_reg_every")
        sched = dict(
            scheduler=train.scheduler, scheduler_where="train.scheduler", warmup_iter=train.warmup_iter
        )
        assert cfg.network_d is not None
        self.d = self.add_network(
            "net_d", cfg.network_d, "network_d",
            pretrained=Pretrained(cfg.pretrained_d, where="pretrained_d") if cfg.pretrained_d else None,
            optim=train.optim_d, optim_where="train.optim_d", reg_every=train.net_d_reg_every, **sched,
        )  # fmt: skip
        if cfg.use_components:
            for c in COMPONENTS:
                path = getattr(cfg, f"pretrained_d_{c}")
                self.components[c] = self.add_network(
                    f"net_d_{c}", getattr(cfg, f"network_d_{c}"), f"network_d_{c}",
                    pretrained=Pretrained(path, where=f"pretrained_d_{c}") if path else None,
                    optim=train.optim_component, optim_where="train.optim_component", **sched,
                )  # fmt: skip
        if cfg.network_identity is not None:
            path = cfg.pretrained_identity
            role = self.add_network(
                "net_identity", cfg.network_identity, "network_identity",
                pretrained=Pretrained(path, where="pretrained_identity") if path else None, frozen=True,
            )  # fmt: skip
            self.identity = role.module
            if path is None:
                self.notices.append(
                    "network_identity has random weights (identity_random_weights): the identity "
                    "loss trains the pipeline, it does not preserve identity"
                )

    # ----------------------------------------------------------------- the step
    def attach_train_data(self, dataset: Any) -> None:
        """``FFHQDegradationDataset(degrade_on: device)`` leaves blur, resize, noise, JPEG and
        jitter to the training device: the task finishes each batch with its draws."""
        super().attach_train_data(dataset)
        self._ffhq = None
        if getattr(dataset, "degrade_on", "host") == "device":
            from restorekit.data.degradations.ffhq import FFHQDegradation

            self._ffhq = FFHQDegradation.from_dataset(dataset).to(self.device)

    def _pair(self, batch: Batch) -> dict[str, Tensor]:
        if "lq" not in batch and getattr(self, "_ffhq", None) is not None:
            batch = self._ffhq(batch)
        pair = {"lq": self.g.as_input(batch["lq"]), "gt": batch["gt"]}
        if self.components:
            missing = [k for k in LOC_KEYS.values() if k not in batch]
            if missing:
                raise ConfigError(
                    f"data.train.dataset: batches carry no {missing[0]}; the component discriminators "
                    "need crop_components: true and a component_path file"
                )
            pair["eyes"], pair["mouths"] = component_rois(*(batch[LOC_KEYS[c]].float() for c in COMPONENTS))
        return pair

    def _crops(self, img: Tensor, pair: dict[str, Tensor]) -> dict[str, Tensor]:
        return crop_components(
            img, pair["eyes"], pair["mouths"], self.eye_side, self.mouth_side, self.crop_factor
        )

    def train_step(self, batches: Sequence[Batch], it: int) -> dict[str, Tensor]:
        n = len(batches)
        totals: dict[str, Tensor] = {}

        def add(key: str, value: Tensor) -> None:
            totals[key] = totals.get(key, 0) + value.detach().float() / n

        pairs = [self._pair(b) for b in batches]
        net_g, amp = self.trainable["net_g"], self.g.amp
        assert amp is not None and self.g.optimizer is not None
        pyramid_w = self.pyramid.at(it)
        fakes: list[Tensor] = []
        discs = [self.networks["net_d"], *(r.module for r in self.components.values())]
        if self.phases.run("g", it):
            for d in discs:
                d.requires_grad_(False)
            for _, pair, ctx in micro_batches(pairs, [net_g]):
                with ctx:
                    with amp.autocast():
                        out, rgbs = net_g(pair["lq"], return_rgb=pyramid_w > 0, **self.noise_kw)
                    loss = self._generator_loss(out, rgbs if pyramid_w > 0 else [], pair, pyramid_w, add)
                    amp.backward(loss / n)
                fakes.append(out.detach().float())
            amp.step(self.g.optimizer, self.g.params())
            for d in discs:
                d.requires_grad_(True)
        else:  # D warm-up / off-beat: fakes without gradients (GFPGAN builds the graph; same values)
            with torch.no_grad(), amp.autocast():
                fakes = [net_g(pair["lq"], return_rgb=False, **self.noise_kw)[0].float() for pair in pairs]
        self._discriminator_step(pairs, fakes, it, add)
        if self.components:
            self._component_step(pairs, fakes, add)
        return totals

    def _generator_loss(
        self, out: Tensor, rgbs: Sequence[Tensor], pair: dict[str, Tensor], pyramid_w: float,
        add: Callable[[str, Tensor], None],
    ) -> Tensor:  # fmt: skip
        gt, out_f = pair["gt"], out.float()
        total = out_f.new_zeros(())

        def term(key: str, value: Tensor) -> None:
            nonlocal total
            total = total + value
            add(key, value)

        if "pixel" in self.losses:
            term("l_g_pix", self.losses["pixel"](out_f, gt))
        if pyramid_w > 0:
            for side, value in pyramid_losses(rgbs, gt, self.l1, pyramid_w).items():
                term(f"l_p_{side}", value)
        if "perceptual" in self.losses:
            percep, style = self.losses["perceptual"].components(out_f, gt)  # type: ignore[operator]
            if percep is not None:
                term("l_g_percep", percep)
            if style is not None:
                term("l_g_style", style)
        amp = self.g.amp
        assert amp is not None
        with amp.autocast():
            fake_pred = self.networks["net_d"](self.d.as_input(out))
        term("l_g_gan", self.gan(fake_pred.float(), True, is_disc=False))
        if self.components:
            crops, crops_gt = self._crops(out_f, pair), self._crops(gt, pair)
            comp_loss = self.losses["gan_component"]
            style_w = self.cfg.train.comp_style_weight  # type: ignore[union-attr]
            comp_style = out_f.new_zeros(())
            for c, role in self.components.items():
                with amp.autocast():
                    pred, feats = role.module(crops[c], return_feats=True)
                term(f"l_g_gan_{c}", comp_loss(pred.float(), True, is_disc=False))
                if style_w > 0:
                    with amp.autocast():
                        _, feats_gt = role.module(crops_gt[c], return_feats=True)
                    comp_style = comp_style + component_style_loss(feats, feats_gt, self.l1)
            if style_w > 0:
                term("l_g_comp_style", comp_style * style_w)
        if self.identity is not None:
            weight = self.cfg.train.identity_weight  # type: ignore[union-attr]
            with amp.autocast():
                emb_gt = self.identity(gray_for_identity(gt)).detach()
                emb_out = self.identity(gray_for_identity(out_f))
            term("l_identity", self.l1(emb_out.float(), emb_gt.float()) * weight)
        return total

    def _discriminator_step(
        self, pairs: list[dict[str, Tensor]], fakes: list[Tensor], it: int, add: Callable[[str, Tensor], None]
    ) -> None:
        train = self.cfg.train
        assert train is not None and self.d.amp is not None and self.d.optimizer is not None
        net_d, amp, n = self.trainable["net_d"], self.d.amp, len(pairs)
        r1_now = self.phases.run("r1", it) and train.r1_reg_weight > 0
        for i, pair, ctx in micro_batches(pairs, [net_d]):
            with ctx:
                with amp.autocast():
                    fake_pred = net_d(self.d.as_input(fakes[i]))
                l_fake = self.gan(fake_pred.float(), False, is_disc=True)
                real = self.d.as_input(pair["gt"].float()).detach().requires_grad_(r1_now)
                if r1_now:  # fp32: see the module docstring
                    real_pred = net_d(real)
                    l_real = self.gan(real_pred.float(), True, is_disc=True)
                    r1 = r1_penalty(real_pred, real)
                    loss = l_real + train.r1_reg_weight / 2 * r1 * train.net_d_reg_every
                    add("l_d_r1", r1)
                else:
                    with amp.autocast():
                        real_pred = net_d(real)
                    l_real = self.gan(real_pred.float(), True, is_disc=True)
                    loss = l_real
                amp.backward((l_fake + loss) / n)  # one backward: see the module docstring
            add("l_d", l_real + l_fake)
            add("real_score", real_pred.detach().float().mean())
            add("fake_score", fake_pred.detach().float().mean())
        amp.step(self.d.optimizer, self.d.params())

    def _component_step(
        self, pairs: list[dict[str, Tensor]], fakes: list[Tensor], add: Callable[[str, Tensor], None]
    ) -> None:
        train = self.cfg.train
        assert train is not None
        real_loss = self.losses["gan_component"]
        fake_loss = self.gan if train.component_d_fake_loss == "global_gan" else real_loss
        n = len(pairs)
        cut = [(self._crops(f, pair), self._crops(pair["gt"], pair)) for f, pair in zip(fakes, pairs)]  # once
        for c, role in self.components.items():
            net, amp = self.trainable[role.name], role.amp
            assert amp is not None and role.optimizer is not None
            for i, _pair, ctx in micro_batches(pairs, [net]):
                fake_crop, real_crop = cut[i][0][c], cut[i][1][c]
                with ctx:
                    with amp.autocast():
                        fake_pred, _ = net(fake_crop)
                    l_fake = fake_loss(fake_pred.float(), False, is_disc=True)
                    with amp.autocast():
                        real_pred, _ = net(real_crop)
                    l_real = real_loss(real_pred.float(), True, is_disc=True)
                    amp.backward((l_fake + l_real) / n)
                add(f"l_d_{c}", l_real + l_fake)
            amp.step(role.optimizer, role.params())

    # ----------------------------------------------------------------- evaluation
    def eval_network(self) -> nn.Module:
        if self.g.ema is not None and self.cfg.val.use_ema:
            return self.g.ema.module
        return self.networks["net_g"]

    def _set_range(self, dataset: Any) -> tuple[float, float]:
        return tuple(getattr(dataset, "value_range", (0.0, 1.0)))  # type: ignore[return-value]

    @torch.no_grad()
    def eval_step(self, batch: Batch, value_range: tuple[float, float] = (0.0, 1.0)) -> dict[str, Tensor]:
        """The restored face in [0, 1] beside the GT in [0, 1] (GFPGAN's ``test`` on the EMA G)."""
        net = self.eval_network()
        was_training = net.training
        net.eval()
        lq = _signed(_unit(batch["lq"].float(), value_range), self.value_range)
        fixed = "randomize_noise" in inspect.signature(net.forward).parameters
        out = net(lq, **({"randomize_noise": False} if fixed else {}))
        out = out[0] if isinstance(out, tuple) else out
        net.train(was_training)
        restored = _unit(out.float(), self.value_range).clamp_(0, 1)
        return {"output": restored, "gt": _unit(batch["gt"].float(), value_range).clamp(0, 1)}

    def val_sets(self) -> list[ValSetup]:
        if self._val_sets is None:
            self._val_sets = build_val_sets(self.cfg, self.dataset_extras(self.cfg), self.default_metrics())
        return self._val_sets

    def evaluates(self) -> bool:
        return bool(self.cfg.data.val)

    def evaluate(self, ctx: EvalContext) -> dict[str, SetResult]:
        results: dict[str, SetResult] = {}
        for vset in self.val_sets():
            save_dir = ctx.image_dir(vset.name) if vset.cfg.save_images else None
            vr = self._set_range(vset.dataset)
            results[vset.name] = evaluate_pairs(lambda b, vr=vr: self.eval_step(b, vr), vset, ctx, save_dir)
            if ctx.baseline is not None:  # the degraded input itself: what the restorer must beat
                base = evaluate_pairs(lambda b, vr=vr: self._input_step(b, vr), vset, ctx)
                base.baseline_of = vset.name
                base.notes.append("baseline 'input' is the degraded face itself")
                results[f"{vset.name}/input"] = base
        return results

    @torch.no_grad()
    def _input_step(self, batch: Batch, value_range: tuple[float, float]) -> dict[str, Tensor]:
        lq = _unit(batch["lq"].float(), value_range).clamp(0, 1)
        return {"output": lq, "gt": _unit(batch["gt"].float(), value_range).clamp(0, 1)}

    def sample_images(self) -> dict[str, Tensor]:
        """Each set's first face as LQ | restored | GT (GFPGAN saves the restored image only)."""
        images: dict[str, Tensor] = {}
        for vset in self.val_sets():
            sample = vset.dataset[0]
            batch = {k: v[None].to(self.device) for k, v in sample.items() if torch.is_tensor(v)}
            vr = self._set_range(vset.dataset)
            out = self.eval_step(batch, vr)
            lq = _unit(batch["lq"].float(), vr).clamp(0, 1)
            if lq.shape[-2:] != out["output"].shape[-2:]:
                lq = nn.functional.interpolate(lq, size=out["output"].shape[-2:], mode="bilinear")
            images[f"val/{vset.name}/lq_restored_gt"] = torch.cat([lq, out["output"], out["gt"]])
        return images

    def export(self) -> nn.Module:
        return self.g.ema.module if self.g.ema is not None else self.networks["net_g"]

    def describe(self) -> str:
        roles = [f"{name} {spec_type(m)}" for name, m in self.networks.items() if not name.endswith("_ema")]
        return ", ".join(roles)

"""Two tasks that exist only in the tests, to prove the engine's contracts hold beyond paired SR.

* ``toygen``: an unconditional generator trained against a discriminator on random images;
  latents come from the task's per-rank generator, validation is a sample grid plus KID/FID
  (random Inception weights, calibrated on the reference images) over images generated in
  fixed chunks that ranks share out, so sharded numbers equal one process.
* ``multid``: one generator against three discriminators, each with its own optimizer, an R1
  penalty every ``r1_every`` iterations on the lazily corrected optimizers, a G step every
  ``net_d_iters``, ROI jitter drawn from the task generator, and a loss weight that changes at
  an iteration.

Loaded as a plugin (``RESTOREKIT_PLUGINS=contract_tasks``) by the CLI runs of the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.config import RunConfig, register_task_config
from restorekit.config.schema import PartSpec, TrainCore
from restorekit.registry import ARCHS, DATASETS, TASKS
from restorekit.tasks.base import Batch, Task, micro_batches
from restorekit.tasks.evaluation import EvalContext, SetResult, ValSetup, build_val_sets, finish_set_metrics
from restorekit.tasks.phases import StepValue

CHUNK = 4  # images generated per forward pass in evaluation; chunk c goes to rank c % world


# ---------------------------------------------------------------------------- parts
@ARCHS.register(
    "ToyGenerator",
    info=lambda kw: ArchInfo(
        "generator", kw["latent_dim"], 3, latent_dim=kw["latent_dim"], tileable=False, input_size=None
    ),
)
class ToyGenerator(nn.Module):
    """latent (N, latent_dim) → image (N, 3, size, size) in [0, 1]."""

    def __init__(self, latent_dim: int = 8, size: int = 16, num_feat: int = 8) -> None:
        super().__init__()
        self.size, self.num_feat = size, num_feat
        self.fc = nn.Linear(latent_dim, num_feat * 4 * 4)
        self.body = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.BatchNorm2d(num_feat), nn.LeakyReLU(0.2)
        )
        self.out = nn.Conv2d(num_feat, 3, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z).view(-1, self.num_feat, 4, 4)
        x = F.interpolate(x, size=(self.size, self.size), mode="nearest")
        return torch.sigmoid(self.out(self.body(x)))


@ARCHS.register("ToyRestorer", info=ArchInfo("restoration", 3, 3))
class ToyRestorer(nn.Module):
    """A same-size image-to-image network: x + conv(relu(conv(x)))."""

    def __init__(self, num_feat: int = 8) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, num_feat, 3, padding=1)
        self.b = nn.Conv2d(num_feat, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(F.relu(self.a(x)))


@ARCHS.register("ToyDiscriminator", info=lambda kw: ArchInfo("discriminator", kw["num_in_ch"], 1))
class ToyDiscriminator(nn.Module):
    """image (N, C, H, W) → realness logit (N,)."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(num_in_ch, num_feat, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        )
        self.head = nn.Linear(num_feat, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x).mean(dim=(2, 3))).squeeze(1)


def toy_image(index: int, size: int) -> np.ndarray:
    """A smooth random RGB image in [0, 1], fixed by its index (HWC float32)."""
    rng = np.random.default_rng(1000 + index)
    coarse = torch.from_numpy(rng.random((1, 3, 4, 4), dtype=np.float32))
    img = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]
    return img.permute(1, 2, 0).numpy()


@DATASETS.register("ToyImages")
class ToyImages(torch.utils.data.Dataset):
    """``num_images`` smooth random images; keys are an index or the sampler's (index, seed)."""

    def __init__(self, num_images: int = 16, size: int = 16) -> None:
        self.num_images, self.size = num_images, size

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, key: Any) -> dict[str, Any]:
        index = int(key[0]) if isinstance(key, tuple | list) else int(key)
        img = torch.from_numpy(toy_image(index, self.size)).permute(2, 0, 1).contiguous()
        return {"gt": img, "gt_path": f"toy{index:03d}.png"}


# ---------------------------------------------------------------------------- toygen
class ToyGenTrain(TrainCore):
    optim_g: PartSpec = Field(default_factory=lambda: {"type": "Adam", "lr": 2e-3, "betas": [0.5, 0.9]})
    optim_d: PartSpec = Field(default_factory=lambda: {"type": "Adam", "lr": 2e-3, "betas": [0.5, 0.9]})
    ema_decay: float = 0.9


@register_task_config
class ToyGenConfig(RunConfig):
    task: Literal["toygen"] = "toygen"
    network_g: PartSpec
    network_d: PartSpec
    train: ToyGenTrain | None = None


@TASKS.register("toygen")
class ToyGenTask(Task):
    config_model = ToyGenConfig
    cfg: ToyGenConfig

    @classmethod
    def default_metrics(cls) -> dict[str, dict[str, Any]]:
        return {"kid": {"weights": "random"}}

    def __init__(self, cfg: ToyGenConfig, device: torch.device, training: bool = True) -> None:
        super().__init__(cfg, device, training)
        train = cfg.train if self.training else None
        self.g = self.add_network(
            "net_g",
            cfg.network_g,
            "network_g",
            optim=train.optim_g if train else None,
            optim_where="train.optim_g",
            ema_decay=train.ema_decay if train else 0.0,
        )
        self.d = None
        if self.training:
            self.d = self.add_network(
                "net_d", cfg.network_d, "network_d", optim=train.optim_d, optim_where="train.optim_d"
            )
        self.latent_dim = int(cfg.network_g.get("latent_dim", 8))
        self._val: list[ValSetup] | None = None

    def train_step(self, batches: Sequence[Batch], it: int) -> dict[str, Tensor]:
        assert self.d is not None and self.g.amp is not None and self.d.amp is not None
        net_g, net_d = self.trainable["net_g"], self.trainable["net_d"]
        out: dict[str, Tensor] = {}
        n = len(batches)
        for _, batch, ctx in micro_batches(batches, [net_d]):  # D: hinge on real vs fake
            z = torch.randn(
                batch["gt"].shape[0], self.latent_dim, generator=self.generator, device=self.device
            )
            with torch.no_grad():
                fake = net_g(z)
            with ctx:  # one forward per backward, as DDP needs
                loss_real = F.relu(1 - net_d(batch["gt"])).mean()
                self.d.amp.backward(loss_real / n)
                loss_fake = F.relu(1 + net_d(fake)).mean()
                self.d.amp.backward(loss_fake / n)
            out["l_d"] = out.get("l_d", 0) + (loss_real + loss_fake).detach() / n
        self.d.amp.step(self.d.optimizer, self.d.params())
        self.networks["net_d"].requires_grad_(False)
        for _, batch, ctx in micro_batches(batches, [net_g]):  # G through the frozen bare D
            z = torch.randn(
                batch["gt"].shape[0], self.latent_dim, generator=self.generator, device=self.device
            )
            with ctx:
                loss_g = -self.networks["net_d"](net_g(z)).mean()
                self.g.amp.backward(loss_g / n)
            out["l_g"] = out.get("l_g", 0) + loss_g.detach() / n
        self.networks["net_d"].requires_grad_(True)
        self.g.amp.step(self.g.optimizer, self.g.params())
        return out

    def eval_network(self) -> nn.Module:
        return self.g.ema.module if self.g.ema is not None else self.networks["net_g"]

    def fixed_latents(self, start: int, count: int) -> Tensor:
        """Latents of images ``start ..``: fixed by the run's seed and the image index alone."""
        zs = [
            torch.randn(self.latent_dim, generator=torch.Generator().manual_seed(self.cfg.seed * 7919 + i))
            for i in range(start, start + count)
        ]
        return torch.stack(zs).to(self.device)

    def evaluates(self) -> bool:
        return bool(self.cfg.data.val)

    def evaluate(self, ctx: EvalContext) -> dict[str, SetResult]:
        if self._val is None:
            self._val = build_val_sets(self.cfg, {}, self.default_metrics())
        net = self.eval_network()
        results = {}
        for vset in self._val:
            for metric in vset.metrics.values():
                metric.reset()
            total = max(int(getattr(m, "num_images", None) or 16) for m in vset.metrics.values())
            chunks = range(0, total, CHUNK)
            with torch.no_grad():
                for c, start in enumerate(chunks):
                    if c % ctx.world_size != ctx.rank:
                        continue
                    count = min(CHUNK, total - start)
                    images = net(self.fixed_latents(start, count)).float()
                    for metric in vset.metrics.values():
                        metric.update(images, None, list(range(start, start + count)))
            notes = list(vset.notes)
            means = finish_set_metrics(vset.metrics, ctx, notes)
            results[vset.name] = SetResult(means, notes=notes)
        return results

    def sample_images(self) -> dict[str, Tensor]:
        with torch.no_grad():
            return {"samples/ema": self.eval_network()(self.fixed_latents(0, 8)).float()}

    def export(self) -> nn.Module:
        return self.eval_network()


# ---------------------------------------------------------------------------- multid
class MultiDTrain(TrainCore):
    optim_g: PartSpec = Field(default_factory=lambda: {"type": "Adam", "lr": 1e-3})
    optim_d: PartSpec = Field(default_factory=lambda: {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99]})
    r1_every: int = 2
    r1_weight: float = 1.0
    net_d_iters: int = 2
    pixel_weight_after: dict[int, float] = Field(default_factory=lambda: {3: 0.5})


@register_task_config
class MultiDConfig(RunConfig):
    task: Literal["multid"] = "multid"
    network_g: PartSpec
    network_d: PartSpec
    train: MultiDTrain | None = None


@TASKS.register("multid")
class MultiDTask(Task):
    """G maps an image to an image; D1 judges it whole, D2 and D3 judge jittered crops."""

    config_model = MultiDConfig
    cfg: MultiDConfig
    DS = ("net_d", "net_d_left", "net_d_right")

    def __init__(self, cfg: MultiDConfig, device: torch.device, training: bool = True) -> None:
        super().__init__(cfg, device, training)
        train = cfg.train
        assert train is not None
        self.g = self.add_network("net_g", cfg.network_g, "network_g", optim=train.optim_g, optim_where="g")
        self.ds = [
            self.add_network(
                name,
                cfg.network_d,
                "network_d",
                optim=train.optim_d,
                optim_where=name,
                reg_every=train.r1_every,
            )
            for name in self.DS
        ]
        self.phases.add("r1", every=train.r1_every)
        self.phases.add("g", every=train.net_d_iters)
        self.pixel_weight = StepValue(1.0, train.pixel_weight_after)

    def _crop(self, x: Tensor) -> Tensor:
        """An 8x8 crop at a jittered position drawn from the task's per-rank generator."""
        y, xx = torch.randint(
            0, x.shape[-1] - 8 + 1, (2,), generator=self.generator, device=self.device
        ).tolist()
        return x[..., y : y + 8, xx : xx + 8]

    def train_step(self, batches: Sequence[Batch], it: int) -> dict[str, Tensor]:
        train = self.cfg.train
        assert train is not None
        gt = batches[0]["gt"]
        lq = gt + 0.1 * torch.randn(gt.shape, generator=self.generator, device=self.device)
        out: dict[str, Tensor] = {}
        fake = self.networks["net_g"](lq).detach()
        r1 = self.phases.run("r1", it)
        for i, role in enumerate(self.ds):
            view = (lambda t: t) if i == 0 else self._crop
            real = view(gt).detach().requires_grad_(r1)
            pred_real = role.module(real)
            loss = F.softplus(-pred_real).mean() + F.softplus(role.module(view(fake))).mean()
            if r1:  # lazily weighted: every r1_every iterations, weighted by r1_every
                (grad,) = torch.autograd.grad(pred_real.sum(), real, create_graph=True)
                loss = loss + train.r1_weight / 2 * grad.pow(2).sum(dim=(1, 2, 3)).mean() * train.r1_every
            assert role.amp is not None
            role.amp.backward(loss)
            role.amp.step(role.optimizer, role.params())
            out[f"l_{role.key}"] = loss.detach()
        if self.phases.run("g", it):
            for role in self.ds:
                role.module.requires_grad_(False)
            restored = self.networks["net_g"](lq)
            loss_g = self.pixel_weight.at(it) * F.l1_loss(restored, gt)
            loss_g = loss_g + sum(F.softplus(-r.module(restored)).mean() for r in self.ds)
            assert self.g.amp is not None
            self.g.amp.backward(loss_g)
            self.g.amp.step(self.g.optimizer, self.g.params())
            for role in self.ds:
                role.module.requires_grad_(True)
            out["l_g"] = loss_g.detach()
        return out

    def export(self) -> nn.Module:
        return self.networks["net_g"]

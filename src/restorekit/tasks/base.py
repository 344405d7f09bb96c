"""The Task contract: what is learned, as opposed to how the loop runs (that is the Trainer).

A task owns its networks, losses, optimizers, schedulers and EMA copies and knows how to do one
training step and what evaluating means. Everything a GAN or a face model needs (several
networks, alternating updates, lazy regularisation) fits the same contract, because
``train_step`` does its own backward passes and optimizer steps.

* Networks are declared **by role** with :meth:`Task.add_network`: one call builds the module
  from its spec, loads pretrained weights (strict or fit, a ``param_key``, into a sub-module),
  freezes it or gives it its own optimizer, schedule, AMP helper, EMA copy and memory layout.
  Whatever the task, those pieces are built the same way.
* ``train_step(batches, it)`` receives a *list* of micro-batches (``train.accum_iter``), so
  gradient accumulation stays a detail of the step (``micro_batches`` skips DDP's all-reduce for
  all but the last one). Scheduler steps and EMA updates are *not* the step's business: the
  trainer calls :meth:`Task.end_iteration`, which does both for every role, in one place.
* ``evaluate(ctx)`` is what validation means for this task (a paired loop, sample grids and set
  metrics, ...); ``sample_images()`` feeds TensorBoard; ``export()`` names the network a finished
  run ships.
* ``generator`` is a per-rank ``torch.Generator`` on the task's device for anything the task
  samples (latents, noise, ROI jitter): ranks never draw the same numbers, and its state is part
  of the checkpoint, so a resumed run draws exactly what the uninterrupted one would have.
* A task built with ``training=False`` (validation, export) builds its networks only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from restorekit.archs.info import arch_info
from restorekit.config import RunConfig
from restorekit.config.schema import PartSpec
from restorekit.errors import RestorekitError, WeightsError
from restorekit.optim import EMA, build_optimizer, build_scheduler
from restorekit.optim.schedule import lazy_regularization
from restorekit.registry import ARCHS, spec_of
from restorekit.tasks.amp import AmpHelper
from restorekit.tasks.evaluation import EvalContext, SetResult
from restorekit.tasks.phases import Phases
from restorekit.weights import load_into, read_state_dict

Batch = Mapping[str, Any]

__all__ = ["AmpHelper", "Batch", "EvalContext", "Pretrained", "Role", "SetResult", "Task", "micro_batches"]


def current_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def rank_seed(seed: int, rank: int, salt: int = 0) -> int:
    """A seed for the task generator of ``rank``: different per rank, fixed by the run's seed."""
    return (seed * 1_000_003 + 7_919 * (rank + 1) + 104_729 * salt) % (2**63)


@dataclass(frozen=True)
class Pretrained:
    """Weights to start a role from: a file, strict or fit, which wrapper key, which sub-module."""

    path: str
    strict: bool = True
    param_key: str | None = None
    #: load into this sub-module (e.g. ``"stylegan_decoder."``); "" = the whole network
    prefix: str = ""
    #: the config key that names the file, for messages
    where: str = "pretrained"


@dataclass
class Role:
    """One named network and everything that trains it."""

    name: str
    module: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    amp: AmpHelper | None = None
    ema: EMA | None = None
    channels_last: bool = False
    ema_every: int = 1
    ema_start: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The short name optimizers, schedules and AMP state are saved under (``net_g`` → ``g``)."""
        return self.name.removeprefix("net_")

    def params(self) -> list[Tensor]:
        assert self.optimizer is not None
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def as_input(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class Task:
    """Base class: roles, the per-rank generator, phases, the steps and their state."""

    #: the config model of this task (a ``register_task_config`` section)
    config_model: ClassVar[type[RunConfig]] = RunConfig

    def __init__(self, cfg: RunConfig, device: torch.device, training: bool = True) -> None:
        self.cfg = cfg
        self.device = device
        self.training = training and cfg.train is not None
        #: role name → unwrapped module, as saved in checkpoints (EMA copies as ``<name>_ema``)
        self.networks: dict[str, nn.Module] = {}
        #: role name → the module used for training forward passes (DDP/compiled wrappers)
        self.trainable: dict[str, nn.Module] = {}
        self.roles: dict[str, Role] = {}
        self.frozen: set[str] = set()
        self.phases = Phases()
        #: one-line messages for the user (a fallback, which weights were taken, ...)
        self.notices: list[str] = []
        self.rank = current_rank()
        self.generator = torch.Generator(device).manual_seed(rank_seed(cfg.seed, self.rank))

    # ------------------------------------------------------------------ config-time
    @classmethod
    def check_config(cls, cfg: RunConfig) -> None:
        """Check every named part of ``cfg`` this task will build; raise ConfigError by key path."""

    @classmethod
    def dataset_extras(cls, cfg: RunConfig) -> dict[str, Any]:
        """Arguments the task supplies to its datasets when their spec leaves them out."""
        return {}

    @classmethod
    def default_metrics(cls) -> dict[str, dict[str, Any]]:
        """Validation metrics of a set that names none."""
        return {}

    # ------------------------------------------------------------------ networks by role
    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {r.key: r.optimizer for r in self.roles.values() if r.optimizer is not None}

    @property
    def schedulers(self) -> dict[str, Any]:
        return {r.key: r.scheduler for r in self.roles.values() if r.scheduler is not None}

    def add_network(
        self,
        name: str,
        spec: PartSpec,
        where: str,
        *,
        extras: Mapping[str, Any] | None = None,
        pretrained: Pretrained | None = None,
        frozen: bool = False,
        optim: PartSpec | None = None,
        optim_where: str = "",
        scheduler: PartSpec | None = None,
        scheduler_where: str = "",
        warmup_iter: int = 0,
        reg_every: int | None = None,
        ema_decay: float = 0.0,
        ema_every: int = 1,
        ema_start: int = 0,
    ) -> Role:
        """Build network ``name`` (e.g. ``net_g``) from ``spec`` and everything that trains it.

        Frozen roles (an identity network, a loss network) and eval-only tasks get the module
        only (an eval-only task also skips ``pretrained``: the weights to evaluate come next).
        A trainable role gets an optimizer over its trainable parameters (with
        StyleGAN2's lazy-regularisation correction when ``reg_every`` is set), a schedule, an
        AMP helper that falls back from fp16 to bf16 for networks that overflow, an EMA copy
        when ``ema_decay`` > 0, and channels_last when asked and the architecture supports it.
        """
        module = ARCHS.build(spec, where, **dict(extras or {})).to(self.device)
        role = Role(name, module, ema_every=ema_every, ema_start=ema_start)
        if pretrained is not None and self.training:  # evaluation loads its own weights afterwards
            self._load_pretrained(role, pretrained)
        self.networks[name] = module
        self.roles[name] = role
        if frozen:
            module.requires_grad_(False).eval()
            self.frozen.add(name)
        if not self.training or frozen:
            return role
        train = self.cfg.train
        assert train is not None
        self.trainable[name] = module
        info = arch_info(module)
        arch = spec["type"]
        role.channels_last = train.channels_last and info.supports_channels_last
        if train.channels_last and not role.channels_last:
            self.notices.append(
                f"{arch} does not support channels_last; training {name} in contiguous layout"
            )
        if role.channels_last:
            module.to(memory_format=torch.channels_last)
        if optim is not None:
            if reg_every is not None:
                optim = lazy_regularization(optim, reg_every)
            params = [p for p in module.parameters() if p.requires_grad]
            role.optimizer = build_optimizer(params, optim, optim_where)
            role.scheduler = build_scheduler(
                role.optimizer, scheduler, scheduler_where, warmup_iter=warmup_iter
            )
        amp = train.amp
        if amp == "fp16" and not info.supports_fp16:
            amp = "bf16"
            self.notices.append(f"{arch} is not fp16-safe (overflows to NaN); using bf16 autocast for {name}")
        role.amp = AmpHelper(amp, self.device, train.grad_clip)
        if ema_decay > 0:
            role.ema = EMA(module, ema_decay)
            self.networks[f"{name}_ema"] = role.ema.module
        return role

    def _load_pretrained(self, role: Role, pre: Pretrained) -> None:
        try:
            state, note = read_state_dict(pre.path, param_key=pre.param_key)
        except WeightsError as exc:  # name the config key: a stage-2 recipe run before stage 1
            raise WeightsError(f"{pre.where}: {exc}") from None
        if note:
            self.notices.append(f"{pre.where}: {note}")
        mode = "strict" if pre.strict else "fit"
        notes = load_into(role.module, state, mode, f"{pre.path} ({pre.where})", prefix=pre.prefix)
        self.notices.extend(f"{pre.where}: {n}" for n in notes)

    def wrap_trainable(self, wrap: Callable[[str, nn.Module], nn.Module]) -> None:
        """Let the trainer wrap trainable networks (DDP, torch.compile) without owning them."""
        self.trainable = {name: wrap(name, module) for name, module in self.trainable.items()}

    # ------------------------------------------------------------------ the steps
    def train_step(self, batches: Sequence[Batch], it: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def end_iteration(self, it: int) -> None:
        """After iteration ``it`` (1-based): every schedule steps, every due EMA copy updates."""
        for role in self.roles.values():
            if role.scheduler is not None:
                role.scheduler.step()
            if role.ema is not None and it > role.ema_start and it % role.ema_every == 0:
                role.ema.update(role.module)

    def learning_rates(self) -> dict[str, float]:
        """The current LR of every optimizer (``lr`` for the first role, ``lr_<key>`` for the others)."""
        out: dict[str, float] = {}
        for i, role in enumerate(r for r in self.roles.values() if r.optimizer is not None):
            assert role.optimizer is not None
            out["lr" if i == 0 else f"lr_{role.key}"] = float(role.optimizer.param_groups[0]["lr"])
        return out

    def attach_train_data(self, dataset: Any) -> None:
        """Called once the trainer has built the training set (e.g. to size a rule on it)."""

    def evaluates(self) -> bool:
        """Whether :meth:`evaluate` has anything to do for this config."""
        return False

    def evaluate(self, ctx: EvalContext) -> dict[str, SetResult]:
        """What validation means for this task: results by set name (baselines included)."""
        return {}

    def sample_images(self) -> dict[str, Tensor]:
        """A few images (NCHW in [0, 1]) by tag for TensorBoard / W&B; none by default."""
        return {}

    def export(self) -> nn.Module:
        """The network a finished run ships (the EMA copy when there is one)."""
        raise NotImplementedError

    def describe(self) -> str:
        """A few words for the log's first line (the architectures by role)."""
        parts = [f"{name} {spec_type(m)}" for name, m in self.networks.items() if not name.endswith("_ema")]
        return ", ".join(parts)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Non-network training state shared by every rank (weights are saved from ``networks``)."""
        state: dict[str, Any] = {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "amp": {r.key: r.amp.state_dict() for r in self.roles.values() if r.amp is not None},
            "ema_steps": {r.key: r.ema.step for r in self.roles.values() if r.ema is not None},
            "phases": self.phases.state_dict(),
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        def saved(kind: str, key: str) -> Any:
            found = state.get(kind, {})
            if key not in found:  # e.g. a role added by a config change on resume
                raise RestorekitError(f"training state has no saved {kind} state for {key!r}; it was saved "
                                      "by a run without that network part")  # fmt: skip
            return found[key]

        for k, o in self.optimizers.items():
            o.load_state_dict(saved("optimizers", k))
        for k, s in self.schedulers.items():
            s.load_state_dict(saved("schedulers", k))
        for role in self.roles.values():
            if role.amp is not None and role.key in state.get("amp", {}):
                role.amp.load_state_dict(state["amp"][role.key])
            if role.ema is not None:
                role.ema.step = int(saved("ema_steps", role.key))
        self.phases.load_state_dict(state.get("phases", {}))

    def rank_state_dict(self) -> dict[str, Any]:
        """State that differs between DDP ranks (the task generator, ...); saved for every rank."""
        return {"generator": self.generator.get_state()}

    def load_rank_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def reseed_rank_state(self, it: int) -> None:
        """Resuming under another process count: per-rank draws restart from (seed, rank, it)."""
        self.generator.manual_seed(rank_seed(self.cfg.seed, self.rank, salt=it))

    def train(self, mode: bool = True) -> None:
        for name, module in self.networks.items():
            module.train(mode and not name.endswith("_ema") and name not in self.frozen)


def spec_type(module: nn.Module) -> str:
    spec = spec_of(module)
    return str(spec["type"]) if spec else type(module).__name__


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

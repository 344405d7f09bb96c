"""Optimizers, learning-rate schedules with warm-up, and gradient clipping.

Optimizers are torch's, built from ``{"type": "Adam", "lr": 2e-4, ...}`` with every keyword checked
by name and type before torch sees it, so ``betaz`` is reported as ``train.optim_g.betaz`` with a
suggestion instead of a ``TypeError`` from deep inside torch.

Schedules follow BasicSR (``MultiStepRestartLR``, ``CosineAnnealingRestartLR``; ``MultiStepLR`` is
the same class under BasicSR's second name) but are written as *pure functions of the iteration*
instead of torch's chained ``get_lr``: the LR of iteration ``i`` is computed from ``i`` and the
base LRs alone, so a resumed run reproduces an uninterrupted one bit for bit, and the warm-up can
be layered on top of any schedule without corrupting it (BasicSR's warm-up writes into
``group['lr']``, which its chained multi-step schedule then keeps after the warm-up ends).

Contract with the trainer
-------------------------
Iterations are counted from 1. Building a scheduler sets the LR of iteration 1. The trainer calls
``scheduler.step()`` exactly once per training iteration, *after* that iteration's optimizer
step(s) (for GAN tasks: once per iteration, whether or not the discriminator stepped), which sets
the LR of the next iteration. ``scheduler.iteration`` is the iteration whose LR is currently in the
optimizer. This is torch's convention and gives BasicSR's numbers: the LR of iteration ``i`` equals
BasicSR's schedule evaluated at ``last_epoch = i - 1`` — a milestone ``m`` first affects iteration
``m + 1``. ``state_dict()`` holds the iteration and base LRs; ``load_state_dict()`` re-applies the
LR, so the order of loading optimizer and scheduler states does not matter.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from restorekit.errors import ConfigError
from restorekit.registry import Registry, check_kwargs, signature_params

# --------------------------------------------------------------------------------------------
# Optimizers

OPTIMIZERS: Registry[Optimizer] = Registry("optimizer")
for _name in ("Adam", "AdamW", "SGD", "RAdam", "RMSprop"):
    OPTIMIZERS.register(_name)(getattr(torch.optim, _name))

# torch annotates hyper-parameters as ``float | Tensor``, which pydantic cannot validate; these are
# the types a config value is coerced to (YAML reads ``1e-3`` as a *string*, so coercion matters).
_OPTIM_ARG_TYPES: dict[str, Any] = {
    "lr": float,
    "betas": tuple[float, float],
    "eps": float,
    "weight_decay": float,
    "momentum": float,
    "dampening": float,
    "alpha": float,
    "nesterov": bool,
    "amsgrad": bool,
    "centered": bool,
    "maximize": bool,
    "capturable": bool,
    "differentiable": bool,
    "decoupled_weight_decay": bool,
    "foreach": bool | None,
    "fused": bool | None,
}


def _annotated(hints: Mapping[str, Any]) -> Any:
    """A stand-in callable carrying ``hints`` as annotations, for ``check_kwargs``'s type checks."""

    def stub() -> None:
        """Never called."""

    stub.__annotations__ = dict(hints)
    return stub


def build_optimizer(params: Iterable[Any], cfg: Mapping[str, Any], where: str) -> Optimizer:
    """Build a torch optimizer from ``{"type": NAME, "lr": ..., **kwargs}``.

    ``params`` is anything torch accepts (tensors or param-group dicts). ``where`` is the config
    key path used in error messages (e.g. ``"train.optim_g"``). ``lr`` is required and must be
    > 0; unknown keys, wrong types and out-of-range values torch rejects are ``ConfigError``.
    """
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ConfigError(f"{where}: expected a mapping with a 'type' key, got {cfg!r}")
    name = cfg["type"]
    ctor = OPTIMIZERS.get(name, where=f"{where}.type")
    what = f"optimizer {name!r}"
    accepted = {k: p for k, p in signature_params(ctor).items() if k != "params"}
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    if "lr" not in kwargs and "lr" in accepted:
        raise ConfigError(f"{where}.lr: required argument of {what} is missing")
    hints = _annotated({k: _OPTIM_ARG_TYPES[k] for k in accepted if k in _OPTIM_ARG_TYPES})
    kwargs = check_kwargs(hints, accepted, kwargs, f"{where}.", what)
    lr = kwargs.get("lr")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"{where}.lr: expected a learning rate > 0, got {cfg['lr']!r}")
    try:
        return ctor(params, **kwargs)
    except ValueError as exc:  # torch's own range checks ("Invalid beta parameter at index 0: 1.5")
        raise ConfigError(f"{where}: {exc}") from None


def lazy_regularization(cfg: Mapping[str, Any], every: int) -> dict[str, Any]:
    """``cfg`` corrected for a regulariser applied every ``every`` steps (StyleGAN2's lazy R1).

    Running R1 every ``k`` steps with weight ``k`` makes a regularised step ``k + 1`` times the
    work of a plain one; StyleGAN2 (and GFPGAN after it) compensate by scaling the optimizer's
    rate and momentum as if there were ``k + 1`` steps: ``c = k / (k + 1)``, ``lr * c`` and
    ``beta ** c`` for each of Adam's betas.
    """
    if every < 1:
        raise ConfigError(f"lazy regularisation interval must be >= 1, got {every}")
    c = every / (every + 1)
    out = dict(cfg)
    if "lr" in out:
        out["lr"] = float(out["lr"]) * c
    if "betas" not in out and out.get("type") in ("Adam", "AdamW"):
        out["betas"] = (0.9, 0.999)  # torch's defaults, which the correction applies to as well
    if "betas" in out:
        out["betas"] = [float(b) ** c for b in out["betas"]]
    return out


def _dummy_params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(1))]


def check_optimizer(cfg: Mapping[str, Any], where: str) -> None:
    """Validate an optimizer config without a network (for ``--dry-run`` / config checks).

    Builds the optimizer on a one-element dummy parameter, so torch's own range checks run too.
    """
    build_optimizer(_dummy_params(), cfg, where)


def clip_grad(params: Iterable[Tensor], max_norm: float | None) -> Tensor:
    """Clip the total gradient norm to ``max_norm`` and return the norm before clipping.

    The norm stays a device tensor (no ``.item()``) so the trainer can report it without a host
    sync. With ``max_norm=None`` nothing is clipped and the norm is still returned.
    """
    if max_norm is None:
        grads = [p.grad for p in params if p.grad is not None]
        return torch.nn.utils.get_total_norm(grads)
    if isinstance(max_norm, bool) or not (isinstance(max_norm, (int, float)) and max_norm > 0):
        raise ConfigError(f"train.grad_clip: expected a number > 0 or null, got {max_norm!r}")
    return torch.nn.utils.clip_grad_norm_(params, float(max_norm))


# --------------------------------------------------------------------------------------------
# Schedulers

SCHEDULERS: Registry[Scheduler] = Registry("scheduler")


class Scheduler:
    """Constant LR with an optional linear warm-up; the base class of every schedule.

    Subclasses override ``_schedule(base_lr, epoch)``, the LR at BasicSR's ``last_epoch = epoch``
    (``= iteration - 1``). The warm-up multiplies the scheduled LR by ``iteration / warmup_iter``
    while ``iteration < warmup_iter`` (BasicSR's factor; BasicSR scales the *initial* LR instead,
    which only differs when the schedule already moves during the warm-up).
    """

    def __init__(self, optimizer: Optimizer, warmup_iter: int = 0) -> None:
        if isinstance(warmup_iter, bool) or not isinstance(warmup_iter, int) or warmup_iter < 0:
            raise ConfigError(f"warmup_iter: expected an integer >= 0, got {warmup_iter!r}")
        self.optimizer = optimizer
        self.warmup_iter = warmup_iter
        # ``initial_lr`` is torch's key for the un-scheduled LR; reusing it means a scheduler built
        # after ``optimizer.load_state_dict`` still finds the base LR, not a decayed one.
        self.base_lrs = [float(g.setdefault("initial_lr", g["lr"])) for g in optimizer.param_groups]
        self.iteration = 1
        self._apply()

    def _schedule(self, base_lr: float, epoch: int) -> float:
        return base_lr

    def lr_at(self, iteration: int) -> list[float]:
        """The LR of every param group at ``iteration`` (1-based): a pure function of it."""
        if iteration < 1:
            raise ValueError(f"iterations are counted from 1, got {iteration}")
        lrs = [self._schedule(base, iteration - 1) for base in self.base_lrs]
        if iteration < self.warmup_iter:
            lrs = [lr / self.warmup_iter * iteration for lr in lrs]
        return lrs

    def get_last_lr(self) -> list[float]:
        """The LRs currently set in the optimizer (those of ``self.iteration``)."""
        return self.lr_at(self.iteration)

    def step(self) -> None:
        """Advance to the next iteration; call once per iteration after the optimizer step."""
        self.iteration += 1
        self._apply()

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.lr_at(self.iteration)):
            if isinstance(group["lr"], Tensor):  # capturable/fused optimizers keep lr on device
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        """Plain ints and floats (safe for ``torch.load(weights_only=True)``)."""
        return {"iteration": self.iteration, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        base_lrs = [float(v) for v in state["base_lrs"]]
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ConfigError(
                f"scheduler state has {len(base_lrs)} parameter group(s) but the optimizer has "
                f"{len(self.optimizer.param_groups)}; was the network or optimizer config changed?"
            )
        self.base_lrs = base_lrs
        for group, base in zip(self.optimizer.param_groups, base_lrs):
            group["initial_lr"] = base
        self.iteration = int(state["iteration"])
        self._apply()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(iteration={self.iteration}, lr={self.get_last_lr()})"


@SCHEDULERS.register("MultiStepRestartLR")
@SCHEDULERS.register("MultiStepLR")  # BasicSR builds both names with this class
class MultiStepRestartLR(Scheduler):
    """Step decay by ``gamma`` at each milestone, restarting to ``base * weight`` at each restart.

    At ``epoch`` (= iteration - 1) the LR is the base LR times the weight of the latest restart
    ``r <= epoch``, times ``gamma`` for every milestone in ``(r, epoch]`` (counted with
    multiplicity; a milestone equal to a restart is superseded by it, as in BasicSR).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: tuple[int, ...],
        gamma: float = 0.1,
        restarts: tuple[int, ...] = (0,),
        restart_weights: tuple[float, ...] = (1.0,),
        warmup_iter: int = 0,
    ) -> None:
        if any(m < 0 for m in milestones):
            raise ConfigError(f"milestones: expected iterations >= 0, got {list(milestones)}")
        if not gamma > 0:
            raise ConfigError(f"gamma: expected a number > 0, got {gamma!r}")
        if len(restarts) != len(restart_weights):
            raise ConfigError(
                f"restart_weights: expected one weight per restart ({len(restarts)}), "
                f"got {len(restart_weights)}"
            )
        if any(r < 0 for r in restarts):
            raise ConfigError(f"restarts: expected iterations >= 0, got {list(restarts)}")
        self.milestones = Counter(milestones)
        self.gamma = gamma
        self._restarts: dict[int, float] = {}
        for r, w in zip(restarts, restart_weights):
            self._restarts.setdefault(r, w)  # BasicSR uses the first weight of a repeated restart
        super().__init__(optimizer, warmup_iter)

    def _schedule(self, base_lr: float, epoch: int) -> float:
        past = [r for r in self._restarts if r <= epoch]
        start = max(past) if past else -1
        lr = base_lr * self._restarts[start] if past else base_lr
        for m in sorted(self.milestones):
            if start < m <= epoch:
                lr = lr * self.gamma ** self.milestones[m]
        return lr


@SCHEDULERS.register("CosineAnnealingRestartLR")
class CosineAnnealingRestartLR(Scheduler):
    """Cosine annealing to ``eta_min`` over consecutive ``periods``, cycle ``k`` scaled by its weight.

    BasicSR's formula at ``epoch`` (= iteration - 1) inside cycle ``k`` that started at
    ``start_k``: ``eta_min + w_k * 0.5 * (base - eta_min) * (1 + cos(pi * (epoch - start_k) / T_k))``;
    an epoch equal to a cycle's end still belongs to that cycle. Past the last cycle the LR holds
    at ``eta_min`` (BasicSR raises there).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        periods: tuple[int, ...],
        restart_weights: tuple[float, ...] = (1.0,),
        eta_min: float = 0.0,
        warmup_iter: int = 0,
    ) -> None:
        if not periods or any(p <= 0 for p in periods):
            raise ConfigError(f"periods: expected a non-empty list of iterations > 0, got {list(periods)}")
        if len(periods) != len(restart_weights):
            raise ConfigError(
                f"restart_weights: expected one weight per period ({len(periods)}), "
                f"got {len(restart_weights)}"
            )
        if not eta_min >= 0:
            raise ConfigError(f"eta_min: expected a number >= 0, got {eta_min!r}")
        self.periods = tuple(periods)
        self.restart_weights = tuple(restart_weights)
        self.eta_min = eta_min
        self.cumulative = [sum(self.periods[: i + 1]) for i in range(len(self.periods))]
        super().__init__(optimizer, warmup_iter)

    def _schedule(self, base_lr: float, epoch: int) -> float:
        epoch = min(epoch, self.cumulative[-1])
        idx = next(i for i, end in enumerate(self.cumulative) if epoch <= end)
        start = self.cumulative[idx - 1] if idx > 0 else 0
        weight, period = self.restart_weights[idx], self.periods[idx]
        cosine = 1 + math.cos(math.pi * ((epoch - start) / period))
        return self.eta_min + weight * 0.5 * (base_lr - self.eta_min) * cosine


@SCHEDULERS.register("CosineAnnealingLR")
class CosineAnnealingLR(CosineAnnealingRestartLR):
    """torch's name: one cosine cycle of ``T_max`` iterations, then ``eta_min`` (no second rise)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, warmup_iter: int = 0) -> None:
        super().__init__(optimizer, (T_max,), (1.0,), eta_min, warmup_iter)


def build_scheduler(
    optimizer: Optimizer, cfg: Mapping[str, Any] | None, where: str, warmup_iter: int = 0
) -> Scheduler:
    """Build the schedule ``cfg`` (``{"type": NAME, **kwargs}``; ``None`` = constant LR).

    ``warmup_iter`` comes from the training section (BasicSR's ``train.warmup_iter``) and is
    applied on top of whichever schedule is chosen; ``where`` prefixes error messages.
    """
    if isinstance(warmup_iter, bool) or not isinstance(warmup_iter, int) or warmup_iter < 0:
        raise ConfigError(f"train.warmup_iter: expected an integer >= 0, got {warmup_iter!r}")
    if cfg is None:
        return Scheduler(optimizer, warmup_iter)
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ConfigError(f"{where}: expected a mapping with a 'type' key or null, got {cfg!r}")
    name = cfg["type"]
    ctor = SCHEDULERS.get(name, where=f"{where}.type")
    accepted = {k: p for k, p in signature_params(ctor).items() if k not in ("optimizer", "warmup_iter")}
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    kwargs = check_kwargs(ctor, accepted, kwargs, f"{where}.", f"scheduler {name!r}")
    try:
        return ctor(optimizer, **kwargs, warmup_iter=warmup_iter)
    except ConfigError as exc:  # constructors name the argument; add the config path in front
        raise ConfigError(f"{where}.{exc}") from None


def check_scheduler(cfg: Mapping[str, Any] | None, where: str, warmup_iter: int = 0) -> None:
    """Validate a scheduler config without the real optimizer (builds it on a dummy one)."""
    build_scheduler(torch.optim.SGD(_dummy_params(), lr=1.0), cfg, where, warmup_iter)

"""Optimizer building, BasicSR learning-rate schedules with warm-up, exact resume, clipping."""

from __future__ import annotations

import io
import math

import pytest
import torch

from restorekit.errors import ConfigError
from restorekit.optim.schedule import (
    SCHEDULERS,
    CosineAnnealingRestartLR,
    MultiStepRestartLR,
    Scheduler,
    build_optimizer,
    build_scheduler,
    check_optimizer,
    check_scheduler,
    clip_grad,
)

WHERE = "train.optim_g"


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]


def _opt(lr: float = 1.0, groups: int = 1) -> torch.optim.Optimizer:
    if groups == 1:
        return torch.optim.SGD(_params(), lr=lr)
    return torch.optim.SGD([{"params": _params(), "lr": lr * (k + 1)} for k in range(groups)], lr=lr)


def _run(sched: Scheduler, n: int) -> list[list[float]]:
    """LRs the optimizer sees at iterations 1..n under the documented trainer contract."""
    out = []
    for _ in range(n):
        out.append([g["lr"] for g in sched.optimizer.param_groups])
        sched.optimizer.step()
        sched.step()
    return out


# ---------------------------------------------------------------------------- optimizers


def test_build_optimizer_coerces_yaml_values() -> None:
    # PyYAML reads ``1e-3`` as a string and lists for tuples; both must work.
    opt = build_optimizer(_params(), {"type": "Adam", "lr": "1e-3", "betas": [0.9, 0.99]}, WHERE)
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == 1e-3 and tuple(opt.param_groups[0]["betas"]) == (0.9, 0.99)
    sgd = build_optimizer(_params(), {"type": "SGD", "lr": 0.1, "momentum": 0.9, "nesterov": True}, WHERE)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["nesterov"] is True
    adamw = build_optimizer(_params(), {"type": "AdamW", "lr": 2e-4, "weight_decay": 0}, WHERE)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["weight_decay"] == 0.0


def test_unknown_optimizer_argument_named_with_suggestion() -> None:
    with pytest.raises(ConfigError) as err:
        build_optimizer(_params(), {"type": "Adam", "lr": 1e-3, "betaz": [0.9, 0.99]}, WHERE)
    msg = str(err.value)
    assert msg.startswith("train.optim_g.betaz: unknown argument for optimizer 'Adam'")
    assert "did you mean 'betas'?" in msg and "\n" not in msg


@pytest.mark.parametrize("lr", [-1e-4, 0, "nan"])
def test_non_positive_lr_is_named(lr) -> None:
    with pytest.raises(ConfigError, match=rf"^train\.optim_g\.lr: expected a learning rate > 0, got {lr!r}"):
        build_optimizer(_params(), {"type": "Adam", "lr": lr}, WHERE)


def test_missing_lr_wrong_type_and_torch_range_checks() -> None:
    with pytest.raises(ConfigError, match=r"^train\.optim_g\.lr: required argument"):
        build_optimizer(_params(), {"type": "SGD"}, WHERE)
    with pytest.raises(ConfigError, match=r"^train\.optim_g\.betas: expected .*'fast'"):
        build_optimizer(_params(), {"type": "Adam", "lr": 1e-3, "betas": "fast"}, WHERE)
    with pytest.raises(ConfigError, match=r"^train\.optim_g: Invalid beta parameter"):
        build_optimizer(_params(), {"type": "Adam", "lr": 1e-3, "betas": [1.5, 0.9]}, WHERE)


def test_check_functions_validate_without_a_network() -> None:
    check_optimizer({"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99]}, WHERE)
    check_scheduler({"type": "MultiStepRestartLR", "milestones": [10]}, "train.scheduler", warmup_iter=5)
    check_scheduler(None, "train.scheduler")
    with pytest.raises(ConfigError, match=r"^train\.optim_g: Invalid beta"):
        check_optimizer({"type": "Adam", "lr": 1e-4, "betas": [0.9, 1.2]}, WHERE)
    with pytest.raises(ConfigError, match=r"^train\.scheduler\.gamma: expected a number > 0"):
        check_scheduler({"type": "MultiStepLR", "milestones": [3], "gamma": 0}, "train.scheduler")


def test_unknown_optimizer_type_lists_known() -> None:
    with pytest.raises(ConfigError) as err:
        build_optimizer(_params(), {"type": "Adamm", "lr": 1e-3}, WHERE)
    msg = str(err.value)
    assert msg.startswith("train.optim_g.type: unknown optimizer 'Adamm' (did you mean 'Adam'?)")
    assert "known: Adam, AdamW" in msg and "SGD" in msg


# ---------------------------------------------------------------------------- schedules


def _basicsr_multistep_reference(
    base: float, milestones: list[int], gamma: float, restarts: list[int], weights: list[float], n: int
) -> list[float]:
    """Independent re-statement of BasicSR's chained rule and loop (scheduler stepped before
    the update from iteration 2 on): a restart resets to initial * weight, a milestone multiplies
    the previous LR by gamma ** count."""
    lrs, lr = [], base
    for it in range(1, n + 1):
        epoch = it - 1
        if epoch in restarts:
            lr = base * weights[restarts.index(epoch)]
        elif epoch in milestones:
            lr = lr * gamma ** milestones.count(epoch)
        lrs.append(lr)
    return lrs


def test_multistep_by_hand() -> None:
    sched = MultiStepRestartLR(_opt(1.0), milestones=(2, 4), gamma=0.5)
    # A milestone m first affects iteration m + 1 (BasicSR's last_epoch = iteration - 1).
    assert [lr[0] for lr in _run(sched, 6)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_multistep_restarts_by_hand_and_against_basicsr_rule() -> None:
    cfg = {"milestones": (2, 5, 5), "gamma": 0.1, "restarts": (0, 4), "restart_weights": (1.0, 0.5)}
    lrs = [lr[0] for lr in _run(MultiStepRestartLR(_opt(2e-4), **cfg), 9)]
    by_hand = [2e-4, 2e-4, 2e-5, 2e-5, 1e-4, 1e-6, 1e-6, 1e-6, 1e-6]  # double milestone at 5: x0.01
    assert lrs == pytest.approx(by_hand, rel=1e-12)
    ref = _basicsr_multistep_reference(2e-4, [2, 5, 5], 0.1, [0, 4], [1.0, 0.5], 9)
    assert lrs == ref  # same arithmetic order: bit-for-bit


def test_multistep_matches_torch_multisteplr() -> None:
    opt = _opt(1e-3)
    ref = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3, 7], gamma=0.5)
    expected = []
    for _ in range(10):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    ours = build_scheduler(_opt(1e-3), {"type": "MultiStepLR", "milestones": [3, 7], "gamma": 0.5}, "s")
    assert [lr[0] for lr in _run(ours, 10)] == pytest.approx(expected, rel=1e-15)


def test_cosine_restart_by_hand() -> None:
    sched = CosineAnnealingRestartLR(_opt(1.0), periods=(4, 4), restart_weights=(1.0, 0.5), eta_min=0.1)

    def cos_lr(w: float, pos: int, period: int) -> float:
        return 0.1 + w * 0.5 * 0.9 * (1 + math.cos(math.pi * pos / period))

    expected = [cos_lr(1.0, e, 4) for e in range(5)]  # epochs 0..4 (4 = end of cycle 1 -> eta_min)
    expected += [cos_lr(0.5, e - 4, 4) for e in range(5, 9)]  # epochs 5..8 in cycle 2
    expected += [0.1] * 3  # past the last cycle the LR holds at eta_min
    lrs = [lr[0] for lr in _run(sched, 12)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert lrs[0] == 1.0 and lrs[2] == pytest.approx(0.55) and lrs[4] == pytest.approx(0.1)


def test_cosine_matches_torch_within_cycle() -> None:
    opt = _opt(1e-3)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=1e-5)
    expected = []
    for _ in range(11):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    cfgs = [
        {"type": "CosineAnnealingLR", "T_max": 10, "eta_min": 1e-5},
        {"type": "CosineAnnealingRestartLR", "periods": [10], "eta_min": 1e-5},
    ]
    for cfg in cfgs:
        ours = build_scheduler(_opt(1e-3), cfg, "train.scheduler")
        assert [lr[0] for lr in _run(ours, 11)] == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_warmup_constant_and_on_top_of_a_schedule() -> None:
    const = build_scheduler(_opt(1e-3), None, "train.scheduler", warmup_iter=4)
    assert [lr[0] for lr in _run(const, 6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    cos_cfg = {"type": "CosineAnnealingRestartLR", "periods": [20]}
    plain = build_scheduler(_opt(1.0), cos_cfg, "s")
    warm = build_scheduler(_opt(1.0), cos_cfg, "s", warmup_iter=5)
    for it in range(1, 12):
        factor = min(1.0, it / 5)
        assert warm.lr_at(it)[0] == pytest.approx(plain.lr_at(it)[0] * factor, rel=1e-12)
    # A multi-step schedule continues normally after the warm-up (BasicSR's chained one would
    # keep the last warm-up value until the next milestone).
    ms = build_scheduler(_opt(1.0), {"type": "MultiStepRestartLR", "milestones": [6]}, "s", warmup_iter=3)
    assert [lr[0] for lr in _run(ms, 8)] == pytest.approx([1 / 3, 2 / 3, 1, 1, 1, 1, 0.1, 0.1])


def test_param_groups_keep_their_own_base_lr() -> None:
    sched = MultiStepRestartLR(_opt(1.0, groups=2), milestones=(1,), gamma=0.5)
    assert _run(sched, 3) == [[1.0, 2.0], [0.5, 1.0], [0.5, 1.0]]


CONFIGS: list[tuple[dict | None, int]] = [
    (None, 5),
    (
        {
            "type": "MultiStepRestartLR",
            "milestones": [4, 9, 15],
            "gamma": 0.3,
            "restarts": [0, 12],
            "restart_weights": [1, 0.7],
        },
        3,
    ),
    (
        {
            "type": "CosineAnnealingRestartLR",
            "periods": [7, 9, 5],
            "restart_weights": [1, 0.6, 0.3],
            "eta_min": 1e-7,
        },
        4,
    ),
    ({"type": "CosineAnnealingLR", "T_max": 13, "eta_min": 3e-6}, 0),
]


@pytest.mark.parametrize(("cfg", "warmup"), CONFIGS)
@pytest.mark.parametrize("cut", [1, 6, 13])
def test_state_round_trip_is_bitwise_exact(cfg, warmup, cut) -> None:
    def fresh() -> tuple[torch.optim.Optimizer, Scheduler]:
        opt = build_optimizer(_params(), {"type": "Adam", "lr": 2.3e-4}, WHERE)
        return opt, build_scheduler(opt, cfg, "train.scheduler", warmup_iter=warmup)

    n = 25
    _, straight = fresh()
    uninterrupted = _run(straight, n)

    _, first = fresh()
    before = _run(first, cut)
    buf = io.BytesIO()
    torch.save({"opt": first.optimizer.state_dict(), "sched": first.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # the checkpoint loader's safe mode

    opt2, resumed = fresh()
    resumed.load_state_dict(state["sched"])
    opt2.load_state_dict(state["opt"])  # order does not matter: the LR is a function of the iteration
    after = _run(resumed, n - cut)
    assert before + after == uninterrupted


def test_scheduler_built_after_optimizer_resume_keeps_base_lr() -> None:
    opt = torch.optim.SGD(_params(), lr=1.0)
    sched = MultiStepRestartLR(opt, milestones=(1,), gamma=0.1)
    _run(sched, 3)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    opt2 = torch.optim.SGD(_params(), lr=1.0)
    opt2.load_state_dict(opt.state_dict())  # carries 'initial_lr' = 1.0 next to the decayed lr
    sched2 = MultiStepRestartLR(opt2, milestones=(1,), gamma=0.1)
    assert sched2.base_lrs == [1.0]


def test_scheduler_config_errors() -> None:
    opt = _opt()
    with pytest.raises(ConfigError, match=r"^train\.scheduler\.type: unknown scheduler 'Cosine'.*known: .*"):
        build_scheduler(opt, {"type": "Cosine"}, "train.scheduler")
    with pytest.raises(
        ConfigError, match=r"^train\.scheduler\.milestone: unknown .*did you mean 'milestones'"
    ):
        build_scheduler(opt, {"type": "MultiStepLR", "milestone": [3]}, "train.scheduler")
    with pytest.raises(ConfigError, match=r"^train\.scheduler\.periods: required argument"):
        build_scheduler(opt, {"type": "CosineAnnealingRestartLR"}, "train.scheduler")
    with pytest.raises(ConfigError, match=r"^train\.scheduler\.restart_weights: expected one weight per"):
        build_scheduler(
            opt, {"type": "MultiStepRestartLR", "milestones": [3], "restarts": [0, 5]}, "train.scheduler"
        )
    with pytest.raises(ConfigError, match=r"^train\.scheduler\.periods: expected a non-empty list"):
        build_scheduler(opt, {"type": "CosineAnnealingRestartLR", "periods": [0]}, "train.scheduler")
    with pytest.raises(ConfigError, match=r"^train\.scheduler\.milestones: expected tuple"):
        build_scheduler(opt, {"type": "MultiStepLR", "milestones": "soon"}, "train.scheduler")
    with pytest.raises(ConfigError, match=r"^train\.warmup_iter"):
        build_scheduler(opt, None, "train.scheduler", warmup_iter=-2)
    assert {"MultiStepLR", "MultiStepRestartLR", "CosineAnnealingRestartLR", "CosineAnnealingLR"} <= set(
        SCHEDULERS.names()
    )


# ---------------------------------------------------------------------------- clipping


def _with_grads() -> list[torch.nn.Parameter]:
    ps = _params()
    ps[0].grad = torch.tensor([3.0, 0.0, 0.0])
    ps[1].grad = torch.tensor([[0.0, 4.0], [0.0, 0.0]])
    return ps


@pytest.mark.parametrize(("max_norm", "scale"), [(None, 1.0), (10.0, 1.0), (1.0, 1 / 5)])  # total norm is 5
def test_clip_grad(max_norm: float | None, scale: float) -> None:
    ps = _with_grads()
    norm = clip_grad(ps, max_norm)
    assert isinstance(norm, torch.Tensor) and norm.item() == pytest.approx(5.0)
    assert ps[0].grad[0].item() == pytest.approx(3.0 * scale, rel=1e-5)
    assert ps[1].grad[0, 1].item() == pytest.approx(4.0 * scale, rel=1e-5)


@pytest.mark.parametrize("bad", [0, -1.0, True])
def test_clip_grad_rejects_bad_max_norm(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^train\.grad_clip: expected a number > 0"):
        clip_grad(_with_grads(), bad)

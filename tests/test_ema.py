"""EMA: closed-form averages of parameters and float buffers, copied integer buffers, resume."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from restorekit.errors import ConfigError, WeightsError
from restorekit.optim.ema import EMA, unwrap


class Tiny(nn.Module):
    """A conv + BatchNorm net with an extra integer buffer (like an index table)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.register_buffer("table", torch.arange(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def _net(seed: int = 0) -> Tiny:
    torch.manual_seed(seed)
    return Tiny().double()


def test_parameters_follow_closed_form_average() -> None:
    model, d = _net(), 0.9
    ema = EMA(model, d)
    p0 = model.conv.weight.detach().clone()
    targets = [torch.randn_like(p0, generator=torch.Generator().manual_seed(k)) for k in range(5)]
    for t in targets:
        with torch.no_grad():
            model.conv.weight.copy_(t)
        ema.update(model)
    k = len(targets)
    expected = d**k * p0 + sum((1 - d) * d ** (k - j) * t for j, t in enumerate(targets, start=1))
    assert torch.allclose(ema.module.conv.weight, expected, rtol=1e-12, atol=1e-14)
    assert ema.step == k


def test_warmup_ramps_the_decay() -> None:
    model, d, w = _net(), 0.99, 4
    ema = EMA(model, d, warmup=w)
    value = model.conv.bias[0].item()
    expected = value
    for t in range(1, 7):
        new = float(t)
        with torch.no_grad():
            model.conv.bias.fill_(new)
        ema.update(model)
        dt = d * min(1.0, t / w)
        expected = dt * expected + (1 - dt) * new
        assert ema.module.conv.bias[0].item() == pytest.approx(expected, rel=1e-12)
    assert [ema.current_decay(t) for t in (1, 2, 4, 9)] == pytest.approx([0.2475, 0.495, 0.99, 0.99])


def test_batchnorm_buffers_averaged_and_counters_copied() -> None:
    model, d = _net(), 0.5
    ema = EMA(model, d)
    m0 = model.bn.running_mean.clone()
    model.train()
    g = torch.Generator().manual_seed(3)
    model(torch.randn(4, 2, 5, 5, generator=g, dtype=torch.float64))
    with torch.no_grad():
        model.table.add_(10)
    m1 = model.bn.running_mean.clone()
    assert not torch.equal(m0, m1)
    ema.update(model)
    assert torch.allclose(ema.module.bn.running_mean, d * m0 + (1 - d) * m1, rtol=1e-12)
    assert ema.module.bn.num_batches_tracked.item() == model.bn.num_batches_tracked.item() == 1
    assert torch.equal(ema.module.table, model.table)
    assert ema.module.bn.num_batches_tracked.dtype == torch.long
    # The EMA copy is a usable eval-mode network with its own statistics.
    out = ema.module(torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64))
    assert out.shape == (1, 3, 5, 5) and torch.isfinite(out).all()


def test_copy_is_frozen_independent_and_in_eval_mode() -> None:
    model = _net()
    model.train()
    ema = EMA(model, 0.999)
    assert not ema.module.training and model.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        model.conv.weight.add_(1.0)
    assert not torch.equal(ema.module.conv.weight, model.conv.weight)
    ema.update(model)
    assert not ema.module.training  # update never flips the mode


def test_zero_decay_copies_and_reset() -> None:
    model = _net()
    ema = EMA(model, 0.0)
    with torch.no_grad():
        model.conv.weight.mul_(3)
    ema.update(model)
    assert torch.equal(ema.module.conv.weight, model.conv.weight)
    ema2 = EMA(_net(1), 0.9)
    ema2.update(model)
    ema2.reset(model)
    assert ema2.step == 0
    for a, b in zip(ema2.module.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_update_from_a_trained_model_stays_out_of_autograd() -> None:
    model = _net()
    ema = EMA(model, 0.9)
    model(torch.randn(2, 2, 4, 4, dtype=torch.float64)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    ema.update(model)
    assert all(not p.requires_grad and p.grad_fn is None for p in ema.module.parameters())
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


def test_state_round_trip_then_identical_updates() -> None:
    model = _net()
    ema = EMA(model, 0.8, warmup=3)
    for k in range(2):
        with torch.no_grad():
            model.conv.weight.add_(k + 1.0)
        ema.update(model)
    buf = io.BytesIO()
    torch.save(ema.state_dict(), buf)
    buf.seek(0)
    restored = EMA(_net(5), 0.8, warmup=3)
    restored.load_state_dict(torch.load(buf, weights_only=True))
    assert restored.step == 2
    for _ in range(3):  # the warm-up is still running: the step count must have come back
        with torch.no_grad():
            model.conv.weight.mul_(0.5)
        ema.update(model)
        restored.update(model)
    for (name, a), b in zip(ema.module.state_dict().items(), restored.module.state_dict().values()):
        assert torch.equal(a, b), name


def test_load_rejects_a_state_of_another_network() -> None:
    ema = EMA(_net(), 0.9)
    other = EMA(nn.Sequential(nn.Linear(2, 2)).double(), 0.9)
    with pytest.raises(WeightsError, match=r"EMA state does not fit the network: .*conv\.weight"):
        ema.load_state_dict(other.state_dict())
    with pytest.raises(WeightsError, match="'module' and 'step'"):
        ema.load_state_dict({"step": 3})


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5, True, "0.9"])
def test_decay_validation_names_the_key(decay) -> None:
    with pytest.raises(ConfigError, match=r"^train\.ema_decay: expected a number with 0 <= decay < 1"):
        EMA(_net(), decay)


def test_bad_warmup_rejected() -> None:
    with pytest.raises(ConfigError, match="warmup"):
        EMA(_net(), 0.9, warmup=0)


def test_model_mismatch_is_an_error() -> None:
    ema = EMA(_net(), 0.9)
    with pytest.raises(ValueError, match="EMA holds"):
        ema.update(nn.Linear(2, 2))


def test_unwraps_ddp_and_dataparallel(tmp_path) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = _net()
        ddp = nn.parallel.DistributedDataParallel(model)
        ema = EMA(ddp, 0.5)
        assert isinstance(ema.module, Tiny)  # built from the bare network: no 'module.' prefix
        assert "conv.weight" in ema.state_dict()["module"]
        before = ema.module.conv.weight.clone()
        with torch.no_grad():
            model.conv.weight.add_(2.0)
        ema.update(ddp)
        assert torch.allclose(ema.module.conv.weight, before + 1.0, rtol=1e-12)
    finally:
        dist.destroy_process_group()
    dp = nn.DataParallel(model)
    assert unwrap(dp) is model
    ema.update(dp)
    assert torch.allclose(ema.module.conv.weight, before + 1.5, rtol=1e-12)

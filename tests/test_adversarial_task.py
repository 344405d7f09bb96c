"""The adversarial task: alternating G/D updates with BasicSR's schedule, D warm-up, USM targets,
the Real-ESRGAN degradation stage, config checks, and exact resume of a GAN run after SIGKILL.
"""

from __future__ import annotations

import copy
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import restorekit.archs
import restorekit.losses
import restorekit.tasks  # noqa: F401  (registration)
from conftest import tiny_config, write_config
from restorekit.cli import main
from restorekit.config import Config, validate_config
from restorekit.data.degradations.filters import USMSharp
from restorekit.errors import ConfigError, WeightsError
from restorekit.registry import TASKS
from restorekit.tasks.adversarial import AdversarialTask
from test_train_e2e import run_cli

GAN = {
    "task": "adversarial",
    "network_d": {"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 4},
    "train.optim_d": {"type": "Adam", "lr": 1e-3},
    "train.losses": {"pixel": {"type": "L1Loss"}, "gan": {"type": "GANLoss", "gan_type": "vanilla"}},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small nets run faster on one thread


def make_cfg(tmp_path: Path, **changes: Any) -> Config:
    return validate_config(tiny_config(tmp_path, **{**GAN, **changes}))


def make_task(cfg: Config) -> AdversarialTask:
    AdversarialTask.check_config(cfg)
    torch.manual_seed(0)
    task = TASKS.get("adversarial")(cfg, torch.device("cpu"))
    task.train(True)
    return task


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"lq": torch.rand(2, 3, 8, 8, generator=g), "gt": torch.rand(2, 3, 16, 16, generator=g)}


def params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def changed(before: list[torch.Tensor], net: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_a_gan_step_changes_both_networks(tmp_path: Path) -> None:
    task = make_task(make_cfg(tmp_path))
    g, d = params(task.networks["net_g"]), params(task.networks["net_d"])
    scalars = task.train_step([batch()], 1)
    assert changed(g, task.networks["net_g"]) and changed(d, task.networks["net_d"])
    assert {"l_g_pixel", "l_g_gan", "l_d_real", "l_d_fake", "out_d_real", "out_d_fake"} <= set(scalars)
    # one LR per optimizer, read from the optimizers (not averaged over a logging window)
    assert task.learning_rates() == {"lr": 1e-3, "lr_d": 1e-3}
    assert all(torch.isfinite(v) for v in scalars.values())
    # an untrained D outputs about 0, so its BCE losses start near log 2
    assert abs(scalars["l_d_real"].item() - 0.6931) < 0.1


def test_d_warm_up_leaves_g_unchanged_and_net_d_iters_spaces_g_updates(tmp_path: Path) -> None:
    task = make_task(make_cfg(tmp_path, **{"train.net_d_init_iters": 2, "train.net_d_iters": 2}))
    net_g, net_d = task.networks["net_g"], task.networks["net_d"]
    ema = task.ema
    assert ema is not None
    updated, ema_equals_g = [], []
    for it in range(1, 7):
        g, d = params(net_g), params(net_d)
        scalars = task.train_step([batch(it)], it)
        task.end_iteration(it)  # what the trainer does after each step: schedules and EMA
        assert changed(d, net_d), it  # D trains every iteration
        updated.append(changed(g, net_g))
        assert ("l_g_gan" in scalars) == updated[-1]
        ema_equals_g.append(
            all(torch.equal(a, b) for a, b in zip(ema.module.parameters(), net_g.parameters()))
        )
    # BasicSR: G steps when it % net_d_iters == 0 and it > net_d_init_iters
    assert updated == [False, False, False, True, False, True]
    assert task.phases["g"].runs == 2
    # the EMA copy follows a frozen G exactly while it is frozen (an average of equal weights),
    # and lags behind once G moves
    assert ema_equals_g == [True, True, True, False, False, False]


def test_ragan_step_and_vgg_discriminator(tmp_path: Path) -> None:
    changes = {
        "network_d": {"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 2},
        "data.train.dataset.gt_size": 128,
        "train.losses": {
            "pixel": {"type": "L1Loss", "loss_weight": 0.01},
            "gan": {"type": "GANLoss", "gan_type": "ragan"},
        },
    }
    task = make_task(make_cfg(tmp_path, **changes))
    g, d = params(task.networks["net_g"]), params(task.networks["net_d"])
    b = {"lq": torch.rand(2, 3, 64, 64), "gt": torch.rand(2, 3, 128, 128)}
    scalars = task.train_step([b], 1)
    assert changed(g, task.networks["net_g"]) and changed(d, task.networks["net_d"])
    assert all(torch.isfinite(v) for v in scalars.values())


def test_usm_targets(tmp_path: Path) -> None:
    task = make_task(make_cfg(tmp_path, **{"train.usm_gt": ["pixel"]}))
    b = batch()
    with torch.no_grad():
        expected = (task.networks["net_g"](b["lq"]) - USMSharp()(b["gt"])).abs().mean()
    scalars = task.train_step([b], 1)
    torch.testing.assert_close(scalars["l_g_pixel"], expected, rtol=1e-5, atol=1e-6)


def test_gradient_accumulation_runs_both_networks(tmp_path: Path) -> None:
    task = make_task(make_cfg(tmp_path, **{"train.accum_iter": 2}))
    d = params(task.networks["net_d"])
    scalars = task.train_step([batch(1), batch(2)], 1)
    assert changed(d, task.networks["net_d"]) and torch.isfinite(scalars["l_d_fake"])


def test_pretrained_d_loads_a_basicsr_checkpoint(tmp_path: Path) -> None:
    donor = make_task(make_cfg(tmp_path)).networks["net_d"]
    with torch.no_grad():
        for t in donor.state_dict().values():
            t.add_(1.0)
    torch.save({"params": donor.state_dict()}, tmp_path / "net_d_5000.pth")  # BasicSR's layout
    task = make_task(make_cfg(tmp_path, pretrained_d=str(tmp_path / "net_d_5000.pth")))
    for k, v in donor.state_dict().items():
        assert torch.equal(task.networks["net_d"].state_dict()[k], v), k
    torch.save({"params": {"conv0.weight": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=r"bad\.pth \(pretrained_d\): does not fit UNetDiscriminatorSN"):
        make_task(make_cfg(tmp_path, pretrained_d=str(tmp_path / "bad.pth")))


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_and_channels_last_steps(tmp_path: Path, amp: str) -> None:
    task = make_task(make_cfg(tmp_path, **{"train.amp": amp, "train.channels_last": True}))
    g, d = params(task.networks["net_g"]), params(task.networks["net_d"])
    scalars = task.train_step([batch()], 1)
    assert changed(g, task.networks["net_g"]) and changed(d, task.networks["net_d"])
    assert all(torch.isfinite(v) for v in scalars.values())
    assert task.networks["net_d"].conv0.weight.is_contiguous(memory_format=torch.channels_last)
    state = task.state_dict()  # one loss scaler per optimizer, both saved
    assert set(state["amp"]) == {"g", "d"}
    assert set(state["amp"]["g"]) == set(state["amp"]["d"]) == {"scaler", "skipped_steps"}


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"network_d": None}, "network_d: required by the GAN loss train.losses.gan"),
        ({"train.losses": {"pixel": {"type": "L1Loss"}}}, "no loss is a GANLoss"),
        ({"train.optim_d": None}, "train.optim_d: required key is missing"),
        ({"train.usm_gt": ["pixel", "percep"]}, "train.usm_gt.1: 'percep' is not a loss"),
        (
            {"network_d": {"type": "VGGStyleDiscriminator", "num_feat": 2}},
            "data.train.dataset.gt_size: VGGStyleDiscriminator with input_size 128 needs 128-pixel",
        ),
        ({"data.train.dataset.gt_size": 20}, "divisible by 8"),
        ({"train.optim_d": {"type": "Adam", "lr": -1}}, "train.optim_d.lr"),
        ({"network_d": {"type": "UNetDiscriminatorSN", "num_fet": 4}}, "network_d.num_fet"),
        (
            {
                "train.losses": {
                    "a": {"type": "GANLoss", "gan_type": "hinge"},
                    "b": {"type": "GANLoss", "gan_type": "wgan"},
                }
            },
            "one GANLoss at most",
        ),
        ({"degradation": {"noise_range": [1, 30]}}, "needs RealESRGANDataset batches"),
        ({"degradation": {"jpeg_range": [0, 95]}}, "degradation.jpeg_range"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, changes: dict[str, Any], needle: str) -> None:
    cfg = make_cfg(tmp_path, **changes)
    with pytest.raises(ConfigError) as info:
        AdversarialTask.check_config(cfg)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_without_network_d_it_trains_g_only(tmp_path: Path) -> None:
    cfg = make_cfg(
        tmp_path, **{"network_d": None, "train.optim_d": None, "train.losses": {"l1": {"type": "L1Loss"}}}
    )
    task = make_task(cfg)
    assert "net_d" not in task.networks
    g = params(task.networks["net_g"])
    assert set(task.train_step([batch()], 1)) == {"l_g_l1"} and changed(g, task.networks["net_g"])
    assert set(task.learning_rates()) == {"lr"}


# ---------------------------------------------------------------------------- degradation stage


def degradation_batch(seed: int) -> dict[str, torch.Tensor]:
    """What RealESRGANDataset yields: GT plus per-image blur kernels (a delta and a box here)."""
    g = torch.Generator().manual_seed(seed)
    delta = torch.zeros(2, 21, 21)
    delta[:, 10, 10] = 1
    box = torch.zeros(2, 21, 21)
    box[:, 9:12, 9:12] = 1 / 9
    return {
        "gt": torch.rand(2, 3, 32, 32, generator=g),
        "kernel1": box,
        "kernel2": delta,
        "sinc_kernel": delta,
    }


def test_degradation_stage_and_its_exact_resume(tmp_path: Path) -> None:
    changes = {
        "data.train.dataset": {"type": "RealESRGANDataset", "dataroot_gt": "unused"},
        "degradation": {"gt_size": 16, "queue_size": 4},
        "train.usm_gt": ["pixel"],
    }
    cfg = make_cfg(tmp_path, **changes)

    def run(task: AdversarialTask, its: range) -> list[float]:
        return [task.train_step([degradation_batch(it)], it)["l_g_pixel"].item() for it in its]

    a = make_task(cfg)
    assert a.pool.size == 4
    run(a, range(1, 4))  # fills the pool (2 pairs per step) and starts swapping pairs
    torch.manual_seed(123)
    saved_nets = {k: {n: t.clone() for n, t in m.state_dict().items()} for k, m in a.networks.items()}
    saved = copy.deepcopy(a.state_dict())  # optimizer states are live tensors
    saved_rank = copy.deepcopy(a.rank_state_dict())  # this rank's generator and pair pool
    assert saved_rank["pool"]["ptr"] == 4
    rng = torch.get_rng_state()
    expected = run(a, range(4, 7))
    b = make_task(cfg)
    for k, m in b.networks.items():
        m.load_state_dict(saved_nets[k])
    b.load_state_dict(saved)
    b.load_rank_state_dict(saved_rank)
    torch.set_rng_state(rng)
    assert run(b, range(4, 7)) == expected
    for k in a.networks:
        for (n, x), y in zip(a.networks[k].state_dict().items(), b.networks[k].state_dict().values()):
            assert torch.equal(x, y), f"{k}.{n}"


# ---------------------------------------------------------------------------- through the CLI


@pytest.mark.slow
def test_exact_resume_of_a_gan_run_after_kill(tmp_path: Path) -> None:
    """8 iterations straight == 4, SIGKILL after the checkpoint, --resume auto, 4 more: bitwise."""
    cfg = tiny_config(
        tmp_path,
        **{
            **GAN,
            "train.total_iter": 8,
            "train.net_d_init_iters": 1,
            "train.ema_decay": 0.5,
            "data.val": {},
            "val.freq": None,
            "logger.print_freq": 2,
            "logger.save_checkpoint_freq": 4,
        },
    )
    straight = write_config(tmp_path / "a.yml", {**cfg, "name": "straight"})
    killed = write_config(tmp_path / "b.yml", {**cfg, "name": "killed"})
    # only the killed run needs its own process; one thread everywhere, as the fixture sets here
    assert main(["train", "-c", str(straight)]) == 0
    env = {"OMP_NUM_THREADS": "1", "RESTOREKIT_TEST_KILL_AFTER_SAVE": "4"}
    assert run_cli("train", "-c", str(killed), env=env).returncode == -signal.SIGKILL
    assert main(["train", "-c", str(killed), "--resume", "auto"]) == 0
    root = Path(cfg["experiments_root"])
    for name in ["net_g", "net_g_ema", "net_d"]:
        a = load_file(str(root / "straight" / "checkpoints" / "iter_8" / f"{name}.safetensors"))
        b = load_file(str(root / "killed" / "checkpoints" / "iter_8" / f"{name}.safetensors"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert "net_d.weight_u" not in a and "conv1.weight_u" in a  # spectral-norm state is saved

    def losses(run: str) -> list[dict[str, float]]:
        rows = [json.loads(x) for x in (root / run / "stats.jsonl").read_text().splitlines()]
        return [
            {k: v for k, v in r.items() if k.startswith(("l_", "out_"))} for r in rows if r["kind"] == "train"
        ]

    assert losses("straight")[2:] == losses("killed")[-2:]
    assert "l_d_real" in losses("straight")[0] and "l_g_gan" in losses("straight")[-1]


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_with_double_batch(tmp_path: Path) -> None:
    """G and D under DDP (gloo, CPU): D's bare module in the G step, two D backward passes."""
    from test_ddp import torchrun

    changes = {**GAN, "train.total_iter": 4, "train.net_d_init_iters": 1, "data.val": {}, "val.freq": None}
    changes |= {"logger.save_checkpoint_freq": 4, "train.ema_decay": 0.0}
    two = write_config(tmp_path / "two.yml", {**tiny_config(tmp_path, **changes), "name": "two"})
    one_cfg = tiny_config(tmp_path, **changes, **{"data.train.batch_size": 4})
    one = write_config(tmp_path / "one.yml", {**one_cfg, "name": "one"})
    result = torchrun("train", "-c", str(two))
    assert result.returncode == 0, result.stderr[-3000:]
    assert main(["train", "-c", str(one)]) == 0
    root = Path(one_cfg["experiments_root"])
    for name in ["net_g", "net_d"]:
        a = load_file(str(root / "two" / "checkpoints" / "iter_4" / f"{name}.safetensors"))
        b = load_file(str(root / "one" / "checkpoints" / "iter_4" / f"{name}.safetensors"))
        assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5, name

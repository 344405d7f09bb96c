"""The engine's contracts, proved by two tasks that exist only in the tests (``contract_tasks``).

An unconditional generator (no paired data, no ``scale``, validation = set metrics over generated
images) and a one-generator/three-discriminator task with a lazy R1 phase both train, checkpoint
and resume bit for bit through the one trainer; the generator's sharded KID/FID equals one
process. Also: config sections per task, networks by role (frozen, sub-module weights, eval-only
construction) and the Python API's one-line config errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import contract_tasks
from conftest import assert_kill_resume_bitwise, run_restorekit, tiny_config
from restorekit.config import config_schema, validate_config
from restorekit.engine.trainer import Trainer
from restorekit.errors import ConfigError, WeightsError
from restorekit.registry import TASKS

TESTS = Path(__file__).resolve().parent
SRC = str(TESTS.parent / "src")


def reference_folder(root: Path, n: int = 16, size: int = 16) -> Path:
    """The real images (PNG) KID/FID compare generated ones with."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = (contract_tasks.toy_image(i, size) * 255).round().astype(np.uint8)
        cv2.imwrite(str(root / f"real{i:03d}.png"), img[:, :, ::-1])
    return root


def toygen_config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    ref = reference_folder(tmp_path / "real")
    metric = {"reference": str(ref), "weights": "random", "dims": 64, "resize_to": 75, "num_images": 12}
    cfg: dict[str, Any] = {
        "name": "toygen",
        "task": "toygen",
        "seed": 5,
        "device": "cpu",
        "experiments_root": str(tmp_path / "experiments"),
        "network_g": {"type": "ToyGenerator", "latent_dim": 8, "size": 16, "num_feat": 8},
        "network_d": {"type": "ToyDiscriminator", "num_feat": 8},
        "data": {
            "train": {"dataset": {"type": "ToyImages", "num_images": 16}, "batch_size": 4, "num_workers": 0},
            "val": {"gen": {"metrics": {"kid": {**metric, "subsets": 10, "subset_size": 6}, "fid": metric}}},
        },
        "train": {"total_iter": 8},
        "val": {"freq": 4},
        "logger": {"print_freq": 4, "save_checkpoint_freq": 4, "progress_bar": False, "tensorboard": False},
    }
    for key, value in changes.items():
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def multid_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "name": "multid",
        "task": "multid",
        "seed": 2,
        "device": "cpu",
        "experiments_root": str(tmp_path / "experiments"),
        "network_g": {"type": "ToyRestorer", "num_feat": 4},
        "network_d": {"type": "ToyDiscriminator", "num_feat": 4},
        "data": {
            "train": {"dataset": {"type": "ToyImages", "num_images": 8}, "batch_size": 2, "num_workers": 0}
        },
        "train": {"total_iter": 6, "r1_every": 2, "net_d_iters": 2},
        "logger": {"print_freq": 3, "save_checkpoint_freq": 3, "progress_bar": False, "tensorboard": False},
    }


def run_dir(cfg: dict[str, Any], name: str | None = None) -> Path:
    path = Path(cfg["experiments_root"]) / (name or cfg["name"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------- config sections
def test_each_task_has_its_own_section(tmp_path: Path) -> None:
    cfg = validate_config(toygen_config(tmp_path))
    assert type(cfg).__name__ == "ToyGenConfig" and not hasattr(cfg, "scale")
    # a key another task reads is an error naming that task
    with pytest.raises(
        ConfigError, match=r"^config: scale: only used by task 'adversarial' or 'restoration'"
    ):
        validate_config({**toygen_config(tmp_path), "scale": 2})
    with pytest.raises(
        ConfigError,
        match=r"network_d: only used by task 'adversarial' or 'face' or 'generation' or 'multid' or "
        r"'toygen' ",
    ):
        validate_config({**tiny_config(tmp_path), "network_d": {"type": "ToyDiscriminator"}})
    with pytest.raises(
        ConfigError, match=r"task: unknown task 'toygan' \(did you mean 'toygen'\?\); known: "
    ):
        validate_config({**toygen_config(tmp_path), "task": "toygan"})
    assert type(validate_config(tiny_config(tmp_path))).__name__ == "RestorationConfig"  # the default task
    schema = config_schema()
    tasks = {ref.rsplit("/", 1)[-1] for ref in schema["discriminator"]["mapping"].values()}
    assert {"RestorationConfig", "AdversarialConfig", "ToyGenConfig", "MultiDConfig"} <= tasks
    assert set(schema["discriminator"]["mapping"]) >= {"restoration", "adversarial", "toygen", "multid"}


def test_python_api_gives_the_cli_config_errors(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path, task="adversarial", network_d={"type": "UNetDiscriminatorSN", "num_feat": 4})
    cfg = validate_config(raw)
    with pytest.raises(ConfigError, match=r"^train\.losses: network_d is set but no loss is a GANLoss"):
        Trainer(cfg, run_dir(raw))


# ---------------------------------------------------------------------------- networks by role
def test_roles_frozen_eval_only_and_weights_into_a_sub_module(tmp_path: Path) -> None:
    cfg = validate_config(multid_config(tmp_path))
    task = TASKS.get("multid")(cfg, torch.device("cpu"))
    assert set(task.optimizers) == {"g", "d", "d_left", "d_right"}
    # the D optimizers carry StyleGAN2's lazy-regularisation correction c = 2/3
    group = task.optimizers["d_left"].param_groups[0]
    assert group["lr"] == pytest.approx(1e-3 * 2 / 3) and group["betas"][1] == pytest.approx(0.99 ** (2 / 3))
    assert task.optimizers["g"].param_groups[0]["lr"] == 1e-3

    frozen = task.add_network("net_id", {"type": "ToyRestorer", "num_feat": 4}, "network_id", frozen=True)
    assert frozen.optimizer is None and "net_id" not in task.trainable
    assert not any(p.requires_grad for p in frozen.module.parameters())
    task.train(True)
    assert not frozen.module.training and task.networks["net_g"].training

    # weights for one sub-module (as a StyleGAN2 decoder inside a GFPGAN generator)
    donor = contract_tasks.ToyRestorer(num_feat=4)
    path = tmp_path / "a_only.safetensors"
    save_file({k: v.contiguous() for k, v in donor.a.state_dict().items()}, str(path))
    from restorekit.tasks.base import Pretrained

    role = task.add_network(
        "net_x",
        {"type": "ToyRestorer", "num_feat": 4},
        "network_x",
        pretrained=Pretrained(str(path), prefix="a."),
    )
    assert torch.equal(role.module.a.weight, donor.a.weight)
    assert not torch.equal(role.module.b.weight, donor.b.weight)  # the rest keeps its initialisation
    with pytest.raises(WeightsError, match=r"a_only\.safetensors"):  # strict: the file must fit the whole net
        task.add_network(
            "net_y", {"type": "ToyRestorer", "num_feat": 4}, "network_y", pretrained=Pretrained(str(path))
        )

    evaluator = TASKS.get("multid")(cfg, torch.device("cpu"), training=False)
    assert evaluator.optimizers == {} and evaluator.trainable == {} and "net_g" in evaluator.networks


# ---------------------------------------------------------------------------- multid: resume
def test_three_discriminators_and_lazy_r1_resume_bitwise(tmp_path: Path) -> None:
    raw = multid_config(tmp_path)
    cfg = validate_config(raw)
    straight = run_dir(raw, "straight")
    Trainer(cfg, straight).fit()
    resumed = run_dir(raw, "resumed")
    trainer = Trainer(cfg, resumed, resume=straight / "checkpoints" / "iter_3")
    assert trainer.task.phases["r1"].runs == 1 and trainer.task.phases["g"].runs == 1  # counters came back
    trainer.fit()
    a, b = straight / "checkpoints" / "iter_6", resumed / "checkpoints" / "iter_6"
    for name in ("net_g", "net_d", "net_d_left", "net_d_right"):
        assert same_tensors(
            load_file(str(a / f"{name}.safetensors")), load_file(str(b / f"{name}.safetensors"))
        )
    sa = torch.load(a / "training_state.pt", weights_only=True)
    sb = torch.load(b / "training_state.pt", weights_only=True)
    assert sa["task"]["phases"] == sb["task"]["phases"] == {"r1": {"runs": 3}, "g": {"runs": 3}}
    for key in ("g", "d", "d_left", "d_right"):
        for pa, pb in zip(
            sa["task"]["optimizers"][key]["state"].values(), sb["task"]["optimizers"][key]["state"].values()
        ):
            assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert torch.equal(sa["ranks"][0]["generator"], sb["ranks"][0]["generator"])  # ROI jitter draws


# ---------------------------------------------------------------------------- toygen
def test_unconditional_generator_trains_and_validates_with_set_metrics(tmp_path: Path) -> None:
    raw = toygen_config(tmp_path)
    cfg = validate_config(raw)
    folder = run_dir(raw)
    trainer = Trainer(cfg, folder)
    trainer.fit()
    rows = [json.loads(line) for line in (folder / "stats.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["kind"] == "val/gen"]
    assert [r["iter"] for r in val] == [4, 8]
    assert all(np.isfinite(r["kid"]) and np.isfinite(r["fid"]) and r["fid"] > 0 for r in val)
    best = trainer.best.best["gen/kid"]
    assert best["value"] == min(r["kid"] for r in val)  # lower is better, declared by the metric
    assert json.loads((folder / "val" / "gen" / "iter_8.json").read_text()).keys() == {"kid", "fid"}
    assert "random-init Inception" in (folder / "log.txt").read_text()  # the note travels with the number
    assert (folder / "model.safetensors").is_file()
    images = trainer.task.sample_images()["samples/ema"]
    assert images.shape == (8, 3, 16, 16) and images.min() >= 0 and images.max() <= 1


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, nproc: int = 0) -> Any:
    plugins = {"RESTOREKIT_PLUGINS": "contract_tasks"}
    return run_restorekit(*args, cwd=cwd, env={**plugins, **(env or {})}, nproc=nproc)


@pytest.mark.slow
def test_unconditional_generator_resumes_bitwise_after_sigkill(tmp_path: Path) -> None:
    raw = toygen_config(tmp_path, **{"data.val": {}, "val.freq": None})
    plugins = {"RESTOREKIT_PLUGINS": "contract_tasks"}
    assert_kill_resume_bitwise(raw, tmp_path, 4, 8, ("net_g", "net_g_ema", "net_d"), env=plugins)


@pytest.mark.slow
def test_unconditional_generator_under_two_processes_and_sharded_set_metrics(tmp_path: Path) -> None:
    import yaml

    raw = toygen_config(tmp_path, **{"data.train.batch_size": 2})
    (tmp_path / "g.yml").write_text(yaml.safe_dump(raw))
    trained = cli("train", "-c", "g.yml", cwd=tmp_path, nproc=2)
    assert trained.returncode == 0, trained.stderr[-3000:]
    ckpt = Path(raw["experiments_root"]) / "toygen" / "checkpoints" / "iter_8"
    state = torch.load(ckpt / "training_state.pt", weights_only=True)
    gens = [r["generator"] for r in state["ranks"]]
    assert len(gens) == 2 and not torch.equal(gens[0], gens[1])  # ranks draw different latents
    args = ["validate", "-c", "g.yml", "--weights", str(ckpt), "--json"]
    one = cli(*args, cwd=tmp_path)
    two = cli(*args, cwd=tmp_path, nproc=2)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-3000:]
    single = json.loads(one.stdout.strip().splitlines()[-1])
    double = json.loads(two.stdout.strip().splitlines()[-1])
    assert set(single["gen"]) == {"kid", "fid"}
    assert double == single  # exact: chunks are generated alike and features merged by index

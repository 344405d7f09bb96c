"""The generation task (lightweight-gan) in the shared trainer: it trains, validates with set
metrics, keeps its EMA schedule, and resumes bit for bit (optimizers, EMA, fixed latents, draws)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import assert_kill_resume_bitwise, run_restorekit
from restorekit.cli import main
from restorekit.config import validate_config
from restorekit.data.datasets import ImageFolderDataset
from restorekit.data.shapes import make_shapes
from restorekit.engine.trainer import Trainer
from restorekit.errors import ConfigError, RestorekitError
from restorekit.registry import TASKS


def gen_config(tmp_path: Path, **train: Any) -> dict[str, Any]:
    make_shapes(tmp_path / "shapes", num=12, size=16, seed=1)
    kid = {"weights": "random", "dims": 64, "resize_to": 75, "num_images": 8, "subsets": 4, "subset_size": 4}
    return {
        "name": "gen",
        "task": "generation",
        "seed": 1,
        "device": "cpu",
        "experiments_root": str(tmp_path / "experiments"),
        "network_g": {"type": "LightweightGANGenerator", "image_size": 16, "latent_dim": 16, "fmap_max": 16},
        "network_d": {
            "type": "LightweightGANDiscriminator",
            "image_size": 16,
            "fmap_max": 16,
            "disc_output_size": 1,
        },
        "data": {
            "train": {
                "dataset": {"type": "ImageFolderDataset", "dataroot": str(tmp_path / "shapes")},
                "batch_size": 2,
                "num_workers": 0,
            },
            "val": {"shapes": {"metrics": {"kid": kid}}},
        },
        "train": {
            "total_iter": 4,
            "gp_every": 2,
            "augment": {"prob": 0.5},
            "ema": {"decay": 0.5, "every": 1, "start": 1, "reset_every": 2, "reset_until": 3},
            **train,
        },
        "samples": {"num": 4},
        "val": {"freq": 4},
        "logger": {"print_freq": 2, "save_checkpoint_freq": 2, "progress_bar": False, "tensorboard": False},
    }


def test_image_folder_dataset_prepares_like_lightweight_gan(tmp_path: Path) -> None:
    make_shapes(tmp_path / "s", num=3, size=24, seed=0)
    ds = ImageFolderDataset(str(tmp_path / "s"), image_size=16, cache_images=True)
    sample = ds[(0, 5)]
    assert (
        sample["gt"].shape == (3, 16, 16) and 0 <= float(sample["gt"].min()) <= float(sample["gt"].max()) <= 1
    )
    assert ds.cache_bytes == 3 * 16 * 16 * 3  # uint8, resized once
    gray = ImageFolderDataset(str(tmp_path / "s"), image_size=16, mode="gray")
    assert gray[0]["gt"].shape == (1, 16, 16)
    aug = ImageFolderDataset(str(tmp_path / "s"), image_size=16, dataset_aug_prob=1.0)
    assert torch.equal(aug[(1, 7)]["gt"], aug[(1, 7)]["gt"])  # the key's seed decides the crop
    with pytest.raises(Exception, match="smaller than min_size 32"):
        ImageFolderDataset(str(tmp_path / "s"), image_size=16, min_size=32)[0]


def test_generation_config_checks(tmp_path: Path) -> None:
    raw = gen_config(tmp_path)
    raw["network_d"] = {**raw["network_d"], "image_size": 32}
    with pytest.raises(ConfigError, match=r"network_d\.image_size: 32 differs from network_g\.image_size 16"):
        TASKS.get("generation").check_config(validate_config(raw))
    with pytest.raises(ConfigError, match="scale: only used by task"):
        validate_config({**gen_config(tmp_path), "scale": 2})


@pytest.mark.slow
def test_generation_trains_validates_and_resumes_bitwise(tmp_path: Path) -> None:
    raw = gen_config(tmp_path)
    cfg = validate_config(raw)
    root = Path(raw["experiments_root"])
    straight, resumed = root / "straight", root / "resumed"
    straight.mkdir(parents=True)
    resumed.mkdir(parents=True)
    trainer = Trainer(cfg, straight)
    assert trainer.task.aug_p == 0.5
    trainer.fit()
    rows = [json.loads(line) for line in (straight / "stats.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["iter"] for r in train_rows] == [2, 4] and "l_gp" in train_rows[0] and "l_aux" in train_rows[0]
    val = [r for r in rows if r["kind"] == "val/shapes"]
    assert len(val) == 1 and val[0]["iter"] == 4 and val[0]["kid"] == val[0]["kid"]  # finite, not NaN
    again = Trainer(cfg, resumed, resume=straight / "checkpoints" / "iter_2")
    again.fit()
    for name in ("net_g", "net_g_ema", "net_d"):
        a = load_file(str(straight / "checkpoints" / "iter_4" / f"{name}.safetensors"))
        b = load_file(str(resumed / "checkpoints" / "iter_4" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    state = torch.load(straight / "checkpoints" / "iter_4" / "training_state.pt", weights_only=True)
    assert state["task"]["fixed_latents"].shape == (4, 16) and state["task"]["phases"]["gp"]["runs"] == 2
    exported = load_file(str(straight / "model.safetensors"))
    ema = load_file(str(straight / "checkpoints" / "iter_4" / "net_g_ema.safetensors"))
    assert all(torch.equal(exported[k], ema[k]) for k in ema)  # samples and exports use the EMA G
    # restorekit generate: singles, a grid and a GIF walk from the run folder (the EMA generator)
    out = tmp_path / "gen"
    assert main(["generate", "--weights", str(straight), "-n", "3", "-o", str(out), "--seed", "2"]) == 0
    singles = sorted(out.iterdir())
    assert [p.name for p in singles] == ["seed2_00000.png", "seed2_00001.png", "seed2_00002.png"]
    assert cv2.imread(str(singles[0])).shape == (16, 16, 3)
    again = tmp_path / "again"
    export = str(straight / "model.safetensors")
    assert main(["generate", "--weights", export, "-n", "1", "-o", str(again), "--seed", "2"]) == 0
    # image i depends on (seed, i) only, whatever else is generated and from which source
    assert np.array_equal(cv2.imread(str(again / "seed2_00000.png")), cv2.imread(str(singles[0])))
    best = tmp_path / "best"  # the run's best checkpoint by its first metric (KID here: only iter 4)
    assert main(["generate", "--weights", str(straight), "--best", "-n", "1", "-o", str(best)]) == 0
    assert (straight / "visualization" / "samples" / "iter_4" / "ema.png").is_file()  # grids by the numbers
    grid_path = tmp_path / "grid.png"
    assert main(["generate", "--weights", str(straight), "-n", "4", "--grid", "-o", str(grid_path)]) == 0
    assert cv2.imread(str(grid_path)).shape == (2 + 2 * 18, 2 + 2 * 18, 3)
    gif = tmp_path / "walk.gif"
    walk = ["--interpolate", "--steps", "6", "--num", "3", "--frames"]
    assert main(["generate", "--weights", str(straight), *walk, "-o", str(gif)]) == 0
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 6 and im.size == (16, 16)
    assert len(list((tmp_path / "walk").iterdir())) == 6


def test_generate_refuses_a_restoration_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from restorekit.archs.export import export_network
    from restorekit.registry import ARCHS

    path = tmp_path / "edsr.safetensors"
    spec = {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_block": 1, "upscale": 2}
    export_network(ARCHS.build(spec), path)
    assert main(["generate", "--weights", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {path}: is a restoration network, not a generator; use restorekit infer"


def test_new_writes_configs_that_validate_and_checkpoints_list(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "flowers").mkdir()
    out = tmp_path / "flowers.yml"
    assert (
        main(
            [
                "new",
                "lightweight-gan",
                "--data",
                str(tmp_path / "flowers"),
                "--image-size",
                "64",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    cfg = validate_config(yaml.safe_load(out.read_text()))
    assert cfg.task == "generation" and cfg.name == "flowers" and cfg.network_g["image_size"] == 64
    assert "# " in out.read_text()  # commented, for people
    assert main(["new", "lightweight-gan", "--data", str(tmp_path / "flowers"), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (
        main(
            ["new", "sr", "--data", str(tmp_path / "flowers"), "--scale", "3", "-o", str(tmp_path / "sr.yml")]
        )
        == 0
    )
    assert validate_config(yaml.safe_load((tmp_path / "sr.yml").read_text())).scale == 3
    assert (
        main(
            [
                "new",
                "lightweight-gan",
                "--data",
                str(tmp_path / "flowers"),
                "--image-size",
                "100",
                "-o",
                str(tmp_path / "x.yml"),
            ]
        )
        == 2
    )
    assert "--image-size: expected a power of 2" in capsys.readouterr().err
    # checkpoints list on a run folder: every checkpoint, its metrics, the best marked
    run = tmp_path / "run"
    (run / "checkpoints" / "iter_2").mkdir(parents=True)
    (run / "checkpoints" / "iter_4").mkdir(parents=True)
    for it in (2, 4):
        torch.save(
            {"best": {"s/fid": {"value": 3.0, "iter": 2}}},
            run / "checkpoints" / f"iter_{it}" / "training_state.pt",
        )
        (run / "val" / "s").mkdir(parents=True, exist_ok=True)
        (run / "val" / "s" / f"iter_{it}.json").write_text(json.dumps({"fid": 3.0 if it == 2 else 5.0}))
    capsys.readouterr()
    assert main(["checkpoints", "list", str(run), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["iter"], r["metrics"], r["best"], r["state"]) for r in rows] == [
        (2, {"s/fid": 3.0}, True, "no-manifest"),
        (4, {"s/fid": 5.0}, False, "no-manifest"),
    ]


@pytest.mark.parametrize("name", ["lightweight_gan_256", "lightweight_gan_toy"])
def test_generation_recipes_pass_dry_run(name: str, capsys: pytest.CaptureFixture) -> None:
    path = Path(__file__).resolve().parents[1] / "configs" / f"{name}.yml"
    assert main(["train", "-c", str(path), "--dry-run"]) == 0
    dumped = yaml.safe_load(capsys.readouterr().out)
    assert dumped["task"] == "generation" and dumped["train"]["optim_g"]["betas"] == [0.5, 0.9]


def write_lightweight_gan_run(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """A lightweight-gan ``models/<name>/`` folder: ``model_3.pt`` in its layout and ``.config.json``."""
    from restorekit.registry import ARCHS

    kw = {"image_size": 16, "fmap_max": 16, "transparent": False, "greyscale": False, "antialias": False}
    torch.manual_seed(4)
    g = ARCHS.build({"type": "LightweightGANGenerator", **kw, "latent_dim": 16})
    ge = ARCHS.build({"type": "LightweightGANGenerator", **kw, "latent_dim": 16})
    d = ARCHS.build({"type": "LightweightGANDiscriminator", **kw, "disc_output_size": 1})
    parts = {"G": g.state_dict(), "GE": ge.state_dict(), "D": d.state_dict()}
    gan = {f"{p}.{k}": v for p, sd in parts.items() for k, v in sd.items()}
    gan.update({f"D_aug.D.{k}": v for k, v in parts["D"].items()})
    folder.mkdir(parents=True)
    torch.save({"GAN": gan, "version": "1.2.1", "G_scaler": {}, "D_scaler": {}}, folder / "model_3.pt")
    meta = {"image_size": 16, "transparent": False, "greyscale": False, "disc_output_size": 1,
            "attn_res_layers": [], "freq_chan_attn": False, "fmap_max": 16, "latent_dim": 16}  # fmt: skip
    (folder / ".config.json").write_text(json.dumps(meta))
    return parts


def test_lightweight_gan_runs_generate_and_start_training(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    parts = write_lightweight_gan_run(tmp_path / "models" / "default")
    model = tmp_path / "models" / "default" / "model_3.pt"
    out = tmp_path / "grid.png"
    assert main(["generate", "--weights", str(model), "-n", "4", "--grid", "-o", str(out)]) == 0
    assert cv2.imread(str(out)).shape == (38, 38, 3)
    # pretrained: a lightweight-gan checkpoint starts a run (G, D and GE by key; optimizers fresh)
    raw = gen_config(tmp_path)
    raw["network_g"].update(antialias=False)
    raw["network_d"].update(antialias=False)
    raw["pretrained"] = str(model)
    task = TASKS.get("generation")(validate_config(raw), torch.device("cpu"))
    for name, part in (("net_g", "G"), ("net_d", "D"), ("net_g_ema", "GE")):
        got = task.networks[name].state_dict()
        assert all(torch.equal(got[k], parts[part][k]) for k in parts[part]), name
    assert any("optimizers start fresh" in n for n in task.notices)


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, nproc: int = 0) -> Any:
    return run_restorekit(*args, cwd=cwd, env=env, nproc=nproc)


@pytest.mark.slow
def test_generation_resumes_bitwise_after_sigkill(tmp_path: Path) -> None:
    raw = gen_config(tmp_path)
    raw["data"]["val"] = {}
    assert_kill_resume_bitwise(raw, tmp_path, 2, 4, ("net_g", "net_g_ema", "net_d"), env={})


@pytest.mark.slow
def test_generation_under_two_processes_and_its_sharded_fid(tmp_path: Path) -> None:
    raw = gen_config(tmp_path)
    (tmp_path / "g.yml").write_text(yaml.safe_dump(raw))
    trained = cli("train", "-c", "g.yml", cwd=tmp_path, nproc=2)
    assert trained.returncode == 0, trained.stderr[-3000:]
    run = Path(raw["experiments_root"]) / "gen"
    during = json.loads((run / "val" / "shapes" / "iter_4.json").read_text())
    args = ["validate", "-c", "g.yml", "--weights", str(run / "checkpoints" / "iter_4"), "--json"]
    one, two = cli(*args, cwd=tmp_path), cli(*args, cwd=tmp_path, nproc=2)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-3000:]
    single = json.loads(one.stdout.strip().splitlines()[-1])["shapes"]
    double = json.loads(two.stdout.strip().splitlines()[-1])["shapes"]
    assert single == double == during  # sharded equals one process; training's number is the checkpoint's


def test_a_run_shorter_than_the_ema_schedule_ships_g_and_ada_p_is_shared_state(tmp_path: Path) -> None:
    raw = gen_config(tmp_path)
    raw["train"]["ema"] = {
        "decay": 0.995,
        "every": 10,
        "start": 20000,
        "reset_every": 1000,
        "reset_until": 25000,
    }
    raw["train"]["augment"] = {"prob": 0.0, "ada_target": 0.6, "ada_interval": 2}
    task = TASKS.get("generation")(validate_config(raw), torch.device("cpu"))
    task.train(True)
    for it in (1, 2):
        task.train_step([{"gt": torch.rand(2, 3, 16, 16)}], it)
        task.end_iteration(it)
    # the EMA copy was never reset or averaged: it is the random init, so G is judged and shipped
    assert task.export() is task.networks["net_g"] and task.eval_network() is task.networks["net_g"]
    shared, ranked = task.state_dict(), task.rank_state_dict()
    assert set(shared["ada"]) == {"p", "iteration"} and shared["ada"]["iteration"] == 2
    assert set(ranked["ada_sums"]) == {"sign_sum", "count"}
    again = TASKS.get("generation")(validate_config(raw), torch.device("cpu"))
    again.load_state_dict(shared)  # another process count: no rank state, p and its clock survive
    assert float(again.ada.p) == float(task.ada.p) and again.ada.iteration == 2
    broken = {**shared, "optimizers": {"g": shared["optimizers"]["g"]}}  # as if D were added since
    with pytest.raises(RestorekitError, match=r"^training state has no saved optimizers state for 'd'"):
        again.load_state_dict(broken)


@pytest.mark.slow
def test_fid_falls_as_it_trains_and_each_number_carries_its_protocol(
    tmp_path: Path, one_thread: None
) -> None:
    """FID (random Inception calibrated on the reals) of the untrained G vs after 48 iterations.

    Also: every FID row in ``stats.jsonl`` and ``fid.csv`` says how it was made, and the second
    round reuses the cached real features (one file for the data set + protocol).
    """
    raw = gen_config(tmp_path)
    make_shapes(tmp_path / "shapes", num=48, size=16, seed=1)
    fid = {"weights": "random", "dims": 64, "resize_to": 75, "num_images": 48}
    raw["data"]["val"] = {"shapes": {"metrics": {"fid": fid}}}
    raw["data"]["train"]["batch_size"] = 8
    small_attention = {"attn_heads": 1, "attn_dim_head": 8}
    raw["network_g"].update(small_attention)
    raw["network_d"].update(small_attention)
    raw["train"].update(
        total_iter=48,
        gp_every=4,
        augment={"prob": 0.0},
        optim_g={"type": "Adam", "lr": 1e-3, "betas": [0.5, 0.9]},
        optim_d={"type": "Adam", "lr": 1e-3, "betas": [0.5, 0.9]},
        ema={"decay": 0.9, "every": 1, "start": 24, "reset_every": 100, "reset_until": 0},
    )
    raw["val"] = {"freq": 48}
    raw["logger"]["save_checkpoint_freq"] = 48
    run = Path(raw["experiments_root"]) / "fid"
    run.mkdir(parents=True)
    trainer = Trainer(validate_config(raw), run)
    before = trainer.validate()["shapes"]["fid"]
    trainer.fit()
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["kind"] == "val/shapes"]
    assert [r["iter"] for r in val] == [0, 48]
    after = val[-1]["fid"]
    assert after < 0.7 * before, (before, after)
    protocol = val[-1]["protocol"]["fid"]
    assert "random-init InceptionV3 (seed 0" in protocol and "64-d" in protocol and "resize to 75" in protocol
    assert "48 images vs the real images" in protocol
    with open(run / "fid.csv", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [(r["iter"], r["set"], r["metric"]) for r in table] == [
        ("0", "shapes", "fid"),
        ("48", "shapes", "fid"),
    ]
    assert float(table[-1]["value"]) == after and table[-1]["protocol"] == protocol
    assert len(list((Path(os.environ["RESTOREKIT_CACHE"]) / "fid_features").glob("*.npz"))) >= 1

"""The GAN recipes in configs/: every one passes the `train --dry-run` checks, and the toy variants
train on the sample data set through the CLI (a few iterations here; minutes at their full length).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from restorekit.cli import main
from restorekit.config import load_config
from restorekit.data.sample import make_sample_dataset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FULL = ["srgan_pretrain_x4", "srgan_x4", "esrgan_x4", "realesrgan_x4plus", "realesrgan_x2plus"]
SHORT = [
    "train.total_iter=2",
    "logger.save_checkpoint_freq=2",
    "logger.progress_bar=false",
    "logger.tensorboard=false",
]
NO_VAL = ["data.val={}", "val.baseline=null"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small nets run faster on one thread


@pytest.fixture(scope="module")
def sample_cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding datasets/sample, as `restorekit data make-sample` makes it."""
    root = tmp_path_factory.mktemp("gan_configs")
    make_sample_dataset(root / "datasets" / "sample")
    return root


@pytest.mark.parametrize("name", FULL + [f"{n}_toy" for n in FULL])
def test_every_recipe_passes_the_config_checks(name: str, capsys: pytest.CaptureFixture) -> None:
    path = CONFIGS / f"{name}.yml"
    assert main(["train", "-c", str(path), "--dry-run"]) == 0, capsys.readouterr().err
    cfg = load_config(path)
    assert cfg.name == name and cfg.train is not None
    if name.startswith("srgan_pretrain"):
        assert cfg.task == "restoration"
        return
    assert cfg.task == "adversarial"
    assert (cfg.network_d is None) is False
    losses = {spec["type"] for spec in cfg.train.losses.values()}
    assert "GANLoss" in losses
    # the full recipes use the VGG perceptual loss; the toys run without downloaded weights
    assert ("PerceptualLoss" in losses) == (not name.endswith("_toy"))
    if name.startswith("realesrgan"):
        assert cfg.degradation is not None and cfg.train.usm_gt[0] == "pixel"
        assert cfg.network_d["type"] == "UNetDiscriminatorSN"


@pytest.mark.slow
def test_srgan_two_stage_toy(sample_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(sample_cwd)
    assert main(["train", "-c", str(CONFIGS / "srgan_pretrain_x4_toy.yml"), *SHORT, *NO_VAL]) == 0
    stage1 = load_file("experiments/srgan_pretrain_x4_toy/model.safetensors")
    # stage 2 starts from stage 1's export; with D warming up for the whole (short) run, G stays it
    args = [*SHORT, "train.net_d_init_iters=2", "data.train.batch_size=2"]
    assert main(["train", "-c", str(CONFIGS / "srgan_x4_toy.yml"), *args]) == 0
    run = Path("experiments/srgan_x4_toy")
    stage2 = load_file(str(run / "model.safetensors"))
    assert stage2.keys() == stage1.keys() and all(torch.equal(stage1[k], stage2[k]) for k in stage1)
    assert (run / "checkpoints" / "iter_2" / "net_d.safetensors").is_file()
    assert (run / "val" / "sample_val" / "iter_2.csv").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["esrgan_x4_toy", "realesrgan_x4plus_toy", "realesrgan_x2plus_toy"])
def test_toy_recipes_train(name: str, sample_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(sample_cwd)
    assert (
        main(["train", "-c", str(CONFIGS / f"{name}.yml"), *SHORT, *NO_VAL, "data.train.batch_size=2"]) == 0
    )
    ckpt = Path("experiments") / name / "checkpoints" / "iter_2"
    state = torch.load(ckpt / "training_state.pt", weights_only=True)
    assert set(state["task"]["optimizers"]) == {"g", "d"} and set(state["task"]["amp"]) == {"g", "d"}
    assert len(state["ranks"]) == 1 and "generator" in state["ranks"][0]  # per-rank draws
    if name.startswith("realesrgan"):
        pool = state["ranks"][0]["pool"]
        assert pool["ptr"] == 4 and pool["lq"].shape[0] == 16  # 2 steps × batch 2 stored so far
        scale = 4 if "x4" in name else 2
        assert pool["gt"].shape[-1] == 64 and pool["lq"].shape[-1] == 64 // scale

"""`restorekit config import-basicsr` for GFPGAN's own option files → ``task: face`` configs, and
the three GFPGAN recipes in configs/.

The inputs are verbatim copies of GFPGAN's options/train_gfpgan_v1.yml and
train_gfpgan_v1_simple.yml (TencentARC/GFPGAN 7552a7791caad982045a7bbe5634bbf1cd5c8679, Apache-2.0;
tests/data/gfpgan_options/). Every value is checked where it lands, with GFPGAN's numbers written
out here; the values GFPGANModel hard-codes in Python (betas, EMA) are checked against its code.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from restorekit.cli import main
from restorekit.compat.basicsr import convert_basicsr, import_basicsr_file
from restorekit.config import load_config, validate_config
from restorekit.config.loader import read_yaml
from restorekit.errors import ConfigError, RestorekitError
from restorekit.tasks.face import FaceTask

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ROOT / "tests" / "data" / "gfpgan_options"
CONFIGS = ROOT / "configs"
PRIOR = "experiments/pretrained_models/StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth"
ARCFACE = "experiments/pretrained_models/arcface_resnet18.pth"
LANDMARKS = "experiments/pretrained_models/FFHQ_eye_mouth_landmarks_512.pth"
EMA = 0.5 ** (32 / (10 * 1000))  # GFPGANModel.optimize_parameters: self.model_ema(decay=...)

NET_G = {
    "type": "GFPGANv1", "out_size": 512, "num_style_feat": 512, "channel_multiplier": 1,
    "resample_kernel": [1, 3, 3, 1], "decoder_load_path": PRIOR, "fix_decoder": True, "num_mlp": 8,
    "lr_mlp": 0.01, "input_is_latent": True, "different_w": True, "narrow": 1, "sft_half": True,
}  # fmt: skip
NET_D = {
    "type": "StyleGAN2Discriminator",
    "out_size": 512,
    "channel_multiplier": 1,
    "resample_kernel": [1, 3, 3, 1],
}
ARC = {"type": "ResNetArcFace", "block": "IRBlock", "layers": [2, 2, 2, 2], "use_se": False}
FFHQ = {
    "type": "FFHQDegradationDataset", "dataroot_gt": "datasets/ffhq/ffhq_512", "io_backend": "disk",
    "out_size": 512, "use_hflip": True, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
    "blur_kernel_size": 41, "kernel_list": ["iso", "aniso"], "kernel_prob": [0.5, 0.5],
    "blur_sigma": [0.1, 10.0], "downsample_range": [0.8, 8.0], "noise_range": [0.0, 20.0],
    "jpeg_range": [60.0, 100.0], "color_jitter_prob": 0.3, "color_jitter_shift": 20.0,
    "color_jitter_pt_prob": 0.3, "gray_prob": 0.01,
}  # fmt: skip
COMPONENT_DATA = {"crop_components": True, "component_path": LANDMARKS, "eye_enlarge_ratio": 1.4}
VAL = {
    "validation": {
        "dataset": {
            "type": "PairedImageDataset", "dataroot_gt": "datasets/faces/validation/reference",
            "dataroot_lq": "datasets/faces/validation/input", "io_backend": "disk",
        },
        "metrics": {"psnr": {"crop_border": 0, "test_y_channel": False}},
        "save_images": True,
    }
}  # fmt: skip
LOSSES = {
    "pixel": {"type": "L1Loss", "loss_weight": 0.1, "reduction": "mean"},
    "l1": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
    "perceptual": {
        "type": "PerceptualLoss",
        "layer_weights": {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0},
        "vgg_type": "vgg19", "use_input_norm": True, "range_norm": True, "perceptual_weight": 1.0,
        "style_weight": 50.0, "criterion": "l1",
    },
    "gan": {"type": "GANLoss", "gan_type": "wgan_softplus", "loss_weight": 0.1},
}  # fmt: skip
GAN_COMPONENT = {
    "type": "GANLoss", "gan_type": "vanilla", "real_label_val": 1.0, "fake_label_val": 0.0,
    "loss_weight": 1.0,
}  # fmt: skip
# what both files drop, with a note each
DROPPED = [
    "num_gpu", "dist_params", "path.resume_state", "datasets.train.name", "datasets.train.use_shuffle",
    "datasets.train.dataset_enlarge_ratio", "datasets.val.mean", "datasets.val.std", "datasets.val.scale",
    "val.metrics.psnr.type", "logger.wandb.resume_id",
]  # fmt: skip


def option(name: str) -> dict[str, Any]:
    return read_yaml(OPTIONS / f"{name}.yml")


def convert_file(tmp_path: Path, name: str) -> tuple[Path, dict[str, Any], list[str]]:
    """Convert the GFPGAN file like the CLI does: (output path, its YAML, the notes)."""
    out = tmp_path / f"{name}_converted.yml"
    notes = import_basicsr_file(OPTIONS / f"{name}.yml", out)
    return out, yaml.safe_load(out.read_text(encoding="utf-8")), notes


def noted(notes: list[str], key: str) -> list[str]:
    return [n for n in notes if n.startswith(f"{key}: ")]


def placeholders(folder: Path, *paths: str) -> None:
    """Empty files where the config-time checks only test that a file exists."""
    for p in paths:
        (folder / p).parent.mkdir(parents=True, exist_ok=True)
        (folder / p).write_bytes(b"")


def check_train(train: dict[str, Any], comps: bool) -> None:
    """The train section of either converted file (GFPGAN's numbers; betas and EMA from its code)."""
    assert train["total_iter"] == 800_000 and train["warmup_iter"] == 0
    assert train["optim_g"] == {"type": "Adam", "lr": 2e-3, "betas": [0.0, 0.99]}
    assert train["optim_d"] == {"type": "Adam", "lr": 2e-3, "betas": [0.0, 0.99]}
    assert train["scheduler"] == {
        "type": "MultiStepRestartLR",
        "milestones": [600_000, 700_000],
        "gamma": 0.5,
    }
    assert train["losses"] == ({**LOSSES, "gan_component": GAN_COMPONENT} if comps else LOSSES)
    assert train["pyramid_loss_weight"] == 1.0 and train["remove_pyramid_loss"] == 50_000
    assert train["r1_reg_weight"] == 10.0 and train["net_d_reg_every"] == 16
    assert (train["net_d_iters"], train["net_d_init_iters"]) == (1, 0)
    assert math.isclose(train["ema_decay"], 0.9977843871238888, rel_tol=0, abs_tol=1e-15)
    assert train["find_unused_parameters"] is True
    if comps:
        assert train["optim_component"] == {"type": "Adam", "lr": 2e-3, "betas": [0.9, 0.99]}
        assert train["comp_style_weight"] == 200.0 and train["identity_weight"] == 10.0
        assert train["component_d_fake_loss"] == "global_gan"
    else:
        for key in ("optim_component", "comp_style_weight", "identity_weight", "component_d_fake_loss"):
            assert key not in train


def test_train_gfpgan_v1_keeps_every_value(tmp_path: Path) -> None:
    _, cfg, notes = convert_file(tmp_path, "train_gfpgan_v1")
    assert (cfg["name"], cfg["task"], cfg["seed"]) == ("train_GFPGANv1_512", "face", 0)
    assert cfg["network_g"] == NET_G and cfg["network_d"] == NET_D
    for c in ("left_eye", "right_eye", "mouth"):
        assert cfg[f"network_d_{c}"] == {"type": "FacialComponentDiscriminator"}
        assert f"pretrained_d_{c}" in cfg and cfg[f"pretrained_d_{c}"] is None
    assert cfg["network_identity"] == ARC and cfg["pretrained_identity"] == ARCFACE
    assert cfg["pretrained"] is None and cfg["pretrained_strict"] is True
    assert cfg["pretrained_param_key"] == "params_ema" and cfg["pretrained_d"] is None
    train = cfg["data"]["train"]
    assert train["dataset"] == {**FFHQ, **COMPONENT_DATA}
    assert (train["batch_size"], train["num_workers"], train["prefetch"]) == (3, 6, "auto")
    assert cfg["data"]["val"] == VAL
    check_train(cfg["train"], comps=True)
    assert cfg["val"] == {"freq": 5000}
    assert cfg["logger"] == {
        "print_freq": 100, "save_checkpoint_freq": 5000, "tensorboard": True, "wandb_project": None
    }  # fmt: skip
    for key in [*DROPPED, "path.ignore_resume_networks"]:
        assert noted(notes, key), key
    assert "identity" in noted(notes, "path.ignore_resume_networks")[0]
    # what GFPGANModel hard-codes is written out, and says so
    for key in ("train.optim_g", "train.optim_d", "train.optim_component", "train.ema_decay"):
        assert any("hard-codes" in n for n in noted(notes, key)), key
    assert any("global_gan" in n for n in noted(notes, "train.gan_component_opt"))
    assert any("lazy-R1" in n for n in noted(notes, "train.optim_d"))
    assert noted(notes, "find_unused_parameters") == [
        "find_unused_parameters: mapped to train.find_unused_parameters"
    ]
    assert any("VGG" in n or "vgg19" in n for n in noted(notes, "train.perceptual_opt.type"))
    assert noted(notes, "network_g.decoder_load_path") and noted(notes, "datasets.train.component_path")


def test_train_gfpgan_v1_simple_keeps_every_value(tmp_path: Path) -> None:
    _, cfg, notes = convert_file(tmp_path, "train_gfpgan_v1_simple")
    assert (cfg["name"], cfg["task"], cfg["seed"]) == ("train_GFPGANv1_512_simple", "face", 0)
    assert cfg["network_g"] == NET_G and cfg["network_d"] == NET_D
    for key in ("network_d_left_eye", "network_d_mouth", "network_identity", "pretrained_identity"):
        assert key not in cfg
    assert cfg["pretrained_param_key"] == "params_ema" and cfg["pretrained_d"] is None
    assert cfg["data"]["train"]["dataset"] == FFHQ and cfg["data"]["val"] == VAL
    check_train(cfg["train"], comps=False)
    for key in [*DROPPED, "train.optim_component"]:
        assert noted(notes, key), key
    assert "component" in noted(notes, "train.optim_component")[0]


@pytest.mark.parametrize("name", ["train_gfpgan_v1", "train_gfpgan_v1_simple"])
def test_converted_files_pass_the_face_checks(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out, raw, _ = convert_file(tmp_path, name)
    cfg = validate_config(raw, source=str(out))
    assert cfg.task == "face" and cfg.use_components == (name == "train_gfpgan_v1")
    assert cfg.train.ema_decay == EMA and cfg.train.optim_d["betas"] == [0.0, 0.99]
    monkeypatch.chdir(tmp_path)
    # the StyleGAN2 prior is read when GFPGANv1 is built, so an empty placeholder cannot stand in
    # for it: the checks run without it here, and its absence is a one-line error below
    placeholders(tmp_path, ARCFACE)
    FaceTask.check_config(
        validate_config({**raw, "network_g": {**raw["network_g"], "decoder_load_path": None}})
    )
    assert main(["train", "-c", str(out), "--dry-run", "network_g.decoder_load_path=null"]) == 0
    capsys.readouterr()
    assert main(["train", "-c", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "network_g.decoder_load_path" in err and PRIOR in err and "\n" not in err, err


def test_cli_prints_the_notes_and_writes_them_into_the_header(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "gfpgan.yml"
    src = OPTIONS / "train_gfpgan_v1.yml"
    before = src.read_bytes()
    assert main(["config", "import-basicsr", str(src), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: path.ignore_resume_networks: dropped" in printed and f"wrote {out}" in printed
    text = out.read_text(encoding="utf-8")
    assert text.startswith(f"# Converted from {src} by `restorekit config import-basicsr`.")
    assert "#   - train.ema_decay: 0.5 ** (32 / 10000) written out" in text
    assert src.read_bytes() == before
    assert main(["config", "import-basicsr", str(src), "-o", str(out)]) == 2  # no silent overwrite


def _set(opt: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = opt
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()
BAD = [  # (file, dotted key, value, key named in the error, words of the error)
    ("v1", "datasets.val.mean", [0.485, 0.456, 0.406], "datasets.val.mean", "[0.5, 0.5, 0.5]"),
    ("v1", "datasets.val.std", _DELETE, "datasets.val.mean", "mean and std come together"),
    ("v1", "datasets.val.scale", 4, "datasets.val.scale", "expected 1"),
    ("v1", "scale", 2, "scale", "expected 1"),
    ("v1", "network_d_mouth", _DELETE, "network_d_mouth", "all three"),
    ("v1", "network_g.type", "GFPGANv9", "network_g.type", "unknown architecture"),
    ("v1", "network_g.num_blocks", 4, "network_g.num_blocks", "unknown argument"),
    ("v1", "datasets.train.type", "PairedImageDataset", "datasets.train.type", "FFHQDegradationDataset"),
    ("v1", "datasets.train.crop_components", False, "datasets.train.crop_components", "must be true"),
    ("v1", "datasets.train.out_size", 256, "datasets.train.out_size", "network_g.out_size 512"),
    ("v1", "datasets.train.jpeg_range", _DELETE, "datasets.train.jpeg_range", "required key is missing"),
    ("v1", "datasets.train.gray_prob", "often", "datasets.train.gray_prob", "expected a number"),
    ("v1", "train.optim_g.type", "SGD", "train.optim_g.type", "Adam, AdamW"),
    ("v1", "train.optim_d.momentum", 0.9, "train.optim_d.momentum", "unknown BasicSR option"),
    ("v1", "train.L1_opt", _DELETE, "train.L1_opt", "required key is missing"),
    ("v1", "train.r1_reg_weight", _DELETE, "train.r1_reg_weight", "required key is missing"),
    ("v1", "train.identity_weight", _DELETE, "train.identity_weight", "required key is missing"),
    ("v1", "train.comp_style_weight", -1, "train.comp_style_weight", "expected a number >= 0"),
    ("v1", "train.gan_opt.gan_type", "relativistic", "train.gan_opt.gan_type", "GAN types"),
    ("v1", "train.gan_component_opt", _DELETE, "train.gan_component_opt", "required key is missing"),
    ("v1", "train.net_d_reg_every", 0, "train.net_d_reg_every", "expected an integer >= 1"),
    ("v1", "train.pyramid_weight", 1, "train.pyramid_weight", "did you mean"),
    ("v1", "path.pretrain_network_d", "d.pth", "path.strict_load_d", "null (a non-strict load)"),
    ("simple", "path.strict_load_d", False, "path.strict_load_d", "false cannot be converted"),
    ("simple", "val.metrics.psnr.type", "calculate_lpips", "val.metrics.psnr.type", "supported metric types"),
]


@pytest.mark.parametrize(("which", "dotted", "value", "key", "words"), BAD, ids=[b[1] for b in BAD])
def test_values_that_cannot_be_converted_are_refused_in_one_line(
    which: str, dotted: str, value: Any, key: str, words: str
) -> None:
    opt = option("train_gfpgan_v1" if which == "v1" else "train_gfpgan_v1_simple")
    if dotted == "path.pretrain_network_d":  # strict_load_d is ~ in the file: a non-strict load
        opt["path"]["strict_load_d"] = None
    _set(opt, dotted, value)
    with pytest.raises(ConfigError) as info:
        convert_basicsr(opt, "opt.yml")
    msg = str(info.value)
    assert msg.startswith(f"opt.yml: {key}: ") and words in msg and "\n" not in msg, msg


def test_gfpgan_defaults_and_ignored_keys() -> None:
    """Keys GFPGANModel reads with a default get that default; keys it never reads are dropped."""
    opt = option("train_gfpgan_v1")
    train = opt["train"]
    for key in (
        "pyramid_loss_weight",
        "remove_pyramid_loss",
        "comp_style_weight",
        "net_d_iters",
        "pixel_opt",
    ):
        del train[key]
    train["optim_g"].update(betas=[0.9, 0.999], weight_decay=0.01)  # GFPGANModel passes lr only
    train["ema_decay"] = 0.999
    opt["path"].update(strict_load_g=None, pretrain_network_g="g.pth", param_key_d="params_ema")
    cfg, notes = convert_basicsr(copy.deepcopy(opt), "opt.yml")
    out = cfg["train"]
    assert out["pyramid_loss_weight"] == 0.0 and "remove_pyramid_loss" not in out
    assert out["comp_style_weight"] == 0.0 and out["net_d_iters"] == 1 and "pixel" not in out["losses"]
    assert out["optim_g"] == {"type": "Adam", "lr": 2e-3, "betas": [0.0, 0.99]} and out["ema_decay"] == EMA
    for key in ("train.optim_g.betas", "train.optim_g.weight_decay", "train.ema_decay", "path.param_key_d"):
        assert any("dropped" in n for n in noted(notes, key)), key
    # strict_load_g: ~ reaches torch's load_state_dict as strict=None, a non-strict load
    assert cfg["pretrained"] == "g.pth" and cfg["pretrained_strict"] is False
    assert cfg["pretrained_param_key"] == "params_ema"
    assert noted(notes, "path.strict_load_g") and any(
        "params_ema" in n for n in noted(notes, "path.pretrain_network_g")
    )
    validate_config(cfg)


# ------------------------------------------------------------------------------------ recipes

RECIPES = ["gfpgan_v1", "gfpgan_v1_clean", "gfpgan_simple"]


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_pass_the_dry_run_checks_with_their_files(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    path = CONFIGS / f"{name}.yml"
    cfg = load_config(path)
    assert cfg.name == name and cfg.task == "face" and cfg.train is not None
    assert cfg.train.ema_decay == EMA and cfg.train.find_unused_parameters is True
    assert cfg.train.optim_g["betas"] == [0, 0.99] and cfg.train.optim_d["betas"] == [0, 0.99]
    assert cfg.use_components == (name != "gfpgan_simple")
    assert (cfg.network_identity is None) == (name == "gfpgan_simple")
    if name == "gfpgan_v1_clean":
        net = cfg.network_g
        assert net["type"] == "GFPGANv1Clean" and net["channel_multiplier"] == 2
        assert net["fix_decoder"] is False and net["decoder_load_path"] is None
    monkeypatch.chdir(tmp_path)
    placeholders(tmp_path, ARCFACE, LANDMARKS)
    args = [] if name == "gfpgan_v1_clean" else ["network_g.decoder_load_path=null"]
    assert main(["train", "-c", str(path), "--dry-run", *args]) == 0, capsys.readouterr().err
    FaceTask.check_config(load_config(path, args))


@pytest.mark.parametrize(
    ("name", "args", "key", "file"),
    [
        ("gfpgan_v1", [], "network_g.decoder_load_path", PRIOR),
        ("gfpgan_simple", [], "network_g.decoder_load_path", PRIOR),
        ("gfpgan_v1", ["network_g.decoder_load_path=null"], "pretrained_identity", ARCFACE),
        ("gfpgan_v1_clean", [], "pretrained_identity", ARCFACE),
    ],
)
def test_recipes_name_the_key_of_a_missing_file(
    name: str, args: list[str], key: str, file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # an empty folder: none of the files is there
    assert main(["train", "-c", str(CONFIGS / f"{name}.yml"), "--dry-run", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and key in err and file in err and "\n" not in err, err
    with pytest.raises(RestorekitError, match=key):
        FaceTask.check_config(load_config(CONFIGS / f"{name}.yml", args))


@pytest.mark.parametrize(
    ("name", "option_file"), [("gfpgan_v1", "train_gfpgan_v1"), ("gfpgan_simple", "train_gfpgan_v1_simple")]
)
def test_recipes_are_the_converted_gfpgan_files(name: str, option_file: str, tmp_path: Path) -> None:
    """Apart from the run name, a shipped recipe is what `config import-basicsr` makes of GFPGAN's file."""
    out, raw, _ = convert_file(tmp_path, option_file)
    ours = load_config(CONFIGS / f"{name}.yml").model_dump()
    theirs = validate_config(raw, source=str(out)).model_dump()
    for d in (ours, theirs):
        d.pop("name")
    theirs.pop("pretrained_param_key")  # params_ema, unused without pretrained weights
    ours.pop("pretrained_param_key")
    assert ours == theirs

"""``restorekit.compat.basicsr``: the dispatch table, fixes found on BasicSR's own option files
(issue 14), the output path, and the package's shape (no private names across, no circle).

The option texts are shortened from the official files (BasicSR 8d56e3a options/train/...,
Real-ESRGAN a4abfb2 options/, GFPGAN 7552a77 options/): each keeps the keys up to the point the
importer decides, so a converted one is still a whole file and a refused one fails where the
full file does.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import yaml

from restorekit.cli import main
from restorekit.compat import basicsr
from restorekit.compat.basicsr import CONVERTERS, MODEL_TYPES, convert_basicsr, import_basicsr_file
from restorekit.config.loader import read_yaml
from restorekit.errors import ConfigError, RestorekitError

PKG = Path(basicsr.__file__).parent

HEAD = "name: {name}\nmodel_type: {model}\nscale: {scale}\nnum_gpu: 1\nmanual_seed: 10\n"
SR_DATA = """
datasets:
  train:
    name: DIV2K
    type: PairedImageDataset
    dataroot_gt: datasets/DIV2K/DIV2K_train_HR_sub
    dataroot_lq: datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub
    filename_tmpl: '{}'
    io_backend:
      type: disk
    gt_size: 128
    use_hflip: true
    use_rot: true
    num_worker_per_gpu: 6
    batch_size_per_gpu: 16
    dataset_enlarge_ratio: 100
    prefetch_mode: ~
  val:
    name: Set5
    type: PairedImageDataset
    dataroot_gt: datasets/Set5/GTmod12
    dataroot_lq: datasets/Set5/LRbicx4
    io_backend:
      type: disk
"""
SR_TRAIN = """
train:
  ema_decay: 0.999
  optim_g: {type: Adam, lr: !!float 2e-4, weight_decay: 0, betas: [0.9, 0.99]}
  scheduler: {type: CosineAnnealingRestartLR, periods: [250000], restart_weights: [1], eta_min: !!float 1e-7}
  total_iter: 1000000
  warmup_iter: -1  # no warm up
  pixel_opt: {type: L1Loss, loss_weight: 1.0, reduction: mean}
"""
# options/train/SRResNet_SRGAN/train_MSRResNet_x4.yml: validates with NIQE
MSRRESNET_X4 = (
    HEAD.format(name="001_MSRResNet_x4_f64b16_DIV2K_1000k_B16G1_wandb", model="SRModel", scale=4)
    + SR_DATA
    + """
network_g: {type: MSRResNet, num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_block: 16, upscale: 4}
path:
  pretrain_network_g: ~
  param_key_g: params
  strict_load_g: true
  resume_state: ~
"""
    + SR_TRAIN
    + """
val:
  val_freq: !!float 5e3
  save_img: false
  metrics:
    psnr: {type: calculate_psnr, crop_border: 4, test_y_channel: false, better: higher}
    niqe:
      type: calculate_niqe
      crop_border: 4
      better: lower  # the lower, the better
logger: {print_freq: 100, save_checkpoint_freq: !!float 5e3, use_tb_logger: true}
"""
)
# options/train/SRResNet_SRGAN/train_MSRGAN_x4.yml, with the discriminator's weights given
MSRGAN_X4 = (
    HEAD.format(name="003_MSRGAN_x4_f64b16_DIV2K_400k_B16G1_wandb", model="SRGANModel", scale=4)
    + SR_DATA
    + """
network_g: {type: MSRResNet, num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_block: 16, upscale: 4}
network_d: {type: VGGStyleDiscriminator, num_in_ch: 3, num_feat: 64}
path:
  pretrain_network_g: experiments/001_MSRResNet_x4_f64b16_DIV2K_1000k_B16G1_wandb/models/net_g_1000000.pth
  strict_load_g: true
  pretrain_network_d: experiments/pretrained_models/net_d.pth
  param_key_d: params_ema
  resume_state: ~
train:
  optim_g: {type: Adam, lr: !!float 1e-4, weight_decay: 0, betas: [0.9, 0.99]}
  optim_d: {type: Adam, lr: !!float 1e-4, weight_decay: 0, betas: [0.9, 0.99]}
  scheduler: {type: MultiStepLR, milestones: [50000, 100000, 200000, 300000], gamma: 0.5}
  total_iter: 400000
  pixel_opt: {type: L1Loss, loss_weight: !!float 1e-2, reduction: mean}
  gan_opt: {type: GANLoss, gan_type: vanilla, real_label_val: 1.0, fake_label_val: 0.0, loss_weight: 0.005}
"""
)
# Refused where the full files are: the model type, the architecture, or the paired fine-tuning.
REFUSED = {
    "train_StyleGAN2_256_Cmul2_FFHQ.yml": (
        HEAD.format(name="501_StyleGAN2_256_Cmul2_FFHQ_B12G4_scratch", model="StyleGAN2Model", scale=1)
        + "network_g: {type: StyleGAN2Generator, out_size: 256, num_style_feat: 512, num_mlp: 8}\n",
        "model_type 'StyleGAN2Model': unconditional generation (task 'generation') cannot be imported yet",
    ),
    # train_gfpgan_v1_simple.yml converts now: tests/test_import_gfpgan.py
    "train_BasicVSR_REDS.yml": (
        HEAD.format(name="BasicVSR_REDS", model="VideoRecurrentModel", scale=4),
        "model_type: 'VideoRecurrentModel' cannot be converted; supported model types: SRModel,",
    ),
    # train_ECBSR_x4_m4c16_prelu.yml converts since ECBSR and color: y exist
    # (tests/test_import_basicsr_color.py)
    "finetune_realesrgan_x4plus_pairdata.yml": (
        HEAD.format(name="finetune_RealESRGANx4plus_400k_pairdata", model="RealESRGANModel", scale=4)
        + "high_order_degradation: False\n"
        + "network_g: {type: RRDBNet, num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_block: 23}\n"
        + "network_d: {type: UNetDiscriminatorSN, num_in_ch: 3, num_feat: 64, skip_connection: True}\n",
        "high_order_degradation: false (fine-tuning on paired data, RealESRGANPairedDataset)",
    ),
}


# BasicSR's train_RCAN_x2.yml: refused while RCAN was unknown, converted since it is registered
RCAN_X2 = (
    HEAD.format(name="201_RCANx2_scratch_DIV2K_rand0", model="SRModel", scale=2)
    + "network_g: {type: RCAN, num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_group: 10, num_block: 20,"
    + " squeeze_factor: 16, upscale: 2, res_scale: 1, img_range: 255., rgb_mean: [0.4488, 0.4371, 0.4040]}\n"
    + SR_DATA.replace("X4", "X2").replace("x4", "x2")
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    src = tmp_path / name
    src.write_text(text, encoding="utf-8")
    return src


def test_every_model_type_has_a_slot_and_pending_ones_say_what_is_missing() -> None:
    assert list(CONVERTERS) == [
        "SRModel", "SRGANModel", "ESRGANModel", "RealESRNetModel", "RealESRGANModel", "SwinIRModel",
        "GFPGANModel",
    ]  # fmt: skip
    assert set(MODEL_TYPES) - set(CONVERTERS) == {"StyleGAN2Model"}
    for kind in set(MODEL_TYPES) - set(CONVERTERS):  # decided on model_type alone, before any other key
        with pytest.raises(ConfigError) as info:
            convert_basicsr({"model_type": kind}, "x.yml")
        assert str(info.value).startswith(f"x.yml: model_type {kind!r}: ") and "yet" in str(info.value)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_official_option_files_that_cannot_be_converted_give_one_line(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture
) -> None:
    text, expected = REFUSED[name]
    src, out = write(tmp_path, name, text), tmp_path / "out.yml"
    with pytest.raises(ConfigError) as info:
        import_basicsr_file(src, out)
    msg = str(info.value)
    assert msg.startswith(f"{src}: ") and expected in msg and "\n" not in msg, msg
    assert not out.exists()
    assert main(["config", "import-basicsr", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err


def test_niqe_validation_metric_converts(tmp_path: Path) -> None:
    option = yaml.safe_load(MSRRESNET_X4)
    option["val"]["metrics"]["niqe"].update(input_order="HWC", num_thread=8, convert_to="gray")
    cfg, notes = convert_basicsr(option, "train_MSRResNet_x4.yml")
    assert cfg["data"]["val"]["Set5"]["metrics"] == {
        "psnr": {"crop_border": 4, "test_y_channel": False},
        "niqe": {"crop_border": 4, "convert_to": "gray"},
    }
    keys = {n.split(":")[0] for n in notes}
    assert {f"val.metrics.niqe.{k}" for k in ("type", "better", "input_order", "num_thread")} <= keys
    assert any("niqe_pris_params.npz" in n and "never downloaded" in n for n in notes)
    # the unchanged file converts and validates as a whole (the schema knows the metric by name)
    src, out = write(tmp_path, "train_MSRResNet_x4.yml", MSRRESNET_X4), tmp_path / "o.yml"
    import_basicsr_file(src, out)
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["data"]["val"]["Set5"]["metrics"]["niqe"] == {
        "crop_border": 4
    }


def test_param_keys_follow_basicsr_defaults(tmp_path: Path) -> None:
    cfg, notes = convert_basicsr(yaml.safe_load(MSRRESNET_X4), "o.yml")
    assert cfg["pretrained"] is None and cfg["pretrained_param_key"] == "params"  # given, though unused
    assert not any("param_key" in n for n in notes)

    cfg, _ = convert_basicsr(yaml.safe_load(MSRGAN_X4), "o.yml")
    assert cfg["pretrained"].endswith("net_g_1000000.pth")
    assert cfg["pretrained_param_key"] == "params"  # absent: what BasicSR's load_network reads
    assert cfg["pretrained_d"] == "experiments/pretrained_models/net_d.pth"
    assert cfg["pretrained_d_param_key"] == "params_ema"
    keys = list(cfg)
    assert keys.index("pretrained_param_key") == keys.index("pretrained_strict") + 1
    assert keys.index("pretrained_d_param_key") == keys.index("pretrained_d_strict") + 1

    option = yaml.safe_load(MSRGAN_X4)
    del option["path"]["pretrain_network_g"], option["path"]["pretrain_network_d"]
    cfg, _ = convert_basicsr(option, "o.yml")
    assert "pretrained_param_key" not in cfg and cfg["pretrained_d_param_key"] == "params_ema"

    option = yaml.safe_load(MSRRESNET_X4)
    option["path"]["param_key_g"] = 3
    with pytest.raises(ConfigError, match=r"^o\.yml: path\.param_key_g: expected a string, got 3$"):
        convert_basicsr(option, "o.yml")
    option["path"].update(param_key_g="params", param_key_d="params")
    with pytest.raises(ConfigError, match=r"^o\.yml: path\.param_key_d: not used by SRModel"):
        convert_basicsr(option, "o.yml")


def test_architecture_arguments_are_checked_at_import() -> None:
    option = yaml.safe_load(MSRRESNET_X4)
    option["network_g"]["num_blocks"] = 16
    with pytest.raises(ConfigError) as info:
        convert_basicsr(option, "opts/x.yml")
    msg = str(info.value)
    assert msg.startswith("opts/x.yml: network_g.num_blocks: unknown argument for architecture 'MSRResNet'")
    assert "did you mean 'num_block'" in msg and "\n" not in msg

    option = yaml.safe_load(MSRGAN_X4)
    option["network_d"]["input_size"] = 192
    with pytest.raises(ConfigError, match=r"^opts/x\.yml: network_d\.input_size: expected one of 128, 256"):
        convert_basicsr(option, "opts/x.yml")


def test_output_paths_that_cannot_be_written_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    src = write(tmp_path, "train_MSRResNet_x4.yml", MSRRESNET_X4)
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    (tmp_path / "a_dir").mkdir()
    cases = {
        "a_file": "already exists; refusing to overwrite it (use --overwrite)",
        "a_dir": "is a directory; give the converted config a file name",
        "a_file/out.yml": f"cannot be created: {tmp_path / 'a_file'} is a file, not a folder",
        "a_file/deeper/out.yml": f"cannot be created: {tmp_path / 'a_file'} is a file, not a folder",
    }
    for rel, expected in cases.items():
        dst = tmp_path / rel
        for overwrite in (False, True):
            if rel == "a_file" and overwrite:
                continue  # that one is allowed
            with pytest.raises(RestorekitError) as info:
                import_basicsr_file(src, dst, overwrite=overwrite)
            assert str(info.value) == f"{dst}: {expected}"
        assert main(["config", "import-basicsr", str(src), "-o", str(dst)]) == 2
        assert capsys.readouterr().err == f"error: {dst}: {expected}\n"
    assert (tmp_path / "a_file").read_text(encoding="utf-8") == "x"
    assert not any((tmp_path / "a_dir").iterdir())

    ro = tmp_path / "read_only"
    ro.mkdir()
    if os.geteuid() != 0:  # root writes into read-only folders; then the check itself is faked
        ro.chmod(0o555)
    else:
        monkeypatch.setattr("restorekit.compat.basicsr.output.os.access", lambda *_: False)
    try:
        with pytest.raises(RestorekitError) as info:
            import_basicsr_file(src, ro / "sub" / "out.yml")
        assert str(info.value) == f"{ro / 'sub' / 'out.yml'}: cannot be created: {ro} is not writable"
    finally:
        ro.chmod(0o755)
    monkeypatch.undo()

    def full_disk(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(RestorekitError, match=r"out\.yml: cannot write the converted config: No space left"):
        import_basicsr_file(src, tmp_path / "out.yml")


def test_converted_official_files_are_valid(tmp_path: Path) -> None:
    for name, text in (("train_MSRResNet_x4.yml", MSRRESNET_X4), ("train_MSRGAN_x4.yml", MSRGAN_X4)):
        src, out = write(tmp_path, name, text), tmp_path / f"rk_{name}"
        notes = import_basicsr_file(src, out)
        assert notes and all("\n" not in n for n in notes)
        assert read_yaml(out)["name"] == yaml.safe_load(text)["name"]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every ``from restorekit.compat.basicsr... import`` in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("restorekit.compat.basicsr"):
            found.append((node.module or "", [a.name for a in node.names]))
    return found


def test_converter_modules_share_no_private_names_and_import_no_circle() -> None:
    graph: dict[str, set[str]] = {}
    for path in sorted(PKG.glob("*.py")):
        name = "restorekit.compat.basicsr" + ("" if path.stem == "__init__" else f".{path.stem}")
        graph[name] = set()
        for module, names in _imports(path):
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{path.name} imports private {private} from {module}"
            for n in names:  # `from restorekit.compat.basicsr import sr` imports the module sr
                submodule = module == "restorekit.compat.basicsr" and (PKG / f"{n}.py").exists()
                graph[name].add(f"{module}.{n}" if submodule else module)
    assert {"restorekit.compat.basicsr.common", "restorekit.compat.basicsr.sr"} <= set(graph)

    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, f"import circle: {' -> '.join((*stack, node))}"
        for dep in graph.get(node, ()):
            visit(dep, (*stack, node))

    for module in graph:
        if module != "restorekit.compat.basicsr":  # only the entry point imports the converters
            assert "restorekit.compat.basicsr" not in graph[module], f"{module} imports the package"
        visit(module, ())


def test_rcan_option_file_converts_now_that_rcan_is_registered(tmp_path: Path) -> None:
    out = tmp_path / "rcan.yml"
    import_basicsr_file(write(tmp_path, "train_RCAN_x2.yml", RCAN_X2), out)
    converted = yaml.safe_load(out.read_text())
    assert converted["network_g"]["type"] == "RCAN" and converted["network_g"]["num_group"] == 10
    assert converted["scale"] == 2


# BasicSR 8d56e3a options/train/SwinIR/train_SwinIR_SRx2_scratch.yml, whole (comments shortened)
SWINIR_SRX2 = """# general settings
name: train_SwinIR_SRx2_scratch_P48W8_DIV2K_500k_B4G8
model_type: SwinIRModel
scale: 2
num_gpu: auto
manual_seed: 0

datasets:
  train:
    name: DIV2K
    type: PairedImageDataset
    dataroot_gt: datasets/DF2K/DIV2K_train_HR_sub
    dataroot_lq: datasets/DF2K/DIV2K_train_LR_bicubic_X2_sub
    meta_info_file: basicsr/data/meta_info/meta_info_DIV2K800sub_GT.txt
    filename_tmpl: '{}'
    io_backend:
      type: disk

    gt_size: 96
    use_hflip: true
    use_rot: true

    # data loader
    num_worker_per_gpu: 6
    batch_size_per_gpu: 4
    dataset_enlarge_ratio: 1
    prefetch_mode: ~

  val:
    name: Set5
    type: PairedImageDataset
    dataroot_gt: datasets/Set5/GTmod12
    dataroot_lq: datasets/Set5/LRbicx2
    io_backend:
      type: disk

network_g:
  type: SwinIR
  upscale: 2
  in_chans: 3
  img_size: 48
  window_size: 8
  img_range: 1.
  depths: [6, 6, 6, 6, 6, 6]
  embed_dim: 180
  num_heads: [6, 6, 6, 6, 6, 6]
  mlp_ratio: 2
  upsampler: 'pixelshuffle'
  resi_connection: '1conv'

path:
  pretrain_network_g: ~
  strict_load_g: true
  resume_state: ~

train:
  ema_decay: 0.999
  optim_g:
    type: Adam
    lr: !!float 2e-4
    weight_decay: 0
    betas: [0.9, 0.99]

  scheduler:
    type: MultiStepLR
    milestones: [250000, 400000, 450000, 475000]
    gamma: 0.5

  total_iter: 500000
  warmup_iter: -1  # no warm up

  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean

val:
  val_freq: !!float 5e3
  save_img: false

  metrics:
    psnr: # metric name, can be arbitrary
      type: calculate_psnr
      crop_border: 2
      test_y_channel: false

logger:
  print_freq: 100
  save_checkpoint_freq: !!float 5e3
  use_tb_logger: true
  wandb:
    project: ~
    resume_id: ~

dist_params:
  backend: nccl
  port: 29500
"""


def test_swinir_model_converts_like_srmodel_with_swinir_unchanged(tmp_path: Path) -> None:
    src, out = write(tmp_path, "train_SwinIR_SRx2_scratch.yml", SWINIR_SRX2), tmp_path / "out.yml"
    notes = import_basicsr_file(src, out)
    cfg = read_yaml(out)
    assert cfg["task"] == "restoration" and cfg["scale"] == 2 and cfg["seed"] == 0
    assert cfg["network_g"] == yaml.safe_load(SWINIR_SRX2)["network_g"]  # BasicSR's names, as given
    train = cfg["data"]["train"]
    assert train["dataset"]["type"] == "PairedImageDataset" and train["dataset"]["gt_size"] == 96
    assert train["batch_size"] == 4
    assert cfg["train"]["optim_g"]["lr"] == 2e-4 and cfg["train"]["total_iter"] == 500000
    assert cfg["train"]["scheduler"] == {
        "type": "MultiStepRestartLR", "milestones": [250000, 400000, 450000, 475000], "gamma": 0.5
    }  # fmt: skip
    assert cfg["train"]["losses"]["pixel"]["type"] == "L1Loss" and cfg["train"]["ema_decay"] == 0.999
    assert cfg["data"]["val"]["Set5"]["metrics"]["psnr"] == {"crop_border": 2, "test_y_channel": False}
    assert any(n.startswith("model_type: SwinIRModel converts as SRModel") for n in notes)
    # and the converted file is a config restorekit accepts as a whole
    assert main(["train", "-c", str(out), "--dry-run"]) == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"type": "EDSR"}, "network_g.type: SwinIRModel pads by SwinIR's window, got 'EDSR'"),
        ({"window_size": None}, "network_g.window_size: required key is missing"),
    ],
)
def test_swinir_model_needs_a_swinir_with_a_window(change: dict[str, object], expected: str) -> None:
    option = yaml.safe_load(SWINIR_SRX2)
    option["network_g"].update(change)
    with pytest.raises(ConfigError) as info:
        convert_basicsr(option, "s.yml")
    assert str(info.value).startswith(f"s.yml: {expected}") and "\n" not in str(info.value)

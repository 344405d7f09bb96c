"""The face task's step (GFPGANModel.optimize_parameters) on tiny networks, one step at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from restorekit.archs.vgg import VGGFeatures
from restorekit.config import validate_config
from restorekit.errors import ConfigError
from restorekit.tasks.face import PYRAMID_OFF, FaceTask

G = dict(type="GFPGANv1Clean", out_size=32, num_style_feat=64, channel_multiplier=1, narrow=0.125, num_mlp=2,
         input_is_latent=True, different_w=True, sft_half=True, fix_decoder=False)  # fmt: skip
D = {"type": "StyleGAN2Discriminator", "out_size": 32, "channel_multiplier": 1, "narrow": 0.125}
ARC = {"type": "ResNetArcFace", "block": "IRBlock", "layers": [2, 2, 2, 2], "use_se": False}


def vgg_file(folder: Path) -> Path:
    """A torchvision-layout VGG19 file with random values up to conv2_2 (what the test's loss reads)."""
    torch.manual_seed(0)
    net = VGGFeatures("vgg19", layers=["conv2_2"], use_input_norm=False)
    state = {f"features.{k}": v.clone() for k, v in net.features.state_dict().items()}
    path = folder / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return path


def face_raw(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "face", "task": "face", "device": "cpu", "experiments_root": str(tmp_path / "exp"),
        "network_g": dict(G), "network_d": dict(D),
        "network_d_left_eye": {"type": "FacialComponentDiscriminator"},
        "network_d_right_eye": {"type": "FacialComponentDiscriminator"},
        "network_d_mouth": {"type": "FacialComponentDiscriminator"},
        "network_identity": dict(ARC), "identity_random_weights": True,
        "train": {
            "total_iter": 40,
            "losses": {
                "pixel": {"type": "L1Loss", "loss_weight": 0.1},
                "perceptual": {"type": "PerceptualLoss", "layer_weights": {"conv1_2": 0.1, "conv2_2": 0.1},
                               "vgg_type": "vgg19", "style_weight": 50, "range_norm": True,
                               "weights_path": str(vgg_file(tmp_path))},
                "gan": {"type": "GANLoss", "gan_type": "wgan_softplus", "loss_weight": 0.1},
                "gan_component": {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 1.0},
            },
            "remove_pyramid_loss": 3,
        },
    }  # fmt: skip
    for key, value in changes.items():
        node = raw
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return raw


def build(tmp_path: Path, **changes: Any) -> FaceTask:
    cfg = validate_config(face_raw(tmp_path, **changes))
    FaceTask.check_config(cfg)  # type: ignore[arg-type]
    torch.manual_seed(0)
    return FaceTask(cfg, torch.device("cpu"))  # type: ignore[arg-type]


def batch(n: int = 2, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(n, 3, 32, 32, generator=g) * 2 - 1
    return {
        "lq": (gt + 0.3 * torch.randn(n, 3, 32, 32, generator=g)).clamp(-1, 1),
        "gt": gt,
        "loc_left_eye": torch.tensor([[6.0, 8, 14, 16]] * n),
        "loc_right_eye": torch.tensor([[18.0, 8, 26, 16]] * n),
        "loc_mouth": torch.tensor([[10.0, 20, 22, 28]] * n),
    }


def snapshot(task: FaceTask) -> dict[str, dict[str, torch.Tensor]]:
    return {
        name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in task.networks.items()
    }


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())


ROLES = ("net_g", "net_d", "net_d_left_eye", "net_d_right_eye", "net_d_mouth")


def test_one_step_updates_g_d_and_each_component_d_but_not_identity(tmp_path: Path) -> None:
    task = build(tmp_path)
    assert set(task.optimizers) == {"g", "d", "d_left_eye", "d_right_eye", "d_mouth"}
    before = snapshot(task)
    logs = task.train_step([batch()], 1)
    after = snapshot(task)
    for role in ROLES:
        assert changed(before[role], after[role]), role
    assert not changed(before["net_identity"], after["net_identity"])
    expected = {"l_g_pix", "l_p_8", "l_p_16", "l_p_32", "l_g_percep", "l_g_style", "l_g_gan",
                "l_g_gan_left_eye", "l_g_gan_right_eye", "l_g_gan_mouth", "l_g_comp_style",
                "l_identity", "l_d", "l_d_left_eye", "l_d_right_eye", "l_d_mouth"}  # fmt: skip
    assert expected <= set(logs)
    assert all(torch.isfinite(v) for v in logs.values())


def test_d_warm_up_leaves_g_alone_and_net_d_iters_sets_the_rhythm(tmp_path: Path) -> None:
    task = build(tmp_path, **{"train.net_d_init_iters": 1, "train.net_d_iters": 2})
    before = snapshot(task)
    task.train_step([batch()], 1)  # warm-up: D only
    mid = snapshot(task)
    assert not changed(before["net_g"], mid["net_g"])
    assert all(changed(before[r], mid[r]) for r in ROLES[1:])
    task.train_step([batch()], 2)  # 2 % 2 == 0 and 2 > 1: G too
    assert changed(mid["net_g"], snapshot(task)["net_g"])
    task.train_step([batch()], 3)  # off-beat
    assert task.phases["g"].runs == 1


def test_r1_runs_exactly_every_net_d_reg_every(tmp_path: Path) -> None:
    off = ["network_d_left_eye", "network_d_right_eye", "network_d_mouth", "train.losses.gan_component",
           "network_identity", "train.losses.perceptual"]  # fmt: skip
    task = build(tmp_path, **dict.fromkeys(off))
    runs = [it for it in range(1, 34) if "l_d_r1" in task.train_step([batch(seed=it)], it)]
    assert runs == [16, 32]
    assert task.phases["r1"].runs == 2


def test_pyramid_weight_drops_after_remove_pyramid_loss(tmp_path: Path) -> None:
    task = build(tmp_path)
    assert task.pyramid.at(3) == 1.0 and task.pyramid.at(4) == PYRAMID_OFF
    b = batch()
    logs3 = task.train_step([b], 3)
    logs4 = task.train_step([b], 4)
    assert logs3["l_p_32"] > 1e-4
    assert 0 < logs4["l_p_32"] < 1e-10  # the same kind of error times 1e-12


def test_identity_loss_is_zero_for_identical_images(tmp_path: Path) -> None:
    task = build(tmp_path)
    b = batch()
    pair = task._pair(b)
    logs: dict[str, torch.Tensor] = {}
    task._generator_loss(b["gt"].clone(), [], pair, 0.0, lambda k, v: logs.__setitem__(k, v))
    assert logs["l_identity"].item() == 0.0
    assert logs["l_g_pix"].item() == 0.0
    other: dict[str, torch.Tensor] = {}
    task._generator_loss(b["lq"], [], pair, 0.0, lambda k, v: other.__setitem__(k, v))
    assert other["l_identity"].item() > 0


def test_component_fake_loss_option_picks_the_loss(tmp_path: Path) -> None:
    quirk = build(tmp_path)
    plain = build(tmp_path, **{"train.component_d_fake_loss": "component"})
    assert quirk.cfg.train.component_d_fake_loss == "global_gan"  # GFPGAN's behaviour is the default
    logs_q, logs_p = quirk.train_step([batch()], 1), plain.train_step([batch()], 1)
    # D-side GAN losses are unweighted (BasicSR), and softplus(x) = BCE(sigmoid(x), 0): with a
    # vanilla component loss GFPGAN's quirk gives exactly the component loss
    assert torch.allclose(logs_q["l_d_mouth"], logs_p["l_d_mouth"])
    lsgan = {"train.losses.gan_component": {"type": "GANLoss", "gan_type": "lsgan"}}
    quirk_ls = build(tmp_path, **lsgan)
    plain_ls = build(tmp_path, **lsgan, **{"train.component_d_fake_loss": "component"})
    logs_q, logs_p = quirk_ls.train_step([batch()], 1), plain_ls.train_step([batch()], 1)
    assert torch.allclose(logs_q["l_g_gan"], logs_p["l_g_gan"])  # the G side does not depend on it
    assert not torch.allclose(logs_q["l_d_mouth"], logs_p["l_d_mouth"])


def test_optimizers_carry_gfpgan_corrections(tmp_path: Path) -> None:
    task = build(tmp_path)
    g, d, c = task.optimizers["g"], task.optimizers["d"], task.optimizers["d_mouth"]
    assert g.param_groups[0]["lr"] == pytest.approx(2e-3) and tuple(g.param_groups[0]["betas"]) == (0.0, 0.99)
    assert d.param_groups[0]["lr"] == pytest.approx(2e-3 * 16 / 17)
    assert tuple(d.param_groups[0]["betas"]) == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert tuple(c.param_groups[0]["betas"]) == (0.9, 0.99)
    assert task.g.ema is not None and task.g.ema.decay == pytest.approx(0.5 ** (32 / 10000))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"network_d_mouth": None}, "network_d_mouth: the facial-component discriminators come as a set"),
        ({"identity_random_weights": None}, "pretrained_identity: required with network_identity"),
        ({"pretrained_identity": "nope/arcface_resnet18.pth", "identity_random_weights": None},
         "pretrained_identity: weights file nope/arcface_resnet18.pth does not exist"),
        ({"network_g.decoder_load_path": "nope/StyleGAN2.pth"}, "nope/StyleGAN2.pth"),
        ({"train.losses.gan_component": None}, "train.losses.gan_component: required"),
        ({"network_g": {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "upscale": 2}},
         "network_g.type: EDSR is a restoration network"),
        ({"network_d": None}, "network_d: required key is missing"),
    ],
)  # fmt: skip
def test_config_errors_are_one_line_naming_the_key(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(Exception) as info:
        build(tmp_path, **changes)
    text = str(info.value)
    assert message in text and "\n" not in text
    assert isinstance(info.value, ConfigError) or "decoder_load_path" in text


def test_eval_step_maps_each_sets_range_into_the_networks(tmp_path: Path) -> None:
    """A [0, 1] val set (PairedImageDataset) and a [-1, 1] one (FFHQDegradationDataset) holding the
    same faces must feed G the same [-1, 1] input and score the same restored face in [0, 1]:
    GFPGAN's ``test`` normalises the LQ to [-1, 1] before the network."""
    task = build(tmp_path)
    seen: list[torch.Tensor] = []
    net = task.eval_network()
    hook = net.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    signed = batch()
    unit = {k: (v + 1) / 2 if k in ("lq", "gt") else v for k, v in signed.items()}
    a = task.eval_step(signed, (-1.0, 1.0))
    b = task.eval_step(unit, (0.0, 1.0))
    hook.remove()
    torch.testing.assert_close(seen[1], seen[0], rtol=0, atol=1e-6)
    assert float(seen[1].min()) < -0.5  # really in [-1, 1], not the [0, 1] samples passed through
    torch.testing.assert_close(b["gt"], a["gt"], rtol=0, atol=1e-6)
    assert float(a["output"].min()) >= 0 and float(a["output"].max()) <= 1

"""BasicSR ``SRGANModel`` and ``ESRGANModel`` → ``task: adversarial`` on paired data.

* ``network_d`` → ``network_d``; ``path.pretrain_network_d`` / ``strict_load_d`` /
  ``param_key_d`` → ``pretrained_d`` / ``pretrained_d_strict`` / ``pretrained_d_param_key``;
  ``train.optim_d``, ``net_d_iters`` and ``net_d_init_iters`` keep their names. BasicSR applies
  one ``scheduler`` to both optimizers; so does ``train.scheduler`` (``scheduler_d`` stays unset).
* ``pixel_opt`` / ``perceptual_opt`` / ``gan_opt`` → ``train.losses.pixel`` / ``perceptual`` /
  ``gan``. ESRGANModel hard-codes the relativistic average GAN around its ``vanilla`` loss; here
  that is ``gan_type: ragan`` (other gan types under ESRGANModel are refused: the relativistic
  forms of lsgan/hinge/wgan are not implemented).

The training-section conversion is public because the Real-ESRGAN models train the same way.
"""

from __future__ import annotations

from typing import Any

from restorekit.compat.basicsr.common import (
    begin,
    check_arch,
    ema_decay,
    finish,
    network,
    optimizer,
    paired_train_set,
    paths,
    pixel_loss,
    schedule,
    train_head,
)
from restorekit.compat.basicsr.section import Section

DISCRIMINATORS = ("VGGStyleDiscriminator", "UNetDiscriminatorSN")
GAN_TYPES = ("vanilla", "lsgan", "wgan", "wgan_softplus", "hinge")
VGG_TYPES = ("vgg11", "vgg13", "vgg16", "vgg19")
_D_TRAIN_KEYS = ("optim_d", "gan_opt", "net_d_iters", "net_d_init_iters")


def convert(top: Section) -> dict[str, Any]:
    """An SRGANModel / ESRGANModel option file (``model_type`` already checked) → our config."""
    kind = top.data["model_type"]
    out = begin(top, "adversarial")
    out["network_g"] = network(top.sub("network_g", "the network to train"), out["scale"])
    out["network_d"] = discriminator(top.sub("network_d", f"{kind} trains a discriminator"))
    out.update(paths(top.child("path"), has_d=True, no_d=""))
    train, tail = finish(top, out, paired_train_set)
    if train is not None:
        out["train"] = adversarial_train(train, kind, has_d=True)
        out["train"]["usm_gt"] = []
    return {**out, **tail}


def discriminator(net: Section) -> dict[str, Any]:
    net.choice("type", DISCRIMINATORS, "discriminators")
    return check_arch(net)


def adversarial_train(train: Section, kind: str, has_d: bool) -> dict[str, Any]:
    """``train`` of a GAN model type; without a discriminator (``has_d`` false, RealESRNetModel)
    its keys are refused and the pixel loss is required."""
    train.refuse(("ldl_opt",), "the LDL loss (artifact map) cannot be converted")
    if not has_d:
        train.refuse(_D_TRAIN_KEYS, f"{kind} has no discriminator")
    out = train_head(train)
    if has_d:
        out["optim_d"] = optimizer(train.sub("optim_d", "the discriminator's optimizer"))
    schedule(train, out)
    losses: dict[str, Any] = {}
    pixel = train.child("pixel_opt")
    if pixel is not None:
        losses["pixel"] = pixel_loss(pixel)
    elif not has_d:
        train.need("pixel_opt", f"{kind} needs a pixel loss")
    percep = train.child("perceptual_opt")
    if percep is not None:
        losses["perceptual"] = perceptual_loss(percep)
    if has_d:
        losses["gan"] = gan_loss(train.sub("gan_opt", f"{kind} needs a GAN loss"), kind)
        out["net_d_iters"] = train.as_int("net_d_iters", 1, minimum=1)
        out["net_d_init_iters"] = train.as_int("net_d_init_iters", 0)
    out["losses"] = losses
    out["ema_decay"] = ema_decay(train)
    train.done()
    return out


def perceptual_loss(p: Section) -> dict[str, Any]:
    p.choice("type", ("PerceptualLoss",), "perceptual losses")
    p.need("layer_weights", "VGG layer → weight, e.g. {'conv5_4': 1}")
    layers = p.sub("layer_weights", "VGG layer weights")
    weights = {str(k): layers.as_float(k) for k in list(layers.data)}
    out: dict[str, Any] = {"type": "PerceptualLoss", "layer_weights": weights}
    if p.get("vgg_type") is not None:
        out["vgg_type"] = p.choice("vgg_type", VGG_TYPES, "VGG types")
    for k in ("use_input_norm", "range_norm"):
        if p.get(k) is not None:
            out[k] = p.as_bool(k, False)
    for k in ("perceptual_weight", "style_weight"):
        if p.get(k) is not None:
            out[k] = p.as_float(k)
    if p.get("criterion") is not None:
        out["criterion"] = p.choice("criterion", ("l1", "l2", "fro"), "criteria")
    p.done()
    vgg = out.get("vgg_type", "vgg19")
    p.note(
        "type",
        f"PerceptualLoss needs torchvision's {vgg} ImageNet weights in the cache folder (never downloaded)",
    )
    return out


def gan_loss(g: Section, kind: str) -> dict[str, Any]:
    g.choice("type", ("GANLoss",), "GAN losses")
    gan_type = g.choice("gan_type", GAN_TYPES, "GAN types")
    if kind == "ESRGANModel":
        if gan_type != "vanilla":
            g.fail(
                "gan_type",
                f"ESRGANModel makes {gan_type!r} relativistic; only the relativistic vanilla GAN (ragan) "
                "is implemented",
            )
        g.note("gan_type", "vanilla under ESRGANModel is relativistic: mapped to gan_type ragan")
        gan_type = "ragan"
    out: dict[str, Any] = {"type": "GANLoss", "gan_type": gan_type}
    for k in ("real_label_val", "fake_label_val", "loss_weight"):
        if g.get(k) is not None:
            out[k] = g.as_float(k)
    g.done()
    return out

"""``restorekit config import-basicsr`` for GAN option files: SRGANModel, ESRGANModel (BasicSR),
RealESRNetModel and RealESRGANModel (Real-ESRGAN). They become ``task: adversarial`` configs.

The rules of ``config/basicsr.py`` hold here too — every key is mapped, dropped with a note, or
refused with a one-line error naming it. What is specific to these models:

* ``network_d`` → ``network_d``; ``path.pretrain_network_d`` / ``strict_load_d`` →
  ``pretrained_d`` / ``pretrained_d_strict``; ``train.optim_d``, ``net_d_iters`` and
  ``net_d_init_iters`` keep their names. BasicSR applies one ``scheduler`` to both optimizers;
  so does ``train.scheduler`` (``scheduler_d`` stays unset).
* ``pixel_opt`` / ``perceptual_opt`` / ``gan_opt`` → ``train.losses.pixel`` / ``perceptual`` /
  ``gan``. ESRGANModel hard-codes the relativistic average GAN around its ``vanilla`` loss; here
  that is ``gan_type: ragan`` (other gan types under ESRGANModel are refused: the relativistic
  forms of lsgan/hinge/wgan are not implemented).
* Real-ESRGAN: the top-level degradation options (``resize_prob`` ... ``jpeg_range2``,
  ``gt_size``, ``queue_size``) → the ``degradation`` section; ``l1_gt_usm`` / ``percep_gt_usm``
  / ``gan_gt_usm`` (RealESRGANModel) and ``gt_usm`` (RealESRNetModel) → ``train.usm_gt``;
  ``RealESRGANDataset``'s kernel options keep their names. RealESRNetModel has no discriminator:
  it becomes the same task without ``network_d``.
"""

from __future__ import annotations

from typing import Any

from restorekit.config.basicsr import (
    DROP_PATH,
    DROP_TOP,
    DROP_VAL_SET,
    LOSSES,
    _dataset,
    _logger,
    _network,
    _optimizer,
    _scale,
    _scheduler,
    _Section,
    _train_set,
    _val_options,
    train_loader,
)

DISCRIMINATORS = ("VGGStyleDiscriminator", "UNetDiscriminatorSN")
GAN_TYPES = ("vanilla", "lsgan", "wgan", "wgan_softplus", "hinge")
VGG_TYPES = ("vgg11", "vgg13", "vgg16", "vgg19")
REAL_ESRGAN = ("RealESRNetModel", "RealESRGANModel")
# Real-ESRGAN's top-level options of the degradation, and how each is read
DEGRADATION = {
    **{f"{k}{s}": "floats" for s in ("", "2") for k in ("resize_prob", "resize_range", "noise_range")},
    **{f"{k}{s}": "floats" for s in ("", "2") for k in ("poisson_scale_range", "jpeg_range")},
    **{f"{k}{s}": "float" for s in ("", "2") for k in ("gaussian_noise_prob", "gray_noise_prob")},
    "second_blur_prob": "float",
}
KERNEL_OPTIONS = {  # RealESRGANDataset's kernel options, the same names in both projects
    **{f"blur_kernel_size{s}": "int" for s in ("", "2")},
    **{f"kernel_list{s}": "strs" for s in ("", "2")},
    **{
        f"{k}{s}": "floats"
        for s in ("", "2")
        for k in ("kernel_prob", "blur_sigma", "betag_range", "betap_range")
    },
    **{f"sinc_prob{s}": "float" for s in ("", "2")},
    "final_sinc_prob": "float",
}


def convert_gan(top: _Section, notes: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The GAN branch of ``convert_basicsr``; ``top`` has ``model_type`` already checked."""
    kind = top.data["model_type"]
    real = kind in REAL_ESRGAN
    top.need("name", "the run name")
    name = top.as_str("name")
    scale = _scale(top)
    seed = top.as_int("manual_seed")
    if seed is None:
        top.note("manual_seed", "missing or null: BasicSR draws a random seed; restorekit uses 0")
    out: dict[str, Any] = {"name": name, "task": "adversarial", "scale": scale, "seed": seed or 0}
    out["network_g"] = _network(top.sub("network_g", "the network to train"), scale)
    if kind == "RealESRNetModel":
        top.refuse(("network_d",), "RealESRNetModel trains no discriminator")
    else:
        out["network_d"] = _discriminator(top.sub("network_d", f"{kind} trains a discriminator"))
    out.update(_path(top.child("path"), has_d=kind != "RealESRNetModel"))
    usm: list[str] = []
    if real:
        out["degradation"], usm = _degradation(top, kind)
    data = _datasets(top.child("datasets"), scale, real)
    val_section = top.child("val")
    if val_section is None and data["val"]:
        top.note("val", "missing: BasicSR would never validate; restorekit validates at the end")
    val, progress_bar = _val_options(val_section, data["val"])
    out["data"] = data
    train = top.child("train")
    logger = _logger(top.child("logger"))
    if progress_bar is not None:
        logger["progress_bar"] = progress_bar
    top.drop(DROP_TOP)
    top.done()
    if train is not None:
        out["train"] = _train(train, kind)
        out["train"]["usm_gt"] = [n for n in usm if n in out["train"]["losses"]]
    out.update({"val": val, "logger": logger})
    return out, notes


def _discriminator(net: _Section) -> dict[str, Any]:
    net.choice("type", DISCRIMINATORS, "discriminators")
    return dict(net.data)


def _path(path: _Section | None, has_d: bool) -> dict[str, Any]:
    if path is None:
        return {}
    if not has_d:
        path.refuse(
            ("pretrain_network_d", "strict_load_d", "param_key_d"), "RealESRNetModel has no discriminator"
        )
    out: dict[str, Any] = {
        "pretrained": path.as_str("pretrain_network_g"),
        "pretrained_strict": path.as_bool("strict_load_g", True),
    }
    if has_d:
        out["pretrained_d"] = path.as_str("pretrain_network_d")
        out["pretrained_d_strict"] = path.as_bool("strict_load_d", True)
    if path.as_str("experiments_root") is not None:
        out["experiments_root"] = path.as_str("experiments_root")
    path.drop({**DROP_PATH, "param_key_d": "restorekit takes 'params_ema', else 'params', from the file"})
    path.done()
    return out


def _degradation(top: _Section, kind: str) -> tuple[dict[str, Any], list[str]]:
    """Real-ESRGAN's top-level synthesis options → (our ``degradation`` section, usm_gt names)."""
    if "high_order_degradation" in top:
        if not top.as_bool("high_order_degradation", True):
            top.fail(
                "high_order_degradation",
                "false (fine-tuning on paired data, RealESRGANPairedDataset) cannot be converted; "
                "use PairedImageDataset with task adversarial and no degradation section",
            )
        top.note("high_order_degradation", "dropped — true is what the degradation section does")
    deg: dict[str, Any] = {}
    for key, how in DEGRADATION.items():
        top.known.add(key)
        if key in top:
            deg[key] = top.read(key, how)
    for key in ("gt_size", "queue_size"):
        top.need(key, "the training patch size" if key == "gt_size" else "the training-pair pool size")
        deg[key] = top.as_int(key, minimum=1)
    if kind == "RealESRNetModel":
        usm = ["pixel"] if _usm_flag(top, "gt_usm") else []
        if usm:
            top.note(
                "gt_usm",
                "mapped to train.usm_gt: [pixel]; the sharpened target is made from the cropped patch "
                "(as RealESRGANModel does), not cropped from the sharpened image — they differ only "
                "near the patch border",
            )
        return deg, usm
    flags = {"pixel": "l1_gt_usm", "perceptual": "percep_gt_usm", "gan": "gan_gt_usm"}
    return deg, [name for name, key in flags.items() if _usm_flag(top, key)]


def _usm_flag(top: _Section, key: str) -> bool:
    if key not in top:
        top.known.add(key)
        top.note(key, "missing (Real-ESRGAN would stop with a KeyError); taken as true, its files' value")
        return True
    return top.as_bool(key, True)


def _datasets(sets: _Section | None, scale: int, real: bool) -> dict[str, Any]:
    data: dict[str, Any] = {}
    val: dict[str, Any] = {}
    if sets is None:
        return {"val": val}
    for phase in list(sets.data):
        if phase == "train":
            section = sets.sub(phase, "the training set")
            data["train"] = _realesrgan_train_set(section) if real else _train_set(section, scale)
        elif str(phase).split("_")[0] == "val":
            vs = sets.sub(phase, "a validation set")
            set_name = vs.as_str("name", str(phase))
            if set_name in val:
                vs.fail("name", f"validation set name {set_name!r} is used twice")
            val[set_name] = {"dataset": _dataset(vs, scale)}
            vs.drop(DROP_VAL_SET)
            vs.done()
        else:
            sets.fail(phase, "BasicSR trains with 'train' and 'val*' datasets only; expected one of those")
    return {**data, "val": val}


def _realesrgan_train_set(ds: _Section) -> dict[str, Any]:
    ds.choice("type", ("RealESRGANDataset",), "dataset types for Real-ESRGAN models")
    dataset: dict[str, Any] = {"type": "RealESRGANDataset"}
    ds.need("dataroot_gt", "a folder or LMDB path")
    dataset["dataroot_gt"] = ds.as_str("dataroot_gt")
    if ds.get("meta_info") is not None:
        dataset["meta_info"] = ds.as_str("meta_info")
    io = ds.child("io_backend")
    dataset["io_backend"] = "disk" if io is None else io.choice("type", ("disk", "lmdb"), "io backends")
    if io is not None:
        io.done()
    for key, how in KERNEL_OPTIONS.items():
        ds.known.add(key)
        if key in ds:
            dataset[key] = (
                _strs(ds, key) if how == "strs" else ds.as_int(key) if how == "int" else ds.read(key, how)
            )
    for k in ("use_hflip", "use_rot"):  # absent: our RealESRGANDataset's defaults (flip, no rotation)
        if ds.get(k) is not None:
            dataset[k] = ds.as_bool(k, False)
    if ds.get("gt_size") is not None:
        ds.as_int("gt_size", minimum=1)
        ds.note("gt_size", "dropped — Real-ESRGAN crops at the top-level gt_size (degradation.gt_size)")
    return train_loader(ds, dataset)


def _strs(section: _Section, key: str) -> list[str]:
    value = section.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        section.fail(key, f"expected a list of names, got {value!r}")
    return list(value)


def _train(train: _Section, kind: str) -> dict[str, Any]:
    train.refuse(("ldl_opt",), "the LDL loss (artifact map) cannot be converted")
    has_d = kind != "RealESRNetModel"
    if not has_d:
        train.refuse(
            ("optim_d", "gan_opt", "net_d_iters", "net_d_init_iters"), "RealESRNetModel has no discriminator"
        )
    train.need("total_iter", "the number of iterations")
    out: dict[str, Any] = {"total_iter": train.as_int("total_iter", minimum=1)}
    out["optim_g"] = _optimizer(train.sub("optim_g", "the generator's optimizer"))
    if has_d:
        out["optim_d"] = _optimizer(train.sub("optim_d", "the discriminator's optimizer"))
    sched = train.child("scheduler")
    out["scheduler"] = None if sched is None else _scheduler(sched)
    out["warmup_iter"] = max(train.as_int("warmup_iter", -1, minimum=-(2**63)), 0)
    losses: dict[str, Any] = {}
    pixel = train.child("pixel_opt")
    if pixel is not None:
        losses["pixel"] = _pixel_loss(pixel)
    elif not has_d:
        train.need("pixel_opt", "RealESRNetModel needs a pixel loss")
    percep = train.child("perceptual_opt")
    if percep is not None:
        losses["perceptual"] = _perceptual_loss(percep)
    if has_d:
        losses["gan"] = _gan_loss(train.sub("gan_opt", f"{kind} needs a GAN loss"), kind)
        out["net_d_iters"] = train.as_int("net_d_iters", 1, minimum=1)
        out["net_d_init_iters"] = train.as_int("net_d_init_iters", 0)
    out["losses"] = losses
    ema = train.as_float("ema_decay", 0.0)
    if not 0.0 <= ema < 1.0:
        train.fail("ema_decay", f"expected a number in [0, 1), got {ema!r}")
    out["ema_decay"] = ema
    train.done()
    return out


def _pixel_loss(pixel: _Section) -> dict[str, Any]:
    kind = pixel.choice("type", LOSSES, "losses")
    loss = {
        "type": kind,
        "loss_weight": pixel.as_float("loss_weight"),
        "reduction": pixel.as_str("reduction"),
    }
    loss.update({k: pixel.as_float(k) for k in LOSSES[kind]})
    pixel.done()
    return {k: v for k, v in loss.items() if v is not None}


def _perceptual_loss(p: _Section) -> dict[str, Any]:
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


def _gan_loss(g: _Section, kind: str) -> dict[str, Any]:
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

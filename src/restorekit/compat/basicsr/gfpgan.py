"""GFPGAN's ``GFPGANModel`` (``options/train_gfpgan_v1.yml``, ``train_gfpgan_v1_simple.yml``)
→ ``task: face`` (``restorekit.config.face``).

The face config keeps GFPGAN's names, so most keys move as they are:

* ``network_g`` / ``network_d`` / ``network_d_left_eye`` / ``network_d_right_eye`` /
  ``network_d_mouth`` / ``network_identity`` keep their names and arguments (checked against the
  registered architectures now; ``decoder_load_path`` stays a path — the file must be there);
* ``path.pretrain_network_<role>`` → ``pretrained_<role>`` (``pretrained`` for G,
  ``pretrained_d`` ... ``pretrained_identity``); ``param_key_g`` / ``strict_load_g`` as in the
  other converters;
* ``train.pixel_opt`` / ``L1_opt`` / ``perceptual_opt`` / ``gan_opt`` / ``gan_component_opt`` →
  ``train.losses.pixel`` / ``l1`` / ``perceptual`` / ``gan`` / ``gan_component``; the loose
  weights (``pyramid_loss_weight``, ``r1_reg_weight``, ``net_d_reg_every``...) keep their names
  under ``train``; top-level ``find_unused_parameters`` → ``train.find_unused_parameters``;
* the ``FFHQDegradationDataset`` training set keeps GFPGAN's argument names (ours takes them).

What ``GFPGANModel`` hard-codes in Python is written out, each with a note, so the converted
file says what the run does: the optimizers' betas ((0, 0.99) for G and D, (0.9, 0.99) for the
component Ds; D's lazy-R1 correction is applied by the face task from those), the EMA decay
0.5 ** (32 / 10000), and ``component_d_fake_loss: global_gan`` (its component Ds judge restored
crops with the global GAN loss). The option file's own betas, ``ema_decay`` and other optimizer
arguments, which GFPGAN never reads, are dropped with a note. Where GFPGAN reads a key with a
default (``pyramid_loss_weight`` 0, ``comp_style_weight`` 0...), that default is written out.

Validation sets are ``PairedImageDataset`` with GFPGAN's ``mean``/``std`` 0.5 (its networks take
[-1, 1]); the face task maps [0, 1] validation images to the network's range itself, so 0.5 is
dropped with a note and any other normalisation refused.
"""

from __future__ import annotations

from typing import Any

from restorekit.compat.basicsr.common import (
    BASICSR_PARAM_KEY,
    DROP_PATH,
    check_arch,
    finish,
    io_backend,
    pixel_loss,
    schedule,
    train_loader,
)
from restorekit.compat.basicsr.gan import gan_loss, perceptual_loss
from restorekit.compat.basicsr.section import Section
from restorekit.config.face import COMPONENTS, GFPGAN_EMA_DECAY

KIND = "GFPGANModel"
G_BETAS, D_BETAS, COMPONENT_BETAS = [0.0, 0.99], [0.0, 0.99], [0.9, 0.99]  # GFPGANModel.setup_optimizers
HALF = [0.5, 0.5, 0.5]  # GFPGAN's mean/std: images in [-1, 1]
# FFHQDegradationDataset's arguments, and how each is read. GFPGAN reads the first group with
# opt[key] (a KeyError without them), the second with opt.get(key) (absent: its default).
FFHQ_REQUIRED = {
    "out_size": "int",
    "use_hflip": "bool",
    "mean": "floats",
    "std": "floats",
    "blur_kernel_size": "int",
    "kernel_list": "strs",
    "kernel_prob": "floats",
    "blur_sigma": "floats",
    "downsample_range": "floats",
    "noise_range": "floats",
    "jpeg_range": "floats",
}
FFHQ_OPTIONAL = {
    "color_jitter_prob": "float",
    "color_jitter_shift": "float",
    "color_jitter_pt_prob": "float",
    "gray_prob": "float",
    "gt_gray": "bool",
    "brightness": "floats",
    "contrast": "floats",
    "saturation": "floats",
    "hue": "floats",
    "crop_components": "bool",
    "component_path": "str",
    "eye_enlarge_ratio": "float",
}
_ADAM_ONLY = ("Adam", "AdamW")  # GFPGANModel passes betas to the optimizer: only Adam's family takes them
_IGNORED_OPTIM = "GFPGANModel passes only lr (and its hard-coded betas) to the optimizer"
_NO_COMP = "GFPGANModel trains no component discriminators here (no network_d_left_eye/right_eye/mouth)"
_NO_ID = "GFPGANModel has no identity network here (no network_identity)"


def convert(top: Section) -> dict[str, Any]:
    """A GFPGANModel option file (``model_type`` already checked) → our ``task: face`` config."""
    out = _begin(top)
    out["network_g"] = check_arch(top.sub("network_g", "the face restorer, e.g. GFPGANv1"))
    if out["network_g"].get("decoder_load_path"):
        top.note("network_g.decoder_load_path", "the StyleGAN2 prior is read there (never downloaded)")
    out["network_d"] = check_arch(top.sub("network_d", "GFPGANModel trains a StyleGAN2Discriminator"))
    comps = _components(top)
    for c in comps:
        out[f"network_d_{c}"] = check_arch(top.sub(f"network_d_{c}", "a FacialComponentDiscriminator"))
    has_id = "network_identity" in top
    if has_id:
        out["network_identity"] = check_arch(top.sub("network_identity", "the frozen ResNetArcFace"))
    out.update(_paths(top.child("path"), bool(comps), has_id))
    find_unused = top.as_bool("find_unused_parameters", False)  # read here: common drops it
    _val_normalisation(top)
    out["scale"] = 1  # what common's dataset readers compare against; the face task has no scale key
    train, tail = finish(top, out, lambda ds, _scale: _train_set(ds, out["network_g"], bool(comps)))
    del out["scale"]
    if train is not None:
        out["train"] = _train(train, bool(comps), has_id)
        out["train"]["find_unused_parameters"] = find_unused
        if "find_unused_parameters" in top:
            top.note("find_unused_parameters", "mapped to train.find_unused_parameters")
    elif "find_unused_parameters" in top:
        top.note("find_unused_parameters", "dropped — there is no train section")
    return {**out, **tail}


def _begin(top: Section) -> dict[str, Any]:
    """name, task and seed; a top-level ``scale`` may only be 1 (a face is restored in place)."""
    top.need("name", "the run name")
    out: dict[str, Any] = {"name": top.as_str("name"), "task": "face"}
    seed = top.as_int("manual_seed")
    if seed is None:
        top.note("manual_seed", "missing or null: BasicSR draws a random seed; restorekit uses 0")
    out["seed"] = seed or 0
    if top.get("scale") is not None:
        if top.as_int("scale", minimum=1) != 1:
            top.fail("scale", f"a face is restored at its size; expected 1, got {top.data['scale']}")
        top.note("scale", "dropped — the face task works at scale 1")
    return out


def _components(top: Section) -> tuple[str, ...]:
    """The component roles: all three or none (GFPGANModel silently ignores an incomplete set)."""
    given = [c for c in COMPONENTS if f"network_d_{c}" in top]
    if given and len(given) != len(COMPONENTS):
        missing = next(c for c in COMPONENTS if c not in given)
        top.fail(
            f"network_d_{missing}",
            "missing; GFPGANModel uses the component discriminators only when all three are given "
            "(left_eye, right_eye, mouth) and would silently train without them",
        )
    return COMPONENTS if given else ()


# ------------------------------------------------------------------------------------ path


def _paths(path: Section | None, comps: bool, has_id: bool) -> dict[str, Any]:
    """``path``: every network's weights file. GFPGANModel loads G with ``param_key_g`` (default
    ``params``) and every other network strictly with a fixed key, which ours picks the same."""
    if path is None:
        return {"pretrained": None, "pretrained_strict": True}
    out: dict[str, Any] = {"pretrained": path.as_str("pretrain_network_g")}
    out["pretrained_strict"] = _strict(path, "strict_load_g", out["pretrained"])
    key = path.as_str("param_key_g")
    if key is None and out["pretrained"] is not None:
        key = BASICSR_PARAM_KEY
    if key is not None:
        out["pretrained_param_key"] = key
    if out["pretrained"] is not None:
        path.note(
            "pretrain_network_g",
            "GFPGANModel starts its EMA copy from the file's params_ema; restorekit starts it from "
            "the loaded generator",
        )
    out["pretrained_d"] = path.as_str("pretrain_network_d")
    _strict(path, "strict_load_d", out["pretrained_d"], mapped=False)
    path.drop({"param_key_d": "GFPGANModel ignores it (it loads the discriminator's 'params')"})
    for c in COMPONENTS:
        if comps:
            out[f"pretrained_d_{c}"] = path.as_str(f"pretrain_network_d_{c}")
        else:
            path.drop({f"pretrain_network_d_{c}": _NO_COMP})
    if has_id:
        out["pretrained_identity"] = path.as_str("pretrain_network_identity")
        if out["pretrained_identity"] is not None:
            path.note("pretrain_network_identity", "mapped to pretrained_identity (never downloaded)")
    else:
        path.drop({"pretrain_network_identity": _NO_ID})
    if path.as_str("experiments_root") is not None:
        out["experiments_root"] = path.as_str("experiments_root")
    path.drop(
        {
            **DROP_PATH,
            "ignore_resume_networks": "the identity network is frozen: resuming never changes it",
        }
    )
    path.done()
    return out


def _strict(path: Section, key: str, weights: str | None, mapped: bool = True) -> bool:
    """``strict_load_*``: BasicSR passes the value itself to ``load_state_dict``, so null loads
    non-strictly — which only matters when a file is loaded. Without ``mapped`` (D: the face
    config loads it strictly) anything but a strict load is refused."""
    if path.get(key) is None:
        if key in path and weights is not None:
            if not mapped:
                path.fail(key, "null (a non-strict load) cannot be converted; restorekit loads it strictly")
            path.note(key, "null: BasicSR then loads non-strictly; mapped to false")
            return False
        return True
    strict = path.as_bool(key, True)
    if not strict and not mapped:
        path.fail(key, "false cannot be converted; restorekit loads this network strictly")
    return strict


# ------------------------------------------------------------------------------------ data


def _val_normalisation(top: Section) -> None:
    """GFPGAN normalises validation images to [-1, 1] (mean/std 0.5); the face task takes [0, 1]
    ones and maps them itself, so 0.5 is dropped here before the common paired-set reader (which
    refuses any normalisation) sees the set, and the set's ``scale`` must be 1."""
    sets = top.data.get("datasets")
    if not isinstance(sets, dict):
        return
    for phase, data in sets.items():
        if str(phase).split("_")[0] != "val" or not isinstance(data, dict):
            continue
        vs = Section(top.notes, top.source, data, f"datasets.{phase}")
        given = [k for k in ("mean", "std") if vs.data.get(k) is not None]
        for k in given:
            value = vs.as_list(k, "floats")
            if value != HALF:
                vs.fail(k, f"{value!r} cannot be converted; only [0.5, 0.5, 0.5] (GFPGAN's [-1, 1]) or ~")
        if len(given) == 1:
            vs.fail(given[0], "mean and std come together (PairedImageDataset normalises with both)")
        for k in given:
            vs.note(k, "dropped — [0.5, 0.5, 0.5] is GFPGAN's [-1, 1]; the face task maps [0, 1] "
                    "validation images to the network's range itself")  # fmt: skip
        if not given:
            vs.note("mean", "missing: GFPGAN would feed [0, 1] images to its [-1, 1] network; the face "
                    "task maps them to the network's range")  # fmt: skip
        if data.get("scale") is not None and vs.as_int("scale", minimum=1) != 1:
            vs.fail("scale", f"a face is restored at its size; expected 1, got {data['scale']}")
        if data.get("scale") is not None:
            vs.note("scale", "dropped — the face task works at scale 1")
        for k in ("mean", "std", "scale"):
            data.pop(k, None)


def _train_set(ds: Section, net_g: dict[str, Any], comps: bool) -> dict[str, Any]:
    """An ``FFHQDegradationDataset`` training set: GT faces, LQ made on the fly (GFPGAN's names)."""
    ds.choice("type", ("FFHQDegradationDataset",), "dataset types for GFPGANModel")
    dataset: dict[str, Any] = {"type": "FFHQDegradationDataset"}
    ds.need("dataroot_gt", "a folder or LMDB path of aligned faces")
    dataset["dataroot_gt"] = ds.as_str("dataroot_gt")
    dataset["io_backend"] = io_backend(ds)
    for key, how in FFHQ_REQUIRED.items():
        ds.need(key, f"FFHQDegradationDataset reads {key} without a default")
        dataset[key] = _read(ds, key, how)
    for key, how in FFHQ_OPTIONAL.items():
        ds.known.add(key)
        if key in ds:
            dataset[key] = _read(ds, key, how)
    if net_g.get("out_size") not in (None, dataset["out_size"]):
        ds.fail("out_size", f"{dataset['out_size']} disagrees with network_g.out_size {net_g['out_size']}")
    if dataset.get("crop_components"):
        ds.need("component_path", "the eye/mouth landmarks file (FFHQ_eye_mouth_landmarks_512.pth)")
        ds.note("component_path", "the landmarks file is read from this path (never downloaded)")
    elif comps:
        ds.fail(
            "crop_components",
            "must be true with the component discriminators (GFPGANModel needs the eye/mouth boxes)",
        )
    return train_loader(ds, dataset)


def _read(ds: Section, key: str, how: str) -> Any:
    if how == "int":
        return ds.as_int(key)
    if how == "str":
        return ds.as_str(key)
    if how == "strs":
        value = ds.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            ds.fail(key, f"expected a list of names, got {value!r}")
        return list(value)
    if how == "bool":
        return ds.as_bool(key, False)  # null is falsy in GFPGAN's `if opt.get(key)`
    return ds.read(key, how)


# ------------------------------------------------------------------------------------ train


def _train(train: Section, comps: bool, has_id: bool) -> dict[str, Any]:
    """``train``: GFPGANModel's optimizers, losses and loose weights, its hard-coded values written out."""
    train.need("total_iter", "the number of iterations")
    out: dict[str, Any] = {"total_iter": train.as_int("total_iter", minimum=1)}
    out["optim_g"] = _optimizer(train, "optim_g", G_BETAS, "the generator's optimizer")
    out["optim_d"] = _optimizer(train, "optim_d", D_BETAS, "the discriminator's optimizer")
    train.note(
        "optim_d",
        "the face task raises lr and betas to net_d_reg_every / (net_d_reg_every + 1) itself "
        "(StyleGAN2's lazy-R1 correction), as GFPGANModel does",
    )
    if comps:
        out["optim_component"] = _optimizer(
            train, "optim_component", COMPONENT_BETAS, "the component discriminators' optimizer"
        )
    else:
        train.drop({"optim_component": _NO_COMP})
    schedule(train, out)
    out["losses"] = _losses(train, comps)
    out["pyramid_loss_weight"] = _weight(train, "pyramid_loss_weight", 0.0)
    if train.get("remove_pyramid_loss") is not None:
        out["remove_pyramid_loss"] = train.as_int("remove_pyramid_loss")
    train.need("r1_reg_weight", "GFPGANModel reads it without a default")
    out["r1_reg_weight"] = _weight(train, "r1_reg_weight", None)
    train.need("net_d_reg_every", "GFPGANModel reads it without a default")
    out["net_d_reg_every"] = train.as_int("net_d_reg_every", minimum=1)
    out["net_d_iters"] = train.as_int("net_d_iters", 1, minimum=1)
    out["net_d_init_iters"] = train.as_int("net_d_init_iters", 0)
    if comps:
        out["comp_style_weight"] = _weight(train, "comp_style_weight", 0.0)
        out["component_d_fake_loss"] = "global_gan"
        train.note(
            "gan_component_opt",
            "component_d_fake_loss: global_gan written out — GFPGANModel's component Ds judge "
            "restored crops with the global gan_opt loss and real ones with gan_component_opt",
        )
    else:
        train.drop({"comp_style_weight": _NO_COMP})
    if has_id:
        train.need("identity_weight", "GFPGANModel reads it without a default")
        out["identity_weight"] = _weight(train, "identity_weight", None)
    else:
        train.drop({"identity_weight": _NO_ID})
    train.drop({"ema_decay": "GFPGANModel ignores it (its EMA decay is hard-coded)"})
    out["ema_decay"] = GFPGAN_EMA_DECAY
    train.note("ema_decay", "0.5 ** (32 / 10000) written out — GFPGANModel hard-codes it, every iteration")
    train.done()
    return out


def _optimizer(train: Section, key: str, betas: list[float], what: str) -> dict[str, Any]:
    """``type`` and ``lr`` (all GFPGANModel reads), with GFPGAN's hard-coded ``betas``."""
    opt = train.sub(key, what)
    opt.choice("type", _ADAM_ONLY, "optimizers for GFPGANModel (it passes betas)")
    opt.need("lr", "the learning rate")
    out = {"type": opt.data["type"], "lr": opt.as_float("lr"), "betas": list(betas)}
    opt.drop(dict.fromkeys(("betas", "eps", "weight_decay", "amsgrad"), _IGNORED_OPTIM))
    opt.done()
    train.note(key, f"betas {betas} written out — GFPGANModel hard-codes them")
    return out


def _losses(train: Section, comps: bool) -> dict[str, Any]:
    losses: dict[str, Any] = {}
    pixel = train.child("pixel_opt")
    if pixel is not None:
        losses["pixel"] = pixel_loss(pixel)
    l1 = train.sub("L1_opt", "GFPGANModel's L1 of the pyramid, component-style and identity losses")
    losses["l1"] = pixel_loss(l1)
    percep = train.child("perceptual_opt")
    if percep is not None:
        losses["perceptual"] = perceptual_loss(percep)
    losses["gan"] = gan_loss(train.sub("gan_opt", "GFPGANModel needs the global GAN loss"), KIND)
    if comps:
        spec = train.sub("gan_component_opt", "the component discriminators' GAN loss")
        losses["gan_component"] = gan_loss(spec, KIND)
    else:
        train.drop({"gan_component_opt": _NO_COMP})
    return losses


def _weight(train: Section, key: str, default: float | None) -> float:
    value = train.as_float(key, default)
    if value < 0:
        train.fail(key, f"expected a number >= 0, got {train.data[key]!r}")
    return value

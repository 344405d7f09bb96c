"""Real-ESRGAN's ``RealESRNetModel`` and ``RealESRGANModel`` → ``task: adversarial`` with a
``degradation`` section: LQ images are synthesised on the fly from GT-only training images.

* The top-level degradation options (``resize_prob`` ... ``jpeg_range2``, ``gt_size``,
  ``queue_size``) → the ``degradation`` section; ``RealESRGANDataset``'s kernel options keep
  their names.
* ``l1_gt_usm`` / ``percep_gt_usm`` / ``gan_gt_usm`` (RealESRGANModel) and ``gt_usm``
  (RealESRNetModel) → ``train.usm_gt``, the losses whose target is the sharpened GT.
* RealESRNetModel has no discriminator: it becomes the same task without ``network_d``.
"""

from __future__ import annotations

from typing import Any

from restorekit.compat.basicsr.common import begin, finish, io_backend, network, paths, train_loader
from restorekit.compat.basicsr.gan import adversarial_train, discriminator
from restorekit.compat.basicsr.section import Section

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
_USM_FLAGS = {"pixel": "l1_gt_usm", "perceptual": "percep_gt_usm", "gan": "gan_gt_usm"}


def convert(top: Section) -> dict[str, Any]:
    """A RealESRNetModel / RealESRGANModel option file (``model_type`` already checked)."""
    kind = top.data["model_type"]
    has_d = kind == "RealESRGANModel"
    out = begin(top, "adversarial")
    out["network_g"] = network(top.sub("network_g", "the network to train"), out["scale"])
    if has_d:
        out["network_d"] = discriminator(top.sub("network_d", f"{kind} trains a discriminator"))
    else:
        top.refuse(("network_d",), f"{kind} trains no discriminator")
    out.update(paths(top.child("path"), has_d=has_d, no_d=f"{kind} has no discriminator"))
    out["degradation"], usm = _degradation(top, has_d)
    train, tail = finish(top, out, _train_set)
    if train is not None:
        out["train"] = adversarial_train(train, kind, has_d=has_d)
        out["train"]["usm_gt"] = [n for n in usm if n in out["train"]["losses"]]
    return {**out, **tail}


def _degradation(top: Section, has_d: bool) -> tuple[dict[str, Any], list[str]]:
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
    if has_d:
        return deg, [name for name, key in _USM_FLAGS.items() if _usm_flag(top, key)]
    usm = ["pixel"] if _usm_flag(top, "gt_usm") else []
    if usm:
        top.note(
            "gt_usm",
            "mapped to train.usm_gt: [pixel]; the sharpened target is made from the cropped patch "
            "(as RealESRGANModel does), not cropped from the sharpened image — they differ only "
            "near the patch border",
        )
    return deg, usm


def _usm_flag(top: Section, key: str) -> bool:
    if key not in top:
        top.known.add(key)
        top.note(key, "missing (Real-ESRGAN would stop with a KeyError); taken as true, its files' value")
        return True
    return top.as_bool(key, True)


def _train_set(ds: Section, scale: int) -> dict[str, Any]:
    """A RealESRGANDataset training set (GT only); ``scale`` is the degradation's, not the set's."""
    ds.choice("type", ("RealESRGANDataset",), "dataset types for Real-ESRGAN models")
    dataset: dict[str, Any] = {"type": "RealESRGANDataset"}
    ds.need("dataroot_gt", "a folder or LMDB path")
    dataset["dataroot_gt"] = ds.as_str("dataroot_gt")
    if ds.get("meta_info") is not None:
        dataset["meta_info"] = ds.as_str("meta_info")
    dataset["io_backend"] = io_backend(ds)
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


def _strs(section: Section, key: str) -> list[str]:
    value = section.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        section.fail(key, f"expected a list of names, got {value!r}")
    return list(value)

"""What every BasicSR converter shares: the parts of an option file that read the same in every
model type — the top keys, paths, datasets and loaders, validation and its metrics, optimizers,
schedulers, the pixel loss, the logger — and the tables of keys dropped with a note.

Each converter module builds on these and adds only what its model type means differently, so
a fix to, say, the scheduler mapping reaches SRModel and the GAN models alike.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import restorekit.archs  # noqa: F401  (registers the architectures that ARCHS.check looks up)
from restorekit.compat.basicsr.section import Section
from restorekit.errors import ConfigError
from restorekit.metrics.niqe import NIQE_WHAT
from restorekit.registry import ARCHS

_ADAM = {"lr": "float", "betas": "floats", "eps": "float", "weight_decay": "float", "amsgrad": "bool"}
OPTIMIZERS = {  # the arguments BasicSR passes on to torch.optim, and how each is read
    "Adam": _ADAM,
    "AdamW": _ADAM,
    "SGD": {
        "lr": "float",
        "momentum": "float",
        "dampening": "float",
        "weight_decay": "float",
        "nesterov": "bool",
    },
}
_MULTISTEP = ("MultiStepRestartLR", {"milestones": "ints", "gamma": "float", "restarts": "ints"})
SCHEDULERS = {  # BasicSR's name → ours; its arguments (the first one required) and how each is read
    "MultiStepLR": _MULTISTEP,  # BasicSR builds MultiStepRestartLR for both names
    "MultiStepRestartLR": _MULTISTEP,
    "CosineAnnealingRestartLR": ("CosineAnnealingRestartLR", {"periods": "ints", "eta_min": "float"}),
}
LOSSES = {"L1Loss": (), "MSELoss": (), "CharbonnierLoss": ("eps",)}  # all take loss_weight, reduction
# BasicSR's metric → ours, and the options it maps (crop_border in all; "bool" / choices)
METRICS: dict[str, tuple[str, dict[str, Any]]] = {
    "calculate_psnr": ("psnr", {"test_y_channel": "bool"}),
    "calculate_ssim": ("ssim", {"test_y_channel": "bool"}),
    "calculate_niqe": ("niqe", {"convert_to": ("y", "gray")}),
}
GAN_HINT = "; GAN options (network_d, optim_d, gan_opt...) need a GAN model_type (SRGANModel, ESRGANModel...)"
D_PATH_KEYS = ("pretrain_network_d", "strict_load_d", "param_key_d")
TrainSet = Callable[[Section, int], dict[str, Any]]  # a training set section, the scale → loader
BASICSR_PARAM_KEY = "params"  # what BasicSR's load_network reads when param_key_g/_d is absent

# Keys dropped with a note, and why. Keys that a BasicSR run fills in itself are dropped too.
_RUNTIME = "set by BasicSR at run time"
DROP_TOP = {
    "num_gpu": "restorekit runs one process per GPU (torchrun for several); batch_size is per process",
    "dist": "distributed mode comes from torchrun, not from the config",
    "dist_params": "distributed settings come from torchrun's environment",
    "find_unused_parameters": "restorekit's DDP wrapping decides it",
    "auto_resume": "use `restorekit train --resume auto`",
    **dict.fromkeys(("is_train", "rank", "world_size", "root_path"), _RUNTIME),
}
DROP_PATH = {
    "resume_state": "restorekit resumes from its own checkpoints (`restorekit train --resume`)",
    **dict.fromkeys(("models", "training_states", "log", "visualization", "results_root"), _RUNTIME),
}
DROP_TRAIN_SET = {
    "name": "the training set needs no name in restorekit",
    "phase": _RUNTIME,
    "dataset_enlarge_ratio": "it only lengthens BasicSR's epochs; restorekit counts iterations",
    "num_prefetch_queue": "restorekit's prefetchers have no queue length",
    "persistent_workers": "restorekit always keeps its workers alive",
}
_LOADER = "BasicSR validates with batch 1 and no workers whatever is set (restorekit's default too)"
_TRAIN_ONLY = "BasicSR ignores it outside training"
_VAL_LOADER_KEYS = ("batch_size_per_gpu", "num_worker_per_gpu", "prefetch_mode", "num_prefetch_queue")
DROP_VAL_SET = {
    "phase": _RUNTIME,
    **dict.fromkeys(("gt_size", "use_hflip", "use_rot", "dataset_enlarge_ratio", "use_shuffle"), _TRAIN_ONLY),
    **dict.fromkeys((*_VAL_LOADER_KEYS, "pin_memory", "persistent_workers"), _LOADER),
}


# ------------------------------------------------------------------------------------ the top


def begin(top: Section, task: str) -> dict[str, Any]:
    """The first keys of every converted config: name, task, scale and seed."""
    top.need("name", "the run name")
    name = top.as_str("name")
    scale = top_scale(top)
    seed = top.as_int("manual_seed")
    if seed is None:
        top.note("manual_seed", "missing or null: BasicSR draws a random seed; restorekit uses 0")
    return {"name": name, "task": task, "scale": scale, "seed": seed or 0}


def top_scale(top: Section) -> int:
    """The top-level scale; BasicSR copies it into every dataset, so a dataset may only repeat it."""
    if top.get("scale") is not None:
        return top.as_int("scale", minimum=1)
    sets = top.data.get("datasets")
    found = (
        {s.get("scale") for s in sets.values() if isinstance(s, dict)} if isinstance(sets, dict) else set()
    )
    found.discard(None)
    if len(found) != 1:
        top.need("scale", "the upscaling factor, 1 for restoration")
    return top.check_int("scale", found.pop(), 1)


def network(net: Section, scale: int) -> dict[str, Any]:
    """``network_g`` as is (our architectures take BasicSR's argument names), checked now against
    the registered constructor, with ``scale``/``upscale`` filled in as training does."""
    if not isinstance(net.data.get("type"), str):
        net.fail("type", f"expected the architecture name, got {net.data.get('type')!r}")
    for k in ("upscale", "scale"):  # BasicSR does not check it; its training fails on shapes later
        value = net.data.get(k)
        if isinstance(value, int) and not isinstance(value, bool) and value != scale:
            net.fail(k, f"{value} disagrees with the top-level scale {scale}")
    return check_arch(net, upscale=scale, scale=scale)


def check_arch(net: Section, **extra: Any) -> dict[str, Any]:
    """The architecture spec of ``net``, after ``ARCHS.check``: an unknown type or argument is
    reported at import, naming the BasicSR file, instead of at the first training run."""
    try:
        ARCHS.check(net.data, net.path, **extra)
    except ConfigError as exc:
        raise ConfigError(f"{net.source}: {exc}") from None
    return dict(net.data)


def finish(top: Section, out: dict[str, Any], train_set: TrainSet) -> tuple[Section | None, dict[str, Any]]:
    """``datasets`` into ``out``; the rest of the top level read, dropped or refused.

    Returns the ``train`` section, which the caller converts last (its notes come last), and
    the ``val`` and ``logger`` keys, which go after it in the converted file.
    """
    out["data"] = datasets(top.child("datasets"), out["scale"], train_set)
    val_section = top.child("val")
    if val_section is None and out["data"]["val"]:
        top.note("val", "missing: BasicSR would never validate; restorekit validates at the end")
    val, progress_bar = val_options(val_section, out["data"]["val"])
    train = top.child("train")
    logger = convert_logger(top.child("logger"))
    if progress_bar is not None:
        logger["progress_bar"] = progress_bar
    top.drop(DROP_TOP)
    top.done()
    return train, {"val": val, "logger": logger}


# ------------------------------------------------------------------------------------ path


def paths(path: Section | None, has_d: bool, no_d: str) -> dict[str, Any]:
    """``path``: pretrained weights (with BasicSR's ``param_key`` default), experiments_root.

    ``no_d`` is the refusal for discriminator keys when the model type has none.
    """
    if path is None:
        return {}
    if not has_d:
        path.refuse(D_PATH_KEYS, no_d)
    out: dict[str, Any] = {}
    for net, ours in (("g", "pretrained"), ("d", "pretrained_d")):
        if net == "d" and not has_d:
            continue
        out[ours] = path.as_str(f"pretrain_network_{net}")
        out[f"{ours}_strict"] = path.as_bool(f"strict_load_{net}", True)
        key = path.as_str(f"param_key_{net}")
        if key is None and out[ours] is not None:
            key = BASICSR_PARAM_KEY
        if key is not None:
            out[f"{ours}_param_key"] = key
    if path.as_str("experiments_root") is not None:  # runs go to <root>/<name> in both
        out["experiments_root"] = path.as_str("experiments_root")
    path.drop(DROP_PATH)
    path.done()
    return out


# ------------------------------------------------------------------------------------ data


def datasets(sets: Section | None, scale: int, train_set: TrainSet) -> dict[str, Any]:
    """``datasets``: the ``train`` set through ``train_set``, every ``val*`` set by its name."""
    data: dict[str, Any] = {}
    val: dict[str, Any] = {}
    if sets is None:
        return {"val": val}
    for phase in list(sets.data):
        if phase == "train":
            data["train"] = train_set(sets.sub(phase, "the training set"), scale)
        elif str(phase).split("_")[0] == "val":
            vs = sets.sub(phase, "a validation set")
            name = vs.as_str("name", str(phase))  # the set's name becomes its key, as in BasicSR's logs
            if name in val:
                vs.fail("name", f"validation set name {name!r} is used twice")
            val[name] = {"dataset": paired_dataset(vs, scale)}
            vs.drop(DROP_VAL_SET)
            vs.done()
        else:
            sets.fail(phase, "BasicSR trains with 'train' and 'val*' datasets only; expected one of those")
    return {**data, "val": val}


def io_backend(ds: Section) -> str:
    io = ds.child("io_backend")
    if io is None:
        return "disk"
    kind = io.choice("type", ("disk", "lmdb"), "io backends")
    io.done()
    return kind


def paired_dataset(ds: Section, scale: int) -> dict[str, Any]:
    """The arguments shared by paired training and validation sets (our PairedImageDataset)."""
    ds.choice("type", ("PairedImageDataset",), "dataset types")
    if ds.get("scale") is not None:
        if ds.as_int("scale", minimum=1) != scale:
            ds.fail("scale", f"{ds.data['scale']} disagrees with the top-level scale {scale}")
        ds.note("scale", "dropped — the top-level scale is used, as in BasicSR")
    for k in ("mean", "std"):  # null is BasicSR's "no normalisation", which is ours
        if ds.get(k) is not None:
            ds.fail(k, "mean/std normalisation is not supported; images stay in [0, 1]")
    out: dict[str, Any] = {"type": "PairedImageDataset"}
    if ds.get("color") is not None:  # BasicSR's Y-channel training (its ECBSR files): 1-channel GT/LQ
        out["color"] = ds.choice("color", ("y",), "colours", " (or ~ for RGB)")
    for k in ("dataroot_gt", "dataroot_lq"):
        ds.need(k, "a folder or LMDB path")
        out[k] = ds.as_str(k)
    out["io_backend"] = io_backend(ds)
    meta, tmpl = ds.as_str("meta_info_file"), ds.as_str("filename_tmpl")
    if out["io_backend"] == "lmdb":  # BasicSR pairs LMDB stores by their keys and ignores both
        for k, v in (("meta_info_file", meta), ("filename_tmpl", None if tmpl == "{}" else tmpl)):
            if v is not None:
                ds.note(k, "dropped — BasicSR ignores it with io_backend lmdb")
    else:
        out.update({k: v for k, v in (("meta_info", meta), ("filename_tmpl", tmpl)) if v is not None})
    return out


def paired_train_set(ds: Section, scale: int) -> dict[str, Any]:
    """A PairedImageDataset training set with its patch size, flips and loader."""
    dataset = paired_dataset(ds, scale)
    ds.need("gt_size", "the training patch size")
    dataset["gt_size"] = ds.as_int("gt_size", minimum=1)
    dataset.update(use_hflip=ds.as_bool("use_hflip", False), use_rot=ds.as_bool("use_rot", False))
    return train_loader(ds, dataset)


def train_loader(ds: Section, dataset: dict[str, Any]) -> dict[str, Any]:
    """The loader keys of a BasicSR training set around an already converted ``dataset``."""
    ds.need("batch_size_per_gpu", "the batch size")
    loader: dict[str, Any] = {"dataset": dataset, "batch_size": ds.as_int("batch_size_per_gpu", minimum=1)}
    loader["num_workers"] = ds.as_int("num_worker_per_gpu", 0)
    if ds.get("prefetch_mode") is not None:
        loader["prefetch"] = ds.choice("prefetch_mode", ("cpu", "cuda"), "prefetch modes (or ~)")
    else:  # BasicSR's plain DataLoader → auto: the same batches, with copies hidden on a GPU
        loader["prefetch"] = "auto"
    if "pin_memory" in ds:
        loader["pin_memory"] = ds.as_bool("pin_memory", False)
    if "use_shuffle" in ds:
        if not ds.as_bool("use_shuffle", True):
            ds.fail("use_shuffle", "false is not supported; restorekit always shuffles the training set")
        ds.note("use_shuffle", "dropped — restorekit always shuffles the training set")
    ds.drop(DROP_TRAIN_SET)
    ds.done()
    return loader


# ------------------------------------------------------------------------------------ val


def val_options(val: Section | None, sets: dict[str, Any]) -> tuple[dict[str, Any], bool | None]:
    """Our ``val`` section and BasicSR's ``val.pbar`` (our ``logger.progress_bar``; None if absent).

    BasicSR applies ``val.metrics`` and ``val.save_img`` to every validation set; so do we.
    """
    metrics: dict[str, Any] = {}
    save, freq, pbar = False, None, None
    if val is not None:
        freq = val.as_int("val_freq", minimum=1)
        save = val.as_bool("save_img", False)
        if "pbar" in val:
            pbar = val.as_bool("pbar", False)
            val.note("pbar", "mapped to logger.progress_bar (restorekit's bar follows training)")
        val.drop({"suffix": "it only names BasicSR's test-time outputs"})
        section = val.child("metrics")
        metrics = {} if section is None else val_metrics(section)
        val.done()
    for vset in sets.values():
        vset.update(metrics=copy.deepcopy(metrics), save_images=save)
    return ({} if freq is None else {"freq": freq}), pbar


def val_metrics(section: Section) -> dict[str, Any]:
    """``val.metrics``: each BasicSR metric function → our metric of the same definition."""
    out: dict[str, Any] = {}
    for label in list(section.data):
        m = section.sub(label, "a metric")
        kind = m.get("type")
        if not isinstance(kind, str) or kind not in METRICS:
            known = ", ".join(METRICS)
            m.fail("type", f"{kind!r} cannot be converted; supported metric types: {known} (remove it)")
        name, table = METRICS[kind]
        if name in out:
            m.fail("type", f"a second {kind} metric cannot be converted (one {name!r} per set)")
        m.note("type", f"dropped — {kind} is restorekit's metric {name!r}")
        opts: dict[str, Any] = {}
        if "crop_border" in m:
            opts["crop_border"] = m.as_int("crop_border", 0)
        for k, how in table.items():
            if m.data.get(k) is not None:
                opts[k] = m.as_bool(k, False) if how == "bool" else m.choice(k, how, f"{k} values")
        if m.data.get("input_order") not in (None, "HWC"):
            m.fail("input_order", "only 'HWC' (what SRModel passes) can be converted")
        m.drop({"better": f"restorekit knows which way {name} is better", "input_order": "HWC is implied"})
        if name == "niqe":
            m.drop({"num_thread": "BasicSR's calculate_niqe ignores it"})
            m.note("type", f"{NIQE_WHAT} in the cache folder (never downloaded)")
        m.done()
        out[name] = opts
    return out


# ------------------------------------------------------------------------------------ train


def train_head(train: Section) -> dict[str, Any]:
    """total_iter and optim_g, the start of every model type's train section."""
    train.need("total_iter", "the number of iterations")
    out: dict[str, Any] = {"total_iter": train.as_int("total_iter", minimum=1)}
    out["optim_g"] = optimizer(train.sub("optim_g", "the generator's optimizer"))
    return out


def schedule(train: Section, out: dict[str, Any]) -> None:
    """``scheduler`` (one for all optimizers, as in BasicSR) and ``warmup_iter`` into ``out``."""
    sched = train.child("scheduler")
    out["scheduler"] = None if sched is None else scheduler(sched)
    # BasicSR warms up while iteration < warmup_iter, so -1 (any value <= 0) means no warm-up.
    out["warmup_iter"] = max(train.as_int("warmup_iter", -1, minimum=-(2**63)), 0)


def ema_decay(train: Section) -> float:
    ema = train.as_float("ema_decay", 0.0)
    if not 0.0 <= ema < 1.0:
        train.fail("ema_decay", f"expected a number in [0, 1), got {ema!r}")
    return ema


def pixel_loss(pixel: Section) -> dict[str, Any]:
    kind = pixel.choice("type", LOSSES, "losses")
    loss = {
        "type": kind,
        "loss_weight": pixel.as_float("loss_weight"),
        "reduction": pixel.as_str("reduction"),
    }
    loss.update({k: pixel.as_float(k) for k in LOSSES[kind]})
    pixel.done()
    return {k: v for k, v in loss.items() if v is not None}


def optimizer(opt: Section) -> dict[str, Any]:
    kind = opt.choice("type", OPTIMIZERS, "optimizers")
    opt.need("lr", "the learning rate")
    out = {"type": kind, **opt.optional(OPTIMIZERS[kind])}
    opt.done()
    return out


def scheduler(sched: Section) -> dict[str, Any]:
    kind = sched.choice("type", SCHEDULERS, "schedulers")
    ours, args = SCHEDULERS[kind]
    args = {**args, "restart_weights": "floats"}
    sched.need(next(iter(args)), f"required by {kind}")
    out = {"type": ours, **sched.optional(args)}
    if sched.data.get("last_epoch") not in (None, -1):
        sched.fail("last_epoch", "only -1 can be converted (restorekit resumes with --resume)")
    sched.drop({"last_epoch": "-1 is the start of training"})
    sched.done()
    return out


def convert_logger(log: Section | None) -> dict[str, Any]:
    if log is None:
        return {}
    out: dict[str, Any] = {}
    for k in ("print_freq", "save_checkpoint_freq"):
        if log.get(k) is not None:
            out[k] = log.as_int(k, minimum=1)
    out["tensorboard"] = log.as_bool("use_tb_logger", False)  # absent means off in BasicSR
    wandb = log.child("wandb")
    if wandb is not None:
        out["wandb_project"] = wandb.as_str("project")
        wandb.drop({"resume_id": "a BasicSR W&B run id is not carried over"})
        wandb.done()
    log.done()
    return out

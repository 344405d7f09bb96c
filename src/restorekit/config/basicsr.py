"""Convert a BasicSR training option file (``model_type: SRModel``; GAN models: basicsr_gan) to our config.

People arrive with years of BasicSR YAML, and converting it by hand is where settings get lost.
So every key of the BasicSR file ends up in exactly one of three places:

* **mapped** into the new config, with the same meaning (``manual_seed`` → ``seed``,
  ``batch_size_per_gpu`` → ``batch_size``, ``MultiStepLR`` → ``MultiStepRestartLR``, which is
  the class BasicSR builds for both names, ``warmup_iter: -1`` → ``0``, ``!!float 5e3`` → 5000);
* **dropped with a note** when BasicSR needs it but restorekit has no equivalent on purpose
  (``num_gpu``, ``dist_params``, ``dataset_enlarge_ratio``, ``resume_state``...). The notes are
  returned, printed by the CLI and written into the header of the converted file;
* **refused** with a one-line ``ConfigError`` naming the full dotted key of the BasicSR file
  whenever the value would mean something else here (another model type, ``mean``/``std``
  normalisation, ``use_shuffle: false``, a perceptual loss...) or the key is unknown.

Only ``restorekit.errors`` and ``restorekit.config`` are imported (the import flow of DESIGN.md),
so parts chosen by name are checked against the fixed tables below. ``network_g`` is copied as
is: our architectures take BasicSR's argument names and are checked when the config is used.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, NoReturn

import yaml

from restorekit.config import validate_config
from restorekit.config.loader import read_yaml
from restorekit.errors import ConfigError, RestorekitError, did_you_mean

__all__ = ["convert_basicsr", "import_basicsr", "import_basicsr_file"]

SUPPORTED_MODELS = ("SRModel",)
# GAN models: converted by config/basicsr_gan.py into task adversarial
GAN_MODELS = ("SRGANModel", "ESRGANModel", "RealESRNetModel", "RealESRGANModel")
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
SCHEDULERS = {  # BasicSR's name → ours; its arguments and how each is read
    "MultiStepLR": ("MultiStepRestartLR", {"milestones": "ints", "gamma": "float"}),
    "MultiStepRestartLR": ("MultiStepRestartLR", {"milestones": "ints", "gamma": "float"}),
    "CosineAnnealingRestartLR": ("CosineAnnealingRestartLR", {"periods": "ints", "eta_min": "float"}),
}
_RESTART_ARGS = {"MultiStepRestartLR": {"restarts": "ints"}}  # plus restart_weights for both
LOSSES = {"L1Loss": (), "MSELoss": (), "CharbonnierLoss": ("eps",)}  # all take loss_weight, reduction
METRICS = {"calculate_psnr": "psnr", "calculate_ssim": "ssim"}
_GAN = "; GAN options (network_d, optim_d, gan_opt...) need a GAN model_type (SRGANModel, ESRGANModel...)"

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
    "param_key_g": "restorekit prefers 'params_ema' and falls back to 'params' by itself",
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


class _Section:
    """One mapping of the BasicSR file. It records which keys were handled, so ``done()`` can
    refuse every other one: nothing is dropped silently."""

    def __init__(self, notes: list[str], source: str, data: Any, path: str) -> None:
        self.notes, self.source, self.data, self.path = notes, source, data, path
        self.used: set[Any] = set()  # keys whose value was read (mapped, checked or dropped)
        self.known: set[Any] = set()  # keys this section understands, for did-you-mean
        if not isinstance(data, dict):
            self.fail("", f"expected a mapping, got {data!r}")

    def key(self, k: str) -> str:
        return ".".join(p for p in (self.path, str(k)) if p) or "(top level)"

    def fail(self, k: str, what: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {self.key(k)}: {what}")

    def note(self, k: str, why: str) -> None:
        self.notes.append(f"{self.key(k)}: {why}")

    def __contains__(self, k: str) -> bool:
        return k in self.data

    def get(self, k: str, default: Any = None) -> Any:
        """The value of ``k`` (``default`` when absent or null), marking the key as handled."""
        self.used.add(k)
        value = self.data.get(k)
        return default if value is None else value

    def child(self, k: str) -> _Section | None:
        """The mapping under ``k``, or None when it is absent or null."""
        value = self.get(k)
        return None if value is None else _Section(self.notes, self.source, value, self.key(k))

    def sub(self, k: str, what: str) -> _Section:
        """The mapping under ``k``, which must be there."""
        self.need(k, what)
        return _Section(self.notes, self.source, self.get(k), self.key(k))

    def need(self, k: str, what: str) -> None:
        self.known.add(k)
        if self.data.get(k) is None:
            self.fail(k, f"required key is missing ({what})")

    def choice(self, k: str, choices: Any, what: str, hint: str = "") -> Any:
        value = self.get(k)
        if not isinstance(value, str) or value not in choices:
            self.fail(k, f"{value!r} cannot be converted; supported {what}: {', '.join(choices)}{hint}")
        return value

    def refuse(self, keys: tuple[str, ...], why: str) -> None:
        for k in keys:
            self.known.add(k)
            if k in self:
                self.fail(k, why)

    def drop(self, table: dict[str, str]) -> None:
        for k, why in table.items():
            self.known.add(k)
            if k in self.data and k not in self.used:
                self.get(k)
                self.note(k, f"dropped — {why}")

    def done(self, hint: str = "") -> None:
        for k in self.data:
            if k not in self.used:
                near = did_you_mean(str(k), [str(a) for a in self.used | self.known])
                self.fail(k, f"unknown BasicSR option, cannot be converted{near}{hint}")

    # Typed reads. BasicSR files often write integers as ``!!float 5e3``; exact ones are taken.
    def as_int(self, k: str, default: Any = None, minimum: int = 0) -> Any:
        return self.check_int(k, self.get(k, default), minimum)

    def check_int(self, k: str, value: Any, minimum: int = 0) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            self.fail(k, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def as_float(self, k: str, default: Any = None) -> Any:
        return self.check_float(k, self.get(k, default))

    def check_float(self, k: str, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            self.fail(k, f"expected a number, got {value!r}")
        return None if value is None else float(value)

    def as_bool(self, k: str, default: bool) -> bool:
        value = self.get(k, default)
        if not isinstance(value, bool):
            self.fail(k, f"expected true or false, got {value!r}")
        return value

    def as_str(self, k: str, default: Any = None) -> Any:
        value = self.get(k, default)
        if value is not None and not isinstance(value, str):
            self.fail(k, f"expected a string, got {value!r}")
        return value

    def read(self, k: str, how: str) -> Any:
        """``k`` read as one of "float", "floats", "ints" or "bool" (the tables above say which)."""
        if how == "bool":
            return None if self.get(k) is None else self.as_bool(k, False)
        return self.as_float(k) if how == "float" else self.as_list(k, how)

    def as_list(self, k: str, kind: str) -> list[Any] | None:
        """A list of "ints" or "floats", or None when absent."""
        value = self.get(k)
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            self.fail(k, f"expected a list of {kind}, got {value!r}")
        check = self.check_int if kind == "ints" else self.check_float
        return [check(f"{k}.{i}", v) for i, v in enumerate(value)]


# ------------------------------------------------------------------------------------ public


def import_basicsr(option: dict[str, Any], source: str) -> dict[str, Any]:
    """Convert a parsed BasicSR option dict into our config (a plain dict); see ``convert_basicsr``."""
    return convert_basicsr(option, source)[0]


def convert_basicsr(option: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """Convert a parsed BasicSR option dict: (our config as a plain dict, notes on dropped keys).

    ``source`` names the BasicSR file in error messages; ``option`` is not modified.
    """
    notes: list[str] = []
    top = _Section(notes, source, copy.deepcopy(option), "")
    models = (*SUPPORTED_MODELS, *GAN_MODELS)
    top.need("model_type", f"supported model types: {', '.join(models)}")
    if top.choice("model_type", models, "model types") in GAN_MODELS:
        from restorekit.config.basicsr_gan import convert_gan  # imports this module

        return convert_gan(top, notes)
    top.refuse(("network_d",), f"a discriminator is not used by SRModel{_GAN}")
    top.need("name", "the run name")
    name = top.as_str("name")
    scale = _scale(top)
    seed = top.as_int("manual_seed")
    if seed is None:
        top.note("manual_seed", "missing or null: BasicSR draws a random seed; restorekit uses 0")
    network = _network(top.sub("network_g", "the network to train"), scale)
    paths = _path(top.child("path"))
    data = _datasets(top.child("datasets"), scale)
    val_section = top.child("val")
    if val_section is None and data["val"]:
        top.note("val", "missing: BasicSR would never validate; restorekit validates at the end")
    val, progress_bar = _val_options(val_section, data["val"])
    train = top.child("train")
    logger = _logger(top.child("logger"))
    if progress_bar is not None:
        logger["progress_bar"] = progress_bar
    top.drop(DROP_TOP)
    top.done()
    out: dict[str, Any] = {"name": name, "task": "restoration", "scale": scale, "seed": seed or 0}
    out.update({"network_g": network, **paths, "data": data})
    if train is not None:
        out["train"] = _train(train)
    out.update({"val": val, "logger": logger})
    return out, notes


def import_basicsr_file(path: str | Path, out_path: str | Path, overwrite: bool = False) -> list[str]:
    """Convert the BasicSR option file ``path`` into ``out_path``; return the notes.

    The result is validated before anything is written, and an existing ``out_path`` is only
    replaced with ``overwrite=True``: a converted file is often edited by hand afterwards.
    """
    src, dst = Path(path), Path(out_path)
    if dst.exists() and not overwrite:
        raise RestorekitError(f"{dst}: already exists; refusing to overwrite it (use --overwrite)")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise RestorekitError(f"{dst}: is the BasicSR file being converted; choose another output")
    cfg, notes = convert_basicsr(read_yaml(src), str(src))
    validate_config(cfg, source=f"{src} (converted)")
    header = [f"# Converted from {src} by `restorekit config import-basicsr`."]
    if notes:
        header.append("# Notes on the conversion (BasicSR keys dropped or renamed):")
        header += [f"#   - {n}" for n in notes]
    body = yaml.dump(cfg, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
    return notes


class _Dumper(yaml.SafeDumper):
    """Block mappings, but lists of scalars inline (``betas: [0.9, 0.99]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(isinstance(v, int | float | str | bool) or v is None for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


# ------------------------------------------------------------------------------------ parts


def _scale(top: _Section) -> int:
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


def _network(net: _Section, scale: int) -> dict[str, Any]:
    if not isinstance(net.data.get("type"), str):
        net.fail("type", f"expected the architecture name, got {net.data.get('type')!r}")
    for k in ("upscale", "scale"):  # BasicSR does not check it; its training fails on shapes later
        value = net.data.get(k)
        if isinstance(value, int) and not isinstance(value, bool) and value != scale:
            net.fail(k, f"{value} disagrees with the top-level scale {scale}")
    return dict(net.data)


def _path(path: _Section | None) -> dict[str, Any]:
    if path is None:
        return {"pretrained": None, "pretrained_strict": True}
    path.refuse(("pretrain_network_d", "strict_load_d", "param_key_d"), f"not used by SRModel{_GAN}")
    out = {
        "pretrained": path.as_str("pretrain_network_g"),
        "pretrained_strict": path.as_bool("strict_load_g", True),
    }
    if path.as_str("experiments_root") is not None:  # runs go to <root>/<name> in both
        out["experiments_root"] = path.as_str("experiments_root")
    path.drop(DROP_PATH)
    path.done()
    return out


def _datasets(sets: _Section | None, scale: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    val: dict[str, Any] = {}
    if sets is None:
        return {"val": val}
    for phase in list(sets.data):
        if phase == "train":
            data["train"] = _train_set(sets.sub(phase, "the training set"), scale)
        elif str(phase).split("_")[0] == "val":
            vs = sets.sub(phase, "a validation set")
            name = vs.as_str("name", str(phase))  # the set's name becomes its key, as in BasicSR's logs
            if name in val:
                vs.fail("name", f"validation set name {name!r} is used twice")
            val[name] = {"dataset": _dataset(vs, scale)}
            vs.drop(DROP_VAL_SET)
            vs.done()
        else:
            sets.fail(phase, "BasicSR trains with 'train' and 'val*' datasets only; expected one of those")
    return {**data, "val": val}


def _dataset(ds: _Section, scale: int) -> dict[str, Any]:
    """The arguments shared by training and validation sets (our PairedImageDataset)."""
    ds.choice("type", ("PairedImageDataset",), "dataset types")
    if ds.get("scale") is not None:
        if ds.as_int("scale", minimum=1) != scale:
            ds.fail("scale", f"{ds.data['scale']} disagrees with the top-level scale {scale}")
        ds.note("scale", "dropped — the top-level scale is used, as in BasicSR")
    for k in ("mean", "std"):  # null is BasicSR's "no normalisation", which is ours
        if ds.get(k) is not None:
            ds.fail(k, "mean/std normalisation is not supported; images stay in [0, 1]")
    if ds.get("color") is not None:
        ds.fail("color", f"{ds.data['color']!r} is not supported; images are read as RGB")
    out: dict[str, Any] = {"type": "PairedImageDataset"}
    for k in ("dataroot_gt", "dataroot_lq"):
        ds.need(k, "a folder or LMDB path")
        out[k] = ds.as_str(k)
    io = ds.child("io_backend")
    out["io_backend"] = "disk" if io is None else io.choice("type", ("disk", "lmdb"), "io backends")
    if io is not None:
        io.done()
    meta, tmpl = ds.as_str("meta_info_file"), ds.as_str("filename_tmpl")
    if out["io_backend"] == "lmdb":  # BasicSR pairs LMDB stores by their keys and ignores both
        for k, v in (("meta_info_file", meta), ("filename_tmpl", None if tmpl == "{}" else tmpl)):
            if v is not None:
                ds.note(k, "dropped — BasicSR ignores it with io_backend lmdb")
    else:
        out.update({k: v for k, v in (("meta_info", meta), ("filename_tmpl", tmpl)) if v is not None})
    return out


def _train_set(ds: _Section, scale: int) -> dict[str, Any]:
    dataset = _dataset(ds, scale)
    ds.need("gt_size", "the training patch size")
    dataset["gt_size"] = ds.as_int("gt_size", minimum=1)
    dataset.update(use_hflip=ds.as_bool("use_hflip", False), use_rot=ds.as_bool("use_rot", False))
    return train_loader(ds, dataset)


def train_loader(ds: _Section, dataset: dict[str, Any]) -> dict[str, Any]:
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


def _val_options(val: _Section | None, sets: dict[str, Any]) -> tuple[dict[str, Any], bool | None]:
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
        metrics = {} if section is None else _metrics(section)
        val.done()
    for vset in sets.values():
        vset.update(metrics=copy.deepcopy(metrics), save_images=save)
    return ({} if freq is None else {"freq": freq}), pbar


def _metrics(section: _Section) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in list(section.data):
        m = section.sub(label, "a metric")
        kind = m.get("type")
        if not isinstance(kind, str) or kind not in METRICS:
            known = ", ".join(METRICS)
            m.fail("type", f"{kind!r} cannot be converted; supported metric types: {known} (remove it)")
        name = METRICS[kind]
        if name in out:
            m.fail("type", f"a second {kind} metric cannot be converted (one {name!r} per set)")
        m.note("type", f"dropped — {kind} is restorekit's metric {name!r}")
        opts: dict[str, Any] = {}
        if "crop_border" in m:
            opts["crop_border"] = m.as_int("crop_border", 0)
        if "test_y_channel" in m:
            opts["test_y_channel"] = m.as_bool("test_y_channel", False)
        if m.data.get("input_order") not in (None, "HWC"):
            m.fail("input_order", "only 'HWC' (what SRModel passes) can be converted")
        m.drop({"better": f"restorekit knows which way {name} is better", "input_order": "HWC is implied"})
        m.done()
        out[name] = opts
    return out


def _train(train: _Section) -> dict[str, Any]:
    gan_keys = ("optim_d", "gan_opt", "net_d_iters", "net_d_init_iters")
    train.refuse(gan_keys, f"a GAN training option is not used by SRModel{_GAN}")
    train.need("total_iter", "the number of iterations")
    out: dict[str, Any] = {"total_iter": train.as_int("total_iter", minimum=1)}
    out["optim_g"] = _optimizer(train.sub("optim_g", "the generator's optimizer"))
    sched = train.child("scheduler")
    out["scheduler"] = None if sched is None else _scheduler(sched)
    # BasicSR warms up while iteration < warmup_iter, so -1 (any value <= 0) means no warm-up.
    out["warmup_iter"] = max(train.as_int("warmup_iter", -1, minimum=-(2**63)), 0)
    if train.get("perceptual_opt") is not None:
        train.fail("perceptual_opt", "a perceptual loss in SRModel cannot be converted yet")
    pixel = train.sub("pixel_opt", "SRModel needs a pixel loss to be converted")
    kind = pixel.choice("type", LOSSES, "losses")
    loss = {
        "type": kind,
        "loss_weight": pixel.as_float("loss_weight"),
        "reduction": pixel.as_str("reduction"),
    }
    loss.update({k: pixel.as_float(k) for k in LOSSES[kind]})
    pixel.done()
    out["losses"] = {"pixel": {k: v for k, v in loss.items() if v is not None}}
    ema = train.as_float("ema_decay", 0.0)
    if not 0.0 <= ema < 1.0:
        train.fail("ema_decay", f"expected a number in [0, 1), got {ema!r}")
    out["ema_decay"] = ema
    train.done(_GAN)
    return out


def _optimizer(opt: _Section) -> dict[str, Any]:
    kind = opt.choice("type", OPTIMIZERS, "optimizers")
    opt.need("lr", "the learning rate")
    out: dict[str, Any] = {"type": kind}
    for k, how in OPTIMIZERS[kind].items():
        value = opt.read(k, how) if k in opt else None
        if value is not None:  # null means "BasicSR's default", which is torch's, as here
            out[k] = value
    opt.done()
    return out


def _scheduler(sched: _Section) -> dict[str, Any]:
    kind = sched.choice("type", SCHEDULERS, "schedulers")
    ours, args = SCHEDULERS[kind]
    args = {**args, **_RESTART_ARGS.get(ours, {}), "restart_weights": "floats"}
    sched.need(next(iter(args)), f"required by {kind}")
    out: dict[str, Any] = {"type": ours}
    for k, how in args.items():
        value = sched.read(k, how) if k in sched else None
        if value is not None:
            out[k] = value
    if sched.data.get("last_epoch") not in (None, -1):
        sched.fail("last_epoch", "only -1 can be converted (restorekit resumes with --resume)")
    sched.drop({"last_epoch": "-1 is the start of training"})
    sched.done()
    return out


def _logger(log: _Section | None) -> dict[str, Any]:
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

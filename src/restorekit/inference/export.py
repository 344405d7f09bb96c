"""Networks from any weights source, and exports to a self-describing file or to ONNX.

Sources: an exported ``.safetensors`` (architecture in its metadata), an official BasicSR /
ESRGAN / Real-ESRGAN ``.pth`` (architecture recognised from keys and shapes), a checkpoint folder
``experiments/<name>/checkpoints/iter_N/`` or a run folder ``experiments/<name>/`` (its newest
complete checkpoint), whose files are checked against its ``manifest.json`` first. A
checkpoint's architecture comes from its ``config.yaml`` (``network_g``, with the top-level
``scale`` filled in as the training task does), its weights from ``net_g_ema.safetensors`` (the
EMA copy, the better model) or ``net_g.safetensors`` (``raw``).
Nothing is unpickled: safetensors files, and ``torch.load(weights_only=True)`` for ``.pth``.

ONNX goes through PyTorch's TorchScript-based exporter (``dynamo=False``): it runs offline with
only the ``onnx`` package, takes a second where the torch.export-based one takes 10-30 s on an
RRDBNet, and supports dynamic height/width directly. Batch, height and width are dynamic; the
sides must be multiples of the ``size_multiple`` stored in the model's metadata (with the whole
``ArchInfo`` as JSON under ``info``). The checkpoint-folder rules are ``restorekit.ckptdir``'s,
the same module the trainer writes with.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

import restorekit.archs  # noqa: F401  (registers the architectures)
from restorekit.archs.export import FORMAT, build_fitting, export_network, read_network
from restorekit.archs.info import arch_info
from restorekit.ckptdir import CONFIG_FILE, EMA_FILE, RAW_FILE, find_checkpoint, verify_checkpoint
from restorekit.errors import ConfigError, RestorekitError, WeightsError
from restorekit.registry import ARCHS, spec_of
from restorekit.weights import check_finite, load_into, read_state_dict

__all__ = [
    "EMA_FILE",
    "RAW_FILE",
    "check_onnx",
    "export_model",
    "export_onnx",
    "find_checkpoint",
    "load_any",
    "load_checkpoint_network",
]


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("network_g"), dict):
        raise ConfigError(f"{path}: network_g: expected a mapping with a 'type' key (the trained network)")
    return data


def load_checkpoint_network(path: str | Path, raw: bool = False) -> tuple[nn.Module, Path, list[str]]:
    """``(network in eval mode, weights file used, notes)`` from a checkpoint or run folder."""
    ckpt = find_checkpoint(path)
    notes: list[str] = []
    weights = ckpt / (RAW_FILE if raw else EMA_FILE)
    if not raw and not weights.is_file():
        weights = ckpt / RAW_FILE
        notes.append(f"{ckpt}: no {EMA_FILE} (trained without EMA); using {RAW_FILE}")
    if not weights.is_file():
        raise WeightsError(f"{ckpt}: {weights.name} does not exist")
    cfg_path = ckpt / CONFIG_FILE
    # the two files read, against the manifest, before either is parsed (a folder trimmed to
    # its weights still verifies; one saved before manifests gets a note)
    notes += verify_checkpoint(ckpt, only=(CONFIG_FILE, weights.name))
    cfg = _read_config(cfg_path)
    scale = cfg.get("scale")
    # the restoration task's arch_extras: the config's scale fills `scale`/`upscale` when unset
    extras = {} if scale is None else {"scale": scale, "upscale": scale}
    try:
        ARCHS.check(cfg["network_g"], "network_g", **extras)
    except ConfigError as exc:
        raise ConfigError(f"{cfg_path}: {exc}") from None
    state, _ = read_state_dict(weights)
    check_finite(state, weights)
    # built on the meta device against the file's shapes first: config.yaml is as untrusted as
    # an export's metadata, and a `num_block: 1e9` there must not allocate anything
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    net = build_fitting(cfg["network_g"], shapes, weights, f"{cfg_path.name} network_g", **extras)
    load_into(net, state, "strict", weights)
    return net.eval(), weights, notes


def load_any(
    path: str | Path, raw: bool = False, overrides: dict[str, Any] | None = None
) -> tuple[nn.Module, list[str]]:
    """A network from a weights file or a checkpoint/run folder, with notes for the user;
    ``overrides``: architecture arguments for a recognised official file (``--arch-opt``)."""
    p = Path(path)
    if p.is_dir():
        if overrides:
            raise ConfigError(f"--arch-opt: {p} is a checkpoint folder; its config.yaml gives the arguments")
        net, _, notes = load_checkpoint_network(p, raw=raw)
        return net, notes
    if not p.exists():
        raise WeightsError(f"{p}: weights file or checkpoint folder does not exist")
    notes = [f"{p}: --raw applies to checkpoint folders only; ignored"] if raw else []
    net, read_notes = read_network(p, overrides=overrides)
    return net, notes + read_notes


def _refuse(path: Path, overwrite: bool, suffixes: tuple[str, ...], what: str) -> None:
    """Refuse, before any network is loaded, an output that cannot or should not be written."""
    if path.suffix.lower() not in suffixes:
        raise RestorekitError(f"{path}: {what} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise RestorekitError(f"{path}: is a directory; {what} names the file to write")
    if path.exists() and not overwrite:
        raise RestorekitError(f"{path}: already exists; pass --overwrite to replace it")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the folder mkdir would start in
        folder = folder.parent
    if not folder.is_dir():
        raise RestorekitError(f"{path}: cannot be created: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RestorekitError(f"{path}: cannot be created: {folder} is not writable")


def export_model(
    source: str | Path,
    output: str | Path | None = None,
    *,
    onnx_path: str | Path | None = None,
    raw: bool = False,
    overwrite: bool = False,
    opset: int = 17,
) -> list[str]:
    """Write ``output`` (.safetensors with metadata) and/or ``onnx_path``; returns lines to print."""
    if output is None and onnx_path is None:
        raise RestorekitError("export: give -o OUT.safetensors and/or --onnx OUT.onnx")
    out = None if output is None else Path(output)
    onx = None if onnx_path is None else Path(onnx_path)
    src = Path(source)
    for target, suffixes, what in ((out, (".safetensors",), "-o"), (onx, (".onnx",), "--onnx")):
        if target is not None:
            _refuse(target, overwrite, suffixes, what)
            if src.exists() and target.resolve() == src.resolve():
                raise RestorekitError(f"{target}: output would replace the source")
    net, lines = load_any(src, raw=raw)
    spec = spec_of(net) or {}
    desc = f"{spec.get('type', type(net).__name__)}"
    if out is not None:
        export_network(net, out)
        lines.append(f"wrote {out} ({desc})")
    if onx is not None:
        export_onnx(net, onx, opset=opset)
        lines.append(f"wrote {onx} ({desc}, opset {opset}, dynamic batch/height/width)")
        try:
            diff = check_onnx(net, onx)
        except ImportError:
            lines.append(
                "onnxruntime is not installed: skipped the output check (pip install 'restorekit[onnx]')"
            )
        else:
            lines.append(f"onnxruntime check: max |onnx - torch| = {diff:.2e}")
    return lines


def _sample(net: nn.Module, height: int, width: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    info = arch_info(net)
    m = info.size_multiple
    gen = torch.Generator().manual_seed(seed)
    if info.input_size is not None:
        height = width = info.input_size
    shape = (batch, info.in_channels, -(-height // m) * m, -(-width // m) * m)
    return torch.rand(shape, generator=gen)


def export_onnx(net: nn.Module, path: str | Path, opset: int = 17) -> Path:
    """Write ``net`` as ONNX (float32) with dynamic batch, height and width; metadata included."""
    try:
        import onnx
    except ImportError:
        raise RestorekitError("--onnx needs the onnx package: pip install 'restorekit[onnx]'") from None
    p = Path(path)
    info = arch_info(net)
    net = net.float().cpu().eval()
    x = _sample(net, 32, 32)
    axes = {0: "batch", 2: "height", 3: "width"}
    kwargs: dict[str, Any] = {
        "input_names": ["input"],
        "output_names": ["output"],
        "dynamic_axes": {"input": axes, "output": axes},
        "opset_version": opset,
    }
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    tmp = p.with_name(f".{p.name}.tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript path announces its deprecation
            torch.onnx.export(net, (x,), str(tmp), **kwargs)
        model = onnx.load(str(tmp))
        spec = spec_of(net) or {}
        meta = {
            "format": FORMAT,
            "arch": str(spec.get("type", type(net).__name__)),
            "kwargs": json.dumps({k: v for k, v in spec.items() if k != "type"}),
            "scale": str(info.scale),
            "size_multiple": str(info.size_multiple),
            "info": info.to_json(),
        }
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        tmp.replace(p)
    except OSError as exc:  # a read-only folder, a full disk, a folder of that name
        raise RestorekitError(f"{p}: cannot write the ONNX model: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return p


def check_onnx(net: nn.Module, path: str | Path, height: int = 40, width: int = 56) -> float:
    """Max |ONNX − PyTorch| on a random batch of another size than the export's (needs onnxruntime)."""
    import onnxruntime as ort

    net = net.float().cpu().eval()
    x = _sample(net, height, width, batch=2, seed=1)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.inference_mode():
        want = net(x).numpy()
    if got.shape != want.shape:
        raise RestorekitError(f"{path}: ONNX output shape {got.shape} differs from PyTorch's {want.shape}")
    return float(abs(got - want).max())

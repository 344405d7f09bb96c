"""Networks from any weights source, and exports to a self-describing file or to ONNX.

Sources: an exported ``.safetensors`` (architecture in its metadata), an official BasicSR /
ESRGAN / Real-ESRGAN ``.pth`` (architecture recognised from keys and shapes), a checkpoint folder
``experiments/<name>/checkpoints/iter_N/`` or a run folder ``experiments/<name>/`` (its newest
complete checkpoint). A checkpoint's architecture comes from its ``config.yaml`` (``network_g``,
with the top-level ``scale`` filled in as the training task does), its weights from
``net_g_ema.safetensors`` (the EMA copy, the better model) or ``net_g.safetensors`` (``raw``).
Nothing is unpickled: safetensors files, and ``torch.load(weights_only=True)`` for ``.pth``.

ONNX goes through PyTorch's TorchScript-based exporter (``dynamo=False``): it runs offline with
only the ``onnx`` package, takes a second where the torch.export-based one takes 10-30 s on an
RRDBNet, and supports dynamic height/width directly. Batch, height and width are dynamic; the
sides must be multiples of the ``size_multiple`` stored in the model's metadata.
"""

from __future__ import annotations

import inspect
import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file
from torch import nn

import restorekit.archs  # noqa: F401  (registers the architectures)
from restorekit.archs.export import FORMAT, export_network, load_network
from restorekit.errors import ConfigError, RestorekitError, WeightsError
from restorekit.inference.upscale import network_channels
from restorekit.registry import ARCHS, spec_of
from restorekit.weights import load_checked

EMA_FILE, RAW_FILE = "net_g_ema.safetensors", "net_g.safetensors"
# The rule of ``engine.checkpoint.list_checkpoints`` (which inference may not import): a
# checkpoint folder is complete once its training state is in it.
_STATE_FILE = "training_state.pt"
_ITER_DIR = re.compile(r"^iter_(\d+)$")


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder itself, or a run folder's newest complete checkpoint."""
    p = Path(path)
    if (p / "config.yaml").is_file() and ((p / EMA_FILE).is_file() or (p / RAW_FILE).is_file()):
        return p
    root = p / "checkpoints"
    if root.is_dir():
        found = sorted(
            (int(m.group(1)), c)
            for c in root.iterdir()
            if (m := _ITER_DIR.match(c.name)) and (c / _STATE_FILE).is_file()
        )
        if found:
            return found[-1][1]
        raise WeightsError(
            f"{p}: run folder has no complete checkpoint (checkpoints/iter_N/ with {_STATE_FILE})"
        )
    raise WeightsError(
        f"{p}: not a checkpoint folder (config.yaml with {EMA_FILE} or {RAW_FILE}) "
        "nor a run folder (with checkpoints/iter_N/)"
    )


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
    cfg_path = ckpt / "config.yaml"
    cfg = _read_config(cfg_path)
    scale = cfg.get("scale")
    # the restoration task's arch_extras: the config's scale fills `scale`/`upscale` when unset
    extras = {} if scale is None else {"scale": scale, "upscale": scale}
    try:
        net = ARCHS.build(cfg["network_g"], "network_g", **extras)
    except ConfigError as exc:
        raise ConfigError(f"{cfg_path}: {exc}") from None
    notes: list[str] = []
    weights = ckpt / (RAW_FILE if raw else EMA_FILE)
    if not raw and not weights.is_file():
        weights = ckpt / RAW_FILE
        notes.append(f"{ckpt}: no {EMA_FILE} (trained without EMA); using {RAW_FILE}")
    if not weights.is_file():
        raise WeightsError(f"{ckpt}: {weights.name} does not exist")
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"{weights}: not a readable safetensors file ({type(exc).__name__})") from None
    load_checked(net, state, weights)
    return net.eval(), weights, notes


def load_any(path: str | Path, raw: bool = False) -> tuple[nn.Module, list[str]]:
    """A network from a weights file or a checkpoint/run folder, with notes for the user."""
    p = Path(path)
    if p.is_dir():
        net, _, notes = load_checkpoint_network(p, raw=raw)
        return net, notes
    if not p.exists():
        raise WeightsError(f"{p}: weights file or checkpoint folder does not exist")
    notes = [f"{p}: --raw applies to checkpoint folders only; ignored"] if raw else []
    return load_network(p), notes


def _refuse(path: Path, overwrite: bool, suffixes: tuple[str, ...], what: str) -> None:
    if path.suffix.lower() not in suffixes:
        raise RestorekitError(f"{path}: {what} must end in {' or '.join(suffixes)}")
    if path.exists() and not overwrite:
        raise RestorekitError(f"{path}: already exists; pass --overwrite to replace it")


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
    m = int(getattr(net, "size_multiple", 1))
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, network_channels(net), -(-height // m) * m, -(-width // m) * m)
    return torch.rand(shape, generator=gen)


def export_onnx(net: nn.Module, path: str | Path, opset: int = 17) -> Path:
    """Write ``net`` as ONNX (float32) with dynamic batch, height and width; metadata included."""
    try:
        import onnx
    except ImportError:
        raise RestorekitError("--onnx needs the onnx package: pip install 'restorekit[onnx]'") from None
    p = Path(path)
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
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript path announces its deprecation
            torch.onnx.export(net, (x,), str(tmp), **kwargs)
        model = onnx.load(str(tmp))
        spec = spec_of(net) or {}
        meta = {
            "format": FORMAT,
            "arch": str(spec.get("type", type(net).__name__)),
            "kwargs": json.dumps({k: v for k, v in spec.items() if k != "type"}),
            "scale": str(getattr(net, "scale", "")),
            "size_multiple": str(int(getattr(net, "size_multiple", 1))),
        }
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        tmp.replace(p)
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

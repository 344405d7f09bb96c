"""Exported models: one ``.safetensors`` file that describes its own architecture.

The metadata holds the registered architecture name and its constructor arguments, so
``restorekit infer model.safetensors`` needs no config. Files without that metadata (official
BasicSR / Real-ESRGAN ``.pth`` or plain safetensors) are recognised from their keys and shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from restorekit.errors import WeightsError
from restorekit.registry import ARCHS, record_spec, spec_of

FORMAT = "restorekit/1"


def export_network(module: nn.Module, path: Path) -> None:
    spec = spec_of(module)
    if spec is None:
        raise WeightsError(f"{path}: cannot export a network that was not built from the registry")
    arch = spec.pop("type")
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    meta = {"format": FORMAT, "arch": arch, "kwargs": json.dumps(spec)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise WeightsError(f"{path}: not a readable .safetensors file ({exc})") from None


def load_network(path: str | Path) -> nn.Module:
    """A network in eval mode from an exported file or a recognised official checkpoint."""
    from restorekit.archs.detect import build_from_state_dict, load_weights_file

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: weights file does not exist")
    state = load_weights_file(p)
    meta = read_metadata(p) if p.suffix == ".safetensors" else {}
    if meta.get("format") != FORMAT:
        return build_from_state_dict(state)
    kwargs = json.loads(meta["kwargs"])
    net = ARCHS.build({"type": meta["arch"], **kwargs}, where=str(p))
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsError(
            f"{p}: weights do not fit {meta['arch']} (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    record_spec(net, {"type": meta["arch"], **kwargs})
    return net.eval()

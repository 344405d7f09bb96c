"""Recognise an architecture from a bare state dict, so official ``.pth`` files need no config.

Each family module infers its constructor arguments from key names and tensor shapes
(``recognize``). ``detect_arch`` asks them in order and then *verifies* the answer: it builds the
proposed model on the ``meta`` device (no memory, no compute) and requires exactly the same keys
and shapes, so a returned ``(name, kwargs)`` is guaranteed to load with ``strict=True``.

Loading never runs code from a file: ``.pth``/``.pt``/``.ckpt`` go through
``torch.load(weights_only=True)`` and ``.safetensors`` through safetensors.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from restorekit.archs import edsr, rrdbnet, srresnet, srvgg, wdsr
from restorekit.errors import RestorekitError, WeightsError
from restorekit.registry import ARCHS, record_spec

Recognizer = Callable[[Mapping[str, Tensor]], dict[str, Any] | None]

# Tried in this order; the first whose arguments rebuild the exact key/shape set wins. The
# layouts are disjoint, so the order only decides which near miss is reported first.
RECOGNIZERS: list[tuple[str, Recognizer]] = [
    ("RRDBNet", rrdbnet.recognize),
    ("MSRResNet", srresnet.recognize),
    ("EDSR", edsr.recognize),
    ("WDSR_A", wdsr.recognize_a),
    ("WDSR_B", wdsr.recognize_b),
    ("SRVGGNetCompact", srvgg.recognize),
]

# Checkpoint wrappers, most preferred first: BasicSR/Real-ESRGAN save {"params", "params_ema"}
# (the EMA weights are the better model); Lightning and others use "state_dict" or "model".
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
# Prefixes added by DistributedDataParallel/DataParallel and by torch.compile.
STRIP_PREFIXES = ("module.", "_orig_mod.")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")


def canonicalize(obj: Any, where: str = "checkpoint") -> dict[str, Tensor]:
    """A plain ``{key: tensor}`` state dict from a loaded checkpoint object.

    Unwraps ``params_ema`` > ``params`` > ``state_dict`` > ``model`` (repeatedly, for nested
    wrappers) and strips ``module.``/``_orig_mod.`` prefixes. ``where`` names the source in errors.
    """
    for _ in range(len(WRAPPER_KEYS) + 1):
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping) and obj[k]), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"{where}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}"
        )
    if not obj:
        raise WeightsError(f"{where}: the state dict is empty")
    out: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise WeightsError(
                f"{where}: entry {key!r} is a {type(value).__name__}, not a tensor; expected a state dict "
                f"or one wrapped in {', '.join(WRAPPER_KEYS)}"
            )
        name = str(key)
        while name.startswith(STRIP_PREFIXES):
            name = name.split(".", 1)[1]
        if name in out:
            raise WeightsError(f"{where}: key {name!r} appears twice once prefixes are stripped")
        out[name] = value
    return out


def _verify(name: str, kwargs: dict[str, Any], sd: Mapping[str, Tensor]) -> str | None:
    """``None`` when ``name(**kwargs)`` has exactly ``sd``'s keys and shapes, else why not."""
    try:
        with torch.device("meta"):
            model = ARCHS.build({"type": name, **kwargs})
    except (RestorekitError, ValueError, TypeError, RuntimeError) as exc:
        return f"{name}: inferred arguments do not build ({exc})"
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected]
    if missing or extra:
        return f"{name}: missing {missing[:3]}, unexpected {extra[:3]}"
    for key, shape in expected.items():
        if tuple(sd[key].shape) != shape:
            return f"{name}: {key} has shape {list(sd[key].shape)}, expected {list(shape)}"
    return None


def detect_arch(state_dict: Mapping[str, Tensor], where: str = "state dict") -> tuple[str, dict[str, Any]]:
    """``(registered arch name, constructor kwargs)`` for a state dict (wrappers are unwrapped).

    Raises ``WeightsError`` naming every family tried (and any near miss) when none fits.
    """
    sd = canonicalize(state_dict, where)
    near_misses: list[str] = []
    for name, recognize in RECOGNIZERS:
        kwargs = recognize(sd)
        if kwargs is None:
            continue
        problem = _verify(name, kwargs, sd)
        if problem is None:
            return name, kwargs
        near_misses.append(problem)
    sample = ", ".join(repr(k) for k in list(sd)[:3])
    detail = f"; near misses: {'; '.join(near_misses)}" if near_misses else ""
    raise WeightsError(
        f"{where}: architecture not recognised from its {len(sd)} keys ({sample}, ...); "
        f"tried {', '.join(n for n, _ in RECOGNIZERS)}{detail}"
    )


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def load_weights_file(path: str | Path) -> dict[str, Tensor]:
    """Read a weights file into a canonical CPU state dict, never executing pickled code.

    ``.safetensors`` via safetensors; ``.pth``/``.pt``/``.ckpt`` via
    ``torch.load(map_location="cpu", weights_only=True)``. Every failure is a ``WeightsError``
    naming the path.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: weights file not found")
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(p), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise WeightsError(f"{p}: not a readable safetensors file ({_first_line(exc)})") from None
    elif suffix in WEIGHT_SUFFIXES:
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "weights only load failed" in str(exc).lower():
                raise WeightsError(
                    f"{p}: refused to load: the file pickles objects other than tensors and plain "
                    f"containers (possibly code); re-save its state_dict or convert it to .safetensors"
                ) from None
            raise WeightsError(f"{p}: not a PyTorch weights file ({_first_line(exc)})") from None
        except Exception as exc:  # truncated zip, random bytes, ...
            raise WeightsError(f"{p}: not a PyTorch weights file ({_first_line(exc)})") from None
    else:
        raise WeightsError(
            f"{p}: unsupported weights file extension {suffix or '(none)'!r}; "
            f"expected one of {', '.join(WEIGHT_SUFFIXES)}"
        )
    return canonicalize(obj, where=str(p))


def build_from_state_dict(state_dict: Mapping[str, Any], where: str = "state dict") -> nn.Module:
    """Recognise, build and strictly load a model from a state dict; returned in eval mode.

    The model records its spec (``registry.spec_of``), so it can be exported with its
    architecture name and arguments.
    """
    sd = canonicalize(state_dict, where)
    name, kwargs = detect_arch(sd, where)
    model = ARCHS.build({"type": name, **kwargs})
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:  # cannot happen after _verify unless dtypes are exotic
        raise WeightsError(f"{where}: weights do not load into {name}: {_first_line(exc)}") from None
    record_spec(model, {"type": name, **kwargs})
    return model.eval()

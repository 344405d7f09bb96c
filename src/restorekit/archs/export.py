"""Exported models: one ``.safetensors`` file that describes its own architecture.

The metadata holds the registered architecture name, its constructor arguments and its
``ArchInfo`` (``info``, JSON), so ``restorekit infer model.safetensors`` needs no config and a
reader knows what the network is for before running it. Exports written before ``info``
existed get it recomputed from the registry. Files without that metadata (official BasicSR /
Real-ESRGAN ``.pth`` or plain safetensors) are recognised from their keys and shapes.

A file is untrusted input, and its metadata decides how large a network gets built: a
``num_block`` of 10⁹ once ran for 85 s and took 5 GB before failing. So the network is first
built on the ``meta`` device (no memory behind its tensors) under a budget of registered
tensors and modules proportional to the file's own tensor count, and every shape is compared
with the file's header; only a network that matches is built for real, and its size is then
that of the file. Weights with NaN/Inf tensors are refused both when read and when written.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.overrides import TorchFunctionMode

from restorekit.archs.info import ArchInfo, arch_info, info_for, record_info
from restorekit.errors import (
    DISK_ERRORS,
    ConfigError,
    RestorekitError,
    WeightsError,
    raising_os_errors,
    write_error,
)
from restorekit.registry import ARCHS, spec_of
from restorekit.weights import check_finite, count_nonfinite, load_into, read_state_dict, unwrap_state_dict

FORMAT = "restorekit/1"
#: Bytes of metadata (keys and values) an export may carry; ours take well under 2 KB.
MAX_METADATA_BYTES = 64 * 1024
#: Elements a network may hold beyond its file's tensors (non-persistent buffers, e.g. a mean).
MAX_EXTRA_ELEMENTS = 1 << 24
#: ArchInfo fields that decide image geometry, so a file's ``info`` must agree with its kwargs.
_GEOMETRY = ("in_channels", "out_channels", "scale")


def export_network(module: nn.Module, path: Path) -> None:
    """Write ``module``'s weights with its architecture in the metadata (refusing NaN/Inf).

    The file is safetensors, so it must be named so: a ``.pth`` holding safetensors bytes was
    written without complaint and then refused by ``load_any``, which reads ``.pth`` as pickle.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise WeightsError(f"{path}: an export is a safetensors file; name it {path.stem}.safetensors")
    spec = spec_of(module)
    if spec is None:
        raise WeightsError(f"{path}: cannot export a network that was not built from the registry")
    info = arch_info(module)
    arch = spec.pop("type")
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    bad = count_nonfinite(state)
    if bad:
        raise WeightsError(
            f"{path}: refusing to write weights with NaN or Inf values ({bad} of {len(state)} tensors)"
        )
    meta = {"format": FORMAT, "arch": arch, "kwargs": json.dumps(spec), "info": info.to_json()}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        raising_os_errors(lambda: save_file(state, str(tmp), metadata=meta))
        tmp.replace(path)
    except OSError as exc:  # under a file, a read-only folder, a full disk, a folder named so
        _discard(tmp)
        if exc.errno in DISK_ERRORS:  # "PATH: no space left on device (needed ~N MB)"
            raise write_error(exc, path, _export_size(state, meta), WeightsError) from None
        raise WeightsError(f"{path}: cannot write the export: {exc.strerror or exc}") from None
    except BaseException:
        _discard(tmp)
        raise


def _export_size(state: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> int:
    """Bytes the export takes: its tensor data plus the JSON header (~100 bytes per tensor)."""
    header = sum(len(k) + len(v) for k, v in meta.items()) + 128 * len(state)
    return sum(t.numel() * t.element_size() for t in state.values()) + header


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):  # its folder may not exist or be writable
        tmp.unlink(missing_ok=True)


def read_header(path: Path) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """``(metadata, {key: shape})`` from a safetensors header, reading no tensor data."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise WeightsError(f"{path}: not a readable .safetensors file ({_first_line(exc)})") from None
    size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())
    if size > MAX_METADATA_BYTES:
        raise WeightsError(f"{path}: {size} bytes of metadata (over {MAX_METADATA_BYTES}); not an export")
    return meta, shapes


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata of a safetensors file (bounded in size, see ``read_header``)."""
    return read_header(path)[0]


def _first_line(exc: BaseException, limit: int = 160) -> str:
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


#: Initialisers skipped on the meta device (each returns its input's shape): shapes are all a
#: ghost build needs, and some (``normal_``, spectral norm's ``normalize``) have no C++ meta
#: kernel, so their first use imports torch._dynamo: 5-7 s for a discriminator.
_RANDOM_INIT = frozenset(
    {"normal_", "uniform_", "trunc_normal_", "bernoulli_", "exponential_", "random_", "erfinv_",
     "kaiming_normal_", "kaiming_uniform_", "xavier_normal_", "xavier_uniform_", "orthogonal_",
     "normalize"}
)  # fmt: skip


class _SkipMetaInit(TorchFunctionMode):
    """Turn random initialisation of meta tensors into a no-op (see ``_RANDOM_INIT``)."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        first = args[0] if args else None
        if (
            getattr(func, "__name__", "") in _RANDOM_INIT
            and isinstance(first, torch.Tensor)
            and first.is_meta
        ):
            return first
        return func(*args, **(kwargs or {}))


class _OverBudget(Exception):
    """Raised from a registration hook: the network grows beyond what the file holds."""


@contextmanager
def _registration_budget(tensors: int, modules: int) -> Iterator[None]:
    """Abort construction once more than ``tensors`` parameters/buffers or ``modules``
    sub-modules are registered: a loop of 10⁹ blocks stops after a few hundred."""
    from torch.nn.modules import module as torch_module

    counts = {"tensors": 0, "modules": 0}

    def count(kind: str, limit: int) -> Any:
        def hook(*_: Any) -> None:
            counts[kind] += 1
            if counts[kind] > limit:
                raise _OverBudget(f"more than {limit} {kind}")

        return hook

    handles = [
        torch_module.register_module_parameter_registration_hook(count("tensors", tensors)),
        torch_module.register_module_buffer_registration_hook(count("tensors", tensors)),
        torch_module.register_module_module_registration_hook(count("modules", modules)),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


#: what a config may ask of one network before it is refused at config time (a 1e9-block typo)
CONFIG_MAX_TENSORS, CONFIG_MAX_MODULES = 200_000, 400_000


def check_buildable(spec: Mapping[str, Any], where: str, **extra: Any) -> None:
    """Build ``spec`` on the ``meta`` device (no memory, no initialisation) so that arguments a
    constructor rejects (``num_feat: 0``, ``-3``) or an absurd size are one-line ``ConfigError``s at
    config time (``--dry-run``), not tracebacks or an out-of-memory at ``train``."""
    name, kwargs = ARCHS.check(spec, where, **extra)
    prefix = f"{where}." if where else ""
    for key, value in kwargs.items():  # counts and sizes: a negative one silently builds nothing
        if key.startswith("num_") and isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{prefix}{key}: expected a number >= 0 for {name}, got {value}")
    budget = _registration_budget(CONFIG_MAX_TENSORS, CONFIG_MAX_MODULES)
    try:
        with torch.device("meta"), _SkipMetaInit(), budget, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "initializing zero-element tensors": reported below
            ghost = ARCHS.build({"type": name, **kwargs})
    except RestorekitError:
        raise
    except _OverBudget as exc:
        raise ConfigError(f"{where}: {name} would be enormous ({exc}); check its size arguments") from None
    except Exception as exc:  # out-of-range values fail inside the constructor, in its own words
        raise ConfigError(
            f"{where}: {name} cannot be built with these arguments ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    empty = next((k for k, t in ghost.state_dict().items() if t.numel() == 0), None)
    if empty is not None:
        shape = tuple(ghost.state_dict()[empty].shape)
        raise ConfigError(f"{where}: {name} with these arguments has an empty layer ({empty} {shape})")


def build_fitting(
    spec: Mapping[str, Any],
    shapes: Mapping[str, tuple[int, ...]],
    source: str | Path,
    what: str,
    where: str = "",
    **extra: Any,
) -> nn.Module:
    """Build ``spec`` for real only after a ``meta``-device copy has exactly the keys and shapes
    ``shapes`` of the weights file ``source`` (``what`` names where the spec came from).

    Unknown kwargs are ``ConfigError``s (prefixed by ``where``); a spec that fails to build, grows
    past the file's size, or does not fit the file is a one-line ``WeightsError``.
    """
    name, kwargs = ARCHS.check(spec, where, **extra)
    full = {"type": name, **kwargs}
    n = len(shapes)
    try:
        with torch.device("meta"), _SkipMetaInit(), _registration_budget(4 * n + 256, 16 * n + 1024):
            ghost = ARCHS.build(full)
    except RestorekitError:
        raise
    except _OverBudget as exc:
        raise WeightsError(
            f"{source}: {what} describe a network larger than the file ({name} with {exc}; the file has {n})"
        ) from None
    except Exception as exc:  # out-of-range values fail inside the constructor, in its own words
        raise WeightsError(
            f"{source}: {name} cannot be built from {what} ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    fake = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    load_into(ghost, fake, "strict", source)  # keys and shapes, one line; nothing real allocated
    held = sum(t.numel() for t in fake.values())
    wanted = sum(t.numel() for t in (*ghost.parameters(), *ghost.buffers()))
    if wanted > held + MAX_EXTRA_ELEMENTS:
        raise WeightsError(f"{source}: {what} describe a {name} of {wanted} values; the file has {held}")
    del ghost, fake
    return ARCHS.build(full)


def _export_spec(meta: Mapping[str, str], p: Path) -> tuple[str, dict[str, Any]]:
    """``(arch, kwargs)`` from an export's metadata, checked for type before anything is built."""
    arch, text = meta.get("arch"), meta.get("kwargs")
    if not isinstance(arch, str) or not isinstance(text, str):
        raise WeightsError(f"{p}: {FORMAT} metadata lacks a readable 'arch'/'kwargs' entry")
    try:
        kwargs = json.loads(text)
    except (ValueError, RecursionError):
        raise WeightsError(f"{p}: metadata 'kwargs' is not valid JSON") from None
    if not isinstance(kwargs, dict):
        raise WeightsError(f"{p}: metadata 'kwargs' must be a JSON object, got {type(kwargs).__name__}")
    if "type" in kwargs:
        raise WeightsError(f"{p}: metadata 'kwargs' must not hold 'type' (the architecture is 'arch')")
    try:
        ARCHS.get(arch, where="metadata 'arch'")
    except ConfigError as exc:
        raise WeightsError(f"{p}: {exc}") from None
    return arch, kwargs


def _file_info(meta: Mapping[str, str], net: nn.Module, p: Path) -> ArchInfo | None:
    """The file's ``info``, if any, once its geometry agrees with what its kwargs build."""
    if "info" not in meta:
        return None  # older exports: arch_info recomputes it from the registry
    try:
        info = ArchInfo.from_json(meta["info"], str(p))
    except RecursionError:
        raise WeightsError(f"{p}: the 'info' entry is not a valid ArchInfo (nested too deeply)") from None
    spec = spec_of(net) or {}
    name = spec.pop("type")
    try:
        built = info_for(name, spec)
    except ConfigError:  # the architecture declares no ArchInfo: the file's word is all there is
        return info
    for field in _GEOMETRY:
        if getattr(info, field) != getattr(built, field):
            raise WeightsError(
                f"{p}: metadata 'info' says {field} {getattr(info, field)!r} but {name} built from "
                f"its kwargs has {getattr(built, field)!r}"
            )
    return info


def read_network(
    path: str | Path, param_key: str | None = None, overrides: Mapping[str, Any] | None = None
) -> tuple[nn.Module, list[str]]:
    """``(network in eval mode, notes)`` from an exported file or a recognised official checkpoint.

    The notes say which wrapper key of a ``{params_ema, params}`` file was used and which
    arguments recognition assumed; ``overrides`` (``--arch-opt``) set those for official files
    (an export records its arguments, so there they are refused).
    """
    from restorekit.archs.detect import build_recognised

    p = Path(path)
    is_st = p.suffix.lower() == ".safetensors" and p.is_file() and p.stat().st_size > 0
    meta, shapes = read_header(p) if is_st else ({}, {})
    if meta.get("format") != FORMAT:
        state, note = read_state_dict(p, param_key)
        check_finite(state, p)
        net, notes = build_recognised(state, str(p), overrides)
        return net, ([note] if note else []) + notes
    if overrides:
        raise ConfigError(f"--arch-opt: {p} is an export that records its architecture's arguments")
    arch, kwargs = _export_spec(meta, p)
    ghosts = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    ghost_state, _ = unwrap_state_dict(ghosts, str(p), param_key)  # the keys read_state_dict gives
    try:
        net = build_fitting(
            {"type": arch, **kwargs}, {k: tuple(v.shape) for k, v in ghost_state.items()}, p,
            "its metadata kwargs", "kwargs",
        )  # fmt: skip
    except ConfigError as exc:
        raise WeightsError(f"{p}: metadata {exc}") from None
    state, note = read_state_dict(p, param_key)
    check_finite(state, p)
    load_into(net, state, "strict", p)
    info = _file_info(meta, net, p)
    if info is not None:
        record_info(net, info)
    return net.eval(), [note] if note else []


def load_network(path: str | Path) -> nn.Module:
    """A network in eval mode from an exported file or a recognised official checkpoint."""
    return read_network(path)[0]

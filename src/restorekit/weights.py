"""Where pretrained weight files live, and loading them with errors a user can act on.

restorekit never downloads anything: metrics and losses that need pretrained networks (FID's
Inception, LPIPS, the VGG perceptual loss, NIQE's pristine model) look for a file the user put
in one cache folder, or take an explicit path. When the file is missing the error says exactly
which file to put where, because "weights not found" alone sends people searching.

Every weight file in restorekit is read by ``read_state_dict`` (safetensors, or
``torch.load(weights_only=True)``, so a weight file is never a way to run code; BasicSR-style
``{params_ema, params}`` wrappers and ``module.`` prefixes are undone in one place) and put into
a network by ``load_into``, which compares key names and shapes before touching the module and
reports the difference in one line instead of PyTorch's multi-line dump. ``strict`` is the
default everywhere; ``fit`` is BasicSR's ``strict_load_g: false`` (load what fits, say how much).
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from restorekit.errors import ConfigError, WeightsError

CACHE_ENV = "RESTOREKIT_CACHE"


def cache_dir() -> Path:
    """The folder holding pretrained weights: ``$RESTOREKIT_CACHE`` or ``~/.cache/restorekit``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "restorekit"


def resolve_weights(path: str | os.PathLike[str] | None, filename: str, what: str) -> Path:
    """The weight file to use: ``path`` when given, else ``cache_dir()/filename``.

    ``what`` says who needs the file and what it is (e.g. "FID needs the pytorch-fid Inception
    weights"); it starts the error message, which then names the file and the folder.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            kind = "is a folder, not a file" if p.is_dir() else "does not exist"
            raise WeightsError(f"{what}: {p} {kind} (expected {filename})")
        return p
    folder = cache_dir()
    candidate = folder / filename
    if candidate.is_file():
        return candidate
    raise WeightsError(
        f"{what}: put {filename} in {folder} (or set ${CACHE_ENV}) or pass --weights PATH; "
        "restorekit never downloads weights"
    )


WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
# Checkpoint wrappers, most preferred first: BasicSR/Real-ESRGAN save {"params", "params_ema"}
# (the EMA weights are the better model); Lightning and others use "state_dict" or "model".
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
# Prefixes added by DistributedDataParallel/DataParallel and by torch.compile.
STRIP_PREFIXES = ("module.", "_orig_mod.")
LoadMode = Literal["strict", "fit"]
LOAD_MODES = ("strict", "fit")


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _read_object(p: Path) -> Any:
    """The raw object stored in a weights file; every failure is a one-line ``WeightsError``."""
    if not p.exists():
        raise WeightsError(f"{p}: weights file not found")
    if p.is_dir():
        raise WeightsError(f"{p}: is a folder, not a weights file")
    suffix = p.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise WeightsError(
            f"{p}: unsupported weights file extension {suffix or '(none)'!r}; "
            f"expected one of {', '.join(WEIGHT_SUFFIXES)}"
        )
    if p.stat().st_size == 0:
        raise WeightsError(f"{p}: the file is empty (0 bytes); was a download or copy interrupted?")
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise WeightsError(f"{p}: not a readable safetensors file ({_first_line(exc)})") from None
    try:
        with warnings.catch_warnings():
            # an old pickle protocol is announced on stderr: noise around the one-line error
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message goes on to suggest weights_only=False, i.e. running the file's code:
        # never repeat that advice, say what to do instead.
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise WeightsError(
                f"{p}: refused to load: the file pickles objects other than tensors and plain "
                f"containers (possibly code); re-save its state_dict or convert it to .safetensors"
            ) from None
        raise WeightsError(f"{p}: not a PyTorch weights file ({_first_line(exc)})") from None
    except Exception as exc:  # truncated zip, random bytes, ...
        line = _first_line(exc)
        if "weights_only" in line:
            line = type(exc).__name__
        raise WeightsError(f"{p}: not a PyTorch weights file ({line})") from None


def _is_wrapper(obj: Mapping[str, Any], key: str) -> bool:
    return isinstance(obj.get(key), Mapping) and bool(obj[key])


def unwrap_state_dict(
    obj: Any, where: str = "checkpoint", param_key: str | None = None
) -> tuple[dict[str, torch.Tensor], str | None]:
    """``(plain {key: tensor} state dict, note or None)`` from a loaded checkpoint object.

    With ``param_key`` the top level must hold exactly that key. Without it the first non-empty
    of ``params_ema`` > ``params`` > ``state_dict`` > ``model`` is taken (repeatedly, for nested
    wrappers); the note says which one when there was a choice, because picking EMA or raw
    weights silently is how people evaluate the model they did not mean to. ``module.`` and
    ``_orig_mod.`` prefixes are stripped. ``where`` names the source in errors.
    """
    note = None
    if param_key is not None:
        if not isinstance(obj, Mapping) or param_key not in obj:
            present = ", ".join(map(repr, list(obj)[:8])) if isinstance(obj, Mapping) else type(obj).__name__
            raise WeightsError(f"{where}: no {param_key!r} in the file; keys present: {present}")
        obj = obj[param_key]
    for _ in range(len(WRAPPER_KEYS) + 1):
        if not isinstance(obj, Mapping):
            break
        found = [k for k in WRAPPER_KEYS if _is_wrapper(obj, k)]
        if not found:
            break
        if len(found) > 1 and note is None:
            others = ", ".join(found[1:])
            note = f"{where}: using {found[0]!r} (also present: {others}); param_key picks another"
        obj = obj[found[0]]
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"{where}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}"
        )
    if not obj:
        raise WeightsError(f"{where}: the state dict is empty")
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
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
    return out, note


def read_state_dict(
    path: str | os.PathLike[str], param_key: str | None = None
) -> tuple[dict[str, torch.Tensor], str | None]:
    """``(CPU state dict, note or None)`` from ``.safetensors`` or ``.pth``/``.pt``/``.ckpt``.

    Nothing is unpickled beyond tensors and plain containers; wrappers and prefixes are undone
    as in ``unwrap_state_dict``. Every failure is a one-line ``WeightsError`` naming the path.
    """
    p = Path(path)
    return unwrap_state_dict(_read_object(p), str(p), param_key)


def count_nonfinite(state: Mapping[str, torch.Tensor]) -> int:
    """How many floating-point tensors of ``state`` hold a NaN or an infinity."""
    inexact = [t for t in state.values() if t.is_floating_point() or t.is_complex()]
    return sum(1 for t in inexact if t.device.type != "meta" and not bool(t.isfinite().all()))


def check_finite(state: Mapping[str, torch.Tensor], source: str | os.PathLike[str]) -> None:
    """Refuse weights with NaN/Inf tensors, in one line naming the file and how many.

    A diverged run's weights load and run without complaint and give black images (NaN is
    quantised to 0) with exit status 0; the weights are what is wrong, so say so where they
    are read for inference or export.
    """
    bad = count_nonfinite(state)
    if bad:
        raise WeightsError(
            f"{source}: {bad} of {len(state)} tensors hold NaN or Inf values; refusing these weights "
            "(did training diverge? use an earlier checkpoint)"
        )


def _listing(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_into(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    mode: LoadMode,
    source: str | os.PathLike[str],
    prefix: str = "",
) -> list[str]:
    """Load ``state`` into ``module`` (or its sub-module ``prefix``); returns notes for the user.

    ``strict``: every key and shape must match, else one ``WeightsError`` line listing missing,
    unexpected and mis-shaped keys. ``fit``: load the tensors whose name and shape fit, keep
    the rest as initialised, and say how many were loaded and skipped (BasicSR's
    ``strict_load_g: false``); a file of which nothing fits is still an error. With ``prefix``
    (``"stylegan_decoder."``) key ``k`` of ``state`` goes to ``<prefix>k`` and strictness is
    judged within that sub-module only. BatchNorm ``num_batches_tracked`` counters missing from
    old files are filled in: they are bookkeeping, never used in eval mode.
    """
    if mode not in LOAD_MODES:
        raise ConfigError(f"load mode {mode!r}: expected one of {', '.join(LOAD_MODES)}")
    name = prefix.rstrip(".")
    target = module
    if name:
        try:
            target = module.get_submodule(name)
        except AttributeError:
            raise WeightsError(f"{source}: {type(module).__name__} has no sub-module {name!r}") from None
    what = f"{type(module).__name__}.{name}" if name else type(module).__name__
    own = target.state_dict()
    state = dict(state)
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value.clone()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if mode == "strict":
        problems = []
        if missing:
            problems.append(f"missing keys {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected keys {_listing(unexpected)}")
        if wrong:
            problems.append(f"shape mismatch (file vs model) {_listing(wrong)}")
        if problems:
            raise WeightsError(f"{source}: does not fit {what}: {'; '.join(problems)}")
        target.load_state_dict(state, strict=True)
        return []
    fitting = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    real = [k for k in fitting if not k.endswith("num_batches_tracked")]
    if not real:
        raise WeightsError(
            f"{source}: no tensor fits {what} by name and shape "
            f"(file keys {_listing(list(state))}; model keys {_listing(list(own))})"
        )
    target.load_state_dict({**own, **fitting}, strict=True)
    skipped = len(unexpected) + len(wrong)
    notes = [
        f"{source}: loaded {len(fitting)} of {len(own)} tensors of {what}; skipped {skipped} from the file"
    ]
    if wrong:
        notes.append(f"{source}: skipped for their shape (file vs model): {_listing(wrong)}")
    if unexpected:
        notes.append(f"{source}: skipped, not in {what}: {_listing(unexpected)}")
    if missing:
        notes.append(f"{source}: not in the file, left as initialised: {_listing(missing)}")
    return notes


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """``read_state_dict(path)[0]``; kept for callers not yet switched (tasks, cli)."""
    return read_state_dict(path)[0]


def load_checked(
    module: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike[str]
) -> None:
    """``load_into(module, state, "strict", source)``; kept for callers not yet switched (tasks)."""
    load_into(module, state, "strict", source)

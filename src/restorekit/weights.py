"""Where pretrained weight files live, and loading them with errors a user can act on.

restorekit never downloads anything: metrics and losses that need pretrained networks (FID's
Inception, LPIPS, the VGG perceptual loss, NIQE's pristine model) look for a file the user put
in one cache folder, or take an explicit path. When the file is missing the error says exactly
which file to put where, because "weights not found" alone sends people searching.

Loading goes through ``load_state_dict_file`` (``weights_only=True`` or safetensors, so a weight
file is never a way to run code) and ``load_checked``, which compares key names and shapes
before touching the module and reports the difference in one line instead of PyTorch's
multi-line dump.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from restorekit.errors import WeightsError

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


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a ``.pth``/``.pt`` file, on the CPU.

    A ``{"state_dict": ...}`` wrapper is unwrapped (some releases nest the weights one level).
    """
    p = Path(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(p), device="cpu")
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{p}: weights file does not exist") from None
    except Exception as exc:  # any decoding failure is the file's fault, not a bug here
        raise WeightsError(f"{p}: cannot be read as a weights file ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{p}: expected a state dict (names → tensors), got {type(obj).__name__}")
    return {str(k): v for k, v in obj.items()}


def _listing(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_checked(
    module: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike[str]
) -> None:
    """Load ``state`` into ``module`` strictly, reporting missing/unexpected/mis-shaped keys in one line.

    ``source`` names the file in the message. BatchNorm ``num_batches_tracked`` counters missing
    from old files are filled in: they are bookkeeping, never used in eval mode.
    """
    own = module.state_dict()
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
    problems = []
    if missing:
        problems.append(f"missing keys {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listing(unexpected)}")
    if wrong:
        problems.append(f"shape mismatch (file vs model) {_listing(wrong)}")
    if problems:
        raise WeightsError(f"{source}: does not fit {type(module).__name__}: {'; '.join(problems)}")
    module.load_state_dict(state, strict=True)

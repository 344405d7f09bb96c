"""The one rule for turning ``--device`` / ``device:`` into a ``torch.device``.

Training, validation and inference all accept ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``. Asking
for CUDA where there is none is a one-line ``ConfigError`` rather than the first tensor move
failing deep inside a model. Under ``torchrun`` each process passes its ``local_rank``: ``auto``
and a bare ``cuda`` then mean *this process's* GPU, which is what DDP expects; an explicit
``cuda:N`` is taken as written.
"""

from __future__ import annotations

import torch

from restorekit.errors import ConfigError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def pick_device(requested: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA GPU ``local_rank`` if CUDA is available, else the CPU; CUDA requests are checked."""
    if isinstance(requested, torch.device):
        return requested
    text = str(requested).strip().lower()
    if text == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        text = "cuda"
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise ConfigError(f"device {requested!r}: expected {DEVICE_CHOICES}") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise ConfigError(f"device {requested!r}: expected {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {requested!r}: CUDA was asked for but no CUDA device is available")
    index = local_rank if dev.index is None else dev.index
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"device {requested!r}: asks for GPU {index}, but only {count} GPU(s) exist")
    return torch.device("cuda", index)

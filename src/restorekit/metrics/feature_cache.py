"""Inception features of the *real* images, computed once per data set + protocol and reused.

FID during training compares fresh fakes with the same reals every round, and every run on the
same data set with the same protocol compares with the same reals again. Their features (and,
for a random-init Inception, the BatchNorm statistics calibrated on them) are therefore kept:
in memory for the process, and as ``.npz`` files under ``<cache folder>/fid_features/`` (see
``restorekit.weights.cache_dir``) for later runs.

A key is the SHA-1 of the metric's protocol (network, weights file, dims, resize, seed) and of
the images themselves: the 8-bit pixels when they are in memory, or each file's path, size
and modification time for a folder reference. A changed image, weight file or option is a new
key, so a stale entry can never be read. The cache is an optimisation only: an unreadable entry
is recomputed, and a cache folder that cannot be written is silently left alone for the rest
of the process (the numbers are the same either way).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from restorekit.weights import cache_dir

SUBDIR = "fid_features"
_BN = ("running_mean", "running_var")


def protocol(weights: Path | None, seed: int, dims: int, resize_to: int) -> str:
    """How an Inception distance is made (``weights`` None: random init with ``seed``)."""
    net = (
        f"random-init InceptionV3 (seed {seed}, BatchNorm calibrated on the reals)"
        if weights is None
        else f"pytorch-fid InceptionV3 ({weights.name})"
    )
    return f"{net}; {dims}-d features; bilinear resize to {resize_to}; 8-bit reals and fakes in memory"


def model_identity(model: nn.Module) -> str:
    """A digest of the parameters (not the BatchNorm statistics, which calibration sets) plus the
    torch version: what defines a random-init network, so a change of its init is a new key."""
    h = hashlib.sha1(torch.__version__.encode())
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def file_identity(path: str | os.PathLike[str]) -> str:
    """Path, size and modification time: what changes when a file is replaced or edited."""
    st = os.stat(path)
    return f"{os.fspath(path)}|{st.st_size}|{st.st_mtime_ns}"


class FeatureCache:
    """Arrays by key, in memory and (``persist``) in the cache folder."""

    def __init__(self, protocol: str, persist: bool = True) -> None:
        self.protocol = protocol
        self.folder: Path | None = cache_dir() / SUBDIR if persist else None
        self._memory: dict[str, dict[str, np.ndarray]] = {}

    def key(self, *parts: bytes | str) -> str:
        h = hashlib.sha1(self.protocol.encode())
        for part in parts:
            h.update(b"\0")
            h.update(part.encode() if isinstance(part, str) else part)
        return h.hexdigest()

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        if key in self._memory:
            return self._memory[key]
        if self.folder is None:
            return None
        path = self.folder / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None  # absent, or torn by a killed writer: recompute
        self._memory[key] = arrays
        return arrays

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        self._memory[key] = arrays
        if self.folder is None:
            return
        path = self.folder / f"{key}.npz"
        tmp = path.with_name(f".{key}.{os.getpid()}.tmp.npz")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            self.folder = None  # read-only or full: keep going in memory only


def batchnorm_state(model: nn.Module) -> dict[str, np.ndarray]:
    """Every BatchNorm's running statistics, as ``bn/<module>/<buffer>`` arrays."""
    out: dict[str, np.ndarray] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for buf in _BN:
                out[f"bn/{name}/{buf}"] = getattr(module, buf).detach().cpu().numpy().copy()
    return out


def load_batchnorm_state(model: nn.Module, arrays: dict[str, np.ndarray]) -> bool:
    """Put saved BatchNorm statistics back; False (nothing changed) when they do not fit."""
    modules = dict(model.named_modules())
    wanted = {k for k in arrays if k.startswith("bn/")}
    have = set(batchnorm_state(model))
    if wanted != have:
        return False
    for key in wanted:
        _, name, buf = key.split("/")
        target = getattr(modules[name], buf)
        if tuple(target.shape) != arrays[key].shape:
            return False
    for key in wanted:
        _, name, buf = key.split("/")
        target = getattr(modules[name], buf)
        target.copy_(target.new_tensor(arrays[key]))
    return True

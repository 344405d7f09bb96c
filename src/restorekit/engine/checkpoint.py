"""Checkpoints: one folder per save, written to a temporary folder and renamed into place.

``experiments/<name>/checkpoints/iter_<N>/`` holds each network's weights as ``<name>.safetensors``
(raw and EMA), ``training_state.pt`` (optimizers, schedulers, AMP scaler, RNG states, sampler
position, iteration, best metrics — plain tensors and containers only, loaded with
``weights_only=True``) and the resolved ``config.yaml``. A folder exists under its final name only
once it is complete, so a crash mid-save never leaves a half checkpoint for ``--resume auto``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from restorekit.errors import RestorekitError

_ITER_DIR = re.compile(r"^iter_(\d+)$")
STATE_FILE = "training_state.pt"


def state_for_saving(module: nn.Module) -> dict[str, torch.Tensor]:
    """A contiguous CPU copy of a module's state dict (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(
    run_dir: Path,
    it: int,
    networks: dict[str, nn.Module],
    training_state: dict[str, Any],
    config_yaml: str,
) -> Path:
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"iter_{it}"
    tmp = root / f".tmp_iter_{it}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name, module in networks.items():
        save_file(state_for_saving(module), str(tmp / f"{name}.safetensors"))
    torch.save(training_state, tmp / STATE_FILE)
    (tmp / "config.yaml").write_text(config_yaml, encoding="utf-8")
    if final.exists():  # re-saving the same iteration (e.g. the final save after a periodic one)
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _ITER_DIR.match(child.name)
        if m and child.is_dir() and (child / STATE_FILE).is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def prune_checkpoints(run_dir: Path, keep_last: int, keep: set[int]) -> None:
    """Delete all but the newest ``keep_last`` checkpoints and the iterations in ``keep``."""
    found = list_checkpoints(run_dir)
    for it, path in found[: max(0, len(found) - keep_last)]:
        if it not in keep:
            shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """(network name → state dict, training state) from a checkpoint folder."""
    if not (path / STATE_FILE).is_file():
        raise RestorekitError(f"{path}: not a complete checkpoint folder (no {STATE_FILE})")
    networks = {p.stem: load_file(str(p)) for p in sorted(path.glob("*.safetensors"))}
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    return networks, state

"""Checkpoints: one folder per save, written to a temporary folder and renamed into place.

``experiments/<name>/checkpoints/iter_<N>/`` holds each network's weights as ``<name>.safetensors``
(raw and EMA), ``training_state.pt`` (optimizers, schedulers, AMP scaler, RNG states, sampler
position, iteration, best metrics — plain tensors and containers only, loaded with
``weights_only=True``), the resolved ``config.yaml`` and, written last, ``manifest.json`` (size
and sha256 of every file; ``restorekit.ckptdir``). A folder exists under its final name only
once it is complete, so a crash mid-save never leaves a half checkpoint for ``--resume auto``;
the manifest catches what completeness cannot (truncation by a full disk, bit rot, a file
swapped in by hand). A killed save leaves ``.tmp_iter_<N>_<pid>``, removed by the next run.

Resuming also compares the config with the checkpoint's (``resume_config_notes``): a checkpoint
fits only its architecture, and a run is only exactly resumable under the same seed, data and
global batch, so those changes are refused or need saying so, instead of surfacing later as a
shape error or a silently different run.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from restorekit.ckptdir import CONFIG_FILE, STATE_FILE, latest_checkpoint, list_checkpoints, write_manifest
from restorekit.engine.logging import DISK_ERRORS, raising_os_errors, write_error
from restorekit.engine.runlock import pid_alive
from restorekit.errors import ConfigError, RestorekitError, WeightsError

__all__ = [
    "STATE_FILE",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "reapply_hyperparameters",
    "remove_stale_temps",
    "resume_config_notes",
    "save_checkpoint",
    "snapshot_hyperparameters",
    "state_for_saving",
]

TMP_DIR = re.compile(r"^\.tmp_iter_(\d+)_(\d+)$")


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
    """Write checkpoint ``iter_<it>``; a failed write is one line and leaves no temp folder behind.

    A full disk (``ENOSPC``) or a read-only one (``EROFS``) is ``PATH: no space left on device
    (needed ~N MB)``; the previous checkpoints are untouched, because nothing is renamed or
    deleted before the new folder is complete. When the free space is already below the size of
    the newest checkpoint, old checkpoints beyond ``logger.keep_last`` are pruned *first*, so a
    run whose disk filled with old checkpoints recovers with ``--resume auto logger.keep_last=2``.
    """
    root = run_dir / "checkpoints"
    final = root / f"iter_{it}"
    tmp = root / f".tmp_iter_{it}_{os.getpid()}"
    needed = _estimated_size(networks, training_state, config_yaml)
    current = final
    try:
        root.mkdir(parents=True, exist_ok=True)
        _prune_for_space(run_dir, config_yaml, training_state)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for name, module in networks.items():
            current = tmp / f"{name}.safetensors"
            state = state_for_saving(module)
            raising_os_errors(lambda: save_file(state, str(current)))  # noqa: B023 (called at once)
        current = tmp / STATE_FILE
        try:
            torch.save(training_state, current)
        except RuntimeError as exc:  # a full disk mid-write: "unexpected pos 70976 vs 70868"
            if _free_bytes(root) < needed:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from None
            msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise RestorekitError(f"{final / STATE_FILE}: cannot be written ({msg})") from None
        current = tmp / CONFIG_FILE
        current.write_text(config_yaml, encoding="utf-8")
        current = tmp / "manifest.json"
        write_manifest(tmp)  # last: it describes the folder as renamed
        current = final
        if final.exists():  # re-saving the same iteration (e.g. the final save after a periodic one)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        # a full disk is the checkpoint's problem; another error names the file (by its final name)
        where = final if exc.errno in DISK_ERRORS or current == final else final / current.name
        raise write_error(exc, where, needed) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


def _tensor_bytes(node: Any) -> int:
    if isinstance(node, torch.Tensor):
        return node.numel() * node.element_size()
    if isinstance(node, Mapping):
        return sum(_tensor_bytes(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return sum(_tensor_bytes(v) for v in node)
    return 0


def _estimated_size(networks: dict[str, nn.Module], training_state: dict[str, Any], config_yaml: str) -> int:
    """Bytes the checkpoint will take: its tensors, plus a little for headers and pickling."""
    weights = sum(_tensor_bytes(m.state_dict()) for m in networks.values())
    return weights + _tensor_bytes(training_state) + len(config_yaml.encode()) + 64 * 1024


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def prune_before_resume(run_dir: Path, resume: Path, config_yaml: str) -> None:
    """On ``--resume`` with less free space than a checkpoint, prune to the *new* config's
    ``keep_last`` before anything is written.

    The first thing a resumed run writes is small (log lines, validation results), and on a disk
    filled with old checkpoints even that fails before the first save could prune: so a run
    restarted with ``--resume auto logger.keep_last=1`` makes its room here, keeping the
    checkpoint it resumes from and the best one. With room to spare nothing is touched before
    the run has really started (the trainer prunes after its first save, as always).
    """
    found = list_checkpoints(run_dir)
    if not found or _free_bytes(run_dir / "checkpoints") >= _folder_bytes(found[-1][1]):
        return
    try:
        state = torch.load(resume / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception:
        state = {}  # verified just before; the trainer reports a bad file itself
    state = state if isinstance(state, dict) else {}
    _prune_for_space(run_dir, config_yaml, state, {_iter_of(resume)})


def _iter_of(path: Path) -> int:
    return int(path.name.split("_")[-1]) if path.name.split("_")[-1].isdigit() else -1


def _prune_for_space(
    run_dir: Path, config_yaml: str, training_state: dict[str, Any], keep: set[int] | None = None
) -> None:
    """Prune to ``logger.keep_last`` before saving when the newest checkpoint would not fit again.

    The trainer prunes after each save, which a full disk never reaches; reading ``keep_last``
    and the best checkpoint (kept, as the trainer keeps it) from the checkpoint's own config and
    state keeps this independent of the caller.
    """
    found = list_checkpoints(run_dir)
    if not found or _free_bytes(run_dir / "checkpoints") >= _folder_bytes(found[-1][1]):
        return
    cfg = yaml.safe_load(config_yaml) or {}
    logger = cfg.get("logger") or {}
    keep = set(keep or ())
    best = training_state.get("best") or {}
    if (cfg.get("val") or {}).get("save_best", True) and best:
        first = next(iter(best.values()))
        if isinstance(first, Mapping) and "iter" in first:
            keep.add(int(first["iter"]))
    prune_checkpoints(run_dir, int(logger.get("keep_last", 3)), keep)


def remove_stale_temps(run_dir: Path) -> list[str]:
    """Delete ``.tmp_iter_N_<pid>`` folders of saves that died; one note per folder removed.

    A folder whose pid is a live process other than this one is another process's save in
    progress and stays (the run lock should make that impossible, but deleting it would be the
    worse mistake). This process has saved nothing yet when this runs, so its own pid is a reused one.
    """
    root = run_dir / "checkpoints"
    notes: list[str] = []
    if not root.is_dir():
        return notes
    for child in sorted(root.iterdir()):
        m = TMP_DIR.match(child.name)
        if not m or not child.is_dir():
            continue
        pid = int(m.group(2))
        if pid != os.getpid() and pid_alive(pid):
            continue
        shutil.rmtree(child, ignore_errors=True)
        notes.append(f"note: removed {child} (an unfinished save of process {pid}, which is gone)")
    return notes


def prune_checkpoints(run_dir: Path, keep_last: int, keep: set[int]) -> None:
    """Delete all but the newest ``keep_last`` checkpoints and the iterations in ``keep``."""
    found = list_checkpoints(run_dir)
    for it, path in found[: max(0, len(found) - keep_last)]:
        if it not in keep:
            shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """(network name → state dict, training state) from a checkpoint folder.

    A file that does not parse (truncated, emptied) is a one-line ``WeightsError`` naming it;
    the manifest check (``ckptdir.verify_checkpoint``) usually reports it before this point.
    """
    if not (path / STATE_FILE).is_file():
        raise RestorekitError(f"{path}: not a complete checkpoint folder (no {STATE_FILE})")
    networks = {}
    for file in sorted(path.glob("*.safetensors")):
        try:
            networks[file.stem] = load_file(str(file))
        except Exception as exc:  # safetensors' own error type for a bad header, OSError, ...
            raise WeightsError(f"{file}: cannot be read ({type(exc).__name__}); damaged checkpoint") from None
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # EOFError, RuntimeError (zip), UnpicklingError, ...
        raise WeightsError(
            f"{path / STATE_FILE}: cannot be read ({type(exc).__name__}); damaged checkpoint"
        ) from None
    return networks, state


# ------------------------------------------------------------------ resuming under another config
def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _kind(key: str) -> str:
    top = key.split(".")[0]
    if top in ("task", "scale") or top.startswith("network_"):
        return "architecture"
    if key in ("seed", "data.train.batch_size", "train.accum_iter") or key.startswith("data.train.dataset"):
        return "exactness"
    return "other"


def _change(key: str, old: Any, new: Any) -> str:
    text = f"{key} {old!r} -> {new!r}"
    return text if len(text) <= 100 else key


def resume_config_notes(ckpt: Path, cfg_yaml: str, world_size: int, allow_change: bool) -> list[str]:
    """Compare the run's config with checkpoint ``ckpt``'s before anything is written; notes to log.

    An architecture change (``network_*``, ``scale``, ``task``) is a ``ConfigError`` naming the
    keys: the weights do not fit it. A change that breaks exact resume (seed, training data or
    batch, accumulation, process count) is a ``ConfigError`` unless ``allow_change``, and then a
    note; any other change (iterations, logging, validation, LR...) is allowed and noted.
    """
    saved_path = ckpt / CONFIG_FILE
    if not saved_path.is_file():
        return [f"note: {ckpt}: no {CONFIG_FILE}; the config could not be compared with the checkpoint's"]
    try:
        saved = yaml.safe_load(saved_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{saved_path}: cannot be read as YAML ({type(exc).__name__})") from None
    old, new = _flatten(saved if isinstance(saved, Mapping) else {}), _flatten(yaml.safe_load(cfg_yaml))
    changes: dict[str, list[str]] = {"architecture": [], "exactness": [], "other": []}
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) != new.get(key):
            changes[_kind(key)].append(_change(key, old.get(key), new.get(key)))
    try:
        state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True, mmap=True)
        saved_world = int(state.get("world_size", 1))
    except Exception as exc:
        raise WeightsError(f"{ckpt / STATE_FILE}: cannot be read ({type(exc).__name__})") from None
    if saved_world != world_size:
        changes["exactness"].append(f"process count {saved_world} -> {world_size}")
    if changes["architecture"]:
        raise ConfigError(
            f"{ckpt}: cannot resume: the architecture changed ({'; '.join(changes['architecture'])}); "
            "its weights fit only the saved one (start a new run: name=NEW)"
        )
    notes = []
    if changes["exactness"]:
        what = "; ".join(changes["exactness"])
        if not allow_change:
            raise ConfigError(
                f"{ckpt}: resuming with changes that break exact resume ({what}); "
                "pass --allow-config-change to continue anyway"
            )
        notes.append(f"note: resuming with changes that break exact resume (allowed): {what}")
    if changes["other"]:
        what = "; ".join(changes["other"])
        notes.append(f"note: resuming with config changes (the new values apply): {what}")
    return notes


def snapshot_hyperparameters(optimizers: Mapping[str, Any], schedulers: Mapping[str, Any]) -> dict[str, Any]:
    """The config's optimizer settings and base LRs, taken before a checkpoint's state is loaded.

    ``optimizer.load_state_dict`` restores the saved param groups (LR, betas, weight decay) and the
    schedulers restore their saved base LRs, so without this a changed LR in the config would be
    ignored on resume while ``config.yaml`` claims it.
    """
    skip = ("params", "lr", "initial_lr")  # the LR is the schedulers' (from their base LRs)
    return {
        "groups": {
            k: [{hk: hv for hk, hv in g.items() if hk not in skip} for g in o.param_groups]
            for k, o in optimizers.items()
        },
        "base_lrs": {k: list(s.base_lrs) for k, s in schedulers.items()},
    }


def reapply_hyperparameters(
    snapshot: Mapping[str, Any], optimizers: Mapping[str, Any], schedulers: Mapping[str, Any]
) -> list[str]:
    """Put the config's settings back after loading; notes for the LRs that changed.

    The schedules are pure functions of (iteration, base LR), so setting the base LR at the saved
    iteration gives the new LR the schedule would have had; momentum buffers stay the saved ones.
    """
    notes = []
    for k, o in optimizers.items():
        for group, fresh in zip(o.param_groups, snapshot["groups"].get(k, [])):
            group.update(fresh)
    for k, s in schedulers.items():
        fresh = snapshot["base_lrs"].get(k)
        if fresh is not None and [float(v) for v in s.base_lrs] != fresh:
            old = list(s.base_lrs)
            s.load_state_dict({"iteration": s.iteration, "base_lrs": fresh})
            notes.append(f"note: optimizer {k}: base learning rate {old} -> {fresh} from the config")
    return notes


def find_resume(run_dir: Path, resume: str | None, notes: list[str] | None = None) -> Path | None:
    """``auto`` → the newest intact checkpoint (None: none yet; damaged ones are skipped, each with a
    line in ``notes``; all damaged is an error, not a fresh start); a path → that folder, verified."""
    from restorekit.ckptdir import latest_intact_checkpoint, list_checkpoints, verify_checkpoint

    notes = [] if notes is None else notes
    if resume is None:
        return None
    if resume == "auto":
        path, found = latest_intact_checkpoint(run_dir)
        notes.extend(f"note: {line}" for line in found)
        if path is None and list_checkpoints(run_dir):
            newest = found[0].removeprefix("skipping damaged checkpoint ")
            raise RestorekitError(f"--resume auto: all checkpoints of {run_dir} are damaged; {newest}")
        return path
    path = Path(resume)
    if not path.is_dir():
        raise RestorekitError(f"--resume {resume}: no such checkpoint folder")
    notes.extend(f"note: {line}" for line in verify_checkpoint(path))
    return path

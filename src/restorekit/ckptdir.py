"""The checkpoint-folder format, shared by the trainer (which writes it) and inference (which reads it).

A run folder ``experiments/<name>/`` keeps one folder per save under ``checkpoints/iter_<N>/``.
A checkpoint is *complete* once ``training_state.pt`` is in it: the trainer writes everything
to a temporary folder and renames it into place, so the rule holds even after a crash. The
trained generator is ``net_g.safetensors`` and, when EMA is on, ``net_g_ema.safetensors`` (the
better model, so readers prefer it). Both sides import these names from here, so the format has
one definition; this module sits at the bottom of the import flow (it imports only ``errors``).

A checkpoint is *intact* when its ``manifest.json`` (size and sha256 of every other file, written
last, just before the rename) still matches the files. Completeness only proves the save got to
its end; a disk that filled up, a copy cut short, flipped bits in tensor data or a weights file
swapped in from another iteration all leave complete folders that load without complaint and
train on garbage. Folders saved before manifests existed have none; readers accept them with a
note, since nothing can be checked.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from restorekit.errors import WeightsError

STATE_FILE = "training_state.pt"
CONFIG_FILE = "config.yaml"
CHECKPOINTS_DIR = "checkpoints"
EMA_FILE = "net_g_ema.safetensors"
RAW_FILE = "net_g.safetensors"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
ITER_DIR = re.compile(r"^iter_(\d+)$")
#: files a reader loads; one of these that the manifest does not list was added after the save
_LOADED_SUFFIXES = (".safetensors", ".pt", ".yaml")
_CHUNK = 1 << 20


def iter_dir_name(it: int) -> str:
    """``iter_<it>``: the folder name of the checkpoint saved at iteration ``it``."""
    return f"iter_{it}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path) -> Path:
    """Record size and sha256 of every file in ``folder``; call it after the last file is written."""
    files = {
        p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST_FILE
    }
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps({"format": MANIFEST_FORMAT, "files": files}, indent=1), encoding="utf-8")
    return path


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{MANIFEST_FILE}: unreadable ({type(exc).__name__})") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
        for v in files.values()
    ):
        raise ValueError(f"{MANIFEST_FILE}: not a manifest (expected files: name -> size, sha256)")
    return files


def manifest_problem(folder: str | Path, only: Iterable[str] | None = None) -> str | None:
    """What is wrong with ``folder`` against its manifest (one phrase naming the file), or None.

    ``only``: check just these files (a reader that loads two files of a folder someone trimmed
    to its weights); None checks every listed file and refuses loadable files the manifest does
    not list. Sizes are compared before any hashing, so a truncated or empty file is named at
    once. A folder without a manifest (saved before manifests existed) has no problem to report
    here; ``has_manifest`` tells the two apart.
    """
    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        return None
    try:
        files = _read_manifest(folder)
    except ValueError as exc:
        return str(exc)
    if only is not None:
        wanted = list(only)
        for name in wanted:
            if name not in files:
                return f"{name}: not listed in {MANIFEST_FILE} (added after the save)"
        files = {name: files[name] for name in wanted}
    for name, entry in files.items():
        p = folder / name
        if not p.is_file():
            return f"{name}: missing (listed in {MANIFEST_FILE})"
        size = p.stat().st_size
        if size != entry["size"]:
            return f"{name}: {size} bytes, {MANIFEST_FILE} says {entry['size']} (truncated or replaced)"
    for name, entry in files.items():
        if file_sha256(folder / name) != entry["sha256"]:
            return f"{name}: sha256 differs from {MANIFEST_FILE} (corrupted or replaced after the save)"
    for p in sorted(folder.iterdir()) if only is None else []:
        if p.is_file() and p.suffix in _LOADED_SUFFIXES and p.name not in files:
            return f"{p.name}: not listed in {MANIFEST_FILE} (added after the save)"
    return None


def has_manifest(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST_FILE).is_file()


def verify_checkpoint(folder: str | Path, only: Iterable[str] | None = None) -> list[str]:
    """Check a checkpoint folder against its manifest: notes to show, or ``WeightsError`` naming the file.

    A folder without a manifest (saved by an older restorekit) is accepted with a one-line note.
    ``only`` limits the check to the files the caller reads (see ``manifest_problem``).
    """
    folder = Path(folder)
    if not has_manifest(folder):
        return [f"{folder}: no {MANIFEST_FILE} (saved before manifests existed); files not verified"]
    problem = manifest_problem(folder, only)
    if problem is not None:
        raise WeightsError(f"{folder}: damaged checkpoint: {problem}")
    return []


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run (with ``training_state.pt``), ``(iteration, folder)``, oldest first.

    Complete is not intact: see ``latest_intact_checkpoint`` for the newest that verifies.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = ITER_DIR.match(child.name)
        if m and child.is_dir() and (child / STATE_FILE).is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or ``None``."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def latest_intact_checkpoint(run_dir: str | Path) -> tuple[Path | None, list[str]]:
    """The newest complete checkpoint whose manifest verifies, and one note per folder skipped.

    Newest first, so only the folders that are skipped (and the one chosen) are hashed. A folder
    without a manifest is taken as it is, with a note: older runs stay resumable.
    """
    notes: list[str] = []
    for _, path in reversed(list_checkpoints(run_dir)):
        if not has_manifest(path):
            return path, notes + verify_checkpoint(path)
        problem = manifest_problem(path)
        if problem is None:
            return path, notes
        notes.append(f"skipping damaged checkpoint {path}: {problem}")
    return None, notes


def best_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint of the best validation round (the first tracked metric), as the newest
    training state records it; a one-line error when there is none (no validation yet)."""
    import torch

    newest = latest_checkpoint(run_dir)
    if newest is None:
        raise WeightsError(f"{run_dir}: run folder has no complete checkpoint")
    try:
        best = torch.load(newest / STATE_FILE, map_location="cpu", weights_only=True).get("best") or {}
    except Exception as exc:  # a damaged state file is the file's fault
        raise WeightsError(f"{newest / STATE_FILE}: cannot be read ({type(exc).__name__})") from None
    if not best:
        raise WeightsError(f"{run_dir}: no validation round recorded yet, so there is no best checkpoint")
    metric, entry = next(iter(best.items()))
    path = Path(run_dir) / CHECKPOINTS_DIR / iter_dir_name(int(entry["iter"]))
    if not (path / STATE_FILE).is_file():
        raise WeightsError(f"{path}: the best checkpoint ({metric} at iteration {entry['iter']}) was pruned")
    return path


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder itself, or a run folder's newest complete checkpoint.

    A folder counts as a checkpoint when it has the config and generator weights (so an
    exported or copied ``iter_N`` works without its training state).
    """
    p = Path(path)
    if (p / CONFIG_FILE).is_file() and ((p / EMA_FILE).is_file() or (p / RAW_FILE).is_file()):
        return p
    if (p / CHECKPOINTS_DIR).is_dir():
        newest = latest_checkpoint(p)
        if newest is not None:
            return newest
        raise WeightsError(
            f"{p}: run folder has no complete checkpoint ({CHECKPOINTS_DIR}/iter_N/ with {STATE_FILE})"
        )
    raise WeightsError(
        f"{p}: not a checkpoint folder ({CONFIG_FILE} with {EMA_FILE} or {RAW_FILE}) "
        f"nor a run folder (with {CHECKPOINTS_DIR}/iter_N/)"
    )

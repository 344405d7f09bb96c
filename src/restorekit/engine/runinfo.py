"""What a run folder holds, for ``restorekit checkpoints list``: each checkpoint's iteration,
time, integrity and validation numbers, with the best one (by the first tracked metric) marked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from restorekit.ckptdir import has_manifest, list_checkpoints, manifest_problem
from restorekit.errors import RestorekitError


def _metrics_at(run_dir: Path, it: int) -> dict[str, float]:
    out: dict[str, float] = {}
    val = run_dir / "val"
    if val.is_dir():
        for set_dir in sorted(p for p in val.iterdir() if p.is_dir()):
            f = set_dir / f"iter_{it}.json"
            if f.is_file():
                try:
                    means = json.loads(f.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    continue
                out.update({f"{set_dir.name}/{k}": v for k, v in means.items() if isinstance(v, int | float)})
    return out


def checkpoint_rows(run_dir: Path) -> list[dict[str, Any]]:
    """One row per complete checkpoint, oldest first; a folder without any is a one-line error."""
    found = list_checkpoints(run_dir)
    if not found:
        raise RestorekitError(f"{run_dir}: no checkpoints (expected {run_dir}/checkpoints/iter_N/)")
    best_iter = None
    try:
        state = torch.load(found[-1][1] / "training_state.pt", map_location="cpu", weights_only=True)
        best = state.get("best") or {}
        if best:
            best_iter = int(next(iter(best.values()))["iter"])
    except Exception:  # an unreadable state only costs the "best" mark
        best_iter = None
    rows = []
    for it, path in found:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(path.stat().st_mtime))
        # intact: the manifest verifies (sizes and sha256); old folders have none
        intact = "no-manifest"
        if has_manifest(path):
            intact = "damaged" if manifest_problem(path) else "intact"
        rows.append(
            {
                "iter": it,
                "time": stamp,
                "state": intact,
                "metrics": _metrics_at(run_dir, it),
                "best": it == best_iter,
            }
        )
    return rows

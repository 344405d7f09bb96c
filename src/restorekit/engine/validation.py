"""Validation bookkeeping: the config checks every entry point shares, the evaluation context,
per-round result files, the best-metric tracker and the console table.

What evaluating *means* is the task's (``Task.evaluate``; restoration's paired loop is in
``restorekit.tasks.evaluation``). The engine hands the task an :class:`EvalContext` whose
``gather`` spans the ranks, then writes what comes back: per-image values as CSV and the means
as JSON per round, TensorBoard scalars, the best value per (set, metric) — the direction each
metric declared at registration — and the table printed to the log.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from restorekit.config import RunConfig
from restorekit.engine.distributed import DistInfo, all_gather_objects
from restorekit.engine.logging import SMALL_WRITE, guarded_write
from restorekit.errors import ConfigError
from restorekit.metrics import higher_is_better
from restorekit.registry import TASKS
from restorekit.tasks.evaluation import EvalContext, SetResult

#: The name the report and older callers know a set's result by.
ValResult = SetResult


def check_config(cfg: RunConfig, source: str | None = None) -> None:
    """Config-time checks of every named part (task, networks, losses, datasets, metrics).

    The CLI and ``Trainer`` both call this, so a config gets the same one-line error from
    Python as from the command line. ``source`` (the file) prefixes the message.
    """
    try:
        TASKS.get(cfg.task, "task").check_config(cfg)
    except ConfigError as exc:
        if source is None:
            raise
        raise ConfigError(f"{source}: {exc}") from None


def eval_context(
    device: torch.device, info: DistInfo, it: int = 0, baseline: str | None = None
) -> EvalContext:
    """An :class:`EvalContext` whose ``gather`` spans this run's ranks."""
    return EvalContext(
        device=device,
        it=it,
        rank=info.rank,
        world_size=info.world_size,
        gather=lambda obj: all_gather_objects(obj, info),
        baseline=baseline,
    )


def write_result(folder: Path, tag: str, result: SetResult) -> None:
    """``<tag>.csv`` (one row per image) and ``<tag>.json`` (means) in ``folder``; a full or
    read-only disk is one line naming the folder (``engine.logging.write_error``)."""
    needed = SMALL_WRITE + 64 * len(result.per_image) * (1 + len(result.means))
    guarded_write(folder, lambda: _write_result(folder, tag, result), needed)


def _write_result(folder: Path, tag: str, result: SetResult) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    metrics = list(result.means)
    with open(folder / f"{tag}.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", *metrics])
        for name, vals in result.per_image:
            writer.writerow([name, *(repr(vals[m]) for m in metrics)])
    (folder / f"{tag}.json").write_text(json.dumps(result.means, indent=2) + "\n", encoding="utf-8")


SET_METRICS_CSV = "fid.csv"


def append_set_metrics(run_dir: Path, it: int, set_name: str, result: SetResult) -> None:
    """One ``fid.csv`` row per set metric (FID, KID) of a round, with its protocol beside it.

    The file is the run's FID curve that a spreadsheet reads: ``iter, time, set, metric,
    value, protocol``; the protocol names the network, its weights, the resize and the image
    counts, so numbers made differently are never compared by accident.
    """
    if not result.protocols:
        return
    path = run_dir / SET_METRICS_CSV

    def write() -> None:
        new = not path.exists()
        with open(path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["iter", "time", "set", "metric", "value", "protocol"])
            for metric, protocol in result.protocols.items():
                value = result.means.get(metric, math.nan)
                writer.writerow([it, f"{time.time():.3f}", set_name, metric, repr(value), protocol])

    guarded_write(path, write, SMALL_WRITE)


class BestTracker:
    """Best value and iteration per (set, metric), kept in the checkpoint."""

    def __init__(self) -> None:
        self.best: dict[str, dict[str, float]] = {}

    def update(self, set_name: str, means: dict[str, float], it: int) -> bool:
        """Record a round; True when the set's first metric improved."""
        improved_first = False
        for i, (metric, value) in enumerate(means.items()):
            key = f"{set_name}/{metric}"
            prev = self.best.get(key)
            if math.isnan(value):  # a diverged round is never the best one
                continue
            better = prev is None or (
                value > prev["value"] if higher_is_better(metric) else value < prev["value"]
            )
            if better:
                self.best[key] = {"value": value, "iter": it}
                improved_first = improved_first or i == 0
        return improved_first

    def state_dict(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.best.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = {k: dict(v) for k, v in state.items()}


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per set (and baseline), one column per metric."""
    metrics: list[str] = []
    for vals in rows.values():
        metrics += [m for m in vals if m not in metrics]
    width = max([len("set"), *(len(r) for r in rows)])
    head = f"{'set':<{width}}  " + "  ".join(f"{m:>10}" for m in metrics)
    lines = [head, "-" * len(head)]
    for name, vals in rows.items():
        cells = "  ".join(f"{vals[m]:>10.4f}" if m in vals else f"{'-':>10}" for m in metrics)
        lines.append(f"{name:<{width}}  {cells}")
    return "\n".join(lines)

"""Validation: every named set, its own metrics, batched on the device, sharded over ranks.

Each rank evaluates images ``rank, rank + world, ...`` of a set; per-image values are gathered
and ordered by image index before averaging in float64, so the numbers are exactly those of a
single process. Per-image values are written as CSV and the means as JSON per round.

Metrics that carry a network (LPIPS) or a parameter file (NIQE) are built once per set in
:func:`build_val_sets` and reused for every batch and every round.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from restorekit.config import Config
from restorekit.config.schema import ValSet
from restorekit.data.io import write_image
from restorekit.engine.distributed import DistInfo, all_gather_objects
from restorekit.metrics import check_metric, get_metric, higher_is_better
from restorekit.registry import DATASETS

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Called after each batch with (batch, step output); returns one picklable item per image.
Collector = Callable[[dict[str, Any], dict[str, torch.Tensor]], list[Any]]


class _Indexed(Dataset):
    """Adds the image's index (for ordering gathered results) to each sample."""

    def __init__(self, base: Any, indices: list[int]) -> None:
        self.base, self.indices = base, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = dict(self.base[self.indices[i]])
        sample["index"] = self.indices[i]
        return sample


@dataclass
class ValSetup:
    name: str
    cfg: ValSet
    dataset: Any
    metrics: dict[str, MetricFn]


@dataclass
class ValResult:
    means: dict[str, float]
    per_image: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    # What a collector returned per image, in the order of ``per_image`` (None without one).
    extras: list[Any] = field(default_factory=list)


def build_val_sets(cfg: Config) -> list[ValSetup]:
    sets = []
    for name, vcfg in cfg.data.val.items():
        where = f"data.val.{name}"
        dataset = DATASETS.build(vcfg.dataset, f"{where}.dataset", scale=cfg.scale)
        metrics = {m: get_metric(m, where=f"{where}.metrics.{m}", **opts) for m, opts in vcfg.metrics.items()}
        sets.append(ValSetup(name, vcfg, dataset, metrics))
    return sets


def check_val_sets(cfg: Config) -> None:
    """Config-time checks of every validation set's dataset and metrics (nothing is read or built)."""
    for name, vcfg in cfg.data.val.items():
        where = f"data.val.{name}"
        DATASETS.check(vcfg.dataset, f"{where}.dataset", scale=cfg.scale)
        for m, opts in vcfg.metrics.items():
            check_metric(m, where=f"{where}.metrics.{m}", **opts)


@torch.no_grad()
def evaluate(
    step: Callable[[dict[str, Any]], dict[str, torch.Tensor]],
    vset: ValSetup,
    device: torch.device,
    info: DistInfo,
    save_dir: Path | None = None,
    collect: Collector | None = None,
) -> ValResult:
    """Run ``step`` (a task's eval or baseline step) over one set and average the metrics.

    ``collect`` (e.g. the report's crops) is called after each batch on every rank; its items
    are gathered with the metric values, so rank 0 gets them for every image in index order.
    """
    n = len(vset.dataset)
    shard = _Indexed(vset.dataset, list(range(info.rank, n, info.world_size)))
    loader = DataLoader(shard, batch_size=vset.cfg.batch_size, num_workers=vset.cfg.num_workers)
    rows: list[tuple[int, str, dict[str, float], Any]] = []
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        out = step(batch)
        values = {m: fn(out["output"], out["gt"]).double().cpu() for m, fn in vset.metrics.items()}
        indices = batch["index"].tolist()
        extras = collect(batch, out) if collect is not None else [None] * len(indices)
        for j, idx in enumerate(indices):
            name = Path(batch["gt_path"][j]).stem
            rows.append((idx, name, {m: float(v[j]) for m, v in values.items()}, extras[j]))
            if save_dir is not None:
                img = out["output"][j].permute(1, 2, 0).float().cpu().numpy()
                write_image(save_dir / f"{name}.png", img)
    gathered = sorted((r for part in all_gather_objects(rows, info) for r in part), key=lambda r: r[0])
    means = {m: _mean([r[2][m] for r in gathered]) for m in vset.metrics}
    return ValResult(means, [(r[1], r[2]) for r in gathered], [r[3] for r in gathered])


def _mean(values: list[float]) -> float:
    if not values:
        return float("nan")
    if any(math.isinf(v) for v in values):  # identical images: PSNR inf, as BasicSR reports it
        return float("inf")
    return math.fsum(values) / len(values)


def write_result(folder: Path, tag: str, result: ValResult) -> None:
    """``<tag>.csv`` (one row per image) and ``<tag>.json`` (means) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = list(result.means)
    with open(folder / f"{tag}.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", *metrics])
        for name, vals in result.per_image:
            writer.writerow([name, *(repr(vals[m]) for m in metrics)])
    (folder / f"{tag}.json").write_text(json.dumps(result.means, indent=2) + "\n", encoding="utf-8")


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

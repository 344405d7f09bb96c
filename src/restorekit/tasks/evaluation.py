"""Evaluation building blocks a task's ``evaluate`` uses: sets, metrics, the sharded paired loop.

The trainer (and ``restorekit validate``) hands a task an :class:`EvalContext`: the device, this
rank's place among the ranks, a ``gather`` that returns every rank's object, and where images
may be saved. The task decides what evaluating means and returns one :class:`SetResult` per
set; the engine writes them (CSV, JSON, TensorBoard), tracks the best and prints the table.

The paired loop (:func:`evaluate_pairs`) is restoration's: each rank evaluates images ``rank,
rank + world, ...``; per-image values are gathered and ordered by image index before averaging
in float64, so the numbers are exactly those of one process. Set metrics (FID, KID) accumulate
features per rank and merge them across ranks before computing, to the same effect.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from restorekit.config import RunConfig
from restorekit.config.schema import ValSet
from restorekit.data.io import write_image
from restorekit.errors import ConfigError
from restorekit.metrics import MetricSkipped, check_metric, get_metric, is_set_metric
from restorekit.registry import DATASETS

MetricFn = Callable[..., Any]
# Called after each batch with (batch, step output); returns one picklable item per image.
Collector = Callable[[dict[str, Any], dict[str, torch.Tensor]], list[Any]]
Step = Callable[[dict[str, Any]], dict[str, torch.Tensor]]


@dataclass
class EvalContext:
    """What a task's ``evaluate`` may use: device, rank layout, gathering and output folders."""

    device: torch.device
    it: int = 0
    rank: int = 0
    world_size: int = 1
    #: every rank's ``obj``, in rank order, on every rank (identity on one process)
    gather: Callable[[Any], list[Any]] = lambda obj: [obj]
    #: a non-learned baseline to evaluate beside the model ("bicubic"), or None
    baseline: str | None = None
    #: the folder for a set's output images this round (None: do not save)
    image_dir: Callable[[str], Path | None] = lambda name: None
    #: per-image extras for a report (``restorekit validate --report``)
    collect: Collector | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class SetResult:
    """One set's means, per-image rows (in index order) and what a collector returned per image."""

    means: dict[str, float]
    per_image: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    extras: list[Any] = field(default_factory=list)
    #: the set this is a baseline of (a baseline is reported, never tracked as "best")
    baseline_of: str | None = None
    #: one-line notes to print beside the numbers (e.g. "FID with random Inception weights")
    notes: list[str] = field(default_factory=list)
    #: per set metric, how its number was made (network, weights, resize, counts): written
    #: beside the value in ``stats.jsonl`` and ``fid.csv``
    protocols: dict[str, str] = field(default_factory=dict)


@dataclass
class ValSetup:
    name: str
    cfg: ValSet
    dataset: Any
    metrics: dict[str, MetricFn]
    #: notes for every round (a metric skipped because its optional weights are missing)
    notes: list[str] = field(default_factory=list)


def set_metrics(vcfg: ValSet, defaults: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return dict(vcfg.metrics) if vcfg.metrics is not None else dict(defaults)


def build_val_sets(
    cfg: RunConfig, extras: Mapping[str, Any], defaults: Mapping[str, dict[str, Any]]
) -> list[ValSetup]:
    """Every ``data.val`` set with its dataset (``extras`` fill what its spec leaves out) and metrics."""
    sets = []
    for name, vcfg in cfg.data.val.items():
        where = f"data.val.{name}"
        dataset = None
        if vcfg.dataset is not None:
            dataset = DATASETS.build(vcfg.dataset, f"{where}.dataset", **extras)
        metrics: dict[str, MetricFn] = {}
        notes: list[str] = []
        for m, opts in set_metrics(vcfg, defaults).items():
            try:
                metrics[m] = get_metric(m, where=f"{where}.metrics.{m}", **opts)
            except MetricSkipped as skipped:  # `optional: true` and its weights are missing
                notes.append(str(skipped))
        sets.append(ValSetup(name, vcfg, dataset, metrics, notes))
    return sets


def check_val_sets(
    cfg: RunConfig, extras: Mapping[str, Any], defaults: Mapping[str, dict[str, Any]], need_dataset: bool
) -> None:
    """Config-time checks of every validation set's dataset and metrics (nothing is read or built)."""
    for name, vcfg in cfg.data.val.items():
        where = f"data.val.{name}"
        if vcfg.dataset is None and need_dataset:
            raise ConfigError(f"{where}.dataset: required key is missing (the images to evaluate on)")
        if vcfg.dataset is not None:
            DATASETS.check(vcfg.dataset, f"{where}.dataset", **extras)
        for m, opts in set_metrics(vcfg, defaults).items():
            check_metric(m, where=f"{where}.metrics.{m}", **opts)


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


def finish_set_metrics(
    metrics: Mapping[str, Any], ctx: EvalContext, notes: list[str], protocols: dict[str, str] | None = None
) -> dict[str, float]:
    """Merge every set metric's per-rank state across ranks and compute it (notes are appended,
    and each metric's ``describe()``, how the number was made, goes into ``protocols``)."""
    out: dict[str, float] = {}
    for name, metric in metrics.items():
        if is_set_metric(metric):
            metric.merge(ctx.gather(metric.state()))
            out[name] = float(metric.compute())
            if getattr(metric, "note", None):
                notes.append(str(metric.note))
            if protocols is not None and hasattr(metric, "describe"):
                protocols[name] = str(metric.describe())
    return out


@torch.no_grad()
def evaluate_pairs(step: Step, vset: ValSetup, ctx: EvalContext, save_dir: Path | None = None) -> SetResult:
    """Run ``step`` (a task's eval or baseline step) over one paired set and average the metrics.

    ``ctx.collect`` (e.g. the report's crops) is called after each batch on every rank; its
    items are gathered with the metric values, so rank 0 gets them for every image in order.
    """
    n = len(vset.dataset)
    shard = _Indexed(vset.dataset, list(range(ctx.rank, n, ctx.world_size)))
    loader = DataLoader(shard, batch_size=vset.cfg.batch_size, num_workers=vset.cfg.num_workers)
    per_image = {m: fn for m, fn in vset.metrics.items() if not is_set_metric(fn)}
    for fn in vset.metrics.values():
        if is_set_metric(fn):
            fn.reset()
    rows: list[tuple[int, str, dict[str, float], Any]] = []
    for batch in loader:
        batch = {
            k: v.to(ctx.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
        }
        out = step(batch)
        indices = batch["index"].tolist()
        values = {m: fn(out["output"], out["gt"]).double().cpu() for m, fn in per_image.items()}
        for fn in vset.metrics.values():
            if is_set_metric(fn):
                fn.update(out["output"], out["gt"], indices)
        extras = ctx.collect(batch, out) if ctx.collect is not None else [None] * len(indices)
        for j, idx in enumerate(indices):
            name = Path(batch["gt_path"][j]).stem
            rows.append((idx, name, {m: float(v[j]) for m, v in values.items()}, extras[j]))
            if save_dir is not None:
                img = out["output"][j].permute(1, 2, 0).float().cpu().numpy()
                write_image(save_dir / f"{name}.png", img)
    gathered = sorted((r for part in ctx.gather(rows) for r in part), key=lambda r: r[0])
    means = {m: mean_of([r[2][m] for r in gathered]) for m in per_image}
    notes = list(vset.notes)
    protocols: dict[str, str] = {}
    means.update(finish_set_metrics(vset.metrics, ctx, notes, protocols))
    means = {m: means[m] for m in vset.metrics}  # the configured order (the first one is "best")
    return SetResult(
        means, [(r[1], r[2]) for r in gathered], [r[3] for r in gathered], notes=notes, protocols=protocols
    )


def mean_of(values: list[float]) -> float:
    if not values:
        return float("nan")
    if any(math.isinf(v) for v in values):  # identical images: PSNR inf, as BasicSR reports it
        return float("inf")
    return math.fsum(values) / len(values)

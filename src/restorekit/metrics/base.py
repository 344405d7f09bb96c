"""Set metrics: numbers that exist only for a whole set of images (FID, KID), not per image.

A per-image metric maps a batch to one value per image, so validation can average gathered
values. FID and KID compare *distributions*: nothing per image can be averaged, and under DDP
every rank sees only its shard. A :class:`SetMetric` therefore splits the work in five steps:

``reset()``
    forget the images seen so far (called before each validation round);
``update(output, gt, indices)``
    extract what the metric needs from one batch (features, as float64 numpy arrays) and keep
    it with the global index of each image;
``state()``
    a picklable snapshot of what was kept, small enough to ``all_gather_object``;
``merge(states)``
    replace the own state by the union of all ranks' states (the own one included), sorted by
    index;
``compute()``
    the metric value over everything merged.

Because merging sorts by index and every random choice (KID's subsets) is seeded, "two ranks,
each updating on its half, merge, compute" equals "one rank updating on all" *exactly* whenever
the per-image features are equal. The engine's loop is::

    metric.reset()
    for batch in shard: metric.update(out, gt, indices)
    metric.merge(all_gather_objects(metric.state()))
    value = metric.compute(); note = metric.note   # print the note when it is not None

Set metrics live in the same ``restorekit.registry.METRICS`` registry as per-image ones and are
built by ``restorekit.metrics.get_metric``; :func:`is_set_metric` tells the two kinds apart.
A metric that cannot be built because an optional weights file is missing raises
:class:`MetricSkipped` (see ``get_metric``'s ``optional`` option).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from restorekit.errors import RestorekitError


class MetricSkipped(RestorekitError):
    """A metric configured with ``optional: true`` cannot be built (e.g. its weights are missing).

    ``str(exc)`` is the one-line note to print; ``exc.metric`` is the metric's name. The engine
    catches this, prints the note and validates without that metric. Without ``optional`` the
    underlying ``WeightsError`` is raised instead and stops the run.
    """

    def __init__(self, metric: str, note: str) -> None:
        super().__init__(note)
        self.metric = metric


class SetMetric:
    """Base class of set metrics; see the module docstring for the protocol and its guarantee.

    Subclasses implement the five methods. ``note`` is a one-line remark about the value that
    ``compute()`` callers print (e.g. "random Inception weights: not comparable with published
    FIDs"); ``None`` when there is nothing to say. ``num_images`` is how many images the task
    should generate or use for this metric (a task reads it; the metric does not enforce it).
    """

    note: str | None = None
    num_images: int | None = None

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, output: Tensor, gt: Tensor | None, indices: Sequence[int]) -> None:
        """Add a batch: ``output``/``gt`` NCHW RGB in [0, 1] (gray = 1 channel), ``indices`` global."""
        raise NotImplementedError

    def state(self) -> Any:
        """A picklable snapshot of what ``update`` kept (features as float64 arrays + indices)."""
        raise NotImplementedError

    def merge(self, states: Sequence[Any]) -> None:
        """Replace the own state by the union of ``states`` (all ranks', the own one included)."""
        raise NotImplementedError

    def compute(self) -> float:
        """The metric over everything merged (or updated, in a single process)."""
        raise NotImplementedError


def is_set_metric(obj: object) -> bool:
    """Whether ``obj`` — a built metric, or a registered class/factory — is a :class:`SetMetric`."""
    if inspect.isclass(obj):
        return issubclass(obj, SetMetric)
    return isinstance(obj, SetMetric)


def merge_indexed(states: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Concatenate per-rank states ``{"indices": (n,), key: (n, ...) or list}`` sorted by index.

    Arrays are concatenated along their first axis and lists joined (``None`` entries, for an
    absent part such as gt features, stay ``None``). An index seen twice means two ranks
    processed one image, which would bias the metric silently, so it is an error.
    """
    indices = np.concatenate([np.asarray(s["indices"], dtype=np.int64) for s in states])
    order = np.argsort(indices, kind="stable")
    sorted_idx = indices[order]
    if len(sorted_idx) > 1 and (np.diff(sorted_idx) == 0).any():
        dup = int(sorted_idx[1:][np.diff(sorted_idx) == 0][0])
        raise ValueError(f"set metric: image index {dup} was updated more than once across ranks")
    out: dict[str, Any] = {"indices": sorted_idx}
    for key in keys:
        parts = [s[key] for s in states]
        if all(p is None for p in parts):
            out[key] = None
        elif any(p is None for p in parts):
            raise ValueError(f"set metric: state {key!r} is missing on some ranks")
        elif isinstance(parts[0], list):
            joined = [item for p in parts for item in p]
            out[key] = [joined[i] for i in order]
        else:
            out[key] = np.concatenate([np.asarray(p) for p in parts])[order]
    return out

"""``restorekit validate --report DIR``: one HTML page that shows what the numbers mean.

The page holds the mean of every metric per validation set (and per baseline), a per-image
table, side-by-side crops and the metric curves of the training run:

* **crops** — for each image (the first :data:`MAX_CROPS` of a set) the square window, at most
  :data:`CROP_SIZE` pixels wide, where the mean absolute error between output and GT is
  *largest* (found exactly with an integral image; ties go to the top-left-most window), shown
  as LQ (upscaled with nearest neighbour, so its pixels stay visible), output and GT. A fixed
  centre crop would mostly show easy flat regions; the worst window shows the failures;
* **curves** — one PNG per metric, a line per set, read from the run folder's ``stats.jsonl``
  (rows with ``"kind": "val/<set>"``), plus the training losses. The run folder is the one the
  weights belong to (``<run>/model.safetensors``, ``<run>/checkpoints/iter_N[/file]``) or
  ``--run DIR``.

Everything lands in a new folder (an existing non-empty one is refused: nothing a user had is
overwritten): ``index.html``, ``crops/<set>/*.png``, ``curves/*.png`` and ``means.json``.
matplotlib (``pip install restorekit[report]``) draws the curves with the Agg backend, so no
display is needed. Only rank 0 writes; every rank collects the crops of its shard.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from restorekit import __version__
from restorekit.data.io import write_image
from restorekit.engine.validation import ValResult
from restorekit.errors import RestorekitError
from restorekit.metrics import higher_is_better, quantize

CROP_SIZE = 96
MAX_CROPS = 24
INSTALL_HINT = "pip install restorekit[report]"


def require_matplotlib() -> None:
    """Fail early, in one line, when the optional plotting dependency is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RestorekitError(f"--report needs matplotlib, which is not installed: {INSTALL_HINT}") from None


def check_report_dir(folder: str | Path) -> Path:
    """The report folder, which must not exist yet or be empty (it is never overwritten)."""
    p = Path(folder)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        kind = "is a file" if not p.is_dir() else "exists and is not empty"
        raise RestorekitError(f"--report {p}: {kind}; choose a new folder (a report never overwrites files)")
    return p


def find_run_dir(weights: str | Path, run: str | Path | None = None) -> Path | None:
    """The training run the weights come from (a folder holding ``stats.jsonl``), or None.

    ``run`` (``--run DIR``) wins and must hold ``stats.jsonl``. Otherwise the weights' folder is
    tried (``<run>/model.safetensors``) and, for anything inside ``<run>/checkpoints/``, the
    folder above ``checkpoints``.
    """
    if run is not None:
        r = Path(run)
        if not (r / "stats.jsonl").is_file():
            raise RestorekitError(f"--run {r}: not a run folder (it has no stats.jsonl)")
        return r
    w = Path(weights).absolute()
    candidates = [w] if w.is_dir() else []
    candidates.append(w.parent)
    candidates += [p.parent for p in w.parents if p.name == "checkpoints"][:1]
    for c in candidates:
        if (c / "stats.jsonl").is_file():
            return c
    return None


def worst_window(err: torch.Tensor, size: int) -> tuple[int, int]:
    """Top-left ``(y, x)`` of the ``size``×``size`` window with the largest error sum.

    An integral image gives every window's sum in O(H·W); with integer errors the float64 sums
    are exact, so ties between equal windows resolve to the first (top-left-most) one.
    """
    w = err.shape[1]
    ii = F.pad(err.to(torch.float64).cumsum(0).cumsum(1), (1, 0, 1, 0))
    sums = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
    flat = int(torch.argmax(sums.reshape(-1)))
    return divmod(flat, w - size + 1)


def _to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """CHW in [0, 1] → HWC uint8, quantised exactly as the metrics see the image."""
    return quantize(x).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


class CropCollector:
    """Picks and cuts the worst-error crop of each image (called by ``evaluate`` per batch)."""

    def __init__(self, size: int = CROP_SIZE, max_images: int = MAX_CROPS) -> None:
        self.size, self.max_images = size, max_images

    def __call__(self, batch: dict[str, Any], out: dict[str, torch.Tensor]) -> list[dict[str, Any] | None]:
        items: list[dict[str, Any] | None] = []
        lq = batch.get("lq")
        for j, idx in enumerate(batch["index"].tolist()):
            if idx >= self.max_images:
                items.append(None)
                continue
            output, gt = out["output"][j], out["gt"][j]
            h, w = gt.shape[-2:]
            size = min(self.size, h, w)
            # Summed over channels the errors are integers, so equal windows tie exactly.
            err = (quantize(output) - quantize(gt)).abs().sum(dim=0)
            y, x = worst_window(err, size)
            box = (slice(y, y + size), slice(x, x + size))
            item: dict[str, Any] = {
                "box": (y, x, size),
                "output": _to_uint8_hwc(output[:, box[0], box[1]]),
                "gt": _to_uint8_hwc(gt[:, box[0], box[1]]),
            }
            if torch.is_tensor(lq) and lq.dim() == 4:
                up = F.interpolate(lq[j : j + 1].float(), size=(h, w), mode="nearest")[0]
                item["lq"] = _to_uint8_hwc(up[:, box[0], box[1]])
            items.append(item)
        return items


def read_stats(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``stats.jsonl``; unreadable lines (a run killed mid-write) are skipped."""
    rows = []
    for line in (run_dir / "stats.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "iter" in row and "kind" in row:
            rows.append(row)
    return rows


def _curves(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """metric → series name → [(iter, value)]: validation metrics per set, and training losses."""
    curves: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for row in rows:
        kind = str(row["kind"])
        for key, value in row.items():
            if key in ("iter", "time", "kind") or not isinstance(value, int | float):
                continue
            if kind.startswith("val/"):
                curves.setdefault(key, {}).setdefault(kind[4:], []).append((int(row["iter"]), float(value)))
            elif kind == "train" and key.startswith("l_"):
                curves.setdefault("train_losses", {}).setdefault(key, []).append(
                    (int(row["iter"]), float(value))
                )
    return curves


def plot_curves(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """One PNG per metric (a line per set) and one for the training losses; the paths written."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    written = []
    for metric, series in _curves(rows).items():
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
        for name, points in series.items():
            points.sort()
            its, vals = zip(*points)
            ax.plot(its, vals, marker="o" if len(points) < 30 else None, markersize=3, label=name)
        ax.set_xlabel("iteration")
        if metric == "train_losses":
            ax.set_ylabel("loss")
            ax.set_title("training losses")
        else:
            ax.set_ylabel(metric)
            ax.set_title(f"{metric} ({'higher' if _higher(metric) else 'lower'} is better)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = folder / f"{_safe(metric)}.png"
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _higher(metric: str) -> bool:
    try:
        return higher_is_better(metric)
    except RestorekitError:
        return True


def _safe(name: str) -> str:
    """A file-name-safe version of a set, image or metric name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x"


def _fmt(v: float) -> str:
    return "inf" if math.isinf(v) else "nan" if math.isnan(v) else f"{v:.4f}"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
.crops img{image-rendering:pixelated;width:192px;height:192px;margin-right:4px}
.crops figure{display:inline-block;margin:0 8px 0 0;text-align:center;font-size:12px}
.curves img{margin:0 8px 8px 0}.note{color:#666;font-size:13px}"""


class ValidationReport:
    """Collects the results of ``validate`` and writes the report folder (rank 0 only)."""

    def __init__(
        self, folder: str | Path, config: str, weights: str, run_dir: Path | None, baseline: str | None
    ) -> None:
        require_matplotlib()
        self.folder = check_report_dir(folder)
        self.config, self.weights, self.run_dir, self.baseline = config, weights, run_dir, baseline
        self.sets: dict[str, tuple[ValResult, ValResult | None]] = {}

    def collector(self) -> CropCollector:
        return CropCollector()

    def add(self, name: str, result: ValResult, baseline: ValResult | None = None) -> None:
        self.sets[name] = (result, baseline)

    def write(self, means: dict[str, dict[str, float]]) -> Path:
        """Write everything; returns the path of ``index.html``."""
        check_report_dir(self.folder)  # still empty: nobody wrote there while we evaluated
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "means.json").write_text(json.dumps(means, indent=2) + "\n", encoding="utf-8")
        parts = [self._header(), "<h2>Means</h2>", self._means_table(means)]
        for name, (result, base) in self.sets.items():
            parts.append(f"<h2>{html.escape(name)}</h2>")
            parts.append(self._per_image_table(result, base))
            parts.append(self._crops(name, result))
        parts.append(self._curves_section())
        page = (
            "<!doctype html>\n<html><head><meta charset='utf-8'><title>restorekit validation report"
            f"</title><style>{_CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
        )
        path = self.folder / "index.html"
        path.write_text(page, encoding="utf-8")
        return path

    # ----------------------------------------------------------------- sections
    def _header(self) -> str:
        rows = [
            ("config", self.config),
            ("weights", self.weights),
            ("run folder", str(self.run_dir) if self.run_dir else "none found (pass --run DIR)"),
            ("created", time.strftime("%Y-%m-%d %H:%M:%S")),
            ("restorekit", __version__),
        ]
        cells = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        return f"<h1>Validation report</h1>\n<table>{cells}</table>"

    @staticmethod
    def _metric_head(metrics: list[str]) -> str:
        return "".join(f"<th>{html.escape(m)} {'↑' if _higher(m) else '↓'}</th>" for m in metrics)

    def _means_table(self, means: dict[str, dict[str, float]]) -> str:
        metrics: list[str] = []
        for vals in means.values():
            metrics += [m for m in vals if m not in metrics]
        body = "".join(
            f"<tr><td>{html.escape(row)}</td>"
            + "".join(f"<td class=n>{_fmt(vals[m]) if m in vals else '-'}</td>" for m in metrics)
            + "</tr>"
            for row, vals in means.items()
        )
        return f"<table><tr><th>set</th>{self._metric_head(metrics)}</tr>{body}</table>"

    def _per_image_table(self, result: ValResult, base: ValResult | None) -> str:
        metrics = list(result.means)
        head = f"<tr><th>image</th>{self._metric_head(metrics)}"
        if base is not None:
            head += "".join(f"<th>{html.escape(m)} ({html.escape(str(self.baseline))})</th>" for m in metrics)
        rows = []
        for i, (name, vals) in enumerate(result.per_image):
            cells = "".join(f"<td class=n>{_fmt(vals[m])}</td>" for m in metrics)
            if base is not None:
                cells += "".join(f"<td class=n>{_fmt(base.per_image[i][1][m])}</td>" for m in metrics)
            rows.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
        return f"<h3>Per image</h3><table>{head}</tr>{''.join(rows)}</table>"

    def _crops(self, set_name: str, result: ValResult) -> str:
        shown = [
            (i, name, item)
            for i, ((name, _), item) in enumerate(zip(result.per_image, result.extras))
            if item
        ]
        if not shown:
            return ""
        folder = self.folder / "crops" / _safe(set_name)
        blocks = []
        for i, name, item in shown:
            y, x, size = item["box"]
            figures = []
            for key, label in (("lq", "LQ (nearest)"), ("output", "output"), ("gt", "GT")):
                if key not in item:
                    continue
                path = write_image(folder / f"{i:04d}_{_safe(name)}_{key}.png", item[key])
                rel = path.relative_to(self.folder).as_posix()
                img = f"<img src='{html.escape(rel)}' alt='{label}'>"
                figures.append(f"<figure>{img}<figcaption>{label}</figcaption></figure>")
            blocks.append(
                f"<div><p>{html.escape(name)}: {size}×{size} at (y={y}, x={x})</p>{''.join(figures)}</div>"
            )
        more = len(result.per_image) - len(shown)
        note = f" (the first {len(shown)} images; {more} more not shown)" if more > 0 else ""
        return (
            f"<h3>Crops{note}</h3><p class=note>Each crop is the {CROP_SIZE}×{CROP_SIZE} window "
            "(smaller for small images) with the largest mean |output − GT|.</p>"
            f"<div class=crops>{''.join(blocks)}</div>"
        )

    def _curves_section(self) -> str:
        if self.run_dir is None:
            return (
                "<h2>Curves</h2><p class=note>No training run found for these weights "
                "(pass --run DIR to plot its stats.jsonl).</p>"
            )
        paths = plot_curves(read_stats(self.run_dir), self.folder / "curves")
        stats = html.escape(str(self.run_dir / "stats.jsonl"))
        if not paths:
            return f"<h2>Curves</h2><p class=note>{stats} has no values yet.</p>"
        imgs = "".join(
            f"<img src='{html.escape(p.relative_to(self.folder).as_posix())}' alt='{html.escape(p.stem)}'>"
            for p in paths
        )
        return f"<h2>Curves</h2><p class=note>from {stats}</p><div class=curves>{imgs}</div>"

"""Image-quality metrics: PSNR/SSIM in BasicSR's conventions, NIQE, LPIPS, FID/KID.

Importing a metric module registers it in ``restorekit.registry.METRICS`` (explicit imports, no
folder scanning), declaring at registration whether larger values are better
(``@METRICS.register("psnr", higher_is_better=True)``; read back by :func:`higher_is_better`).
A registered metric is one of three things:

* a function ``fn(output, gt, **options) -> Tensor[N]`` — the leading parameters without
  defaults are the images, every option has a default (``psnr``, ``ssim``);
* a class (or factory) whose parameters are *only* options; it is called once with them and
  the object it returns is then called ``(output, gt) -> Tensor[N]`` for every batch. This is
  how metrics that carry a network or a parameter file (``lpips``, ``niqe``) load it once per
  validation set instead of once per batch;
* a *set metric* class (``metrics.base.SetMetric``: ``reset/update/state/merge/compute``), one
  number for a whole set, exact under any sharding across ranks (``fid``, ``kid``).
  :func:`is_set_metric` tells a built metric (or a registered class) of this kind.

Images are NCHW RGB in [0, 1]. Every metric first quantises its inputs the way BasicSR's
``tensor2img`` does, so numbers equal those computed on the saved 8-bit images.
:func:`get_metric` checks the options (names, types and, for classes with a ``check_options``
hook, values) and returns the per-batch callable or the set metric; :func:`check_metric` only
checks them, so config checks never load weights. Every metric also accepts ``optional: true``:
when its weights file is missing, ``get_metric`` raises :class:`MetricSkipped` (one-line note)
instead of ``WeightsError``; :func:`build_metric` returns ``(None, note)`` for that case.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal, TypeAlias

import numpy as np
import torch
from torch import Tensor

from restorekit.errors import ConfigError, WeightsError, did_you_mean
from restorekit.metrics.base import MetricSkipped, SetMetric, is_set_metric
from restorekit.metrics.distribution import FIDMetric, KIDMetric
from restorekit.metrics.lpips import LPIPS, LPIPSNet
from restorekit.metrics.niqe import NIQE_PARAMS_FILENAME, NIQE_WHAT, calculate_niqe, load_niqe_params
from restorekit.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from restorekit.metrics.psnr_ssim_torch import psnr_batch, quantize, ssim_batch
from restorekit.registry import METRICS, check_kwargs, signature_params
from restorekit.weights import resolve_weights

__all__ = [
    "FIDMetric",
    "KIDMetric",
    "LPIPSMetric",
    "MetricSkipped",
    "NIQEMetric",
    "SetMetric",
    "build_metric",
    "calculate_psnr",
    "calculate_ssim",
    "check_metric",
    "get_metric",
    "higher_is_better",
    "is_set_metric",
    "psnr_batch",
    "quantize",
    "ssim_batch",
]

MetricFn = Callable[[Tensor, Tensor], Tensor]
Metric: TypeAlias = MetricFn | SetMetric


def _quantize_unit(img: Tensor) -> Tensor:
    """``tensor2img``'s uint8 round trip, back in [0, 1] as float32 (for network-based metrics)."""
    return quantize(img).to(torch.float32).div_(255.0)


@METRICS.register("niqe", higher_is_better=False)
class NIQEMetric:
    """NIQE of each output image (lower is better); no reference, so ``gt`` is ignored.

    Each image is quantised like ``tensor2img`` and handed to :func:`calculate_niqe` as the uint8
    BGR HWC array BasicSR's validation gives it, so the numbers are BasicSR's. The pristine model
    ``niqe_pris_params.npz`` comes from ``params_path`` or the cache folder; it is resolved and
    checked once, when the metric is built, so a missing file stops a run before it trains.
    NIQE runs on the CPU in numpy (one image at a time); it needs images of at least 96x96.
    """

    def __init__(
        self, crop_border: int = 0, convert_to: Literal["y", "gray"] = "y", params_path: str | None = None
    ) -> None:
        if crop_border < 0:
            raise ConfigError(f"niqe: crop_border must be >= 0, got {crop_border}")
        self.crop_border = crop_border
        self.convert_to = convert_to
        self.params_path = resolve_weights(params_path, NIQE_PARAMS_FILENAME, NIQE_WHAT)
        load_niqe_params(self.params_path)  # a malformed file is reported now, not mid-run

    def __call__(self, output: Tensor, gt: Tensor | None = None) -> Tensor:
        if output.dim() != 4:
            raise ValueError(f"expected NCHW tensors, got shape {tuple(output.shape)}")
        q = quantize(output).to(torch.uint8).cpu().permute(0, 2, 3, 1).numpy()  # N, H, W, C (RGB)
        values = []
        for img in q:
            bgr = np.ascontiguousarray(img[:, :, ::-1]) if img.shape[2] == 3 else img
            values.append(calculate_niqe(bgr, self.crop_border, "HWC", self.convert_to, self.params_path))
        return torch.tensor(values, dtype=torch.float64)


@METRICS.register("lpips", higher_is_better=False)
class LPIPSMetric:
    """LPIPS between output and ground truth (lower is better), the network built once.

    Both images are quantised like ``tensor2img`` first (BasicSR's LPIPS script reads the saved
    8-bit images); gray images are repeated to RGB. The network follows the inputs' device.
    ``backbone_weights`` / ``lin_weights`` default to the cache folder (see ``metrics.lpips``).
    """

    def __init__(
        self, net: LPIPSNet = "alex", backbone_weights: str | None = None, lin_weights: str | None = None
    ) -> None:
        self.model = LPIPS(net, backbone_weights, lin_weights)

    def __call__(self, output: Tensor, gt: Tensor) -> Tensor:
        if output.shape != gt.shape or output.dim() != 4:
            shapes = f"{tuple(output.shape)} vs {tuple(gt.shape)}"
            raise ValueError(f"LPIPS needs two NCHW tensors of one shape, got {shapes}")
        a, b = _quantize_unit(output), _quantize_unit(gt)
        if a.shape[1] == 1:
            a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
        self.model.to(a.device)  # a no-op after the first batch
        with torch.inference_mode():
            return self.model(a, b).double()


def _is_factory(ctor: Callable[..., Any], params: dict[str, inspect.Parameter]) -> bool:
    """A class, or a callable whose parameters all have defaults (it takes no images)."""
    return inspect.isclass(ctor) or all(p.default is not p.empty for p in params.values())


def _options(ctor: Callable[..., Any]) -> tuple[bool, dict[str, inspect.Parameter]]:
    """(is a factory, the option parameters): image parameters are dropped from a function's list."""
    params = signature_params(ctor)
    if _is_factory(ctor, params):
        return True, params
    names = list(params)
    n_inputs = 0
    while n_inputs < len(names) and params[names[n_inputs]].default is params[names[n_inputs]].empty:
        n_inputs += 1
    return False, {n: params[n] for n in names[n_inputs:]}


def _split_optional(opts: dict[str, Any], where: str) -> tuple[bool, dict[str, Any]]:
    """``optional`` (a bool, any metric) apart from the metric's own options."""
    rest = dict(opts)
    value = rest.pop("optional", False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.optional: expected true or false, got {value!r}")
    return value, rest


def check_metric(name: str, where: str = "metric", **opts: Any) -> dict[str, Any]:
    """Check ``opts`` for metric ``name`` (names and types) without building anything.

    Unknown metric names list the known ones; unknown or ill-typed options name the option.
    A class with a ``check_options(where, **opts)`` classmethod also has its values checked
    (ranges, incompatible combinations) — still without reading any file. ``optional`` is
    accepted for every metric. ``where`` is the config key path used in those messages.
    Returns the coerced options (``optional`` included when it was given).
    """
    ctor = METRICS.get(name, where=f"{where}.type" if where else "type")
    prefix = where or name
    optional, rest = _split_optional(opts, prefix)
    _, options = _options(ctor)
    checked = check_kwargs(ctor, options, rest, f"{where}." if where else "", f"metric {name!r}")
    hook = getattr(ctor, "check_options", None)
    if inspect.isclass(ctor) and callable(hook):
        hook(prefix, **checked)
    return {**checked, "optional": optional} if "optional" in opts else checked


def get_metric(name: str, where: str = "metric", **opts: Any) -> Metric:
    """The metric ``name`` with ``opts``: a per-batch callable or a :class:`SetMetric`.

    A function metric comes back with its options bound (a ``functools.partial``); a class or
    factory metric is instantiated here, once — keep the result for the whole validation set
    (for a set metric: ``reset`` before each round). With ``optional: true`` a missing or
    unreadable weights file raises :class:`MetricSkipped` (its message is the note to print)
    instead of ``WeightsError``.
    """
    ctor = METRICS.get(name, where=f"{where}.type" if where else "type")
    factory, _ = _options(ctor)
    checked = check_metric(name, where, **opts)
    optional = checked.pop("optional", False)
    if not factory:
        return functools.partial(ctor, **checked)
    try:
        return ctor(**checked)
    except WeightsError as exc:
        if not optional:
            raise
        raise MetricSkipped(name, f"{where or name}: skipped (optional: true): {exc}") from None


def build_metric(name: str, where: str = "metric", **opts: Any) -> tuple[Metric | None, str | None]:
    """``(get_metric(...), None)``, or ``(None, note)`` when an optional metric was skipped."""
    try:
        return get_metric(name, where, **opts), None
    except MetricSkipped as exc:
        return None, str(exc)


def higher_is_better(name: str) -> bool:
    """Whether larger values of metric ``name`` mean better images (declared at registration)."""
    if name not in METRICS:
        raise ConfigError(
            f"metric: unknown metric {name!r}{did_you_mean(name, METRICS.names())}; "
            f"known: {', '.join(METRICS.names())}"
        )
    value = METRICS.meta(name).get("higher_is_better")
    if not isinstance(value, bool):
        raise ConfigError(
            f"metric {name!r} does not declare higher_is_better when registered "
            f"(@METRICS.register({name!r}, higher_is_better=True or False))"
        )
    return value

"""Image-quality metrics: PSNR/SSIM in BasicSR's conventions (numpy reference + batched torch).

Importing a metric module registers its batched functions in ``restorekit.registry.METRICS``
(explicit imports, no folder scanning). A registered metric is a function
``fn(output, gt, **options) -> Tensor[N]``; the images come first and have no defaults, every
option has one. Configs name a metric and its options; :func:`get_metric` checks the options
against the signature and binds them, because ``METRICS.build`` would *call* the function.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch import Tensor

from restorekit.errors import ConfigError, did_you_mean
from restorekit.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from restorekit.metrics.psnr_ssim_torch import psnr_batch, quantize, ssim_batch
from restorekit.registry import METRICS, check_kwargs, signature_params

__all__ = [
    "calculate_psnr",
    "calculate_ssim",
    "get_metric",
    "higher_is_better",
    "psnr_batch",
    "quantize",
    "ssim_batch",
]

# Which direction is "better", used to keep the best checkpoint per validation set.
_HIGHER_IS_BETTER: dict[str, bool] = {
    "psnr": True,
    "ssim": True,
}


def get_metric(name: str, where: str = "metric", **opts: Any) -> Callable[..., Tensor]:
    """The registered metric ``name`` with ``opts`` checked and bound (a ``functools.partial``).

    Unknown names list the known ones; unknown or ill-typed options name the option. ``where`` is
    the config key path used in those messages.
    """
    fn = METRICS.get(name, where=f"{where}.type" if where else "type")
    params = signature_params(fn)
    # The leading parameters without defaults are the images; only the rest are options.
    names = list(params)
    n_inputs = 0
    while n_inputs < len(names) and params[names[n_inputs]].default is params[names[n_inputs]].empty:
        n_inputs += 1
    options = {n: params[n] for n in names[n_inputs:]}
    checked = check_kwargs(fn, options, dict(opts), f"{where}." if where else "", f"metric {name!r}")
    return functools.partial(fn, **checked)


def higher_is_better(name: str) -> bool:
    """Whether larger values of metric ``name`` mean better images."""
    try:
        return _HIGHER_IS_BETTER[name]
    except KeyError:
        raise ConfigError(
            f"metric: unknown metric {name!r}{did_you_mean(name, _HIGHER_IS_BETTER)}; "
            f"known: {', '.join(sorted(_HIGHER_IS_BETTER))}"
        ) from None

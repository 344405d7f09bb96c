"""Optimizers, LR schedules and EMA: the pieces a task uses to update its networks.

They sit below ``tasks`` in the import flow (tasks own their optimizers), so they live here
rather than in ``engine``, which imports tasks.
"""

from restorekit.optim.ema import EMA, unwrap
from restorekit.optim.schedule import (
    Scheduler,
    build_optimizer,
    build_scheduler,
    check_optimizer,
    check_scheduler,
    clip_grad,
    lazy_regularization,
)

__all__ = [
    "EMA",
    "Scheduler",
    "build_optimizer",
    "build_scheduler",
    "check_optimizer",
    "check_scheduler",
    "clip_grad",
    "lazy_regularization",
    "unwrap",
]

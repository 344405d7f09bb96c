"""Tasks (what is learned). Each module registers itself in ``restorekit.registry.TASKS``."""

from restorekit.tasks import (
    adversarial,  # noqa: F401  (registers "adversarial")
    restoration,  # noqa: F401  (registers "restoration")
)

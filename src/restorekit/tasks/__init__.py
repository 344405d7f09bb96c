"""Tasks (what is learned). Each module registers itself in ``restorekit.registry.TASKS``.

Importing this package also imports every package that registers parts a task builds by name
(architectures, datasets, losses, metrics), so a Trainer built from Python finds them exactly as
the CLI does.
"""

import restorekit.archs
import restorekit.data
import restorekit.losses
import restorekit.metrics  # noqa: F401  (registration of parts built by name)
from restorekit.tasks import (
    adversarial,  # noqa: F401  (registers "adversarial")
    face,  # noqa: F401  (registers "face")
    generation,  # noqa: F401  (registers "generation")
    restoration,  # noqa: F401  (registers "restoration")
)

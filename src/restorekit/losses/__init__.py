"""Training losses, registered in ``restorekit.registry.LOSSES``.

Registration is explicit: every loss module is imported here, so ``LOSSES.build`` finds a loss
whatever its file is called. Add one import line per new module.
"""

from restorekit.losses import (  # noqa: F401  (registers GANLoss, PerceptualLoss)
    gan,
    lightweight_gan,
    perceptual,
    pixel,
)

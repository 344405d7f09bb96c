"""Degradations that turn clean images into training inputs (batched torch, GPU-capable).

Modules are imported explicitly here; each one exports its public functions.
"""

from restorekit.data.degradations.bicubic import imresize

__all__ = ["imresize"]
